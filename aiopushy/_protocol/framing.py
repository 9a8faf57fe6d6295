"""Length-prefixed frames, with a sans-I/O incremental decoder.

A frame is ``!IBI`` -- body length, message kind, request id -- followed by the body::

    +-----------+------+------------+----------------+
    | length u32| kind | request u32| body (length)  |
    +-----------+------+------------+----------------+

``length`` counts only the body. Frames longer than the decoder's ``max_frame_size`` are
rejected as soon as their header arrives, before any body byte is buffered.
"""

from __future__ import annotations

import struct
from operator import itemgetter

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    pass

HEADER = struct.Struct("!IBI")
HEADER_SIZE = HEADER.size
#: The largest frame body accepted from the other end by default. The controller decodes
#: a remote's frames in at most ``strict.MEMORY_FACTOR`` (64) bytes per byte, so a hostile
#: remote can make it allocate at most about 1 GiB per session.
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
#: The largest frame body a remote accepts from its controller, at least: it trusts what
#: the controller sends, and only guards against garbage on its input.
REMOTE_MAX_FRAME_SIZE = 256 * 1024 * 1024
MAX_REQUEST_ID = 0xFFFFFFFF


SYNC = b"\x00aiopushy\x00sync\x00"
"""Written by the remote before its first frame: anything before it is not ours."""

MAX_PREAMBLE = 64 * 1024


class FrameError(Exception):
    """Raised for bytes that cannot be a frame of this protocol."""


class SyncScanner:
    """Finds ``SYNC`` in the first bytes from the remote.

    Login shells and their rc files sometimes print to standard output before the
    interpreter starts; those bytes come before ``SYNC`` and are handed back as noise.
    """

    def __init__(self, limit: int = MAX_PREAMBLE) -> None:
        self._buffer = b""
        self._limit = limit
        self.synced = False

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """Return ``(noise, protocol bytes)``; protocol bytes stay empty until synced.

        Raises:
            FrameError: more than ``limit`` bytes arrived without ``SYNC``.
        """
        buffer = self._buffer + data
        index = buffer.find(SYNC)
        if index >= 0:
            self.synced = True
            self._buffer = b""
            return buffer[:index], buffer[index + len(SYNC) :]
        if len(buffer) > self._limit:
            raise FrameError(f"no aiopushy handshake in the first {self._limit} bytes")
        keep = len(SYNC) - 1  # a marker split across reads
        self._buffer = buffer[-keep:]
        return buffer[:-keep], b""


class Frame(tuple):  # type: ignore[type-arg]
    """One decoded frame: ``(kind, request_id, body)``."""

    __slots__ = ()

    def __new__(cls, kind: int, request_id: int, body: bytes) -> Frame:
        return tuple.__new__(cls, (kind, request_id, body))

    kind: int = property(itemgetter(0))  # type: ignore[assignment]
    request_id: int = property(itemgetter(1))  # type: ignore[assignment]
    body: bytes = property(itemgetter(2))  # type: ignore[assignment]


_new_frame = tuple.__new__  # Frame's own __new__, without the Python-level call


def encode_frame(kind: int, request_id: int, body: bytes = b"") -> bytes:
    """Return the wire form of one frame."""
    return HEADER.pack(len(body), kind, request_id) + body


#: Bodies at least this large are written after their header, not copied behind it.
SEPARATE_BODY = 65536


def frame_parts(kind: int, request_id: int, body: bytes = b"") -> tuple[bytes, ...]:
    """The wire form of one frame as pieces to write in order: the whole frame, or for a
    large body the header and then the body itself (which is then never copied)."""
    if len(body) < SEPARATE_BODY:
        return (HEADER.pack(len(body), kind, request_id) + body,)
    return HEADER.pack(len(body), kind, request_id), body


#: Bodies at least this large may be received straight into their own buffer (see
#: ``FrameDecoder.receive_buffer``).
DIRECT_BODY = 1024 * 1024


