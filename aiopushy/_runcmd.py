"""``aiopushy run``: one expression, statement block or script on many targets."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from ._fanout import Result, fanout
from ._inventory import read_inventory, read_ssh_config_hosts
from ._proxy import Proxy
from ._session import Session
from ._stderr import OutputHandler

HostEntry = tuple[str, dict[str, Any]]


def _option_value(text: str) -> Any:
    if text.lower() in ("true", "yes"):
        return True
    if text.lower() in ("false", "no"):
        return False
    return int(text) if text.isdigit() else text


def read_hosts(path: str) -> list[HostEntry]:
    """Targets from a host file: one per line, ``#`` comments, then optional
    ``key=value`` connect options (``web1 python=/usr/bin/python3 use_native=yes``).

    ``[user@]host[:port]`` lines without a ``transport:`` prefix are ssh hosts (pssh
    style).

    Raises:
        ValueError: an option is not ``key=value``.
    """
    entries = []
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        line, options = words[0], {}
        for word in words[1:]:
            key, equals, value = word.partition("=")
            if not equals or not key.isidentifier():
                raise ValueError(f"{path}:{number}: expected key=value, not {word!r}")
            options[key] = _option_value(value)
        prefix, colon, rest = line.partition(":")
        # "ssh:web1" or "local:" name a transport; "web1:2222" is a host and port.
        has_transport = bool(colon) and prefix.isidentifier() and not rest.isdigit()
        entries.append((line if has_transport else f"ssh:{line}", options))
    return entries


class UsageError(Exception):
    """A run that cannot start as asked (exit status 2); the message is one line."""


def _code_to_run(args: argparse.Namespace) -> str:
    """The code ``-e``, ``-c`` or ``-f`` gives, read and checked before any target starts.

    Raises:
        UsageError: the script cannot be read, or ``-e`` was given a statement.
    """
    if args.script is not None:
        try:
            return Path(args.script).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {args.script}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise UsageError(f"cannot read {args.script}: not UTF-8 text ({exc})") from exc
    if args.expression is None:
        return str(args.code)
    try:
        compile(args.expression, "<-e>", "eval")
    except SyntaxError:
        # Only a certain statement is refused here; any other syntax error is the remote's
        # to judge, since its Python may be newer than ours.
        try:
            compile(args.expression, "<-e>", "exec")
        except SyntaxError:
            pass
        else:
            raise UsageError(
                f"-e takes an expression, and {args.expression!r} is a statement: "
                "use -c to execute statements"
            ) from None
    return str(args.expression)


#: How deep ``json_value`` follows lists and dicts before it gives up on JSON.
JSON_MAX_DEPTH = 100


class _NotJSON(Exception):
    pass


def json_value(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON represents it exactly, for ``--json``.

    ``None``, ``bool``, ``int``, ``str``, finite ``float``, and ``list``, ``tuple`` (an
    array) and ``dict`` with ``str`` keys made of these, at most ``JSON_MAX_DEPTH`` deep.

    Raises:
        _NotJSON: anything else (the caller shows the ``repr`` instead).
    """
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float and math.isfinite(value):
        return value
    if depth < JSON_MAX_DEPTH:
        if kind in (list, tuple):
            return [json_value(item, depth + 1) for item in value]
        if kind is dict and all(type(key) is str for key in value):
            return {key: json_value(item, depth + 1) for key, item in value.items()}
    raise _NotJSON


@dataclass(frozen=True)
class Shown:
    """A target's value as the command shows it.

    Attributes:
        text: its ``repr`` (computed remotely for a proxy), for the table.
        json: the value itself where JSON represents it exactly, else ``text``.
        is_repr: whether ``json`` fell back to ``text``.
    """

    text: str
    json: Any
    is_repr: bool


def _job(args: argparse.Namespace, code: str) -> Callable[[Session], Awaitable[Shown]]:
    async def job(conn: Session) -> Shown:
        if args.expression is not None:
            value = await conn.eval(code)
        else:
            await conn.execute(code)
            value = None
        if isinstance(value, Proxy):
            text = await conn.modules.builtins.repr(value)
            return Shown(text, text, is_repr=True)
        text = repr(value)
        try:
            return Shown(text, json_value(value), is_repr=False)
        except _NotJSON:
            return Shown(text, text, is_repr=True)

    return job


