"""The link under a session: the one place that reads and writes frames for a remote
interpreter.

A session owns a transport and three tasks: the *pump* (reads frames, completes the
futures of pending requests by request id, serves callbacks), a stderr reader (forwards
the remote's standard error and keeps its tail for error messages) and a heartbeat.
What waits for each answer (a future) is kept by request id, so any number of requests
may be in flight at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

import anyio

from . import _bootstrap
from ._exceptions import (
    REBUILT_EXCEPTIONS,
    ConnectError,
    ConnectionLost,
    ProtocolError,
    rebuild_exception,
)
from ._forwarding import ForwardPolicy
from ._protocol import PROTOCOL_VERSION, codec
from ._protocol import messages as m
from ._protocol.framing import (
    DEFAULT_MAX_FRAME_SIZE,
    REMOTE_MAX_FRAME_SIZE,
    Frame,
    encode_frame,
    frame_parts,
)
from ._protocol.references import References
from ._proxy import (
    LAZY_TYPES,
    MODULES,
    LazyRef,
    ModulesRef,
    Proxy,
    RemoteNode,
    mark_used,
    plain_evaluation,
)
from ._pump import Pump
from ._releases import ReleaseQueue
from ._served import serve_request
from ._stderr import OutputHandler, RemoteStderr, write_output
from .transport import BaseTransport
from .transport._relay import RelayedInput
from .transport._streams import WriterStream

if TYPE_CHECKING:
    from ._session import Session

logger = logging.getLogger("aiopushy")

PUSHY_RULE: contextvars.ContextVar[bool] = contextvars.ContextVar("PUSHY_RULE", default=False)
"""Whether requests made in this context ask for Pushy's rule of what travels by value
(``messages.REQUEST_PUSHY``: mutable containers come back as proxies). The sync facade
sets it for the calls it makes; the async API leaves it off."""


def request_kind() -> int:
    return m.REQUEST_PUSHY if PUSHY_RULE.get() else m.REQUEST


_STREAM_NAMES = {m.STDOUT: "stdout", m.STDERR: "stderr"}
_ERROR = m.ERROR


class AnswerSink(Protocol):
    """What waits for a request's answer in ``Session._pending``: an ``asyncio.Future``,
    or a place among ``gather``'s answers."""

    def done(self) -> bool:  # pragma: no cover - protocol
        """Whether the answer came (or the wait was given up)."""
        ...

    def set_result(self, value: Any, /) -> None:  # pragma: no cover - protocol
        """The answer."""

    def set_exception(self, exc: BaseException, /) -> None:  # pragma: no cover - protocol
        """The failure."""


