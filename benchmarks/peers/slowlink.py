"""The slow link: the 10-step attribute/call chain over TCP through a loopback proxy
(``proxy.py``) adding a fixed delay each way: the aiopushy daemon against RPyC classic's
``ThreadedServer``, next to a raw TCP ping-pong through the same kind of proxy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

import aiopushy

from ..core import (
    OPERATION_TIMEOUT,
    PIPES,
    BenchmarkError,
    Measure,
    alternate,
    finish,
    ping_pong,
    progress,
)
from ..systems.base import CHAIN, CHAIN_RESULT, CHAIN_STEPS, chain
from ..systems.rpyc import RPYC, TcpRpyc
from .common import Run, count_aiopushy, count_rpyc, in_thread, mean_await, mean_time
from .scenarios import A_SLOW, R_SLOW, RAW_TCP

#: The repository (on the daemon's ``PYTHONPATH``, for ``aiopushy``).
ROOT = Path(__file__).resolve().parents[2]

DAEMON = """\
import asyncio, os, sys
from aiopushy.server import serve
async def main():
    async with await serve("127.0.0.1", 0) as server:
        os.write(1, b"%d\\n" % server.address[1])
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
asyncio.run(main())
"""

RPYC_TCP_SERVER = """\
import os, sys, threading
from rpyc.utils.server import ThreadedServer
from rpyc.utils.classic import SlaveService
server = ThreadedServer(SlaveService, hostname="127.0.0.1", port=0, reuse_addr=True)
os.write(1, b"%d\\n" % server.port)
threading.Thread(target=server.start, daemon=True).start()
sys.stdin.buffer.read()
server.close()
"""


async def start_server(
    stack: contextlib.AsyncExitStack, argv: Sequence[str], env: dict[str, str] | None = None
) -> int:
    """Start a child that prints the port it listens on; that port. Stopped with ``stack``."""
    process = await asyncio.create_subprocess_exec(*argv, env=env, **PIPES)
    stack.push_async_callback(finish, process)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), OPERATION_TIMEOUT)
    if not line.strip().isdigit():
        assert process.stderr is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(process.wait(), 2.0)
        error = await process.stderr.read() if process.returncode is not None else b""
        lines = error.decode(errors="replace").strip().splitlines() or [line.decode()]
        raise BenchmarkError(f"{argv[0]} did not start: {lines[-1]}")
    return int(line)


async def start_proxy(stack: contextlib.AsyncExitStack, upstream: int, delay: float) -> int:
    """Start ``proxy.py`` forwarding to ``upstream`` with ``delay`` seconds each way; its
    port. Stopped with ``stack``."""
    script = str(Path(__file__).with_name("proxy.py"))
    return await start_server(stack, [sys.executable, script, str(upstream), str(delay * 1000)])


async def echo_server(stack: contextlib.AsyncExitStack) -> int:
    """A TCP echo server in this event loop; its port."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    stack.push_async_callback(server.wait_closed)
    stack.callback(server.close)
    return int(server.sockets[0].getsockname()[1])


async def measure_slow_link(run: Run) -> dict[str, list[float]]:
    """The slow-link scenario: the raw TCP ping-pong, the aiopushy daemon and RPyC over
    TCP, each through its own proxy, alternately; the round trips of each chain counted."""
    python, settings = run.python, run.settings
    batch = settings.slow_batch
    async with contextlib.AsyncExitStack() as stack:
        raw_port = await start_proxy(stack, await echo_server(stack), settings.delay)
        reader, writer = await asyncio.open_connection("127.0.0.1", raw_port)
        stack.callback(writer.close)
        measures: list[Measure] = [
            run.guard(RAW_TCP, lambda: ping_pong(reader, writer, batch)),
        ]
        token = secrets.token_urlsafe(32)
        env = {**os.environ, "AIOPUSHY_TOKEN": token}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        conn: aiopushy.Session | None = None
        try:
            daemon = await start_server(stack, [python, "-c", DAEMON], env)
            port = await start_proxy(stack, daemon, settings.delay)
            conn = await stack.enter_async_context(
                aiopushy.connect(
                    "daemon:127.0.0.1", port=port, token=token, timeout=OPERATION_TIMEOUT
                )
            )
        except (OSError, aiopushy.PushyError, BenchmarkError, asyncio.TimeoutError) as exc:
            run.skip(A_SLOW, exc)
        if conn is not None:
            session = conn
            measures.append(
                run.guard(
                    A_SLOW,
                    lambda: mean_await(lambda: chain(session.modules), batch, CHAIN_RESULT),
                )
            )
        rpyc: TcpRpyc | None = None
        if RPYC in run.available:
            try:
                server = await start_server(stack, [python, "-c", RPYC_TCP_SERVER])
                port = await start_proxy(stack, server, settings.delay)
                rpyc = await in_thread(TcpRpyc, "127.0.0.1", port)
            except Exception as exc:
                run.skip(R_SLOW, exc)
        if rpyc is not None:
            stack.push_async_callback(in_thread, rpyc.close)
            tcp = rpyc
            measures.append(
                run.guard(R_SLOW, lambda: in_thread(mean_time, tcp.chain, batch, CHAIN_RESULT))
            )
        for measure in measures:
            await measure()
        if conn is not None and A_SLOW not in run.skipped:
            run.round_trips[A_SLOW] = await count_aiopushy(conn, lambda: chain(session.modules))
        if rpyc is not None and R_SLOW not in run.skipped:
            sync, total = await in_thread(count_rpyc, rpyc, rpyc.chain)
            run.round_trips[R_SLOW] = sync
            run.facts.setdefault("rpyc_requests", {})[R_SLOW] = {
                "round_trips": sync,
                "requests_with_async": total,
            }
        progress(
            f"peers: slow link ({settings.slow_rounds} rounds x {batch} chains, "
            f"+{settings.delay * 1000:g} ms each way)..."
        )
        samples, rounds = await alternate(measures, settings.slow_rounds, settings.budget)
    run.facts["slow_link"] = {
        "rounds": rounds,
        "chains_per_sample": batch,
        "delay_each_way": settings.delay,
        "chain": CHAIN,
        "steps": CHAIN_STEPS,
    }
    return samples
