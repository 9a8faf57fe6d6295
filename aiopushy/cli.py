"""The ``aiopushy`` command (also ``python -m aiopushy``).

``aiopushy run TARGET... -e EXPR`` connects to every target at once, evaluates the
expression on each and prints ``TARGET<TAB>repr(value)`` lines in the order of the
targets. The exit status is 0 only if every target succeeded.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import anyio

from ._connect import connect
from ._proxy import Proxy


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiopushy", description="Drive Python interpreters on other hosts."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="evaluate an expression on one or more targets")
    run.add_argument("targets", nargs="+", metavar="TARGET", help="e.g. local: or ssh:host")
    run.add_argument("-e", "--eval", dest="expression", required=True, metavar="EXPR")
    run.add_argument("--python", help="remote interpreter (default: the transport's choice)")
    run.add_argument("--timeout", type=float, default=30.0, help="start-up timeout, seconds")
    return parser


async def _evaluate(target: str, args: argparse.Namespace) -> tuple[bool, str]:
    try:
        async with connect(target, python=args.python, timeout=args.timeout) as conn:
            value: Any = await conn.eval(args.expression)
            if isinstance(value, Proxy):
                value = await conn.modules.builtins.repr(value)
                return True, str(value)
            return True, repr(value)
    except Exception as exc:  # PushyError, or a builtin exception the remote code raised
        return False, f"{type(exc).__name__}: {exc}"


async def _run(args: argparse.Namespace) -> int:
    results: list[tuple[bool, str]] = [(False, "")] * len(args.targets)

    async def one(index: int, target: str) -> None:
        results[index] = await _evaluate(target, args)

    async with anyio.create_task_group() as group:
        for index, target in enumerate(args.targets):
            group.start_soon(one, index, target)
    for target, (ok, text) in zip(args.targets, results, strict=True):
        stream = sys.stdout if ok else sys.stderr
        print(f"{target}\t{text}", file=stream)
    return 0 if all(ok for ok, _ in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    status: int = anyio.run(_run, args)
    return status


if __name__ == "__main__":
    sys.exit(main())
