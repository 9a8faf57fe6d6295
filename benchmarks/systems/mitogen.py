"""Mitogen as a peer (``Mitogen``, on the router of a ``MitogenHub``), and what its
bootstrap sends (``mitogen_bootstrap``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..core import OPERATION_TIMEOUT, BenchmarkError
from . import mitogen_remote
from .base import Peer, argument_bytes

MITOGEN = "Mitogen"


class MitogenHub:
    """One Mitogen broker and router for the whole run (created on first use)."""

    def __init__(self) -> None:
        self.router: Any = None
        self.broker: Any = None

    def get(self) -> Any:
        if self.router is None:
            import mitogen.master

            self.broker = mitogen.master.Broker()
            self.router = mitogen.master.Router(self.broker)
        return self.router

    def close(self) -> None:
        if self.broker is not None:
            self.broker.shutdown()
            self.broker.join()
            self.broker = self.router = None


class Mitogen(Peer):
    """``router.local(python_path=...)`` on a shared router; calls are
    ``context.call(fn, ...)``; many in flight with ``context.call_async`` and their
    receivers; bytes are call arguments; files are read or written by two small functions
    of ``benchmarks.systems.mitogen_remote`` that Mitogen ships to the child, the bytes
    travelling as call argument and return value."""

    name = MITOGEN

    def __init__(self, python: str, hub: MitogenHub) -> None:
        self.context = hub.get().local(python_path=python)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        receiver = self.context.call_async(fn, *args)
        return receiver.get(timeout=OPERATION_TIMEOUT).unpickle()

    def getpid(self) -> int:
        return int(self._call(os.getpid))

    def join(self, a: str, b: str) -> str:
        return str(self._call(os.path.join, a, b))

    def getpids(self, count: int) -> list[int]:
        receivers = [self.context.call_async(os.getpid) for _ in range(count)]
        return [r.get(timeout=OPERATION_TIMEOUT).unpickle() for r in receivers]

    def length(self, blob: bytes) -> int:
        return int(self._call(len, blob))

    def put_file(self, local_path: str, remote_path: str) -> None:
        with open(local_path, "rb") as source:
            self._call(mitogen_remote.write_file, remote_path, source.read())

    def get_file(self, remote_path: str, local_path: str) -> None:
        data = self._call(mitogen_remote.read_file, remote_path)
        with open(local_path, "wb") as out:
            out.write(data)

    def close(self) -> None:
        self.context.shutdown(wait=True)


def mitogen_bootstrap(python: str, hub: MitogenHub) -> dict[str, Any]:
    """Mitogen's boot command (first stage, base64 of deflate), the compressed core it
    writes to the child's stdin, and module sources served until the first call
    returned."""
    import mitogen.parent

    router = hub.get()
    seen: list[tuple[Any, list[str]]] = []
    original = mitogen.parent.Connection.get_boot_command

    def recording(self: Any) -> list[str]:
        argv: list[str] = original(self)
        seen.append((self, argv))
        return argv

    responder = router.responder
    before = responder.good_load_module_size
    mitogen.parent.Connection.get_boot_command = recording  # type: ignore[method-assign]
    try:
        peer = Mitogen(python, hub)
    finally:
        mitogen.parent.Connection.get_boot_command = original  # type: ignore[method-assign]
    try:
        peer.first_call()
        modules = responder.good_load_module_size - before
    finally:
        peer.close()
    if not seen:
        raise BenchmarkError("Mitogen started no connection")
    connection, argv = seen[-1]
    preamble = len(connection.get_preamble())
    return {
        "command_line": argument_bytes(argv[len(connection.get_python_argv()) :]),
        "streamed": preamble + modules,
        "note": f"compressed mitogen.core {preamble} B, modules served {modules} B",
    }
