"""The daemon's authentication: an HMAC challenge-response over a shared token.

It runs on the raw byte stream, before anything is decoded as a frame::

    server -> client   GREETING (23 bytes: "... hmac\\n" or "... none\\n") [+ 32-byte nonce]
    client -> server   HMAC(token, "client" + server nonce) + 32-byte client nonce
    server -> client   ACCEPTED + HMAC(token, "server" + client nonce)   or   REJECTED

Both sides prove they know the token, so a client also refuses an impostor server. A
server started with ``insecure=True`` sends the ``none`` greeting and nothing else; a
client that has a token refuses such a server.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import stat
from pathlib import Path

from ._exceptions import AuthenticationError, ConnectError

DEFAULT_PORT = 10101
"""Pushy's daemon port."""

GREETING_HMAC = b"AIOPUSHY-DAEMON 1 hmac\n"
GREETING_NONE = b"AIOPUSHY-DAEMON 1 none\n"
NONCE_SIZE = 32
PROOF_SIZE = 32
ACCEPTED = b"\x01"
REJECTED = b"\x00"
TOKEN_ENVIRONMENT_VARIABLE = "AIOPUSHY_TOKEN"


def proof(token: bytes, nonce: bytes, role: bytes) -> bytes:
    """``HMAC-SHA256(token, role + nonce)``."""
    return hmac.new(token, role + nonce, hashlib.sha256).digest()


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


async def client_handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token: bytes | None, target: str
) -> None:
    """Authenticate to a daemon (and the daemon to us).

    Raises:
        AuthenticationError: wrong token, missing token, or the server is not who we expect.
        ConnectError: the peer is not an aiopushy daemon.
    """
    try:
        greeting = await reader.readexactly(len(GREETING_HMAC))
    except asyncio.IncompleteReadError as exc:
        raise ConnectError(
            f"{target}: the server closed the connection at once", target=target
        ) from exc
    if greeting == GREETING_NONE:
        if token is not None:
            raise AuthenticationError(
                f"{target}: the server runs without authentication, but a token was given; "
                "refusing to talk to it",
                target=target,
            )
        return
    if greeting != GREETING_HMAC:
        raise ConnectError(
            f"{target}: not an aiopushy daemon (greeting {greeting!r:.40})", target=target
        )
    if token is None:
        raise AuthenticationError(f"{target}: the server requires a token", target=target)
    server_nonce = await reader.readexactly(NONCE_SIZE)
    client_nonce = os.urandom(NONCE_SIZE)
    writer.write(proof(token, server_nonce, b"client") + client_nonce)
    await writer.drain()
    try:
        verdict = await reader.readexactly(1)
    except asyncio.IncompleteReadError:
        verdict = REJECTED
    if verdict != ACCEPTED:
        raise AuthenticationError(f"{target}: the server refused the token", target=target)
    server_proof = await reader.readexactly(PROOF_SIZE)
    if not hmac.compare_digest(server_proof, proof(token, client_nonce, b"server")):
        raise AuthenticationError(
            f"{target}: the server does not know the token: not the daemon you meant",
            target=target,
        )


async def server_handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token: bytes | None
) -> bool:
    """Challenge a new client; whether it proved that it knows the token."""
    if token is None:
        writer.write(GREETING_NONE)
        await writer.drain()
        return True
    nonce = os.urandom(NONCE_SIZE)
    writer.write(GREETING_HMAC + nonce)
    await writer.drain()
    answer = await reader.readexactly(PROOF_SIZE + NONCE_SIZE)
    if not hmac.compare_digest(answer[:PROOF_SIZE], proof(token, nonce, b"client")):
        writer.write(REJECTED)
        await writer.drain()
        return False
    writer.write(ACCEPTED + proof(token, answer[PROOF_SIZE:], b"server"))
    await writer.drain()
    return True
