"""Blocking frame I/O over two file descriptors, shared by the remote's threads."""

from __future__ import annotations

import os
import threading
import time

from .._protocol.framing import Frame, FrameDecoder, encode_frame

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    pass

READ_SIZE = 256 * 1024


class Channel:
    """Frames in from ``fd_in``, frames out to ``fd_out``.

    Reading is not locked here: the peer's leader/follower scheme guarantees one reader
    at a time. Writing is locked so that frames from many threads never interleave.
    """

    def __init__(self, fd_in: int, fd_out: int, max_frame_size: int) -> None:
        self.fd_in = fd_in
        self.fd_out = fd_out
        self._decoder = FrameDecoder(max_frame_size)
        self._write_lock = threading.Lock()
        self.last_received = time.monotonic()

    def read_frame(self) -> Frame | None:
        """The next frame, or ``None`` at end of input."""
        while True:
            frame = self._decoder.next_frame()
            if frame is not None:
                return frame
            data = os.read(self.fd_in, READ_SIZE)
            if not data:
                return None
            self.last_received = time.monotonic()
            self._decoder.receive_data(data)

    def send(self, kind: int, request_id: int, body: bytes = b"") -> None:
        """Write one whole frame."""
        self.write(encode_frame(kind, request_id, body))

    def write(self, raw: bytes) -> None:
        """Write raw bytes (frames, or the start-up ``SYNC`` marker)."""
        data = memoryview(raw)
        with self._write_lock:
            while data:
                written = os.write(self.fd_out, data)
                data = data[written:]
