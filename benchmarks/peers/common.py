"""What the scenarios of the peers family share: the state of a run (``Run``: what was
skipped and why, the round trips counted, the facts for the JSON) and timing helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiopushy

from ..core import OPERATION_TIMEOUT, BenchmarkError, Measure, progress
from ..systems.mitogen import MitogenHub
from ..systems.registry import PEERS
from ..systems.rpyc import Rpyc
from .scenarios import MIB, PeerSettings

#: Seconds a guarded measure may take (less than ``alternate``'s own limit).
GUARD_TIMEOUT = OPERATION_TIMEOUT * 0.9


def describe(exc: BaseException) -> str:
    """``exc`` in one short line: its type and the start of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160] if text else ''}".rstrip(": ")


def trips(count: float) -> str:
    """``count`` round trips, as a row name's note."""
    return f"{count:.3g} round trip{'' if count == 1 else 's'}"


class Run:
    """The state of one run: which systems were skipped and why, the round trips counted,
    the facts for the JSON's ``meta``, and the row names (with their counts)."""

    def __init__(self, python: str, settings: PeerSettings) -> None:
        self.python = python
        self.settings = settings
        self.skipped: dict[str, str] = {}
        self.round_trips: dict[str, float] = {}
        self.facts: dict[str, Any] = {}
        self.hub = MitogenHub()
        self.available: list[str] = []
        self.bulk_sizes: dict[str, int] = {}  # payload bytes of each bulk system

    def skip(self, system: str, exc: BaseException | str) -> None:
        reason = exc if isinstance(exc, str) else describe(exc)
        self.skipped.setdefault(system, reason)
        progress(f"peers: skipped {system}: {reason}")

    def guard(self, system: str, measure: Callable[[], Awaitable[float]]) -> Measure:
        """``measure`` as one of ``alternate``'s. A peer's failure skips that system for
        good; aiopushy's and the baselines' end the run."""

        async def guarded() -> dict[str, float]:
            if system in self.skipped:
                return {}
            if system.split(maxsplit=1)[0].rstrip(":") not in PEERS:
                return {system: await measure()}
            try:
                return {system: await asyncio.wait_for(measure(), GUARD_TIMEOUT)}
            except Exception as exc:  # a peer that fails is reported, not fatal
                self.skip(system, exc)
                return {}

        return guarded

    def label(self, system: str) -> str:
        notes = []
        if system in self.round_trips:
            notes.append(trips(self.round_trips[system]))
        if self.bulk_sizes.get(system, self.settings.bulk_size) != self.settings.bulk_size:
            notes.append(f"{self.bulk_sizes[system] // MIB} MiB")
        return f"{system} ({', '.join(notes)})" if notes else system


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a worker thread (the peers block)."""
    return await asyncio.to_thread(fn, *args)


def mean_time(call: Callable[[], Any], count: int, expected: Any) -> float:
    """Mean seconds per ``call()`` over ``count`` in a row, each checked."""
    start = time.perf_counter()
    for _ in range(count):
        result = call()
        if result != expected:
            raise BenchmarkError(f"expected {expected!r}, got {result!r}")
    return (time.perf_counter() - start) / count


async def mean_await(make: Callable[[], Awaitable[Any]], count: int, expected: Any) -> float:
    """Mean seconds per ``await make()`` over ``count`` in a row, each checked."""
    start = time.perf_counter()
    for _ in range(count):
        result = await make()
        if result != expected:
            raise BenchmarkError(f"expected {expected!r}, got {result!r}")
    return (time.perf_counter() - start) / count


def time_once(call: Callable[[], Any], check: Callable[[Any], bool]) -> float:
    """Seconds one ``call()`` takes, its result checked."""
    start = time.perf_counter()
    result = call()
    elapsed = time.perf_counter() - start
    if not check(result):
        raise BenchmarkError(f"unexpected result {result!r:.100}")
    return elapsed


async def time_await(make: Callable[[], Awaitable[Any]], check: Callable[[Any], bool]) -> float:
    """Seconds one ``await make()`` takes, its result checked."""
    start = time.perf_counter()
    result = await make()
    elapsed = time.perf_counter() - start
    if not check(result):
        raise BenchmarkError(f"unexpected result {result!r:.100}")
    return elapsed


async def count_aiopushy(conn: aiopushy.Session, make: Callable[[], Awaitable[Any]]) -> float:
    """Requests (each one round trip) ``conn`` sends per ``await make()``."""
    reps = 3
    before = conn.statistics()["requests"]
    for _ in range(reps):
        await make()
    return (conn.statistics()["requests"] - before) / reps


def count_rpyc(rpyc: Rpyc, call: Callable[[], Any]) -> tuple[float, float]:
    """Mean round trips (synchronous requests) and requests of all kinds per ``call()``."""
    return rpyc.count_requests(call, reps=5)
