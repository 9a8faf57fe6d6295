"""``local`` -- a new Python interpreter on this host, through pipes.

``connect("local:")`` runs ``sys.executable`` unless ``python=`` says otherwise. File
copies are plain ``shutil.copyfile`` calls, made in a worker thread.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from typing import Any

import anyio

from ._process import ProcessTransport
from .base import reject_unknown_options


class LocalTransport(ProcessTransport):
    """A Python interpreter started on this host."""

    native_file_copy = True

    async def getfile(self, remote_path: str, local_path: str) -> None:
        """Copy ``remote_path`` to ``local_path`` (both on this host) in a worker thread."""
        await anyio.to_thread.run_sync(shutil.copyfile, remote_path, local_path)

    async def putfile(self, local_path: str, remote_path: str) -> None:
        """Copy ``local_path`` to ``remote_path`` (both on this host) in a worker thread."""
        await anyio.to_thread.run_sync(shutil.copyfile, local_path, remote_path)


async def Popen(command: Sequence[str], address: str = "", **kwargs: Any) -> LocalTransport:
    """Start ``command`` on this host; the ``local`` transport's entry point.

    Args:
        command: the argument vector (the interpreter and its loader).
        address: ignored; ``local:`` has no address.
        **kwargs: accepted for interface compatibility; any given is an error.

    Raises:
        TypeError: an unknown keyword argument was given.
        ConnectError: the interpreter could not be started.
    """
    reject_unknown_options("local", kwargs, ())
    transport = await LocalTransport.spawn(command, address)
    assert isinstance(transport, LocalTransport)
    return transport


DEFAULT_PYTHON = sys.executable
"""The interpreter ``local:`` starts when ``connect()`` is given no ``python``."""
