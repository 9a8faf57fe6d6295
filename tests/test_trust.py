"""Who the servers let in, and what they trust: token files, loopback, as real processes.

(The daemon's handshake and TLS are in ``test_daemon.py``; a hostile remote is in
``test_hostile.py``.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .needs import mount_namespace_missing, require

SERVE = [sys.executable, "-m", "aiopushy", "serve", "--port", "0"]


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``aiopushy serve ARGS`` that must refuse to start (it would run forever)."""
    environment = {k: v for k, v in os.environ.items() if k != "AIOPUSHY_TOKEN"}
    return subprocess.run(
        [*SERVE, *args],
        capture_output=True,
        text=True,
        env={**environment, **(env or {})},
        timeout=30,
        check=False,
    )


def _token_file(path: Path, mode: int = 0o600) -> Path:
    path.write_text("a token\n")
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("arrange", "message"),
    [
        (lambda p: _token_file(p, 0o640), "accessible to others: chmod 600"),
        (lambda p: _token_file(p, 0o602), "accessible to others: chmod 600"),
        (lambda p: os.mkfifo(p, 0o600), "not a regular file"),
        (lambda p: p.mkdir(), "Is a directory"),
    ],
    ids=["group-readable", "world-writable", "a fifo", "a directory"],
)
def test_a_token_file_others_could_read_or_swap_is_refused(
    tmp_path: Path, arrange: object, message: str
) -> None:
    path = tmp_path / "token"
    arrange(path)  # type: ignore[operator]
    result = _serve("--token-file", str(path))
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_a_token_file_of_another_user_is_refused(tmp_path: Path) -> None:
    require(None if os.getuid() == 0 else "needs root to give a file to another user")
    path = _token_file(tmp_path / "token")
    os.chown(path, 65534, 65534)
    result = _serve("--token-file", str(path))
    assert result.returncode == 2 and "belongs to uid 65534, not to you" in result.stderr


def test_a_token_file_path_may_start_with_a_tilde(tmp_path: Path) -> None:
    _token_file(tmp_path / ".aiopushy-token")
    process = subprocess.Popen(
        [*SERVE, "--token-file", "~/.aiopushy-token"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    try:
        assert process.stdout is not None
        assert "listening on" in process.stdout.readline()
    finally:
        process.kill()
        process.communicate()


def test_insecure_mode_judges_the_address_a_name_resolves_to(tmp_path: Path) -> None:
    """A ``localhost`` that this machine's resolver maps to another address is not loopback
    (the old check trusted the name and would listen there without authentication)."""
    require(mount_namespace_missing())
    hosts = tmp_path / "hosts"
    hosts.write_text("192.0.2.77 localhost\n")
    serve = " ".join([*SERVE, "--insecure", "--host", "localhost"])
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind {hosts} /etc/hosts && exec {serve}"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "AIOPUSHY_TOKEN"},
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "'localhost' must resolve to loopback addresses only" in result.stderr


def test_insecure_mode_on_a_loopback_name_listens_on_what_it_resolves_to() -> None:
    process = subprocess.Popen(
        [*SERVE, "--insecure", "--host", "localhost"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "AIOPUSHY_TOKEN"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on 127.0.0.1:" in line or "listening on ::1:" in line, line
    finally:
        process.kill()
        process.communicate()
