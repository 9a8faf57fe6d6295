"""Finding the source of a local function so that it can be defined remotely."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any


def function_source(function: Callable[..., Any]) -> tuple[str, str | None]:
    """Return ``(source, name)`` to define ``function`` remotely.

    For a lambda, ``source`` is the lambda expression and ``name`` is ``None``. For a
    ``def``, ``source`` is the definition without its decorators.

    Raises:
        TypeError: ``function`` is not a plain Python function.
        ValueError: its source is unavailable, or it closes over local variables.
    """
    if not inspect.isfunction(function):
        raise TypeError(f"cannot ship {function!r}: only plain Python functions have source")
    code = function.__code__
    if code.co_freevars:
        raise ValueError(
            f"cannot ship {function.__qualname__}: it uses variables of an enclosing "
            f"function ({', '.join(code.co_freevars)})"
        )
    try:
        lines, _ = inspect.getsourcelines(function)
    except (OSError, TypeError) as exc:
        raise ValueError(f"cannot find the source of {function.__qualname__}: {exc}") from exc
    source = textwrap.dedent("".join(lines))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        # A lambda inside a larger expression: parse its logical line on its own.
        tree = ast.parse("(\n" + source.strip().rstrip(",;\\") + "\n)")
        source = "(\n" + source.strip().rstrip(",;\\") + "\n)"
    if function.__name__ == "<lambda>":
        return _lambda_source(function, tree, source), None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name == function.__name__
        ):
            body_lines = source.splitlines(keepends=True)[node.lineno - 1 : node.end_lineno]
            return textwrap.dedent("".join(body_lines)), function.__name__
    raise ValueError(f"cannot find the definition of {function.__qualname__} in its source")


def _lambda_source(function: Callable[..., Any], tree: ast.AST, source: str) -> str:
    wanted = inspect.signature(function).parameters.keys()
    matches = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Lambda)
        and [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
        + ([node.args.vararg.arg] if node.args.vararg else [])
        + [a.arg for a in node.args.kwonlyargs]
        + ([node.args.kwarg.arg] if node.args.kwarg else [])
        == list(wanted)
    ]
    if len(matches) != 1:
        raise ValueError(
            "cannot tell which lambda on its line to ship; define it on a line of its own"
        )
    segment = ast.get_source_segment(source, matches[0])
    assert segment is not None
    return segment
