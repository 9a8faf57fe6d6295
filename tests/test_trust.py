"""Who the servers let in, and what they trust: token files, loopback, as real processes.

(The daemon's handshake and TLS are in ``test_daemon.py``; a hostile remote is in
``test_hostile.py``.)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import aiopushy as pushy
from aiopushy import _auth
from aiopushy._auth import GREETING_HMAC, NONCE_SIZE
from aiopushy.server._admission import Admission, Dropped

from .needs import mount_namespace_missing, require
from .test_daemon import TOKEN, Daemon
from .tlscerts import make_pki

SERVE = [sys.executable, "-m", "aiopushy", "serve", "--port", "0"]


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``aiopushy serve ARGS`` that must refuse to start (it would run forever)."""
    environment = {k: v for k, v in os.environ.items() if k != "AIOPUSHY_TOKEN"}
    return subprocess.run(
        [*SERVE, *args],
        capture_output=True,
        text=True,
        env={**environment, **(env or {})},
        timeout=30,
        check=False,
    )


def _token_file(path: Path, mode: int = 0o600) -> Path:
    path.write_text("a token\n")
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("arrange", "message"),
    [
        (lambda p: _token_file(p, 0o640), "accessible to others: chmod 600"),
        (lambda p: _token_file(p, 0o602), "accessible to others: chmod 600"),
        (lambda p: os.mkfifo(p, 0o600), "not a regular file"),
        (lambda p: p.mkdir(), "Is a directory"),
    ],
    ids=["group-readable", "world-writable", "a fifo", "a directory"],
)
def test_a_token_file_others_could_read_or_swap_is_refused(
    tmp_path: Path, arrange: object, message: str
) -> None:
    path = tmp_path / "token"
    arrange(path)  # type: ignore[operator]
    result = _serve("--token-file", str(path))
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_a_token_file_of_another_user_is_refused(tmp_path: Path) -> None:
    require(None if os.getuid() == 0 else "needs root to give a file to another user")
    path = _token_file(tmp_path / "token")
    os.chown(path, 65534, 65534)
    result = _serve("--token-file", str(path))
    assert result.returncode == 2 and "belongs to uid 65534, not to you" in result.stderr


