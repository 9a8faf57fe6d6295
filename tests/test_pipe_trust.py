"""Who the pipe server lets in: a second local user tries each way, and nothing starts.

The TCP side (behind impacket's SMB server, or the Windows service) asks every open for
the token; in Samba mode, Samba's own record of who opened the pipe decides.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

import aiopushy as pushy
from aiopushy import _pipeproto
from aiopushy.server.pipe import PipeServer, serve_pipe

from .needs import OTHER_USER, other_user_missing, require, samba_missing
from .smbservers import PASSWORD, samba_server

pytest.importorskip("impacket", reason="the smb extra is not installed")
pytestmark = pytest.mark.anyio

TOKEN = "pipe token"

#: What the review's exploit did: two made-up halves of one session on the TCP side.
EXPLOIT = textwrap.dedent(
    """
    import socket, sys, time
    port, header_w, header_r = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()
    greetings = []
    for header in (header_w, header_r):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(header)
        greetings.append(sock.recv(23))
    time.sleep(1)
    print(greetings[0].decode().strip())
    """
)


@pytest.fixture
async def tcp_side(anyio_backend: str) -> AsyncIterator[PipeServer]:
    server = await serve_pipe(tcp=("127.0.0.1", 0), token=TOKEN)
    yield server
    server.close()
    await server.wait_closed()


async def test_another_user_without_the_token_starts_nothing(tcp_side: PipeServer) -> None:
    require(None if os.getuid() == 0 else "needs root to run a process as another user")
    session = _pipeproto.new_session_id()
    headers = [_pipeproto.header(role, session).decode() for role in (b"w", b"r")]
    port = tcp_side.addresses[0].rsplit(":", 1)[1]
    # The system's Python: the other user may not read ours under /root.
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    result = await anyio.run_process(
        [python, "-c", EXPLOIT, port, *headers], user=65534, group=65534, extra_groups=[]
    )
    assert result.stdout.decode().strip() == "AIOPUSHY-DAEMON 2 hmac"  # asked for the token
    assert tcp_side.sessions.started == 0


def test_the_tcp_side_refuses_to_start_without_a_token() -> None:
    environment = {k: v for k, v in os.environ.items() if k != "AIOPUSHY_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "aiopushy", "serve-pipe", "--tcp", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "needs a token" in result.stderr


@pytest.mark.parametrize(
    ("allow", "admitted"),
    [({}, False), ({"allow_users": [OTHER_USER]}, True), ({"allow_groups": [OTHER_USER]}, True)],
    ids=["default: the server's own user", "allowed by name", "allowed by group"],
)
async def test_samba_admits_only_the_allowed_users(
    tmp_path: Path, anyio_backend: str, allow: dict[str, list[str]], admitted: bool
) -> None:
    require(samba_missing())
    require(other_user_missing())
    share = tmp_path / "share"
    share.mkdir()
    (tmp_path / "samba").mkdir()
    with samba_server(tmp_path / "samba", share, [OTHER_USER]) as (port, _, np_dir):
        server = await serve_pipe(samba_np_dir=np_dir, **allow)  # type: ignore[arg-type]
        try:
            kwargs = {"port": port, "username": OTHER_USER, "password": PASSWORD}
            if admitted:
                async with pushy.connect("smb:127.0.0.1", **kwargs) as conn:
                    assert await conn.eval("1 + 1") == 2
                assert server.sessions.started == 1
            else:
                with pytest.raises(pushy.AuthenticationError, match="does not admit"):
                    await pushy.connect("smb:127.0.0.1", **kwargs)
                assert server.sessions.started == 0
        finally:
            server.close()
            await server.wait_closed()
    assert pwd.getpwnam(OTHER_USER).pw_uid != os.getuid()
