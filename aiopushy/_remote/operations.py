"""What the remote does for each request operation and expression step.

Expressions arrive already evaluated: the codec resolves ``REF_EXPRESSION`` references
while it decodes a request (see ``peer.RemoteReferences``), so most handlers only shape a
result.
"""

from __future__ import annotations

import builtins
import itertools
import operator
import os
import sys
import types

from .._protocol import messages as m
from .._protocol.references import ByReference
from . import output

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    from typing import Any, Callable, ClassVar


def import_module(name: str) -> Any:
    """``importlib.import_module`` for absolute names, without importing importlib."""
    __import__(name)
    return sys.modules[name]


class Modules:
    """The remote end of ``conn.modules``: attribute access imports modules."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> Any:
        module = sys.modules.get(name)
        if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
            # Not imported, or another thread is still importing it: import waits for it.
            return import_module(name)
        return module

    def __repr__(self) -> str:
        return "<aiopushy remote modules>"


MODULES = Modules()


def get_attribute(obj: Any, name: str) -> Any:
    """``getattr``, importing ``package.name`` when ``obj`` is a module without ``name``."""
    try:
        return getattr(obj, name)
    except AttributeError:
        if not isinstance(obj, types.ModuleType):
            raise
        qualified = f"{obj.__name__}.{name}"
        try:
            return import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name != qualified:
                raise
        raise


def _binary(obj: Any, step: tuple[Any, ...]) -> Any:
    return _operator(step[1], m.BINARY_OPERATORS)(obj, step[2])


def _reflected(obj: Any, step: tuple[Any, ...]) -> Any:
    return _operator(step[1], m.BINARY_OPERATORS)(step[2], obj)


def _unary(obj: Any, step: tuple[Any, ...]) -> Any:
    return _operator(step[1], m.UNARY_OPERATORS)(obj)


def _operator(name: Any, allowed: frozenset[str]) -> Callable[..., Any]:
    if name not in allowed:
        raise ValueError(f"unknown operator {name!r:.40}")
    return getattr(operator, name)  # type: ignore[no-any-return]


_STEPS: dict[int, Callable[[Any, tuple[Any, ...]], Any]] = {
    m.EX_CALL: lambda obj, step: obj(*step[1], **step[2]),
    m.EX_GETITEM: lambda obj, step: obj[step[1]],
    m.EX_BINARY: _binary,
    m.EX_RBINARY: _reflected,
    m.EX_UNARY: _unary,
}


def evaluate(root: Any, ops: tuple[Any, ...]) -> Any:
    """Apply each step of an expression to ``root`` (``None``: the modules)."""
    obj = MODULES if root is None else root
    for step in ops:  # attribute steps come as bare names: the usual case
        if type(step) is not str:
            obj = _STEPS[step[0]](obj, step)
        elif obj is MODULES and step[:2] != "__":
            obj = MODULES[step]  # what getattr would reach, after building an exception
        else:
            obj = get_attribute(obj, step)
    return obj


def _namespace(namespace: dict[str, Any], wanted: bool) -> Any:
    """A namespace to send back for the controller's local dict: the dict, or under the
    Pushy rule (where a dict would go by reference) its items, in a tuple."""
    if not wanted:
        return None
    return tuple(namespace.items()) if getattr(output.current, "rule", 0) else namespace


class Operations:
    """Request handlers, dispatched by operation code through ``TABLE``."""

    def __init__(self, statistics: Callable[[], dict[str, int]]) -> None:
        self.namespace: dict[str, Any] = {"__name__": "__aiopushy__", "__builtins__": builtins}
        self.statistics = statistics

    def evaluate(self, value: Any, by_reference: bool) -> Any:
        return ByReference(value) if by_reference else value

    def evaluate_plain(self, ops: tuple[Any, ...], by_reference: bool) -> Any:
        value = evaluate(None, ops)
        return ByReference(value) if by_reference else value

    def _run(
        self, mode: str, source: Any, globals_: Any, locals_: Any, sync: tuple[bool, bool]
    ) -> tuple[Any, dict[str, Any] | None, dict[str, Any] | None]:
        g = self.namespace if globals_ is None else globals_
        loc = g if locals_ is None else locals_
        had_builtins = "__builtins__" in g
        code = compile(source, "<aiopushy>", mode) if isinstance(source, str) else source
        runner = eval if mode == "eval" else exec
        value = runner(code, g, loc)
        if not had_builtins and sync[0]:
            g.pop("__builtins__", None)
        return value, _namespace(g, sync[0]), _namespace(loc, sync[1])

    def eval(self, source: Any, globals_: Any, locals_: Any, sync: tuple[bool, bool]) -> Any:
        return self._run("eval", source, globals_, locals_, sync)

    def execute(self, source: Any, globals_: Any, locals_: Any, sync: tuple[bool, bool]) -> Any:
        return self._run("exec", source, globals_, locals_, sync)

    def compile(self, source: str, filename: str, mode: str) -> Any:
        return ByReference(compile(source, filename, mode))

    def define(self, source: str, name: str | None) -> Any:
        if name is None:  # a lambda: ``source`` is its expression
            return eval(compile(source, "<aiopushy>", "eval"), self.namespace)
        exec(compile(source, "<aiopushy>", "exec"), self.namespace)
        return self.namespace[name]

    def iter_start(self, iterable: Any, batch: int) -> tuple[Any, tuple]:  # type: ignore[type-arg]
        return self.iter_next(iter(iterable), batch)

    def iter_next(self, iterator: Any, batch: int) -> tuple[Any, tuple]:  # type: ignore[type-arg]
        items = tuple(itertools.islice(iterator, max(1, batch)))  # a tuple: by value
        return (iterator if len(items) == batch else None), items

    def enter(self, manager: Any) -> tuple[Any, Any]:
        value = type(manager).__enter__(manager)
        return ByReference(manager), value

    def read_file(self, path: str, offset: int, size: int) -> bytes:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(size)

    def write_file(self, path: str, offset: int, data: bytes, truncate: bool) -> None:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if truncate else 0)
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0), 0o666)
        try:
            os.lseek(fd, offset, os.SEEK_SET)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def spawn(self, argv: Any, env: Any, notify: Any) -> Any:
        from . import relay  # imports subprocess: only when a relay is wanted

        return relay.spawn(argv, env, notify)

    def relay_keep(self, key: bytes, data: bytes) -> None:
        from . import relay

        relay.keep(key, data)

    def relay_write(self, target: Any, parts: Any) -> None:
        from . import relay

        if not isinstance(target, relay.Relay):
            raise TypeError(f"not a relay: {type(target).__name__}")
        target.write_parts(parts)

    TABLE: ClassVar[dict[int, Callable[..., Any]]] = {
        m.OP_EVALUATE: evaluate,
        m.OP_EVALUATE_PLAIN: evaluate_plain,
        m.OP_EVAL: eval,
        m.OP_EXECUTE: execute,
        m.OP_COMPILE: compile,
        m.OP_DEFINE: define,
        m.OP_ITER_START: iter_start,
        m.OP_ITER_NEXT: iter_next,
        m.OP_ENTER: enter,
        m.OP_READ_FILE: read_file,
        m.OP_WRITE_FILE: write_file,
        m.OP_STATISTICS: lambda self: self.statistics(),
        m.OP_SPAWN: spawn,
        m.OP_RELAY_KEEP: relay_keep,
        m.OP_RELAY_WRITE: relay_write,
    }

    def handle(self, op: Any, args: Any) -> Any:
        """Run operation ``op`` with ``args``; unknown operations raise ``ValueError``."""
        handler = self.TABLE.get(op)
        if handler is None or type(args) is not tuple:
            raise ValueError(f"unknown operation {op!r:.40}")
        return handler(self, *args)
