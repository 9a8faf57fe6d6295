"""A slow link on loopback: a TCP proxy that delays every chunk by a fixed time, each way.

``python proxy.py UPSTREAM_PORT DELAY_MS`` listens on a free 127.0.0.1 port,
prints it on a line of its own and forwards every connection to 127.0.0.1:UPSTREAM_PORT.
Each chunk read from one side is written to the other ``DELAY_MS`` milliseconds after it
arrived, in order (chunks in flight overlap: the delay is latency, not a rate limit).
The proxy exits when its standard input ends. Standard library only, so it runs as a
script on any interpreter.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

CHUNK = 256 * 1024


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds after it was read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def forward() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    forwarder = asyncio.create_task(forward())
    try:
        while data := await reader.read(CHUNK):
            queue.put_nowait((loop.time() + delay, data))
    except OSError:
        pass
    finally:
        queue.put_nowait((0.0, b""))
        with contextlib.suppress(OSError):
            await forwarder


async def serve(upstream_port: int, delay: float) -> None:
    """Forward every connection to ``upstream_port`` until standard input ends."""
    connections: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(pump(reader, up_writer, delay), pump(up_reader, writer, delay))
        finally:
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(OSError):
                    await w.wait_closed()

    def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(handle(reader, writer))
        connections.add(task)
        task.add_done_callback(connections.discard)

    server = await asyncio.start_server(track, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)  # until our input ends
    server.close()
    for task in list(connections):
        task.cancel()
    await asyncio.gather(*connections, return_exceptions=True)


def main() -> None:
    """``python proxy.py UPSTREAM_PORT DELAY_MS``."""
    asyncio.run(serve(int(sys.argv[1]), float(sys.argv[2]) / 1000))


if __name__ == "__main__":
    main()
