"""The remote's standard output and error, carried to the controller as OUTPUT frames."""

from __future__ import annotations

import io
import os
import threading

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    from typing import Callable

    Send = Callable[[int, bytes], None]


class FrameBinaryWriter(io.RawIOBase):
    """A binary stream whose writes become OUTPUT frames (``sys.stdout.buffer``)."""

    def __init__(self, send: Send, stream: int, fd: int) -> None:
        super().__init__()
        self._send = send
        self._stream = stream
        self._fd = fd

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        payload = bytes(data)
        if payload:
            self._send(self._stream, payload)
        return len(payload)

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False


class FrameTextWriter(io.TextIOWrapper):
    """``sys.stdout``/``sys.stderr`` replacement, line-buffered into OUTPUT frames.

    The peer flushes both before it answers a request, so output always arrives before
    the result of the call that printed it.
    """

    def __init__(self, send: Send, stream: int, fd: int, write_through: bool = False) -> None:
        super().__init__(
            FrameBinaryWriter(send, stream, fd),  # type: ignore[arg-type]
            encoding="utf-8",
            errors="backslashreplace",
            line_buffering=True,
            write_through=write_through,
        )


def forward_fd(fd: int, send: Send, stream: int) -> threading.Thread:
    """Start a thread that sends whatever is written to the pipe ``fd`` as OUTPUT frames."""

    def pump() -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return
            if not data:
                return
            send(stream, data)

    thread = threading.Thread(target=pump, name="aiopushy-output", daemon=True)
    thread.start()
    return thread


current = threading.local()
"""``current.peer``: the peer whose request this thread is serving, and ``current.rule``:
that request's rule of what travels by value (0, or 1 for ``REQUEST_PUSHY``); set by the
peer."""


def routed(fallback: Send) -> Send:
    """A ``send`` that goes to the current thread's peer, else to ``fallback``.

    A daemon serves many clients from one process: output written while serving a
    request goes to that request's client.
    """

    def send(stream: int, data: bytes) -> None:
        peer = getattr(current, "peer", None)
        if peer is not None:
            peer.send_output(stream, data)
        else:
            fallback(stream, data)

    return send
