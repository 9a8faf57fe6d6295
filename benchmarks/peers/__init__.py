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

The peers themselves live in ``benchmarks.systems`` (one module each, behind
``systems.base.Peer``; the raw children in ``systems.raw``). Here: ``scenarios`` (the
settings, scenario ids, row names and comparisons), ``common`` (the state of a run and
timing helpers), ``startup`` (connect and bootstrap sizes), ``opened`` (what the
steady-state scenarios run on), ``calls`` (round trip, chain, calls in flight), ``bulk``,
``slowlink`` (with its delaying ``proxy``), ``report`` (the JSON results and the tables),
and this module: the run as a whole and its command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from ..core import family_parser, progress, run_family, table
from ..systems.registry import PEERS, version
from .bulk import measure_bulk
from .calls import measure_calls, measure_concurrent
from .common import Run, describe, in_thread
from .opened import open_all
from .report import bootstrap_table, header, results_of, throughput_table
from .scenarios import FULL, QUICK, PeerSettings
from .slowlink import measure_slow_link
from .startup import measure_bootstrap, measure_connect


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


def find_peers(run: Run) -> dict[str, dict[str, Any]]:
    """The version of each peer, or why it is skipped (not installed, failing to import)."""
    found: dict[str, dict[str, Any]] = {}
    for name in PEERS:
        try:
            found[name] = {"version": version(name), "skipped": None}
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
    """The options of ``python -m benchmarks.peers``."""
    parser = family_parser(
        "python -m benchmarks.peers",
        "Measure aiopushy next to execnet, RPyC and Mitogen.",
        "tiny counts: a smoke run",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.peers [--quick] [--json PATH] [--python PATH]``; the exit
    status."""
    args = parse_args(argv)
    started = time.perf_counter()

    def measure() -> dict[str, Any]:
        results = run_and_report(args.python, args.quick)
        results["meta"]["wall_time"] = time.perf_counter() - started
        progress(f"peers: done in {results['meta']['wall_time']:.0f} s")
        return results

    return run_family("benchmarks.peers", measure, args.json)
