"""aiopushy next to execnet, RPyC and Mitogen: ``python -m benchmarks.peers [--quick]``.

Every system starts the same interpreter (``--python``) over a local subprocess, except
in the slow-link scenario (TCP). Each scenario measures its systems alternately (A B A B
... rounds) in the same run and reports the median and the p10-p90 spread:

* limits: the raw asyncio pipe ping-pong of ``core``, the same echo loop driven with
  blocking ``os.read``/``os.write``, and ``python -S -c pass``;
* connect: spawn, bootstrap and first call (``os.getpid()``); closing is not timed;
* call round trip: ``os.getpid()`` on an open connection (a sample is the mean over a
  batch of sequential calls);
* attribute chain: ``os.path.join("a", "b")`` reached through the module where the system
  offers that (aiopushy and RPyC; the round trips of each are counted and shown), else
  the peer's idiomatic call;
* calls in flight: 1,000 ``os.getpid()`` calls in flight on one connection; the total
  (aiopushy both through ``asyncio.gather``, a task per call, and ``aiopushy.gather``);
* bulk: a bytes argument whose length comes back, and a file put then got, next to raw
  asyncio pipes (there with the length answered; there then back; through ``cat``);
* slow link: a 10-step attribute/call chain over TCP through a loopback proxy adding 5 ms
  each way: the aiopushy daemon against RPyC classic's ``ThreadedServer``, next to a raw
  TCP ping-pong through the same kind of proxy;
* bootstrap size: what each system puts on the command line and streams to the child.

The peers are blocking libraries; their operations run in a worker thread and are timed
inside it. A peer that is not installed or does not work is reported as skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiopushy
from aiopushy import _bootstrap
from aiopushy._protocol.framing import REMOTE_MAX_FRAME_SIZE
from aiopushy.transport.local import LocalTransport

from . import _peers_systems as peers
from .core import (
    GETPID,
    OPERATION_TIMEOUT,
    PING,
    PIPES,
    PYTHON_S,
    RAW,
    BenchmarkError,
    Comparison,
    EchoChild,
    Measure,
    Settings,
    alternate,
    environment,
    family_parser,
    finish,
    getpid_round_trips,
    markdown,
    ping_pong,
    progress,
    report,
    run_family,
    table,
    time_connect,
    time_spawn,
)

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
PEERS = (peers.EXECNET, peers.RPYC, peers.MITOGEN)
AIOPUSHY = "aiopushy"


@dataclass(frozen=True)
class PeerSettings(Settings):
    """``core.Settings``, and how much to measure in the scenarios of this family."""

    concurrent: int  # calls in flight
    concurrent_rounds: int
    bulk_size: int  # bytes
    bulk_rounds: int
    bulk_budget: float  # seconds for the bulk scenarios (their rounds are long)
    slow_batch: int  # chains per sample on the slow link
    slow_rounds: int
    delay: float  # seconds the proxy adds each way


FULL = PeerSettings(
    "full",
    rounds=30,
    batch=200,
    warmup_calls=200,
    startup_rounds=20,
    warmup_starts=2,
    budget=45.0,
    concurrent=1000,
    concurrent_rounds=20,
    bulk_size=64 * MIB,
    bulk_rounds=5,
    bulk_budget=100.0,
    slow_batch=10,
    slow_rounds=15,
    delay=0.005,
)
QUICK = PeerSettings(
    "quick",
    rounds=3,
    batch=20,
    warmup_calls=20,
    startup_rounds=3,
    warmup_starts=1,
    budget=3.0,
    concurrent=1000,
    concurrent_rounds=3,
    bulk_size=4 * MIB,
    bulk_rounds=3,
    bulk_budget=3.0,
    slow_batch=2,
    slow_rounds=3,
    delay=0.005,
)
WARMUP_BULK = MIB  # bytes moved by each bulk system once before measuring
#: Seconds a guarded measure may take (less than ``alternate``'s own limit).
GUARD_TIMEOUT = OPERATION_TIMEOUT * 0.9

# -- scenario ids (keys of the JSON) and systems (rows of the table) --------------------

LIMIT_ROUND_TRIP = "peers_limit_round_trip"
LIMIT_STARTUP = "peers_limit_startup"
CONNECT = "peers_connect"
ROUND_TRIP = "peers_round_trip"
ATTRIBUTE_CHAIN = "peers_attribute_chain"
CONCURRENT = "peers_concurrent"
BULK_BASELINE = "peers_bulk_baseline"
BULK_BYTES = "peers_bulk_bytes"
BULK_FILES = "peers_bulk_files"
SLOW_LINK = "peers_slow_link"

RAW_BLOCKING = "raw blocking ping-pong (os.read/os.write)"
A_CONNECT = 'aiopushy: connect("local:") + first call'
X_CONNECT = "execnet: makegateway + remote_exec"
R_CONNECT = "RPyC: classic stdio subprocess + first call"
M_CONNECT = "Mitogen: router.local + context.call"
A_BOUND = "aiopushy: getpid() resolved beforehand (a proxy)"
X_GETPID = "execnet: channel send + receive"
R_GETPID = "RPyC: conn.modules.os.getpid()"
R_BOUND = "RPyC: getpid() resolved beforehand"
M_GETPID = "Mitogen: context.call(os.getpid)"
A_JOIN = 'aiopushy: await conn.modules.os.path.join("a", "b")'
X_JOIN = 'execnet: channel message ("join", "a", "b")'
R_JOIN = 'RPyC: conn.modules.os.path.join("a", "b")'
M_JOIN = 'Mitogen: context.call(os.path.join, "a", "b")'
RAW_PIPELINED = "raw asyncio ping-pong, all pings written, then read"
A_GATHER = "aiopushy: asyncio.gather(conn.modules.os.getpid() ...)"
A_PUSHY_GATHER = "aiopushy: aiopushy.gather(conn.modules.os.getpid() ...)"
X_GATHER = "execnet: all sent on the channel, then received"
R_GATHER = "RPyC: rpyc.async_(conn.modules.os.getpid)"
M_GATHER = "Mitogen: context.call_async + receivers"
RAW_SINK = "raw asyncio pipe: there, length answered"
RAW_BACK = "raw asyncio pipe: there, then back"
RAW_CAT = "raw asyncio pipe: through a cat child"
RAW_SINK_BLOCKING = "raw blocking pipe: there, length answered"
A_LEN = "aiopushy: await conn.modules.builtins.len(blob)"
X_LEN = "execnet: channel send of the bytes"
R_LEN = "RPyC: conn.modules.builtins.len(blob)"
M_LEN = "Mitogen: context.call(len, blob)"
A_FILES = "aiopushy: putfile + getfile (local: shutil)"
A_FILES_PROTOCOL = "aiopushy: putfile + getfile via the protocol"
X_FILES = "execnet: file bytes in channel messages"
R_FILES = "RPyC: rpyc.classic.upload + download"
M_FILES = "Mitogen: context.call with the file bytes"
RAW_TCP = "raw asyncio TCP ping-pong via the proxy"
A_SLOW = "aiopushy daemon: await the chain"
R_SLOW = "RPyC classic over TCP: the chain"

#: Payload caps of bulk systems too slow for the full size within ``OPERATION_TIMEOUT``:
#: RPyC's ``PipeStream.write`` slices the remaining bytes after every 64,000-byte write
#: (quadratic), and took 30-60 s for one 64 MiB argument here.
BULK_CAPS = {R_LEN: 16 * MIB}

RAW_BULK = (RAW_SINK, RAW_BACK, RAW_CAT, RAW_SINK_BLOCKING)
BYTES_SYSTEMS = (A_LEN, X_LEN, R_LEN, M_LEN)
FILE_SYSTEMS = (A_FILES, A_FILES_PROTOCOL, X_FILES, R_FILES, M_FILES)
#: The raw baseline each bulk system is held against (same direction, same bytes moved).
BULK_BASELINES = {
    **{system: RAW_SINK for system in BYTES_SYSTEMS},
    **{system: RAW_BACK for system in FILE_SYSTEMS},
}
#: Systems moving their payload twice (there, then back).
TWICE = (RAW_BACK, *FILE_SYSTEMS)
BULK_TARGET = 0.5  # of the raw pipe's throughput


def scenarios(settings: PeerSettings) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(scenario id, label in the table, its systems), in the order of the table."""
    size = f"{settings.bulk_size // MIB} MiB"
    delay = f"{settings.delay * 1000:g} ms"
    return (
        (LIMIT_ROUND_TRIP, "round trip (baselines)", (RAW, RAW_BLOCKING)),
        (LIMIT_STARTUP, "start-up (baseline)", (PYTHON_S,)),
        (CONNECT, "connect + first call", (A_CONNECT, X_CONNECT, R_CONNECT, M_CONNECT)),
        (
            ROUND_TRIP,
            "call round trip",
            (GETPID, A_BOUND, X_GETPID, R_GETPID, R_BOUND, M_GETPID),
        ),
        (ATTRIBUTE_CHAIN, 'os.path.join("a", "b")', (A_JOIN, X_JOIN, R_JOIN, M_JOIN)),
        (
            CONCURRENT,
            f"{settings.concurrent:,} calls in flight",
            (RAW_PIPELINED, A_GATHER, A_PUSHY_GATHER, X_GATHER, R_GATHER, M_GATHER),
        ),
        (BULK_BASELINE, f"{size} over pipes (baselines)", RAW_BULK),
        (BULK_BYTES, f"{size} bytes argument", BYTES_SYSTEMS),
        (BULK_FILES, f"{size} file put + get", FILE_SYSTEMS),
        (
            SLOW_LINK,
            f"{peers.CHAIN_STEPS}-step chain, TCP +{delay} each way",
            (RAW_TCP, A_SLOW, R_SLOW),
        ),
    )


