"""The pipe server: what an ``smb:`` client talks to behind a named pipe.

Each session is two opens of the pipe (see ``aiopushy._pipeproto``); once both halves
have arrived the server starts a fresh Python interpreter (``python -c LOADER``, the
same as ``local:``) and moves bytes: the client still ships the remote code, so the
server needs nothing but Python. Two ways in:

* **Samba** (Linux): Samba hands each open of ``\\\\host\\pipe\\NAME`` to a unix socket
  ``<np dir>/<name>``, after a "named pipe auth" request that names the SMB user Samba
  authenticated (``_sambaid``). Only the allowed users and groups get past it (default:
  the server's own user); the others' opens fail with access denied.
  ``aiopushy serve-pipe --samba-np-dir DIR [--allow-user U] [--allow-group G]``.
* **TCP on loopback**: for SMB servers that forward pipe opens to a TCP port (impacket's
  ``SimpleSMBServer.registerNamedPipe``, the Windows service). Anyone on the host can
  reach a loopback port, so every open must pass the token handshake (``_auth``) first;
  the server refuses to start without a token.
  ``aiopushy serve-pipe --tcp 127.0.0.1:PORT --token-file FILE``.

Each open passes the same gate as a daemon connection (``_gate``: admission, then the
handshake; with no token, as in Samba mode without one, the ``none`` greeting) before
its header is read. No interpreter starts before both halves of a session passed.

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
from typing import TYPE_CHECKING, Any

import anyio

from .. import _bootstrap, _pipeproto
from .._auth import load_token
from ._admission import Admission
from ._gate import pass_gate
from ._net import QuietLog, loopback_binding

if TYPE_CHECKING:
    from ._sambaid import AllowList, SambaIdentities

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
    """Lets pipe opens through the gate, pairs them into sessions and runs an
    interpreter for each.

    Attributes:
        started: interpreters started so far.
    """

    def __init__(self, python: Sequence[str] | None = None, token: bytes | None = None) -> None:
        self.python = list(python or [sys.executable])
        self.token = token
        self.admission = Admission()
        self.log = QuietLog(logger)
        self._pending: dict[bytes, _Pending] = {}
        self.active = 0
        self.started = 0
        self.handlers: set[asyncio.Task[Any]] = set()

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str
    ) -> None:
        """Serve one pipe open from ``client``: the gate, its header, its other half,
        then the session."""
        task = asyncio.current_task()
        if task is not None:
            self.handlers.add(task)
            task.add_done_callback(self.handlers.discard)
        try:
            passed = await pass_gate(
                reader,
                writer,
                token=self.token,
                binding=b"",
                admission=self.admission,
                address=client,
                deadline=PAIRING_TIMEOUT,
                log=self.log,
            )
            if passed is None:
                return
            with anyio.fail_after(PAIRING_TIMEOUT):
                parsed = _pipeproto.parse_header(await reader.readexactly(_pipeproto.HEADER_SIZE))
            if parsed is None:
                self.log.report("header", "dropping a pipe client that sent no valid header")
                return
            role, session_id = parsed
            pending = self._pending.setdefault(session_id, _Pending())
            if role in pending.halves:
                self.log.report("half", "dropping a second %r half of one session", role)
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
                    self.log.report("pairing", "pipe session: the other half never came")
                    return
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
        self.started += 1
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


#: What a refused pipe open gets from Samba: STATUS_ACCESS_DENIED.
STATUS_ACCESS_DENIED = 0xC0000022


def samba_auth_reply(request: bytes, status: int = 0) -> bytes:
    """The reply to Samba's "named pipe auth" request (length-prefixed NDR).

    Bytes 4..8 of the request body hold the level (7 on Samba 4.17); the reply says:
    byte-mode pipe, device state 0xff, allocation size 4096, and ``status`` (an NTSTATUS:
    anything but 0 makes Samba fail the open with it).
    """
    level = struct.unpack_from("<I", request, 4)[0] if len(request) >= 8 else 7
    body = (
        b"NPAM"
        + struct.pack("<II", level, level)
        + struct.pack("<HH", _NP_FILE_TYPE_BYTE_MODE, _NP_DEVICE_STATE)
        + b"\x00" * 4
        + struct.pack("<QI", 4096, status)
    )
    return struct.pack(">I", len(body)) + body


def _samba_handler(
    sessions: PipeSessions, identities: SambaIdentities, allowed: AllowList
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with anyio.fail_after(PAIRING_TIMEOUT):
                size = struct.unpack(">I", await reader.readexactly(4))[0]
                if size > 65536:
                    raise ValueError("named pipe auth request too large")
                request = await reader.readexactly(size)
                try:
                    user = await identities.identify(request)
                except ValueError as exc:
                    sessions.log.report("identity", "refusing a pipe open: %s", exc)
                    user = None
                if user is None or not allowed.admits(user):
                    if user is not None:
                        sessions.log.report(
                            "refused",
                            "refusing a pipe open by %s (uid %d)",
                            user.account,
                            user.uid,
                        )
                    writer.write(samba_auth_reply(request, STATUS_ACCESS_DENIED))
                    await writer.drain()
                    writer.close()
                    return
            writer.write(samba_auth_reply(request))
            await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ValueError, OSError):
            writer.close()
            return
        await sessions.handle(reader, writer, f"samba:{user.account}")

    return handle


@dataclass
class PipeServer:
    """A running pipe server; ``close()`` stops accepting and ``wait_closed()`` waits."""

    servers: list[asyncio.Server]
    sessions: PipeSessions
    addresses: list[str]
    identities: SambaIdentities | None = None

    def close(self) -> None:
        """Stop accepting new pipe opens."""
        for server in self.servers:
            server.close()
        if self.identities is not None:
            self.identities.close()

    async def wait_closed(self) -> None:
        """Wait until the listeners are closed and the running sessions have ended."""
        with anyio.move_on_after(10):
            if self.sessions.handlers:
                await asyncio.wait(list(self.sessions.handlers))
            for server in self.servers:
                await server.wait_closed()
            if self.identities is not None:
                await self.identities.wait_closed()


async def serve_pipe(
    *,
    samba_np_dir: str | None = None,
    name: str = "aiopushy",
    tcp: tuple[str, int] | None = None,
    python: Sequence[str] | None = None,
    token: str | bytes | None = None,
    token_file: str | os.PathLike[str] | None = None,
    allow_users: Sequence[str] = (),
    allow_groups: Sequence[str] = (),
    samba_python: str | None = None,
) -> PipeServer:
    """Start the pipe server on Samba's np socket directory and/or a loopback TCP port.

    Args:
        samba_np_dir: Samba's named-pipe socket directory (Samba mode).
        name: the pipe's name.
        tcp: ``(host, port)`` to accept forwarded opens on; the host must resolve to
            loopback addresses only, and a token is required.
        python: the interpreter started for each session.
        token: the shared secret every open must prove (else ``token_file``, else
            ``$AIOPUSHY_TOKEN``); required with ``tcp``, optional with Samba.
        token_file: a file holding the token.
        allow_users: in Samba mode, the unix users (names or uids) whose SMB sessions
            may open the pipe; with neither this nor ``allow_groups``, this server's own
            user only.
        allow_groups: in Samba mode, the unix groups whose members may open the pipe.
        samba_python: the interpreter that reads Samba's requests with Samba's own code
            (default: ours if it can, else ``/usr/bin/python3``).

    Raises:
        ValueError: neither way in was given, ``tcp`` without a token, a ``tcp`` host off
            loopback, an unknown user or group, or no Samba bindings for Samba mode.
    """
    if samba_np_dir is None and tcp is None:
        raise ValueError("give samba_np_dir= (Samba) and/or tcp= (loopback forwarding)")
    secret = load_token(token, token_file)
    if tcp is not None and secret is None:
        raise ValueError(
            "the pipe server's TCP side needs a token (token=, token_file= or "
            "$AIOPUSHY_TOKEN): anyone on this host can reach a loopback port"
        )
    sessions = PipeSessions(python, secret)
    servers, addresses = [], []
    identities = None
    if samba_np_dir is not None:
        from ._sambaid import AllowList, SambaIdentities
        from ._sambaid import samba_python as find_samba_python

        allowed = AllowList.of(allow_users, allow_groups)
        if samba_python is None:
            samba_python = await anyio.to_thread.run_sync(find_samba_python)
        identities = SambaIdentities(samba_python)
        path = os.path.join(samba_np_dir, name.lower())
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        handler = _samba_handler(sessions, identities, allowed)
        servers.append(await asyncio.start_unix_server(handler, path))
        os.chmod(path, 0o700)  # Samba (root) connects; nobody else
        addresses.append(path)
    if tcp is not None:
        bind = await loopback_binding(tcp[0], tcp[1])

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername") or ("?", 0)
            await sessions.handle(reader, writer, str(peer[0]))

        server = await asyncio.start_server(accept, bind, tcp[1])
        servers.append(server)
        host, port = server.sockets[0].getsockname()[:2]
        addresses.append(f"{host}:{port}")
    return PipeServer(servers, sessions, addresses, identities)
