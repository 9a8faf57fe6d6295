"""The daemon transport against a real ``aiopushy serve`` in a subprocess."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import aiopushy as pushy
from aiopushy.server import DEFAULT_PORT

from .netutil import stop_process
from .tlscerts import Pki, make_pki

pytestmark = pytest.mark.anyio
TOKEN = "daemon test token"


class Daemon:
    """``aiopushy serve`` in a subprocess, listening on a free loopback port."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aiopushy", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # its log; a pipe nobody reads could fill up
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"daemon did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])
        self.target = f"daemon:127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.process)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    server = Daemon([], env={"AIOPUSHY_TOKEN": TOKEN})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def test_auth_ok_and_separate_namespaces(daemon: Daemon) -> None:
    async with (
        pushy.connect(daemon.target, token=TOKEN) as one,
        pushy.connect(daemon.target, token=TOKEN) as two,
    ):
        assert await one.modules.os.getpid() == daemon.process.pid
        await one.execute("mine = 1")
        with pytest.raises(NameError):
            await two.eval("mine")
        assert one.info["pid"] == two.info["pid"] == daemon.process.pid


async def test_wrong_token(daemon: Daemon) -> None:
    with pytest.raises(pushy.AuthenticationError, match="refused the token"):
        await pushy.connect(daemon.target, token="not it")


