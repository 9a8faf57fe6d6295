"""Relays keep what crosses them more than once: a forwarded module and each
interpreter's bootstrap cross each link once, however many sessions a relay starts.

What crossed a link is measured where it arrives: the bytes the relaying interpreter
read (``rchar`` in ``/proc/<pid>/io``, counted by the kernel).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import pytest

import aiopushy as pushy
from aiopushy import _bootstrap
from aiopushy._modulefiles import find_spec, module_file
from aiopushy._protocol.framing import REMOTE_MAX_FRAME_SIZE
from aiopushy._remote import relay as remote_relay
from aiopushy.transport import _relaycache

from .sshservers import Server

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs /proc/<pid>/io"),
]


def bytes_read(session: pushy.Session) -> int:
    """How many bytes the session's interpreter has read so far, from any descriptor."""
    with open(f"/proc/{session.info['pid']}/io") as counters:
        for line in counters:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar line")


@pytest.fixture
def big(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """A package whose compiled code is about 220 KB compressed (random text)."""
    name = f"big_{secrets.token_hex(4)}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text(
        f"DATA = {secrets.token_hex(200_000)!r}\n\n\ndef size():\n    return len(DATA)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module(name)
    sys.modules.pop(name, None)


def code_size(module: ModuleType) -> int:
    """The bytes forwarding sends for ``module`` (to a remote of our bytecode)."""
    return len(module_file(module.__name__, find_spec(module.__name__)).code)


@pytest.fixture
async def bastion(anyio_backend: str) -> AsyncIterator[pushy.Session]:
    async with pushy.connect("local:", timeout=30) as session:
        yield session


async def _fan_in(
    vias: list[pushy.Session], module: ModuleType, relays: tuple[pushy.Session, ...] = ()
) -> tuple[list[int], list[int]]:
    """Start one interpreter via each of ``vias`` and call ``module.size`` in each:
    the results, and how many bytes each of ``relays`` read meanwhile.

    Read before the interpreters end: once a process reaps a child, the kernel adds
    what the child read to its count.
    """
    before = [bytes_read(relay) for relay in relays]
    targets = await asyncio.gather(*(pushy.connect("local:", via=via, timeout=60) for via in vias))
    try:
        results = await asyncio.gather(*(t.call(module.size) for t in targets))
        grown = [bytes_read(relay) - b for relay, b in zip(relays, before, strict=True)]
    finally:
        await asyncio.gather(*(t.close() for t in targets))
    return list(results), grown


async def test_a_module_crosses_the_link_to_a_relay_once(
    bastion: pushy.Session, big: ModuleType
) -> None:
    module_bytes = code_size(big)
    assert module_bytes > 200_000
    await _fan_in([bastion], big)  # the relay's own imports (subprocess), the bootstrap
    results, (grown,) = await _fan_in([bastion] * 4, big, (bastion,))
    assert results == [400_000] * 4
    # Four interpreters each got the bootstrap and the module; the link carried only a
    # few small frames for each (the module was kept by the first call above).
    assert grown < 20_000 * 4

    # The control: with nothing kept, every interpreter's bytes cross the link.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_relaycache, "MIN_BLOB", 1 << 40)
        _, (grown,) = await _fan_in([bastion] * 4, big, (bastion,))
    payload = len(_bootstrap.payload(REMOTE_MAX_FRAME_SIZE))
    assert grown > 4 * (payload + module_bytes)


async def test_each_link_of_a_tree_carries_a_module_once(
    bastion: pushy.Session, big: ModuleType
) -> None:
    """controller -> bastion -> two relays -> two interpreters each."""
    module_bytes = code_size(big)
    relays = [await pushy.connect("local:", via=bastion, timeout=60) for _ in range(2)]
    try:
        await asyncio.gather(*(r.eval("__import__('subprocess')") for r in relays))
        vias = [relays[0], relays[0], relays[1], relays[1]]
        results, grown = await _fan_in(vias, big, (bastion, *relays))
        assert results == [400_000] * 4
    finally:
        await asyncio.gather(*(r.close() for r in relays))
    payload = len(_bootstrap.payload(REMOTE_MAX_FRAME_SIZE))
    bastion_grew, *relays_grew = grown
    # The bastion had the bootstrap kept when it started the relays; of the module, one
    # copy passed it, kept there for the second relay's keep request.
    assert module_bytes < bastion_grew < module_bytes + 50_000
    for grew in relays_grew:  # the bootstrap and the module, once each
        assert payload + module_bytes < grew < payload + module_bytes + 50_000


async def test_the_policy_of_each_session_still_decides(
    bastion: pushy.Session, big: ModuleType
) -> None:
    """A relay that keeps a module's code gives it only to the sessions the controller
    answers: a session whose policy does not forward it is refused."""
    name = big.__name__
    async with (
        pushy.connect("local:", via=bastion, forward_modules=[name], timeout=30) as allowed,
        pushy.connect("local:", via=bastion, timeout=30) as other,
    ):
        assert await allowed.eval(f"len(__import__('{name}').DATA)") == 400_000
        with pytest.raises(ModuleNotFoundError, match="does not forward it"):
            await other.eval(f"__import__('{name}')")


async def test_past_the_limit_blobs_are_sent_every_time(
    bastion: pushy.Session, big: ModuleType
) -> None:
    _relaycache.cache_for(bastion).limit = 100_000  # less than the module's code
    results, (grown,) = await _fan_in([bastion] * 2, big, (bastion,))
    assert results == [400_000] * 2
    assert grown > 2 * code_size(big)
    assert _relaycache.cache_for(bastion).kept_bytes <= 100_000


def test_the_relay_writes_kept_bytes_and_refuses_unknown_keys(tmp_path: Path) -> None:
    """The relay's side on its own, with a real child process writing what it reads."""
    out = tmp_path / "out"
    key, kept = secrets.token_bytes(16), secrets.token_bytes(5000)
    remote_relay.keep(key, kept)
    writer = remote_relay.Relay(["sh", "-c", f"cat > '{out}'"], None, lambda *_: None)
    with pytest.raises(KeyError):  # nothing of that write is written
        writer.write_parts((b"never", secrets.token_bytes(16), b"written"))
    with pytest.raises(TypeError):
        writer.write_parts([b"a list"])  # type: ignore[arg-type]
    writer.write_parts((b"<", key, b">", key, b""))
    writer.close_input()
    assert writer.process.wait(timeout=10) == 0
    assert out.read_bytes() == b"<" + kept + b">" + kept


async def test_through_a_real_sshd_each_module_crosses_to_the_bastion_once(
    openssh: Server, big: ModuleType, anyio_backend: str
) -> None:
    """ssh to a bastion, then ssh from there (its own ssh client) to three hosts: the
    module goes to the bastion once."""
    kwargs = openssh.connect_kwargs()
    async with pushy.connect("ssh:127.0.0.1", timeout=60, **kwargs) as bastion:
        hosts = [
            await pushy.connect("ssh:127.0.0.1", via=bastion, timeout=60, **kwargs)
            for _ in range(3)
        ]
        try:
            before = bytes_read(bastion)
            results = await asyncio.gather(*(host.call(big.size) for host in hosts))
            grown = bytes_read(bastion) - before
        finally:
            await asyncio.gather(*(host.close() for host in hosts))
    assert results == [400_000] * 3
    module_bytes = code_size(big)
    assert module_bytes < grown < module_bytes + 50_000