class FrameDecoder:
    """Incremental frame decoder: feed bytes in, take frames out.

    ``receive_data`` buffers bytes; ``next_frame`` returns a frame once one is complete,
    or ``None`` when more bytes are needed. It never blocks and never reads anything.

    A reader that can read into a buffer may ask ``receive_buffer`` where the next bytes
    go: while a body of at least ``DIRECT_BODY`` bytes is incomplete, it is the rest of
    that body's own buffer, and the frame then carries that ``bytearray`` (no copy from
    chunks to a growing buffer, and none from there to the body).
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        # What was received and not consumed yet starts at ``_pos``. The usual chunk holds
        # whole frames and is kept as it came (frames are cut straight out of it); only a
        # partial frame is copied to a bytearray to grow. Consumed bytes stay in that
        # bytearray until they are half of it: a burst of small frames costs one
        # compaction, not one memmove per frame.
        self._buffer: bytes | bytearray = b""
        self._pos = 0
        self._direct: tuple[int, int, bytearray] | None = None  # kind, id, body
        self._direct_filled = 0

    def receive_buffer(self) -> memoryview | None:
        """Where the next bytes may be read into (then call ``received_into``): the
        unfilled rest of a large body's buffer; ``None`` when ``receive_data`` is the
        way in."""
        direct = self._direct
        if direct is None:
            buf, pos = self._buffer, self._pos
            if len(buf) - pos < HEADER_SIZE:
                return None
            length, kind, request_id = HEADER.unpack_from(buf, pos)
            start = pos + HEADER_SIZE
            if length < DIRECT_BODY or length > self.max_frame_size or len(buf) >= start + length:
                return None  # small, refused by next_frame, or complete
            body = bytearray(length)
            body[: len(buf) - start] = memoryview(buf)[start:]
            self._direct_filled = len(buf) - start
            self._direct = direct = (kind, request_id, body)
            self._buffer, self._pos = b"", 0
        return memoryview(direct[2])[self._direct_filled :]

    def received_into(self, count: int) -> None:
        """Count ``count`` bytes read into the last ``receive_buffer``."""
        self._direct_filled += count

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the peer."""
        if self._direct is not None:  # a large body is being filled: the rest goes there
            body = self._direct[2]
            take = min(len(data), len(body) - self._direct_filled)
            body[self._direct_filled : self._direct_filled + take] = data[:take]
            self._direct_filled += take
            data = data[take:]
            if not data:
                return
        buffer = self._buffer
        if self._pos >= len(buffer) and type(data) is bytes:
            self._buffer = data
            self._pos = 0
            return
        if type(buffer) is not bytearray:
            self._buffer = bytearray(memoryview(buffer)[self._pos :])
            self._pos = 0
        elif self._pos and self._pos * 2 >= len(buffer):
            del buffer[: self._pos]
            self._pos = 0
        self._buffer += data

    @property
    def buffered(self) -> int:
        """How many received bytes have not yet been returned as frames."""
        filled = self._direct_filled if self._direct is not None else 0
        return len(self._buffer) - self._pos + filled

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, or ``None`` if more data is needed.

        Raises:
            FrameError: the header announces a body over ``max_frame_size``.
        """
        direct = self._direct
        if direct is not None:
            if self._direct_filled < len(direct[2]):
                return None
            self._direct = None
            return _new_frame(Frame, direct)
        buf = self._buffer
        pos = self._pos
        size = len(buf)
        if size - pos < HEADER_SIZE:
            return None
        length, kind, request_id = HEADER.unpack_from(buf, pos)
        if length > self.max_frame_size:
            raise FrameError(
                f"frame of {length} bytes exceeds the limit of {self.max_frame_size} bytes"
                " (max_frame_size)"
            )
        end = pos + HEADER_SIZE + length
        if size < end:
            return None
        if type(buf) is bytes:
            body = buf[pos + HEADER_SIZE : end]  # one copy
        else:
            with memoryview(buf) as view:  # one copy, not a slice and then a copy of it
                body = bytes(view[pos + HEADER_SIZE : end])
        if end == size:
            self._buffer = b""
            self._pos = 0
        else:
            self._pos = end
        return _new_frame(Frame, (kind, request_id, body))

    def frames(self) -> list[Frame]:
        """Return every complete frame buffered so far."""
        out: list[Frame] = []
        while True:
            frame = self.next_frame()
            if frame is None:
                return out
            out.append(frame)
