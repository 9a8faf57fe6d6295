"""Small network facts shared by the servers."""

from __future__ import annotations

import ipaddress
import socket

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
