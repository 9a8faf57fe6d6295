"""File copy through the protocol, for transports without a copy of their own.

Files move in ``CHUNK``-sized pieces with up to ``WINDOW`` requests in flight, so copies
stream at link speed while neither side holds more than ``WINDOW * CHUNK`` bytes.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from ._protocol import messages as m

CHUNK = 1024 * 1024
WINDOW = 4

Request = Callable[[int, tuple[Any, ...]], Awaitable[Any]]


def _cancel(inflight: collections.deque[asyncio.Future[Any]]) -> None:
    for future in inflight:
        future.cancel()


async def put(request: Request, local_path: str, remote_path: str) -> None:
    """Copy local file ``local_path`` to ``remote_path`` on the remote host."""
    inflight: collections.deque[asyncio.Future[Any]] = collections.deque()
    async with await anyio.open_file(local_path, "rb") as source:
        chunk = await source.read(CHUNK)
        await request(m.OP_WRITE_FILE, (remote_path, 0, chunk, True))
        offset = len(chunk)
        try:
            while chunk := await source.read(CHUNK):
                args = (remote_path, offset, chunk, False)
                inflight.append(asyncio.ensure_future(request(m.OP_WRITE_FILE, args)))
                offset += len(chunk)
                if len(inflight) >= WINDOW:
                    await inflight.popleft()
            while inflight:
                await inflight.popleft()
        finally:
            _cancel(inflight)


async def get(request: Request, remote_path: str, local_path: str) -> None:
    """Copy ``remote_path`` on the remote host to local file ``local_path``."""
    inflight: collections.deque[asyncio.Future[Any]] = collections.deque()
    offset = 0
    async with await anyio.open_file(local_path, "wb") as target:
        try:
            while True:
                while len(inflight) < WINDOW:
                    args = (remote_path, offset, CHUNK)
                    inflight.append(asyncio.ensure_future(request(m.OP_READ_FILE, args)))
                    offset += CHUNK
                chunk = await inflight.popleft()
                await target.write(chunk)
                if len(chunk) < CHUNK:
                    return
        finally:
            _cancel(inflight)