def comparisons() -> list[Comparison]:
    """Every comparison of the family; those missing a system are dropped when reporting."""
    found = [
        Comparison(RAW_BLOCKING, RAW, None),
        Comparison(GETPID, RAW, 1.3),
        *(Comparison(GETPID, peer, 1.0) for peer in (X_GETPID, R_GETPID, R_BOUND, M_GETPID)),
        Comparison(A_BOUND, R_BOUND, 1.0),
        Comparison(A_BOUND, RAW, None),
        *(Comparison(peer, RAW, None) for peer in (X_GETPID, R_GETPID, R_BOUND, M_GETPID)),
        Comparison(A_CONNECT, PYTHON_S, 2.0),
        *(Comparison(A_CONNECT, peer, None) for peer in (X_CONNECT, R_CONNECT, M_CONNECT)),
        *(Comparison(peer, PYTHON_S, None) for peer in (X_CONNECT, R_CONNECT, M_CONNECT)),
        Comparison(A_JOIN, RAW, None),
        *(Comparison(A_JOIN, peer, None) for peer in (X_JOIN, R_JOIN, M_JOIN)),
        *(Comparison(peer, RAW, None) for peer in (X_JOIN, R_JOIN, M_JOIN)),
        Comparison(A_GATHER, RAW_PIPELINED, None),
        *(Comparison(A_GATHER, peer, None) for peer in (X_GATHER, R_GATHER, M_GATHER)),
        Comparison(A_PUSHY_GATHER, RAW_PIPELINED, None),
        *(Comparison(A_PUSHY_GATHER, peer, None) for peer in (X_GATHER, R_GATHER, M_GATHER)),
        *(Comparison(peer, RAW_PIPELINED, None) for peer in (X_GATHER, R_GATHER, M_GATHER)),
        *(Comparison(raw, RAW_SINK, None) for raw in (RAW_BACK, RAW_CAT, RAW_SINK_BLOCKING)),
        *(Comparison(system, base, 1 / BULK_TARGET) for system, base in BULK_BASELINES.items()),
        Comparison(A_SLOW, RAW_TCP, None),
        Comparison(A_SLOW, R_SLOW, None),
        Comparison(R_SLOW, RAW_TCP, None),
    ]
    return found


