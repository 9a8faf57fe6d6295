"""The session's reading half: the remote's frames, decoded and dispatched in order.

Bytes arrive in the transport's read callback (``FedStream``: local pipes) or from a
reading task (every other transport). Until the remote's ``SYNC`` marker they are a
login shell's noise, shown as standard error; after it, frames. Frames are dispatched
in arrival order. Those that carry a value (answers, callback requests, the hello,
releases) are decoded first, strictly: at once when small, and in slices one
event-loop turn apart when their body reaches ``SLICED_FRAME`` bytes. While a large
frame is decoded, reading stops (the transport is paused) and the frames behind it
wait: order is kept, memory stays bounded, and the event loop (with every other
session on it) keeps running, whatever the remote sends.

Any frame the remote gets wrong (an unknown kind, bytes the decoder refuses, a frame
over ``max_frame_size``) ends this session with a ``ProtocolError``, and only this one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream

from ._exceptions import ProtocolError
from ._protocol import codec
from ._protocol.framing import Frame, FrameDecoder, FrameError, SyncScanner
from ._protocol.strict import SCALAR_BYTES, SCALARS
from .transport._streams import FedStream

logger = logging.getLogger("aiopushy")

#: Frames whose body is at least this large are decoded in slices.
SLICED_FRAME = 256 * 1024
#: Bytes of input decoded between two turns of the event loop.
SLICE_BYTES = 64 * 1024
#: Bytes read from a pulled stream at once.
READ_SIZE = 262144

_UNKNOWN = object()

PlainHandler = Callable[[Frame], None]
ValueHandler = Callable[[Frame, Any], None]
Resolve = Callable[[tuple[Any, ...]], Any]


class Pump:
    """Reads one remote's frames and hands them to the session's handlers.

    Args:
        stream: the transport's output (the remote's standard output).
        max_frame_size: the largest frame body accepted.
        target: names the session in error messages.
        plain: handlers of frames taken as they are, by kind.
        valued: ``(resolve, handler)`` of frames carrying a value, by kind: the body is
            decoded with ``resolve`` for its references, then ``handler(frame, value)``
            is called.
        on_noise: gets what came before ``SYNC``.
        on_error: ends the session with the given ``ProtocolError``.
        on_end: called (and run as a task) once the stream has ended.
        spawn: runs a coroutine as one of the session's tasks.
        on_input: called whenever input arrives, before its frames are handled.
    """

    def __init__(
        self,
        stream: ByteReceiveStream,
        max_frame_size: int,
        *,
        target: str,
        plain: dict[int, PlainHandler],
        valued: dict[int, tuple[Resolve, ValueHandler]],
        on_noise: Callable[[bytes], None],
        on_error: Callable[[ProtocolError], None],
        on_end: Callable[[], Coroutine[Any, Any, None]],
        spawn: Callable[[Coroutine[Any, Any, Any], str], None],
        on_input: Callable[[], None] | None = None,
    ) -> None:
        self._stream = stream
        self.frames = FrameDecoder(max_frame_size)
        self._sync = SyncScanner()
        self._target = target
        self._plain = plain
        self._valued = valued
        self._on_noise = on_noise
        self._on_error = on_error
        self._on_end = on_end
        self._spawn = spawn
        self._on_input = on_input
        self._loop = asyncio.get_running_loop()
        self.last_received = self._loop.time()
        self._failed = False
        self._slicing = False  # a large frame is being decoded: the rest waits
        self._resumed = asyncio.Event()

    @property
    def max_frame_size(self) -> int:
        """The largest frame body accepted."""
        return self.frames.max_frame_size

    def start(self) -> None:
        """Start reading: in the stream's own read callback if it can push, else in a
        task."""
        if isinstance(self._stream, FedStream):
            self._stream.push_to(self.feed, lambda: self._spawn(self._on_end(), "end"))
        else:
            self._spawn(self._read(), "pump")

    async def _read(self) -> None:
        while True:
            try:
                data = await self._stream.receive(READ_SIZE)
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                await self._on_end()
                return
            except ProtocolError as exc:  # the transport found the link tampered with
                self._fail(exc)
                return
            if not self.feed(data):
                return
            while self._slicing:
                self._resumed.clear()
                await self._resumed.wait()

    def feed(self, data: bytes) -> bool:
        """Handle the frames in ``data`` (and any before them); ``False`` once the session
        has failed."""
        if self._failed:
            return False
        self.last_received = self._loop.time()
        if self._on_input is not None:
            self._on_input()
        if not self._sync.synced:
            try:
                noise, data = self._sync.feed(data)
            except FrameError as exc:
                return self._fail(exc)
            if noise:  # a chatty login shell: show it, it is not ours
                self._on_noise(noise)
        self.frames.receive_data(data)
        return self._slicing or self._dispatch()

    def _dispatch(self) -> bool:
        """Handle every complete frame, until one must be decoded in slices."""
        next_frame, valued_get = self.frames.next_frame, self._valued.get
        scalars = SCALARS  # a body the strict decoder decoded lately to a scalar
        try:
            while (frame := next_frame()) is not None:
                kind, _, body = frame
                valued = valued_get(kind)
                if valued is None:
                    handler = self._plain.get(kind)
                    if handler is None:
                        raise ProtocolError(f"unexpected frame kind {kind}")
                    handler(frame)
                    continue
                size = len(body)
                if size >= SLICED_FRAME:
                    self._slicing = True
                    self._pause()
                    self._spawn(self._decode_in_slices(frame, *valued), "decode")
                    return True
                value = scalars.get(body, _UNKNOWN) if size <= SCALAR_BYTES else _UNKNOWN
                if value is _UNKNOWN:
                    value = codec.decode(body, valued[0])
                valued[1](frame, value)
        except (ProtocolError, FrameError, codec.DecodeError) as exc:
            return self._fail(exc)
        except Exception as exc:  # a bug of ours must end the session, never hang it
            logger.exception("%s: message pump failed", self._target)
            return self._fail(ProtocolError(f"internal error in the pump: {exc!r}"))
        return True

    async def _decode_in_slices(
        self, frame: Frame, resolve: Resolve, handler: ValueHandler
    ) -> None:
        decoding = codec.decode_in_slices(frame.body, resolve, SLICE_BYTES)
        try:
            while True:
                try:
                    next(decoding)
                except StopIteration as done:
                    value = done.value
                    break
                self.last_received = self._loop.time()  # working through its data
                await asyncio.sleep(0)
            handler(frame, value)
        except (ProtocolError, codec.DecodeError) as exc:
            self._fail(exc)
            return
        except Exception as exc:  # a bug of ours must end the session, never hang it
            logger.exception("%s: message pump failed", self._target)
            self._fail(ProtocolError(f"internal error in the pump: {exc!r}"))
            return
        self._slicing = False
        if self._dispatch() and not self._slicing:
            self._resume()

    def _pause(self) -> None:
        if isinstance(self._stream, FedStream):
            self._stream.pause_reading()

    def _resume(self) -> None:
        if isinstance(self._stream, FedStream):
            self._stream.resume_reading()
        self._resumed.set()

    def _fail(self, exc: Exception) -> bool:
        self._failed = True
        self._slicing = False
        self._resumed.set()
        message = str(exc)
        if not message.startswith(self._target):
            message = f"{self._target}: {message}"
        self._on_error(ProtocolError(message))
        return False
