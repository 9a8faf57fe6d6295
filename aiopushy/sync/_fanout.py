"""``fanout()`` and ``Group`` for plain functions: the async ones, with jobs in threads."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._fanout import Group as AsyncGroup
from .._fanout import OutputFactory, Progress, Result
from .._fanout import fanout as async_fanout
from .._session import Session
from ._loop import facade_loop, in_thread, opened
from ._proxy import call_on
from ._session import SyncSession, async_via

SyncJob = Callable[[SyncSession], Any]
"""``job(session) -> value``: a plain function, run in a worker thread."""


def _async_options(options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if options is None:
        return None
    converted = dict(options)
    if "via" in converted:
        converted["via"] = async_via(converted["via"])
    return converted


def _async_per_target(
    per_target: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, dict[str, Any]]:
    return {target: _async_options(o) or {} for target, o in (per_target or {}).items()}


def _async_job(job: SyncJob) -> Callable[[Session], Any]:
    async def run_job(session: Session) -> Any:
        return await in_thread(job, SyncSession(session))

    return run_job


async def _fanout(targets: Sequence[str], job: SyncJob, options: dict[str, Any]) -> Any:
    return await async_fanout(targets, _async_job(job), **options)


def fanout(
    targets: Sequence[str],
    job: SyncJob,
    *,
    limit: int = 100,
    timeout: float | None = 30.0,
    connect_kwargs: Mapping[str, Any] | None = None,
    per_target: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Progress | None = None,
    raise_on_error: bool = False,
    retries: int = 0,
    output: OutputFactory | None = None,
) -> list[Result]:
    """Run ``job(session)`` on every target; one ``Result`` per target, in order.

    ``aiopushy.fanout()`` with a plain function: each job runs in a worker thread of its
    own with a ``SyncSession``, while the facade's event loop drives every session.
    The arguments are ``aiopushy.fanout()``'s (``via`` in ``connect_kwargs`` or
    ``per_target`` may be a ``SyncSession``). When a target's ``timeout`` runs out, its
    session is closed and its result says so; the job's thread then fails at its next
    call on that session. ``progress`` and ``output`` run in the thread running the loop.
    """
    options: dict[str, Any] = {
        "limit": limit,
        "timeout": timeout,
        "connect_kwargs": _async_options(connect_kwargs),
        "per_target": _async_per_target(per_target),
        "progress": progress,
        "raise_on_error": raise_on_error,
        "retries": retries,
        "output": output,
    }
    results: list[Result] = call_on(facade_loop(), _fanout, targets, job, options)
    return results


class Group:
    """Sessions to many targets, kept open across jobs; the blocking ``aiopushy.Group``.

    ``with Group(targets) as group:`` connects to all of them; ``group.sessions`` lists
    ``(target, SyncSession)`` for those connected, ``group.failed`` the results of those
    that could not, and ``group.run(job)`` runs a plain function on every session, each
    in a thread of its own.
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
        self._group = AsyncGroup(
            targets,
            limit=limit,
            timeout=timeout,
            connect_kwargs=_async_options(connect_kwargs),
            per_target=_async_per_target(per_target),
        )

    @property
    def targets(self) -> list[str]:
        """The targets, as given."""
        return self._group.targets

    @property
    def sessions(self) -> list[tuple[str, SyncSession]]:
        """``(target, session)`` for each target connected, in the order of the targets."""
        return [(target, SyncSession(session)) for target, session in self._group.sessions]

    @property
    def failed(self) -> list[Result]:
        """The results of the targets that could not connect."""
        return self._group.failed

    def __enter__(self) -> Group:
        call_on(facade_loop(), self._group.__aenter__)
        for _, session in self._group.sessions:
            opened(session)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every session."""
        call_on(facade_loop(), self._group.aclose)

    def run(
        self,
        job: SyncJob,
        *,
        timeout: float | None = None,
        progress: Progress | None = None,
    ) -> list[Result]:
        """Run ``job(session)`` on every connected session, each in a thread of its own;
        results in the order of the targets."""
        run = functools.partial(
            self._group.run, _async_job(job), timeout=timeout, progress=progress
        )
        results: list[Result] = call_on(facade_loop(), run)
        return results