# -- helpers ---------------------------------------------------------------------------


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160] if text else ''}".rstrip(": ")


def trips(count: float) -> str:
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
        self.hub = peers.MitogenHub()
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
    start = time.perf_counter()
    result = call()
    elapsed = time.perf_counter() - start
    if not check(result):
        raise BenchmarkError(f"unexpected result {result!r:.100}")
    return elapsed


async def time_await(make: Callable[[], Awaitable[Any]], check: Callable[[Any], bool]) -> float:
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


def count_rpyc(rpyc: peers.Rpyc, call: Callable[[], Any]) -> tuple[float, float]:
    """Mean round trips (synchronous requests) and requests of all kinds per ``call()``."""
    reps = 5
    with rpyc.counter.counting() as counter:
        for _ in range(reps):
            call()
    return counter.sync / reps, counter.total / reps


# -- connect -------------------------------------------------------------------------------


async def measure_connect(run: Run) -> dict[str, list[float]]:
    python, settings = run.python, run.settings

    async def python_s() -> dict[str, float]:
        return {PYTHON_S: await time_spawn([python, "-S", "-c", "pass"])}

    async def pushy() -> dict[str, float]:
        _, called = await time_connect(python)
        return {A_CONNECT: called}

    measures: list[Measure] = [python_s, pushy]
    for peer, system in zip(PEERS, (X_CONNECT, R_CONNECT, M_CONNECT), strict=True):
        if peer in run.available:
            measures.append(
                run.guard(system, lambda p=peer: in_thread(peers.time_connect, p, python, run.hub))
            )
    for _ in range(settings.warmup_starts):
        for measure in measures:
            await asyncio.wait_for(measure(), OPERATION_TIMEOUT)
    samples, rounds = await alternate(measures, settings.startup_rounds, settings.budget)
    run.facts["connect"] = {"rounds": rounds, "warmup_rounds": settings.warmup_starts}
    return samples


# -- on open connections: round trip, chain, calls in flight, bulk ---------------------------


class NoCopyTransport(LocalTransport):
    """``local:`` without its native file copy: files go through the protocol."""

    native_file_copy = False


async def no_copy_popen(command: Sequence[str], address: str, **kwargs: Any) -> NoCopyTransport:
    transport = await NoCopyTransport.spawn(command, address)
    assert isinstance(transport, NoCopyTransport)
    return transport


NO_COPY = "peers-bench-nocopy"

#: The remote side of the raw bulk baselines: ``sink`` answers the length of each
#: length-prefixed message, ``back`` sends it back once whole, ``cat`` echoes as it reads.
BULK_CHILD = """\
import sys
mode = sys.argv[1]
source = open(0, "rb", buffering=0, closefd=False)
sink = open(1, "wb", buffering=0, closefd=False)
def read_into(view):
    got = 0
    while got < len(view):
        n = source.readinto(view[got:])
        if not n:
            raise SystemExit(0)
        got += n
def write_all(view):
    while len(view):
        view = view[sink.write(view):]
header = bytearray(8)
chunk = memoryview(bytearray(1 << 20))
while True:
    read_into(memoryview(header))
    size = int.from_bytes(header, "big")
    if mode == "cat":
        left = size
        while left:
            n = source.readinto(chunk[: min(left, len(chunk))])
            if not n:
                raise SystemExit(1)
            write_all(chunk[:n])
            left -= n
    else:
        data = memoryview(bytearray(size))
        read_into(data)
        write_all(memoryview(size.to_bytes(8, "big")) if mode == "sink" else data)
"""


