"""``smb`` -- a Python interpreter behind a named pipe, reached over SMB (impacket).

Windows hosts rarely run sshd; they do speak SMB. ``connect("smb:HOST", username=...,
password=...)`` opens the named pipe ``\\\\HOST\\pipe\\aiopushy``, behind which the pipe
server (``aiopushy serve-pipe`` on Samba, or the Windows service) starts a fresh
interpreter per session; the client still ships the remote code over the pipe.

impacket's ``SMBConnection`` blocks and is not thread-safe, and a pending pipe read
blocks its connection, so a session uses two connections, one per direction, each open
of the pipe driven by worker threads of the transport's own limiter (a pending read
never takes a thread from anyone else). Files are copied through the protocol.
Requires the ``smb`` extra (``pip install aiopushy[smb]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream

from .. import _pipeproto
from .._exceptions import AuthenticationError, ConnectError
from ._neterrors import network_error
from .base import BaseTransport, EmptyReceiveStream

DEFAULT_PORT = 445
DEFAULT_PIPE = "aiopushy"
DEFAULT_PYTHON = "unused"
"""The pipe server chooses the interpreter; ``python=`` has no meaning here."""

READ_SIZE = 65536


@dataclass(frozen=True)
class SMBOptions:
    """Where and how to log in, parsed from the address and ``Popen``'s arguments."""

    host: str
    pipe: str = DEFAULT_PIPE
    port: int = DEFAULT_PORT
    username: str = ""
    password: str = field(default="", repr=False)
    domain: str = ""
    lmhash: str = ""
    nthash: str = field(default="", repr=False)
    kerberos: bool = False
    timeout: float = 120.0

    @property
    def target(self) -> str:
        """``smb:\\\\HOST\\pipe\\NAME`` for messages."""
        return f"smb:\\\\{self.host}\\pipe\\{self.pipe}"


def parse_address(address: str) -> tuple[str, str | None]:
    """``(host, pipe or None)`` from ``HOST``, ``\\\\HOST`` or ``\\\\HOST\\pipe\\NAME``.

    Raises:
        ValueError: a malformed UNC path or an empty host.
    """
    text = address.replace("/", "\\")
    if text.startswith("\\\\"):
        parts = text[2:].split("\\")
        host = parts[0]
        if len(parts) == 1 or parts[1:] == [""]:
            pipe = None
        elif len(parts) == 3 and parts[1].lower() == "pipe" and parts[2]:
            pipe = parts[2]
        else:
            raise ValueError(f"smb address {address!r}: expected \\\\HOST or \\\\HOST\\pipe\\NAME")
    else:
        host, pipe = text, None
    if not host or "\\" in host:
        raise ValueError(f"smb address {address!r} names no host")
    return host, pipe


def make_options(
    address: str,
    username: str | None = None,
    password: str | None = None,
    domain: str = "",
    **kwargs: Any,
) -> SMBOptions:
    """Validate ``Popen``'s arguments; ``DOMAIN\\user`` usernames are split."""
    host, pipe = parse_address(address)
    user = username or ""
    if "\\" in user:
        domain, user = user.split("\\", 1)
    hashes = kwargs.pop("hashes", None)
    lmhash = nthash = ""
    if hashes:
        lmhash, _, nthash = hashes.partition(":")
    pipe = kwargs.pop("pipe", None) or pipe or DEFAULT_PIPE
    allowed = {"port", "kerberos", "timeout"}
    unknown = set(kwargs) - allowed
    if unknown:
        raise TypeError(f"smb transport got unexpected arguments: {', '.join(sorted(unknown))}")
    return SMBOptions(
        host=host,
        pipe=pipe,
        username=user,
        password=password or "",
        domain=domain,
        lmhash=lmhash,
        nthash=nthash,
        **kwargs,
    )


class _PipeEnd:
    """One open of the named pipe, on an SMB connection of its own (blocking calls)."""

    def __init__(self, options: SMBOptions) -> None:
        from impacket.smb3structs import (
            FILE_READ_DATA,
            FILE_SHARE_READ,
            FILE_SHARE_WRITE,
            FILE_WRITE_DATA,
        )
        from impacket.smbconnection import SMBConnection

        self._connection = SMBConnection(
            options.host, options.host, sess_port=options.port, timeout=int(options.timeout)
        )
        try:
            if options.kerberos:
                self._connection.kerberosLogin(
                    options.username, options.password, options.domain, options.lmhash,
                    options.nthash,
                )  # fmt: skip
            else:
                self._connection.login(
                    options.username, options.password, options.domain, options.lmhash,
                    options.nthash,
                )  # fmt: skip
            self._tree = self._connection.connectTree("IPC$")
            self._file = self._connection.openFile(
                self._tree,
                "\\" + options.pipe,
                desiredAccess=FILE_READ_DATA | FILE_WRITE_DATA,
                shareMode=FILE_SHARE_READ | FILE_SHARE_WRITE,
            )
        except BaseException:
            self.abort()
            raise

    def read(self, size: int) -> bytes:
        data: bytes = self._connection.readNamedPipe(self._tree, self._file, size)
        return data

    def write(self, data: bytes) -> None:
        self._connection.writeNamedPipe(self._tree, self._file, data)

    def abort(self) -> None:
        """Shut the socket down: a thread blocked in a read returns at once."""
        with contextlib.suppress(Exception):
            sock = self._connection.getSMBServer().get_socket()
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._connection.close()


