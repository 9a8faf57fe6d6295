"""Socket-level failures as aiopushy errors, for the transports that open connections."""

from __future__ import annotations

import asyncio
import socket
import ssl

from .._exceptions import ConnectError, ConnectionRefused, ConnectTimeout, HostNotFoundError


def network_error(exc: BaseException, target: str, host: str) -> ConnectError:
    """The ``ConnectError`` subclass for a failed connect to ``host``."""
    if isinstance(exc, socket.gaierror):
        return HostNotFoundError(
            f"{target}: cannot resolve {host!r}: {exc.strerror}", target=target
        )
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionRefused(f"{target}: connection refused", target=target)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return ConnectTimeout(f"{target}: timed out connecting", target=target)
    if isinstance(exc, ssl.SSLError):
        return ConnectError(f"{target}: TLS handshake failed: {exc}", target=target)
    return ConnectError(f"{target}: {exc}", target=target)
