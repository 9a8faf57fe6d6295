"""The facade's event loop, driven by the threads that wait for it.

Blocking calls run a coroutine on the loop of the session they concern and wait for its
result. For the facade's own loop, the waiting thread runs the loop itself: a call made
while nobody else runs it takes the loop, runs it until its own coroutine is done, and
hands it back, so a call costs no hop between threads. A thread that finds the loop
taken hands its coroutine over (``run_coroutine_threadsafe``) and waits, taking the loop
in turn when it is free and its work is not done yet. When no call has run it for
``IDLE_DELAY`` seconds, a daemon thread named ``aiopushy.sync`` runs it (heartbeats,
remote output, callbacks), and gives it back to the next call that wants it.

A session adopted with ``SyncSession.from_async`` keeps running on the loop that made it,
which must then be running in another thread: its calls hand their coroutine over and
wait.

At interpreter exit (``atexit``), the sessions the facade opened and that are still open
are closed, within a bound, and the loop is closed. ``anyio``'s ``start_blocking_portal``
would serve too, but costs a hop between threads per call, and its exit joins the loop's
thread without a time limit; exit must never hang.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from .._session import Session

T = TypeVar("T")

#: Seconds allowed at interpreter exit for closing the sessions still open.
CLOSE_AT_EXIT_TIMEOUT = 10.0
#: Seconds without a call after which the daemon thread runs the loop.
IDLE_DELAY = 0.05

_INSIDE_LOOP = (
    "aiopushy.sync blocks until the remote answers, so it cannot be called from inside a "
    "running event loop (a coroutine, or a callback of the loop): use the async API there "
    "(await aiopushy.connect(...), await conn.modules...; SyncSession.async_session gives "
    "a sync session's async one), or run the blocking code in a thread "
    "(await asyncio.to_thread(...))"
)


class _DrivenLoop:
    """An asyncio event loop run by the threads that wait for it (see the module)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._taken = threading.Lock()  # held by the thread running the loop
        self._state = threading.Condition()  # guards what follows; waiters wait on it
        self._waiting = 0  # threads that want the loop or their result
        self._last_call = time.monotonic()
        self._idle_wake: asyncio.Future[None] | None = None  # ends the daemon's turn
        self._closing = False
        self._daemon = threading.Thread(target=self._idle, name="aiopushy.sync", daemon=True)
        self._daemon.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and return its result, in the calling thread."""
        if self.take():
            try:
                task = self.loop.create_task(coroutine)
                try:
                    return self.loop.run_until_complete(task)
                except BaseException:
                    task.cancel()  # abandoned: cancelled when the loop runs next
                    raise
            finally:
                self.give_back()
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        future.add_done_callback(lambda _: self._notify())
        with self._state:
            self._waiting += 1
        try:
            while not future.done():
                if self.take():
                    try:
                        self.loop.run_until_complete(asyncio.wrap_future(future, loop=self.loop))
                    finally:
                        self.give_back()
                    break
                with self._state:
                    if self._idle_wake is not None:  # the daemon runs it: ask for it back
                        self.loop.call_soon_threadsafe(_set, self._idle_wake)
                    if not future.done() and self._taken.locked():
                        self._state.wait()
            return future.result()
        except BaseException:
            future.cancel()
            raise
        finally:
            with self._state:
                self._waiting -= 1

    def take(self) -> bool:
        """Take the loop, if nobody runs it: whether the calling thread now may run it
        (and must then ``give_back``)."""
        return self._taken.acquire(blocking=False)

    def give_back(self) -> None:
        """Give the loop back after running it."""
        with self._state:
            self._taken.release()
            self._last_call = time.monotonic()
            if self._waiting:  # the daemon thread needs no wake-up: it polls
                self._state.notify_all()

    def _notify(self) -> None:
        with self._state:
            self._state.notify_all()

    def _idle(self) -> None:
        """The daemon thread: run the loop whenever no call has run it for a while."""
        while True:
            with self._state:
                while True:
                    if self._closing:
                        return
                    quiet = time.monotonic() - self._last_call
                    if not self._waiting and quiet >= IDLE_DELAY and self._taken.acquire(False):
                        break
                    self._state.wait(max(IDLE_DELAY - quiet, IDLE_DELAY / 4))
                wake = self._idle_wake = self.loop.create_future()
            try:
                self.loop.run_until_complete(wake)
            finally:
                with self._state:
                    self._idle_wake = None
                self.give_back()

    def close(self, timeout: float) -> None:
        """Stop the daemon thread (within ``timeout``) and close the loop."""
        with self._state:
            self._closing = True
            if self._idle_wake is not None:
                self.loop.call_soon_threadsafe(_set, self._idle_wake)
            self._state.notify_all()
        self._daemon.join(timeout)
        if self._taken.acquire(timeout=timeout):
            self.loop.close()


def _set(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_lock = threading.Lock()
_current: _DrivenLoop | None = None
_opened: weakref.WeakSet[Session] = weakref.WeakSet()
_exit_hooked = False  # whether _close_at_exit is registered (a forked child inherits it)


def _forget_parent() -> None:
    """In a forked child: the parent's loop, sessions and locks are not the child's."""
    global _current, _lock
    _current = None
    _lock = threading.Lock()
    _opened.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_parent)


def refuse_inside_loop() -> None:
    """Raise ``RuntimeError`` if the calling thread is running an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(_INSIDE_LOOP)


