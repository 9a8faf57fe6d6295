"""Transports, and the registry that maps a target's prefix to one.

``transports`` maps a name (the part of ``"name:address"`` before the first colon) to
the transport: a module path string (imported on first use), a module, or a ``Popen``
coroutine function itself. Users may add entries, and installed packages may provide them
through the ``aiopushy.transports`` entry-point group (value: a module path, or
``module:attribute`` naming a ``Popen``).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, TypeAlias

from .base import BaseTransport, EmptyReceiveStream

PopenFunction: TypeAlias = Callable[..., Awaitable[BaseTransport]]
"""``async def Popen(command, address, **kwargs) -> BaseTransport``."""

transports: dict[str, str | ModuleType | PopenFunction] = {
    "local": "aiopushy.transport.local",
    "ssh": "aiopushy.transport.ssh",
    "daemon": "aiopushy.transport.daemon",
    "smb": "aiopushy.transport.smb",
}
"""The transport registry."""

ENTRY_POINT_GROUP = "aiopushy.transports"


def _from_entry_points(name: str) -> str | None:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            return entry.value
    return None


def find_popen(name: str) -> PopenFunction:
    """The ``Popen`` of transport ``name``, importing its module if needed.

    Raises:
        ValueError: no transport of that name is registered or installed.
    """
    entry = transports.get(name)
    if entry is None:
        entry = _from_entry_points(name)
        if entry is None:
            known = sorted({*transports, *(e.name for e in entry_points(group=ENTRY_POINT_GROUP))})
            raise ValueError(f"unknown transport {name!r}; known transports: {', '.join(known)}")
    if isinstance(entry, str):
        module_name, _, attribute = entry.partition(":")
        module = importlib.import_module(module_name)
        entry = getattr(module, attribute) if attribute else module
    if isinstance(entry, ModuleType):
        popen: Any = getattr(entry, "Popen", None)
        if popen is None:
            raise ValueError(f"transport module {entry.__name__} defines no Popen")
        return popen  # type: ignore[no-any-return]
    return entry


def split_target(target: str) -> tuple[str, str]:
    """Split ``"transport:address"`` at the first colon.

    Raises:
        ValueError: there is no colon, or the transport name is empty.
    """
    if not isinstance(target, str):
        raise TypeError(f"target must be a string like 'local:', not {type(target).__name__}")
    name, colon, address = target.partition(":")
    if not colon or not name:
        raise ValueError(f"target {target!r} is not of the form 'transport:address'")
    return name, address


__all__ = [
    "BaseTransport",
    "EmptyReceiveStream",
    "PopenFunction",
    "find_popen",
    "split_target",
    "transports",
]
