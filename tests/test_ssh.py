"""The ssh transport against real servers: OpenSSH's sshd, and an asyncssh server."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import asyncssh
import pytest

import aiopushy as pushy
from aiopushy.transport import _asyncssh
from aiopushy.transport._sshcommon import (
    PROBE_PYTHON,
    SSHAddress,
    make_options,
    parse_address,
    remote_command,
)

from .needs import require, ssh_agent_missing, ssh_client_missing, sudo_missing
from .netutil import free_port
from .procutil import (
    REMOTE_IGNORED_MASKS,
    check_terminal_dispositions,
    children,
    inherited_dispositions,
)
from .sshservers import PASSWORD, Server, asyncssh_server

pytestmark = pytest.mark.anyio

# -- pure parts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("web1", SSHAddress("web1")),
        ("deploy@web1", SSHAddress("web1", None, "deploy")),
        ("web1:2222", SSHAddress("web1", 2222)),
        ("deploy@web1:2222", SSHAddress("web1", 2222, "deploy")),
        ("[::1]:2200", SSHAddress("::1", 2200)),
        ("me@[fe80::1]", SSHAddress("fe80::1", None, "me")),
        ("::1", SSHAddress("::1")),
        ("a@b@host", SSHAddress("host", None, "a@b")),
    ],
)
def test_address_forms(address: str, expected: SSHAddress) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["", "@host", "host:", "host:99999", "[::1", "[::1]x"])
def test_bad_addresses(address: str) -> None:
    with pytest.raises(ValueError):
        parse_address(address)


def test_options() -> None:
    options = make_options("deploy@web1:2222", client_keys="k", host_key_policy="accept-new")
    assert (options.username, options.port, options.client_keys) == ("deploy", 2222, ("k",))
    assert (make_options("web1").username, make_options("web1").port) == (None, None)
    assert options.host_label() == "[web1]:2222"
    assert make_options("web1", username="other").username == "other"
    with pytest.raises(ValueError, match="host_key_policy"):
        make_options("web1", host_key_policy="yolo")
    with pytest.raises(TypeError, match="bogus"):
        make_options("web1", bogus=1)


def test_remote_command_quotes_and_probes() -> None:
    explicit = remote_command(["/opt/py 3/bin/python", "-c", "print(1)"], sudo=False)
    assert explicit.startswith("exec /bin/sh -c ")
    assert "'/opt/py 3/bin/python'" in explicit.replace("'\"'\"'", "'")
    probe = remote_command([PROBE_PYTHON, "-c", "pass"], sudo="deploy")
    assert "python3.12" in probe and "platform-python" in probe and "sudo -n -u deploy" in probe


# -- servers --------------------------------------------------------------------------


@pytest.fixture
async def asyncssh_srv(tmp_path: Path, anyio_backend: str) -> AsyncIterator[Server]:
    async with asyncssh_server(tmp_path) as server:
        yield server


@pytest.fixture(params=["asyncssh", "native"])
def native(request: pytest.FixtureRequest) -> bool:
    """Whether the test uses the system's OpenSSH client (``use_native=True``)."""
    if request.param == "native":
        require(ssh_client_missing())
    return bool(request.param == "native")


async def test_key_auth_and_python_probe(openssh: Server, native: bool) -> None:
    kwargs = openssh.connect_kwargs(use_native=native)
    async with pushy.connect("ssh:127.0.0.1", timeout=60, **kwargs) as conn:
        assert await conn.eval("1 + 1") == 2
        pid = await conn.modules.os.getpid()
        assert pid != os.getpid() and pid == conn.info["pid"]
        version = await conn.modules.sys.version_info[:2]
        assert tuple(version) >= (3, 8)
        assert conn.transport.address == "127.0.0.1"


async def test_explicit_python_env_and_cwd(openssh: Server, tmp_path: Path) -> None:
    async with pushy.connect(
        "ssh:127.0.0.1",
        python=sys.executable,
        env={"AIOPUSHY_SSH": "1"},
        cwd=str(tmp_path),
        **openssh.connect_kwargs(),
    ) as conn:
        assert await conn.modules.sys.executable == sys.executable
        assert await conn.modules.os.environ["AIOPUSHY_SSH"] == "1"
        assert await conn.modules.os.getcwd() == str(tmp_path)


