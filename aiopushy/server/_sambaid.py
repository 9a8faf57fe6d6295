"""Who Samba says opened the pipe: the identity in its "named pipe auth" request.

Samba hands each open of ``\\\\HOST\\pipe\\NAME`` to our unix socket after a request
that carries the client's session: its account, and the unix uid, gid and groups Samba
mapped it to. The request's outer part (levels 7 and 8, Samba 4.17 on) is read here; the
session inside it is decoded by Samba's own NDR code (``samba.dcerpc.auth``, from
python3-samba, which the samba package depends on). That code runs in a helper process
of a Python that has it (ours, or the system's ``/usr/bin/python3``), so the identity is
always what Samba put there, never a guess. A request this cannot read is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import pwd
import struct
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass

#: Named pipe auth levels whose layout ``session_offset`` knows.
LEVELS = (7, 8)

_HELPER = r"""
import json, struct, sys
from samba.ndr import ndr_unpack
from samba.dcerpc import auth
read, write = sys.stdin.buffer.read, sys.stdout.write
while True:
    head = read(4)
    if len(head) < 4:
        break
    blob = read(struct.unpack(">I", head)[0])
    try:
        session = ndr_unpack(auth.session_info_transport, blob, allow_remaining=True)
        info, token = session.session_info.info, session.session_info.unix_token
        answer = {"account": str(info.account_name or ""), "uid": int(token.uid),
                  "gid": int(token.gid), "groups": [int(g) for g in token.groups]}
    except Exception as exc:
        answer = {"error": "%s: %s" % (type(exc).__name__, exc)}
    write(json.dumps(answer) + "\n")
    sys.stdout.flush()
"""


@dataclass(frozen=True)
class SambaUser:
    """The client of one pipe open, as Samba authenticated and mapped it."""

    account: str
    uid: int
    gid: int
    groups: tuple[int, ...]


def session_offset(request: bytes) -> int:
    """Where the session (``auth_session_info_transport``) starts in a request body (the
    bytes after its 4-byte length).

    Raises:
        ValueError: not a named pipe auth request of a level in ``LEVELS``.
    """
    if len(request) < 44 or request[:4] != b"NPAM":
        raise ValueError("not a named pipe auth request")
    level, arm = struct.unpack_from("<II", request, 4)
    if level not in LEVELS or arm != level:
        raise ValueError(f"Samba's named pipe auth level {level} is not supported")
    # NDR aligns relative to the stream, which starts at the 4-byte length before us.
    # Scalars: transport (uint8), client name and address pointers, client port, server
    # name and address pointers, server port, session pointer; then each non-null
    # string (max count, offset, count, bytes), then the session, 8-aligned.
    pointers = struct.unpack_from("<II", request, 16) + struct.unpack_from("<II", request, 28)
    (session,) = struct.unpack_from("<I", request, 40)
    if not session:
        raise ValueError("the pipe was opened without a session")
    position = 44
    for pointer in pointers:
        if pointer:
            position += (-(position + 4)) % 4
            if position + 12 > len(request):
                raise ValueError("truncated named pipe auth request")
            count = struct.unpack_from("<I", request, position + 8)[0]  # max, offset, count
            position += 12 + count
    position += (-(position + 4)) % 8
    if position >= len(request):
        raise ValueError("truncated named pipe auth request")
    return position


def samba_python(candidates: Iterable[str] = (sys.executable, "/usr/bin/python3")) -> str:
    """The first interpreter that can import Samba's NDR code.

    Raises:
        ValueError: none of them can (install python3-samba).
    """
    for python in candidates:
        probe = [python, "-c", "import samba.ndr, samba.dcerpc.auth"]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if subprocess.run(probe, capture_output=True, timeout=60, check=False).returncode == 0:
                return python
    raise ValueError(
        "Samba mode needs Samba's Python bindings to read who opened the pipe: install "
        "python3-samba (the samba package depends on it)"
    )


class SambaIdentities:
    """Reads the identity of each pipe open through one helper process."""

    def __init__(self, python: str) -> None:
        self._python = python
        self._helper: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def identify(self, request: bytes) -> SambaUser:
        """The client of the pipe open that sent ``request``.

        Raises:
            ValueError: the request cannot be read, or carries no unix identity.
        """
        blob = request[session_offset(request) :]
        async with self._lock:
            helper = await self._running()
            assert helper.stdin and helper.stdout
            helper.stdin.write(struct.pack(">I", len(blob)) + blob)
            await helper.stdin.drain()
            line = await helper.stdout.readline()
        if not line:
            self._helper = None
            raise ValueError("the Samba identity helper stopped")
        answer = json.loads(line)
        if "error" in answer:
            raise ValueError(f"cannot read the session Samba sent: {answer['error']}")
        groups = tuple(int(g) for g in answer["groups"])
        return SambaUser(str(answer["account"]), int(answer["uid"]), int(answer["gid"]), groups)

    async def _running(self) -> asyncio.subprocess.Process:
        if self._helper is None or self._helper.returncode is not None:
            self._helper = await asyncio.create_subprocess_exec(
                self._python,
                "-c",
                _HELPER,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        return self._helper

    def close(self) -> None:
        """Stop the helper (``wait_closed`` waits for it)."""
        if self._helper is not None and self._helper.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._helper.kill()

    async def wait_closed(self) -> None:
        """Wait until the helper has exited."""
        if self._helper is not None:
            await self._helper.wait()


@dataclass(frozen=True)
class AllowList:
    """Who may open the pipe: these unix users, and the members of these groups."""

    uids: frozenset[int]
    gids: frozenset[int]

    @classmethod
    def of(cls, users: Iterable[str] = (), groups: Iterable[str] = ()) -> AllowList:
        """The users and groups named (by name or number); without any, this server's
        own user.

        Raises:
            ValueError: a user or group does not exist here.
        """
        users, groups = list(users), list(groups)
        if not users and not groups:
            users = [pwd.getpwuid(os.geteuid()).pw_name]
        try:
            uids = {int(u) if u.isdigit() else pwd.getpwnam(u).pw_uid for u in users}
            gids = {int(g) if g.isdigit() else grp.getgrnam(g).gr_gid for g in groups}
        except KeyError as exc:
            raise ValueError(f"no such user or group here: {exc.args[0]}") from None
        return cls(frozenset(uids), frozenset(gids))

    def admits(self, user: SambaUser) -> bool:
        """Whether ``user`` is one of the users, or a member of one of the groups."""
        return user.uid in self.uids or bool(self.gids & {user.gid, *user.groups})
