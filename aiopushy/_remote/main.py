"""Entry point of the remote interpreter, called by the bootstrap once the code is loaded.

Start-up: lead a session of our own with the signal dispositions of an interpreter
started from a terminal, move the protocol off file descriptors 0 and 1 (so that user
code and child processes can neither read our input nor corrupt our output), say
``HELLO``, apply the controller's ``SETUP``, then serve until input closes or heartbeats
stop. On the way out the process group gets ``SIGHUP``, as a closing terminal or SSH
session would give it.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal builds enums: ms at start-up
import os
import sys
import time

from .. import _protocol
from .._protocol import codec
from .._protocol import messages as m
from .._protocol.errors import exception_info
from .._protocol.framing import REMOTE_MAX_FRAME_SIZE, SYNC
from . import forwarding, lazysite
from .channel import Channel
from .output import FrameTextWriter, forward_fd
from .peer import Peer

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    from typing import Any, Callable


def hello() -> dict[str, Any]:
    """Facts about this interpreter for the controller's handshake."""
    return {
        "protocol": _protocol.PROTOCOL_VERSION,
        "pid": os.getpid(),
        "python": ".".join(map(str, sys.version_info[:3])),
        "implementation": sys.implementation.name,
        "platform": sys.platform,
        "executable": sys.executable,
        "hostname": os.uname().nodename
        if hasattr(os, "uname")
        else os.environ.get("COMPUTERNAME", ""),
    }


def apply_setup(settings: dict[str, Any]) -> None:
    """Apply the controller's session settings (environment, working directory)."""
    env = settings.get("env")
    if env:
        os.environ.update(env)
    cwd = settings.get("cwd")
    if cwd:
        os.chdir(cwd)


def take_standard_streams() -> tuple[int, int, int]:
    """Keep private copies of fds 0 and 1; point 0 at ``/dev/null`` and 1 at a pipe.

    Returns the protocol input fd, the protocol output fd and the read end of the pipe
    that now receives whatever is written to fd 1 (by child processes, say).
    """
    fd_in = os.dup(0)
    fd_out = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 1)
    os.close(write_end)
    return fd_in, fd_out, read_end


#: Pipe buffer asked for on Linux (its default is 64 KiB; 1 MiB is the unprivileged cap).
PIPE_SIZE = 1024 * 1024


def grow_pipes(*fds: int) -> None:
    """Ask for larger pipe buffers (Linux): bulk data then moves in fewer, larger reads
    and writes on both ends. Sockets and non-Linux systems are left as they are."""
    if not sys.platform.startswith("linux"):
        return
    import fcntl

    for fd in fds:
        try:  # noqa: SIM105 - contextlib would cost start-up time
            fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
        except OSError:
            pass


def default_signals() -> None:
    """Give SIGHUP and SIGINT the dispositions they have in an interpreter started from a
    terminal: default, and ``KeyboardInterrupt``.

    Ignored dispositions are inherited: a controller or server run under ``nohup`` or as
    a background job would otherwise hand its ignored SIGHUP and SIGINT to us and to
    every process the remote code starts, which would then survive the session's hang-up.
    (SIGPIPE needs nothing: every Python interpreter ignores it itself, and
    ``subprocess`` restores it for the programs it starts.)
    """
    for name, handler in (("SIGHUP", _signal.SIG_DFL), ("SIGINT", _signal.default_int_handler)):
        number = getattr(_signal, name, None)
        if number is not None:
            _signal.signal(number, handler)


def hang_up() -> None:
    """Send SIGHUP to our process group, as a terminal or SSH session closing would."""
    if not hasattr(os, "killpg"):
        return
    try:
        if os.getpgrp() != os.getpid():
            return
        _signal.signal(_signal.SIGHUP, _signal.SIG_IGN)
        os.killpg(os.getpgrp(), _signal.SIGHUP)
    except (OSError, ValueError):
        pass


def serve(channel: Channel, setup: Callable[[Peer, dict[str, Any]], None]) -> Peer | None:
    """Handshake on ``channel``, then serve until the session ends.

    ``setup(peer, settings)`` applies the controller's settings; what it raises is sent
    back as the handshake's error. Returns the peer once it has stopped, or ``None`` if
    the handshake failed.
    """
    peer = Peer(channel)
    channel.write(SYNC)
    channel.send(m.HELLO, 0, codec.encode_values(hello()))
    frame = channel.read_frame()
    if frame is None or frame.kind != m.SETUP:
        return None
    settings = codec.decode_values(frame.body, trusted=True)
    try:
        setup(peer, settings)
    except Exception as exc:
        channel.send(m.ERROR, frame.request_id, peer.encode(exception_info(exc)))
        return None
    channel.send(m.RESULT, frame.request_id, codec.encode_values(None))
    forwarding.install()
    peer.start()
    timeout = settings.get("heartbeat_timeout")
    while not peer.stopped.wait(0.25):
        if timeout and time.monotonic() - channel.last_received > timeout:
            peer.stop("no heartbeat from the controller")
    return peer


def main(max_frame_size: int = REMOTE_MAX_FRAME_SIZE) -> None:
    """Serve the controller on stdin/stdout, then exit the process."""
    try:  # noqa: SIM105 - contextlib would cost start-up time
        os.setsid()  # lead our own session and process group, as an SSH session does
    except (AttributeError, OSError):
        pass
    default_signals()
    fd_in, fd_out, stdout_pipe = take_standard_streams()
    grow_pipes(fd_in, fd_out)

    def setup(peer: Peer, settings: dict[str, Any]) -> None:
        apply_setup(settings)
        sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
        sys.stdout = FrameTextWriter(peer.send_output, m.STDOUT, 1)
        sys.stderr = FrameTextWriter(peer.send_output, m.STDERR, 2)
        forward_fd(stdout_pipe, peer.send_output, m.STDOUT)
        forwarding.install(fallback=peer)  # threads of remote code import through it too
        if settings.get("site") == "lazy":
            lazysite.install()

    channel = Channel(
        lambda n: os.read(fd_in, n),
        lambda data: os.write(fd_out, data),
        max_frame_size,
        (lambda view: os.readv(fd_in, (view,))) if hasattr(os, "readv") else None,
    )
    serve(channel, setup)
    hang_up()
    os._exit(0)
