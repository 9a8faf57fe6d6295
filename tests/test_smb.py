"""The smb transport: named pipes over two SMB server implementations."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

import aiopushy as pushy
from aiopushy.server.pipe import serve_pipe
from aiopushy.transport import smb
from aiopushy.transport.smb import make_options, parse_address

from .needs import require, samba_missing
from .procutil import (
    REMOTE_IGNORED_MASKS,
    check_terminal_dispositions,
    inherited_dispositions,
    wait_until,
)
from .smbservers import PASSWORD, USER, impacket_server, samba_server

pytestmark = pytest.mark.anyio

#: What the pipe server's TCP side asks every open for, behind impacket's server.
PIPE_TOKEN = "pipe token"

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


@pytest.fixture(params=["impacket", "samba"])
async def impacket_smb(
    request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str
) -> AsyncIterator[dict[str, object]]:
    """Connect arguments for a pipe served through impacket's server, then Samba's.

    Both also share ``tmp_path / "share"`` as ``DATA``.
    """
    share = tmp_path / "share"
    share.mkdir()
    (tmp_path / "samba").mkdir()
    if request.param == "impacket":
        pipe_server = await serve_pipe(tcp=("127.0.0.1", 0), token=PIPE_TOKEN)
        pipe_port = int(pipe_server.addresses[0].rsplit(":", 1)[1])
        servers = impacket_server(pipe_port, share)
        user = USER
        extra = {"token": PIPE_TOKEN}
    else:
        require(samba_missing())
        servers = samba_server(tmp_path / "samba", share)
        pipe_server = None
        extra = {}
    try:
        with servers as started:
            if request.param == "samba":
                port, user, np_dir = started  # type: ignore[misc]
                pipe_server = await serve_pipe(samba_np_dir=np_dir)
            else:
                port, _ = started  # type: ignore[misc]
            yield {
                "port": port,
                "username": user,
                "password": PASSWORD,
                "connect_timeout": 30,
                **extra,
            }
    finally:
        if pipe_server is not None:
            pipe_server.close()
            await pipe_server.wait_closed()


async def test_session_over_impacket(impacket_smb: dict[str, object]) -> None:
    async with pushy.connect("smb:127.0.0.1", **impacket_smb) as conn:
        assert await conn.eval("1 + 1") == 2
        assert await conn.modules.os.getpid() == conn.info["pid"]


async def test_remote_starts_with_terminal_dispositions(
    impacket_smb: dict[str, object],
) -> None:
    """The pipe server, here in the test's process, starts each remote; run under
    ``nohup`` in a background job it would hand down ignored SIGHUP and SIGINT."""
    with inherited_dispositions(ignored=True):
        conn = await pushy.connect("smb:127.0.0.1", **impacket_smb)
    async with conn:
        check_terminal_dispositions(await conn.eval(REMOTE_IGNORED_MASKS))


async def test_core_behaviour_over_smb(impacket_smb: dict[str, object]) -> None:
    async with pushy.connect("smb:127.0.0.1", **impacket_smb) as conn:
        assert await conn.modules.os.path.join("a", "b") == "a/b"
        with pytest.raises(ZeroDivisionError):
            await conn.eval("1 / 0")
        apply = await conn.eval("lambda f, x: f(x)")

        async def nested(x: int) -> int:
            return await conn.modules.operator.mul(x, 3)

        assert await apply(nested, 5) == 15
        start = time.monotonic()
        async with anyio.create_task_group() as group:
            for _ in range(6):
                group.start_soon(_sleep_remotely, conn)
        assert time.monotonic() - start < 3


async def _sleep_remotely(conn: pushy.Session) -> None:
    await conn.modules.time.sleep(0.5)


async def test_wrong_password(impacket_smb: dict[str, object]) -> None:
    with pytest.raises(pushy.AuthenticationError) as info:
        await pushy.connect("smb:127.0.0.1", **{**impacket_smb, "password": "wrong-xyzzy"})
    assert "xyzzy" not in str(info.value)


async def test_unknown_pipe(impacket_smb: dict[str, object]) -> None:
    with pytest.raises(pushy.ConnectError, match="not installed or not running"):
        await pushy.connect("smb:\\\\127.0.0.1\\pipe\\nosuch", **impacket_smb)


async def test_remote_killed_mid_call(impacket_smb: dict[str, object]) -> None:
    async with pushy.connect("smb:127.0.0.1", **impacket_smb) as conn:
        pid = conn.info["pid"]
        pending = asyncio.ensure_future(conn.modules.time.sleep(30))
        await anyio.sleep(0.3)
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(pushy.ConnectionLost):
            await pending
        assert time.monotonic() - killed_at < 5


async def test_twenty_concurrent_sessions(impacket_smb: dict[str, object]) -> None:
    pids: list[int] = []

    async def one() -> None:
        async with pushy.connect("smb:127.0.0.1", **impacket_smb) as conn:
            pids.append(await conn.modules.os.getpid())

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(one)
    assert len(set(pids)) == 20


def test_abort_wakes_a_blocked_read_and_closes_only_after_it() -> None:
    """Fault injection: ``abort`` comes while a read is blocked. The read must wake, and
    the connection be closed only after it returns: a descriptor closed under a blocked
    read leaves it waiting, then reading whatever connection reuses the number."""
    mine, peer = socket.socketpair()
    events: list[str] = []

    class BlockingConnection:  # impacket's SMBConnection, as far as _Guarded uses it
        def getSMBServer(self) -> BlockingConnection:
            return self

        def get_socket(self) -> socket.socket:
            return mine

        def read(self) -> bytes:
            data = mine.recv(16)  # blocks until the socket is shut down
            events.append(f"read returned {data!r}, descriptor open: {mine.fileno() != -1}")
            return data

        def close(self) -> None:
            events.append("closed")
            mine.close()

    guarded = smb._Guarded(BlockingConnection())
    reader = threading.Thread(
        target=lambda: events.append(f"got {guarded.use(guarded.connection.read)!r}")
    )
    reader.start()
    deadline = time.monotonic() + 5
    while guarded._users == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # inside recv by now
    guarded.abort()
    reader.join(5)
    assert not reader.is_alive()
    # Closed once, and only after the read returned (by the reader's call or by abort,
    # whichever finished last: both orders are right).
    assert events[0] == "read returned b'', descriptor open: True"
    assert sorted(events[1:]) == ["closed", "got b''"]
    with pytest.raises(BrokenPipeError):
        guarded.use(guarded.connection.read)
    guarded.abort()  # again: nothing more happens
    assert events.count("closed") == 1
    peer.close()


def _threads_in_smb_reads() -> int:
    """Threads whose stack is inside a pipe read (idle pool workers do not count)."""
    import traceback

    count = 0
    for frame in sys._current_frames().values():
        names = {entry.name for entry in traceback.extract_stack(frame)}
        count += "read" in names and "readNamedPipe" in names
    return count


async def test_file_copy_and_clean_close(impacket_smb: dict[str, object], tmp_path: Path) -> None:
    payload = os.urandom(2 * 1024 * 1024 + 11)
    (tmp_path / "up").write_bytes(payload)
    # The reads of sessions closed by earlier tests end too (or they leaked): wait for them.
    assert await wait_until(lambda: _threads_in_smb_reads() == 0, 10)
    async with pushy.connect("smb:127.0.0.1", **impacket_smb) as conn:
        await conn.putfile(tmp_path / "up", str(tmp_path / "remote"))
        await conn.getfile(str(tmp_path / "remote"), tmp_path / "down")
        pid = conn.info["pid"]
        # The pump's pending read (it may be between two reads for a moment).
        assert await wait_until(lambda: _threads_in_smb_reads() == 1, 5)
    assert (tmp_path / "down").read_bytes() == payload
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (
        _threads_in_smb_reads() or os.path.exists(f"/proc/{pid}")
    ):
        await anyio.sleep(0.05)
    assert _threads_in_smb_reads() == 0  # closing unblocked it
    assert not os.path.exists(f"/proc/{pid}") or " Z " in Path(f"/proc/{pid}/stat").read_text()


def test_serve_pipe_cli_refuses_nothing_to_serve() -> None:
    import subprocess

    command = [sys.executable, "-m", "aiopushy", "serve-pipe"]
    result = subprocess.run(command, capture_output=True, timeout=30, check=False)
    assert result.returncode == 2 and b"samba_np_dir" in result.stderr
    outside = [*command, "--tcp", "0.0.0.0:0"]
    result = subprocess.run(outside, capture_output=True, timeout=30, check=False)
    assert result.returncode == 2 and b"loopback" in result.stderr


async def test_file_copy_through_a_share(impacket_smb: dict[str, object], tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 1)
    (tmp_path / "up").write_bytes(payload)
    async with pushy.connect("smb:127.0.0.1", share="DATA", **impacket_smb) as conn:
        assert conn.transport.native_file_copy
        await conn.putfile(tmp_path / "up", "copied.bin")
        assert (tmp_path / "share" / "copied.bin").read_bytes() == payload
        await conn.getfile("copied.bin", tmp_path / "down")
        assert (tmp_path / "down").read_bytes() == payload
        with pytest.raises(FileNotFoundError):
            await conn.getfile("missing.bin", tmp_path / "never")
    async with pushy.connect("smb:127.0.0.1", share="NOSUCH", **impacket_smb) as conn:
        with pytest.raises(OSError, match="NOSUCH"):  # impacket: not found; Samba: denied
            await conn.putfile(tmp_path / "up", "x.bin")


async def test_smb_server_killed_mid_call(tmp_path: Path, anyio_backend: str) -> None:
    pipe_server = await serve_pipe(tcp=("127.0.0.1", 0), token=PIPE_TOKEN)
    pipe_port = int(pipe_server.addresses[0].rsplit(":", 1)[1])
    (tmp_path / "share").mkdir()
    try:
        with impacket_server(pipe_port, tmp_path / "share") as (port, process):
            kwargs = {"port": port, "username": USER, "password": PASSWORD, "token": PIPE_TOKEN}
            async with pushy.connect("smb:127.0.0.1", **kwargs) as conn:
                pending = asyncio.ensure_future(conn.modules.time.sleep(30))
                await anyio.sleep(0.3)
                killed_at = time.monotonic()
                process.kill()
                with pytest.raises(pushy.ConnectionLost):
                    await pending
                assert time.monotonic() - killed_at < 5
    finally:
        pipe_server.close()
        await pipe_server.wait_closed()


async def test_smb_connect_timeout(anyio_backend: str) -> None:
    import gc
    import socket
    import warnings

    with socket.socket() as silent, warnings.catch_warnings():
        # impacket leaks its socket when negotiation times out inside SMBConnection():
        # collect it here rather than let its ResourceWarning land in another test.
        warnings.simplefilter("ignore", ResourceWarning)
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts TCP, never answers SMB
        port = silent.getsockname()[1]
        kwargs = {"port": port, "username": USER, "password": "x", "connect_timeout": 1}
        with pytest.raises(pushy.ConnectTimeout):
            await pushy.connect("smb:127.0.0.1", **kwargs)
        start = time.monotonic()
        with pytest.raises(pushy.ConnectTimeout):  # connect()'s own timeout cuts in too
            await pushy.connect("smb:127.0.0.1", timeout=0.5, **{**kwargs, "connect_timeout": 2})
        assert time.monotonic() - start < 2
        await anyio.sleep(2.5)  # the abandoned attempt ends within its connect_timeout
        gc.collect()
