"""How an ``smb:`` session is laid over two opens of one named pipe.

SMB client libraries block on a pending pipe read, so the client opens the pipe twice:
one instance carries the controller's bytes to the remote interpreter, the other the
remote's bytes back. Each open starts with a fixed-size header naming its role and a
random session id; the pipe server pairs the two halves and starts one interpreter::

    b"AIOPUSHY-PIPE 1 " + role (b"w": to the remote, b"r": from it) + b" " + 32 hex + b"\\n"

The id is 128 random bits: another client of the pipe cannot join a session it did not
open. Authentication and access control are the SMB server's (logon, pipe ACL).
"""

from __future__ import annotations

import binascii
import os

MAGIC = b"AIOPUSHY-PIPE 1 "
TO_REMOTE = b"w"
FROM_REMOTE = b"r"
HEADER_SIZE = len(MAGIC) + 1 + 1 + 32 + 1


def new_session_id() -> bytes:
    """A fresh random session id (32 hex digits)."""
    return binascii.hexlify(os.urandom(16))


def header(role: bytes, session_id: bytes) -> bytes:
    """The first bytes a client writes on one pipe open."""
    return MAGIC + role + b" " + session_id + b"\n"


def parse_header(data: bytes) -> tuple[bytes, bytes] | None:
    """``(role, session id)`` from a header, or ``None`` if it is not one."""
    if len(data) != HEADER_SIZE or not data.startswith(MAGIC) or not data.endswith(b"\n"):
        return None
    role, space, session_id = data[len(MAGIC) : -1].partition(b" ")
    if role not in (TO_REMOTE, FROM_REMOTE) or not space or len(session_id) != 32:
        return None
    try:
        binascii.unhexlify(session_id)
    except binascii.Error:
        return None
    return role, session_id
