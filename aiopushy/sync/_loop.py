"""The facade's event loop: one asyncio loop in a daemon thread, shared by every sync session.

Blocking calls hand a coroutine to the loop of the session they concern with
``asyncio.run_coroutine_threadsafe`` and wait for its result. That loop is normally the
facade's own, started on first use; a session adopted with ``SyncSession.from_async``
keeps running on the loop that made it, which must then be running in another thread.

At interpreter exit (``atexit``), the sessions the facade opened and that are still open
are closed, within a bound, and the loop is stopped. ``anyio``'s ``start_blocking_portal``
would serve too, but its exit joins the loop's thread without a time limit, and exit must
never hang.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import math
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from .._session import Session

T = TypeVar("T")

#: Seconds allowed at interpreter exit for closing the sessions still open.
CLOSE_AT_EXIT_TIMEOUT = 10.0

_INSIDE_LOOP = (
    "aiopushy.sync blocks until the remote answers, so it cannot be called from inside a "
    "running event loop (a coroutine, or a callback of the loop): use the async API there "
    "(await aiopushy.connect(...), await conn.modules...; SyncSession.async_session gives "
    "a sync session's async one), or run the blocking code in a thread "
    "(await asyncio.to_thread(...))"
)


class _LoopThread:
    """An asyncio event loop running in a daemon thread until ``stop()``."""

    def __init__(self) -> None:
        started: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event]]
        started = concurrent.futures.Future()
        self.pid = os.getpid()
        self.thread = threading.Thread(
            target=self._main, args=(started,), name="aiopushy.sync", daemon=True
        )
        self.thread.start()
        self.loop, self._stop = started.result()

    @staticmethod
    def _main(
        started: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event]],
    ) -> None:
        async def serve() -> None:
            stop = asyncio.Event()
            started.set_result((asyncio.get_running_loop(), stop))
            await stop.wait()

        try:
            asyncio.run(serve())
        except BaseException as exc:  # pragma: no cover - the loop failed to start
            if not started.done():
                started.set_exception(exc)
            raise

    def stop(self, timeout: float) -> None:
        with contextlib.suppress(RuntimeError):  # already closed
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout)


_lock = threading.Lock()
_current: _LoopThread | None = None
_opened: weakref.WeakSet[Session] = weakref.WeakSet()


def refuse_inside_loop() -> None:
    """Raise ``RuntimeError`` if the calling thread is running an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(_INSIDE_LOOP)


def facade_loop() -> asyncio.AbstractEventLoop:
    """The facade's event loop, started on first use (again in a forked child)."""
    global _current
    current = _current
    if current is not None and current.pid == os.getpid():
        return current.loop
    refuse_inside_loop()
    with _lock:
        if _current is None or _current.pid != os.getpid():
            if _current is None:
                atexit.register(_close_at_exit)
            _opened.clear()  # a forked child does not own its parent's sessions
            _current = _LoopThread()
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
    if loop.is_closed() or not loop.is_running():
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


def opened(session: Session) -> None:
    """Note a session opened by the facade: it is closed at interpreter exit."""
    _opened.add(session)


async def _close_all(sessions: list[Session]) -> None:
    await asyncio.gather(*(session.close() for session in sessions), return_exceptions=True)


def _close_at_exit() -> None:
    current = _current
    if current is None or current.pid != os.getpid():
        return
    sessions = [session for session in list(_opened) if not session.closed]
    if sessions and current.loop.is_running():
        future = asyncio.run_coroutine_threadsafe(_close_all(sessions), current.loop)
        try:
            future.result(CLOSE_AT_EXIT_TIMEOUT)
        except BaseException:  # timed out, or interrupted: exit anyway
            future.cancel()
    current.stop(timeout=2.0)


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
