"""Presenting a package's public names as its own."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def present_as(package: str, namespace: dict[str, Any], names: Iterable[str]) -> None:
    """Set ``__module__`` to ``package`` on the named objects defined in its private
    modules, so reprs, docs and tracebacks show ``package.Name``."""
    for name in names:
        obj = namespace[name]
        if getattr(obj, "__module__", "").startswith(package + "."):
            obj.__module__ = package
