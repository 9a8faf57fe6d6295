"""The transport registry and file copies (native and through the protocol)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import aiopushy as pushy
from aiopushy.transport import find_popen, local

pytestmark = pytest.mark.anyio


class NoCopyTransport(local.LocalTransport):
    """A local transport that pretends to have no file copy of its own."""

    native_file_copy = False


async def no_copy_popen(command: Sequence[str], address: str, **kwargs: Any) -> NoCopyTransport:
    transport = await NoCopyTransport.spawn(command, address)
    assert isinstance(transport, NoCopyTransport)
    return transport


@pytest.fixture
def no_copy_transport() -> Iterator[str]:
    pushy.transports["nocopy"] = no_copy_popen
    yield "nocopy:"
    del pushy.transports["nocopy"]


@pytest.fixture(params=[1, 3 * 1024 * 1024 + 17, 0])
def payload(request: pytest.FixtureRequest) -> bytes:
    return os.urandom(request.param)


async def test_native_file_copy(conn: pushy.Session, tmp_path: Path, payload: bytes) -> None:
    assert conn.transport.native_file_copy
    source = tmp_path / "source.bin"
    source.write_bytes(payload)
    await conn.putfile(source, str(tmp_path / "remote.bin"))
    await conn.getfile(str(tmp_path / "remote.bin"), tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == payload


async def test_file_copy_through_the_protocol(
    no_copy_transport: str, remote_python: str, tmp_path: Path, payload: bytes
) -> None:
    async with pushy.connect(no_copy_transport, python=remote_python) as conn:
        assert not conn.transport.native_file_copy
        source = tmp_path / "source.bin"
        source.write_bytes(payload)
        remote_path = str(tmp_path / "remote.bin")
        (tmp_path / "remote.bin").write_bytes(b"x" * (len(payload) + 100))  # truncated
        await conn.putfile(source, remote_path)
        assert (tmp_path / "remote.bin").read_bytes() == payload
        await conn.getfile(remote_path, tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == payload
        with pytest.raises(FileNotFoundError):
            await conn.getfile(str(tmp_path / "missing"), tmp_path / "never.bin")
        with pytest.raises(FileNotFoundError):
            await conn.putfile(tmp_path / "missing", remote_path)


def test_registry_accepts_modules_paths_and_functions() -> None:
    assert find_popen("local") is local.Popen
    pushy.transports["viamodule"] = local
    pushy.transports["viapath"] = "aiopushy.transport.local:Popen"
    try:
        assert find_popen("viamodule") is local.Popen
        assert find_popen("viapath") is local.Popen
    finally:
        del pushy.transports["viamodule"], pushy.transports["viapath"]


def test_registry_reads_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "aiopushy_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: aiopushy-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[aiopushy.transports]\nplugged = aiopushy.transport.local\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert find_popen("plugged") is local.Popen
    with pytest.raises(ValueError, match="plugged"):
        find_popen("nosuch")


def test_module_without_popen_is_a_clear_error() -> None:
    pushy.transports["broken"] = sys
    try:
        with pytest.raises(ValueError, match="defines no Popen"):
            find_popen("broken")
    finally:
        del pushy.transports["broken"]


async def test_local_popen_rejects_unknown_options() -> None:
    with pytest.raises(TypeError, match="bogus"):
        await pushy.connect("local:", bogus=1)
