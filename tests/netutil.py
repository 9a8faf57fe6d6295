"""Loopback helpers shared by the test servers."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_free_everywhere() -> int:
    """A TCP port that nothing listens on, on any address, right now (for servers that
    listen on many loopback addresses at once)."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], seconds: float = 20, host: str = "127.0.0.1"
) -> None:
    """Wait until ``process`` accepts connections on ``host:port`` (or fail if it exits)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("server did not start listening")


def stop_process(process: subprocess.Popen[bytes], grace: float = 5) -> None:
    """Terminate a test server, then kill it if it has not exited within ``grace``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
