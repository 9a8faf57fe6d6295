"""Bulk on open connections: a bytes argument whose length comes back, and a file put
then got, next to the raw pipes (``systems.raw``), each system's payload bytes recorded
for the throughput table."""

from __future__ import annotations

import os
import time

import aiopushy

from ..core import BenchmarkError, Measure, alternate, progress
from ..systems.base import Peer
from ..systems.execnet import EXECNET
from ..systems.mitogen import MITOGEN
from ..systems.rpyc import RPYC
from .common import Run, in_thread, time_await, time_once
from .opened import Opened
from .scenarios import (
    A_FILES,
    A_FILES_PROTOCOL,
    A_LEN,
    BULK_BASELINES,
    BULK_CAPS,
    M_FILES,
    M_LEN,
    MIB,
    R_FILES,
    R_LEN,
    RAW_BACK,
    RAW_BULK,
    RAW_CAT,
    RAW_SINK,
    RAW_SINK_BLOCKING,
    WARMUP_BULK,
    X_FILES,
    X_LEN,
)


def check_file(path: str, source: bytes) -> bool:
    """Whether the file at ``path`` holds ``source``."""
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

    def put_get_sync(system: str, peer: Peer) -> float:
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

    def peer_length(system: str, peer: Peer) -> float:
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
        EXECNET: (X_LEN, X_FILES),
        RPYC: (R_LEN, R_FILES),
        MITOGEN: (M_LEN, M_FILES),
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
