"""RPyC classic as a peer, over a subprocess (``Rpyc``) or TCP (``TcpRpyc``), with the
requests it sends counted (``RequestCounter``), and what its bootstrap sends
(``rpyc_bootstrap``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from .base import Peer, argument_bytes, chain, reap

RPYC = "RPyC"

#: What ``rpyc.classic.connect_subproc()`` runs (``rpyc_classic.py -q -m stdio``), as a
#: ``-c`` program so that it runs on ``--python`` and needs no script on the PATH.
RPYC_STDIO_SERVER = "from rpyc.cli.rpyc_classic import main; main()"
RPYC_SERVER_ARGS = ("-q", "-m", "stdio")


class RequestCounter:
    """Counts the requests an RPyC connection sends: the synchronous ones (round trips
    the caller waits for) and all of them (also asynchronous ones, such as the releases
    of dropped netrefs)."""

    def __init__(self, conn: Any) -> None:
        self.sync = 0
        self.total = 0
        sync_request, async_request = conn.sync_request, conn.async_request

        def counted_sync(*args: Any) -> Any:
            self.sync += 1
            return sync_request(*args)

        def counted_async(*args: Any, **kwargs: Any) -> Any:
            self.total += 1
            return async_request(*args, **kwargs)

        self._conn = conn
        self._patches = {"sync_request": counted_sync, "async_request": counted_async}

    @contextlib.contextmanager
    def counting(self) -> Iterator[RequestCounter]:
        self.sync = self.total = 0
        vars(self._conn).update(self._patches)
        try:
            yield self
        finally:
            for name in self._patches:
                vars(self._conn).pop(name, None)


class Rpyc(Peer):
    """RPyC classic over a subprocess: ``rpyc.utils.factory.connect_subproc`` of
    ``rpyc_classic.py -q -m stdio`` with ``SlaveService`` (what
    ``rpyc.classic.connect_subproc`` does, on ``--python``). Calls are
    ``conn.modules.os.getpid()`` (also timed with ``getpid`` resolved once); many in
    flight with ``rpyc.async_``; files with ``rpyc.classic.upload``/``download``."""

    name = RPYC

    def __init__(self, python: str) -> None:
        from rpyc.utils import factory
        from rpyc.utils.classic import SlaveService

        argv = [python, "-u", "-c", RPYC_STDIO_SERVER, *RPYC_SERVER_ARGS]
        self.conn = factory.connect_subproc(argv, SlaveService)
        self.counter = RequestCounter(self.conn)
        self._getpid: Callable[[], int] | None = None

    def start(self) -> None:
        self._getpid = self.conn.modules.os.getpid

    def getpid(self) -> int:
        return int(self.conn.modules.os.getpid())

    def bound_getpid(self) -> int:
        assert self._getpid is not None
        return int(self._getpid())

    def join(self, a: str, b: str) -> str:
        return str(self.conn.modules.os.path.join(a, b))

    def getpids(self, count: int) -> list[int]:
        import rpyc

        getpid = rpyc.async_(self.conn.modules.os.getpid)
        results = [getpid() for _ in range(count)]
        return [result.value for result in results]

    def length(self, blob: bytes) -> int:
        return int(self.conn.modules.builtins.len(blob))

    def put_file(self, local_path: str, remote_path: str) -> None:
        import rpyc

        rpyc.classic.upload(self.conn, local_path, remote_path)

    def get_file(self, remote_path: str, local_path: str) -> None:
        import rpyc

        rpyc.classic.download(self.conn, remote_path, local_path)

    def count_requests(self, call: Callable[[], Any], reps: int = 1) -> tuple[float, float]:
        """Mean round trips (synchronous requests) and requests of all kinds per
        ``call()``, over ``reps`` calls."""
        with self.counter.counting() as counter:
            for _ in range(reps):
                call()
        return counter.sync / reps, counter.total / reps

    def chain(self) -> str:
        """The 10-step chain of the slow-link scenario."""
        return str(chain(self.conn.modules))

    def close(self) -> None:
        self._getpid = None
        process = getattr(self.conn, "proc", None)
        self.conn.close()
        if process is not None:
            reap(process)


class TcpRpyc(Rpyc):
    """RPyC classic over TCP: ``rpyc.classic.connect(host, port)``."""

    def __init__(self, host: str, port: int) -> None:
        import rpyc

        self.conn = rpyc.classic.connect(host, port)
        self.counter = RequestCounter(self.conn)
        self._getpid = None


def rpyc_bootstrap() -> dict[str, Any]:
    """RPyC sends no code: the remote needs rpyc (and plumbum) installed."""
    args = ["-u", "-c", RPYC_STDIO_SERVER, *RPYC_SERVER_ARGS]
    return {
        "command_line": argument_bytes(args),
        "streamed": 0,
        "note": "nothing shipped: rpyc and plumbum must be installed on the remote",
    }
