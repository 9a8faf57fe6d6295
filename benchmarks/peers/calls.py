"""Calls on open connections: the call round trip (next to the raw ping-pongs), the
``os.path.join("a", "b")`` chain with the round trips of each system counted, and many
calls in flight on one connection (next to the pipelined raw ping-pong)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiopushy

from ..core import GETPID, RAW, Measure, alternate, getpid_round_trips, progress
from ..systems.execnet import EXECNET
from ..systems.mitogen import MITOGEN
from ..systems.raw import pipelined_ping_pong
from ..systems.rpyc import RPYC, Rpyc
from .common import (
    Run,
    count_aiopushy,
    count_rpyc,
    in_thread,
    mean_await,
    mean_time,
    time_await,
    time_once,
)
from .opened import Opened
from .scenarios import (
    A_BOUND,
    A_GATHER,
    A_JOIN,
    A_PUSHY_GATHER,
    M_GATHER,
    M_GETPID,
    M_JOIN,
    R_BOUND,
    R_GATHER,
    R_GETPID,
    R_JOIN,
    RAW_BLOCKING,
    RAW_PIPELINED,
    X_GATHER,
    X_GETPID,
    X_JOIN,
)


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
            EXECNET: (X_GETPID, X_JOIN),
            RPYC: (R_GETPID, R_JOIN),
            MITOGEN: (M_GETPID, M_JOIN),
        }[name]
        round_trip.append(
            run.guard(
                getpid_system,
                lambda p=peer, pid=pid: in_thread(mean_time, p.getpid, batch, pid),
            )
        )
        if isinstance(peer, Rpyc):
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
    if isinstance(rpyc_peer := opened.peers.get(RPYC), Rpyc):
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
    """``settings.concurrent`` calls in flight on one connection, next to the pipelined raw
    ping-pong; also the threads the aiopushy remote runs afterwards."""
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
    systems = {EXECNET: X_GATHER, RPYC: R_GATHER, MITOGEN: M_GATHER}
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
