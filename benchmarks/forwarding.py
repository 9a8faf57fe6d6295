"""Forwarding a local package to many interpreters: ``python -m benchmarks.forwarding``.

A pure-Python package of about 1 MB (``PACKAGE_MODULES`` modules of generated functions,
which its ``__init__`` imports) is written to a temporary directory that only the
controller has on ``sys.path``. Then each system, systems alternating round by round:

* starts ``N`` interpreters (``local:`` sessions gathered at once; Mitogen's
  ``router.local()`` from ``N`` threads), timed as *connect*;
* calls ``entry.run()`` of the package in each at once (``conn.call``; Mitogen's
  ``context.call``): the remote lacks the package, so every interpreter imports it
  through its system's forwarding, timed as *import*;
* closes them all.

Reported: median wall times over the rounds, and the bytes the interpreters read during
the import phase (the sum of ``rchar`` in ``/proc/PID/io`` over the children: the
forwarded modules, plus the call and anything else they read). Goal: aiopushy's import
phase no slower than Mitogen's. Needs Mitogen (``pip install -e ".[bench]"``); ``--quick``
is a smoke run (N = 5, one round).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiopushy

from . import _peers_systems as peers
from .core import Comparison, compare, family_main, summarize, table

PACKAGE_MODULES = 20
MODULE_FUNCTIONS = 260  # about 50 KB of source per module


@dataclass(frozen=True)
class Settings:
    """How much to measure."""

    interpreters: int
    rounds: int


FULL = Settings(interpreters=50, rounds=3)
QUICK = Settings(interpreters=5, rounds=1)


def write_package(root: Path, name: str) -> int:
    """Write the package; its size in bytes."""
    rng = random.Random(1)
    package = root / name
    package.mkdir()
    size = 0
    imports = []
    for index in range(PACKAGE_MODULES):
        lines = [f'"""Generated module {index}."""', "import math", ""]
        for number in range(MODULE_FUNCTIONS):
            a, b = rng.randrange(1000), rng.randrange(1000)
            lines += [
                f"def function_{number}(x, y={a}):",
                f'    """Return a mix of x and y (variant {number})."""',
                f"    total = x * {b} + y - math.floor(x / {a + 1})",
                "    for step in range(3):",
                f"        total += step * {b % 7}",
                "    return total",
                "",
            ]
        text = "\n".join(lines) + "\n"
        (package / f"module_{index}.py").write_text(text)
        size += len(text)
        imports.append(f"from . import module_{index}")
    entry = "def run():\n    return sum(m.function_1(1) for m in MODULES)\n"
    init = (
        "\n".join(imports)
        + f"\nMODULES = [{', '.join(f'module_{i}' for i in range(PACKAGE_MODULES))}]\n"
    )
    (package / "__init__.py").write_text(init)
    (package / "entry.py").write_text(f"from . import MODULES\n\n\n{entry}")
    return size + len(init)


@contextmanager
def local_package() -> Iterator[tuple[str, int, Callable[[], int]]]:
    """The package, importable here only: ``(name, size, entry.run)``."""
    root = Path(tempfile.mkdtemp(prefix="aiopushy-forwarding-"))
    name = f"fwdbench_{os.getpid()}"
    try:
        size = write_package(root, name)
        sys.path.insert(0, str(root))
        entry = importlib.import_module(f"{name}.entry")
        yield name, size, entry.run
    finally:
        sys.path.remove(str(root))
        shutil.rmtree(root, ignore_errors=True)


def rchar(pid: int) -> int:
    """Bytes process ``pid`` has read so far."""
    with open(f"/proc/{pid}/io", encoding="ascii") as io:
        for line in io:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise RuntimeError(f"no rchar for {pid}")


async def aiopushy_round(python: str, n: int, run: Callable[[], int]) -> tuple[float, float, int]:
    """``(connect, import, bytes read)`` for aiopushy."""
    start = time.perf_counter()
    sessions = await asyncio.gather(
        *(aiopushy.connect("local:", python=[python, "-S"]) for _ in range(n))
    )
    try:
        connected = time.perf_counter()
        pids = [s.info["pid"] for s in sessions]
        before = sum(rchar(pid) for pid in pids)
        middle = time.perf_counter()
        results = await asyncio.gather(*(s.call(run) for s in sessions))
        done = time.perf_counter()
        read = sum(rchar(pid) for pid in pids) - before
        if len(set(results)) != 1:
            raise RuntimeError(f"different results: {set(results)}")
        return connected - start, done - middle, read
    finally:
        await asyncio.gather(*(s.close() for s in sessions))


def mitogen_round(
    python: str, n: int, run: Callable[[], int], hub: peers.MitogenHub
) -> tuple[float, float, int]:
    """``(connect, import, bytes read)`` for Mitogen."""
    router = hub.get()
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        start = time.perf_counter()
        contexts = list(pool.map(lambda _: router.local(python_path=[python, "-S"]), range(n)))
        try:
            connected = time.perf_counter()
            pids = list(pool.map(lambda c: c.call(os.getpid), contexts))
            before = sum(rchar(pid) for pid in pids)
            middle = time.perf_counter()
            results = list(pool.map(lambda c: c.call(run), contexts))
            done = time.perf_counter()
            read = sum(rchar(pid) for pid in pids) - before
        finally:
            for context in contexts:
                context.shutdown(wait=True)
    if len(set(results)) != 1:
        raise RuntimeError(f"different results: {set(results)}")
    return connected - start, done - middle, read


A = "aiopushy"
M = "Mitogen"


def measure(python: str, settings: Settings) -> dict[str, Any]:
    """Both systems, alternating; results in the ``core`` layout."""
    import mitogen  # noqa: F401 - fail early, before any work, if it is missing

    hub = peers.MitogenHub()
    samples: dict[str, dict[str, list[float]]] = {
        phase: {A: [], M: []} for phase in ("connect", "import", "bytes")
    }
    try:
        with local_package() as (name, size, run):
            for _ in range(settings.rounds):
                for system in (A, M):
                    if system == A:
                        figures = asyncio.run(aiopushy_round(python, settings.interpreters, run))
                    else:
                        figures = mitogen_round(python, settings.interpreters, run, hub)
                    for phase, value in zip(("connect", "import", "bytes"), figures, strict=True):
                        samples[phase][system].append(float(value))
    finally:
        hub.close()
    n = settings.interpreters
    scenarios = {
        phase: {
            "label": f"{phase} ({n} interpreters)",
            "systems": {
                f"{system}: {phase}": summarize(values) for system, values in by_system.items()
            },
        }
        for phase, by_system in samples.items()
        if phase != "bytes"
    }
    stats = {s: v for scenario in scenarios.values() for s, v in scenario["systems"].items()}
    return {
        "settings": vars(settings),
        "package": {"name": name, "bytes": size, "modules": PACKAGE_MODULES + 2},
        "bytes_read": {system: summarize(values) for system, values in samples["bytes"].items()},
        "scenarios": scenarios,
        "comparisons": [
            compare(stats, Comparison(f"{A}: import", f"{M}: import", 1.0)),
            compare(stats, Comparison(f"{A}: connect", f"{M}: connect", None)),
        ],
    }


def run_and_report(python: str, quick: bool) -> dict[str, Any]:
    """Measure and print the table and the bytes read; the results for the JSON."""
    settings = QUICK if quick else FULL
    print(flush=True)
    print(
        f"## forwarding a 1 MB package to {settings.interpreters} interpreters "
        f"({settings.rounds} rounds, systems alternating)",
        flush=True,
    )
    results = measure(python, settings)
    print()
    print(table(results))
    for system, stats in results["bytes_read"].items():
        print(f"{system}: the interpreters read {stats['median'] / 1e6:.2f} MB while importing")
    print(f"package: {results['package']['bytes'] / 1e6:.2f} MB of source", flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.forwarding [--quick] [--json PATH] [--python PATH]``."""
    return family_main(
        "forwarding",
        "A forwarded 1 MB package imported by many interpreters, next to Mitogen.",
        "5 interpreters, one round: a smoke run",
        run_and_report,
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
