"""Transports whose remote end is a child process (``local``, native ``ssh``).

The child is started here (``LocalProcess``) or, with ``via=session``, by another
session's interpreter (``RelayedProcess``); the transport drives both the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream

from .._exceptions import ConnectError
from ._streams import FedStream, WriterStream
from .base import BaseTransport

if TYPE_CHECKING:
    from .._session import Session

#: How long ``aclose`` waits for the process to exit on its own, then after SIGTERM.
EXIT_GRACE = 2.0
#: Bytes read from a child's output pipe at once.
PIPE_READ_SIZE = 65536


class ChildProcess(Protocol):
    """A running program with piped standard streams, wherever it runs."""

    stdin: ByteSendStream
    stdout: ByteReceiveStream
    stderr: ByteReceiveStream

    @property
    def returncode(self) -> int | None:
        """The exit status once known."""

    async def wait(self) -> int | None:
        """Wait for the exit; the status (``None`` if it can no longer be known)."""

    def signal(self, kill: bool) -> None:
        """Send SIGTERM (or SIGKILL with ``kill``) without waiting; no error if it ended."""

    def release(self) -> None:
        """Let go of the pipes, even if the program's background jobs keep them open."""


class _OutputProtocol(asyncio.Protocol):
    """Feeds what a pipe delivers to a ``FedStream`` right in the read callback."""

    def __init__(self, output: FedStream) -> None:
        self.output = output

    def data_received(self, data: bytes) -> None:
        self.output.feed(data)

    def eof_received(self) -> bool:
        self.output.feed_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.output.feed_eof()  # a read error, or our side closed: no more data either way


class _StderrProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's subprocess protocol, with stderr fed to a ``FedStream``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=2**16, loop=loop)
        self.stderr_output = FedStream()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if fd == 2:
            assert isinstance(data, bytes)
            self.stderr_output.feed(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 2:
            self.stderr_output.feed_eof()
        super().pipe_connection_lost(fd, exc)


class LocalProcess:
    """A child of this process, through asyncio's subprocess support."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        stdout: FedStream,
        stdout_pipe: asyncio.ReadTransport,
        stderr: FedStream,
    ) -> None:
        assert process.stdin
        self.process = process
        self.stdin: ByteSendStream = WriterStream(process.stdin)
        self.stdout: ByteReceiveStream = stdout
        self.stderr: ByteReceiveStream = stderr
        self._stdout_pipe = stdout_pipe

    @classmethod
    async def start(cls, argv: Sequence[str], env: Mapping[str, str] | None) -> LocalProcess:
        """Start ``argv`` in a new session, with ``env`` added to our environment.

        Raises:
            ConnectError: the program could not be started.
        """
        loop = asyncio.get_running_loop()
        protocol = _StderrProtocol(loop)
        # Standard output is our own pipe, not asyncio's subprocess pipe: that one hands
        # each read to the protocol through call_soon, one more event-loop turn per answer.
        read_end, write_end = os.pipe()
        try:
            transport, _ = await loop.subprocess_exec(
                lambda: protocol,
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=write_end,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                env=None if env is None else {**os.environ, **env},
            )
        except BaseException as exc:
            os.close(read_end)
            if isinstance(exc, OSError):
                raise ConnectError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
            raise
        finally:
            os.close(write_end)
        stdout = FedStream()
        try:
            stdout_pipe, _ = await loop.connect_read_pipe(
                lambda: _OutputProtocol(stdout), os.fdopen(read_end, "rb", buffering=0)
            )
        except BaseException:
            transport.kill()
            transport.close()
            raise
        stdout.flow = stdout_pipe
        for pipe in (stdout_pipe, transport.get_pipe_transport(2)):
            # A pipe holds 64 KiB: asyncio's 256 KiB read buffer gets no more, and is
            # mapped and unmapped again for every read.
            if pipe is not None and hasattr(pipe, "max_size"):
                pipe.max_size = PIPE_READ_SIZE
        process = asyncio.subprocess.Process(transport, protocol, loop)
        return cls(process, stdout, stdout_pipe, protocol.stderr_output)

    @property
    def returncode(self) -> int | None:
        """The child's exit status once it has exited."""
        return self.process.returncode

    async def wait(self) -> int | None:
        """Wait for the child to exit; its exit status."""
        return await self.process.wait()

    def signal(self, kill: bool) -> None:
        """SIGTERM or SIGKILL the child, if it still runs."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, 9 if kill else 15)

    def release(self) -> None:
        """Close our ends of the pipes without waiting for their end of file."""
        self._stdout_pipe.close()
        # asyncio has no public handle on the others; the subprocess transport closes all.
        transport = getattr(self.process, "_transport", None)
        if transport is not None:
            transport.close()


class ProcessTransport(BaseTransport):
    """A transport talking to a child process through its standard streams."""

    def __init__(self, child: ChildProcess, address: str) -> None:
        self.child = child
        self.address = address
        self.stdin = child.stdin
        self.stdout = child.stdout
        self.stderr = child.stderr

    @classmethod
    async def spawn(
        cls,
        argv: Sequence[str],
        address: str,
        env: Mapping[str, str] | None = None,
        via: Session | None = None,
    ) -> ProcessTransport:
        """Start ``argv`` here, or on ``via``'s host, with ``env`` added to the environment.

        Raises:
            ConnectError: the program could not be started.
        """
        if via is None:
            child: ChildProcess = await LocalProcess.start(argv, env)
        else:
            from ._relay import RelayedProcess

            child = await RelayedProcess.start(via, argv, env)
        return cls(child, address)

    @property
    def returncode(self) -> int | None:
        """The child's exit status once it has exited."""
        return self.child.returncode

    async def wait(self) -> int | None:
        """Wait for the child to exit; its exit status."""
        return await self.child.wait()

    async def aclose(self) -> None:
        """Close stdin, then wait for the child; escalate to SIGTERM and SIGKILL."""
        await self.stdin.aclose()
        for kill in (None, False, True):
            if kill is not None:
                self.child.signal(kill)
            with anyio.move_on_after(EXIT_GRACE):
                await self.child.wait()
                break
        # Background jobs of the remote may hold its stderr open: never wait for the pipes'
        # end.
        self.child.release()

    def kill(self) -> None:
        """Kill the child at once (used when a session must die now)."""
        self.child.signal(True)
