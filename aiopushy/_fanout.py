"""Fan-out: one job on many targets from one event loop.

``await fanout(targets, job)`` connects to every target (at most ``limit`` start-ups at
once: SSH handshakes are the expensive part), runs ``job(session)`` on each, and returns
one ``Result`` per target, in the order of the targets. A slow, dead or refusing target
yields an error result within ``timeout`` and never holds up the others. ``Group`` keeps
the sessions open across several jobs.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from ._connect import connect
from ._exceptions import (
    AuthenticationError,
    ConnectError,
    ConnectTimeout,
    HostKeyError,
    PushyError,
    PythonNotFoundError,
    PythonTooOldError,
)
from ._session import Session
from ._stderr import OutputHandler

Job = Callable[[Session], Awaitable[Any]]
"""``async def job(session) -> value`` (a lambda returning an awaitable works too)."""

Progress = Callable[[int, int, int, int], None]
"""``progress(ok, failed, running, total)``, called whenever a target finishes."""


@dataclass
class Result:
    """What one target gave: ``value`` if ``ok``, else ``error``."""

    target: str
    ok: bool
    value: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0


class FanoutError(PushyError):
    """Raised with ``raise_on_error=True`` when any target failed; ``results`` has all."""

    def __init__(self, results: list[Result]) -> None:
        self.results = results
        self.failed = [r for r in results if not r.ok]
        names = ", ".join(r.target for r in self.failed[:5])
        more = f" and {len(self.failed) - 5} more" if len(self.failed) > 5 else ""
        super().__init__(f"{len(self.failed)} of {len(results)} targets failed: {names}{more}")


def output_prefix(target: str) -> str:
    """What each line of ``target``'s output starts with: the target and a colon, one
    colon only when the target ends with one (``local: ``, ``ssh:web1: ``)."""
    return f"{target.removesuffix(':')}: "


def prefixed_output(target: str) -> OutputHandler:
    """An output handler writing whole lines prefixed with ``output_prefix(target)``."""
    prefix = output_prefix(target)
    partial = {"stdout": b"", "stderr": b""}

    def write(stream: str, data: bytes) -> None:
        lines = (partial[stream] + data).split(b"\n")
        partial[stream] = lines.pop()
        out = sys.stderr if stream == "stderr" else sys.stdout
        for line in lines:
            out.write(f"{prefix}{line.decode('utf-8', 'replace')}\n")
        out.flush()

    return write


NOT_RETRIED = (AuthenticationError, HostKeyError, PythonNotFoundError, PythonTooOldError)
BACKOFF = 0.5


class _Clock:
    """A target's deadline: ``timeout`` seconds from the moment it first gets a start-up
    slot, so targets queued behind ``limit`` others do not time out while they wait."""

    def __init__(self, target: str, timeout: float | None) -> None:
        self.target, self.timeout = target, timeout
        self.started: float | None = None
        self.deadline = math.inf

    def start(self) -> None:
        if self.started is None:
            self.started = anyio.current_time()
            if self.timeout is not None:
                self.deadline = self.started + self.timeout

    @property
    def elapsed(self) -> float:
        return 0.0 if self.started is None else anyio.current_time() - self.started

    @contextlib.contextmanager
    def limit(self, what: str) -> Iterator[None]:
        """Raise ``TimeoutError`` (``ConnectTimeout`` for ``"connect"``) at the deadline."""
        with anyio.CancelScope(deadline=self.deadline) as scope:
            yield
        if scope.cancelled_caught:
            kind = ConnectTimeout if what == "connect" else TimeoutError
            raise kind(f"{self.target}: {what} did not finish within {self.timeout} s")


async def _connect_with_retries(
    target: str,
    options: dict[str, Any],
    connecting: anyio.Semaphore,
    retries: int,
    clock: _Clock,
) -> Session:
    """Connect (holding one of ``limit`` start-up slots), retrying reachability failures."""
    for attempt in range(retries + 1):
        try:
            async with connecting:
                clock.start()
                with clock.limit("connect"):
                    return await connect(target, **options)
        except ConnectError as exc:
            out_of_time = anyio.current_time() >= clock.deadline
            if attempt == retries or out_of_time or isinstance(exc, NOT_RETRIED):
                raise
        with clock.limit("connect"):
            await anyio.sleep(BACKOFF * 2**attempt * (0.5 + random.random()))
    raise AssertionError("unreachable")


def raise_open_file_limit(targets: int) -> None:
    """Raise the soft limit on open files towards the hard one when many sessions need it.

    A session holds a handful of descriptors (pipes or sockets); the default soft limit
    of 1024 runs out at a few hundred targets.
    """
    try:
        import resource
    except ImportError:  # Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = targets * 8 + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


class _Tracker:
    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.progress = total, progress
        self.ok = self.failed = self.running = 0

    def started(self) -> None:
        self.running += 1

    def finished(self, ok: bool) -> None:
        self.running -= 1
        if ok:
            self.ok += 1
        else:
            self.failed += 1
        if self.progress is not None:
            self.progress(self.ok, self.failed, self.running, self.total)


OutputFactory = Callable[[int, str], OutputHandler]
"""``factory(index, target)``: the output handler for the target at ``index``."""


def _options(
    index: int,
    target: str,
    connect_kwargs: Mapping[str, Any] | None,
    per_target: Mapping[str, Mapping[str, Any]] | None,
    output: OutputFactory | None = None,
) -> dict[str, Any]:
    handler = output(index, target) if output else prefixed_output(target)
    options: dict[str, Any] = {"output": handler, **(connect_kwargs or {})}
    options.update((per_target or {}).get(target, {}))  # per-host settings win
    return options


async def _timed(clock: _Clock, work: Callable[[], Awaitable[Any]]) -> Result:
    try:
        value = await work()
    except Exception as exc:
        return Result(clock.target, False, error=exc, elapsed=clock.elapsed)
    return Result(clock.target, True, value=value, elapsed=clock.elapsed)


async def fanout(
    targets: Sequence[str],
    job: Job,
    *,
    limit: int = 100,
    timeout: float | None = 30.0,  # noqa: ASYNC109 - per target, not for the whole call
    connect_kwargs: Mapping[str, Any] | None = None,
    per_target: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Progress | None = None,
    raise_on_error: bool = False,
    retries: int = 0,
    output: OutputFactory | None = None,
) -> list[Result]:
    """Run ``job`` on every target; one ``Result`` per target, in order.

    Args:
        targets: ``"transport:address"`` strings.
        job: called with each connected session.
        limit: at most this many targets connecting at once.
        timeout: seconds for each target's connect plus job, counted from the moment
            it gets a start-up slot (waiting behind ``limit`` others does not count).
        connect_kwargs: ``connect()`` arguments for every target.
        per_target: ``connect()`` arguments by target, overriding ``connect_kwargs``.
        progress: ``progress(ok, failed, running, total)`` as targets finish.
        raise_on_error: raise ``FanoutError`` if any target failed.
        retries: connection attempts to repeat, with jittered exponential backoff, when
            a target cannot be reached (a rebooting host, an overloaded jump host);
            refused credentials and host keys are never retried.
        output: ``output(index, target)`` gives each target's output handler; by
            default remote output is written line by line, prefixed with the target.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    raise_open_file_limit(len(targets))
    results: list[Result | None] = [None] * len(targets)
    connecting = anyio.Semaphore(limit)
    tracker = _Tracker(len(targets), progress)

    async def one(index: int, target: str) -> None:
        clock = _Clock(target, timeout)

        async def work() -> Any:
            options = _options(index, target, connect_kwargs, per_target, output)
            session = await _connect_with_retries(target, options, connecting, retries, clock)
            async with session:
                with clock.limit("job"):
                    return await job(session)

        tracker.started()
        result = await _timed(clock, work)
        results[index] = result
        tracker.finished(result.ok)

    async with anyio.create_task_group() as group:
        for index, target in enumerate(targets):
            group.start_soon(one, index, target)
    final = [r for r in results if r is not None]
    if raise_on_error and any(not r.ok for r in final):
        raise FanoutError(final)
    return final


