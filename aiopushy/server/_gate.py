"""The gate every server connection passes before anything else: admission (``Admission``),
then the token handshake (``_auth``), then, for the daemon, records (``_records``).

``pass_gate`` runs the server's side of the handshake under the admission rules and a
deadline; ``RecordLink`` gives the authenticated bytes that follow to blocking code (the
daemon's sessions run on threads of their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass

import anyio

from .._auth import (
    ANSWER_SIZE,
    GREETING_BUSY,
    GREETING_LOCKED,
    REJECTED,
    LinkKeys,
    server_greeting,
    server_verdict,
)
from .._records import RecordError, RecordReader, RecordWriter
from ._admission import Admission, Dropped
from ._net import QuietLog


@dataclass(frozen=True)
class Passed:
    """A connection through the gate: the link's keys (``None`` without a token)."""

    keys: LinkKeys | None


async def pass_gate(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    token: bytes | None,
    binding: bytes,
    admission: Admission,
    address: str,
    deadline: float,
    log: QuietLog,
) -> Passed | None:
    """Admit the connection, then authenticate it within ``deadline`` seconds of being
    admitted; ``None`` if it did not pass (it was refused, dropped, too slow, or
    wrong)."""
    if token is not None and not admission.may_verify(address):
        log.report("failures", "refusing %s: too many failed logins", address)
        with contextlib.suppress(OSError):
            writer.write(GREETING_LOCKED)
        return None
    try:
        attempt = await admission.enter(address, writer.transport.abort)
    except Dropped:
        log.report("dropped", "dropping a connection from %s: too many waiting", address)
        with contextlib.suppress(OSError):
            writer.write(GREETING_BUSY)
        return None
    try:
        with anyio.fail_after(deadline):
            greeting, nonce = server_greeting(token)
            writer.write(greeting)
            await writer.drain()
            if token is None:
                return Passed(None)
            first = await reader.readexactly(1)
            admission.heard(attempt)
            answer = first + await reader.readexactly(ANSWER_SIZE - 1)
            # Checked and counted together, with nothing awaited in between: parallel
            # guesses are judged one by one.
            if not admission.may_verify(address):
                reply, keys = REJECTED, None
                log.report("failures", "refusing %s: too many failed logins", address)
            else:
                reply, keys = server_verdict(token, nonce, answer, binding)
                if keys is None:
                    admission.failed(address)
                    log.report("failed", "authentication failed for %s", address)
            writer.write(reply)
            await writer.drain()
            return None if keys is None else Passed(keys)
    except (TimeoutError, asyncio.IncompleteReadError, OSError, ssl.SSLError):
        return None
    finally:
        admission.finish(attempt)


class RecordLink:
    """The authenticated bytes of a daemon connection, read and written as records.

    ``read`` and ``write`` are coroutines for the event loop's side; a record that fails
    its check ends the link (``read`` gives ``b""`` from then on) and is logged once.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keys: LinkKeys,
        log: QuietLog,
        peer: str,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._opened = RecordReader(keys.receiving)
        self._sealed = RecordWriter(keys.sending)
        self._log = log
        self._peer = peer
        self._broken = False

    async def read(self, size: int) -> bytes:
        """Authenticated bytes (at least one), or ``b""`` at the end."""
        while not self._broken:
            try:
                data = self._opened.payloads()
            except RecordError as exc:
                self._broken = True
                self._log.report("record", "ending the link of %s: %s", self._peer, exc)
                self._writer.transport.abort()
                break
            if data:
                return data
            chunk = await self._reader.read(size)
            if not chunk:
                break
            self._opened.receive_data(chunk)
        return b""

    async def write(self, data: bytes) -> None:
        """Send ``data`` as records."""
        for piece in self._sealed.seal(data):
            self._writer.write(piece)
        await self._writer.drain()
