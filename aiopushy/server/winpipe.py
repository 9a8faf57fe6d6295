"""The Windows flavour of the pipe server: a service owning ``\\\\.\\pipe\\aiopushy``.

Everything but the pipe calls is shared with the Samba flavour: the service runs
``aiopushy.server.pipe`` on a loopback TCP port and relays each client's pipe instance to
it, exactly as Samba or impacket hand pipe opens over. The pipe is created with a DACL
that grants read and write to one group only (by default BUILTIN\\Administrators), one
instance per client: that DACL is how a client is authenticated (Windows checks it at
the open), and the relay tells the client so with the handshake's ``none`` greeting.

The hop from the service to its TCP side is the service's own: that side requires a
token, a random one made at start-up that never leaves the service's process, which the
relay proves for each pipe instance. Another local user can reach the loopback port, but
cannot pass its gate.

Install (elevated prompt, with ``pip install aiopushy pywin32``)::

    python -m aiopushy.server.winpipe --startup auto install
    python -m aiopushy.server.winpipe start

Remove::

    python -m aiopushy.server.winpipe stop
    python -m aiopushy.server.winpipe remove

The group may be changed with the ``AIOPUSHY_PIPE_GROUP_SID`` environment variable of
the service (a SID string such as ``S-1-5-32-544``). This module cannot be tested on the
Linux machines the test suite runs on; it is kept small on purpose.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
from typing import Any

from .._auth import GREETING_NONE, blocking_client_handshake

PIPE_NAME = r"\\.\pipe\aiopushy"
ADMINISTRATORS = "S-1-5-32-544"
BUFFER = 65536


def _start_relay_target(token: bytes) -> tuple[int, threading.Event]:
    """Run the TCP side of the pipe server on a thread, requiring ``token``; its port, and
    an event to stop it."""
    from .pipe import serve_pipe

    ready: list[int] = []
    started, stop = threading.Event(), threading.Event()

    async def main() -> None:
        server = await serve_pipe(tcp=("127.0.0.1", 0), token=token)
        ready.append(int(server.addresses[0].rsplit(":", 1)[1]))
        started.set()
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        server.close()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    started.wait(30)
    return ready[0], stop


def _relay(pipe: Any, port: int, token: bytes) -> None:
    """Move bytes between one client's pipe instance and a pipe-server connection, once
    the relay has passed the TCP side's gate with the service's token."""
    import win32file
    import win32pipe

    sock = socket.create_connection(("127.0.0.1", port))
    try:
        blocking_client_handshake(
            lambda size: sock.recv(size, socket.MSG_WAITALL), sock.sendall, token, PIPE_NAME
        )
        win32file.WriteFile(pipe, GREETING_NONE)  # the pipe's DACL admitted the client
    except Exception:
        win32pipe.DisconnectNamedPipe(pipe)
        win32file.CloseHandle(pipe)
        sock.close()
        return

    def pipe_to_socket() -> None:
        try:
            while True:
                _, data = win32file.ReadFile(pipe, BUFFER)
                if not data:
                    break
                sock.sendall(data)
        except Exception:
            pass
        finally:
            sock.shutdown(socket.SHUT_WR)

    reader = threading.Thread(target=pipe_to_socket, daemon=True)
    reader.start()
    try:
        while data := sock.recv(BUFFER):
            win32file.WriteFile(pipe, data)
    except Exception:
        pass
    finally:
        reader.join(5)
        win32pipe.DisconnectNamedPipe(pipe)
        win32file.CloseHandle(pipe)
        sock.close()


def serve(stop: threading.Event) -> None:
    """Accept pipe clients until ``stop`` is set (blocking)."""
    import pywintypes
    import win32pipe
    import win32security

    token = os.urandom(32)  # the service's own: never written anywhere
    port, stop_target = _start_relay_target(token)
    group = win32security.ConvertStringSidToSid(
        os.environ.get("AIOPUSHY_PIPE_GROUP_SID", ADMINISTRATORS)
    )
    dacl = win32security.ACL()
    dacl.AddAccessAllowedAce(win32security.ACL_REVISION, 0x0012019F, group)  # read + write
    descriptor = win32security.SECURITY_DESCRIPTOR()
    descriptor.SetSecurityDescriptorDacl(1, dacl, 0)
    attributes = pywintypes.SECURITY_ATTRIBUTES()
    attributes.SECURITY_DESCRIPTOR = descriptor
    while not stop.is_set():
        pipe = win32pipe.CreateNamedPipe(
            PIPE_NAME,
            win32pipe.PIPE_ACCESS_DUPLEX,
            win32pipe.PIPE_TYPE_BYTE | win32pipe.PIPE_READMODE_BYTE | win32pipe.PIPE_WAIT,
            win32pipe.PIPE_UNLIMITED_INSTANCES,
            BUFFER,
            BUFFER,
            0,
            attributes,
        )
        win32pipe.ConnectNamedPipe(pipe, None)
        threading.Thread(target=_relay, args=(pipe, port, token), daemon=True).start()
    stop_target.set()


if sys.platform == "win32":  # pragma: no cover - Windows only
    import win32service
    import win32serviceutil

    class AiopushyPipeService(win32serviceutil.ServiceFramework):
        """The Windows service: ``\\\\.\\pipe\\aiopushy`` for ``smb:`` clients."""

        _svc_name_ = "aiopushy"
        _svc_display_name_ = "aiopushy pipe server"
        _svc_description_ = "Starts Python interpreters for aiopushy smb: clients."

        def __init__(self, args: Any) -> None:
            super().__init__(args)
            self._stop = threading.Event()

        def SvcStop(self) -> None:
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)
            self._stop.set()

        def SvcDoRun(self) -> None:
            serve(self._stop)

    if __name__ == "__main__":
        win32serviceutil.HandleCommandLine(AiopushyPipeService)
elif __name__ == "__main__":
    sys.exit("aiopushy.server.winpipe is the Windows service; on Linux use aiopushy serve-pipe")