async def test_sftp_copy_of_a_multi_megabyte_file(
    openssh: Server, native: bool, tmp_path: Path
) -> None:
    payload = os.urandom(5 * 1024 * 1024 + 3)
    (tmp_path / "up.bin").write_bytes(payload)
    async with pushy.connect("ssh:127.0.0.1", **openssh.connect_kwargs(use_native=native)) as conn:
        assert conn.transport.native_file_copy
        await conn.putfile(tmp_path / "up.bin", str(tmp_path / "remote.bin"))
        assert (tmp_path / "remote.bin").read_bytes() == payload
        await conn.getfile(str(tmp_path / "remote.bin"), tmp_path / "down.bin")
        assert (tmp_path / "down.bin").read_bytes() == payload
        with pytest.raises(FileNotFoundError):
            await conn.getfile(str(tmp_path / "missing"), tmp_path / "never")


async def test_many_interpreters_share_one_connection(openssh: Server) -> None:
    kwargs = openssh.connect_kwargs()
    sessions = []
    try:
        async with anyio.create_task_group() as group:

            async def open_one() -> None:
                sessions.append(await pushy.connect("ssh:127.0.0.1", **kwargs))

            for _ in range(12):
                group.start_soon(open_one)
        pids = {await s.modules.os.getpid() for s in sessions}
        assert len(pids) == 12
        shared = {id(s.transport._shared) for s in sessions}  # type: ignore[attr-defined]
        assert len(shared) == 1
    finally:
        for session in sessions:
            await session.close()
    assert not _asyncssh._pool()  # the last user closed the connection


async def test_killed_remote_fails_pending_calls(openssh: Server, native: bool) -> None:
    async with pushy.connect("ssh:127.0.0.1", **openssh.connect_kwargs(use_native=native)) as c:
        pid = c.info["pid"]
        killer = asyncio.ensure_future(_kill_soon(pid))
        with pytest.raises(pushy.ConnectionLost), anyio.fail_after(10):
            await c.modules.time.sleep(30)
        await killer


async def _kill_soon(pid: int) -> None:
    await anyio.sleep(0.3)
    os.kill(pid, signal.SIGKILL)


async def test_close_leaves_no_remote_process(openssh: Server, native: bool) -> None:
    conn = await pushy.connect("ssh:127.0.0.1", **openssh.connect_kwargs(use_native=native))
    pid = conn.info["pid"]
    await conn.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        await anyio.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}") or "Z" in Path(f"/proc/{pid}/stat").read_text()


