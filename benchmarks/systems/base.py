"""The interface of the peers of ``benchmarks.peers`` (``Peer``) and what they share.

Each peer starts the same interpreter over a local subprocess and offers the operations
the scenarios time: the first call of the connect scenario, a call round trip, the
``os.path.join("a", "b")`` chain, many calls in flight, a bytes argument and a file put
and get, each in the peer's idiomatic way (see the class docstrings of ``execnet.Execnet``,
``rpyc.Rpyc`` and ``mitogen.Mitogen``). Everything here blocks; ``benchmarks.peers`` runs
it in a worker thread, timing inside that thread.
"""

from __future__ import annotations

import subprocess
from typing import Any, ClassVar

from ..core import EXIT_GRACE


def reap(process: subprocess.Popen[bytes]) -> None:
    """Wait for ``process`` to exit, killing it after ``EXIT_GRACE`` seconds."""
    try:
        process.wait(EXIT_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


#: The 10 steps of ``chain`` (attribute reads and calls after ``modules``), as text.
CHAIN = (
    'modules.pathlib.PurePosixPath("/usr/lib/python3/x")'
    '.parent.joinpath("share").parent.parent.parent.name'
)
CHAIN_STEPS = 10
CHAIN_RESULT = "usr"


def chain(modules: Any) -> Any:
    """``CHAIN`` on ``modules``: aiopushy's ``conn.modules`` (a lazy reference to await)
    or RPyC's (evaluated step by step as it is written)."""
    return (
        modules.pathlib.PurePosixPath("/usr/lib/python3/x")
        .parent.joinpath("share")
        .parent.parent.parent.name
    )


class Peer:
    """An open connection of one peer to one interpreter."""

    name: ClassVar[str]

    def first_call(self) -> int:
        """The first call of the connect scenario: the remote's ``os.getpid()``."""
        return self.getpid()

    def start(self) -> None:
        """Get ready for the steady-state scenarios (not timed)."""

    def getpid(self) -> int:
        raise NotImplementedError

    def join(self, a: str, b: str) -> str:
        raise NotImplementedError

    def getpids(self, count: int) -> list[int]:
        """``os.getpid()`` ``count`` times, all in flight at once."""
        raise NotImplementedError

    def length(self, blob: bytes) -> int:
        """``len(blob)`` computed remotely: ``blob`` travels as an argument."""
        raise NotImplementedError

    def put_file(self, local_path: str, remote_path: str) -> None:
        raise NotImplementedError

    def get_file(self, remote_path: str, local_path: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def argument_bytes(argv: list[str]) -> int:
    """Bytes of an argument vector's items (UTF-8, without terminators)."""
    return sum(len(arg.encode("utf-8")) for arg in argv)
