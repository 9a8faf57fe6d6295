"""Functions the peers benchmark calls on a Mitogen context (``context.call(fn, ...)``).

Mitogen ships the module of a called function to the child through its module forwarder,
so this module imports nothing but the standard library (and ``benchmarks/__init__.py``
and ``benchmarks/systems/__init__.py`` hold only a docstring).
"""

from __future__ import annotations


def write_file(path: str, data: bytes) -> int:
    """Write ``data`` to ``path``; its length."""
    with open(path, "wb") as out:
        out.write(data)
    return len(data)


def read_file(path: str) -> bytes:
    """The contents of ``path``."""
    with open(path, "rb") as source:
        return source.read()
