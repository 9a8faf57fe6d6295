"""The pipe server: what an ``smb:`` client talks to behind a named pipe.

Each session is two opens of the pipe (see ``aiopushy._pipeproto``); once both halves
have arrived the server starts a fresh Python interpreter (``python -c LOADER``, the
same as ``local:``) and moves bytes: the client still ships the remote code, so the
server needs nothing but Python. Two ways in:

* **Samba** (Linux): Samba hands each open of ``\\\\host\\pipe\\NAME`` to a unix socket
  ``<np dir>/<name>``, after a "named pipe auth" exchange that ``_samba_accept`` answers.
  ``aiopushy serve-pipe --samba-np-dir DIR --name aiopushy``.
* **TCP on loopback**: for SMB servers that forward pipe opens to a TCP port (impacket's
  ``SimpleSMBServer.registerNamedPipe``). ``aiopushy serve-pipe --tcp 127.0.0.1:PORT``.

The Windows service flavour (``aiopushy.server.winpipe``) shares ``PipeSessions``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from .. import _bootstrap, _pipeproto
from ._net import loopback_binding

logger = logging.getLogger("aiopushy.server.pipe")

PAIRING_TIMEOUT = 10.0
COPY_SIZE = 65536

# Samba's "named pipe auth" reply: byte-mode pipe, 4096-byte allocation hint.
_NP_FILE_TYPE_BYTE_MODE = 1
_NP_DEVICE_STATE = 0xFF


@dataclass
class _Half:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@dataclass
class _Pending:
    halves: dict[bytes, _Half] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class PipeSessions:
    """Pairs pipe opens into sessions and runs an interpreter for each."""

    def __init__(self, python: Sequence[str] | None = None) -> None:
        self.python = list(python or [sys.executable])
        self._pending: dict[bytes, _Pending] = {}
        self.active = 0
        self.handlers: set[asyncio.Task[Any]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one pipe open: read its header, wait for its other half, run the session."""
        task = asyncio.current_task()
        if task is not None:
            self.handlers.add(task)
            task.add_done_callback(self.handlers.discard)
        try:
            with anyio.fail_after(PAIRING_TIMEOUT):
                parsed = _pipeproto.parse_header(await reader.readexactly(_pipeproto.HEADER_SIZE))
            if parsed is None:
                logger.warning("dropping a pipe client that sent no valid header")
                return
            role, session_id = parsed
            pending = self._pending.setdefault(session_id, _Pending())
            if role in pending.halves:
                logger.warning("dropping a second %r half of one session", role)
                return
            pending.halves[role] = _Half(reader, writer)
            if len(pending.halves) == 2:
                del self._pending[session_id]
                pending.ready.set()
                await self._run(pending.halves)
            else:
                try:
                    with anyio.fail_after(PAIRING_TIMEOUT):
                        await pending.ready.wait()
                except TimeoutError:
                    self._pending.pop(session_id, None)
                    logger.warning("pipe session %s: the other half never came", session_id)
                    return
                await pending.ready.wait()
                # The half that completed the pair runs the session; keep ours open till then.
                await _closed(writer)
        except (asyncio.IncompleteReadError, TimeoutError, OSError):
            pass
        finally:
            writer.close()

    async def _run(self, halves: dict[bytes, _Half]) -> None:
        incoming = halves[_pipeproto.TO_REMOTE]
        outgoing = halves[_pipeproto.FROM_REMOTE]
        process = await asyncio.create_subprocess_exec(
            *_bootstrap.command(self.python),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert process.stdin and process.stdout and process.stderr
        self.active += 1
        logger.info("pipe session started: interpreter pid %d", process.pid)
        try:
            async with anyio.create_task_group() as group:

                async def to_remote() -> None:
                    await _copy(incoming.reader, process.stdin)
                    group.cancel_scope.cancel()

                async def from_remote() -> None:
                    assert process.stdout
                    await _copy(process.stdout, outgoing.writer)
                    group.cancel_scope.cancel()

                group.start_soon(to_remote)
                group.start_soon(from_remote)
                group.start_soon(_log_stderr, process.stderr, process.pid)
        finally:
            self.active -= 1
            with contextlib.suppress(OSError, RuntimeError):
                process.stdin.close()
            with anyio.move_on_after(5):
                await process.wait()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            incoming.writer.close()
            outgoing.writer.close()
            logger.info("pipe session ended: interpreter pid %d", process.pid)


async def _copy(source: asyncio.StreamReader, target: Any) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        while data := await source.read(COPY_SIZE):
            target.write(data)
            await target.drain()


async def _closed(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        await writer.wait_closed()


async def _log_stderr(stream: asyncio.StreamReader, pid: int) -> None:
    while line := await stream.readline():
        logger.info("interpreter %d: %s", pid, line.decode("utf-8", "replace").rstrip())


def samba_auth_reply(request: bytes) -> bytes:
    """The reply to Samba's "named pipe auth" request (length-prefixed NDR).

    Bytes 4..8 of the request body hold the level (7 on Samba 4.17); the reply says:
    byte-mode pipe, device state 0xff, allocation size 4096.
    """
    level = struct.unpack_from("<I", request, 4)[0] if len(request) >= 8 else 7
    body = (
        b"NPAM"
        + struct.pack("<II", level, level)
        + struct.pack("<HH", _NP_FILE_TYPE_BYTE_MODE, _NP_DEVICE_STATE)
        + b"\x00" * 4
        + struct.pack("<QI", 4096, 0)
    )
    return struct.pack(">I", len(body)) + body


def _samba_handler(
    sessions: PipeSessions,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with anyio.fail_after(PAIRING_TIMEOUT):
                size = struct.unpack(">I", await reader.readexactly(4))[0]
                if size > 65536:
                    raise ValueError("named pipe auth request too large")
                request = await reader.readexactly(size)
            writer.write(samba_auth_reply(request))
            await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ValueError, OSError):
            writer.close()
            return
        await sessions.handle(reader, writer)

    return handle


@dataclass
class PipeServer:
    """A running pipe server; ``close()`` stops accepting and ``wait_closed()`` waits."""

    servers: list[asyncio.Server]
    sessions: PipeSessions
    addresses: list[str]

    def close(self) -> None:
        """Stop accepting new pipe opens."""
        for server in self.servers:
            server.close()

    async def wait_closed(self) -> None:
        """Wait until the listeners are closed and the running sessions have ended."""
        with anyio.move_on_after(10):
            if self.sessions.handlers:
                await asyncio.wait(list(self.sessions.handlers))
            for server in self.servers:
                await server.wait_closed()


async def serve_pipe(
    *,
    samba_np_dir: str | None = None,
    name: str = "aiopushy",
    tcp: tuple[str, int] | None = None,
    python: Sequence[str] | None = None,
) -> PipeServer:
    """Start the pipe server on Samba's np socket directory and/or a loopback TCP port.

    Raises:
        ValueError: neither way in was given, or the TCP address is not loopback.
    """
    if samba_np_dir is None and tcp is None:
        raise ValueError("give samba_np_dir= (Samba) and/or tcp= (loopback forwarding)")
    sessions = PipeSessions(python)
    servers, addresses = [], []
    if samba_np_dir is not None:
        path = os.path.join(samba_np_dir, name.lower())
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        servers.append(await asyncio.start_unix_server(_samba_handler(sessions), path))
        os.chmod(path, 0o700)  # Samba (root) connects; nobody else
        addresses.append(path)
    if tcp is not None:
        bind = await loopback_binding(tcp[0], tcp[1])
        server = await asyncio.start_server(sessions.handle, bind, tcp[1])
        servers.append(server)
        host, port = server.sockets[0].getsockname()[:2]
        addresses.append(f"{host}:{port}")
    return PipeServer(servers, sessions, addresses)