class Group:
    """Sessions to many targets, kept open across jobs.

    ``async with Group(targets) as group:`` connects to all of them (bounded by
    ``limit``); ``group.sessions`` lists ``(target, session)`` for those connected, in
    the order of the targets (a target may repeat: ``["local:"] * 8``), and
    ``group.failed`` holds the results of those that could not connect.
    ``await group.run(job)`` runs ``job`` on every connected session.
    """

    def __init__(
        self,
        targets: Sequence[str],
        *,
        limit: int = 100,
        timeout: float | None = 30.0,
        connect_kwargs: Mapping[str, Any] | None = None,
        per_target: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.targets = list(targets)
        self.sessions: list[tuple[str, Session]] = []
        self.failed: list[Result] = []
        self._limit, self._timeout = limit, timeout
        self._connect_kwargs, self._per_target = connect_kwargs, per_target

    async def __aenter__(self) -> Group:
        raise_open_file_limit(len(self.targets))
        connecting = anyio.Semaphore(self._limit)

        opened: list[Session | None] = [None] * len(self.targets)
        failures: list[tuple[int, Result]] = []

        async def open_one(index: int, target: str) -> None:
            clock = _Clock(target, self._timeout)

            async def work() -> Session:
                options = _options(index, target, self._connect_kwargs, self._per_target)
                return await _connect_with_retries(target, options, connecting, 0, clock)

            result = await _timed(clock, work)
            if result.ok:
                opened[index] = result.value
            else:
                failures.append((index, result))

        try:
            async with anyio.create_task_group() as group:
                for index, target in enumerate(self.targets):
                    group.start_soon(open_one, index, target)
        except BaseException:  # cancelled while connecting: close what did connect
            self.sessions = [(t, s) for t, s in zip(self.targets, opened, strict=True) if s]
            await self.aclose()
            raise
        self.sessions = [(t, s) for t, s in zip(self.targets, opened, strict=True) if s]
        self.failed = [result for _, result in sorted(failures, key=lambda pair: pair[0])]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every session (also on cancellation)."""
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as group:
                for _, session in self.sessions:
                    group.start_soon(session.close)
        self.sessions.clear()

    async def run(
        self,
        job: Job,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - per target, not for the whole call
        progress: Progress | None = None,
    ) -> list[Result]:
        """Run ``job`` on every connected session; results in the order of the targets."""
        results: list[Result | None] = [None] * len(self.sessions)
        tracker = _Tracker(len(self.sessions), progress)

        async def one(index: int, target: str, session: Session) -> None:
            tracker.started()
            clock = _Clock(target, timeout)
            clock.start()

            async def work() -> Any:
                with clock.limit("job"):
                    return await job(session)

            result = await _timed(clock, work)
            results[index] = result
            tracker.finished(result.ok)

        async with anyio.create_task_group() as group:
            for index, (target, session) in enumerate(self.sessions):
                group.start_soon(one, index, target, session)
        return [r for r in results if r is not None]
