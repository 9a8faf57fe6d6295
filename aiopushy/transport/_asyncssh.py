"""The ``ssh`` transport on asyncssh: one connection per host, one channel per interpreter.

Connections are pooled per event loop by everything that makes them different (host,
port, user, credentials, policies): every interpreter and the SFTP session for that host
share one SSH handshake. A connection closes when its last user is done with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from dataclasses import dataclass, field
from typing import Any

import anyio
import asyncssh

from .._exceptions import (
    AuthenticationError,
    ConnectError,
    HostKeyError,
)
from ._neterrors import network_error
from ._process import EXIT_GRACE
from ._sshcommon import (
    SSHOptions,
    host_key_error_message,
    jump_options,
    remote_command,
    sudo_failure,
)
from ._streams import ReaderStream, WriterStream
from .base import BaseTransport


class _PolicyClient(asyncssh.SSHClient):
    """Applies ``host_key_policy='accept-new'``: trust and record a host never seen."""

    def __init__(self, options: SSHOptions) -> None:
        self.options = options
        self.changed = False

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        if self.options.host_key_policy != "accept-new":
            self.changed = _known_keys(self.options, host, addr, port) > 0
            return False
        if _known_keys(self.options, host, addr, port):
            self.changed = True  # known, with another key: never accept that silently
            return False
        label = host if port == 22 else f"[{host}]:{port}"
        line = f"{label} {key.export_public_key().decode().strip()}\n"
        path = self.options.known_hosts_path
        with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as f:
            f.write(line)
        return True


_known_hosts_cache: dict[str, tuple[tuple[int, int], Any]] = {}


def _read_known_hosts(path: str) -> Any:
    """The parsed known-hosts file, parsed again only when it changed: asyncssh would
    read and decode every key in it on each connect, which dominates a fan-out."""
    status = os.stat(path)
    version = (status.st_mtime_ns, status.st_size)
    cached = _known_hosts_cache.get(path)
    if cached is not None and cached[0] == version:
        return cached[1]
    known = asyncssh.read_known_hosts(path)
    _known_hosts_cache[path] = (version, known)
    return known


def _known_keys(options: SSHOptions, host: str, addr: str, port: int) -> int:
    """How many keys the known-hosts file holds for this host."""
    try:
        known = _read_known_hosts(options.known_hosts_path)
    except (OSError, ValueError):
        return 0
    trusted = known.match(host, addr, port if port != 22 else None)
    return len(trusted[0]) + len(trusted[1])


@dataclass
class _Shared:
    connection: asyncssh.SSHClientConnection
    via: tuple[SSHOptions, _Shared] | None = None  # the jump host's connection
    users: int = 0
    sftp: asyncssh.SFTPClient | None = None
    sftp_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _Pending:
    """A connection being opened, and how many callers wait for it."""

    task: asyncio.Future[_Shared]
    waiters: int = 0


_Pool = dict[SSHOptions, "_Shared | _Pending"]
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()


def _pool() -> _Pool:
    return _pools.setdefault(asyncio.get_running_loop(), {})


async def _open(options: SSHOptions) -> _Shared:
    client = _PolicyClient(options)
    kwargs: dict[str, Any] = {
        "password": options.password,
        "passphrase": options.passphrase,
        "keepalive_interval": options.keepalive_interval or 0,
        "connect_timeout": options.connect_timeout,
        "agent_forwarding": options.forward_agent,
        "client_factory": lambda: client,
    }
    if options.port is not None:
        kwargs["port"] = options.port
    if options.username is not None:
        kwargs["username"] = options.username
    if options.client_keys is not None:
        kwargs["client_keys"] = list(options.client_keys)
    if options.agent_path is not None:
        kwargs["agent_path"] = options.agent_path
    if options.config is not None:
        kwargs["config"] = [options.config]
    jump = jump_options(options)
    via = None
    if jump is not None:  # our own connection, so the jump host gets the same checks
        via = (jump, await acquire(jump))
        kwargs["tunnel"] = via[1].connection
    if options.host_key_policy == "off":
        kwargs["known_hosts"] = None
    else:
        try:
            kwargs["known_hosts"] = _read_known_hosts(options.known_hosts_path)
        except FileNotFoundError:  # nothing known: every host key is unknown
            kwargs["known_hosts"] = asyncssh.import_known_hosts("")
        except (OSError, ValueError):  # let asyncssh report it as it does
            kwargs["known_hosts"] = options.known_hosts_path
    try:
        connection = await asyncssh.connect(options.address.host, **kwargs)
    except BaseException as exc:
        if via is not None:
            release(*via)
        if isinstance(exc, OSError | asyncssh.Error | asyncio.TimeoutError):
            raise _connect_error(options, client, exc) from exc
        raise
    return _Shared(connection, via)


def _connect_error(options: SSHOptions, client: _PolicyClient, exc: Exception) -> ConnectError:
    """The aiopushy error for a failed asyncssh connect (never quoting a password)."""
    target = options.target()
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        message = host_key_error_message(options, client.changed)
        return HostKeyError(f"{target}: {message}", target=target)
    if isinstance(exc, asyncssh.PermissionDenied):
        return AuthenticationError(
            f"{target}: authentication failed ({exc.reason})", target=target
        )
    return network_error(exc, target, options.address.host)


def _settle(pool: _Pool, options: SSHOptions, pending: _Pending) -> Any:
    """Replace a pending connect in the pool by its connection, or drop it if it failed
    (even when every waiter gave up on it)."""

    def done(task: asyncio.Future[_Shared]) -> None:
        if pool.get(options) is not pending:
            return
        if task.cancelled() or task.exception() is not None:
            del pool[options]
        else:
            pool[options] = task.result()

    return done


def _abandon(pool: _Pool, options: SSHOptions, pending: _Pending) -> None:
    """The last waiter gave up (a timeout, say): stop connecting, or close what connected."""
    if not pending.task.done():
        pending.task.cancel()  # a black-holed host must not keep a handshake pending
    elif not pending.task.cancelled() and pending.task.exception() is None:
        shared = pending.task.result()
        if shared.users == 0:
            shared.users = 1
            release(options, shared)


async def acquire(options: SSHOptions) -> _Shared:
    """The shared connection for ``options``, opening it if needed (one handshake)."""
    pool = _pool()
    entry = pool.get(options)
    if entry is None or (isinstance(entry, _Shared) and entry.connection.is_closed()):
        entry = pool[options] = _Pending(asyncio.ensure_future(_open(options)))
        entry.task.add_done_callback(_settle(pool, options, entry))
    if isinstance(entry, _Pending):
        entry.waiters += 1
        try:
            shared = await asyncio.shield(entry.task)
        except asyncio.CancelledError:
            entry.waiters -= 1
            if entry.waiters == 0:
                _abandon(pool, options, entry)
            raise
        entry.waiters -= 1
    else:
        shared = entry
    shared.users += 1
    return shared


def release(options: SSHOptions, shared: _Shared) -> list[asyncssh.SSHClientConnection]:
    """Give a connection back; the last user closes it. Returns the connections closed."""
    shared.users -= 1
    if shared.users > 0:
        return []
    pool = _pool()
    if pool.get(options) is shared:
        del pool[options]
    shared.connection.close()
    closed = [shared.connection]
    if shared.via is not None:
        closed += release(*shared.via)
    return closed


class AsyncSSHTransport(BaseTransport):
    """An interpreter on a channel of a (shared) asyncssh connection."""

    native_file_copy = True

    def __init__(
        self, options: SSHOptions, shared: _Shared, process: asyncssh.SSHClientProcess[bytes]
    ) -> None:
        self.options = options
        self.address = options.address.host
        self._shared = shared
        self._process = process
        self._released = False
        self.stdin = WriterStream(process.stdin)
        self.stdout = ReaderStream(process.stdout)
        self.stderr = ReaderStream(process.stderr)

    @classmethod
    async def open(cls, command: list[str], options: SSHOptions) -> AsyncSSHTransport:
        """Open (or share) the connection and start ``command`` on a new channel."""
        shared = await acquire(options)
        try:
            process = await shared.connection.create_process(
                remote_command(command, options.sudo), encoding=None
            )
        except BaseException as exc:
            release(options, shared)
            if isinstance(exc, OSError | asyncssh.Error):
                raise ConnectError(f"{options.target()}: cannot start: {exc}") from exc
            raise
        return cls(options, shared, process)

    @property
    def returncode(self) -> int | None:
        """The remote command's exit status, once the channel has closed."""
        return self._process.exit_status

    async def wait(self) -> int | None:
        """Wait for the channel to close; the exit status."""
        await self._process.wait_closed()
        return self._process.exit_status

    def explain_startup_failure(
        self, returncode: int | None, stderr: str
    ) -> tuple[type[ConnectError], str] | None:
        """Recognise ``sudo`` asking for a password."""
        return sudo_failure(self.options, stderr)

    def kill(self) -> None:
        """Close the channel at once; the remote interpreter sees its input end."""
        self._process.close()

    async def aclose(self) -> None:
        """End of input, a grace period, then close the channel and release the connection."""
        await self.stdin.aclose()
        with anyio.move_on_after(EXIT_GRACE):
            await self._process.wait_closed()
        self._process.close()
        with anyio.move_on_after(EXIT_GRACE):
            await self._process.wait_closed()
        if not self._released:
            self._released = True
            with anyio.move_on_after(EXIT_GRACE):
                for connection in release(self.options, self._shared):
                    await connection.wait_closed()

    async def _sftp(self) -> asyncssh.SFTPClient:
        shared = self._shared
        async with shared.sftp_lock:
            if shared.sftp is None:
                shared.sftp = await shared.connection.start_sftp_client()
            return shared.sftp

    async def _copy(self, put: bool, local_path: str, remote_path: str) -> None:
        sftp = await self._sftp()
        try:
            if put:
                await sftp.put(local_path, remote_path)
            else:
                await sftp.get(remote_path, local_path)
        except asyncssh.SFTPNoSuchFile as exc:
            raise FileNotFoundError(2, exc.reason, remote_path) from exc

    async def getfile(self, remote_path: str, local_path: str) -> None:
        """Copy with SFTP over the shared connection."""
        await self._copy(False, local_path, remote_path)

    async def putfile(self, local_path: str, remote_path: str) -> None:
        """Copy with SFTP over the shared connection."""
        await self._copy(True, local_path, remote_path)
