"""The benchmark scenarios, their statistics and the report.

Two phases, each measuring its systems alternately (A B A B ... rounds) in the same run:

* round trips: a raw asyncio ping-pong with a stdlib echo loop (scenario
  ``raw_ping_pong``) and ``await conn.modules.os.getpid()`` on one open aiopushy session
  (``aiopushy_round_trip``). Both children are alive during the whole phase. A sample is
  the mean time of one round trip over a batch of sequential round trips.
* start-up: ``python -S -c pass`` and ``python -c pass`` spawned and awaited
  (``baseline_startup``), and ``await aiopushy.connect("local:")`` (``aiopushy_connect``),
  timed until it returns and, on the same session, until the first call has returned;
  also, for information, connect with ``python=[python, "-S"]`` (no ``site`` import on
  the remote), to tell aiopushy's own start-up cost from the interpreter's. Closing the
  session is not timed.

Every child is started as aiopushy starts its remote: ``asyncio.create_subprocess_exec``
with stdin, stdout and stderr piped and ``start_new_session=True``.

Also here, for every family (``ssh``, ``peers``, ``fanout``, ``syncfacade``,
``forwarding``): the children, timing helpers, statistics, tables and the running of a
family's command line. The families build on this module, never the reverse: it imports
none of them (``cli``, the command line of ``python -m benchmarks``, does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiopushy

#: Seconds allowed for any single measured operation or batch before the run fails.
OPERATION_TIMEOUT = 60.0
#: Seconds a finished child gets to exit after its input is closed, before it is killed.
EXIT_GRACE = 5.0
#: Rounds measured even when a phase's time budget has run out.
MIN_ROUNDS = 3

PIPES: dict[str, Any] = {
    "stdin": asyncio.subprocess.PIPE,
    "stdout": asyncio.subprocess.PIPE,
    "stderr": asyncio.subprocess.PIPE,
    "start_new_session": True,
}

#: The remote side of the raw ping-pong: echo length-prefixed messages from fd 0 to fd 1.
ECHO_LOOP = """\
import os
buf = b""
while True:
    while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
        chunk = os.read(0, 65536)
        if not chunk:
            raise SystemExit(0)
        buf += chunk
    size = 4 + int.from_bytes(buf[:4], "big")
    os.write(1, buf[:size])
    buf = buf[size:]
"""
PING_PAYLOAD = b"ping-0123456789abcde"  # 20 bytes
PING = len(PING_PAYLOAD).to_bytes(4, "big") + PING_PAYLOAD

# Scenario ids (keys of the JSON output) and system names (rows of the table).
RAW_PING_PONG = "raw_ping_pong"
AIOPUSHY_ROUND_TRIP = "aiopushy_round_trip"
BASELINE_STARTUP = "baseline_startup"
AIOPUSHY_CONNECT = "aiopushy_connect"

RAW = "raw asyncio ping-pong"
GETPID = "aiopushy: await conn.modules.os.getpid()"
PYTHON_S = "python -S -c pass"
PYTHON = "python -c pass"
CONNECT = 'aiopushy: await connect("local:")'
CONNECT_CALL = "aiopushy: connect + first call"
CONNECT_NO_SITE = 'aiopushy: connect(python=[python, "-S"])'

#: (scenario id, label in the table, its systems), in the order of the table.
SCENARIOS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (RAW_PING_PONG, "round trip (baseline)", (RAW,)),
    (AIOPUSHY_ROUND_TRIP, "round trip", (GETPID,)),
    (BASELINE_STARTUP, "start-up (baseline)", (PYTHON_S, PYTHON)),
    (AIOPUSHY_CONNECT, "connect", (CONNECT, CONNECT_CALL, CONNECT_NO_SITE)),
)


@dataclass(frozen=True)
class Comparison:
    """A system measured against a baseline, with the issue's target if it has one."""

    system: str
    baseline: str
    target: float | None


COMPARISONS = (
    Comparison(GETPID, RAW, 1.3),
    Comparison(PYTHON, PYTHON_S, None),
    Comparison(CONNECT, PYTHON_S, 2.0),
    Comparison(CONNECT_CALL, PYTHON_S, None),
    Comparison(CONNECT_NO_SITE, PYTHON_S, None),
)


@dataclass(frozen=True)
class Settings:
    """How much to measure."""

    name: str
    rounds: int  # round-trip rounds; each system measures one batch per round
    batch: int  # sequential round trips per sample
    warmup_calls: int  # round trips per system before measuring
    startup_rounds: int  # start-up rounds; each system starts once per round
    warmup_starts: int  # untimed start-up rounds before measuring
    budget: float  # seconds per phase after which no new round starts (after MIN_ROUNDS)


