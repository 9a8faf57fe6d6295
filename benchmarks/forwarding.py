"""Forwarding a local package to many interpreters: ``python -m benchmarks.forwarding``.

A pure-Python package of about 1 MB (``PACKAGE_MODULES`` modules of generated functions,
which its ``__init__`` imports) is written to a temporary directory that only the
controller has on ``sys.path``. Then each system, systems alternating round by round:

* starts ``N`` interpreters (``local:`` sessions gathered at once; Mitogen's
  ``router.local()`` from ``N`` threads), timed as *connect*;
* calls ``entry.run()`` of the package in each at once (``conn.call``; Mitogen's
  ``context.call``): the remote lacks the package, so every interpreter imports it
  through its system's forwarding, timed as *import*;
* closes them all;

and then again with the ``N`` interpreters started via one relay interpreter
(``connect(..., via=relay)``; Mitogen's ``router.local(via=relay)``), where each system
serves them from what the relay keeps.

Reported: median wall times over the rounds, and the bytes the interpreters read during
the import phase (the sum of ``rchar`` in ``/proc/PID/io`` over the children: the
forwarded modules, plus the call and anything else they read) and, via a relay, the
bytes the relay read then (what crossed the link to it: each module once). Goal: aiopushy's import
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

from .core import Comparison, compare, family_main, summarize, table
from .systems.mitogen import MitogenHub

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


@dataclass(frozen=True)
class Figures:
    """One round of one system."""

    connect: float  # seconds to start the interpreters
    imports: float  # seconds for all of them to import the package and run it
    read: int  # bytes the interpreters read during the import phase
    relay_read: int  # bytes the relay read meanwhile (0 without one)


def _check(results: Sequence[int]) -> None:
    if len(set(results)) != 1:
        raise RuntimeError(f"different results: {set(results)}")


async def aiopushy_round(python: str, n: int, run: Callable[[], int], relayed: bool) -> Figures:
    """One round of aiopushy, the interpreters started here or via one relay."""
    interpreter = [python, "-S"]
    relay = await aiopushy.connect("local:", python=interpreter) if relayed else None
    try:
        start = time.perf_counter()
        sessions = await asyncio.gather(
            *(aiopushy.connect("local:", python=interpreter, via=relay) for _ in range(n))
        )
        try:
            connected = time.perf_counter()
            pids = [s.info["pid"] for s in sessions]
            relay_pids = [relay.info["pid"]] if relay else []
            before, relay_before = _read(pids), _read(relay_pids)
            middle = time.perf_counter()
            _check(await asyncio.gather(*(s.call(run) for s in sessions)))
            done = time.perf_counter()
            # Read before the interpreters end: a reaped child's count joins its parent's.
            read, relay_read = _read(pids) - before, _read(relay_pids) - relay_before
            return Figures(connected - start, done - middle, read, relay_read)
        finally:
            await asyncio.gather(*(s.close() for s in sessions))
    finally:
        if relay is not None:
            await relay.close()


def mitogen_round(
    python: str, n: int, run: Callable[[], int], hub: MitogenHub, relayed: bool
) -> Figures:
    """One round of Mitogen, the interpreters started here or via one relay."""
    router = hub.get()
    interpreter = [python, "-S"]
    relay = router.local(python_path=interpreter) if relayed else None
    try:
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            start = time.perf_counter()
            contexts = list(
                pool.map(lambda _: router.local(python_path=interpreter, via=relay), range(n))
            )
            try:
                connected = time.perf_counter()
                pids = list(pool.map(lambda c: c.call(os.getpid), contexts))
                relay_pids = [relay.call(os.getpid)] if relay else []
                before, relay_before = _read(pids), _read(relay_pids)
                middle = time.perf_counter()
                _check(list(pool.map(lambda c: c.call(run), contexts)))
                done = time.perf_counter()
                read, relay_read = _read(pids) - before, _read(relay_pids) - relay_before
            finally:
                for context in contexts:
                    context.shutdown(wait=True)
    finally:
        if relay is not None:
            relay.shutdown(wait=True)
    return Figures(connected - start, done - middle, read, relay_read)


def _read(pids: Sequence[int]) -> int:
    return sum(rchar(pid) for pid in pids)


A = "aiopushy"
M = "Mitogen"


MODES = {"direct": False, "via a relay": True}
PHASES = ("connect", "import")


def measure(python: str, settings: Settings) -> dict[str, Any]:
    """Both systems, alternating, each with its interpreters started here and via one
    relay; results in the ``core`` layout."""
    import mitogen  # noqa: F401 - fail early, before any work, if it is missing

    hub = MitogenHub()
    rounds: dict[tuple[str, str], list[Figures]] = {
        (mode, system): [] for mode in MODES for system in (A, M)
    }
    try:
        with local_package() as (name, size, run):
            for _ in range(settings.rounds):
                for (mode, system), figures in rounds.items():
                    relayed = MODES[mode]
                    if system == A:
                        n = settings.interpreters
                        figures.append(asyncio.run(aiopushy_round(python, n, run, relayed)))
                    else:
                        figures.append(
                            mitogen_round(python, settings.interpreters, run, hub, relayed)
                        )
    finally:
        hub.close()
    n = settings.interpreters
    scenarios: dict[str, Any] = {}
    comparisons = []
    for mode in MODES:
        for phase in PHASES:
            key = phase if mode == "direct" else f"{phase} via a relay"
            systems = {
                f"{system}: {key}": summarize(
                    [f.connect if phase == "connect" else f.imports for f in rounds[mode, system]]
                )
                for system in (A, M)
            }
            scenarios[key] = {"label": f"{key} ({n} interpreters)", "systems": systems}
            goal = 1.0 if phase == "import" else None
            comparisons.append(compare(systems, Comparison(f"{A}: {key}", f"{M}: {key}", goal)))
    return {
        "settings": vars(settings),
        "package": {"name": name, "bytes": size, "modules": PACKAGE_MODULES + 2},
        "bytes_read": {
            system: summarize([f.read for f in rounds["direct", system]]) for system in (A, M)
        },
        "relay_bytes_read": {
            system: summarize([f.relay_read for f in rounds["via a relay", system]])
            for system in (A, M)
        },
        "scenarios": scenarios,
        "comparisons": comparisons,
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
    for system, stats in results["relay_bytes_read"].items():
        print(
            f"{system}: via a relay, the relay read {stats['median'] / 1e6:.2f} MB while "
            "its interpreters imported"
        )
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
