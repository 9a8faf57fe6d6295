"""Blocking frame I/O over a byte channel, shared by the remote's threads."""

from __future__ import annotations

import threading
import time

from .._protocol.framing import Frame, FrameDecoder, frame_parts

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    from typing import Callable

READ_SIZE = 256 * 1024


class Channel:
    """Frames in through ``read``, frames out through ``write`` (blocking callables).

    ``read(n)`` returns up to ``n`` bytes, ``b""`` at the end; ``write(data)`` returns how
    many bytes it wrote. Over a pipe they are ``os.read``/``os.write`` on two fds; the
    daemon passes bridges to its event loop. Reading is not locked here: the peer's
    leader/follower scheme guarantees one reader at a time. Writing is locked so that
    frames from many threads never interleave.
    """

    def __init__(
        self,
        read: Callable[[int], bytes],
        write: Callable[[bytes | memoryview], int],
        max_frame_size: int,
    ) -> None:
        self._read = read
        self._write = write
        self._decoder = FrameDecoder(max_frame_size)
        self._write_lock = threading.Lock()
        self.last_received = time.monotonic()

    def read_frame(self) -> Frame | None:
        """The next frame, or ``None`` at end of input."""
        while True:
            frame = self._decoder.next_frame()
            if frame is not None:
                return frame
            data = self._read(READ_SIZE)
            if not data:
                return None
            self.last_received = time.monotonic()
            self._decoder.receive_data(data)

    def send(self, kind: int, request_id: int, body: bytes = b"") -> None:
        """Write one whole frame."""
        self.write(*frame_parts(kind, request_id, body))

    def write(self, *pieces: bytes) -> None:
        """Write raw bytes (frames, or the start-up ``SYNC`` marker), all pieces at once."""
        with self._write_lock:
            for piece in pieces:
                written = self._write(piece)  # usually all of it at once
                if written < len(piece):
                    data = memoryview(piece)[written:]
                    while data:
                        data = data[self._write(data) :]
