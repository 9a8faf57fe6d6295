"""The peers by name: their installed versions, starting one, and timing its connect."""

from __future__ import annotations

import time

from ..core import BenchmarkError
from .base import Peer
from .execnet import EXECNET, Execnet
from .mitogen import MITOGEN, Mitogen, MitogenHub
from .rpyc import RPYC, Rpyc

#: The peers, in the order of the tables.
PEERS = (EXECNET, RPYC, MITOGEN)

MODULES = {EXECNET: "execnet", RPYC: "rpyc", MITOGEN: "mitogen"}


def version(peer: str) -> str:
    """The installed version of ``peer`` (importing it), as text."""
    module = __import__(MODULES[peer])
    found = getattr(module, "__version__", "?")
    return ".".join(map(str, found)) if isinstance(found, tuple) else str(found)


def open_peer(name: str, python: str, hub: MitogenHub) -> Peer:
    """Start ``python`` with peer ``name`` (spawn and bootstrap)."""
    if name == EXECNET:
        return Execnet(python)
    if name == RPYC:
        return Rpyc(python)
    if name == MITOGEN:
        return Mitogen(python, hub)
    raise ValueError(name)


def time_connect(name: str, python: str, hub: MitogenHub) -> float:
    """Seconds to start ``python`` with peer ``name`` and make the first call; closing
    is not timed."""
    start = time.perf_counter()
    peer = open_peer(name, python, hub)
    try:
        pid = peer.first_call()
        elapsed = time.perf_counter() - start
    finally:
        peer.close()
    if not isinstance(pid, int) or pid <= 0:
        raise BenchmarkError(f"{name}: os.getpid() gave {pid!r}")
    return elapsed
