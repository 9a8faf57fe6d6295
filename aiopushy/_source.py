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
    if function.__name__ == "<lambda>":
        return _lambda_source(function, source), None
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name == function.__name__
        ):
            body_lines = source.splitlines(keepends=True)[node.lineno - 1 : node.end_lineno]
            return textwrap.dedent("".join(body_lines)), function.__name__
    raise ValueError(f"cannot find the definition of {function.__qualname__} in its source")


def _lambda_expressions(source: str) -> list[tuple[ast.Lambda, str]]:
    """Every lambda expression in ``source``, found even inside partial statements."""
    found = []
    for start in (i for i in range(len(source)) if source.startswith("lambda", i)):
        # The longest text from ``lambda`` on that parses as one expression is the lambda.
        for end in range(len(source), start, -1):
            text = source[start:end]
            try:
                node = ast.parse(text.strip(), mode="eval").body
            except SyntaxError:
                continue
            if isinstance(node, ast.Lambda):
                found.append((node, text.strip()))
                break
    return found


def _parameter_names(node: ast.Lambda) -> list[str]:
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    names += [args.vararg.arg] if args.vararg else []
    names += [a.arg for a in args.kwonlyargs]
    names += [args.kwarg.arg] if args.kwarg else []
    return names


def _lambda_source(function: Callable[..., Any], source: str) -> str:
    wanted = list(inspect.signature(function).parameters)
    matches = [
        text for node, text in _lambda_expressions(source) if _parameter_names(node) == wanted
    ]
    if len(matches) != 1:
        raise ValueError(
            "cannot tell which lambda in its source to ship; define it on a line of its own"
        )
    return matches[0]
