"""The smb transport: named pipes over two SMB server implementations."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import aiopushy as pushy
from aiopushy.server.pipe import serve_pipe
from aiopushy.transport.smb import make_options, parse_address

from .smbservers import PASSWORD, USER, impacket_server

pytestmark = pytest.mark.anyio

impacket = pytest.importorskip("impacket", reason="the smb extra is not installed")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("winbox", ("winbox", None)),
        ("\\\\winbox", ("winbox", None)),
        ("\\\\winbox\\pipe\\other", ("winbox", "other")),
        ("//winbox/pipe/other", ("winbox", "other")),
    ],
)
def test_addresses(address: str, expected: tuple[str, str | None]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["", "\\\\", "\\\\host\\share\\x", "\\\\host\\pipe\\"])
def test_bad_addresses(address: str) -> None:
    with pytest.raises(ValueError):
        parse_address(address)


def test_domain_user_and_hashes() -> None:
    options = make_options("h", "CORP\\alice", None, hashes="aad3b435b51404ee:0123abcd")
    assert (options.domain, options.username) == ("CORP", "alice")
    assert (options.lmhash, options.nthash) == ("aad3b435b51404ee", "0123abcd")
    with pytest.raises(TypeError, match="bogus"):
        make_options("h", bogus=1)


@pytest.fixture
async def impacket_smb(anyio_backend: str) -> AsyncIterator[dict[str, object]]:
    pipe_server = await serve_pipe(tcp=("127.0.0.1", 0))
    pipe_port = int(pipe_server.addresses[0].rsplit(":", 1)[1])
    try:
        with impacket_server(pipe_port) as port:
            yield {"port": port, "username": USER, "password": PASSWORD, "timeout": 60}
    finally:
        pipe_server.close()
        await pipe_server.wait_closed()


async def test_session_over_impacket(impacket_smb: dict[str, object]) -> None:
    async with pushy.connect("smb:127.0.0.1", **impacket_smb) as conn:
        assert await conn.eval("1 + 1") == 2
        assert await conn.modules.os.getpid() == conn.info["pid"]