FULL = Settings(
    "full",
    rounds=50,
    batch=400,
    warmup_calls=1000,
    startup_rounds=30,
    warmup_starts=2,
    budget=60.0,
)
QUICK = Settings(
    "quick",
    rounds=5,
    batch=50,
    warmup_calls=50,
    startup_rounds=4,
    warmup_starts=1,
    budget=5.0,
)


class BenchmarkError(Exception):
    """A system under measurement misbehaved (wrong answer, failed child)."""


# -- children -----------------------------------------------------------------------


async def finish(process: asyncio.subprocess.Process) -> None:
    """Close the child's input, read its outputs to their end and reap it.

    A child still running after ``EXIT_GRACE`` seconds is killed.
    """
    if process.stdin is not None:
        process.stdin.close()
    try:
        await asyncio.wait_for(process.communicate(), EXIT_GRACE)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def ping_pong(reader: Any, writer: Any, count: int) -> float:
    """Mean seconds per round trip of ``PING`` through an echo, over ``count`` in a row.

    ``reader`` and ``writer`` are asyncio-style streams (``write``, ``drain``,
    ``readexactly``): a child's pipes, or an SSH channel's.
    """
    start = time.perf_counter()
    for _ in range(count):
        writer.write(PING)
        await writer.drain()
        header = await reader.readexactly(4)
        reply = await reader.readexactly(int.from_bytes(header, "big"))
        if reply != PING_PAYLOAD:
            raise BenchmarkError(f"the echo loop answered {reply!r}")
    return (time.perf_counter() - start) / count


class EchoChild:
    """The far end of the raw ping-pong: ``python -c ECHO_LOOP``."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.writer = process.stdin
        self.reader = process.stdout

    @classmethod
    async def start(cls, python: str) -> EchoChild:
        return cls(await asyncio.create_subprocess_exec(python, "-c", ECHO_LOOP, **PIPES))

    async def round_trips(self, count: int) -> float:
        """Mean seconds per round trip over ``count`` sequential round trips."""
        return await ping_pong(self.reader, self.writer, count)

    async def close(self) -> None:
        await finish(self.process)


async def getpid_round_trips(conn: aiopushy.Session, count: int) -> float:
    """Mean seconds per ``await conn.modules.os.getpid()`` over ``count`` calls."""
    expected = conn.info["pid"]
    start = time.perf_counter()
    for _ in range(count):
        pid = await conn.modules.os.getpid()
        if pid != expected:
            raise BenchmarkError(f"os.getpid() gave {pid!r}, the handshake said {expected}")
    return (time.perf_counter() - start) / count


async def time_spawn(argv: Sequence[str]) -> float:
    """Seconds from spawning ``argv`` until it has exited and its pipes have closed."""
    start = time.perf_counter()
    process = await asyncio.create_subprocess_exec(*argv, **PIPES)
    try:
        assert process.stdin is not None
        process.stdin.close()
        _, stderr = await process.communicate()
        elapsed = time.perf_counter() - start
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if process.returncode != 0:
        message = stderr.decode(errors="replace").strip()
        raise BenchmarkError(f"{' '.join(argv)} exited with {process.returncode}: {message}")
    return elapsed


async def time_connect(
    python: str | list[str], target: str = "local:", **options: Any
) -> tuple[float, float]:
    """Seconds until ``connect()`` returned, and until the first call on it returned."""
    start = time.perf_counter()
    conn = await aiopushy.connect(target, python=python, timeout=OPERATION_TIMEOUT, **options)
    connected = time.perf_counter()
    try:
        pid = await conn.modules.os.getpid()
        called = time.perf_counter()
    finally:
        await conn.close()
    if pid != conn.info["pid"]:
        raise BenchmarkError(f"os.getpid() gave {pid!r}, the handshake said {conn.info['pid']}")
    return connected - start, called - start


# -- measuring ----------------------------------------------------------------------

Measure = Callable[[], Awaitable[dict[str, float]]]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def alternate(
    measures: Sequence[Measure], rounds: int, budget: float
) -> tuple[dict[str, list[float]], int]:
    """Run the measures in turn, round after round; the samples by system, and the rounds.

    Stops after ``rounds`` rounds, or once ``budget`` seconds have passed and at least
    ``MIN_ROUNDS`` rounds are done.
    """
    samples: dict[str, list[float]] = {}
    deadline = time.perf_counter() + budget
    done = 0
    while done < rounds and (done < MIN_ROUNDS or time.perf_counter() < deadline):
        for measure in measures:
            figures = await asyncio.wait_for(measure(), OPERATION_TIMEOUT)
            for system, value in figures.items():
                samples.setdefault(system, []).append(value)
        done += 1
    return samples, done


async def measure_round_trips(
    python: str, settings: Settings
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """The round-trip phase: the raw ping-pong and aiopushy, alternately."""
    echo = await EchoChild.start(python)
    try:
        async with aiopushy.connect("local:", python=python, timeout=OPERATION_TIMEOUT) as conn:

            async def raw() -> dict[str, float]:
                return {RAW: await echo.round_trips(settings.batch)}

            async def pushy() -> dict[str, float]:
                return {GETPID: await getpid_round_trips(conn, settings.batch)}

            await asyncio.wait_for(echo.round_trips(settings.warmup_calls), OPERATION_TIMEOUT)
            await asyncio.wait_for(
                getpid_round_trips(conn, settings.warmup_calls), OPERATION_TIMEOUT
            )
            samples, rounds = await alternate([raw, pushy], settings.rounds, settings.budget)
            facts = {
                "rounds": rounds,
                "calls_per_sample": settings.batch,
                "warmup_calls": settings.warmup_calls,
                "remote": dict(conn.info),
            }
    finally:
        await echo.close()
    return samples, facts


async def measure_startup(
    python: str, settings: Settings
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """The start-up phase: the bare interpreter and aiopushy's connect, alternately."""

    async def python_s() -> dict[str, float]:
        return {PYTHON_S: await time_spawn([python, "-S", "-c", "pass"])}

    async def python_site() -> dict[str, float]:
        return {PYTHON: await time_spawn([python, "-c", "pass"])}

    async def pushy() -> dict[str, float]:
        connected, called = await time_connect(python)
        return {CONNECT: connected, CONNECT_CALL: called}

    async def pushy_no_site() -> dict[str, float]:
        connected, _ = await time_connect([python, "-S"])
        return {CONNECT_NO_SITE: connected}

    measures = [python_s, python_site, pushy, pushy_no_site]
    for _ in range(settings.warmup_starts):
        for measure in measures:
            await asyncio.wait_for(measure(), OPERATION_TIMEOUT)
    samples, rounds = await alternate(measures, settings.startup_rounds, settings.budget)
    return samples, {"rounds": rounds, "warmup_rounds": settings.warmup_starts}