def _describe(result: Result) -> str:
    if result.ok:
        return str(result.value.text)
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
            "value": result.value.json if result.ok else None,
            "repr": result.value.is_repr if result.ok else False,
            "error": None if result.ok else _describe(result),
            "elapsed": round(result.elapsed, 6),
        }
        print(json.dumps(record))


class _Outputs:
    """Remote output for ``--output group`` and ``--out-dir``: collected per target."""

    def __init__(self, out_dir: str | None) -> None:
        self.out_dir = Path(out_dir) if out_dir else None
        self.collected: dict[int, list[tuple[str, bytes]]] = {}

    def handler(self, index: int, target: str) -> OutputHandler:
        chunks = self.collected.setdefault(index, [])
        return lambda stream, data: chunks.append((stream, data))

    def write(self, targets: list[str]) -> None:
        for index, target in enumerate(targets):
            chunks = self.collected.get(index, [])
            if self.out_dir is not None:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                name = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in target)
                for stream in ("stdout", "stderr"):
                    data = b"".join(d for s, d in chunks if s == stream)
                    (self.out_dir / f"{index:04d}-{name}.{stream}").write_bytes(data)
            elif chunks:
                print(f"----- {target}", flush=True)
                for stream, data in chunks:
                    out = sys.stderr if stream == "stderr" else sys.stdout
                    out.write(data.decode("utf-8", "replace"))
                    out.flush()


class ProgressBar:
    """A rich progress bar with ok / failed / running counts (for a terminal)."""

    def __init__(self, total: int, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console or Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task(self._text(0, 0, 0), total=total)

    @staticmethod
    def _text(ok: int, failed: int, running: int) -> str:
        return f"ok {ok}  failed {failed}  running {running}"

    def update(self, ok: int, failed: int, running: int, total: int) -> None:
        """The fan-out ``progress`` callback."""
        self._progress.update(
            self._task, completed=ok + failed, description=self._text(ok, failed, running)
        )

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()


async def run(args: argparse.Namespace) -> int:
    """Run the command; exit status 0 only if every target succeeded."""
    entries: list[HostEntry] = [(target, {}) for target in args.targets]
    if args.hosts:
        try:
            entries += read_hosts(args.hosts)
        except (OSError, ValueError) as exc:
            print(f"aiopushy run: cannot read {args.hosts}: {exc}", file=sys.stderr)
            return 2
    if args.ssh_config_hosts:
        try:
            entries += [(t, {}) for t in read_ssh_config_hosts(None, args.ssh_config_hosts)]
        except OSError as exc:
            print(f"aiopushy run: cannot read the ssh config: {exc}", file=sys.stderr)
            return 2
    if args.inventory:
        try:
            entries += read_inventory(args.inventory, args.group)
        except (OSError, ValueError) as exc:
            print(f"aiopushy run: cannot read {args.inventory}: {exc}", file=sys.stderr)
            return 2
    if not entries:
        print("aiopushy run: no targets (give TARGET... or --hosts FILE)", file=sys.stderr)
        return 2
    try:
        code = _code_to_run(args)
    except UsageError as exc:
        print(f"aiopushy run: {exc}", file=sys.stderr)
        return 2
    targets = [target for target, _ in entries]
    per_target = {target: options for target, options in entries if options}
    options: dict[str, Any] = {}
    if args.python:
        options["python"] = args.python
    outputs = _Outputs(args.out_dir) if args.out_dir or args.output == "group" else None
    bar = ProgressBar(len(targets)) if sys.stderr.isatty() else None
    with bar if bar is not None else contextlib.nullcontext():
        results = await fanout(
            targets,
            _job(args, code),
            limit=args.limit,
            timeout=args.timeout,
            connect_kwargs=options,
            per_target=per_target,
            output=outputs.handler if outputs else None,
            progress=bar.update if bar is not None else None,
        )
    if outputs is not None:
        outputs.write(targets)
    (_print_json if args.json else _print_table)(results)
    failed = [r for r in results if not r.ok]
    if failed:
        # Each failure has its row above: the summary only counts them.
        print(f"{len(failed)} of {len(results)} targets failed", file=sys.stderr)
        if args.failed_file:
            text = "".join(f"{r.target}\n" for r in failed)
            await anyio.Path(args.failed_file).write_text(text)
    return 1 if failed else 0
