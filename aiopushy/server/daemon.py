"""The daemon: authenticate each TCP client, then serve it from this interpreter.

Every client gets its own peer (namespace, object table, worker threads), run on a
thread of its own by the same remote code the bootstrap ships; the event loop only
accepts connections, authenticates them and moves bytes. Before authentication nothing
is decoded, every read has a deadline, and failures from one address are rate-limited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl as ssl_module
import sys
import threading
import time
from collections import defaultdict, deque
from typing import Any

import anyio

from .._auth import DEFAULT_PORT, load_token, server_handshake
from .._protocol import messages as m
from .._protocol.framing import REMOTE_MAX_FRAME_SIZE
from .._remote import output
from .._remote.channel import Channel
from .._remote.main import serve as serve_channel
from .._remote.peer import Peer
from ._net import loopback_binding

logger = logging.getLogger("aiopushy.server")

_output_installed = threading.Lock()


def _install_routed_output() -> None:
    """Route ``print()`` from client requests to the client (once per process)."""
    if not _output_installed.acquire(blocking=False):
        return
    for name, stream in (("stdout", m.STDOUT), ("stderr", m.STDERR)):
        original = getattr(sys, name)

        def fallback(_: int, data: bytes, original: Any = original) -> None:
            # Output of the daemon itself (no client request on this thread).
            original.write(data.decode("utf-8", "replace"))
            original.flush()

        fd = original.fileno() if hasattr(original, "fileno") else -1
        writer = output.FrameTextWriter(output.routed(fallback), stream, fd, write_through=True)
        setattr(sys, name, writer)


class DaemonServer:
    """A running daemon: ``address`` is the bound ``(host, port)``."""

    def __init__(
        self,
        *,
        token: bytes | None,
        max_connections: int,
        max_frame_size: int,
        handshake_timeout: float,
        idle_timeout: float,
        max_failures: int,
        failure_window: float,
    ) -> None:
        self._token = token
        self._max_connections = max_connections
        self._max_frame_size = max_frame_size
        self._handshake_timeout = handshake_timeout
        self._idle_timeout = idle_timeout
        self._max_failures = max_failures
        self._failure_window = failure_window
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)
        self._clients: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self.address: tuple[str, int] = ("", 0)

    async def _start(
        self, host: str | list[str], port: int, ssl: ssl_module.SSLContext | None
    ) -> None:
        self._server = await asyncio.start_server(self._handle, host, port, ssl=ssl)
        sockname = self._server.sockets[0].getsockname()
        self.address = (sockname[0], sockname[1])

    def _rate_limited(self, client: str) -> bool:
        failures = self._failures[client]
        while failures and failures[0] < time.monotonic() - self._failure_window:
            failures.popleft()
        return len(failures) >= self._max_failures

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        peername = writer.get_extra_info("peername") or ("?", 0)
        client = str(peername[0])
        try:
            if len(self._clients) >= self._max_connections:
                logger.warning("refusing %s: %d clients already", client, len(self._clients))
                return
            if self._rate_limited(client):
                logger.warning("refusing %s: too many failed logins", client)
                return
            try:
                with anyio.fail_after(self._handshake_timeout):
                    accepted = await server_handshake(reader, writer, self._token)
            except (TimeoutError, asyncio.IncompleteReadError, OSError, ssl_module.SSLError):
                logger.info("dropping %s: no valid handshake", client)
                return
            if not accepted:
                self._failures[client].append(time.monotonic())
                logger.warning("authentication failed for %s", client)
                return
            self._clients.add(writer)
            try:
                await self._serve_client(reader, writer)
            finally:
                self._clients.discard(writer)
        finally:
            writer.close()
            with contextlib.suppress(Exception), anyio.move_on_after(2):
                await writer.wait_closed()

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def read(size: int) -> bytes:
            try:
                return asyncio.run_coroutine_threadsafe(reader.read(size), loop).result()
            except Exception:
                return b""

        async def write_all(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        def write(data: bytes | memoryview) -> int:
            chunk = bytes(data)
            try:
                asyncio.run_coroutine_threadsafe(write_all(chunk), loop).result()
            except Exception as exc:
                raise BrokenPipeError("client gone") from exc
            return len(chunk)

        def setup(peer: Peer, settings: dict[str, Any]) -> None:
            if settings.get("env") or settings.get("cwd"):
                raise ValueError(
                    "a daemon's interpreter is shared by its clients: "
                    "env= and cwd= are not supported on daemon: sessions"
                )
            asked = settings.get("heartbeat_timeout") or self._idle_timeout
            settings["heartbeat_timeout"] = min(asked, self._idle_timeout)

        def session() -> None:
            try:
                channel = Channel(read, write, self._max_frame_size)
                peer = serve_channel(channel, setup)
                if peer is not None:
                    logger.info("client session ended: %s", peer.stop_reason)
            except Exception:
                logger.exception("client session failed")
            finally:
                loop.call_soon_threadsafe(done.set)

        threading.Thread(target=session, name="aiopushy-daemon-client", daemon=True).start()
        await done.wait()

    async def close(self) -> None:
        """Stop accepting, and disconnect every client (their calls fail promptly)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients):
            with contextlib.suppress(Exception):
                writer.transport.abort()

    async def wait_closed(self) -> None:
        """Wait until the listening socket and every client session have ended."""
        with anyio.move_on_after(5):
            if self._handlers:
                await asyncio.wait(list(self._handlers))
            if self._server is not None:
                await self._server.wait_closed()

    async def __aenter__(self) -> DaemonServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
        await self.wait_closed()