async def run(python: str, settings: Settings) -> dict[str, Any]:
    """Both phases; the raw figures, in seconds, as written by ``--json``."""
    progress(f"measuring round trips ({settings.rounds} rounds x {settings.batch} calls)...")
    round_trips, round_trip_facts = await measure_round_trips(python, settings)
    progress(f"measuring start-up ({settings.startup_rounds} rounds)...")
    startups, startup_facts = await measure_startup(python, settings)
    meta = {"round_trip": round_trip_facts, "startup": startup_facts}
    return report(python, settings, {**round_trips, **startups}, meta, SCENARIOS, COMPARISONS)


def report(
    python: str,
    settings: Settings,
    samples: dict[str, list[float]],
    meta: dict[str, Any],
    scenarios: Sequence[tuple[str, str, Sequence[str]]],
    comparisons: Sequence[Comparison],
) -> dict[str, Any]:
    """The raw figures of one benchmark family, as written by ``--json``."""
    stats = {system: summarize(values) for system, values in samples.items()}
    return {
        "meta": {**environment(python), "mode": settings.name, **meta},
        "unit": "s",
        "scenarios": {
            scenario: {"label": label, "systems": {system: stats[system] for system in systems}}
            for scenario, label, systems in scenarios
        },
        "comparisons": [compare(stats, comparison) for comparison in comparisons],
    }


# -- statistics and report ------------------------------------------------------------


def summarize(samples: Sequence[float]) -> dict[str, Any]:
    """Median, p10, p90, min and max of ``samples``, and the samples themselves."""
    if len(samples) > 1:
        deciles = statistics.quantiles(samples, n=10, method="inclusive")
        p10, p90 = deciles[0], deciles[-1]
    else:
        p10 = p90 = samples[0]
    return {
        "median": statistics.median(samples),
        "p10": p10,
        "p90": p90,
        "min": min(samples),
        "max": max(samples),
        "n": len(samples),
        "samples": list(samples),
    }


def compare(stats: dict[str, dict[str, Any]], comparison: Comparison) -> dict[str, Any]:
    ratio = stats[comparison.system]["median"] / stats[comparison.baseline]["median"]
    met = None if comparison.target is None else ratio <= comparison.target
    return {
        "system": comparison.system,
        "baseline": comparison.baseline,
        "ratio": ratio,
        "target": comparison.target,
        "met": met,
    }


def environment(python: str) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "remote_python": python,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "aiopushy": aiopushy.__version__,
    }


def format_seconds(value: float, unit: float) -> str:
    return f"{value / unit:.1f}" if unit == 1e-6 else f"{value / unit:.2f}"


