"""The command line of ``python -m benchmarks``: ``core``'s scenarios, then the families
asked for.

``python -m benchmarks [--ssh] [--peers] [--fanout] [--sync] [--forwarding] [--eventloops]
[--all] [--quick] [--json PATH] [--python PATH]`` prints ``core``'s table, then each family's
(imported only when asked for), and writes all the figures to ``--json``: ``core``'s at
the top level, each family's under its own key (``ssh``, ``peers``, ``fanout``, ``sync``,
``forwarding``, ``eventloops``). The families depend on ``core``; only this module knows them all.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import Any

from .core import FULL, QUICK, family_parser, header, run, run_family, table


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options of ``python -m benchmarks`` (``--all`` sets every family's)."""
    parser = family_parser(
        "python -m benchmarks",
        "Measure aiopushy's round trip and connect time next to raw asyncio.",
        "few iterations: a smoke run of a few seconds",
    )
    parser.add_argument(
        "--ssh",
        action="store_true",
        help="also measure connect and round trip over ssh on loopback (needs sshd); "
        "with --fanout, also fan out over ssh",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also measure the same scenarios with execnet, RPyC and Mitogen",
    )
    parser.add_argument(
        "--fanout",
        action="store_true",
        help="also measure fan-out to many interpreters, next to bare subprocesses and peers",
    )
    parser.add_argument(
        "--sync",
        action="store_true",
        help="also measure the blocking API (aiopushy.sync) next to RPyC's classic mode",
    )
    parser.add_argument(
        "--forwarding",
        action="store_true",
        help="also measure a forwarded 1 MB package imported by 50 interpreters, next to Mitogen",
    )
    parser.add_argument(
        "--eventloops",
        action="store_true",
        help="also measure aiopushy on uvloop next to asyncio's own loop (needs uvloop)",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="--ssh --peers --fanout --sync --forwarding --eventloops",
    )
    args = parser.parse_args(argv)
    if args.all:
        args.ssh = args.peers = args.fanout = args.sync = args.forwarding = True
        args.eventloops = True
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print ``core``'s scenarios, then each family asked for; the exit
    status."""
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    print(header(args.python, settings), flush=True)

    def measure() -> dict[str, Any]:
        results = asyncio.run(run(args.python, settings))
        print()
        print(table(results), flush=True)
        if args.ssh:
            from .ssh import run_and_report

            results["ssh"] = run_and_report(args.python, args.quick)
        if args.peers:
            from .peers import run_and_report as run_peers

            results["peers"] = run_peers(args.python, args.quick)
        if args.fanout:
            from .fanout import run_and_report as run_fanout

            results["fanout"] = run_fanout(args.python, args.quick, args.ssh)
        if args.sync:
            from .syncfacade import run_and_report as run_sync

            results["sync"] = run_sync(args.python, args.quick)
        if args.forwarding:
            from .forwarding import run_and_report as run_forwarding

            results["forwarding"] = run_forwarding(args.python, args.quick)
        if args.eventloops:
            from .eventloops import run_and_report as run_eventloops

            results["eventloops"] = run_eventloops(args.python, args.quick)
        return results

    return run_family("benchmarks", measure, args.json)