class BulkChild:
    """A raw bulk baseline: ``python -c BULK_CHILD mode`` on asyncio pipes."""

    def __init__(self, process: asyncio.subprocess.Process, mode: str) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process, self.mode = process, mode
        self.writer, self.reader = process.stdin, process.stdout

    @classmethod
    async def start(cls, python: str, mode: str) -> BulkChild:
        process = await asyncio.create_subprocess_exec(python, "-c", BULK_CHILD, mode, **PIPES)
        return cls(process, mode)

    async def transfer(self, blob: bytes) -> float:
        """Seconds to move ``blob`` as this mode does."""
        size = len(blob)
        start = time.perf_counter()
        self.writer.write(size.to_bytes(8, "big"))
        self.writer.write(blob)
        if self.mode == "cat":
            drained = asyncio.ensure_future(self.writer.drain())
            back = await self.reader.readexactly(size)
            await drained
        else:
            await self.writer.drain()
            back = await self.reader.readexactly(8 if self.mode == "sink" else size)
        elapsed = time.perf_counter() - start
        if back != (size.to_bytes(8, "big") if self.mode == "sink" else blob):
            raise BenchmarkError(f"the {self.mode} child answered wrongly")
        return elapsed

    async def close(self) -> None:
        await finish(self.process)


class Opened:
    """Everything open during the steady-state scenarios."""

    def __init__(self) -> None:
        self.echo: EchoChild | None = None
        self.blocking: peers.BlockingEcho | None = None
        self.conn: aiopushy.Session | None = None
        self.no_copy: aiopushy.Session | None = None
        self.peers: dict[str, peers.Peer] = {}
        self.pids: dict[str, int] = {}
        self.bulk: dict[str, BulkChild] = {}
        self.blocking_sink: peers.BlockingSink | None = None


async def open_all(run: Run, stack: contextlib.AsyncExitStack) -> Opened:
    python = run.python
    opened = Opened()
    opened.echo = await EchoChild.start(python)
    stack.push_async_callback(opened.echo.close)
    opened.blocking = peers.BlockingEcho(python)
    stack.push_async_callback(in_thread, opened.blocking.close)
    opened.conn = await stack.enter_async_context(
        aiopushy.connect("local:", python=python, timeout=OPERATION_TIMEOUT)
    )
    aiopushy.transports[NO_COPY] = no_copy_popen
    stack.callback(aiopushy.transports.pop, NO_COPY, None)
    opened.no_copy = await stack.enter_async_context(
        aiopushy.connect(f"{NO_COPY}:", python=python, timeout=OPERATION_TIMEOUT)
    )
    for mode in ("sink", "back", "cat"):
        opened.bulk[mode] = await BulkChild.start(python, mode)
        stack.push_async_callback(opened.bulk[mode].close)
    opened.blocking_sink = peers.BlockingSink(python, BULK_CHILD)
    stack.push_async_callback(in_thread, opened.blocking_sink.close)
    for name in run.available:
        try:
            peer = await in_thread(peers.open_peer, name, python, run.hub)
        except Exception as exc:
            run.skip(name, exc)
            continue
        stack.push_async_callback(in_thread, peer.close)
        try:
            await in_thread(peer.start)
            opened.pids[name] = await in_thread(peer.getpid)
        except Exception as exc:
            run.skip(name, exc)
            continue
        opened.peers[name] = peer
    return opened


