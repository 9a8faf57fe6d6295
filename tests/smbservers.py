"""SMB servers for the tests: impacket's SimpleSMBServer (subprocess) and Samba's smbd.

Both forward opens of the named pipe to aiopushy's pipe server, which the tests run in
their own event loop.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from .needs import SMBD
from .netutil import free_port, stop_process, wait_for_port

USER = "pushy"
PASSWORD = "pipe dream 42"
PIPE = "aiopushy"

_IMPACKET_SERVER = """
import sys
from impacket import smbserver
from impacket.ntlm import compute_nthash
port, pipe_port, user, password, pipe, share = sys.argv[1:7]
server = smbserver.SimpleSMBServer(listenAddress="127.0.0.1", listenPort=int(port))
server.setSMB2Support(True)
server.addCredential(user, 0, "", compute_nthash(password).hex())
server.registerNamedPipe(pipe, ("127.0.0.1", int(pipe_port)))
server.addShare("DATA", share)
server.start()
"""


@contextlib.contextmanager
def impacket_server(pipe_port: int, share: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """impacket's SimpleSMBServer, forwarding ``\\\\127.0.0.1\\pipe\\aiopushy`` opens to
    ``127.0.0.1:pipe_port`` and sharing ``share`` as ``DATA``; yields its port and process."""
    port = free_port()
    args = [str(port), str(pipe_port), USER, PASSWORD, PIPE, str(share)]
    process = subprocess.Popen(
        [sys.executable, "-c", _IMPACKET_SERVER, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=tempfile.gettempdir(),  # its IPC$ resolves names against the working directory
    )
    try:
        wait_for_port(port, process)
        yield port, process
    finally:
        process.kill()
        process.wait()


@contextlib.contextmanager
def samba_server(
    directory: Path, share: Path, other_users: Sequence[str] = ()
) -> Iterator[tuple[int, str, str]]:
    """Samba's smbd on a free loopback port; yields (port, user, np socket directory).

    The SMB user is the current Unix user with ``PASSWORD`` (and ``other_users``, unix
    users too, with the same password). Opens of a named pipe reach ``<np dir>/<name>``,
    where the test runs aiopushy's pipe server.
    """
    assert SMBD is not None
    user = getpass.getuser()
    port = free_port()
    np_dir = directory / "ncalrpc" / "np"
    np_dir.mkdir(parents=True)
    os.chmod(np_dir, 0o700)
    config = directory / "smb.conf"
    config.write_text(
        "[global]\n"
        "server role = standalone server\n"
        f"smb ports = {port}\n"
        "interfaces = lo\n"
        "bind interfaces only = yes\n"
        "disable netbios = yes\n"
        "passdb backend = tdbsam\n"
        f"pid directory = {directory}\n"
        f"lock directory = {directory}\n"
        f"state directory = {directory}\n"
        f"cache directory = {directory}\n"
        f"private dir = {directory}\n"
        f"log file = {directory}/log.%m\n"
        f"ncalrpc dir = {directory}/ncalrpc\n"
        "rpc start on demand helpers = no\n"
        "server min protocol = SMB2_02\n"
        "[DATA]\n"
        f"path = {share}\n"
        "read only = no\n"
        f"valid users = {user}\n"
    )
    for name in (user, *other_users):
        subprocess.run(
            ["smbpasswd", "-c", str(config), "-a", "-s", name],
            input=f"{PASSWORD}\n{PASSWORD}\n".encode(),
            check=True,
            capture_output=True,
        )
    # A new session: when smbd ends it signals its whole process group.
    process = subprocess.Popen(
        [SMBD, "-F", "--no-process-group", f"--configfile={config}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, process)
        yield port, user, str(np_dir)
    finally:
        stop_process(process, grace=10)
