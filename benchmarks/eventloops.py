"""aiopushy on uvloop next to aiopushy on asyncio's own loop: ``python -m benchmarks.eventloops``.

uvloop is the optional ``speed`` extra (``pip install aiopushy[speed]``); the command line
and the daemon use it when it is installed. Each round starts one child process per loop,
alternating (``--child asyncio`` / ``--child uvloop``: ``AIOPUSHY_LOOP`` chooses the loop
in the child, as it does for the command line), and each child measures on a ``local:``
session (``python -S``):

* the ``getpid`` round trip (a proxy resolved beforehand; mean over a batch);
* 1,000 calls in flight through ``asyncio.gather`` and through ``aiopushy.gather``;
* connect + first call, with connect's defaults (the remote runs ``site`` lazily).

The table gives medians over the rounds and the ratio of uvloop to asyncio. Needs
uvloop; ``--quick`` is a smoke run.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio

import aiopushy
from aiopushy._eventloop import LOOP_VARIABLE, backend_options

from .core import Comparison, compare, family_main, summarize, table

LOOPS = ("asyncio", "uvloop")
ASYNCIO, UVLOOP = (f"aiopushy on {loop}" for loop in LOOPS)
#: (key, scenario label) of what each child measures, in seconds.
MEASURED = (
    ("round_trip", "getpid round trip"),
    ("gather", "1,000 calls in flight: asyncio.gather"),
    ("pushy_gather", "1,000 calls in flight: aiopushy.gather"),
    ("connect", "connect + first call (defaults)"),
)
IN_FLIGHT = 1000


@dataclass(frozen=True)
class Settings:
    """How much to measure."""

    rounds: int
    batch: int  # round trips per sample
    samples: int  # samples per child and scenario


FULL = Settings(rounds=6, batch=200, samples=7)
QUICK = Settings(rounds=1, batch=20, samples=2)


async def child(python: str, settings: Settings) -> dict[str, float]:
    """One child's medians, in seconds (on whatever loop it runs)."""
    figures: dict[str, list[float]] = {key: [] for key, _ in MEASURED}
    async with aiopushy.connect("local:", python=[python, "-S"]) as conn:
        getpid = await aiopushy.byref(conn.modules.os.getpid)
        for _ in range(settings.batch):
            await getpid()
        for _ in range(settings.samples):
            start = time.perf_counter()
            for _ in range(settings.batch):
                await getpid()
            figures["round_trip"].append((time.perf_counter() - start) / settings.batch)
            start = time.perf_counter()
            await asyncio.gather(*(conn.modules.os.getpid() for _ in range(IN_FLIGHT)))
            figures["gather"].append(time.perf_counter() - start)
            start = time.perf_counter()
            await aiopushy.gather(*(conn.modules.os.getpid() for _ in range(IN_FLIGHT)))
            figures["pushy_gather"].append(time.perf_counter() - start)
    for _ in range(settings.samples):
        start = time.perf_counter()
        async with aiopushy.connect("local:", python=python) as conn:
            await conn.modules.os.getpid()
        figures["connect"].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in figures.items()}


def run_child(python: str, loop: str, quick: bool) -> dict[str, float]:
    """Measure in a child process on ``loop``."""
    command = [sys.executable, "-m", "benchmarks.eventloops", "--child", loop, "--python", python]
    completed = subprocess.run(
        command + (["--quick"] if quick else []),
        env={**os.environ, LOOP_VARIABLE: loop},
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    figures: dict[str, float] = json.loads(completed.stdout.splitlines()[-1])
    return figures


def measure(python: str, quick: bool) -> dict[str, Any]:
    """Both loops, alternating round by round; results in the ``core`` layout."""
    settings = QUICK if quick else FULL
    samples: dict[str, dict[str, list[float]]] = {key: {} for key, _ in MEASURED}
    for _ in range(settings.rounds):
        for loop in LOOPS:
            for key, value in run_child(python, loop, quick).items():
                samples[key].setdefault(f"aiopushy on {loop}: {key}", []).append(value)
    scenarios = {
        key: {
            "label": label,
            "systems": {system: summarize(values) for system, values in samples[key].items()},
        }
        for key, label in MEASURED
    }
    stats = {s: v for scenario in scenarios.values() for s, v in scenario["systems"].items()}
    return {
        "settings": vars(settings),
        "scenarios": scenarios,
        "comparisons": [
            compare(stats, Comparison(f"{UVLOOP}: {key}", f"{ASYNCIO}: {key}", None))
            for key, _ in MEASURED
        ],
    }


def run_and_report(python: str, quick: bool) -> dict[str, Any]:
    """Measure and print the table; the results for the JSON."""
    print(flush=True)
    print("## aiopushy on uvloop and on asyncio's own loop (rounds alternating)", flush=True)
    results = measure(python, quick)
    print()
    print(table(results), flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.eventloops [--quick] [--json PATH] [--python PATH]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--child" in args:  # one measuring child, on the loop AIOPUSHY_LOOP names
        python = args[args.index("--python") + 1]
        settings = QUICK if "--quick" in args else FULL
        figures = anyio.run(child, python, settings, backend_options=backend_options())
        print(json.dumps(figures))
        return 0
    return family_main(
        "eventloops",
        "aiopushy on uvloop next to aiopushy on asyncio's own loop.",
        "one round, small batches: a smoke run",
        run_and_report,
        args,
    )


if __name__ == "__main__":
    sys.exit(main())
