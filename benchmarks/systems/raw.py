"""The far ends of the raw baselines the peers family holds every system against.

* ``BulkChild``: the raw bulk baselines on asyncio pipes, a child running ``BULK_CHILD``
  in ``sink`` (length answered), ``back`` (sent back once whole) or ``cat`` mode;
* ``pipelined_ping_pong``: every ping written to ``core``'s echo loop at once, then every
  answer read;
* ``BlockingEcho`` and ``BlockingSink``: ``core``'s echo loop and the bulk sink driven
  with blocking ``os.read``/``os.write`` on ``subprocess.Popen`` pipes (these block: run
  them in a worker thread).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

from ..core import ECHO_LOOP, EXIT_GRACE, PING, PIPES, BenchmarkError, EchoChild, finish

#: The remote side of the raw bulk baselines: ``sink`` answers the length of each
#: length-prefixed message, ``back`` sends it back once whole, ``cat`` echoes as it reads.
BULK_CHILD = """\
import sys
mode = sys.argv[1]
source = open(0, "rb", buffering=0, closefd=False)
sink = open(1, "wb", buffering=0, closefd=False)
def read_into(view):
    got = 0
    while got < len(view):
        n = source.readinto(view[got:])
        if not n:
            raise SystemExit(0)
        got += n
def write_all(view):
    while len(view):
        view = view[sink.write(view):]
header = bytearray(8)
chunk = memoryview(bytearray(1 << 20))
while True:
    read_into(memoryview(header))
    size = int.from_bytes(header, "big")
    if mode == "cat":
        left = size
        while left:
            n = source.readinto(chunk[: min(left, len(chunk))])
            if not n:
                raise SystemExit(1)
            write_all(chunk[:n])
            left -= n
    else:
        data = memoryview(bytearray(size))
        read_into(data)
        write_all(memoryview(size.to_bytes(8, "big")) if mode == "sink" else data)
"""


class BulkChild:
    """A raw bulk baseline: ``python -c BULK_CHILD mode`` on asyncio pipes."""

    def __init__(self, process: asyncio.subprocess.Process, mode: str) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process, self.mode = process, mode
        self.writer, self.reader = process.stdin, process.stdout

    @classmethod
    async def start(cls, python: str, mode: str) -> BulkChild:
        process = await asyncio.create_subprocess_exec(python, "-c", BULK_CHILD, mode, **PIPES)
        return cls(process, mode)

    async def transfer(self, blob: bytes) -> float:
        """Seconds to move ``blob`` as this mode does."""
        size = len(blob)
        start = time.perf_counter()
        self.writer.write(size.to_bytes(8, "big"))
        self.writer.write(blob)
        if self.mode == "cat":
            drained = asyncio.ensure_future(self.writer.drain())
            back = await self.reader.readexactly(size)
            await drained
        else:
            await self.writer.drain()
            back = await self.reader.readexactly(8 if self.mode == "sink" else size)
        elapsed = time.perf_counter() - start
        if back != (size.to_bytes(8, "big") if self.mode == "sink" else blob):
            raise BenchmarkError(f"the {self.mode} child answered wrongly")
        return elapsed

    async def close(self) -> None:
        await finish(self.process)


async def pipelined_ping_pong(echo: EchoChild, count: int) -> float:
    """Seconds to write ``count`` pings to the echo loop at once and read every answer."""
    start = time.perf_counter()
    echo.writer.write(PING * count)
    drained = asyncio.ensure_future(echo.writer.drain())
    replies = await echo.reader.readexactly(len(PING) * count)
    await drained
    elapsed = time.perf_counter() - start
    if replies != PING * count:
        raise BenchmarkError("the echo loop answered wrongly")
    return elapsed


# -- the raw blocking baseline -----------------------------------------------------------


class BlockingChild:
    """A child with piped standard streams, talked to with blocking ``os.read``/``os.write``."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            bufsize=0,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.out, self.into = self.process.stdin.fileno(), self.process.stdout.fileno()

    def read_exactly(self, size: int, what: str) -> bytes:
        """``size`` bytes from the child's stdout; ``BenchmarkError`` if it ends first."""
        data = b""
        while len(data) < size:
            chunk = os.read(self.into, size - len(data))
            if not chunk:
                raise BenchmarkError(f"the {what} went away")
            data += chunk
        return data

    def close(self) -> None:
        try:
            self.process.communicate(timeout=EXIT_GRACE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()


class BlockingEcho(BlockingChild):
    """The raw ping-pong of ``core`` with blocking I/O: ``subprocess.Popen`` of the same
    echo loop, ``os.write``/``os.read`` on its pipes."""

    def __init__(self, python: str) -> None:
        super().__init__([python, "-c", ECHO_LOOP])

    def round_trips(self, count: int) -> float:
        """Mean seconds per round trip over ``count`` sequential round trips."""
        size = len(PING)
        start = time.perf_counter()
        for _ in range(count):
            os.write(self.out, PING)
            reply = self.read_exactly(size, "blocking echo loop")
            if reply != PING:
                raise BenchmarkError(f"the echo loop answered {reply!r}")
        return (time.perf_counter() - start) / count


class BlockingSink(BlockingChild):
    """The raw bulk baseline with blocking I/O: a child (``BULK_CHILD`` in ``sink``
    mode) reads a length-prefixed message and answers its length."""

    def __init__(self, python: str) -> None:
        super().__init__([python, "-c", BULK_CHILD, "sink"])

    def transfer(self, blob: bytes) -> float:
        """Seconds to write ``blob`` (with its length) and read the length back."""
        header = len(blob).to_bytes(8, "big")
        start = time.perf_counter()
        os.write(self.out, header)
        view = memoryview(blob)
        while view:
            view = view[os.write(self.out, view) :]
        reply = self.read_exactly(8, "blocking sink")
        elapsed = time.perf_counter() - start
        if reply != header:
            raise BenchmarkError(f"the sink answered {reply!r}")
        return elapsed
