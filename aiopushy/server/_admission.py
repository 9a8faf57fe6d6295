"""Who may try to authenticate, and when: the servers' guard before their handshake.

A connection that has not authenticated yet is an *attempt*. At most ``max_pending``
attempts run at once, at most ``max_per_address`` of them from one address; a
connection beyond that waits (holding its socket, saying nothing) until a slot frees,
first come first served, and at most ``max_waiting`` connections wait: beyond that the
one that has waited longest is dropped. An attempt that has received nothing for
``idle_grace`` seconds after its challenge (a legitimate client answers within one
round trip) gives up its slot when someone is waiting: connections that open and then
say nothing cannot lock anyone out, and a burst of real clients is served in turn.

Failed logins count per address: once ``max_failures`` happened within ``window``
seconds, the address's answers are no longer checked (``may_verify``) until the oldest
failure is ``window`` seconds old. The check and the count happen together when an
answer arrives, so guesses sent in parallel cannot all slip through.

No I/O here but the ``abort`` callbacks that end a connection.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

#: Addresses whose failures are remembered at once; the oldest are forgotten beyond it.
MAX_REMEMBERED_ADDRESSES = 65536


class Dropped(Exception):
    """A waiting connection was dropped: too many were waiting."""


class Attempt:
    """One connection trying to authenticate."""

    __slots__ = ("abort", "address", "heard", "started")

    def __init__(self, address: str, abort: Callable[[], None], started: float) -> None:
        self.address = address
        self.abort = abort
        self.started = started
        self.heard = False  # the client has answered: never given up for a waiting one


class Admission:
    """Admits, orders and counts authentication attempts (see the module's rules)."""

    def __init__(
        self,
        *,
        max_pending: int = 64,
        max_per_address: int = 32,
        max_waiting: int = 256,
        idle_grace: float = 0.25,
        max_failures: int = 5,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min(max_pending, max_per_address, max_failures) < 1 or max_waiting < 0:
            raise ValueError("the admission limits must be positive")
        self.max_pending = max_pending
        self.max_per_address = max_per_address
        self.max_waiting = max_waiting
        self.idle_grace = idle_grace
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._running: dict[Attempt, None] = {}  # insertion order: oldest first
        self._per_address: collections.Counter[str] = collections.Counter()
        self._waiting: dict[Attempt, asyncio.Future[None]] = {}  # oldest first
        self._failures: dict[str, collections.deque[float]] = {}
        self._timer: asyncio.TimerHandle | None = None

    @property
    def running(self) -> int:
        """Attempts running now."""
        return len(self._running)

    @property
    def waiting(self) -> int:
        """Connections waiting for a slot now."""
        return len(self._waiting)

    async def enter(self, address: str, abort: Callable[[], None]) -> Attempt:
        """A slot for a new connection from ``address``: at once, or once one frees.

        Raises:
            Dropped: it waited, and was dropped for connections that came later.
        """
        attempt = Attempt(address, abort, self._clock())
        if not self._waiting and self._fits(address):
            self._start(attempt)
            return attempt
        if len(self._waiting) >= self.max_waiting:
            if not self._waiting:  # nobody may wait: make room now, or there is none
                if self._end_idle(self._clock(), address):
                    self._start(attempt)
                    return attempt
                raise Dropped
            oldest, dropped = next(iter(self._waiting.items()))
            del self._waiting[oldest]
            dropped.set_exception(Dropped())
        ready = asyncio.get_running_loop().create_future()
        self._waiting[attempt] = ready
        self._make_room()
        try:
            await ready
        except BaseException:
            if self._waiting.pop(attempt, None) is None and attempt in self._running:
                self.finish(attempt)  # started just as it was cancelled
            raise
        return attempt

    def heard(self, attempt: Attempt) -> None:
        """The client of ``attempt`` answered: it keeps its slot until it is done."""
        attempt.heard = True

    def finish(self, attempt: Attempt) -> None:
        """``attempt`` is over (it authenticated, failed or ended): its slot frees."""
        if self._release(attempt):
            self._make_room()

    def may_verify(self, address: str) -> bool:
        """Whether an answer from ``address`` may be checked now (its recent failures
        are below ``max_failures``)."""
        times = self._failures.get(address)
        if times is None:
            return True
        oldest = self._clock() - self.window
        while times and times[0] < oldest:
            times.popleft()
        if not times:
            del self._failures[address]
        return len(times) < self.max_failures

    def failed(self, address: str) -> None:
        """An answer from ``address`` was wrong."""
        times = self._failures.pop(address, None) or collections.deque()
        times.append(self._clock())
        self._failures[address] = times  # now the most recent address
        while len(self._failures) > MAX_REMEMBERED_ADDRESSES:
            del self._failures[next(iter(self._failures))]

    def _fits(self, address: str) -> bool:
        return (
            len(self._running) < self.max_pending
            and self._per_address[address] < self.max_per_address
        )

    def _start(self, attempt: Attempt) -> None:
        attempt.started = self._clock()
        self._running[attempt] = None
        self._per_address[attempt.address] += 1

    def _make_room(self) -> None:
        """Start waiting connections that fit, first those that came first; when some
        still wait, end attempts idle past their grace, or look again when one will be."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting:
            now = self._clock()
            for attempt, ready in list(self._waiting.items()):
                if self._fits(attempt.address):
                    del self._waiting[attempt]
                    self._start(attempt)
                    ready.set_result(None)
            if not self._waiting:
                return
            if not self._end_idle(now, None):
                idle = [a.started for a in self._running if not a.heard]
                if idle:
                    delay = min(idle) + self.idle_grace - now
                    loop = asyncio.get_running_loop()
                    self._timer = loop.call_later(max(delay, 0.0), self._make_room)
                return

    def _end_idle(self, now: float, address: str | None) -> bool:
        """End the attempts idle past their grace; whether that made room (for
        ``address``, or for anyone)."""
        expired = [a for a in self._running if not a.heard and now - a.started >= self.idle_grace]
        for attempt in expired:
            self._release(attempt)
            attempt.abort()
        return bool(expired) and (address is None or self._fits(address))

    def _release(self, attempt: Attempt) -> bool:
        if attempt not in self._running:
            return False
        del self._running[attempt]
        self._per_address[attempt.address] -= 1
        if not self._per_address[attempt.address]:
            del self._per_address[attempt.address]
        return True
