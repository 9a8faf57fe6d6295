"""``daemon`` -- a long-lived aiopushy server reached over TCP (optionally TLS).

``connect("daemon:host[:port]", token=..., ssl=...)``. The daemon already runs aiopushy,
so no bootstrap is sent (``command`` is ignored, as the seed says); the version handshake
still happens. Authentication (an HMAC challenge-response over a shared token, in both
directions, bound to the TLS channel when there is one) runs before anything is decoded
as a frame; every byte after it travels in records authenticated with keys from that
handshake (``_records``). Files are copied through the protocol, in chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl as ssl_module
from collections.abc import Sequence

import anyio
from anyio.abc import ByteReceiveStream

from .._auth import DEFAULT_PORT, LinkKeys, channel_binding, client_handshake, load_token
from .._records import RecordReader, RecordWriter
from ._neterrors import network_error
from ._sshcommon import parse_address
from ._streams import OpenedReaderStream, ReaderStream, SealedWriterStream, WriterStream
from .base import BaseTransport, EmptyReceiveStream

DEFAULT_PYTHON = "unused"
"""The daemon's own interpreter runs the session; ``python=`` has no meaning here."""

CLOSE_GRACE = 2.0


class DaemonTransport(BaseTransport):
    """A TCP (or TLS) connection to an aiopushy daemon."""

    needs_bootstrap = False
    ended_by = (
        "the daemon closed the connection (it does so when a record fails its check, as "
        "when someone on the path changed or injected data, or when a client stays "
        "silent past its heartbeat timeout; its log says which)"
    )

    def __init__(
        self,
        address: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keys: LinkKeys | None,
    ) -> None:
        self.address = address
        self._writer = writer
        if keys is None:  # a server without a token: no keys, no records
            self.stdin: WriterStream = WriterStream(writer)
            self.stdout: ByteReceiveStream = ReaderStream(reader)
        else:
            self.stdin = SealedWriterStream(writer, RecordWriter(keys.sending))
            records = RecordReader(keys.receiving)
            self.stdout = OpenedReaderStream(ReaderStream(reader), records, f"daemon:{address}")
        self.stderr = EmptyReceiveStream()

    def kill(self) -> None:
        """Drop the connection at once."""
        with contextlib.suppress(OSError, RuntimeError):
            self._writer.transport.abort()

    async def aclose(self) -> None:
        """Close the connection; the daemon frees this client's objects."""
        self._writer.close()
        with contextlib.suppress(OSError, ssl_module.SSLError), anyio.move_on_after(CLOSE_GRACE):
            await self._writer.wait_closed()


async def Popen(
    command: Sequence[str],
    address: str,
    port: int | None = None,
    *,
    token: str | bytes | None = None,
    token_file: str | os.PathLike[str] | None = None,
    ssl: ssl_module.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    connect_timeout: float | None = None,
) -> DaemonTransport:
    """Connect to the daemon at ``address`` (``host`` or ``host:port``).

    Args:
        command: ignored: the daemon's interpreter is already running.
        address: the daemon's host, optionally with ``:port``.
        port: the port (default ``DEFAULT_PORT``, 10101) unless the address has one.
        token: the shared secret (default: ``token_file``, then ``$AIOPUSHY_TOKEN``).
        token_file: a file holding the token (must not be readable by others).
        ssl: ``True`` for TLS with the system's CAs, or an ``ssl.SSLContext``.
        server_hostname: the name to check the server certificate against.
        connect_timeout: seconds for the TCP, TLS and authentication handshakes.

    Raises:
        ConnectError: or a subclass naming the cause (``AuthenticationError``, ...).
    """
    parsed = parse_address(address)
    if parsed.username:
        raise ValueError(f"daemon address {address!r} cannot name a user")
    host, port = parsed.host, port or parsed.port or DEFAULT_PORT
    target = f"daemon:{host}:{port}"
    secret = load_token(token, token_file)
    context = ssl_module.create_default_context() if ssl is True else (ssl or None)
    try:
        with anyio.fail_after(connect_timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=context, server_hostname=server_hostname if context else None
            )
            binding = channel_binding(writer.get_extra_info("ssl_object"))
            try:
                keys = await client_handshake(reader, writer, secret, target, binding)
            except BaseException:
                writer.close()
                raise
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
        raise network_error(exc, target, host) from exc
    return DaemonTransport(f"{host}:{port}", reader, writer, keys)


__all__ = ["DEFAULT_PORT", "DaemonTransport", "Popen"]