class Link:
    """The machinery of a ``Session``: start-up, the pump, failure and closing, requests
    and references (``Session`` adds the public API)."""

    def __init__(
        self,
        target: str,
        transport: BaseTransport,
        *,
        output: OutputHandler | None = None,
        heartbeat_interval: float = 5.0,
        heartbeat_timeout: float = 20.0,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        forward_modules: bool | Iterable[str] = (),
    ) -> None:
        self.target = target
        self.forwarding = ForwardPolicy(forward_modules)
        self.transport = transport
        self.output: OutputHandler = output or write_output
        self.info: dict[str, Any] = {}
        session = cast("Session", self)  # a Link is only ever the base of a Session
        self.modules: LazyRef = ModulesRef(session)
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_timeout = heartbeat_timeout
        self._releases = ReleaseQueue(
            lambda: self._loop.call_soon_threadsafe(self._schedule_release_flush)
        )
        self._refs = References(self._releases.queue, self._make_proxy, self._proxy_oid)
        self._encoder = codec.Encoder(self._reference)
        self._pending: dict[int, AnswerSink] = {}
        self._request_ids = itertools.count(1)
        self._requests_sent = 0
        self._stderr = RemoteStderr(self._write_output)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._error: BaseException | None = None
        self._loop = asyncio.get_running_loop()
        self._entered_managers: dict[int, list[Any]] = {}
        self._end_callbacks: list[Callable[[], None]] = []
        resolve, values_only = self._refs.resolve, codec.refuse_references
        stdin = transport.stdin
        self._pump = Pump(
            transport.stdout,
            max_frame_size,
            target=target,
            plain={m.PING: self._on_ping, m.PONG: lambda frame: None, m.OUTPUT: self._on_output},
            valued={
                m.HELLO: (values_only, self._on_hello),
                m.RESULT: (resolve, self._on_answer),
                m.ERROR: (resolve, self._on_answer),
                m.REQUEST: (
                    resolve,
                    lambda frame, req: serve_request(session, frame, req),
                ),
                m.RELEASE: (values_only, self._on_release),
            },
            on_noise=lambda noise: self._write_output("stderr", noise),
            on_error=self._protocol_error,
            on_end=self._lost,
            spawn=self._spawn,
            # An answer came: the requests written next start a burst of their own.
            on_input=stdin.new_burst if isinstance(stdin, WriterStream) else None,
        )
        if isinstance(stdin, WriterStream):  # held bytes it failed to write
            stdin.on_error = lambda exc: self._spawn(self._lost(), "lost")
        self._hello: asyncio.Future[dict[str, Any]] = self._loop.create_future()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"pid {self.info.get('pid', '?')}"
        return f"<aiopushy.Session {self.target!r} {state}>"

    # -- start-up -----------------------------------------------------------------

    async def _start(
        self, env: Mapping[str, str] | None, cwd: str | None, lazy_site: bool = False
    ) -> None:
        """Ship the bootstrap, then handshake; the transport has just been opened."""
        self._pump.start()
        self._spawn(self._stderr.read(self.transport.stderr), "stderr")
        settings = {
            "env": dict(env) if env else None,
            "cwd": cwd,
            "heartbeat_timeout": self._heartbeat_timeout,
            "site": "lazy" if lazy_site else None,
        }
        setup_id = next(self._request_ids)
        future = self._loop.create_future()
        self._pending[setup_id] = future
        data = encode_frame(m.SETUP, setup_id, codec.encode_values(settings))
        payload = b""
        if self.transport.needs_bootstrap:
            # The remote trusts what we send: it only needs a limit against garbage.
            payload = _bootstrap.payload(max(self._pump.max_frame_size, REMOTE_MAX_FRAME_SIZE))
        try:
            await self._write(payload + data, (payload,) if payload else ())
            self.info = await self._hello
            await future
        except (ConnectionLost, anyio.BrokenResourceError) as exc:
            await self._drain_stderr()
            raise _bootstrap.startup_error(self.target, self.transport, self.stderr_tail) from exc
        except ProtocolError as exc:
            raise ConnectError(f"{exc}", target=self.target) from exc
        except Exception as exc:  # the remote could not apply the settings (cwd, env)
            raise ConnectError(
                f"{self.target}: session setup failed: {type(exc).__name__}: {exc}",
                target=self.target,
            ) from exc
        finally:
            self._pending.pop(setup_id, None)
            for started in (future, self._hello):
                if started.done() and not started.cancelled():
                    started.exception()  # retrieved: the error above already says it
        self._spawn(self._heartbeat(), "heartbeat")

    def _on_hello(self, frame: Frame, info: Any) -> None:
        if type(info) is not dict or info.get("protocol") != PROTOCOL_VERSION:
            raise ProtocolError(f"remote speaks protocol {info!r:.100}, not {PROTOCOL_VERSION}")
        if not self._hello.done():
            self._hello.set_result(info)

    # -- the pump -----------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        task = self._loop.create_task(coroutine, name=f"aiopushy {name} {self.target}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lost(self) -> None:
        """The link broke: end the session with the remote's last words."""
        if self._error is None:
            await self._drain_stderr()
            self._fail(ConnectionLost(self._lost_message(), stderr=self.stderr_tail))

    def _protocol_error(self, error: ProtocolError) -> None:
        self._fail(error)
        self._kill()

    def _lost_message(self) -> str:
        code = self.transport.returncode
        status = f" (exit status {code})" if code is not None else ""
        return f"{self.target}: {self.transport.ended_by}{status}"

    def _on_answer(self, frame: Frame, value: Any) -> None:
        kind, request_id, _ = frame
        future = self._pending.pop(request_id, None)
        if future is None or future.done():
            return  # the caller was cancelled; proxies in ``value`` are released
        if kind == _ERROR:
            future.set_exception(rebuild_exception(value, self.target))
        else:
            future.set_result(value)

    def _on_release(self, frame: Frame, pairs: Any) -> None:
        if type(pairs) is not tuple:
            raise ProtocolError("malformed release")
        try:
            for oid, count in pairs:
                self._refs.exports.release(oid, count)
        except (TypeError, ValueError):
            raise ProtocolError("malformed release") from None

    def _on_ping(self, frame: Frame) -> None:
        self._spawn(self._send(m.PONG, frame.request_id), "pong")

    def _on_output(self, frame: Frame) -> None:
        stream = _STREAM_NAMES.get(frame.request_id)
        if stream is None:
            raise ProtocolError(f"output for unknown stream {frame.request_id}")
        self._write_output(stream, frame.body)

    def _write_output(self, stream: str, data: bytes) -> None:
        try:
            self.output(stream, data)
        except Exception:
            # A broken handler must not take the session down with it.
            logger.exception("%s: output handler failed", self.target)

    async def _drain_stderr(self) -> None:
        """Give the remote's last words (and its exit status) a moment to arrive."""
        with anyio.move_on_after(0.5):
            await self._stderr.ended()
            await self.transport.wait()

    @property
    def stderr_tail(self) -> str:
        """The last few KiB the remote wrote to its standard error, as text."""
        return self._stderr.tail

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(self._heartbeat_interval)
            silent = self._loop.time() - self._pump.last_received
            if silent > self._heartbeat_timeout:
                self._fail(
                    ConnectionLost(
                        f"{self.target}: no answer to heartbeats for {silent:.1f} s",
                        stderr=self.stderr_tail,
                    )
                )
                self._kill()
                return
            await self._send(m.PING, 0)

    # -- failure and closing ------------------------------------------------------

    def _fail(self, error: BaseException) -> None:
        """End the session: every pending and future request fails with ``error``."""
        if self._error is not None:
            return
        self._error = error
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)
        if not self._hello.done():
            self._hello.set_exception(error)
        self._refs.exports.clear()
        callbacks, self._end_callbacks = self._end_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("%s: end-of-session callback failed", self.target)
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    def _kill(self) -> None:
        self.transport.kill()

    def _on_end(self, callback: Callable[[], None], remove: bool = False) -> None:
        """Have ``callback()`` called once when the session ends (for sessions relayed
        through this one); at once if it has ended. With ``remove``, forget it again."""
        if remove:
            with contextlib.suppress(ValueError):
                self._end_callbacks.remove(callback)
        elif self._error is not None:
            callback()
        else:
            self._end_callbacks.append(callback)

    @property
    def closed(self) -> bool:
        """Whether the session has ended (closed, or lost)."""
        return self._error is not None

    async def close(self) -> None:
        """End the session and release the remote interpreter; safe to call twice.

        Pending calls fail with ``ConnectionLost``. Returns within a bounded time even
        if the remote ignores its closed input.
        """
        self._fail(ConnectionLost(f"{self.target}: session closed"))
        with anyio.CancelScope(shield=True):
            await self.transport.aclose()
            tasks = [t for t in self._tasks if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=1.0)

    aclose = close

    # -- requests -----------------------------------------------------------------

    async def _send(
        self, kind: int, request_id: int, body: bytes = b"", blobs: Sequence[bytes] = ()
    ) -> None:
        """Send a frame. ``blobs``: large parts of ``body`` that other frames carry too
        (a module's code), which a relay may keep and send again for us."""
        await self._send_frames(frame_parts(kind, request_id, body), blobs)

    async def _send_frames(self, pieces: Sequence[bytes], blobs: Sequence[bytes] = ()) -> None:
        """Send encoded frames, in order: a frame's ``frame_parts``, or whole frames."""
        if self._releases:
            await self._flush_releases()
        stdin = self.transport.stdin
        try:
            if isinstance(stdin, WriterStream):
                await stdin.send_pieces(pieces)
            else:
                await self._write(b"".join(pieces), blobs)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            await self._lost()
            assert self._error is not None
            raise self._error from exc

    def _write_at_once(self, pieces: Sequence[bytes]) -> bool:
        """Write a frame without a coroutine where nothing needs awaiting: whether it
        did. It does not where releases wait to go first, where the input has a backlog
        (``_send_frames`` then waits for it) or is not a ``WriterStream``, or where the
        write fails (``_send_frames`` then reports it)."""
        stdin = self.transport.stdin
        if self._releases or not isinstance(stdin, WriterStream):
            return False
        try:
            return stdin.write_if_clear(pieces)
        except anyio.BrokenResourceError:
            return False  # the writer keeps its error: _send_frames raises it again

    async def _write(self, data: bytes, blobs: Sequence[bytes]) -> None:
        stdin = self.transport.stdin
        if blobs and isinstance(stdin, RelayedInput):
            await stdin.send(data, blobs)
        else:
            await stdin.send(data)

    def _shaped(self, answer: Any, size: int) -> tuple[Any, ...]:
        """``answer`` if it is a tuple of ``size`` items; a hostile remote may send less."""
        if type(answer) is not tuple or len(answer) != size:
            error = ProtocolError(f"{self.target}: malformed answer {answer!r:.80}")
            self._fail(error)
            self._kill()
            raise error
        return answer

    def _register(
        self, op: int, args: tuple[Any, ...], future: AnswerSink | None = None
    ) -> tuple[int, Any, bytes]:
        """Encode a request and register what waits for its answer (``future``, or a new
        ``asyncio.Future``): ``(id, future, body)``.

        The caller sends ``body`` and must pop the id from ``_pending`` in the end.
        """
        if self._error is not None:
            raise self._error
        body = None
        if op == m.OP_EVALUATE:  # most requests: conn.modules.os.getpid(), from a cache
            body = plain_evaluation(self, args)
        if body is None:
            body = self._encoder.encode((op, args))
        request_id = next(self._request_ids)
        if future is None:
            future = self._loop.create_future()
        self._pending[request_id] = future
        self._requests_sent += 1
        return request_id, future, body

    async def _request(
        self,
        op: int,
        args: tuple[Any, ...],
        kind: int | None = None,
        blobs: Sequence[bytes] = (),
    ) -> Any:
        """Send one request (frame ``kind``, by default as ``PUSHY_RULE`` says) and wait
        for its answer. ``blobs``: see ``_send``."""
        request_id, future, body = self._register(op, args)
        try:
            pieces = frame_parts(request_kind() if kind is None else kind, request_id, body)
            if blobs or not self._write_at_once(pieces):
                await self._send_frames(pieces, blobs)
            return await future
        finally:
            self._pending.pop(request_id, None)

    def _request_nowait(
        self, kind: int, op: int, args: tuple[Any, ...], answer: asyncio.Future[Any]
    ) -> int | None:
        """Write a request at once, without a coroutine; its id (``answer`` gets the
        answer).

        For a caller that then runs the loop until ``answer`` is done, and pops the id
        from ``_pending`` in the end (the sync facade, in the thread that drives the
        loop). ``None`` where the transport's input takes no immediate writes, or the
        write failed (``_request`` then reports it).
        """
        stdin = self.transport.stdin
        if type(stdin) is not WriterStream:
            return None
        request_id, _, body = self._register(op, args, answer)
        pieces = frame_parts(kind, request_id, body)
        releases = self._releases.frame() if self._releases else b""
        try:
            # Whatever the transport holds back goes out while the caller waits.
            stdin.write_nowait((releases, *pieces) if releases else pieces)
        except anyio.BrokenResourceError:
            self._pending.pop(request_id, None)
            return None
        return request_id

    # -- references ---------------------------------------------------------------

    def _make_proxy(self, oid: int, type_name: str) -> Proxy:
        return Proxy(cast("Session", self), oid, type_name)

    def _proxy_oid(self, obj: Any) -> int | None:
        if type(obj) is Proxy and obj._pushy_session is self:
            return obj._pushy_oid
        return None

    def _reference(self, obj: Any) -> tuple[Any, ...]:
        kind = type(obj)
        if kind in LAZY_TYPES and obj._pushy_session is self:
            mark_used(obj)
            root = obj._pushy_root
            return (m.REF_EXPRESSION, None if root is MODULES else root, obj._pushy_ops)
        if isinstance(obj, RemoteNode) and obj._pushy_session is not self:
            raise ValueError(f"{obj!r} belongs to another session ({obj._pushy_session})")
        return self._refs.reference(obj)

    def _schedule_release_flush(self) -> None:
        if self._error is None:
            self._spawn(self._flush_releases(), "release")

    async def _flush_releases(self) -> None:
        frame = self._releases.frame()
        if frame and self._error is None:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await self.transport.stdin.send(frame)

    # -- exceptions ---------------------------------------------------------------

    def _remote_exception_args(self, exc: BaseException) -> tuple[Any, ...]:
        """``__exit__`` arguments naming a remote equivalent of local exception ``exc``."""
        name = type(exc).__name__ if type(exc) in REBUILT_EXCEPTIONS.values() else "Exception"
        remote_type = self.modules.builtins.__getattr__(name)
        value = remote_type(*[a for a in exc.args if type(a) in codec.VALUE_TYPES])
        return remote_type, value, None
