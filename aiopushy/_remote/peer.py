"""The remote peer: serves the controller's requests on a pool of threads.

The thread holding the read lock is the *reader*: it reads frames, handles the cheap ones
(results of our own requests, releases, pings) itself, and runs each request it reads
*inline*, with no hand-off and no queue: a quick request costs no thread switch at all.
Beside it waits one *watcher* thread. When the reader has been away serving a request for
``HANDOFF`` seconds (a long call), or at once when that request calls back to the
controller, the watcher takes the read lock, becomes the reader, and summons a spare
thread (or starts one) as the next watcher. So long calls never stop the reading, and
callbacks can nest freely. A thread whose request is done reads again if the lock is
free, else becomes the watcher or a spare, or ends if there are enough spares. After
``IDLE`` seconds without requests the watcher sleeps until the next one arrives.
"""

from __future__ import annotations

import builtins
import itertools
import sys
import threading
import time

from .._protocol import codec
from .._protocol import messages as m
from .._protocol.errors import exception_info, parse_exception_info
from .._protocol.framing import Frame
from .._protocol.references import References
from . import output
from .channel import Channel
from .operations import Operations, evaluate

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    from typing import Any, Callable

MAX_SPARE_THREADS = 4
#: Decoded ``OP_EVALUATE_PLAIN`` requests kept, by their bytes, at the most; only bodies
#: shorter than ``PLAIN_REQUEST_SIZE`` are looked up (hashing a large one costs a pass).
PLAIN_REQUESTS_KEPT = 4096
PLAIN_REQUEST_SIZE = 1024
#: Seconds a request may hold the reader before the watcher starts reading beside it.
HANDOFF = 0.002
#: Seconds without a request after which the watcher stops polling and sleeps.
IDLE = 0.1


_REQUESTS = (m.REQUEST, m.REQUEST_PUSHY)
_REQUEST_PUSHY, _RESULT = m.REQUEST_PUSHY, m.RESULT