async def measure_calls(run: Run, opened: Opened) -> dict[str, list[float]]:
    """Round trips (with the raw limits) and the ``os.path.join`` chain."""
    settings = run.settings
    assert opened.echo is not None and opened.blocking is not None and opened.conn is not None
    echo, blocking, conn = opened.echo, opened.blocking, opened.conn
    batch = settings.batch

    def join() -> Awaitable[Any]:
        return conn.modules.os.path.join("a", "b")

    getpid = await aiopushy.byref(conn.modules.os.getpid)

    round_trip: list[Measure] = [
        run.guard(RAW, lambda: echo.round_trips(batch)),
        run.guard(RAW_BLOCKING, lambda: in_thread(blocking.round_trips, batch)),
        run.guard(GETPID, lambda: getpid_round_trips(conn, batch)),
        run.guard(A_BOUND, lambda: mean_await(getpid, batch, conn.info["pid"])),
    ]
    chain: list[Measure] = [run.guard(A_JOIN, lambda: mean_await(join, batch, "a/b"))]
    for name, peer in opened.peers.items():
        pid = opened.pids[name]
        getpid_system, join_system = {
            peers.EXECNET: (X_GETPID, X_JOIN),
            peers.RPYC: (R_GETPID, R_JOIN),
            peers.MITOGEN: (M_GETPID, M_JOIN),
        }[name]
        round_trip.append(
            run.guard(
                getpid_system,
                lambda p=peer, pid=pid: in_thread(mean_time, p.getpid, batch, pid),
            )
        )
        if isinstance(peer, peers.Rpyc):
            round_trip.append(
                run.guard(
                    R_BOUND,
                    lambda p=peer, pid=pid: in_thread(mean_time, p.bound_getpid, batch, pid),
                )
            )
        chain.append(
            run.guard(
                join_system,
                lambda p=peer: in_thread(mean_time, lambda: p.join("a", "b"), batch, "a/b"),
            )
        )

    # Warm up every system, then count the round trips of those that show them.
    for measure in (*round_trip, *chain):
        for _ in range(max(1, settings.warmup_calls // batch)):
            await measure()
    run.round_trips[A_JOIN] = await count_aiopushy(conn, join)
    run.round_trips[A_BOUND] = await count_aiopushy(conn, getpid)
    if isinstance(rpyc_peer := opened.peers.get(peers.RPYC), peers.Rpyc):
        counts = {
            R_GETPID: await in_thread(count_rpyc, rpyc_peer, rpyc_peer.getpid),
            R_BOUND: await in_thread(count_rpyc, rpyc_peer, rpyc_peer.bound_getpid),
            R_JOIN: await in_thread(count_rpyc, rpyc_peer, lambda: rpyc_peer.join("a", "b")),
        }
        for system, (sync, total) in counts.items():
            run.round_trips[system] = sync
            run.facts.setdefault("rpyc_requests", {})[system] = {
                "round_trips": sync,
                "requests_with_async": total,
            }

    progress(f"peers: call round trips ({settings.rounds} rounds x {batch} calls)...")
    samples, rounds = await alternate(round_trip, settings.rounds, settings.budget)
    progress(f"peers: os.path.join chain ({settings.rounds} rounds x {batch} calls)...")
    chain_samples, chain_rounds = await alternate(chain, settings.rounds, settings.budget)
    run.facts["round_trip"] = {"rounds": rounds, "calls_per_sample": batch}
    run.facts["attribute_chain"] = {"rounds": chain_rounds, "calls_per_sample": batch}
    return {**samples, **chain_samples}


async def measure_concurrent(run: Run, opened: Opened) -> dict[str, list[float]]:
    settings = run.settings
    count = settings.concurrent
    assert opened.conn is not None
    conn = opened.conn
    pid = conn.info["pid"]

    async def gather() -> list[Any]:
        return await asyncio.gather(*(conn.modules.os.getpid() for _ in range(count)))

    async def pushy_gather() -> list[Any]:
        return await aiopushy.gather(*(conn.modules.os.getpid() for _ in range(count)))

    def all_pid(expected: int) -> Callable[[Any], bool]:
        return lambda pids: len(pids) == count and all(p == expected for p in pids)

    assert opened.echo is not None
    echo = opened.echo
    measures: list[Measure] = [
        run.guard(RAW_PIPELINED, lambda: pipelined_ping_pong(echo, count)),
        run.guard(A_GATHER, lambda: time_await(gather, all_pid(pid))),
        run.guard(A_PUSHY_GATHER, lambda: time_await(pushy_gather, all_pid(pid))),
    ]
    systems = {peers.EXECNET: X_GATHER, peers.RPYC: R_GATHER, peers.MITOGEN: M_GATHER}
    for name, peer in opened.peers.items():
        check = all_pid(opened.pids[name])
        measures.append(
            run.guard(
                systems[name],
                lambda p=peer, c=check: in_thread(time_once, lambda: p.getpids(count), c),
            )
        )
    for measure in measures:
        await measure()
    remote_threads = await conn.modules.threading.active_count()
    progress(f"peers: {count} calls in flight ({settings.concurrent_rounds} rounds)...")
    samples, rounds = await alternate(measures, settings.concurrent_rounds, settings.budget)
    run.facts["concurrent"] = {
        "rounds": rounds,
        "calls": count,
        "aiopushy_remote_threads_after_warmup": remote_threads,
    }
    return samples


async def pipelined_ping_pong(echo: EchoChild, count: int) -> float:
    """Seconds to write ``count`` pings to the echo loop at once and read every answer."""
    start = time.perf_counter()
    echo.writer.write(PING * count)
    drained = asyncio.ensure_future(echo.writer.drain())
    replies = await echo.reader.readexactly(len(PING) * count)
    await drained
    elapsed = time.perf_counter() - start
    if replies != PING * count:
        raise BenchmarkError("the echo loop answered wrongly")
    return elapsed


def check_file(path: str, source: bytes) -> bool:
    with open(path, "rb") as got:
        return got.read() == source


async def measure_bulk(run: Run, opened: Opened, directory: str) -> dict[str, list[float]]:
    """The bulk scenarios: raw pipes, bytes arguments, files put and got."""
    settings = run.settings
    assert opened.conn is not None and opened.no_copy is not None
    conn, no_copy = opened.conn, opened.no_copy
    sizes = {
        WARMUP_BULK,
        settings.bulk_size,
        *(min(settings.bulk_size, c) for c in BULK_CAPS.values()),
    }
    blobs = {size: os.urandom(size) for size in sizes}
    sources = {size: os.path.join(directory, f"source-{size}.bin") for size in sizes}
    for size, path in sources.items():
        with open(path, "wb") as out:
            out.write(blobs[size])
    warming = [True]

    def size_of(system: str) -> int:
        if warming[0]:
            return WARMUP_BULK
        return min(settings.bulk_size, BULK_CAPS.get(system, settings.bulk_size))

    def put_get_sync(system: str, peer: peers.Peer) -> float:
        size = size_of(system)
        remote = os.path.join(directory, f"remote-{peer.name}.bin")
        local = os.path.join(directory, f"got-{peer.name}.bin")
        start = time.perf_counter()
        peer.put_file(sources[size], remote)
        peer.get_file(remote, local)
        elapsed = time.perf_counter() - start
        if not check_file(local, blobs[size]):
            raise BenchmarkError(f"{peer.name}: the file came back different")
        return elapsed

    async def put_get(system: str, session: aiopushy.Session, slug: str) -> float:
        size = size_of(system)
        remote = os.path.join(directory, f"remote-{slug}.bin")
        local = os.path.join(directory, f"got-{slug}.bin")
        start = time.perf_counter()
        await session.putfile(sources[size], remote)
        await session.getfile(remote, local)
        elapsed = time.perf_counter() - start
        if not await in_thread(check_file, local, blobs[size]):
            raise BenchmarkError(f"aiopushy ({slug}): the file came back different")
        return elapsed

    async def pushy_length(system: str) -> float:
        blob = blobs[size_of(system)]
        return await time_await(lambda: conn.modules.builtins.len(blob), len(blob).__eq__)

    def peer_length(system: str, peer: peers.Peer) -> float:
        blob = blobs[size_of(system)]
        return time_once(lambda: peer.length(blob), len(blob).__eq__)

    raw = {RAW_SINK: "sink", RAW_BACK: "back", RAW_CAT: "cat"}
    measures: list[Measure] = [
        run.guard(s, lambda s=s, mode=mode: opened.bulk[mode].transfer(blobs[size_of(s)]))
        for s, mode in raw.items()
    ]
    assert opened.blocking_sink is not None
    sink = opened.blocking_sink
    measures.append(
        run.guard(
            RAW_SINK_BLOCKING,
            lambda: in_thread(sink.transfer, blobs[size_of(RAW_SINK_BLOCKING)]),
        )
    )
    measures += [
        run.guard(A_LEN, lambda: pushy_length(A_LEN)),
        run.guard(A_FILES, lambda: put_get(A_FILES, conn, "aiopushy-native")),
        run.guard(
            A_FILES_PROTOCOL, lambda: put_get(A_FILES_PROTOCOL, no_copy, "aiopushy-protocol")
        ),
    ]
    systems = {
        peers.EXECNET: (X_LEN, X_FILES),
        peers.RPYC: (R_LEN, R_FILES),
        peers.MITOGEN: (M_LEN, M_FILES),
    }
    for name, peer in opened.peers.items():
        length, files = systems[name]
        measures += [
            run.guard(length, lambda s=length, p=peer: in_thread(peer_length, s, p)),
            run.guard(files, lambda s=files, p=peer: in_thread(put_get_sync, s, p)),
        ]
    for measure in measures:
        await measure()
    warming[0] = False
    for system in (*RAW_BULK, *BULK_BASELINES):
        run.bulk_sizes[system] = size_of(system)
    progress(f"peers: bulk, {settings.bulk_size // MIB} MiB ({settings.bulk_rounds} rounds)...")
    samples, rounds = await alternate(measures, settings.bulk_rounds, settings.bulk_budget)
    run.facts["bulk"] = {"rounds": rounds, "bytes": dict(run.bulk_sizes)}
    return samples


async def measure_open(run: Run) -> dict[str, list[float]]:
    """Every scenario run on open connections, all opened once, alternately."""
    async with contextlib.AsyncExitStack() as stack:
        opened = await open_all(run, stack)
        assert opened.conn is not None
        run.facts["remote"] = dict(opened.conn.info)
        samples = await measure_calls(run, opened)
        samples.update(await measure_concurrent(run, opened))
        directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="aiopushy-peers-"))
        samples.update(await measure_bulk(run, opened, directory))
    return samples


