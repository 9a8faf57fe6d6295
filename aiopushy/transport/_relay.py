"""A child process started by another session's interpreter: ``connect(..., via=session)``.

The ``via`` session's remote starts the program (``_remote/relay.py``) and relays its
pipes: our writes become ``Relay.write_parts`` calls (the large bytes sent again and
again kept there: ``_relaycache``), and its output comes back as calls of a callback of
ours, one per chunk, which feed the streams the next session reads. Each
callback returns only once its chunk is queued here, so a slow reader here slows the
program there. If the ``via`` session ends, these streams end with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._exceptions import ConnectError, PushyError
from .._protocol import messages as m
from ._relaycache import cache_for

if TYPE_CHECKING:
    from .._session import Session

#: Output chunks queued here per stream before the relaying thread has to wait.
QUEUED_CHUNKS = 16
#: Input bytes buffered here before ``send`` waits for the relay to take them.
INPUT_HIGH_WATER = 1024 * 1024


class RelayedOutput(ByteReceiveStream):
    """One output stream of a relayed process."""

    def __init__(self, chunks: MemoryObjectReceiveStream[bytes]) -> None:
        self._chunks = chunks
        self._rest = b""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """The next bytes; ``anyio.EndOfStream`` once the program closed the stream."""
        try:
            data = self._rest or await self._chunks.receive()
        except anyio.ClosedResourceError:
            raise anyio.EndOfStream from None  # released while a reader still waited
        self._rest = data[max_bytes:]
        return data[:max_bytes]

    def close(self) -> None:
        """Stop receiving; later chunks are dropped."""
        self._chunks.close()

    async def aclose(self) -> None:
        """Stop receiving; later chunks are dropped."""
        self.close()


class RelayedInput(ByteSendStream):
    """The input stream of a relayed process.

    ``send`` queues bytes in order and returns; one writer task moves everything
    queued in one remote call at a time, so concurrent frames never interleave and
    small frames share round trips.
    """

    def __init__(self, via: Session) -> None:
        self._via = via
        self._cache = cache_for(via)
        self._relay: Any = None  # set by ``attach`` once the program runs
        self._queued = bytearray()
        self._blobs: list[bytes] = []
        self._drained = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._closed = False

    async def send(self, item: bytes, blobs: Sequence[bytes] = ()) -> None:
        """Queue ``item``; wait while too much is queued already.

        ``blobs``: parts of ``item`` (in order) that the relay may keep and send again
        for us (see ``_relaycache``): bytes that other writes will carry too.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        if self._error is not None:
            raise anyio.BrokenResourceError from self._error
        self._queued += item
        self._blobs += blobs
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_queued())
        while len(self._queued) > INPUT_HIGH_WATER and self._error is None:
            self._drained.clear()
            await self._drained.wait()

    async def _write_queued(self) -> None:
        try:
            while self._queued and self._error is None:
                data, blobs = bytes(self._queued), self._blobs
                self._queued.clear()
                self._blobs = []
                self._drained.set()
                try:
                    parts = await self._cache.parts(data, blobs) if blobs else (data,)
                    await self._via._request(m.OP_RELAY_WRITE, (self._relay, parts))
                except (PushyError, OSError) as exc:
                    self.fail(exc)
        finally:
            self._writer = None
            self._drained.set()

    def fail(self, error: BaseException) -> None:
        """Refuse further input: the relay or its session is gone."""
        if self._error is None:
            self._error = error
        self._queued.clear()
        self._blobs = []
        self._drained.set()

    def attach(self, relay: Any) -> None:
        """Send to ``relay`` (a proxy for the remote ``Relay``) from now on."""
        self._relay = relay

    def detach(self) -> None:
        """Drop the relay: nothing more can be sent."""
        self._closed = True
        self.fail(anyio.ClosedResourceError())
        self._relay = None

    async def aclose(self) -> None:
        """Write what is queued, then close the program's input."""
        if self._closed:
            return
        self._closed = True
        writer = self._writer
        if writer is not None:
            with anyio.move_on_after(5):
                await asyncio.shield(writer)
        if self._error is None:
            with contextlib.suppress(PushyError, OSError):
                await self._relay.close_input()


class RelayedProcess:
    """A program running on ``via``'s host, its pipes relayed through ``via``."""

    def __init__(self, via: Session) -> None:
        self.via = via
        self._returncode: int | None = None
        self._exited = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._senders: dict[int, MemoryObjectSendStream[bytes]] = {}
        self._outputs: dict[int, RelayedOutput] = {}
        for stream in (m.STDOUT, m.STDERR):
            send, receive = anyio.create_memory_object_stream[bytes](QUEUED_CHUNKS)
            self._senders[stream] = send
            self._outputs[stream] = RelayedOutput(receive)
        self._input = RelayedInput(via)
        self.stdin: ByteSendStream = self._input
        self.stdout: ByteReceiveStream = self._outputs[m.STDOUT]
        self.stderr: ByteReceiveStream = self._outputs[m.STDERR]
        self._relay: Any = None

    @classmethod
    async def start(
        cls, via: Session, argv: Sequence[str], env: Mapping[str, str] | None
    ) -> RelayedProcess:
        """Have ``via``'s interpreter start ``argv`` with ``env`` added to its environment.

        Raises:
            ConnectError: ``via`` is closed, or the program could not be started there.
        """
        failure = f"cannot start {argv[0]!r} via {via.target}"
        if via.closed:
            raise ConnectError(f"{failure}: that session is closed")
        process = cls(via)
        try:
            relay = await via._request(
                m.OP_SPAWN, (list(argv), None if env is None else dict(env), process._notify)
            )
        except BaseException as exc:
            process._close_streams()
            if isinstance(exc, OSError):
                raise ConnectError(f"{failure}: {exc.strerror or exc}") from exc
            if isinstance(exc, PushyError):
                raise ConnectError(f"{failure}: {exc}") from exc
            raise
        process._relay = relay
        process._input.attach(relay)
        via._on_end(process._via_ended)
        return process

    async def _notify(self, stream: object, data: object) -> None:
        """The remote's report of output (``b""``: the end) or of the exit status."""
        if stream == m.EXITED and type(data) is int:
            self._returncode = data
            self._exited.set()
            return
        sender = self._senders.get(stream) if type(stream) is int else None
        if sender is None or type(data) is not bytes:
            raise ValueError("malformed relay notification")
        if not data:
            sender.close()
            return
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await sender.send(data)

    def _via_ended(self) -> None:
        for sender in self._senders.values():
            sender.close()
        self._input.fail(ConnectError(f"{self.via.target}: the relaying session ended"))
        self._exited.set()

    @property
    def returncode(self) -> int | None:
        """The program's exit status once reported."""
        return self._returncode

    async def wait(self) -> int | None:
        """Wait for the exit (or for ``via`` to end: then ``None``)."""
        await self._exited.wait()
        return self._returncode

    def signal(self, kill: bool) -> None:
        """Have the relay SIGTERM (or SIGKILL) the program, in the background."""
        if self._exited.is_set() or self._relay is None:
            return
        method = self._relay.kill if kill else self._relay.terminate
        task = asyncio.get_running_loop().create_task(self._call_quietly(method))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _call_quietly(method: Any) -> None:
        with contextlib.suppress(PushyError, OSError):
            await method()

    def release(self) -> None:
        """Stop relaying: end our streams and drop the relay (its session frees it)."""
        self.via._on_end(self._via_ended, remove=True)
        self._close_streams()
        self._input.detach()
        self._relay = None

    def _close_streams(self) -> None:
        for sender in self._senders.values():
            sender.close()
        for output in self._outputs.values():
            output.close()
