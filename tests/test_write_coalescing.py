"""The writes of one event-loop turn are coalesced (``WriterStream``): the first message
goes out at once, the rest in growing batches, in order, and nothing held is lost."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from asyncio.streams import FlowControlMixin
from typing import Any

import anyio
import pytest

import aiopushy as pushy
from aiopushy.transport._streams import WriterStream

pytestmark = pytest.mark.anyio


class RecordingWriter:
    """A ``Writer`` that keeps what it is given (``fail_on``: the write that raises)."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.writes: list[bytes] = []
        self.eof = False
        self.fail_on = fail_on

    def write(self, data: bytes) -> None:
        if self.fail_on is not None and len(self.writes) + 1 >= self.fail_on:
            raise BrokenPipeError("the pipe broke")
        self.writes.append(data)

    async def drain(self) -> None:
        pass

    def write_eof(self) -> None:
        self.eof = True


def _message(number: int) -> bytes:
    return b"message %04d;" % number


async def test_one_turn_goes_out_in_growing_batches() -> None:
    writer = RecordingWriter()
    stream = WriterStream(writer)
    for number in range(100):
        stream.write_nowait([_message(number)])
    # The first at once, then 1, 2, 4 ... 32; the other 36 wait for the end of the turn.
    assert [len(w) // 13 for w in writer.writes] == [1, 1, 2, 4, 8, 16, 32]
    await asyncio.sleep(0)
    assert [len(w) // 13 for w in writer.writes] == [1, 1, 2, 4, 8, 16, 32, 36]
    assert b"".join(writer.writes) == b"".join(_message(n) for n in range(100))
    stream.write_nowait([b"alone"])  # a new turn: out at once
    assert writer.writes[-1] == b"alone"


async def test_input_starts_a_new_burst() -> None:
    """A request written after an answer came goes out at once; one written again
    before any input waits for the end of the turn."""
    writer = RecordingWriter()
    stream = WriterStream(writer)
    stream.write_nowait([b"one"])
    stream.new_burst()  # what the session does when input arrives
    stream.write_nowait([b"two"])
    assert writer.writes == [b"one", b"two"]
    stream.write_nowait([b"three"])
    stream.new_burst()  # held bytes keep their burst until the end of the turn
    stream.write_nowait([b"four"])
    assert writer.writes == [b"one", b"two", b"three"]  # the first held pass on at once
    await asyncio.sleep(0)
    assert writer.writes == [b"one", b"two", b"three", b"four"]
    stream.write_nowait([b"five"])
    assert writer.writes[-1] == b"five"


async def test_batches_stop_growing_and_large_messages_are_not_copied() -> None:
    writer = RecordingWriter()
    stream = WriterStream(writer)
    for number in range(300):
        stream.write_nowait([_message(number)])
    assert max(len(w) // 13 for w in writer.writes) == WriterStream.COALESCE_MESSAGES
    large = bytes(WriterStream.COALESCE_BYTES)
    held = len(writer.writes)
    stream.write_nowait([b"header", large])
    assert writer.writes[-1] is large  # passed on as it is, after what was held
    assert writer.writes[-2] == b"header"
    assert len(writer.writes) == held + 3  # the held messages, joined, came first
    await asyncio.sleep(0)
    data = b"".join(w for w in writer.writes if w is not large)
    assert data == b"".join(_message(n) for n in range(300)) + b"header"


async def test_closing_passes_on_what_is_held() -> None:
    writer = RecordingWriter()
    stream = WriterStream(writer)
    stream.write_nowait([b"first"])
    stream.write_nowait([b"second"])
    stream.write_nowait([b"third"])
    await stream.aclose()
    assert b"".join(writer.writes) == b"firstsecondthird"
    assert writer.eof


async def test_a_failure_on_held_bytes_is_reported_and_raised_again() -> None:
    writer = RecordingWriter(fail_on=3)
    stream = WriterStream(writer)
    errors: list[BaseException] = []
    stream.on_error = errors.append
    for number in range(3):  # 0 and 1 are written, 2 is held
        stream.write_nowait([_message(number)])
    assert errors == []
    await asyncio.sleep(0)
    assert len(errors) == 1
    with pytest.raises(anyio.BrokenResourceError):
        stream.write_nowait([b"later"])


async def test_calls_from_many_tasks_reach_the_remote_in_few_reads(conn: pushy.Session) -> None:
    """500 tasks each send a call in one turn; the remote reads them in a few reads."""
    pid = conn.info["pid"]
    before = await conn.remote_statistics()
    with anyio.fail_after(20):
        pids = await asyncio.gather(*(conn.modules.os.getpid() for _ in range(500)))
    after = await conn.remote_statistics()
    assert pids == [pid] * 500
    # One write at once, batches of 1, 2 ... 32, six of 64 (3.3 kB: under PIPE_BUF, so
    # no read splits one), the other 52 at the end of the turn: 14 writes.
    reads = after["reads"] - before["reads"] - 1  # the second statistics request
    assert reads <= 14, reads


async def test_a_failed_held_write_ends_the_session_at_once(conn: pushy.Session) -> None:
    """Fault injection: the pipe breaks under held requests. The session ends with
    ``ConnectionLost`` at once, not after the heartbeat's 20 s."""
    stdin = conn.transport.stdin
    assert isinstance(stdin, WriterStream)
    real: Any = stdin._writer

    class Breaking:
        calls = 0

        def write(self, data: bytes) -> None:
            Breaking.calls += 1
            if Breaking.calls > 1:
                raise BrokenPipeError("the pipe broke")
            real.write(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    stdin._writer = Breaking()
    with anyio.fail_after(5):  # every call's failure retrieved: none is left unseen
        outcomes = await asyncio.gather(
            *(conn.modules.time.sleep(0) for _ in range(3)), return_exceptions=True
        )
    # The first request went out before the pipe broke: its answer may have come first.
    assert outcomes[0] is None or isinstance(outcomes[0], pushy.ConnectionLost)
    assert [type(outcome) for outcome in outcomes[1:]] == [pushy.ConnectionLost] * 2
    assert conn.closed


class _PipeReader:
    """The read end of a real pipe, drained by a thread (slowly, if asked)."""

    def __init__(self, fd: int, pause: float = 0.0) -> None:
        self.data = bytearray()
        self._fd, self._pause = fd, pause
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while chunk := os.read(self._fd, 256 * 1024):
            self.data += chunk
            time.sleep(self._pause)
        os.close(self._fd)

    async def join(self) -> bytes:
        """Everything read, once the write end is closed (the loop closes it)."""
        await asyncio.to_thread(self._thread.join, 10)
        assert not self._thread.is_alive()
        return bytes(self.data)


async def _pipe_stream(pause: float = 0.0) -> tuple[WriterStream, _PipeReader]:
    read_fd, write_fd = os.pipe()
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        FlowControlMixin, os.fdopen(write_fd, "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return WriterStream(writer), _PipeReader(read_fd, pause)


async def test_a_large_message_is_streamed_and_others_follow_it() -> None:
    """Over a real pipe: the transport never holds much more than a slice of the large
    message, and messages written meanwhile arrive after it, in order."""
    stream, reader = await _pipe_stream(pause=0.001)
    if not stream._streams:
        await stream.aclose()
        await reader.join()
        pytest.skip("only asyncio's own transports are streamed to (not uvloop's)")
    large = os.urandom(8 * WriterStream.STREAMED_BYTES + 5)
    most_buffered = 0

    async def watch() -> None:
        nonlocal most_buffered
        while True:
            most_buffered = max(most_buffered, stream._transport.get_write_buffer_size())
            await asyncio.sleep(0)

    watcher = asyncio.ensure_future(watch())
    sending = asyncio.ensure_future(stream.send_pieces([b"<", large]))
    await asyncio.sleep(0.005)
    assert not sending.done()
    for number in range(3):
        stream.write_nowait([_message(number)])  # held until the large one is through
    with anyio.fail_after(10):
        await sending
    watcher.cancel()
    await stream.aclose()
    assert await reader.join() == b"<" + large + b"".join(_message(n) for n in range(3))
    # A slice, plus what the transport may still hold when drain lets the next one go
    # (at most its high-water mark); without streaming it would hold about 8 MiB.
    _, high_water = stream._transport.get_write_buffer_limits()
    assert most_buffered <= WriterStream.STREAMED_BYTES + high_water


async def test_a_cancelled_large_message_is_still_written_whole() -> None:
    stream, reader = await _pipe_stream(pause=0.001)
    large = os.urandom(8 * WriterStream.STREAMED_BYTES)
    sending = asyncio.ensure_future(stream.send_pieces([large]))
    await asyncio.sleep(0.005)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    await stream.send_pieces([b"after"])  # held behind the rest of the large one
    with anyio.fail_after(10):
        while stream._streaming:
            await asyncio.sleep(0.01)
        await stream.drain()
    await stream.aclose()
    assert await reader.join() == large + b"after"


async def test_a_large_argument_after_a_cancelled_one(conn: pushy.Session) -> None:
    """The session stays usable when a large argument's sender is cancelled halfway."""
    blob = os.urandom(48 * 1024 * 1024)
    call = asyncio.ensure_future(conn.modules.builtins.len(blob))
    await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    with anyio.fail_after(30):
        assert await conn.modules.builtins.len(blob[:1000]) == 1000
        assert await conn.modules.builtins.len(blob) == len(blob)
