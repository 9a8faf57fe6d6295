"""anyio byte streams over the reader/writer pairs that asyncio and asyncssh hand out."""

from __future__ import annotations

import contextlib
from typing import Protocol

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream


class Reader(Protocol):
    """What ``asyncio.StreamReader`` and ``asyncssh.SSHReader`` have in common."""

    async def read(self, n: int = ...) -> bytes:  # pragma: no cover - protocol
        """Up to ``n`` bytes; ``b""`` at the end."""
        ...


class Writer(Protocol):
    """What ``asyncio.StreamWriter`` and ``asyncssh.SSHWriter`` have in common."""

    def write(self, data: bytes) -> None:  # pragma: no cover - protocol
        """Queue ``data``."""

    async def drain(self) -> None:  # pragma: no cover - protocol
        """Wait while the queue is full."""

    def write_eof(self) -> None:  # pragma: no cover - protocol
        """Signal the end of input."""


class ReaderStream(ByteReceiveStream):
    """A ``Reader`` as an anyio byte stream."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader

    async def receive(self, max_bytes: int = 262144) -> bytes:
        """Bytes as soon as some are available; ``anyio.EndOfStream`` at the end."""
        try:
            data = await self._reader.read(max_bytes)
        except (ConnectionError, OSError) as exc:
            raise anyio.BrokenResourceError from exc
        if not data:
            raise anyio.EndOfStream
        return data

    async def aclose(self) -> None:
        """Nothing to do: the transport closes the channel or pipe."""


class WriterStream(ByteSendStream):
    """A ``Writer`` as an anyio byte stream.

    ``send`` queues all bytes before its first suspension point, so frames written by
    concurrent tasks never interleave.
    """

    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    async def send(self, item: bytes) -> None:
        """Write ``item`` and wait while the peer is not keeping up."""
        try:
            self._writer.write(item)
            await self._writer.drain()
        except (ConnectionError, OSError, RuntimeError) as exc:
            raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        """Signal the end of input (the remote interpreter then exits)."""
        with contextlib.suppress(OSError, RuntimeError, AttributeError):
            self._writer.write_eof()
