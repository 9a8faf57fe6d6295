"""Small network facts shared by the servers."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Iterable
from typing import Any

import anyio


def loopback_addresses(host: str) -> list[str] | None:
    """The addresses ``host`` resolves to, if every one of them is a loopback address
    (127.0.0.0/8, ``::1``); ``None`` if any is not, or it does not resolve.

    A name is judged by what it resolves to, not by what it says: a ``localhost`` that
    the resolver maps to another address is not loopback. Servers bind to the addresses
    returned, so what they listen on is what was judged.
    """
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    try:
        loopback = all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)
    except ValueError:
        return None
    return addresses if addresses and loopback else None


async def loopback_binding(host: str, port: int) -> list[str]:
    """The addresses a server that must stay on loopback binds to for ``host``: those it
    resolves to (with ``port`` 0, only the first, so that all clients find one port).

    Raises:
        ValueError: ``host`` does not resolve, or not only to loopback addresses.
    """
    addresses = await anyio.to_thread.run_sync(loopback_addresses, host)
    if addresses is None:
        raise ValueError(
            f"{host!r} must resolve to loopback addresses only (127.0.0.0/8, ::1) here"
        )
    return addresses if port else addresses[:1]


class QuietLog:
    """A logger's warnings, at most one per ``interval`` seconds for each kind of event;
    the next one says how many were left out. Whatever a client does, the log grows
    by a line per interval and kind, not by a line per connection."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def report(self, kind: str, message: str, *args: object) -> None:
        """Log ``message % args`` unless an event of ``kind`` was logged lately."""
        now = time.monotonic()
        if now - self._last.get(kind, -self._interval) < self._interval:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return
        self._last[kind] = now
        skipped = self._skipped.pop(kind, 0)
        if skipped:
            message += f" ({skipped} more like this in the last {self._interval:g} s)"
        self._logger.warning(message, *args)


def raise_file_limit(needed: int) -> int:
    """Raise this process's soft limit on open files towards ``needed`` (at most to the
    hard limit); the soft limit in effect (``needed`` where there is no such limit)."""
    try:
        import resource
    except ImportError:  # Windows
        return needed
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return needed if soft == resource.RLIM_INFINITY else int(soft)


def quiet_accept_errors(
    loop: asyncio.AbstractEventLoop, sockets: Iterable[Any], log: QuietLog
) -> None:
    """Have ``loop`` report running out of file descriptors in ``accept()`` on these
    listening sockets as one rate-limited warning, not a traceback a second (asyncio
    stops accepting for a second each time; connections wait in the kernel's queue)."""
    ours = {sock.fileno() for sock in sockets}
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        sock = context.get("socket")
        message = str(context.get("message", ""))
        if message.startswith("socket.accept() out of system resource") and (
            sock is not None and sock.fileno() in ours
        ):
            log.report("accept", "cannot accept connections: %s", context.get("exception"))
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
