"""A hostile remote interpreter, as a real process: ``python hostile_remote.py ATTACK``.

Started by ``connect("local:", python=[sys.executable, __file__, ATTACK])`` in place of
a Python interpreter, it swallows the bootstrap, speaks the protocol honestly up to its
attack, then sends one crafted frame:

* ``honest``: no attack; answers every request with 42.
* ``hello-ATTACK``: the frame of ``ATTACK`` as its handshake.
* ``callback-NAME``: asks the controller to call ``builtins.NAME`` (a global) with 5.
* any name of ``attacks.ATTACKS``: that frame as the answer to the first request.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiopushy._bootstrap import PAYLOAD_PARTS
from aiopushy._protocol import PROTOCOL_VERSION, codec
from aiopushy._protocol import messages as m
from aiopushy._protocol.framing import SYNC, FrameDecoder, encode_frame
from tests.attacks import ATTACKS


def read_exactly(size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = os.read(0, size - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return bytes(data)


def frames() -> object:
    decoder = FrameDecoder(2**31)
    while True:
        frame = decoder.next_frame()
        if frame is not None:
            yield frame
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            return
        decoder.receive_data(chunk)


def send(kind: int, request_id: int, body: bytes) -> None:
    os.write(1, encode_frame(kind, request_id, body))


def main(attack: str) -> None:
    for _ in range(PAYLOAD_PARTS):  # the bootstrap: length, CRC, part
        size = int(read_exactly(12))
        read_exactly(10 + size)
    os.write(1, SYNC)
    hello = codec.encode_values({"protocol": PROTOCOL_VERSION, "pid": os.getpid()})
    if attack.startswith("hello-"):
        hello = ATTACKS[attack.removeprefix("hello-")][0]
    send(m.HELLO, 0, hello)
    incoming = frames()
    for frame in incoming:  # type: ignore[attr-defined]
        if frame.kind == m.SETUP:
            send(m.RESULT, frame.request_id, codec.encode_values(None))
            break
    if attack.startswith("callback-"):
        name = attack.removeprefix("callback-").encode()
        target = b"\x8c\x08builtins\x8c" + bytes([len(name)]) + name + b"\x93"
        send(m.REQUEST, 1, b"\x80\x05K\x09" + target + b"K\x05\x85)\x87\x86.")
    for frame in incoming:  # type: ignore[attr-defined]
        if frame.kind != m.REQUEST:
            continue
        if attack in ATTACKS:
            send(m.RESULT, frame.request_id, ATTACKS[attack][0])
        else:
            send(m.RESULT, frame.request_id, codec.encode_values(42))


if __name__ == "__main__":
    main(sys.argv[1])