def test_a_token_file_path_may_start_with_a_tilde(tmp_path: Path) -> None:
    _token_file(tmp_path / ".aiopushy-token")
    process = subprocess.Popen(
        [*SERVE, "--token-file", "~/.aiopushy-token"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    try:
        assert process.stdout is not None
        assert "listening on" in process.stdout.readline()
    finally:
        process.kill()
        process.communicate()


def test_insecure_mode_judges_the_address_a_name_resolves_to(tmp_path: Path) -> None:
    """A ``localhost`` that this machine's resolver maps to another address is not loopback
    (the old check trusted the name and would listen there without authentication)."""
    reason = mount_namespace_missing()
    if reason is not None:  # a capability of the machine, not a package CI could install
        pytest.skip(reason)
    hosts = tmp_path / "hosts"
    hosts.write_text("192.0.2.77 localhost\n")
    serve = " ".join([*SERVE, "--insecure", "--host", "localhost"])
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind {hosts} /etc/hosts && exec {serve}"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "AIOPUSHY_TOKEN"},
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "'localhost' must resolve to loopback addresses only" in result.stderr


def test_insecure_mode_on_a_loopback_name_listens_on_what_it_resolves_to() -> None:
    process = subprocess.Popen(
        [*SERVE, "--insecure", "--host", "localhost"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "AIOPUSHY_TOKEN"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on 127.0.0.1:" in line or "listening on ::1:" in line, line
    finally:
        process.kill()
        process.communicate()


# -- the daemon's link: an on-path relay -----------------------------------------------------

RELAY = Path(__file__).with_name("relay_attacker.py")


class Relay:
    """``relay_attacker.py`` in front of a daemon, as a process of its own."""

    def __init__(self, upstream: int, mode: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(RELAY), str(upstream), mode, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        self.target = f"daemon:127.0.0.1:{self.process.stdout.readline().split()[1]}"

    def stop(self) -> None:
        self.process.kill()
        self.process.communicate()


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    server = Daemon([], env={"AIOPUSHY_TOKEN": TOKEN})
    yield server
    server.stop()


@pytest.mark.anyio
async def test_a_relay_that_only_relays_changes_nothing(daemon: Daemon) -> None:
    relay = Relay(daemon.port, "pass")
    try:
        async with pushy.connect(relay.target, token=TOKEN, timeout=10) as conn:
            assert await conn.modules.os.getpid() == daemon.process.pid
    finally:
        relay.stop()


@pytest.mark.anyio
async def test_a_relay_cannot_inject_requests(daemon: Daemon, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    relay = Relay(daemon.port, "inject", str(marker))
    try:
        conn = await pushy.connect(relay.target, token=TOKEN, timeout=10)
        lost = pytest.raises(pushy.ConnectionLost, match="record fails its check")
        with lost, anyio.fail_after(10):
            while True:  # the daemon ends the link when the injected bytes arrive
                await conn.eval("1")
                await anyio.sleep(0.05)
        await conn.close()
    finally:
        relay.stop()
    assert not marker.exists()
    async with pushy.connect(daemon.target, token=TOKEN) as conn:  # others carry on
        assert await conn.eval("2") == 2


@pytest.mark.anyio
async def test_a_relay_cannot_change_what_a_client_sends(daemon: Daemon) -> None:
    relay = Relay(daemon.port, "tamper")
    try:
        with pytest.raises(pushy.ConnectError), anyio.fail_after(20):
            await pushy.connect(relay.target, token=TOKEN, timeout=10)
    finally:
        relay.stop()


@pytest.mark.anyio
async def test_a_relay_cannot_answer_as_the_daemon(daemon: Daemon) -> None:
    relay = Relay(daemon.port, "impersonate")
    try:
        with pytest.raises(pushy.ConnectError, match="tampered with"), anyio.fail_after(20):
            await pushy.connect(relay.target, token=TOKEN, timeout=10)
    finally:
        relay.stop()


@pytest.mark.anyio
async def test_with_tls_the_handshake_is_bound_to_the_channel(tmp_path: Path) -> None:
    """A relay holding the daemon's own certificate ends TLS on each side: the client
    trusts it, but its proof is bound to the other channel, and the daemon refuses it."""
    pki = make_pki(tmp_path)
    server = Daemon(
        ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)],
        env={"AIOPUSHY_TOKEN": TOKEN},
    )
    tls = ["--tls", str(pki.server_cert), str(pki.server_key), str(pki.ca)]
    relay = Relay(server.port, "pass", *tls)
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.check_hostname = False
    try:
        async with pushy.connect(server.target, token=TOKEN, ssl=context) as conn:
            assert await conn.eval("1") == 1  # directly: fine
        with pytest.raises(pushy.AuthenticationError, match="refused the token"):
            await pushy.connect(relay.target, token=TOKEN, ssl=context, timeout=10)
    finally:
        relay.stop()
        server.stop()


# -- no lock-out before authentication -------------------------------------------------------


@pytest.mark.anyio
async def test_a_client_gets_in_while_300_idle_connections_are_held(daemon: Daemon) -> None:
    idle = [socket.create_connection(("127.0.0.1", daemon.port)) for _ in range(300)]
    try:
        with anyio.fail_after(15):
            async with pushy.connect(daemon.target, token=TOKEN, timeout=15) as conn:
                assert await conn.eval("6 * 7") == 42
    finally:
        for sock in idle:
            sock.close()


def _greeted(port: int) -> tuple[socket.socket, bytes]:
    """A connection that has read the greeting, and the server's nonce."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(10)
    greeting = b""
    while len(greeting) < len(GREETING_HMAC) + NONCE_SIZE:
        greeting += sock.recv(1024)
    return sock, greeting[len(GREETING_HMAC) :]


def test_parallel_guesses_count_as_they_are_checked() -> None:
    """32 connections opened at once (all greeted), then 31 wrong answers and the right
    one last: only the first five answers are checked, so the right one is refused too
    (checked when the connection opened, every one of them would have been)."""
    server = Daemon([], env={"AIOPUSHY_TOKEN": TOKEN})
    try:
        greeted = [_greeted(server.port) for _ in range(32)]
        verdicts = []
        for index, (sock, nonce) in enumerate(greeted):
            token = TOKEN.encode() if index == len(greeted) - 1 else b"wrong guess"
            client = _auth._Client(token, "test", b"")
            client.greeted(GREETING_HMAC)
            sock.sendall(client.answer(nonce))
            verdicts.append(sock.recv(1))
            sock.close()
        assert verdicts == [_auth.REJECTED] * 32
        with pytest.raises(pushy.AuthenticationError, match="too many failed logins"):
            anyio.run(lambda: pushy.connect(server.target, token=TOKEN, timeout=10))
    finally:
        server.stop()


@pytest.mark.anyio
async def test_running_out_of_file_descriptors_is_one_warning(tmp_path: Path) -> None:
    """With every descriptor in use, accept() fails for each new connection: the daemon
    says so once (not a traceback per attempt), and accepts again once some are free."""
    require(None if shutil.which("prlimit") else "prlimit (util-linux) is not installed")
    log = tmp_path / "daemon.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            ["prlimit", "--nofile=300:300", *SERVE],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "AIOPUSHY_TOKEN": TOKEN},
        )
    try:
        assert process.stdout is not None
        target = "daemon:127.0.0.1:" + process.stdout.readline().rsplit(":", 1)[1].strip()
        async with pushy.connect(target, token=TOKEN, timeout=10) as conn:
            # Take every free descriptor of the daemon's process.
            await conn.execute(
                "hog = []\n"
                "while True:\n"
                "    try:\n"
                "        hog.append(open('/dev/null'))\n"
                "    except OSError:\n"
                "        break\n"
            )
            flood = []
            for _ in range(100):  # each waits in the kernel's queue; accept() fails
                flood.append(socket.create_connection(("127.0.0.1", int(target.rsplit(":")[2]))))
            await anyio.sleep(3)  # asyncio retries accept() every second
            await conn.execute("for f in hog: f.close()\nhog = None")
            for sock in flood:
                sock.close()
        async with pushy.connect(target, token=TOKEN, timeout=15) as conn:  # in again
            assert await conn.eval("1") == 1
    finally:
        process.kill()
        process.communicate()
    text = log.read_text()
    assert "cannot accept connections" in text
    assert text.count("cannot accept connections") <= 2 and "Traceback" not in text, text


# -- the admission rules, with a clock of our own --------------------------------------------


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.anyio
async def test_a_burst_of_real_clients_is_served_in_turn() -> None:
    admission = Admission(max_pending=4, max_per_address=4, max_waiting=100)
    served: list[int] = []

    async def client(index: int) -> None:
        attempt = await admission.enter("10.0.0.1", lambda: None)
        admission.heard(attempt)
        await anyio.sleep(0.001)
        served.append(index)
        admission.finish(attempt)

    async with anyio.create_task_group() as group:
        for index in range(50):
            group.start_soon(client, index)
    assert sorted(served) == list(range(50))
    assert admission.running == admission.waiting == 0


@pytest.mark.anyio
async def test_idle_attempts_give_way_and_the_oldest_waiting_is_dropped() -> None:
    clock = Clock()
    admission = Admission(max_pending=2, max_per_address=2, max_waiting=1, clock=clock)
    ended: list[str] = []
    idle = [await admission.enter("attacker", lambda n=n: ended.append(n)) for n in "ab"]
    assert admission.running == 2 and not ended
    first = asyncio.ensure_future(admission.enter("client", lambda: None))
    await anyio.sleep(0)
    second = asyncio.ensure_future(admission.enter("client", lambda: None))
    await anyio.sleep(0)
    with pytest.raises(Dropped):  # only one may wait: the older one goes
        await first
    clock.now = admission.idle_grace  # the idle attempts are past their grace...
    with anyio.fail_after(5):
        attempt = await second  # ...and give way when the admission looks again
    assert ended == ["a", "b"] and attempt.address == "client"
    assert len(idle) == 2


def test_failures_count_per_address_within_the_window() -> None:
    clock = Clock()
    admission = Admission(max_failures=3, window=60, clock=clock)
    for _ in range(3):
        assert admission.may_verify("10.0.0.1")
        admission.failed("10.0.0.1")
    assert not admission.may_verify("10.0.0.1") and admission.may_verify("10.0.0.2")
    clock.now = 61
    assert admission.may_verify("10.0.0.1")