# -- the slow link -------------------------------------------------------------------------

DAEMON = """\
import asyncio, os, sys
from aiopushy.server import serve
async def main():
    async with await serve("127.0.0.1", 0) as server:
        os.write(1, b"%d\\n" % server.address[1])
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
asyncio.run(main())
"""

RPYC_TCP_SERVER = """\
import os, sys, threading
from rpyc.utils.server import ThreadedServer
from rpyc.utils.classic import SlaveService
server = ThreadedServer(SlaveService, hostname="127.0.0.1", port=0, reuse_addr=True)
os.write(1, b"%d\\n" % server.port)
threading.Thread(target=server.start, daemon=True).start()
sys.stdin.buffer.read()
server.close()
"""


async def start_server(
    stack: contextlib.AsyncExitStack, argv: Sequence[str], env: dict[str, str] | None = None
) -> int:
    """Start a child that prints the port it listens on; that port. Stopped with ``stack``."""
    process = await asyncio.create_subprocess_exec(*argv, env=env, **PIPES)
    stack.push_async_callback(finish, process)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), OPERATION_TIMEOUT)
    if not line.strip().isdigit():
        assert process.stderr is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(process.wait(), 2.0)
        error = await process.stderr.read() if process.returncode is not None else b""
        lines = error.decode(errors="replace").strip().splitlines() or [line.decode()]
        raise BenchmarkError(f"{argv[0]} did not start: {lines[-1]}")
    return int(line)


async def start_proxy(stack: contextlib.AsyncExitStack, upstream: int, delay: float) -> int:
    script = str(Path(__file__).with_name("_peers_proxy.py"))
    return await start_server(stack, [sys.executable, script, str(upstream), str(delay * 1000)])


