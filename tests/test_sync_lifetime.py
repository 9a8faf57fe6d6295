"""The blocking API's threads, event loop, fan-out and exit (see ``test_sync`` for the
rest)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import aiopushy
from aiopushy import sync as pushy

from .procutil import alive
from .test_sync import TIMEOUT, _bounded, local

__all__ = ["_bounded", "local"]  # the fixtures, shared with test_sync


# -- threads and the event loop -------------------------------------------------------------


def test_eight_threads_share_a_session(local: pushy.SyncSession) -> None:
    add = local.modules.operator.add

    def hundred_calls(n: int) -> list[int]:
        return [add(n * 1000, i) for i in range(100)]

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(hundred_calls, n) for n in range(8)]
        for n, future in enumerate(futures):
            assert future.result(TIMEOUT) == [n * 1000 + i for i in range(100)]


def test_inside_an_event_loop_is_a_clear_error(local: pushy.SyncSession) -> None:
    async def connect() -> None:
        pushy.connect("local:")

    async def use_a_proxy() -> None:
        local.modules.os.getpid()

    for coroutine in (connect, use_a_proxy):
        with pytest.raises(RuntimeError, match="async API"):
            asyncio.run(coroutine())


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_interrupting_a_call_abandons_it(local: pushy.SyncSession) -> None:
    assert threading.current_thread() is threading.main_thread()
    # Python installs no SIGINT handler when it inherits SIGINT ignored (as a background
    # job does): give this test the disposition of an interactive run.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            local.modules.time.sleep(10)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 5
    assert local.eval("1 + 1") == 2 and local.statistics()["pending"] == 0


def test_between_the_worlds(local: pushy.SyncSession) -> None:
    assert isinstance(local.async_session, aiopushy.Session)
    again = pushy.SyncSession.from_async(local.async_session)
    assert again.eval("1 + 1") == 2 and again.modules.os.getpid() == local.info["pid"]

    # A session of an application's own loop, running in another thread.
    async def open_session() -> aiopushy.Session:
        return await aiopushy.connect("local:", timeout=TIMEOUT)

    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        opened = asyncio.run_coroutine_threadsafe(open_session(), loop)
        session = pushy.SyncSession.from_async(opened.result(TIMEOUT))
        assert session.modules.operator.add(1, 2) == 3
        echo = session.eval("lambda f: f()")
        assert echo(lambda: session.modules.os.getpid() + 1) == session.info["pid"] + 1

        async def from_its_own_loop() -> Any:
            return session.eval("1")

        with pytest.raises(RuntimeError, match="async API"):
            asyncio.run_coroutine_threadsafe(from_its_own_loop(), loop).result(TIMEOUT)
        with pytest.raises(ValueError, match="via"):
            pushy.connect("local:", via=session)  # relaying across event loops: refused
        session.close()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(TIMEOUT)
    with pytest.raises(RuntimeError, match="not running"):
        session.eval("1")
    loop.close()


# -- many targets ------------------------------------------------------------------------------


def test_fanout_runs_plain_functions() -> None:
    def job(session: pushy.SyncSession) -> tuple[int, str]:
        return session.modules.os.getpid(), threading.current_thread().name

    results = pushy.fanout(["local:", "local:", "nosuch:x"], job, timeout=TIMEOUT)
    assert [r.ok for r in results] == [True, True, False]
    assert isinstance(results[0], pushy.Result)
    assert results[0].value[0] != results[1].value[0]
    assert results[0].value[1] != threading.current_thread().name
    assert "unknown transport" in str(results[2].error)
    with pytest.raises(pushy.FanoutError):
        pushy.fanout(["nosuch:x"], job, raise_on_error=True)


def test_fanout_timeout_abandons_the_job() -> None:
    started = time.monotonic()
    results = pushy.fanout(["local:"], lambda s: s.modules.time.sleep(30), timeout=2)
    assert not results[0].ok and isinstance(results[0].error, TimeoutError)
    assert time.monotonic() - started < 10


def test_group(local: pushy.SyncSession) -> None:
    with pushy.Group(["local:", "local:"], connect_kwargs={"via": local}) as group:
        assert len(group.sessions) == 2 and not group.failed
        results = group.run(lambda session: session.modules.os.getppid())
        assert [r.value for r in results] == [local.info["pid"]] * 2
        sessions = [session for _, session in group.sessions]
    assert all(session.closed for session in sessions)


# -- interpreter exit ----------------------------------------------------------------------------

EXIT_SCRIPT = """
import atexit, threading
from aiopushy import sync as pushy

atexit.register(lambda: print("closed at exit:", conn.closed, flush=True))  # runs last
conn = pushy.connect("local:")
print(conn.info["pid"], flush=True)


def pending():
    try:
        conn.modules.time.sleep(60)  # still waiting at exit: fails with ConnectionLost
    except pushy.ConnectionLost:
        pass


threading.Thread(target=pending, daemon=True).start()
leaked = conn.eval("object()")
"""


def run_script(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a script in a fresh interpreter that imports this aiopushy."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    root = str(Path(__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        check=False,
    )


FORK_SCRIPT = """
import os, warnings
from aiopushy import sync as pushy
from aiopushy.sync import _loop

warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running
parent = pushy.connect("local:")
assert parent.modules.os.getppid() == os.getpid()
parents_loop = _loop.facade_loop()
child = os.fork()
if child == 0:  # a loop and sessions of its own; the parent's are not touched
    with pushy.connect("local:") as conn:
        ok = conn.modules.os.getppid() == os.getpid()
    os._exit(0 if ok and _loop.facade_loop() is not parents_loop else 1)
_, status = os.waitpid(child, 0)
print(os.waitstatus_to_exitcode(status), parent.modules.os.getppid() == os.getpid())
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_a_forked_child_gets_a_loop_of_its_own(tmp_path: Path) -> None:
    done = run_script(tmp_path, FORK_SCRIPT)
    assert (done.returncode, done.stdout) == (0, "0 True\n"), done.stderr


def test_exit_without_close_leaves_no_remote_process(tmp_path: Path) -> None:
    started = time.monotonic()
    done = run_script(tmp_path, EXIT_SCRIPT)
    assert done.returncode == 0, done.stderr
    pid_line, closed_line = done.stdout.splitlines()
    assert closed_line == "closed at exit: True"
    assert time.monotonic() - started < 15
    assert not alive(int(pid_line))
    assert done.stderr == ""
