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
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream

from .. import _pipeproto
from .._auth import blocking_client_handshake, load_token
from .._exceptions import AuthenticationError, ConnectError
from ._neterrors import network_error
from .base import BaseTransport, EmptyReceiveStream, reject_unknown_options

DEFAULT_PORT = 445
DEFAULT_PIPE = "aiopushy"
DEFAULT_PYTHON = "unused"
"""The pipe server chooses the interpreter; ``python=`` has no meaning here."""

READ_SIZE = 65536
READ_TIMEOUT = 3600

_NOT_FOUND = (
    "STATUS_OBJECT_NAME_NOT_FOUND",
    "STATUS_OBJECT_PATH_NOT_FOUND",
    "STATUS_NO_SUCH_FILE",
)


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
    connect_timeout: float = 30.0
    share: str | None = None

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
    reject_unknown_options("smb", kwargs, ("port", "kerberos", "connect_timeout", "share"))
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


def _login(options: SMBOptions) -> Any:
    """A new, logged-in ``SMBConnection`` (blocking)."""
    from impacket.smbconnection import SMBConnection

    connection = SMBConnection(
        options.host,
        options.host,
        sess_port=options.port,
        timeout=max(1, int(options.connect_timeout)),
    )
    try:
        login = connection.kerberosLogin if options.kerberos else connection.login
        login(options.username, options.password, options.domain, options.lmhash, options.nthash)
    except BaseException:
        with contextlib.suppress(Exception):
            connection.close()
        raise
    return connection


