"""``local`` -- a new Python interpreter on this host, through pipes.

``connect("local:")`` runs ``sys.executable`` unless ``python=`` says otherwise. File
copies are plain ``shutil.copyfile`` calls, made in a worker thread.

With ``via=session``, the interpreter is started on that session's host instead (by
default the same interpreter as that session's), its pipes relayed through the session.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from ._process import ProcessTransport
from .base import reject_unknown_options

if TYPE_CHECKING:
    from .._session import Session

SAME_PYTHON = "aiopushy:same-python"
"""Stands for the interpreter when the user named none: ours, or the ``via`` session's."""


class LocalTransport(ProcessTransport):
    """A Python interpreter started on this host."""

    native_file_copy = True

    async def getfile(self, remote_path: str, local_path: str) -> None:
        """Copy ``remote_path`` to ``local_path`` (both on this host) in a worker thread."""
        await anyio.to_thread.run_sync(shutil.copyfile, remote_path, local_path)

    async def putfile(self, local_path: str, remote_path: str) -> None:
        """Copy ``local_path`` to ``remote_path`` (both on this host) in a worker thread."""
        await anyio.to_thread.run_sync(shutil.copyfile, local_path, remote_path)


class RelayedLocalTransport(ProcessTransport):
    """A Python interpreter started on a ``via`` session's host; files go through the
    protocol (a local copy here would copy on the wrong host)."""


async def Popen(
    command: Sequence[str], address: str = "", via: Session | None = None, **kwargs: Any
) -> ProcessTransport:
    """Start ``command`` on this host; the ``local`` transport's entry point.

    Args:
        command: the argument vector (the interpreter and its loader); a first item of
            ``SAME_PYTHON`` means this process's interpreter (``via``'s with ``via``).
        address: ignored; ``local:`` has no address.
        via: start the interpreter on this session's host instead, relayed through it.
        **kwargs: accepted for interface compatibility; any given is an error.

    Raises:
        TypeError: an unknown keyword argument was given.
        ConnectError: the interpreter could not be started.
    """
    reject_unknown_options("local", kwargs, ())
    command = list(command)
    if command and command[0] == SAME_PYTHON:
        command[0] = sys.executable if via is None else str(via.info.get("executable") or "")
        if not command[0]:
            command[0] = "python3"  # the remote could not name its interpreter
    kind = LocalTransport if via is None else RelayedLocalTransport
    return await kind.spawn(command, address, via=via)


DEFAULT_PYTHON = SAME_PYTHON
"""The interpreter ``local:`` starts when ``connect()`` is given no ``python``:
``sys.executable`` (or, with ``via``, the relaying session's own interpreter)."""
