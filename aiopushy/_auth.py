"""The token handshake of the daemon and the pipe server: an HMAC challenge-response
that both sides pass, and the keys it gives the link behind it.

It runs on the raw byte stream, before anything is decoded::

    server -> client   GREETING (23 bytes: "... hmac\\n", or "... none\\n", "... lock\\n",
                       "... busy\\n") [+ server nonce]
    client -> server   HMAC(token, "client" | binding | server nonce) + client nonce
    server -> client   ACCEPTED + HMAC(token, "server" | binding | both nonces)  or  REJECTED

Nonces are 32 random bytes. ``binding`` ties the handshake to the connection it runs on:
with TLS, the channel's ``tls-unique`` value (a relay that ends TLS on each side sees a
different one on each side), else nothing. Both sides prove that they know the token, so
a client also refuses an impostor server. From both nonces and the binding each side
derives a key per direction, ``HMAC(token, "client to server" | binding | nonces)`` and
``... "server to client" ...``, which ``_records`` uses to authenticate every byte that
follows (an on-path relay can pass the handshake through, but not add to, change, drop,
replay or reorder what comes after it).

A server started without a token sends the ``none`` greeting and nothing else; a client
that has a token refuses such a server. A server that refuses the client's address for
its recent failures sends the ``lock`` greeting and closes; one with too many connections
waiting to authenticate, the ``busy`` greeting.

The pure functions here compute the messages; ``client_handshake`` drives them over
asyncio streams, ``blocking_client_handshake`` over blocking read and write functions
(the smb transport's pipe).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._exceptions import AuthenticationError, ConnectError

DEFAULT_PORT = 10101
"""Pushy's daemon port."""

GREETING_HMAC = b"AIOPUSHY-DAEMON 2 hmac\n"
GREETING_NONE = b"AIOPUSHY-DAEMON 2 none\n"
#: Sent instead of a challenge to an address with too many recent failures.
GREETING_LOCKED = b"AIOPUSHY-DAEMON 2 lock\n"
#: Sent instead of a challenge when too many connections wait to authenticate.
GREETING_BUSY = b"AIOPUSHY-DAEMON 2 busy\n"
NONCE_SIZE = 32
PROOF_SIZE = 32
ANSWER_SIZE = PROOF_SIZE + NONCE_SIZE
ACCEPTED = b"\x01"
REJECTED = b"\x00"
TOKEN_ENVIRONMENT_VARIABLE = "AIOPUSHY_TOKEN"


@dataclass(frozen=True)
class LinkKeys:
    """The keys a handshake gives one side: for what it sends and what it receives."""

    sending: bytes
    receiving: bytes


def _mac(token: bytes, label: bytes, binding: bytes, *nonces: bytes) -> bytes:
    message = label + len(binding).to_bytes(2, "big") + binding + b"".join(nonces)
    return hmac.digest(token, message, hashlib.sha256)


def _keys(token: bytes, binding: bytes, server_nonce: bytes, client_nonce: bytes) -> LinkKeys:
    to_server = _mac(token, b"client to server", binding, server_nonce, client_nonce)
    to_client = _mac(token, b"server to client", binding, server_nonce, client_nonce)
    return LinkKeys(sending=to_client, receiving=to_server)


def channel_binding(ssl_object: Any) -> bytes:
    """What binds a handshake to its TLS channel (``tls-unique``); ``b""`` without TLS."""
    if ssl_object is None:
        return b""
    return bytes(ssl_object.get_channel_binding("tls-unique") or b"")


# -- the server's side -----------------------------------------------------------------


def server_greeting(token: bytes | None) -> tuple[bytes, bytes]:
    """What the server sends first, and its nonce (``b""`` without a token)."""
    if token is None:
        return GREETING_NONE, b""
    nonce = os.urandom(NONCE_SIZE)
    return GREETING_HMAC + nonce, nonce


def server_verdict(
    token: bytes, nonce: bytes, answer: bytes, binding: bytes
) -> tuple[bytes, LinkKeys | None]:
    """The server's reply to a client's ``answer``, and the link's keys if it is right."""
    proof, client_nonce = answer[:PROOF_SIZE], answer[PROOF_SIZE:]
    if len(answer) != ANSWER_SIZE or not hmac.compare_digest(
        proof, _mac(token, b"client", binding, nonce)
    ):
        return REJECTED, None
    reply = ACCEPTED + _mac(token, b"server", binding, nonce, client_nonce)
    return reply, _keys(token, binding, nonce, client_nonce)


# -- the client's side -------------------------------------------------------------------


