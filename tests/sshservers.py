"""Real SSH servers for the tests: OpenSSH's sshd as a child process, and asyncssh's.

Both listen on a free 127.0.0.1 port, with a generated host key and a generated user
key; ``known_hosts`` is a file of the test's own, so nothing in ``~/.ssh`` is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from .needs import SSHD, require, sshd_missing
from .netutil import free_port, port_free_everywhere, stop_process, wait_for_port

PASSWORD = "correct horse battery staple"


@dataclass
class Keys:
    """A host key, a user key and the files a client needs."""

    directory: Path
    host_key: asyncssh.SSHKey
    user_key_path: Path
    known_hosts: Path

    @classmethod
    def generate(cls, directory: Path) -> Keys:
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        user_key = asyncssh.generate_private_key("ssh-ed25519")
        host_key.write_private_key(str(directory / "host_ed25519"))
        os.chmod(directory / "host_ed25519", 0o600)
        user_key.write_private_key(str(directory / "id_ed25519"))
        os.chmod(directory / "id_ed25519", 0o600)
        user_key.write_public_key(str(directory / "authorized_keys"))
        return cls(directory, host_key, directory / "id_ed25519", directory / "known_hosts")

    def trust(self, port: int, key: asyncssh.SSHKey | None = None) -> None:
        """Write a known_hosts file naming ``key`` (default: the real host key)."""
        public = (key or self.host_key).export_public_key().decode().strip()
        self.known_hosts.write_text(f"[127.0.0.1]:{port} {public}\n")


@dataclass
class Server:
    """Where a test server listens and how to log in to it."""

    port: int
    keys: Keys
    username: str

    def connect_kwargs(self, **extra: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "port": self.port,
            "username": self.username,
            "client_keys": [str(self.keys.user_key_path)],
            "known_hosts": str(self.keys.known_hosts),
            "agent_path": None,
            "config": os.devnull,
            "connect_timeout": 20,
        }
        options.update(extra)
        return options


def _sshd_config(keys: Keys, listen: list[str], name: str = "sshd") -> Path:
    """Write an sshd config listening on ``listen`` (``address:port`` items)."""
    directory = keys.directory
    config = directory / f"{name}_config"
    config.write_text(
        "".join(f"ListenAddress {address}\n" for address in listen)
        + f"HostKey {directory / 'host_ed25519'}\n"
        f"PidFile {directory / name}.pid\n"
        f"AuthorizedKeysFile {directory / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "Subsystem sftp internal-sftp\n"
        "AllowTcpForwarding yes\n"
        "AllowAgentForwarding yes\n"
        "MaxSessions 100\n"
        "MaxStartups 200\n"
        "LogLevel ERROR\n"
    )
    reason = sshd_missing()
    if reason is not None:
        raise RuntimeError(reason)
    assert SSHD is not None
    subprocess.run([SSHD, "-t", "-f", str(config)], check=True)
    return config


def _start_sshd(config: Path) -> subprocess.Popen[bytes]:
    assert SSHD is not None
    return subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)


def require_sshd(client: bool = False) -> None:
    """Skip (in CI: fail) the test unless sshd (and with ``client``, ssh) can run."""
    require(sshd_missing(client))


@contextlib.contextmanager
def openssh_server(directory: Path) -> Iterator[Server]:
    """Run OpenSSH's sshd on a free loopback port for as long as the context lasts."""
    keys = Keys.generate(directory)
    port = free_port()
    process = _start_sshd(_sshd_config(keys, [f"127.0.0.1:{port}"]))
    try:
        wait_for_port(port, process)
        keys.trust(port)
        yield Server(port, keys, getpass.getuser())
    finally:
        stop_process(process)


#: OpenSSH's sshd listens on at most this many addresses (MAX_LISTEN_SOCKS).
SSHD_MAX_LISTEN = 16