async def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    token: str | bytes | None = None,
    token_file: str | os.PathLike[str] | None = None,
    insecure: bool = False,
    ssl: ssl_module.SSLContext | None = None,
    max_connections: int = 128,
    max_frame_size: int = REMOTE_MAX_FRAME_SIZE,
    handshake_timeout: float = 10.0,
    idle_timeout: float = 300.0,
    max_failures: int = 5,
    failure_window: float = 60.0,
) -> DaemonServer:
    """Start the daemon in the running event loop; ``port=0`` picks a free port.

    Args:
        host: address to listen on (default loopback only).
        port: TCP port (``DEFAULT_PORT``, 10101, as in Pushy).
        token: the shared secret clients must prove (else ``token_file``, else
            ``$AIOPUSHY_TOKEN``).
        token_file: a file holding the token; it must not be readable by others.
        insecure: allow running without a token (loopback addresses only).
        ssl: a server ``ssl.SSLContext`` (require client certificates in it if wanted).
        max_connections: clients served at once; more are turned away.
        max_frame_size: the largest message a client may send.
        handshake_timeout: seconds a new connection gets to authenticate.
        idle_timeout: seconds of silence (no heartbeat) after which a client is dropped.
        max_failures: failed logins from one address within ``failure_window`` seconds
            after which that address is refused until the window passes.
        failure_window: see ``max_failures``.

    Raises:
        ValueError: no token without ``insecure``, or ``insecure`` with a ``host`` that
            does not resolve to loopback addresses only.
    """
    secret = load_token(token, token_file)
    if secret is None and not insecure:
        raise ValueError(
            "refusing to start without authentication: give a token (token=, token_file= "
            "or $AIOPUSHY_TOKEN), or insecure=True on a loopback address"
        )
    bind: str | list[str] = host
    if secret is None:
        bind = await loopback_binding(host, port)
    _install_routed_output()
    server = DaemonServer(
        token=secret,
        max_connections=max_connections,
        max_frame_size=max_frame_size,
        handshake_timeout=handshake_timeout,
        idle_timeout=idle_timeout,
        max_failures=max_failures,
        failure_window=failure_window,
    )
    await server._start(bind, port, ssl)
    logger.info("aiopushy daemon listening on %s:%d", *server.address)
    return server


def run(host: str = "127.0.0.1", port: int = DEFAULT_PORT, **kwargs: Any) -> None:
    """Run the daemon until interrupted (blocking, like Pushy's ``pushy.server.run``)."""

    async def main() -> None:
        server = await serve(host, port, **kwargs)
        print(f"aiopushy daemon listening on {server.address[0]}:{server.address[1]}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.close()

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(main)