class _Client:
    """One client handshake, step by step (the drivers below do the reading)."""

    def __init__(self, token: bytes | None, target: str, binding: bytes) -> None:
        self.token = token
        self.target = target
        self.binding = binding
        self.nonce = os.urandom(NONCE_SIZE)
        self.server_nonce = b""

    def greeted(self, greeting: bytes) -> bool:
        """Check the greeting; whether the server wants a token (a nonce follows).

        Raises:
            AuthenticationError: the server's mode does not match our token.
            ConnectError: not an aiopushy server.
        """
        if greeting == GREETING_NONE:
            if self.token is not None:
                raise AuthenticationError(
                    f"{self.target}: the server runs without authentication, but a token "
                    "was given; refusing to talk to it",
                    target=self.target,
                )
            return False
        if greeting == GREETING_LOCKED:
            raise AuthenticationError(
                f"{self.target}: the server refuses this address for now: too many "
                "failed logins from it",
                target=self.target,
            )
        if greeting == GREETING_BUSY:
            raise ConnectError(
                f"{self.target}: the server is busy: too many connections are waiting to "
                "authenticate; try again",
                target=self.target,
            )
        if greeting != GREETING_HMAC:
            raise ConnectError(
                f"{self.target}: not an aiopushy server of this version "
                f"(greeting {greeting!r:.40})",
                target=self.target,
            )
        if self.token is None:
            raise AuthenticationError(
                f"{self.target}: the server requires a token", target=self.target
            )
        return True

    def answer(self, server_nonce: bytes) -> bytes:
        """What the client sends back."""
        assert self.token is not None
        self.server_nonce = server_nonce
        return _mac(self.token, b"client", self.binding, server_nonce) + self.nonce

    def verdict(self, verdict: bytes, server_proof: bytes) -> LinkKeys:
        """The link's keys, once the server accepted us and proved it knows the token.

        Raises:
            AuthenticationError: it refused us, or does not know the token.
        """
        assert self.token is not None
        if verdict != ACCEPTED:
            raise AuthenticationError(
                f"{self.target}: the server refused the token", target=self.target
            )
        expected = _mac(self.token, b"server", self.binding, self.server_nonce, self.nonce)
        if not hmac.compare_digest(server_proof, expected):
            raise AuthenticationError(
                f"{self.target}: the server does not know the token: not the server you meant",
                target=self.target,
            )
        keys = _keys(self.token, self.binding, self.server_nonce, self.nonce)
        return LinkKeys(sending=keys.receiving, receiving=keys.sending)


async def client_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    token: bytes | None,
    target: str,
    binding: bytes = b"",
) -> LinkKeys | None:
    """Authenticate to a server (and the server to us) over asyncio streams; the link's
    keys, or ``None`` for a server without a token.

    Raises:
        AuthenticationError: wrong or missing token, or not the server we expect.
        ConnectError: the peer is not an aiopushy server.
    """
    client = _Client(token, target, binding)
    try:
        if not client.greeted(await reader.readexactly(len(GREETING_HMAC))):
            return None
        writer.write(client.answer(await reader.readexactly(NONCE_SIZE)))
        await writer.drain()
        verdict = await reader.readexactly(1)
        return client.verdict(verdict, await reader.readexactly(PROOF_SIZE))
    except asyncio.IncompleteReadError as exc:
        if client.server_nonce:
            raise AuthenticationError(
                f"{target}: the server refused the token", target=target
            ) from exc
        raise ConnectError(
            f"{target}: the server closed the connection at once", target=target
        ) from exc


def blocking_client_handshake(
    read_exactly: Callable[[int], bytes],
    write: Callable[[bytes], None],
    token: bytes | None,
    target: str,
) -> LinkKeys | None:
    """``client_handshake`` over blocking functions; ``read_exactly(n)`` returns fewer
    than ``n`` bytes only at the end of the stream.

    Raises:
        AuthenticationError: wrong or missing token, or not the server we expect.
        ConnectError: the peer is not an aiopushy server, or hung up.
    """
    client = _Client(token, target, b"")

    def read(size: int) -> bytes:
        data = read_exactly(size)
        if len(data) < size:
            if client.server_nonce:
                raise AuthenticationError(f"{target}: the server refused the token", target=target)
            raise ConnectError(f"{target}: the server hung up", target=target)
        return data

    if not client.greeted(read(len(GREETING_HMAC))):
        return None
    write(client.answer(read(NONCE_SIZE)))
    verdict = read(1)
    return client.verdict(verdict, read(PROOF_SIZE))


# -- tokens ----------------------------------------------------------------------------------


def load_token(
    token: str | bytes | None = None, token_file: str | os.PathLike[str] | None = None
) -> bytes | None:
    """The shared secret from ``token``, else ``token_file``, else ``$AIOPUSHY_TOKEN``.

    A token file (``~`` is expanded) must be a regular file of the current user that no
    one else may read or write; it is checked and read through one open file, so it
    cannot be swapped between the two.

    Raises:
        ValueError: the token file is someone else's, accessible to others, or not a
            regular file, or a token is empty.
        OSError: the token file cannot be read.
    """
    if token is None and token_file is not None:
        token = _read_token_file(Path(token_file).expanduser())
    if token is None:
        token = os.environ.get(TOKEN_ENVIRONMENT_VARIABLE) or None  # empty means unset
    if token is None:
        return None
    secret = token.encode() if isinstance(token, str) else bytes(token)
    if not secret:
        raise ValueError("the token is empty")
    return secret


def _read_token_file(path: Path) -> bytes:
    # Non-blocking: a FIFO planted as the token file must not hang the open.
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(descriptor, "rb") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise ValueError(f"token file {path} is not a regular file")
        owner = os.geteuid() if hasattr(os, "geteuid") else None
        if owner is not None and status.st_uid != owner:
            raise ValueError(
                f"token file {path} belongs to uid {status.st_uid}, not to you (uid {owner})"
            )
        if status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ValueError(f"token file {path} is accessible to others: chmod 600 it")
        return file.read().strip()