class _Guarded:
    """An SMB connection that ``abort`` may end from any thread, while another is blocked
    in a call on it.

    ``abort`` shuts the socket down, which wakes that call, and the connection is closed
    by whichever of them finishes last. Closing the socket under a blocked read would
    leave the read waiting, and its descriptor, reused by the next connection opened,
    read by the wrong thread.
    """

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self._lock = threading.Lock()
        self._users = 0  # threads inside a call on the connection
        self._aborted = False
        self._closed = False

    def use(self, call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args)``, unless the connection was aborted (``BrokenPipeError``)."""
        with self._lock:
            if self._aborted:
                raise BrokenPipeError("the pipe was closed")
            self._users += 1
        try:
            return call(*args)
        finally:
            with self._lock:
                self._users -= 1
                last = self._aborted and not self._users
            if last:
                self._close()

    def abort(self) -> None:
        """Shut the socket down at once; close the connection now, or after the last
        call still running."""
        with contextlib.suppress(Exception):
            sock = self.connection.getSMBServer().get_socket()
            sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._aborted = True
            last = not self._users
        if last:
            self._close()

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(Exception):
            self.connection.close()


class _PipeEnd:
    """One open of the named pipe, on an SMB connection of its own (blocking calls)."""

    def __init__(self, options: SMBOptions) -> None:
        from impacket.smb3structs import (
            FILE_READ_DATA,
            FILE_SHARE_READ,
            FILE_SHARE_WRITE,
            FILE_WRITE_DATA,
        )

        self._guarded = _Guarded(_login(options))
        connection = self._guarded.connection
        try:
            self._tree = connection.connectTree("IPC$")
            self._file = connection.openFile(
                self._tree,
                "\\" + options.pipe,
                desiredAccess=FILE_READ_DATA | FILE_WRITE_DATA,
                shareMode=FILE_SHARE_READ | FILE_SHARE_WRITE,
            )
            # A pipe read pends until data comes; heartbeats bring some every few
            # seconds, and a timed-out read would leave the connection unusable.
            connection.setTimeout(READ_TIMEOUT)
        except BaseException:
            self.abort()
            raise

    def read(self, size: int) -> bytes:
        guarded = self._guarded
        data: bytes = guarded.use(guarded.connection.readNamedPipe, self._tree, self._file, size)
        return data

    def read_exactly(self, size: int) -> bytes:
        """``size`` bytes, or fewer only if the pipe ended."""
        data = b""
        while len(data) < size:
            chunk = self.read(size - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def greet(self, token: bytes | None, header: bytes, target: str) -> None:
        """Pass the pipe server's gate (the token handshake), then say which half of
        which session this open is."""
        blocking_client_handshake(self.read_exactly, self.write, token, target)
        self.write(header)

    def write(self, data: bytes) -> None:
        guarded = self._guarded
        guarded.use(guarded.connection.writeNamedPipe, self._tree, self._file, data)

    def abort(self) -> None:
        """End the connection at once, from any thread (see ``_Guarded``)."""
        self._guarded.abort()


def _smb_error(exc: BaseException, options: SMBOptions) -> ConnectError:
    target = options.target
    text = str(exc)
    if "STATUS_LOGON_FAILURE" in text or "STATUS_ACCOUNT" in text:
        return AuthenticationError(
            f"{target}: logon failure for {options.username!r}", target=target
        )
    if "STATUS_ACCESS_DENIED" in text:
        return AuthenticationError(f"{target}: access denied to the pipe", target=target)
    if "STATUS_PIPE_DISCONNECTED" in text or "STATUS_PIPE_BROKEN" in text:
        return AuthenticationError(
            f"{target}: the pipe server hung up at once: it does not admit "
            f"{options.username or 'this user'!r} (in Samba mode it admits only its "
            "allowed users), or it is failing (see its log)",
            target=target,
        )
    if any(status in text for status in _NOT_FOUND):
        return ConnectError(
            f"{target}: the pipe does not exist: the aiopushy pipe service is not installed "
            "or not running on that host",
            target=target,
        )
    if isinstance(exc, OSError | TimeoutError) or type(exc).__name__ == "NetBIOSTimeout":
        return network_error(
            exc if isinstance(exc, OSError) else TimeoutError(), target, options.host
        )
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


def _copy_through_share(options: SMBOptions, put: bool, local_path: str, path: str) -> None:
    """Stream a file to or from ``path`` inside ``options.share`` (blocking)."""
    assert options.share is not None
    connection = _login(options)
    try:
        if put:
            with open(local_path, "rb") as source:
                connection.putFile(options.share, path, source.read)
        else:
            with open(local_path, "wb") as target:
                connection.getFile(options.share, path, target.write)
    except Exception as exc:
        text = str(exc)
        if any(status in text for status in _NOT_FOUND):
            raise FileNotFoundError(2, f"no {path} on share {options.share}", path) from exc
        if "STATUS_ACCESS_DENIED" in text or "STATUS_BAD_NETWORK_NAME" in text:
            raise PermissionError(13, f"share {options.share}: {text}", path) from exc
        raise
    finally:
        with contextlib.suppress(Exception):
            connection.close()


class SMBTransport(BaseTransport):
    """A session over two opens of a named pipe.

    With ``share=`` given, ``getfile``/``putfile`` stream through that SMB file share
    (remote paths are then paths inside the share); otherwise through the protocol.
    """

    def __init__(self, options: SMBOptions, to_remote: _PipeEnd, from_remote: _PipeEnd) -> None:
        self.options = options
        self.native_file_copy = options.share is not None
        self.address = options.host
        self._ends = (to_remote, from_remote)
        limiter = anyio.CapacityLimiter(2)  # one reader, one writer: never the shared pool
        self.stdin = _ThreadSend(to_remote.write, limiter)
        self.stdout = _ThreadReceive(from_remote.read, limiter)
        self.stderr = EmptyReceiveStream()

    async def getfile(self, remote_path: str, local_path: str) -> None:
        """Copy ``remote_path`` (inside the share) here, streaming."""
        await anyio.to_thread.run_sync(
            _copy_through_share, self.options, False, local_path, remote_path
        )

    async def putfile(self, local_path: str, remote_path: str) -> None:
        """Copy ``local_path`` to ``remote_path`` inside the share, streaming."""
        await anyio.to_thread.run_sync(
            _copy_through_share, self.options, True, local_path, remote_path
        )

    def kill(self) -> None:
        """Drop both connections at once."""
        for end in self._ends:
            end.abort()

    async def aclose(self) -> None:
        """Close both pipe opens; the server ends the interpreter."""
        self.kill()


async def _open_end(options: SMBOptions) -> _PipeEnd:
    """Open the pipe in a worker thread; if our caller gives up (``connect(timeout=)``),
    the thread finishes on its own (within ``connect_timeout``) and closes what it made."""
    abandoned = False

    def open_end() -> _PipeEnd:
        end = _PipeEnd(options)
        if abandoned:
            end.abort()
        return end

    try:
        return await anyio.to_thread.run_sync(open_end, abandon_on_cancel=True)
    except BaseException:
        abandoned = True
        raise


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
            (``"lmhash:nthash"`` instead of a password), ``kerberos``,
            ``connect_timeout`` (seconds for connecting and logging in, default 30),
            ``share`` (a file share for ``getfile``/``putfile``, such as ``"C$"``),
            ``token``/``token_file`` (what the pipe server's TCP side asks for, behind
            an SMB server that forwards pipe opens to it).

    Raises:
        ConnectError: or ``AuthenticationError``, ``ConnectTimeout``, ...
    """
    try:
        import impacket  # noqa: F401
    except ImportError as exc:
        raise ConnectError("the smb transport needs impacket: pip install aiopushy[smb]") from exc
    secret = load_token(kwargs.pop("token", None), kwargs.pop("token_file", None))
    options = make_options(address, username, password, domain, **kwargs)
    session_id = _pipeproto.new_session_id()
    ends: list[_PipeEnd] = []
    try:
        for role in (_pipeproto.TO_REMOTE, _pipeproto.FROM_REMOTE):
            end = await _open_end(options)
            ends.append(end)
            await anyio.to_thread.run_sync(
                end.greet, secret, _pipeproto.header(role, session_id), options.target
            )
    except BaseException as exc:
        for end in ends:
            end.abort()
        if isinstance(exc, Exception):
            raise _smb_error(exc, options) from exc
        raise
    return SMBTransport(options, ends[0], ends[1])
