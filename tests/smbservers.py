"""SMB servers for the tests: impacket's SimpleSMBServer (subprocess) and Samba's smbd.

Both forward opens of the named pipe to aiopushy's pipe server, which the tests run in
their own event loop.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

USER = "pushy"
PASSWORD = "pipe dream 42"
PIPE = "aiopushy"

_IMPACKET_SERVER = """
import sys
from impacket import smbserver
from impacket.ntlm import compute_nthash
port, pipe_port, user, password, pipe = sys.argv[1:6]
server = smbserver.SimpleSMBServer(listenAddress="127.0.0.1", listenPort=int(port))
server.setSMB2Support(True)
server.addCredential(user, 0, "", compute_nthash(password).hex())
server.registerNamedPipe(pipe, ("127.0.0.1", int(pipe_port)))
server.start()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("server did not start listening")


@contextlib.contextmanager
def impacket_server(pipe_port: int) -> Iterator[int]:
    """impacket's SimpleSMBServer, forwarding ``\\\\127.0.0.1\\pipe\\aiopushy`` opens to
    ``127.0.0.1:pipe_port``; yields its SMB port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _IMPACKET_SERVER, str(port), str(pipe_port), USER, PASSWORD, PIPE],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=tempfile.gettempdir(),  # its IPC$ resolves names against the working directory
    )
    try:
        wait_for_port(port, process)
        yield port
    finally:
        process.kill()
        process.wait()