def facade_loop() -> asyncio.AbstractEventLoop:
    """The facade's event loop, made on first use (again in a forked child)."""
    global _current, _exit_hooked
    current = _current
    if current is not None:
        return current.loop
    refuse_inside_loop()
    with _lock:
        if _current is None:
            _current = _DrivenLoop()
            if not _exit_hooked:  # on first use: atexit runs what was registered later first
                atexit.register(_close_at_exit)
                _exit_hooked = True
        return _current.loop


def run(
    loop: asyncio.AbstractEventLoop,
    function: Callable[..., Coroutine[Any, Any, T]],
    *args: Any,
) -> T:
    """Run ``function(*args)`` on ``loop`` and wait for its result, in the calling thread.

    Interrupting the wait (``KeyboardInterrupt``) cancels the coroutine, as cancelling a
    task does in the async API: a pending remote call is abandoned, not interrupted.
    """
    refuse_inside_loop()
    if loop.is_closed():
        raise RuntimeError("the event loop this session belongs to is closed")
    current = _current
    if current is not None and loop is current.loop:
        return current.run(function(*args))
    if not loop.is_running():
        raise RuntimeError("the event loop this session belongs to is not running")
    coroutine = function(*args)
    try:
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
    except RuntimeError:  # closed in the meantime
        coroutine.close()
        raise RuntimeError("the event loop this session belongs to is closed") from None
    try:
        return future.result()
    except concurrent.futures.CancelledError:
        raise RuntimeError("the event loop this session belongs to stopped") from None
    except BaseException:
        future.cancel()
        raise


class _StopsLoop(asyncio.Future[Any]):
    """The answer to a request whose caller runs the loop until it is in: completing it
    stops the loop at once, in the same turn (a plain future would take one more)."""

    def set_result(self, result: Any) -> None:
        super().set_result(result)
        self.get_loop().stop()

    def set_exception(self, exception: type | BaseException) -> None:
        super().set_exception(exception)
        self.get_loop().stop()


def request(session: Session, kind: int, op: int, args: tuple[Any, ...]) -> Any:
    """Send one request of frame ``kind`` on ``session`` and wait for its answer.

    In a thread that can take the facade's loop, the request is written at once and the
    loop runs until its answer is in: no task, no coroutine, no hop between threads.
    Elsewhere it goes through ``run``.
    """
    refuse_inside_loop()
    current = _current
    if current is not None and session._loop is current.loop and current.take():
        try:
            loop = current.loop
            answer = _StopsLoop(loop=loop)
            request_id = session._request_nowait(kind, op, args, answer)
            if request_id is not None:
                try:
                    while not answer.done():
                        loop.run_forever()  # until the answer stops it
                    return answer.result()
                finally:
                    session._pending.pop(request_id, None)
                    answer.cancel()  # interrupted: its answer, if it comes, is dropped
        finally:
            current.give_back()
    return run(session._loop, session._request, op, args, kind)


def opened(session: Session) -> None:
    """Note a session opened by the facade: it is closed at interpreter exit."""
    _opened.add(session)


async def _close_all(sessions: list[Session]) -> None:
    with anyio.move_on_after(CLOSE_AT_EXIT_TIMEOUT):
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


def _close_at_exit() -> None:
    current = _current
    if current is None:
        return
    sessions = [session for session in list(_opened) if not session.closed]
    if sessions:
        with contextlib.suppress(BaseException):  # interrupted: exit anyway
            current.run(_close_all(sessions))
    current.close(timeout=2.0)


_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter]
_limiters = weakref.WeakKeyDictionary()


async def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run ``function(*args)`` in a worker thread, from a task of the loop.

    Every such call gets a thread (idle ones are reused): a thread blocked in a call
    into the facade must never wait for another thread to become free. If the task is
    cancelled, the thread is abandoned: it runs to completion, its result discarded.
    """
    loop = asyncio.get_running_loop()
    with _lock:
        limiter = _limiters.get(loop)
        if limiter is None:
            limiter = _limiters[loop] = anyio.CapacityLimiter(math.inf)
    return await anyio.to_thread.run_sync(function, *args, abandon_on_cancel=True, limiter=limiter)
