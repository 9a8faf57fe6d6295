"""The daemon: authenticate each TCP client, then serve it from this interpreter.

Every client gets its own peer (namespace, object table, worker threads), run on a
thread of its own by the same remote code the bootstrap ships; the event loop only
accepts connections, authenticates them and moves bytes. Before authentication nothing
is decoded, every read has a deadline, and attempts are admitted by ``Admission``:
recent failures plus attempts in flight per address stay within ``max_failures``, at
most ``max_pending`` attempts are in flight in all, and idle connections give way to
new ones. Warnings about refused clients are rate-limited, and running out of file
descriptors is one warning, not a traceback per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl as ssl_module
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from .._auth import DEFAULT_PORT, LinkKeys, channel_binding, load_token
from .._eventloop import backend_options
from .._protocol import messages as m
from .._protocol.framing import REMOTE_MAX_FRAME_SIZE
from .._remote import output
from .._remote.channel import Channel
from .._remote.main import serve as serve_channel
from .._remote.peer import Peer
from ._admission import Admission
from ._gate import RecordLink, pass_gate
from ._net import QuietLog, loopback_binding, quiet_accept_errors, raise_file_limit

logger = logging.getLogger("aiopushy.server")

#: File descriptors kept for everything but connections (the interpreter's own, the
#: listening sockets, logs, and what the sessions' code opens).
FILE_RESERVE = 64

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


def _plain_sender(writer: asyncio.StreamWriter) -> Callable[[bytes], Coroutine[Any, Any, None]]:
    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    return send


class DaemonServer:
    """A running daemon: ``address`` is the bound ``(host, port)``."""

    def __init__(
        self,
        *,
        token: bytes | None,
        max_connections: int,
        max_pending: int,
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
        self._admission = Admission(
            max_pending=max_pending,
            max_per_address=max(1, max_pending // 2),
            max_waiting=4 * max_pending,
            max_failures=max_failures,
            window=failure_window,
        )
        self._log = QuietLog(logger)
        self._clients: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self.address: tuple[str, int] = ("", 0)

    async def _start(
        self, host: str | list[str], port: int, ssl: ssl_module.SSLContext | None
    ) -> None:
        # Every client and every attempt holds a file descriptor: make room for them, or
        # scale the three limits down alike where the limit on open files cannot be raised.
        admission = self._admission
        limits = (self._max_connections, admission.max_pending, admission.max_waiting)
        available = raise_file_limit(sum(limits) + FILE_RESERVE) - FILE_RESERVE
        if available < sum(limits):
            share = max(available, 0) / sum(limits)
            self._max_connections = max(1, int(limits[0] * share))
            admission.max_pending = max(1, int(limits[1] * share))
            admission.max_per_address = max(1, admission.max_pending // 2)
            admission.max_waiting = max(1, int(limits[2] * share))
            logger.warning(
                "the limit on open files (ulimit -n) leaves room for %d clients, %d "
                "connections authenticating and %d waiting, not %d, %d and %d: raise it",
                self._max_connections,
                admission.max_pending,
                admission.max_waiting,
                *limits,
            )
        self._server = await asyncio.start_server(self._handle, host, port, ssl=ssl)
        quiet_accept_errors(asyncio.get_running_loop(), self._server.sockets, self._log)
        sockname = self._server.sockets[0].getsockname()
        self.address = (sockname[0], sockname[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        peername = writer.get_extra_info("peername") or ("?", 0)
        client = str(peername[0])
        try:
            if len(self._clients) >= self._max_connections:
                self._log.report(
                    "full", "refusing %s: %d clients already", client, len(self._clients)
                )
                return
            passed = await pass_gate(
                reader,
                writer,
                token=self._token,
                binding=channel_binding(writer.get_extra_info("ssl_object")),
                admission=self._admission,
                address=client,
                deadline=self._handshake_timeout,
                log=self._log,
            )
            if passed is None:
                return
            self._clients.add(writer)
            try:
                await self._serve_client(reader, writer, passed.keys, client)
            finally:
                self._clients.discard(writer)
        finally:
            writer.close()
            with contextlib.suppress(Exception), anyio.move_on_after(2):
                await writer.wait_closed()

    async def _serve_client(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keys: LinkKeys | None,
        client: str,
    ) -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        receive: Callable[[int], Coroutine[Any, Any, bytes]] = reader.read
        send: Callable[[bytes], Coroutine[Any, Any, None]] = _plain_sender(writer)
        if keys is not None:  # insecure mode has no keys, and no records
            link = RecordLink(reader, writer, keys, self._log, client)
            receive, send = link.read, link.write

        def read(size: int) -> bytes:
            try:
                return asyncio.run_coroutine_threadsafe(receive(size), loop).result()
            except Exception:
                return b""

        write_all = send

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
    max_pending: int = 64,
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
        max_pending: connections that have not authenticated yet, at once; a new one
            beyond it ends the oldest (so idle connections cannot lock clients out).
        max_frame_size: the largest message a client may send.
        handshake_timeout: seconds a new connection gets to authenticate.
        idle_timeout: seconds of silence (no heartbeat) after which a client is dropped.
        max_failures: failed logins from one address within ``failure_window`` seconds
            after which that address is refused until the window passes; its logins in
            progress count too (parallel guesses count as soon as they start).
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
        max_pending=max_pending,
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

    options = backend_options()  # uvloop when installed: before anything starts
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(main, backend_options=options)
