"""What the steady-state scenarios of the peers family (calls, calls in flight, bulk)
run on: every connection and child opened once for all of them (``open_all``)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import aiopushy
from aiopushy.transport.local import LocalTransport

from ..core import OPERATION_TIMEOUT, EchoChild
from ..systems.base import Peer
from ..systems.raw import BlockingEcho, BlockingSink, BulkChild
from ..systems.registry import open_peer
from .common import Run, in_thread


class NoCopyTransport(LocalTransport):
    """``local:`` without its native file copy: files go through the protocol."""

    native_file_copy = False


async def no_copy_popen(command: Sequence[str], address: str, **kwargs: Any) -> NoCopyTransport:
    """The transport of ``NO_COPY:`` targets (``aiopushy.transports`` entry)."""
    transport = await NoCopyTransport.spawn(command, address)
    assert isinstance(transport, NoCopyTransport)
    return transport


NO_COPY = "peers-bench-nocopy"


class Opened:
    """Everything open during the steady-state scenarios."""

    def __init__(self) -> None:
        self.echo: EchoChild | None = None
        self.blocking: BlockingEcho | None = None
        self.conn: aiopushy.Session | None = None
        self.no_copy: aiopushy.Session | None = None
        self.peers: dict[str, Peer] = {}
        self.pids: dict[str, int] = {}
        self.bulk: dict[str, BulkChild] = {}
        self.blocking_sink: BlockingSink | None = None


async def open_all(run: Run, stack: contextlib.AsyncExitStack) -> Opened:
    """Open every connection and child of the steady-state scenarios, each closed with
    ``stack``; a peer that fails to open or to answer is skipped."""
    python = run.python
    opened = Opened()
    opened.echo = await EchoChild.start(python)
    stack.push_async_callback(opened.echo.close)
    opened.blocking = BlockingEcho(python)
    stack.push_async_callback(in_thread, opened.blocking.close)
    opened.conn = await stack.enter_async_context(
        aiopushy.connect("local:", python=python, timeout=OPERATION_TIMEOUT)
    )
    aiopushy.transports[NO_COPY] = no_copy_popen
    stack.callback(aiopushy.transports.pop, NO_COPY, None)
    opened.no_copy = await stack.enter_async_context(
        aiopushy.connect(f"{NO_COPY}:", python=python, timeout=OPERATION_TIMEOUT)
    )
    for mode in ("sink", "back", "cat"):
        opened.bulk[mode] = await BulkChild.start(python, mode)
        stack.push_async_callback(opened.bulk[mode].close)
    opened.blocking_sink = BlockingSink(python)
    stack.push_async_callback(in_thread, opened.blocking_sink.close)
    for name in run.available:
        try:
            peer = await in_thread(open_peer, name, python, run.hub)
        except Exception as exc:
            run.skip(name, exc)
            continue
        stack.push_async_callback(in_thread, peer.close)
        try:
            await in_thread(peer.start)
            opened.pids[name] = await in_thread(peer.getpid)
        except Exception as exc:
            run.skip(name, exc)
            continue
        opened.peers[name] = peer
    return opened