async def echo_server(stack: contextlib.AsyncExitStack) -> int:
    """A TCP echo server in this event loop; its port."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    stack.push_async_callback(server.wait_closed)
    stack.callback(server.close)
    return int(server.sockets[0].getsockname()[1])


async def measure_slow_link(run: Run) -> dict[str, list[float]]:
    python, settings = run.python, run.settings
    batch = settings.slow_batch
    async with contextlib.AsyncExitStack() as stack:
        raw_port = await start_proxy(stack, await echo_server(stack), settings.delay)
        reader, writer = await asyncio.open_connection("127.0.0.1", raw_port)
        stack.callback(writer.close)
        measures: list[Measure] = [
            run.guard(RAW_TCP, lambda: ping_pong(reader, writer, batch)),
        ]
        token = secrets.token_urlsafe(32)
        env = {**os.environ, "AIOPUSHY_TOKEN": token}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        conn: aiopushy.Session | None = None
        try:
            daemon = await start_server(stack, [python, "-c", DAEMON], env)
            port = await start_proxy(stack, daemon, settings.delay)
            conn = await stack.enter_async_context(
                aiopushy.connect(
                    "daemon:127.0.0.1", port=port, token=token, timeout=OPERATION_TIMEOUT
                )
            )
        except (OSError, aiopushy.PushyError, BenchmarkError, asyncio.TimeoutError) as exc:
            run.skip(A_SLOW, exc)
        if conn is not None:
            session = conn
            measures.append(
                run.guard(
                    A_SLOW,
                    lambda: mean_await(
                        lambda: peers.chain(session.modules), batch, peers.CHAIN_RESULT
                    ),
                )
            )
        rpyc: peers.TcpRpyc | None = None
        if peers.RPYC in run.available:
            try:
                server = await start_server(stack, [python, "-c", RPYC_TCP_SERVER])
                port = await start_proxy(stack, server, settings.delay)
                rpyc = await in_thread(peers.TcpRpyc, "127.0.0.1", port)
            except Exception as exc:
                run.skip(R_SLOW, exc)
        if rpyc is not None:
            stack.push_async_callback(in_thread, rpyc.close)
            tcp = rpyc
            measures.append(
                run.guard(
                    R_SLOW, lambda: in_thread(mean_time, tcp.chain, batch, peers.CHAIN_RESULT)
                )
            )
        for measure in measures:
            await measure()
        if conn is not None and A_SLOW not in run.skipped:
            run.round_trips[A_SLOW] = await count_aiopushy(
                conn, lambda: peers.chain(session.modules)
            )
        if rpyc is not None and R_SLOW not in run.skipped:
            sync, total = await in_thread(count_rpyc, rpyc, rpyc.chain)
            run.round_trips[R_SLOW] = sync
            run.facts.setdefault("rpyc_requests", {})[R_SLOW] = {
                "round_trips": sync,
                "requests_with_async": total,
            }
        progress(
            f"peers: slow link ({settings.slow_rounds} rounds x {batch} chains, "
            f"+{settings.delay * 1000:g} ms each way)..."
        )
        samples, rounds = await alternate(measures, settings.slow_rounds, settings.budget)
    run.facts["slow_link"] = {
        "rounds": rounds,
        "chains_per_sample": batch,
        "delay_each_way": settings.delay,
        "chain": peers.CHAIN,
        "steps": peers.CHAIN_STEPS,
    }
    return samples


# -- bootstrap sizes -------------------------------------------------------------------------


async def measure_bootstrap(run: Run) -> dict[str, dict[str, Any]]:
    """Bytes each system puts on the command line (after the interpreter) and streams to
    the child before the first call is answered."""
    python = run.python
    command = _bootstrap.command([python])[1:]
    sizes: dict[str, dict[str, Any]] = {
        AIOPUSHY: {
            "command_line": peers.argument_bytes(command),
            "streamed": len(_bootstrap.payload(REMOTE_MAX_FRAME_SIZE)),
            "note": "stage two + marshalled code (no docstrings) + sources, each zlib",
        }
    }
    probes: dict[str, Callable[[], dict[str, Any]]] = {
        peers.EXECNET: lambda: peers.execnet_bootstrap(python),
        peers.MITOGEN: lambda: peers.mitogen_bootstrap(python, run.hub),
        peers.RPYC: peers.rpyc_bootstrap,
    }
    for name, probe in probes.items():
        if name not in run.available or name in run.skipped:
            continue
        try:
            sizes[name] = await in_thread(probe)
        except Exception as exc:
            run.skip(f"{name} bootstrap size", exc)
    for entry in sizes.values():
        entry["total"] = entry["command_line"] + entry["streamed"]
    return sizes


# -- the run -------------------------------------------------------------------------------


def find_peers(run: Run) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name in PEERS:
        try:
            found[name] = {"version": peers.version(name), "skipped": None}
            run.available.append(name)
        except Exception as exc:
            found[name] = {"version": None, "skipped": describe(exc)}
            run.skip(name, exc)
    return found


async def measure(python: str, settings: PeerSettings) -> dict[str, Any]:
    """All scenarios; the raw figures, in seconds, as written by ``--json``."""
    run = Run(python, settings)
    versions = find_peers(run)
    try:
        progress(f"peers: connect ({settings.startup_rounds} rounds)...")
        samples = await measure_connect(run)
        samples.update(await measure_open(run))
        samples.update(await measure_slow_link(run))
        progress("peers: bootstrap sizes...")
        bootstrap = await measure_bootstrap(run)
    finally:
        await in_thread(run.hub.close)
    for peer, entry in versions.items():
        if entry["skipped"] is None and peer in run.skipped:
            entry["skipped"] = run.skipped[peer]
    return results_of(run, samples, versions, bootstrap)


def results_of(
    run: Run,
    samples: dict[str, list[float]],
    versions: dict[str, dict[str, Any]],
    bootstrap: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The JSON results: ``core.report`` of the systems measured, plus bulk throughput,
    bootstrap sizes and what was skipped."""
    samples = {s: v for s, v in samples.items() if s not in run.skipped and v}
    labelled = {run.label(system): values for system, values in samples.items()}
    table_scenarios = [
        (scenario, label, tuple(run.label(s) for s in systems if s in samples))
        for scenario, label, systems in scenarios(run.settings)
    ]
    found = [
        Comparison(run.label(c.system), run.label(c.baseline), c.target)
        for c in comparisons()
        if c.system in samples and c.baseline in samples
    ]
    meta = {
        "peers": versions,
        "round_trips_counted": {run.label(s): n for s, n in run.round_trips.items()},
        **run.facts,
    }
    results = report(run.python, run.settings, labelled, meta, table_scenarios, found)
    results["skipped"] = dict(run.skipped)
    results["throughput"] = throughput(run, results)
    results["bootstrap"] = bootstrap
    return results


