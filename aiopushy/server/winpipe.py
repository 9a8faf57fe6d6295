"""The Windows flavour of the pipe server: a service owning ``\\\\.\\pipe\\aiopushy``.

Everything but the pipe calls is shared with the Samba flavour: the service runs
``aiopushy.server.pipe`` on a loopback TCP port and relays each client's pipe instance to
it, exactly as Samba or impacket hand pipe opens over. The pipe is created with a DACL
that grants read and write to one group only (by default BUILTIN\\Administrators), one
instance per client.

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

PIPE_NAME = r"\\.\pipe\aiopushy"
ADMINISTRATORS = "S-1-5-32-544"
BUFFER = 65536


def _start_relay_target() -> tuple[int, threading.Event]:
    """Run the TCP side of the pipe server on a thread; its port, and an event to stop it."""
    from .pipe import serve_pipe

    ready: list[int] = []
    started, stop = threading.Event(), threading.Event()

    async def main() -> None:
        server = await serve_pipe(tcp=("127.0.0.1", 0))
        ready.append(int(server.addresses[0].rsplit(":", 1)[1]))
        started.set()
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        server.close()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    started.wait(30)
    return ready[0], stop


def _relay(pipe: Any, port: int) -> None:
    """Move bytes between one client's pipe instance and a pipe-server connection."""
    import win32file
    import win32pipe

    sock = socket.create_connection(("127.0.0.1", port))

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

    port, stop_target = _start_relay_target()
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
        threading.Thread(target=_relay, args=(pipe, port), daemon=True).start()
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
