"""The sync facade next to RPyC's classic mode: ``python -m benchmarks.syncfacade``.

Both systems hold a proxy to a list in a fresh remote interpreter (``aiopushy.sync``:
``conn.modules.builtins.list()``, a ``SyncProxy`` under Pushy's rule; RPyC:
``conn.modules.builtins.list()``, a netref) and time, alternating round by round:

* a method call on the remote list: ``remote.count(None)`` (it changes nothing, so every
  call does the same work);
* ``len(remote)``.

Each sample is the mean over a batch of calls; the table gives medians and the ratio of
aiopushy to RPyC (target: at most 1.0, not slower). The round trips per operation are
counted for both and reported with the figures. Needs RPyC (``pip install -e
".[bench]"``); ``--quick`` is a smoke run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiopushy import sync as pushy

from .core import Comparison, compare, family_main, summarize, table
from .systems.rpyc import Rpyc

A_METHOD = "aiopushy.sync: remote.count(None)"
R_METHOD = "RPyC classic: remote.count(None)"
A_LEN = "aiopushy.sync: len(remote)"
R_LEN = "RPyC classic: len(remote)"
SCENARIOS = (
    ("method", "method call on a remote list", (A_METHOD, R_METHOD)),
    ("len", "len() of a remote list", (A_LEN, R_LEN)),
)
COMPARISONS = (Comparison(A_METHOD, R_METHOD, 1.0), Comparison(A_LEN, R_LEN, 1.0))


@dataclass(frozen=True)
class Settings:
    """How much to measure."""

    rounds: int
    batch: int
    warmup: int


FULL = Settings(rounds=15, batch=200, warmup=200)
QUICK = Settings(rounds=3, batch=20, warmup=20)


def mean_time(call: Callable[[], Any], batch: int) -> float:
    """Seconds per call, over ``batch`` calls."""
    start = time.perf_counter()
    for _ in range(batch):
        call()
    return (time.perf_counter() - start) / batch


def requests_of(call: Callable[[], Any], conn: pushy.SyncSession) -> float:
    """Requests (each one round trip) ``conn`` sends for one ``call()``."""
    before = conn.async_session.statistics()["requests"]
    call()
    return float(conn.async_session.statistics()["requests"] - before)


def measure(python: str, settings: Settings) -> dict[str, Any]:
    """Open both systems, measure, and return the results (``core`` layout)."""
    rpyc = Rpyc(python)
    try:
        with pushy.connect("local:", python=python) as conn:
            mine, theirs = conn.modules.builtins.list(), rpyc.conn.modules.builtins.list()
            calls: dict[str, Callable[[], Any]] = {
                A_METHOD: lambda: mine.count(None),
                R_METHOD: lambda: theirs.count(None),
                A_LEN: lambda: len(mine),
                R_LEN: lambda: len(theirs),
            }
            for call in calls.values():
                mean_time(call, settings.warmup)
            samples: dict[str, list[float]] = {system: [] for system in calls}
            for _ in range(settings.rounds):
                for system, call in calls.items():
                    samples[system].append(mean_time(call, settings.batch))
            round_trips: dict[str, float] = {}
            for system in (A_METHOD, A_LEN):
                round_trips[system] = requests_of(calls[system], conn)
            for system in (R_METHOD, R_LEN):
                round_trips[system] = count_rpyc(rpyc, calls[system])
    finally:
        rpyc.close()
    stats = {system: summarize(values) for system, values in samples.items()}
    return {
        "settings": vars(settings),
        "round_trips": round_trips,
        "scenarios": {
            scenario: {"label": label, "systems": {s: stats[s] for s in systems}}
            for scenario, label, systems in SCENARIOS
        },
        "comparisons": [compare(stats, comparison) for comparison in COMPARISONS],
    }


def count_rpyc(rpyc: Rpyc, call: Callable[[], Any]) -> float:
    """Synchronous requests RPyC makes for one ``call()``."""
    return rpyc.count_requests(call)[0]


def run_and_report(python: str, quick: bool) -> dict[str, Any]:
    """Measure, print the table (with round trips per call); the results for the JSON."""
    settings = QUICK if quick else FULL
    print(flush=True)
    print(
        f"## sync facade vs RPyC classic ({settings.rounds} rounds x {settings.batch} calls, "
        "systems alternating)",
        flush=True,
    )
    results = measure(python, settings)
    print()
    print(table(results))
    trips = ", ".join(f"{s}: {n:g}" for s, n in results["round_trips"].items())
    print(f"\nround trips per call: {trips}", flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.syncfacade [--quick] [--json PATH] [--python PATH]``."""
    return family_main(
        "syncfacade",
        "The sync facade's proxy calls next to RPyC's classic mode.",
        "few iterations: a smoke run of a few seconds",
        run_and_report,
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
