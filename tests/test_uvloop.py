"""aiopushy on uvloop (``pip install aiopushy[speed]``): the command line and the daemon
run on it with ``AIOPUSHY_LOOP=uvloop``, and the library works on it.

The rest of the suite runs on asyncio's own loop; here a part of it runs again on uvloop
(``AIOPUSHY_TEST_LOOP=uvloop``, read by ``conftest.anyio_backend``): sessions, pipelined
calls, relays and their cache, large frames, the real sshd, the daemon.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aiopushy import _eventloop

pytest.importorskip("uvloop")

ROOT = Path(__file__).resolve().parent.parent
ON_UVLOOP = (
    "test_session.py",
    "test_gather.py",
    "test_via.py",
    "test_answer_batching.py",
    "test_relay_cache.py",
    "test_large_frames.py",
    "test_ssh.py",
    "test_daemon.py",
)


def test_a_part_of_the_suite_passes_on_uvloop() -> None:
    env = {**os.environ, "AIOPUSHY_TEST_LOOP": "uvloop"}
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"]
        + [f"tests/{name}" for name in ON_UVLOOP],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    tail = completed.stdout[-3000:] + completed.stderr[-2000:]
    assert completed.returncode == 0, tail
    assert " passed" in completed.stdout and " failed" not in completed.stdout, tail


def test_the_programs_run_on_uvloop_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_eventloop.LOOP_VARIABLE, raising=False)
    assert _eventloop.backend_options() == {"use_uvloop": False}
    monkeypatch.setenv(_eventloop.LOOP_VARIABLE, "uvloop")
    assert _eventloop.backend_options() == {"use_uvloop": True}
    monkeypatch.setenv(_eventloop.LOOP_VARIABLE, "asyncio")
    assert _eventloop.backend_options() == {"use_uvloop": False}
    monkeypatch.setenv(_eventloop.LOOP_VARIABLE, "trio")
    with pytest.raises(ValueError, match="'asyncio' or 'uvloop'"):
        _eventloop.backend_options()


def test_the_command_line_runs_on_uvloop() -> None:
    """``aiopushy run`` evaluates an expression on a local interpreter, on asyncio's loop,
    or on uvloop's with ``AIOPUSHY_LOOP=uvloop``: the loop its own code runs on."""
    probe = (
        "import asyncio, sys; from aiopushy import cli, _runcmd\n"
        "seen = []\n"
        "real = _runcmd.run\n"
        "async def run(args):\n"
        "    seen.append(type(asyncio.get_running_loop()).__module__)\n"
        "    return await real(args)\n"
        "_runcmd.run = run\n"
        "status = cli.main(['run', '-e', '6 * 7', 'local:'])\n"
        "print(seen[0], status)\n"
    )
    for loop, expected in (("", "asyncio"), ("uvloop", "uvloop"), ("asyncio", "asyncio")):
        env = {**os.environ, _eventloop.LOOP_VARIABLE: loop}
        completed = subprocess.run(
            [sys.executable, "-c", probe],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        *_, module, status = completed.stdout.split()
        assert module.startswith(expected), completed.stdout
        assert status == "0"