def format_span(stats: dict[str, Any], key: str | None = None) -> str:
    """A median (``key`` None) or the p10-p90 span, in a unit chosen by the median."""
    unit, name = (1e-6, "us") if stats["median"] < 1e-3 else (1e-3, "ms")
    if key is None:
        return f"{format_seconds(stats['median'], unit)} {name}"
    return f"{format_seconds(stats['p10'], unit)}-{format_seconds(stats['p90'], unit)} {name}"


def markdown(rows: list[list[str]]) -> str:
    """Rows (the first is the header) as a Markdown table, columns padded for reading in
    a terminal."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def table(results: dict[str, Any]) -> str:
    """The results as one Markdown table (see ``table_rows``)."""
    return markdown(table_rows(results))


def table_rows(results: dict[str, Any]) -> list[list[str]]:
    """The rows of ``table``, header first; a system compared with several baselines gets
    one row per comparison."""
    comparisons: dict[str, list[dict[str, Any]]] = {}
    for c in results["comparisons"]:
        comparisons.setdefault(c["system"], []).append(c)
    rows = [["scenario", "system", "median", "spread (p10-p90)", "ratio", "target", "met"]]
    for scenario in results["scenarios"].values():
        for system, stats in scenario["systems"].items():
            cells = [scenario["label"], system, format_span(stats), format_span(stats, "p10")]
            system_comparisons: list[dict[str, Any] | None] = [*comparisons.get(system, [])]
            for comparison in system_comparisons or [None]:
                if comparison is None:
                    ratio, target, met = "baseline", "", ""
                else:
                    ratio = f"{comparison['ratio']:.2f}x vs {comparison['baseline']}"
                    if comparison["target"] is None:
                        target, met = "-", "-"
                    else:
                        target = f"<= {comparison['target']:g}x"
                        met = "met" if comparison["met"] else "not met"
                rows.append([*cells, ratio, target, met])
                cells = ["", "", "", ""]  # further comparisons of the same system
    return rows


def header(python: str, settings: Settings) -> str:
    env = environment(python)
    return "\n".join(
        [
            "# aiopushy benchmarks",
            "",
            f"Python {env['python']} ({env['implementation']}), {env['cpu_count']} CPUs, "
            f"{env['platform']}",
            f"aiopushy {env['aiopushy']}; remote interpreter: {python}",
            f"{settings.name} run: round trips {settings.rounds} rounds x {settings.batch} "
            f"calls per system (after {settings.warmup_calls} warm-up calls), start-up "
            f"{settings.startup_rounds} rounds (after {settings.warmup_starts} warm-up), "
            "systems alternating within each round",
        ]
    )


# -- leftovers ------------------------------------------------------------------------


def child_processes() -> list[int]:
    """Pids of this process's children, exited or not, where ``/proc`` tells."""
    me = os.getpid()
    children = []
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == me:
                children.append(int(entry))
    return children


def leftover_children(wait: float = 2.0) -> list[int]:
    """Children still around after up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while (children := child_processes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return children


# -- running a family -------------------------------------------------------------------


def family_parser(
    prog: str,
    description: str,
    quick_help: str,
    python_help: str = "the interpreter to start for every system (default: this one)",
) -> argparse.ArgumentParser:
    """The options every benchmark family takes: ``--quick``, ``--json`` and ``--python``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", metavar="PATH", help="also write the raw figures here")
    parser.add_argument(
        "--python",
        metavar="PATH",
        default=sys.executable,
        help=python_help,
    )
    return parser


#: What a failed measurement raises (EOFError: asyncio.IncompleteReadError, a child went
#: away); reported in one line, with exit status 1.
FAILURES = (OSError, EOFError, aiopushy.PushyError, BenchmarkError, asyncio.TimeoutError)


def run_family(name: str, measure: Callable[[], dict[str, Any]], json_path: str | None) -> int:
    """Run ``measure``, write its results to ``json_path`` if given, and check that no
    child process was left behind; the exit status."""
    status = 0
    try:
        results = measure()
    except FAILURES as exc:
        print(f"{name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        status = 1
    else:
        if json_path:
            with open(json_path, "w", encoding="utf-8") as out:
                json.dump(results, out, indent=2)
                out.write("\n")
    if children := leftover_children():
        print(f"{name}: child processes left behind: {children}", file=sys.stderr)
        status = 1
    return status


def family_main(
    name: str,
    description: str,
    quick_help: str,
    run_and_report: Callable[[str, bool], dict[str, Any]],
    argv: Sequence[str] | None,
) -> int:
    """``main`` of a family whose ``run_and_report(python, quick)`` measures and prints:
    ``python -m benchmarks.NAME [--quick] [--json PATH] [--python PATH]``."""
    args = family_parser(f"python -m benchmarks.{name}", description, quick_help).parse_args(argv)
    return run_family(name, lambda: run_and_report(args.python, args.quick), args.json)
