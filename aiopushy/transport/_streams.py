"""anyio byte streams over the reader/writer pairs that asyncio and asyncssh hand out, and
a receive stream a protocol feeds, which can push its data to a consumer instead."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, cast

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream

from .._exceptions import ProtocolError
from .._records import RecordError, RecordReader, RecordWriter


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
    """A ``Writer`` as an anyio byte stream, which coalesces messages written in a burst.

    ``send`` queues all bytes before its first suspension point, so messages written by
    concurrent tasks never interleave; ``write_nowait`` queues them without a coroutine.

    The message that starts a burst goes to the writer at once. Messages after it are
    held, and passed on together each time the held ones number 1, 2, 4 ...
    ``COALESCE_MESSAGES`` (or reach ``COALESCE_BYTES``); what is still held is passed on
    at the end of the event-loop turn in which it was held, and that ends the burst.
    ``new_burst`` ends one too: the session calls it when input arrives, so a task that
    waited for an answer writes its next request at once, with nothing scheduled for a
    lone message. A thousand tasks that each send a request in one turn thus make a dozen
    writes instead of a thousand. Held bytes stay in order with everything written after
    them.

    A message of ``STREAMED_BYTES`` or more, sent with ``send_pieces`` to one of
    asyncio's own transports (not uvloop's), is passed on in slices of that size, each
    once the transport holds little of the one before (``drain``): the transport would
    otherwise copy all that the pipe does not take at once into a buffer of its own (63
    MiB of a 64 MiB argument).
    Messages written meanwhile are held, and follow it. If the sender is cancelled
    halfway, the rest of the message is still written (a message cut short would garble
    the stream), and the cancellation goes on.

    Attributes:
        on_error: called with the error when the writer fails on bytes held from an
            earlier call (the call itself has returned); later calls raise it too.
    """

    #: Held messages passed on together, at the most, and their bytes at the most.
    COALESCE_MESSAGES = 64
    COALESCE_BYTES = 256 * 1024
    #: Messages at least this large are streamed in slices of this size.
    STREAMED_BYTES = 1024 * 1024

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        # asyncio transports and asyncssh channels tell how much they still hold: nothing
        # held, nothing to drain.
        transport = getattr(writer, "transport", None) or getattr(writer, "channel", None)
        self._transport = transport if hasattr(transport, "get_write_buffer_size") else None
        # Messages may be written while the loop does not run (by the sync facade).
        self._loop = asyncio.get_running_loop()
        self._held: list[bytes] = []
        self._held_messages = 0
        self._held_bytes = 0
        self._batch = 0  # held messages to pass on at once; 0: no burst
        self._turn_end_due = False  # _end_turn is scheduled
        self._streaming = False  # a large message is being passed on in slices
        self._finishing: asyncio.Task[None] | None = None  # ... by a task of its own
        # Only asyncio's own transports take slices of a buffer (memoryviews) as they are.
        self._streams = isinstance(self._transport, asyncio.WriteTransport)
        self._error: BaseException | None = None
        self.on_error: Callable[[BaseException], None] | None = None

    async def send(self, item: bytes) -> None:
        """Write ``item`` and wait while the peer is not keeping up."""
        await self.send_pieces((item,))

    async def send_pieces(self, pieces: Sequence[bytes]) -> None:
        """Write the pieces in order (no other send comes between them), then wait while
        the peer is not keeping up; large data is passed on without being joined, and
        streamed in slices (see the class)."""
        if self._streams and not self._streaming and self._large(pieces):
            await self._stream(pieces)
        elif self.write_nowait(pieces):
            await self.drain()

    def _large(self, pieces: Sequence[bytes]) -> bool:
        return sum(map(len, pieces)) >= self.STREAMED_BYTES

    async def _stream(self, pieces: Sequence[bytes]) -> None:
        if self._error is not None:
            raise anyio.BrokenResourceError from self._error
        self._pass_on_held()
        self._streaming = True
        slices = self._slices(pieces)
        try:
            await self._pass_on_slices(slices)
        except asyncio.CancelledError:
            self._finishing = self._loop.create_task(self._finish(slices))
            raise
        except BaseException:
            self._streaming = False
            raise
        self._end_stream()

    def _slices(self, pieces: Sequence[bytes]) -> Iterator[bytes]:
        size = self.STREAMED_BYTES
        for piece in pieces:
            if len(piece) <= size:
                yield piece
            else:  # asyncio's transports take slices of it as they take bytes
                view = memoryview(piece)
                for start in range(0, len(view), size):
                    yield cast(bytes, view[start : start + size])

    async def _pass_on_slices(self, slices: Iterator[bytes]) -> None:
        for piece in slices:
            self._pass_on((piece,))
            if self.backlogged():
                await self.drain()

    async def _finish(self, slices: Iterator[bytes]) -> None:
        """The rest of a message whose sender was cancelled."""
        try:
            await self._pass_on_slices(slices)
        except (anyio.BrokenResourceError, asyncio.CancelledError) as exc:
            self._error = self._error or exc  # the stream is cut: nothing may follow
            self._streaming = False
            if self.on_error is not None:
                self.on_error(exc)
            return
        self._end_stream()

    def _end_stream(self) -> None:
        self._streaming = False
        self._finishing = None
        self._pass_on_held()  # what was written meanwhile

    def write_nowait(self, pieces: Sequence[bytes]) -> bool:
        """Queue the pieces of one message in order; whether the caller should now
        ``await drain()`` (``False`` when nothing waits in the writer's buffer).

        Raises:
            anyio.BrokenResourceError: the writer failed, now or on held bytes before.
        """
        self._queue(pieces)
        return self.backlogged()

    def write_if_clear(self, pieces: Sequence[bytes]) -> bool:
        """Queue the pieces of one message unless the writer has a backlog: whether it
        did. For a caller that wants no coroutine: where this declines, it uses
        ``write_nowait`` and ``drain``.

        Raises:
            anyio.BrokenResourceError: the writer failed, now or on held bytes before.
        """
        # A large frame comes as header and body (``frame_parts``); one piece is taken as is.
        if self.backlogged() or (len(pieces) > 1 and self._streams and self._large(pieces)):
            return False
        self._queue(pieces)
        return True

    def _queue(self, pieces: Sequence[bytes]) -> None:
        if self._error is not None:
            raise anyio.BrokenResourceError from self._error
        if self._streaming:  # after the message being streamed
            self._held += pieces
            return
        if self._batch == 0:  # the first message of a burst: out at once
            self._batch = 1
            self._pass_on(pieces)
            return
        if not self._turn_end_due:
            self._turn_end_due = True
            self._loop.call_soon(self._end_turn)
        size = sum(map(len, pieces))
        if size >= self.COALESCE_BYTES:  # large: passed on as it is, after the held
            self._pass_on_held()
            self._pass_on(pieces)
            return
        self._held += pieces
        self._held_messages += 1
        self._held_bytes += size
        if self._held_messages >= self._batch or self._held_bytes >= self.COALESCE_BYTES:
            self._batch = min(2 * self._batch, self.COALESCE_MESSAGES)
            self._pass_on_held()

    def backlogged(self) -> bool:
        """Whether the writer holds bytes the peer has not taken yet (``drain`` may
        wait); a writer that cannot tell counts as backlogged."""
        transport = self._transport
        return transport is None or transport.is_closing() or transport.get_write_buffer_size() > 0

    def new_burst(self) -> None:
        """End the burst, unless messages are held (they end it at the end of the turn):
        the next message goes out at once."""
        if not self._turn_end_due:
            self._batch = 0

    def _end_turn(self) -> None:
        self._batch = 0
        self._turn_end_due = False
        try:
            self._pass_on_held()
        except anyio.BrokenResourceError as exc:
            if self.on_error is not None:
                self.on_error(exc)

    def _pass_on_held(self) -> None:
        if self._held and not self._streaming:
            held, self._held = self._held, []
            self._held_messages = self._held_bytes = 0
            self._pass_on((b"".join(held),) if len(held) > 1 else held)

    def _pass_on(self, pieces: Iterable[bytes]) -> None:
        try:
            for piece in self._encoded(pieces):
                self._writer.write(piece)
        except (ConnectionError, OSError, RuntimeError) as exc:
            self._error = exc
            raise anyio.BrokenResourceError from exc

    def _encoded(self, pieces: Iterable[bytes]) -> Iterable[bytes]:
        """The bytes to write for ``pieces``: themselves (see ``SealedWriterStream``)."""
        return pieces

    async def drain(self) -> None:
        """Wait while the peer is not keeping up."""
        try:
            await self._writer.drain()
        except (ConnectionError, OSError, RuntimeError) as exc:
            raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        """Pass on what is held, then signal the end of input (the remote interpreter
        then exits)."""
        with contextlib.suppress(anyio.BrokenResourceError):
            self._pass_on_held()
        with contextlib.suppress(OSError, RuntimeError, AttributeError):
            self._writer.write_eof()


class FlowControl(Protocol):
    """What a stream's producer offers to stop and restart feeding it (asyncio's read
    transports)."""

    def pause_reading(self) -> None:  # pragma: no cover - protocol
        """Stop reading."""

    def resume_reading(self) -> None:  # pragma: no cover - protocol
        """Read again."""


class FedStream(ByteReceiveStream):
    """Bytes fed in by a protocol callback (``feed``/``feed_eof``); read them with
    ``receive``, or have them pushed, as they arrive, to a consumer (``push_to``).

    Pushing saves the event-loop turn between the arrival of an answer and the task
    waiting for it: the session decodes frames right in the protocol callback. A consumer
    that needs time for what it got stops the producer with ``pause_reading``.

    Attributes:
        flow: the producer's flow control, if it has one.
    """

    def __init__(self) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._ended = False
        self._waiter: asyncio.Future[None] | None = None
        self._consumer: Callable[[bytes], object] | None = None
        self._at_end: Callable[[], None] | None = None
        self.flow: FlowControl | None = None
        self._paused = False

    def pause_reading(self) -> None:
        """Have the producer stop feeding (what it already read still arrives)."""
        if not self._paused and self.flow is not None:
            self._paused = True
            self.flow.pause_reading()

    def resume_reading(self) -> None:
        """Have the producer feed again."""
        if self._paused and self.flow is not None:
            self._paused = False
            self.flow.resume_reading()

    def feed(self, data: bytes) -> None:
        """New bytes (from the protocol)."""
        if self._consumer is not None:
            self._consumer(data)
            return
        self._chunks.append(data)
        self._wake()

    def feed_eof(self) -> None:
        """The end of the stream (from the protocol); later calls change nothing."""
        if self._ended:
            return
        self._ended = True
        if self._at_end is not None:
            self._at_end()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def push_to(self, consumer: Callable[[bytes], object], at_end: Callable[[], None]) -> None:
        """From now on, call ``consumer(data)`` for every chunk (first the ones waiting)
        and ``at_end()`` at the end, instead of queueing them for ``receive``."""
        while self._chunks:
            consumer(self._chunks.popleft())
        self._consumer, self._at_end = consumer, at_end
        if self._ended:
            at_end()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """The next bytes; ``anyio.EndOfStream`` at the end."""
        while not self._chunks:
            if self._ended:
                raise anyio.EndOfStream
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._chunks.popleft()
        if len(data) > max_bytes:
            self._chunks.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        return data

    async def aclose(self) -> None:
        """Nothing to do: the transport closes the pipe."""


class SealedWriterStream(WriterStream):
    """A ``WriterStream`` whose bytes travel as authenticated records (``_records``)."""

    def __init__(self, writer: Writer, records: RecordWriter) -> None:
        super().__init__(writer)
        self._records = records

    def _encoded(self, pieces: Iterable[bytes]) -> Iterable[bytes]:
        """The records sealing ``pieces``, in order."""
        return [record for piece in pieces for record in self._records.seal(piece)]


class OpenedReaderStream(ByteReceiveStream):
    """The payloads of the authenticated records read from ``inner`` (``_records``).

    A record that fails its check raises ``ProtocolError``: the link was tampered with.
    """

    def __init__(self, inner: ByteReceiveStream, records: RecordReader, target: str) -> None:
        self._inner = inner
        self._records = records
        self._target = target

    async def receive(self, max_bytes: int = 262144) -> bytes:
        """Authenticated bytes as soon as a record is complete."""
        while True:
            try:
                data = self._records.payloads()
            except RecordError as exc:
                raise ProtocolError(f"{self._target}: the link was tampered with: {exc}") from exc
            if data:
                return data
            self._records.receive_data(await self._inner.receive(max_bytes))

    async def aclose(self) -> None:
        """Close the inner stream."""
        await self._inner.aclose()