async def test_unknown_host_key(openssh: Server, native: bool, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    kwargs = openssh.connect_kwargs(use_native=native, known_hosts=str(empty))
    with pytest.raises(pushy.HostKeyError) as info:
        await pushy.connect("ssh:127.0.0.1", **kwargs)
    assert "not in" in str(info.value) and "accept-new" in str(info.value)


async def test_missing_known_hosts_file(openssh: Server, native: bool, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "known_hosts"
    kwargs = openssh.connect_kwargs(use_native=native, known_hosts=str(missing))
    with pytest.raises(pushy.HostKeyError, match="which does not exist"):
        await pushy.connect("ssh:127.0.0.1", **kwargs)
    # accept-new creates it (and its directory), and trusts the key from then on
    async with pushy.connect("ssh:127.0.0.1", **kwargs, host_key_policy="accept-new") as conn:
        assert await conn.eval("1") == 1
    assert f"[127.0.0.1]:{openssh.port} ssh-ed25519 " in missing.read_text()
    async with pushy.connect("ssh:127.0.0.1", **kwargs) as conn:
        assert await conn.eval("2") == 2


async def test_changed_host_key(openssh: Server, native: bool, tmp_path: Path) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{openssh.port} {other}")
    kwargs = openssh.connect_kwargs(use_native=native, known_hosts=str(wrong))
    with pytest.raises(pushy.HostKeyError) as info:
        await pushy.connect("ssh:127.0.0.1", **kwargs)
    assert "CHANGED" in str(info.value)
    # accept-new never accepts a changed key either
    with pytest.raises(pushy.HostKeyError):
        await pushy.connect("ssh:127.0.0.1", **{**kwargs, "host_key_policy": "accept-new"})


async def test_accept_new_records_the_key(openssh: Server, native: bool, tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text("")
    kwargs = openssh.connect_kwargs(
        use_native=native, known_hosts=str(path), host_key_policy="accept-new"
    )
    async with pushy.connect("ssh:127.0.0.1", **kwargs) as conn:
        assert await conn.eval("2") == 2
    assert str(openssh.port) in path.read_text()
    strict = {**kwargs, "host_key_policy": "strict"}
    async with pushy.connect("ssh:127.0.0.1", **strict) as conn:  # now known
        assert await conn.eval("3") == 3


async def test_host_key_checking_off(openssh: Server, native: bool, tmp_path: Path) -> None:
    kwargs = openssh.connect_kwargs(
        use_native=native, known_hosts=str(tmp_path / "none"), host_key_policy="off"
    )
    async with pushy.connect("ssh:127.0.0.1", **kwargs) as conn:
        assert await conn.eval("4") == 4


async def test_refused_port(openssh: Server, native: bool) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        kwargs = openssh.connect_kwargs(use_native=native, port=port)
        with pytest.raises(pushy.ConnectionRefused):
            await pushy.connect("ssh:127.0.0.1", **kwargs)


async def test_connect_timeout(openssh: Server, native: bool) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)  # accepts TCP, never says a word of SSH
        kwargs = openssh.connect_kwargs(use_native=native, port=s.getsockname()[1])
        kwargs["connect_timeout"] = 1
        start = time.monotonic()
        with pytest.raises(pushy.ConnectTimeout):
            await pushy.connect("ssh:127.0.0.1", timeout=30, **kwargs)
        assert time.monotonic() - start < 20


async def test_missing_remote_python(openssh: Server, native: bool) -> None:
    kwargs = openssh.connect_kwargs(use_native=native)
    with pytest.raises(pushy.PythonNotFoundError) as info:
        await pushy.connect("ssh:127.0.0.1", python="/no/such/python3", **kwargs)
    assert "/no/such/python3" in info.value.stderr


async def test_unresolvable_host(openssh: Server, native: bool) -> None:
    kwargs = openssh.connect_kwargs(use_native=native)
    with pytest.raises(pushy.HostNotFoundError):
        await pushy.connect("ssh:no-such-host.invalid", **kwargs)


# -- password authentication, against the asyncssh server ---------------------------


async def test_password_auth(asyncssh_srv: Server, native: bool) -> None:
    kwargs: dict[str, Any] = asyncssh_srv.connect_kwargs(
        use_native=native, client_keys=[], password=PASSWORD
    )
    async with pushy.connect("ssh:127.0.0.1", python=sys.executable, **kwargs) as conn:
        assert await conn.eval("6 * 7") == 42


async def test_wrong_password_never_echoed(asyncssh_srv: Server, native: bool) -> None:
    kwargs: dict[str, Any] = asyncssh_srv.connect_kwargs(
        use_native=native, client_keys=[], password="wrong-password-xyzzy"
    )
    with pytest.raises(pushy.AuthenticationError) as info:
        await pushy.connect("ssh:127.0.0.1", python=sys.executable, **kwargs)
    assert "xyzzy" not in str(info.value) and "xyzzy" not in info.value.stderr


async def test_key_auth_against_asyncssh_server(asyncssh_srv: Server) -> None:
    async with pushy.connect(
        "ssh:127.0.0.1", python=sys.executable, **asyncssh_srv.connect_kwargs()
    ) as conn:
        assert await conn.modules.os.getpid() == conn.info["pid"]


async def test_remote_starts_with_terminal_dispositions(
    asyncssh_srv: Server, native: bool
) -> None:
    """The test's own asyncssh server starts the remote with SIGHUP and SIGINT ignored,
    as a server run under ``nohup`` in a background job would; the remote resets them."""
    with inherited_dispositions(ignored=True):
        conn = await pushy.connect(
            "ssh:127.0.0.1",
            python=sys.executable,
            **asyncssh_srv.connect_kwargs(use_native=native),
        )
    async with conn:
        check_terminal_dispositions(await conn.eval(REMOTE_IGNORED_MASKS))


async def test_tunnel_through_a_jump_host(openssh: Server, native: bool) -> None:
    """The jump host is the same sshd: the hop must pass the same host-key checks."""
    kwargs = openssh.connect_kwargs(
        use_native=native, tunnel=f"{openssh.username}@127.0.0.1:{openssh.port}"
    )
    async with pushy.connect("ssh:127.0.0.1", **kwargs) as conn:
        assert await conn.eval("5") == 5
    assert not _asyncssh._pool()


async def test_ssh_config_alias(openssh: Server, native: bool, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host test-alias\n"
        "    HostName 127.0.0.1\n"
        f"    Port {openssh.port}\n"
        f"    User {openssh.username}\n"
        f"    IdentityFile {openssh.keys.user_key_path}\n"
        f"    UserKnownHostsFile {openssh.keys.known_hosts}\n"
    )
    kwargs = {
        "use_native": native,
        "config": str(config),
        "agent_path": None,
        "known_hosts": str(openssh.keys.known_hosts),
    }
    async with pushy.connect("ssh:test-alias", **kwargs) as conn:
        assert await conn.eval("6") == 6


async def test_sudo(openssh: Server, native: bool) -> None:
    require(sudo_missing())
    kwargs = openssh.connect_kwargs(use_native=native, sudo=True)
    async with pushy.connect("ssh:127.0.0.1", **kwargs) as conn:
        assert await conn.modules.os.environ.get("SUDO_USER") == openssh.username
        assert await conn.modules.os.geteuid() == 0


async def test_sudo_wanting_a_password(tmp_path: Path, anyio_backend: str) -> None:
    """A stand-in ``sudo`` that answers as sudo does when it would need a password."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "sudo"
    fake.write_text("#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    async with asyncssh_server(tmp_path, env=env) as server:
        with pytest.raises(pushy.SudoPasswordRequired):
            await pushy.connect("ssh:127.0.0.1", sudo=True, **server.connect_kwargs())


async def test_agent_forwarding(openssh: Server, native: bool, tmp_path: Path) -> None:
    require(ssh_agent_missing())
    agent_bin = shutil.which("ssh-agent")
    assert agent_bin is not None
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen([agent_bin, "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if socket_path.exists():
                break
            await anyio.sleep(0.05)
        env = {**os.environ, "SSH_AUTH_SOCK": str(socket_path)}
        subprocess.run(
            ["ssh-add", str(openssh.keys.user_key_path)], env=env, check=True, capture_output=True
        )
        kwargs = openssh.connect_kwargs(
            use_native=native, agent_path=str(socket_path), forward_agent=True, client_keys=None
        )
        async with pushy.connect("ssh:127.0.0.1", **kwargs) as conn:
            listed = await conn.modules.subprocess.run(
                ["ssh-add", "-l"], capture_output=True, text=True
            ).stdout
            assert "ED25519" in listed
        kwargs["forward_agent"] = False
        async with pushy.connect("ssh:127.0.0.1", **kwargs) as conn:
            assert await conn.modules.os.environ.get("SSH_AUTH_SOCK") is None
    finally:
        agent.terminate()
        agent.wait()


async def test_ssh_through_ssh(openssh: Server, native: bool) -> None:
    """The bastion is the same sshd: the second hop's ssh client runs on the bastion."""
    bastion = await pushy.connect(
        "ssh:127.0.0.1", timeout=60, **openssh.connect_kwargs(use_native=native)
    )
    try:
        inner = await pushy.connect(
            "ssh:127.0.0.1", via=bastion, timeout=60, **openssh.connect_kwargs()
        )
        assert await inner.eval("6 * 7") == 42
        assert children(bastion.info["pid"], "ssh")  # the client is the bastion's child
        assert not inner.transport.native_file_copy
        pid = inner.info["pid"]
        assert await inner.modules.os.getpid() == pid != bastion.info["pid"]
        await bastion.close()
        with pytest.raises(pushy.ConnectionLost), anyio.fail_after(10):
            await inner.modules.os.getpid()
        await inner.close()
    finally:
        await bastion.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        await anyio.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}") or "Z" in Path(f"/proc/{pid}/stat").read_text()


async def test_ssh_via_reports_the_second_hops_errors(openssh: Server, tmp_path: Path) -> None:
    async with pushy.connect("ssh:127.0.0.1", timeout=60, **openssh.connect_kwargs()) as bastion:
        empty = tmp_path / "known_hosts"
        empty.write_text("")
        kwargs = openssh.connect_kwargs(known_hosts=str(empty))
        with pytest.raises(pushy.HostKeyError, match="not in"):
            await pushy.connect("ssh:127.0.0.1", via=bastion, **kwargs)
        with pytest.raises(pushy.ConnectionRefused):
            await pushy.connect(
                "ssh:127.0.0.1", via=bastion, **openssh.connect_kwargs(port=free_port())
            )
        assert await bastion.eval("1") == 1
