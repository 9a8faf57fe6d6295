"""Blocking frame I/O over a byte channel, shared by the remote's threads."""

from __future__ import annotations

import threading
import time

from .._protocol.framing import Frame, FrameDecoder, frame_parts

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    from typing import Callable

READ_SIZE = 256 * 1024
#: Bytes of held answers (see ``Channel.send``) at the most; past it they go out.
HOLD_LIMIT = 64 * 1024


class Channel:
    """Frames in through ``read``, frames out through ``write`` (blocking callables).

    ``read(n)`` returns up to ``n`` bytes, ``b""`` at the end; ``write(data)`` returns how
    many bytes it wrote; ``readinto(view)``, if given, reads into ``view`` and returns
    how many bytes (0 at the end): large bodies are then read into their own buffers.
    Over a pipe they are ``os.read``, ``os.write`` and ``os.readv`` on two fds; the
    daemon passes bridges to its event loop. Reading is not locked here: the peer's
    leader/follower scheme guarantees one reader at a time. Writing is locked so that
    frames from many threads never interleave.

    A frame sent with ``hold=True`` (an answer, while more requests wait in the input)
    may wait for the next write, so that the answers to a burst of requests leave in one
    system call. Held frames go out before any other frame (order is kept), before the
    reader blocks for input, and on ``flush``.
    """

    def __init__(
        self,
        read: Callable[[int], bytes],
        write: Callable[[bytes | memoryview], int],
        max_frame_size: int,
        readinto: Callable[[memoryview], int] | None = None,
    ) -> None:
        self._read = read
        self._readinto = readinto
        self._write = write
        self._decoder = FrameDecoder(max_frame_size)
        self._write_lock = threading.Lock()
        self._held: list[bytes] = []
        self._held_size = 0
        self.last_received = time.monotonic()
        self.reads = 0  # system calls (or bridge calls) that read input
        self.writes = 0  # system calls (or bridge calls) that wrote frames
        self.frames_written = 0

    def read_frame(self) -> Frame | None:
        """The next frame, or ``None`` at end of input."""
        while True:
            frame = self._decoder.next_frame()
            if frame is not None:
                return frame
            if self._held:
                self.flush()  # nothing left to serve: what is held goes out before we wait
            readinto = self._readinto
            target = self._decoder.receive_buffer() if readinto is not None else None
            if readinto is not None and target is not None:  # a large body: into its buffer
                count = readinto(target)
                self.reads += 1
                if not count:
                    return None
                self._decoder.received_into(count)
            else:
                data = self._read(READ_SIZE)
                self.reads += 1
                if not data:
                    return None
                self._decoder.receive_data(data)
            self.last_received = time.monotonic()

    def input_pending(self) -> bool:
        """Whether bytes of another frame are already read (more requests to serve)."""
        return self._decoder.buffered > 0

    def send(self, kind: int, request_id: int, body: bytes = b"", hold: bool = False) -> None:
        """Write one whole frame; with ``hold``, perhaps only with the next write."""
        pieces = frame_parts(kind, request_id, body)
        self.frames_written += 1  # not exact under threads: a diagnostic count
        if hold and len(pieces) == 1:
            with self._write_lock:
                if self._held_size + len(pieces[0]) <= HOLD_LIMIT:
                    self._held.append(pieces[0])
                    self._held_size += len(pieces[0])
                    return
        self.write(*pieces)

    def flush(self) -> None:
        """Write the held frames, if any."""
        if self._held:  # read without the lock: a frame held meanwhile is another's to send
            with self._write_lock:
                self._write_all(())

    def write(self, *pieces: bytes) -> None:
        """Write raw bytes (frames, or the start-up ``SYNC`` marker), all pieces at once,
        after the held frames."""
        with self._write_lock:
            self._write_all(pieces)

    def _write_all(self, pieces: tuple[bytes, ...]) -> None:
        if self._held:
            held, self._held, self._held_size = self._held, [], 0
            if len(pieces) == 1 and len(pieces[0]) < HOLD_LIMIT:
                held.append(pieces[0])  # one system call for all
                pieces = ()
            pieces = (b"".join(held), *pieces)
        self.writes += len(pieces)
        for piece in pieces:
            written = self._write(piece)  # usually all of it at once
            if written < len(piece):
                data = memoryview(piece)[written:]
                while data:
                    data = data[self._write(data) :]
