"""The remote's standard error: forwarded to an output handler, its tail kept for errors."""

from __future__ import annotations

import asyncio
import collections
import sys
from collections.abc import Callable

import anyio
from anyio.abc import ByteReceiveStream

OutputHandler = Callable[[str, bytes], None]
"""``handler(stream, data)``: ``stream`` is ``"stdout"`` or ``"stderr"``."""

#: Bytes of the remote's standard error kept for error messages.
STDERR_TAIL = 8192


def write_output(stream: str, data: bytes) -> None:
    """The default output handler: remote output goes to local stdout/stderr."""
    target = sys.stderr if stream == "stderr" else sys.stdout
    target.write(data.decode("utf-8", "replace"))
    target.flush()


class RemoteStderr:
    """Reads a remote's standard error, hands each piece to ``forward`` and keeps the
    last ``STDERR_TAIL`` bytes."""

    def __init__(self, forward: Callable[[str, bytes], None]) -> None:
        self._forward = forward
        self._tail: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._done = asyncio.Event()

    async def read(self, stream: ByteReceiveStream) -> None:
        """Read ``stream`` to its end (run as a task)."""
        try:
            while True:
                data = await stream.receive()
                self._tail.append(data)
                self._size += len(data)
                while self._size - len(self._tail[0]) >= STDERR_TAIL:
                    self._size -= len(self._tail.popleft())
                self._forward("stderr", data)
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            pass
        finally:
            self._done.set()

    async def ended(self) -> None:
        """Wait for the stream to end."""
        await self._done.wait()

    @property
    def tail(self) -> str:
        """The last few KiB read, as text."""
        return b"".join(self._tail)[-STDERR_TAIL:].decode("utf-8", "replace")
