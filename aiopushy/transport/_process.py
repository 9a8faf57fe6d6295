"""Transports backed by a local child process (the ``local`` transport, native ``ssh``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence

import anyio

from .._exceptions import ConnectError
from ._streams import ReaderStream, WriterStream
from .base import BaseTransport

#: How long ``aclose`` waits for the process to exit on its own, then after SIGTERM.
EXIT_GRACE = 2.0


class ProcessTransport(BaseTransport):
    """A transport whose remote end is talked to through a child process's pipes."""

    def __init__(self, process: asyncio.subprocess.Process, address: str) -> None:
        assert process.stdin and process.stdout and process.stderr
        self.process = process
        self.address = address
        self.stdin = WriterStream(process.stdin)
        self.stdout = ReaderStream(process.stdout)
        self.stderr = ReaderStream(process.stderr)

    @classmethod
    async def spawn(
        cls,
        argv: Sequence[str],
        address: str,
        env: Mapping[str, str] | None = None,
    ) -> ProcessTransport:
        """Start ``argv`` in a new session with piped standard streams.

        Raises:
            ConnectError: the program could not be started.
        """
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                env=None if env is None else dict(env),
            )
        except OSError as exc:
            raise ConnectError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
        return cls(process, address)

    @property
    def returncode(self) -> int | None:
        """The child's exit status once it has exited."""
        return self.process.returncode

    async def wait(self) -> int | None:
        """Wait for the child to exit; its exit status."""
        return await self.process.wait()

    async def aclose(self) -> None:
        """Close stdin, then wait for the child; escalate to SIGTERM and SIGKILL."""
        await self.stdin.aclose()
        for escalate in (None, self.process.terminate, self.process.kill):
            if escalate is not None:
                with contextlib.suppress(ProcessLookupError):
                    escalate()
            with anyio.move_on_after(EXIT_GRACE):
                await self.process.wait()
                break
        # Background jobs of the remote may hold its stderr open: never wait for the pipes'
        # end. asyncio has no public handle on them; the subprocess transport closes all.
        transport = getattr(self.process, "_transport", None)
        if transport is not None:
            transport.close()

    def kill(self) -> None:
        """Kill the child at once (used when a session must die now)."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, 9)