async def test_no_token(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIOPUSHY_TOKEN", raising=False)
    with pytest.raises(pushy.AuthenticationError, match="requires a token"):
        await pushy.connect(daemon.target)


async def test_token_file(daemon: Daemon, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        await pushy.connect(daemon.target, token_file=str(path))
    path.chmod(0o600)
    async with pushy.connect(daemon.target, token_file=str(path)) as conn:
        assert await conn.eval("1") == 1


async def test_output_goes_to_the_client_that_printed(daemon: Daemon) -> None:
    seen: dict[str, list[bytes]] = {"a": [], "b": []}
    async with (
        pushy.connect(daemon.target, token=TOKEN, output=lambda s, d: seen["a"].append(d)) as a,
        pushy.connect(daemon.target, token=TOKEN, output=lambda s, d: seen["b"].append(d)) as b,
    ):
        await a.eval("print('for a')")
        await b.eval("print('for b')")
    assert b"".join(seen["a"]) == b"for a\n"
    assert b"".join(seen["b"]) == b"for b\n"


async def test_file_copy_through_the_protocol(daemon: Daemon, tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 5)
    (tmp_path / "up").write_bytes(payload)
    async with pushy.connect(daemon.target, token=TOKEN) as conn:
        assert not conn.transport.native_file_copy
        await conn.putfile(tmp_path / "up", str(tmp_path / "remote"))
        await conn.getfile(str(tmp_path / "remote"), tmp_path / "down")
    assert (tmp_path / "down").read_bytes() == payload


async def test_env_and_cwd_are_refused(daemon: Daemon) -> None:
    with pytest.raises(pushy.ConnectError, match="shared by its clients"):
        await pushy.connect(daemon.target, token=TOKEN, env={"A": "1"})


async def test_hundred_concurrent_clients(daemon: Daemon) -> None:
    results: list[int] = []

    async def client(i: int) -> None:
        async with pushy.connect(daemon.target, token=TOKEN, timeout=60) as conn:
            for j in range(5):
                results.append(await conn.modules.operator.add(i, j))

    async with anyio.create_task_group() as group:
        for i in range(100):
            group.start_soon(client, i)
    assert sorted(results) == sorted(i + j for i in range(100) for j in range(5))


async def test_client_killed_mid_call_does_not_disturb_others(daemon: Daemon) -> None:
    script = (
        "import asyncio, aiopushy\n"
        "async def main():\n"
        f"    c = await aiopushy.connect('{daemon.target}', token='{TOKEN}')\n"
        "    print('connected', flush=True)\n"
        "    await c.modules.time.sleep(30)\n"
        "asyncio.run(main())\n"
    )
    victim = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert victim.stdout is not None
        assert victim.stdout.readline().startswith(b"connected")
        await anyio.sleep(0.3)
        victim.kill()
    finally:
        victim.wait()
        assert victim.stdout is not None
        victim.stdout.close()
    async with pushy.connect(daemon.target, token=TOKEN) as conn:
        assert await conn.eval("40 + 2") == 42


def _receive(s: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = s.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _raw(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


async def test_garbage_and_huge_prefixes_are_dropped(daemon: Daemon) -> None:
    http = b"GET / HTTP/1.1\r\n\r\n" + b"x" * 100
    for garbage in (b"\xff" * 64, http, b"\x7f\xff\xff\xff" * 16):
        with _raw(daemon.port) as s:
            assert _receive(s, 23 + 32).startswith(b"AIOPUSHY-DAEMON")  # greeting, nonce
            s.sendall(garbage)
            assert _receive(s, 1) in (b"\x00", b"")  # refused, never decoded
    async with pushy.connect(daemon.target, token=TOKEN) as conn:
        assert await conn.eval("1") == 1


async def test_oversized_frame_after_login_drops_only_that_client(daemon: Daemon) -> None:
    async with pushy.connect(daemon.target, token=TOKEN) as good:
        evil = await pushy.connect(daemon.target, token=TOKEN)
        try:
            from aiopushy._protocol.framing import HEADER

            await evil.transport.stdin.send(HEADER.pack(2**31, 3, 1))
            with pytest.raises(pushy.ConnectionLost), anyio.fail_after(10):
                await evil.eval("1")
        finally:
            await evil.close()
        assert await good.eval("2") == 2


async def test_slowloris_is_cut_off_by_the_handshake_timeout(tmp_path: Path) -> None:
    server = Daemon([], env={"AIOPUSHY_TOKEN": TOKEN})
    try:
        # The daemon's handshake timeout is 10 s: a client that says nothing is dropped.
        start = time.monotonic()
        with _raw(server.port) as s:
            s.settimeout(30)
            assert _receive(s, 23 + 32).startswith(b"AIOPUSHY-DAEMON")
            while s.recv(100):
                pass  # until the server hangs up
        assert time.monotonic() - start < 25
    finally:
        server.stop()


async def test_server_shutdown_fails_clients_promptly() -> None:
    server = Daemon([], env={"AIOPUSHY_TOKEN": TOKEN})
    try:
        conn = await pushy.connect(server.target, token=TOKEN)
        pending = asyncio.ensure_future(conn.modules.time.sleep(30))
        await anyio.sleep(0.3)
        stopped_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        with pytest.raises(pushy.ConnectionLost):
            await pending
        assert time.monotonic() - stopped_at < 5
        await conn.close()
    finally:
        server.stop()


def test_refuses_to_start_without_authentication() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AIOPUSHY_TOKEN"}
    serve = [sys.executable, "-m", "aiopushy", "serve", "--port", "0"]
    result = subprocess.run(serve, capture_output=True, env=env, timeout=30, check=False)
    assert result.returncode == 2 and b"without authentication" in result.stderr
    anywhere = [*serve, "--insecure", "--host", "0.0.0.0"]
    result = subprocess.run(anywhere, capture_output=True, env=env, timeout=30, check=False)
    assert result.returncode == 2 and b"loopback" in result.stderr


async def test_insecure_on_loopback() -> None:
    server = Daemon(["--insecure"], env={"AIOPUSHY_TOKEN": ""})
    try:
        async with pushy.connect(server.target) as conn:
            assert await conn.eval("3") == 3
        with pytest.raises(pushy.AuthenticationError, match="without authentication"):
            await pushy.connect(server.target, token="anything")
    finally:
        server.stop()


async def test_tls(pki: Pki) -> None:
    server = Daemon(
        ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)],
        env={"AIOPUSHY_TOKEN": TOKEN},
    )
    try:
        context = ssl.create_default_context(cafile=str(pki.ca))
        async with pushy.connect(server.target, token=TOKEN, ssl=context) as conn:
            assert await conn.eval("4") == 4
        other = make_pki(pki.ca.parent, "other-ca")
        wrong = ssl.create_default_context(cafile=str(other.ca))
        with pytest.raises(pushy.ConnectError, match="TLS"):
            await pushy.connect(server.target, token=TOKEN, ssl=wrong)
    finally:
        server.stop()


async def test_tls_client_certificates(pki: Pki) -> None:
    server = Daemon(
        [
            "--tls-cert",
            str(pki.server_cert),
            "--tls-key",
            str(pki.server_key),
            "--tls-client-ca",
            str(pki.ca),
        ],
        env={"AIOPUSHY_TOKEN": TOKEN},
    )
    try:
        context = ssl.create_default_context(cafile=str(pki.ca))
        with pytest.raises(pushy.ConnectError):
            await pushy.connect(server.target, token=TOKEN, ssl=context, connect_timeout=10)
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        async with pushy.connect(server.target, token=TOKEN, ssl=context) as conn:
            assert await conn.eval("5") == 5
    finally:
        server.stop()


def test_default_port_is_pushys() -> None:
    assert DEFAULT_PORT == 10101


async def test_repeated_failures_are_rate_limited() -> None:
    server = Daemon([], env={"AIOPUSHY_TOKEN": TOKEN})
    try:
        for _ in range(5):
            with pytest.raises(pushy.AuthenticationError):
                await pushy.connect(server.target, token="guess")
        with pytest.raises(pushy.AuthenticationError, match="too many failed logins"):
            await pushy.connect(server.target, token=TOKEN)  # even the right one, for now
    finally:
        server.stop()


def _peers() -> int:
    from aiopushy._remote.peer import Peer

    gc.collect()
    return sum(isinstance(o, Peer) for o in gc.get_objects())


async def test_in_process_server_api() -> None:
    from aiopushy import server

    async with await server.serve(port=0, token=TOKEN) as daemon:
        host, port = daemon.address
        assert host == "127.0.0.1" and port > 0
        async with pushy.connect(f"daemon:{host}", port=port, token=TOKEN) as conn:
            assert await conn.eval("6") == 6
            held = await conn.eval("[object() for _ in range(100)]")
            assert len(held) == 100 and _peers() == 1
        # The client is gone: its peer, namespace and objects go with it.
        deadline = time.monotonic() + 10
        while _peers() and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        assert _peers() == 0
    with pytest.raises(ValueError, match="without authentication"):
        await server.serve(port=0)