def _smb_error(exc: BaseException, options: SMBOptions) -> ConnectError:
    target = options.target
    text = str(exc)
    if "STATUS_LOGON_FAILURE" in text or "STATUS_ACCOUNT" in text:
        return AuthenticationError(
            f"{target}: logon failure for {options.username!r}", target=target
        )
    if "STATUS_ACCESS_DENIED" in text:
        return AuthenticationError(f"{target}: access denied to the pipe", target=target)
    if "STATUS_OBJECT_NAME_NOT_FOUND" in text or "STATUS_NO_SUCH_FILE" in text:
        return ConnectError(
            f"{target}: the pipe does not exist: the aiopushy pipe service is not installed "
            "or not running on that host",
            target=target,
        )
    if isinstance(exc, OSError):
        return network_error(exc, target, options.host)
    return ConnectError(f"{target}: {text}", target=target)


class _ThreadReceive(ByteReceiveStream):
    def __init__(self, read: Callable[[int], bytes], limiter: anyio.CapacityLimiter) -> None:
        self._read = read
        self._limiter = limiter

    async def receive(self, max_bytes: int = READ_SIZE) -> bytes:
        try:
            data = await anyio.to_thread.run_sync(self._read, max_bytes, limiter=self._limiter)
        except Exception as exc:
            raise anyio.BrokenResourceError from exc
        if not data:
            raise anyio.EndOfStream
        return data

    async def aclose(self) -> None:
        pass


class _ThreadSend(ByteSendStream):
    def __init__(self, write: Callable[[bytes], None], limiter: anyio.CapacityLimiter) -> None:
        self._write = write
        self._limiter = limiter
        self._lock = asyncio.Lock()  # one write at a time, frames never interleave

    async def send(self, item: bytes) -> None:
        async with self._lock:
            try:
                await anyio.to_thread.run_sync(self._write, bytes(item), limiter=self._limiter)
            except Exception as exc:
                raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        pass


class SMBTransport(BaseTransport):
    """A session over two opens of a named pipe."""

    def __init__(self, options: SMBOptions, to_remote: _PipeEnd, from_remote: _PipeEnd) -> None:
        self.options = options
        self.address = options.host
        self._ends = (to_remote, from_remote)
        limiter = anyio.CapacityLimiter(2)  # one reader, one writer: never the shared pool
        self.stdin = _ThreadSend(to_remote.write, limiter)
        self.stdout = _ThreadReceive(from_remote.read, limiter)
        self.stderr = EmptyReceiveStream()

    def kill(self) -> None:
        """Drop both connections at once."""
        for end in self._ends:
            end.abort()

    async def aclose(self) -> None:
        """Close both pipe opens; the server ends the interpreter."""
        self.kill()


async def Popen(
    command: Sequence[str],
    address: str,
    username: str | None = None,
    password: str | None = None,
    domain: str = "",
    **kwargs: Any,
) -> SMBTransport:
    """Open the pipe on ``address`` (``HOST``, ``\\\\HOST`` or ``\\\\HOST\\pipe\\NAME``).

    Args:
        command: ignored: the pipe server starts the interpreter.
        address: the host, in UNC notation or bare.
        username: the login (``DOMAIN\\user`` is split); empty for a guest login.
        password: its password.
        domain: the Windows domain.
        **kwargs: ``port`` (445), ``pipe`` (``"aiopushy"``), ``hashes``
            (``"lmhash:nthash"`` instead of a password), ``kerberos``, ``timeout``
            (seconds for each SMB operation, default 120).

    Raises:
        ConnectError: or ``AuthenticationError``, ``ConnectTimeout``, ...
    """
    try:
        import impacket  # noqa: F401
    except ImportError as exc:
        raise ConnectError("the smb transport needs impacket: pip install aiopushy[smb]") from exc
    options = make_options(address, username, password, domain, **kwargs)
    session_id = _pipeproto.new_session_id()
    ends: list[_PipeEnd] = []
    try:
        for role in (_pipeproto.TO_REMOTE, _pipeproto.FROM_REMOTE):
            end = await anyio.to_thread.run_sync(_PipeEnd, options)
            ends.append(end)
            await anyio.to_thread.run_sync(end.write, _pipeproto.header(role, session_id))
    except BaseException as exc:
        for end in ends:
            end.abort()
        if isinstance(exc, Exception):
            raise _smb_error(exc, options) from exc
        raise
    return SMBTransport(options, ends[0], ends[1])