@dataclass
class Fleet:
    """Many SSH "hosts" on this one machine: distinct loopback addresses, one port.

    ``live`` addresses are served by real sshd processes (16 addresses each),
    ``refused`` ones have nothing listening, and ``blackholed`` ones a socket that
    completes the TCP handshake but never answers, so SSH handshakes hang.
    """

    port: int
    keys: Keys
    username: str
    live: list[str]
    refused: list[str]
    blackholed: list[str]

    def target(self, address: str) -> str:
        """``ssh:ADDRESS:PORT`` for one of the fleet's addresses."""
        return f"ssh:{address}:{self.port}"

    def connect_kwargs(self, **extra: Any) -> dict[str, Any]:
        """Settings for ``connect()``: the fleet's key and known_hosts, no agent."""
        options: dict[str, Any] = {
            "client_keys": [str(self.keys.user_key_path)],
            "known_hosts": str(self.keys.known_hosts),
            "agent_path": None,
            "config": os.devnull,
        }
        options.update(extra)
        return options


def fleet_address(index: int) -> str:
    """The ``index``-th loopback address of a fleet: 127.77.0.2, 127.77.0.3, ..."""
    return f"127.77.{index // 250}.{index % 250 + 2}"


@contextlib.contextmanager
def openssh_fleet(
    directory: Path, live: int, refused: int = 0, blackholed: int = 0
) -> Iterator[Fleet]:
    """Run enough sshd processes to serve ``live`` addresses, for as long as the context
    lasts; the next ``refused`` and ``blackholed`` addresses are dead in their own way."""
    keys = Keys.generate(directory)
    port = port_free_everywhere()
    addresses = [fleet_address(i) for i in range(live + refused + blackholed)]
    fleet = Fleet(
        port,
        keys,
        getpass.getuser(),
        addresses[:live],
        addresses[live : live + refused],
        addresses[live + refused :],
    )
    public = keys.host_key.export_public_key().decode().strip()
    keys.known_hosts.write_text("".join(f"[{a}]:{port} {public}\n" for a in addresses))
    processes: list[subprocess.Popen[bytes]] = []
    holes: list[socket.socket] = []
    try:
        for group, first in enumerate(range(0, live, SSHD_MAX_LISTEN)):
            batch = fleet.live[first : first + SSHD_MAX_LISTEN]
            config = _sshd_config(keys, [f"{a}:{port}" for a in batch], f"sshd{group}")
            processes.append(_start_sshd(config))
        for address in fleet.blackholed:
            hole = socket.socket()
            hole.bind((address, port))
            hole.listen(64)  # the kernel completes handshakes; nobody ever accepts
            holes.append(hole)
        for process, first in zip(processes, range(0, live, SSHD_MAX_LISTEN), strict=True):
            for address in fleet.live[first : first + SSHD_MAX_LISTEN]:
                wait_for_port(port, process, host=address)
        yield fleet
    finally:
        for hole in holes:
            hole.close()
        for process in processes:
            stop_process(process)


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return password == PASSWORD


async def _run_command(
    process: asyncssh.SSHServerProcess[bytes], env: dict[str, str] | None = None
) -> None:
    """Run the requested command under /bin/sh, pumping its streams through the channel."""
    child = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        process.command or "",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        env=env,
    )
    assert child.stdin and child.stdout and child.stderr

    async def pump_in() -> None:
        assert child.stdin
        with contextlib.suppress(Exception):
            while data := await process.stdin.read(65536):
                child.stdin.write(data)
                await child.stdin.drain()
        with contextlib.suppress(Exception):
            child.stdin.close()

    async def pump_out(source: asyncio.StreamReader, target: Any) -> None:
        with contextlib.suppress(Exception):
            while data := await source.read(65536):
                target.write(data)
                await target.drain()

    feeding = asyncio.ensure_future(pump_in())
    await asyncio.gather(
        pump_out(child.stdout, process.stdout), pump_out(child.stderr, process.stderr)
    )
    feeding.cancel()
    code = await child.wait()
    process.exit(code if code >= 0 else 255)


@contextlib.asynccontextmanager
async def asyncssh_server(directory: Path, env: dict[str, str] | None = None) -> Any:
    """An in-process asyncssh server (password and key auth, real commands, SFTP).

    ``env`` replaces the environment of the commands it runs (fault injection).
    """
    keys = Keys.generate(directory)
    listener = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[keys.host_key],
        authorized_client_keys=str(directory / "authorized_keys"),
        server_factory=_Server,
        process_factory=lambda process: _run_command(process, env),
        encoding=None,
        sftp_factory=True,
        allow_scp=True,
    )
    port = listener.sockets[0].getsockname()[1]
    keys.trust(port)
    try:
        yield Server(port, keys, getpass.getuser())
    finally:
        listener.close()
        await listener.wait_closed()