def throughput(run: Run, results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """MiB/s of every bulk system (payload bytes moved over the median time), against
    its raw baseline and the raw ``cat`` pipe."""
    medians: dict[str, float] = {}
    for scenario in (BULK_BASELINE, BULK_BYTES, BULK_FILES):
        for system, stats in results["scenarios"][scenario]["systems"].items():
            medians[system] = stats["median"]
    rates = {}
    for system, base in (*((s, None) for s in RAW_BULK), *BULK_BASELINES.items()):
        label = run.label(system)
        if label not in medians:
            continue
        moved = run.bulk_sizes[system] * (2 if system in TWICE else 1)
        rates[label] = {
            "moved_bytes": moved,
            "mib_per_s": moved / MIB / medians[label],
            "baseline": base,
        }
    cat = rates.get(RAW_CAT, {}).get("mib_per_s")
    for entry in rates.values():
        base = entry["baseline"]
        own = rates.get(base, {}).get("mib_per_s") if base else None
        entry["of_baseline"] = entry["mib_per_s"] / own if own else None
        entry["of_raw_cat"] = entry["mib_per_s"] / cat if cat else None
        entry["target"] = BULK_TARGET if base else None
        entry["met"] = (
            None if entry["of_baseline"] is None else entry["of_baseline"] >= BULK_TARGET
        )
    return rates


# -- report ----------------------------------------------------------------------------------


def throughput_table(results: dict[str, Any]) -> str:
    rows = [["bulk system", "moved", "MiB/s", "vs its raw baseline", "vs raw cat", "goal"]]
    for system, entry in results["throughput"].items():
        of_base, of_cat = entry["of_baseline"], entry["of_raw_cat"]
        goal = "baseline" if entry["baseline"] is None else "-"
        if entry["met"] is not None:
            goal = f">= {entry['target']:.0%}: {'met' if entry['met'] else 'not met'}"
        rows.append(
            [
                system,
                f"{entry['moved_bytes'] // MIB} MiB",
                f"{entry['mib_per_s']:.0f}",
                "-" if of_base is None else f"{of_base:.0%} of {entry['baseline']}",
                "-" if of_cat is None else f"{of_cat:.0%}",
                goal,
            ]
        )
    return markdown(rows)


def bootstrap_table(results: dict[str, Any]) -> str:
    rows = [["bootstrap", "command line (B)", "streamed (B)", "total (B)", "what"]]
    for system, entry in results["bootstrap"].items():
        rows.append(
            [
                system,
                f"{entry['command_line']:,}",
                f"{entry['streamed']:,}",
                f"{entry['total']:,}",
                entry["note"],
            ]
        )
    return markdown(rows)


def header(python: str, settings: PeerSettings) -> str:
    env = environment(python)
    versions = []
    for name in PEERS:
        try:
            versions.append(f"{name} {peers.version(name)}")
        except Exception:
            versions.append(f"{name} (not installed)")
    return "\n".join(
        [
            f"## aiopushy {env['aiopushy']} and its peers ({', '.join(versions)})",
            "",
            f"Python {env['python']} ({env['implementation']}), {env['cpu_count']} CPUs, "
            f"{env['platform']}; remote interpreter: {python}",
            f"{settings.name} run: round trips {settings.rounds} rounds x {settings.batch} "
            f"calls, connect {settings.startup_rounds} rounds, {settings.concurrent:,} calls "
            f"in flight x {settings.concurrent_rounds}, bulk {settings.bulk_size // MIB} MiB x "
            f"{settings.bulk_rounds}, slow link {settings.slow_rounds} rounds x "
            f"{settings.slow_batch} chains (at most {settings.budget:g} s per scenario, bulk "
            f"{settings.bulk_budget:g} s, after 3 rounds); systems alternating within each "
            "round; peers run in a worker thread, timed inside it",
        ]
    )


def run_and_report(python: str, quick: bool) -> dict[str, Any]:
    """Measure, print the header and the tables; the results, JSON-able."""
    settings = QUICK if quick else FULL
    print(flush=True)
    print(header(python, settings), flush=True)
    results = asyncio.run(measure(python, settings))
    print()
    print(table(results))
    print()
    print(throughput_table(results))
    print()
    print(bootstrap_table(results))
    if results["skipped"]:
        print()
        for system, reason in results["skipped"].items():
            print(f"skipped: {system}: {reason}")
    sys.stdout.flush()
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = family_parser(
        "python -m benchmarks.peers",
        "Measure aiopushy next to execnet, RPyC and Mitogen.",
        "tiny counts: a smoke run",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    def measure() -> dict[str, Any]:
        results = run_and_report(args.python, args.quick)
        results["meta"]["wall_time"] = time.perf_counter() - started
        progress(f"peers: done in {results['meta']['wall_time']:.0f} s")
        return results

    return run_family("benchmarks.peers", measure, args.json)


if __name__ == "__main__":
    sys.exit(main())