class PeerProxy:
    """A controller object as the remote sees it: callable, nothing more.

    Calling it runs the controller's callable (plain or ``async def``) and returns its
    result; the calling thread blocks while other requests keep being served.
    """

    __slots__ = ("__weakref__", "_oid", "_peer", "_type_name")

    def __init__(self, peer: Peer, oid: int, type_name: str) -> None:
        self._peer = peer
        self._oid = oid
        self._type_name = type_name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._peer.call(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<aiopushy proxy for controller {self._type_name} #{self._oid}>"


class RemoteError(Exception):
    """A controller-side exception with no builtin counterpart, seen on the remote."""


class _Waiter:
    __slots__ = ("event", "frame")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.frame: Frame | None = None


class Peer:
    """One conversation with the controller over ``channel``."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.refs = References(self._queue_release, self._make_proxy, self._proxy_oid)
        self.refs.resolvers[m.REF_EXPRESSION] = self._resolve_expression
        # One encoder per rule of what travels by value (see messages.REQUEST_PUSHY).
        self._encoders = (
            codec.Encoder(self.refs.reference),
            codec.Encoder(self.refs.reference, codec.IMMUTABLE_TYPES),
        )
        self.operations = Operations(self.statistics)
        self.stopped = threading.Event()
        self.stop_reason = ""
        self._read_lock = threading.Lock()
        # Guards the scheduling state below; watchers and spares wait on it.
        self._state = threading.Condition()
        self._released_at: float | None = None  # the reader left to serve a request
        self._last_request = 0.0
        self._urgent = False  # the serving reader needs someone to read now
        self._watching = False
        self._watcher_asleep = False
        self._spares = 0
        self._summoned = 0
        self._request_ids = itertools.count(1)
        self._waiters: dict[int, _Waiter] = {}
        self._releases: list[tuple[int, int]] = []
        self._plain_requests: dict[bytes, Any] = {}
        # Requests are returned before this table is consulted (see _next_request).
        self._frame_handlers: dict[int, Callable[[Frame], bool]] = {
            m.RESULT: self._answer,
            m.ERROR: self._answer,
            m.RELEASE: self._release,
            m.PING: self._ping,
        }

    # -- references ---------------------------------------------------------------

    def _make_proxy(self, oid: int, type_name: str) -> PeerProxy:
        return PeerProxy(self, oid, type_name)

    def _proxy_oid(self, obj: Any) -> int | None:
        if type(obj) is PeerProxy and obj._peer is self:
            return obj._oid
        return None

    def _resolve_expression(self, payload: tuple[Any, ...]) -> Any:
        return evaluate(payload[1], payload[2])

    def _queue_release(self, oid: int, count: int) -> None:
        self._releases.append((oid, count))

    def encode(self, value: Any) -> bytes:
        """Encode ``value`` under the rule of the request this thread serves (0: the async
        API's, 1: Pushy's; see ``messages.REQUEST_PUSHY``)."""
        return self._encoders[getattr(output.current, "rule", 0)].encode(value)

    def decode(self, body: bytes) -> Any:
        small = len(body) < PLAIN_REQUEST_SIZE
        request = self._plain_requests.get(body) if small else None
        if request is None:
            request = codec.decode(body, self.refs.resolve, trusted=True)
            # No reference inside: the same bytes are the same request (kept read only).
            if (
                small
                and type(request) is tuple
                and request[:1] == (m.OP_EVALUATE_PLAIN,)
                and len(self._plain_requests) < PLAIN_REQUESTS_KEPT
            ):
                self._plain_requests[body] = request
        return request

    # -- sending ------------------------------------------------------------------

    def send(self, kind: int, request_id: int, body: bytes = b"", hold: bool = False) -> None:
        """Send a frame, preceded by any releases that piled up (``hold``: see
        ``Channel.send``)."""
        if self._releases:
            releases, self._releases = self._releases, []
            self.channel.send(m.RELEASE, 0, codec.encode_values(tuple(releases)))
        self.channel.send(kind, request_id, body, hold)

    def send_output(self, stream: int, data: bytes) -> None:
        """Send bytes written to the remote's stdout or stderr."""
        try:
            self.channel.send(m.OUTPUT, stream, data)
        except OSError:
            self.stop("output channel closed")

    # -- the thread pool ----------------------------------------------------------

    def start(self) -> None:
        """Start serving: a reader thread, and a watcher beside it."""
        self._watching = True
        self._spawn(watcher=True)
        self._spawn(watcher=False)

    def _spawn(self, watcher: bool) -> None:
        threading.Thread(
            target=self._work, args=(watcher,), name="aiopushy-worker", daemon=True
        ).start()

    def _work(self, watcher: bool) -> None:
        reading = watcher and self._watch()  # whether this thread holds the read lock
        while not self.stopped.is_set():
            if reading:  # taken over from a busy reader: the answers it held go out now
                self.channel.flush()
            elif not self._read_lock.acquire(blocking=False):
                self.channel.flush()  # another thread reads now: our held answers go out
                reading = self._stand_by()
                if not reading:
                    return
                continue
            reading = False
            self._released_at = None
            try:
                frame = self._next_request()
                if frame is not None:
                    self._last_request = self._released_at = time.monotonic()
            finally:
                self._read_lock.release()
            if frame is None:
                with self._state:
                    self._state.notify_all()  # watchers and spares: the session ended
                return
            if self._watcher_asleep:
                with self._state:
                    self._state.notify_all()
            self._serve(frame)
            # Read on if nobody took over meanwhile (the usual case): the loop's acquire.

    def _stand_by(self) -> bool:
        """Someone else reads: become the watcher, or a spare waiting for that role, or
        end. ``True`` once this thread holds the read lock."""
        with self._state:
            if self._watching:
                if self._spares >= MAX_SPARE_THREADS:
                    return False
                self._spares += 1
                while not self._summoned and not self.stopped.is_set():
                    self._state.wait()
                self._spares -= 1
                if self.stopped.is_set():
                    return False
                self._summoned -= 1  # _take_over made us the watcher
            self._watching = True
        return self._watch()

    def _watch(self) -> bool:
        """As the watcher: wait until the reader is overdue, then take the read lock
        (``True``); ``False`` when the session ends."""
        with self._state:
            while not self.stopped.is_set():
                released = self._released_at
                overdue = released is not None and (
                    self._urgent or time.monotonic() - released >= HANDOFF
                )
                if overdue and self._read_lock.acquire(blocking=False):
                    self._take_over()
                    return True
                if released is None and time.monotonic() - self._last_request > IDLE:
                    self._watcher_asleep = True
                    if self._released_at is None:  # again: a request may just have come
                        self._state.wait()
                    self._watcher_asleep = False
                else:
                    self._state.wait(HANDOFF)
            return False

    def _take_over(self) -> None:
        """The watcher becomes the reader; a spare (or a new thread) the next watcher.
        Called with ``_state`` held and the read lock taken."""
        self._urgent = False
        if self._spares > self._summoned:
            self._summoned += 1
            self._state.notify_all()
        else:
            self._spawn(watcher=True)

    def _need_reader(self) -> None:
        """This thread is about to block on the controller: get the watcher reading now."""
        if self._released_at is not None:
            with self._state:
                self._urgent = True
                self._state.notify_all()

    def _next_request(self) -> Frame | None:
        """As leader: read until a request arrives; ``None`` when the session ends."""
        while not self.stopped.is_set():
            try:
                frame = self.channel.read_frame()
            except Exception as exc:
                self.stop(f"bad input: {exc}")
                return None
            if frame is None:
                self.stop("input closed")
                return None
            kind = frame[0]
            if kind in _REQUESTS:  # to serve: the usual case
                return frame
            handler = self._frame_handlers.get(kind)
            if handler is None:
                self.stop(f"unexpected frame kind {frame.kind}")
                return None
            if handler(frame):
                return frame
        return None

    def _answer(self, frame: Frame) -> bool:
        waiter = self._waiters.pop(frame.request_id, None)
        if waiter is not None:
            waiter.frame = frame
            waiter.event.set()
        return False

    def _release(self, frame: Frame) -> bool:
        for oid, count in codec.decode_values(frame.body, trusted=True):
            self.refs.exports.release(oid, count)
        return False

    def _ping(self, frame: Frame) -> bool:
        self.send(m.PONG, frame.request_id)
        return False

    def _serve(self, frame: Frame) -> None:
        kind, request_id, body = frame
        current = output.current
        current.peer = self
        current.rule = rule = 1 if kind == _REQUEST_PUSHY else 0  # before decoding it
        try:
            op, args = self.decode(body)
            body = self._encoders[rule].encode(self.operations.handle(op, args))
            kind = _RESULT
        except BaseException as exc:
            body = self._encoders[rule].encode(exception_info(exc))
            kind = m.ERROR
        flush_standard_streams()
        try:
            # More requests already read: this thread serves the next one at once, and
            # the answers leave together (before it waits, or when another takes over).
            self.send(kind, request_id, body, hold=self.channel.input_pending())
        except OSError:
            self.stop("output closed")

    # -- calling the controller ---------------------------------------------------

    def call(self, target: PeerProxy, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call controller object ``target``; blocks this thread until it answers."""
        # Keyword arguments as their items: under Pushy's rule a dict would go by reference.
        return self.request(m.OP_CALL, (target, args, tuple(kwargs.items())))

    def request(self, op: int, args: tuple[Any, ...]) -> Any:
        """Ask the controller (``op`` with ``args``); blocks this thread until it answers,
        while other threads go on serving."""
        request_id = next(self._request_ids)
        waiter = _Waiter()
        self._waiters[request_id] = waiter
        self.send(m.REQUEST, request_id, self.encode((op, args)))
        self._need_reader()
        while not waiter.event.wait(0.5):
            if self.stopped.is_set():
                raise ConnectionError("the controller went away")
        frame = waiter.frame
        assert frame is not None
        value = self.decode(frame.body)
        if frame.kind == m.RESULT:
            return value
        raise rebuild_exception(value)

    def statistics(self) -> dict[str, int]:
        """Counts for diagnostics: exported objects, proxies held, threads, the reads of
        input, the writes of frames to the controller (system calls) and frames written
        so far."""
        return {
            "exported": len(self.refs.exports),
            "proxies": len(self.refs.imports),
            "threads": threading.active_count(),
            "pending_callbacks": len(self._waiters),
            "reads": self.channel.reads,
            "writes": self.channel.writes,
            "frames_written": self.channel.frames_written,
        }

    def stop(self, reason: str) -> None:
        """End the session; the main thread then exits the process."""
        if not self.stopped.is_set():
            self.stop_reason = reason
            self.stopped.set()
            with self._state:
                self._state.notify_all()


def flush_standard_streams() -> None:
    """Send what remote code printed without a newline yet."""
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - on every answer; cheaper than contextlib.suppress
            stream.flush()
        except Exception:
            pass


def rebuild_exception(info: Any) -> BaseException:
    """The local exception for an ``exception_info`` tuple sent by the controller."""
    try:
        module, name, args, message, text, _ = parse_exception_info(info)
    except ValueError:
        return RemoteError(f"malformed error from the controller: {info!r:.200}")
    kind = getattr(builtins, name, None) if module == "builtins" and type(name) is str else None
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            return kind(*args)
        except Exception:
            pass
    return RemoteError(f"{module}.{name}: {message}\n\nController traceback:\n{text}")
