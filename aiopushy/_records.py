"""Authenticated records: every byte of a daemon link after its handshake.

Each direction of the link is cut into records::

    +-------------+-----------------+------------------------------------------------+
    | length  u32 | payload         | HMAC-SHA256(key, sequence u64 | length | payload) |
    +-------------+-----------------+------------------------------------------------+

The key is the direction's, from the handshake (``_auth.LinkKeys``); the sequence number
counts that direction's records from 0 and is not sent. So a record that is changed,
injected, dropped, replayed or reordered fails its tag, and the first one that fails
ends the link (``RecordError``). Payloads are at most ``MAX_PAYLOAD`` bytes: a writer
cuts larger data, a reader refuses a longer header before it buffers the body.

This authenticates; it does not encrypt (TLS does that). No I/O here: ``RecordWriter``
turns bytes into records, ``RecordReader`` records back into bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

MAX_PAYLOAD = 256 * 1024
TAG_SIZE = 32
_LENGTH = struct.Struct("!I")
_SEQUENCE = struct.Struct("!Q")
#: Payloads up to this size are copied once to be tagged in one call (faster than an
#: HMAC object); larger ones are fed to an HMAC object without a copy.
_ONE_SHOT = 16 * 1024


class RecordError(Exception):
    """A record failed its tag, or is malformed: the link is not trustworthy."""


def _tag(key: bytes, sequence: int, header: bytes, payload: bytes | memoryview) -> bytes:
    prefix = _SEQUENCE.pack(sequence) + header
    if len(payload) <= _ONE_SHOT:
        return hmac.digest(key, prefix + bytes(payload), hashlib.sha256)
    mac = hmac.new(key, prefix, hashlib.sha256)
    mac.update(payload)
    return mac.digest()


class RecordWriter:
    """Seals outgoing bytes into records, one direction's sequence at a time."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._sequence = 0

    def seal(self, data: bytes | memoryview) -> list[bytes]:
        """The records carrying ``data``, as pieces to write in order."""
        pieces: list[bytes] = []
        view = memoryview(data)
        for start in range(0, max(len(view), 1), MAX_PAYLOAD):
            payload = view[start : start + MAX_PAYLOAD]
            header = _LENGTH.pack(len(payload))
            tag = _tag(self._key, self._sequence, header, payload)
            self._sequence += 1
            if len(payload) <= _ONE_SHOT:
                pieces.append(header + bytes(payload) + tag)
            else:
                pieces += [header, bytes(payload), tag]
        return pieces


class RecordReader:
    """Opens incoming records, one direction's sequence at a time."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._sequence = 0
        self._buffer = bytearray()

    def receive_data(self, data: bytes) -> None:
        """Bytes as they came from the peer."""
        self._buffer += data

    def payloads(self) -> bytes:
        """The payloads of every complete record received so far, joined.

        Raises:
            RecordError: a record is too long or fails its tag.
        """
        buffer = self._buffer
        opened: list[bytes] = []
        position = 0
        while len(buffer) - position >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer, position)
            if length > MAX_PAYLOAD:
                raise RecordError(f"a record of {length} bytes is longer than any sent")
            end = position + _LENGTH.size + length + TAG_SIZE
            if len(buffer) < end:
                break
            with memoryview(buffer) as view:
                header = bytes(view[position : position + _LENGTH.size])
                payload = bytes(view[position + _LENGTH.size : end - TAG_SIZE])
                tag = bytes(view[end - TAG_SIZE : end])
            if not hmac.compare_digest(tag, _tag(self._key, self._sequence, header, payload)):
                raise RecordError("a record failed its check: changed, injected or replayed")
            self._sequence += 1
            opened.append(payload)
            position = end
        del buffer[:position]
        return b"".join(opened)
