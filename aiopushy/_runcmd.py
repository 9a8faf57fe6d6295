"""``aiopushy run``: one expression, statement block or script on many targets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import anyio

from ._fanout import Result, fanout
from ._proxy import Proxy
from ._session import Session


def read_hosts(path: str) -> list[str]:
    """Targets from a host file: one per line, ``#`` comments; ``[user@]host[:port]``
    lines without a ``transport:`` prefix are ssh hosts (pssh style)."""
    targets = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        prefix, colon, rest = line.partition(":")
        # "ssh:web1" or "local:" name a transport; "web1:2222" is a host and port.
        has_transport = bool(colon) and prefix.isidentifier() and not rest.isdigit()
        targets.append(line if has_transport else f"ssh:{line}")
    return targets


def _job(args: argparse.Namespace) -> Any:
    code = Path(args.script).read_text(encoding="utf-8") if args.script else args.code

    async def job(conn: Session) -> Any:
        if args.expression is not None:
            value = await conn.eval(args.expression)
        else:
            await conn.execute(code)
            value = None
        if isinstance(value, Proxy):
            return await conn.modules.builtins.repr(value)
        return repr(value)

    return job


def _describe(result: Result) -> str:
    if result.ok:
        return str(result.value)
    error = result.error
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def _print_table(results: list[Result]) -> None:
    width = max((len(r.target) for r in results), default=0)
    for result in results:
        status = "ok" if result.ok else "FAILED"
        print(f"{result.target:<{width}}  {status:<6}  {_describe(result)}")


def _print_json(results: list[Result]) -> None:
    for result in results:
        record = {
            "target": result.target,
            "ok": result.ok,
            "value": result.value if result.ok else None,
            "error": None if result.ok else _describe(result),
            "elapsed": round(result.elapsed, 6),
        }
        print(json.dumps(record))


async def run(args: argparse.Namespace) -> int:
    """Run the command; exit status 0 only if every target succeeded."""
    targets = list(args.targets)
    if args.hosts:
        try:
            targets += read_hosts(args.hosts)
        except OSError as exc:
            print(f"aiopushy run: cannot read {args.hosts}: {exc.strerror}", file=sys.stderr)
            return 2
    if not targets:
        print("aiopushy run: no targets (give TARGET... or --hosts FILE)", file=sys.stderr)
        return 2
    options: dict[str, Any] = {}
    if args.python:
        options["python"] = args.python
    results = await fanout(
        targets, _job(args), limit=args.limit, timeout=args.timeout, connect_kwargs=options
    )
    (_print_json if args.json else _print_table)(results)
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} of {len(results)} targets failed:", file=sys.stderr)
        for result in failed:
            print(f"  {result.target}: {_describe(result)}", file=sys.stderr)
        if args.failed_file:
            text = "".join(f"{r.target}\n" for r in failed)
            await anyio.Path(args.failed_file).write_text(text)
    return 1 if failed else 0
