"""Start-up, failure and shutdown: no hang, no orphan, clear errors."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

import aiopushy as pushy

from .procutil import (
    REMOTE_IGNORED_MASKS,
    alive,
    check_terminal_dispositions,
    command_name,
    inherited_dispositions,
    wait_until,
)

pytestmark = pytest.mark.anyio


async def test_unknown_transport_lists_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown transport 'nosuch'.*local"):
        await pushy.connect("nosuch:host")
    with pytest.raises(ValueError, match="transport:address"):
        pushy.connect("local")


async def test_missing_interpreter_is_a_connect_error() -> None:
    with pytest.raises(pushy.ConnectError, match="cannot start"):
        await pushy.connect("local:", python="/no/such/python")


async def test_interpreter_that_fails_reports_its_stderr() -> None:
    python = [sys.executable, "-c", "import sys; sys.stderr.write('boom happened'); sys.exit(1)"]
    with pytest.raises(pushy.ConnectError) as info:
        await pushy.connect("local:", python=python)
    assert "boom happened" in str(info.value)
    assert "boom happened" in info.value.stderr


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and alive(int(entry)):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


async def test_connect_timeout_kills_the_process() -> None:
    marker = f"aiopushy-timeout-marker-{os.getpid()}"
    python = [sys.executable, "-c", "import time; time.sleep(30)", marker]
    start = time.monotonic()
    with pytest.raises(pushy.ConnectTimeout) as info:
        await pushy.connect("local:", python=python, timeout=0.5)
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, pushy.ConnectError)
    assert time.monotonic() - start < 10
    assert await wait_until(lambda: not _processes_with(marker), 5)


async def _sleep_until_lost(conn: pushy.Session, errors: list[BaseException]) -> None:
    """A long remote call that records the ``ConnectionLost`` ending it."""
    try:
        await conn.modules.time.sleep(30)
    except pushy.ConnectionLost as exc:
        errors.append(exc)


async def test_remote_death_fails_pending_calls_promptly(conn: pushy.Session) -> None:
    pid = conn.info["pid"]
    errors: list[BaseException] = []
    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(_sleep_until_lost, conn, errors)
        await anyio.sleep(0.2)
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
    assert len(errors) == 3
    assert time.monotonic() - killed_at < 2.0
    assert conn.closed
    with pytest.raises(pushy.ConnectionLost):
        await conn.eval("1")


async def test_connection_lost_carries_stderr_tail(conn: pushy.Session) -> None:
    with pytest.raises(pushy.ConnectionLost) as info:
        await conn.execute("import os; os.write(2, b'last words before dying\\n'); os._exit(7)")
    assert "last words before dying" in str(info.value)
    assert "exit status 7" in str(info.value)


async def test_heartbeat_detects_a_frozen_remote(remote_python: str) -> None:
    conn = await pushy.connect(
        "local:", python=remote_python, heartbeat_interval=0.2, heartbeat_timeout=1.0
    )
    try:
        pid = conn.info["pid"]
        os.kill(pid, signal.SIGSTOP)
        with pytest.raises(pushy.ConnectionLost, match="heartbeat"):
            with anyio.fail_after(10):
                await conn.eval("1")
    finally:
        with anyio.fail_after(10):
            await conn.close()
    assert await wait_until(lambda: not alive(pid), 5)


async def test_remote_exits_when_heartbeats_stop(remote_python: str) -> None:
    conn = await pushy.connect(
        "local:", python=remote_python, heartbeat_interval=0.2, heartbeat_timeout=1.0
    )
    try:
        pid = conn.info["pid"]
        for task in list(conn._tasks):
            if "heartbeat" in task.get_name():
                task.cancel()  # fault injection: the controller falls silent
        assert await wait_until(lambda: conn.closed, 10)
        assert await wait_until(lambda: not alive(pid), 5)
        with pytest.raises(pushy.ConnectionLost):
            await conn.eval("1")
    finally:
        await conn.close()


async def test_remote_exits_when_its_input_closes(conn: pushy.Session) -> None:
    pid = conn.info["pid"]
    await conn.transport.stdin.aclose()
    assert await wait_until(lambda: conn.closed, 5)
    assert await wait_until(lambda: not alive(pid), 5)


@pytest.mark.parametrize("ignored", [False, True], ids=["terminal", "nohup-background"])
async def test_close_hangs_up_children_but_spares_nohup_and_daemons(
    remote_python: str, ignored: bool
) -> None:
    """Whatever SIGHUP disposition the controller has, the remote's children get the
    default one, so the session's hang-up ends them."""
    with inherited_dispositions(ignored):
        conn = await pushy.connect("local:", python=remote_python)
    async with conn:
        plain = await conn.eval("__import__('subprocess').Popen(['sleep', '60']).pid")
        nohup = await conn.eval("__import__('subprocess').Popen(['nohup', 'sleep', '61']).pid")
        daemon = await conn.eval(
            "__import__('subprocess').Popen(['sleep', '62'], start_new_session=True).pid"
        )
        remote_pid = conn.info["pid"]
        # nohup ignores SIGHUP only once it runs: close after it has become sleep.
        assert await wait_until(lambda: command_name(nohup) == "sleep", 5)
    try:
        assert await wait_until(lambda: not alive(remote_pid), 5)
        assert await wait_until(lambda: not alive(plain), 5)
        assert alive(nohup)
        assert alive(daemon)
    finally:
        for pid in (plain, nohup, daemon):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def test_remote_starts_with_terminal_dispositions_whatever_it_inherits(
    remote_python: str,
) -> None:
    """A controller under ``nohup`` in a background job ignores SIGHUP and SIGINT; the
    remote it starts (directly, or through another session with ``via``) and the
    programs the remote starts do not."""
    with inherited_dispositions(ignored=True):
        outer = await pushy.connect("local:", python=remote_python)
    async with outer:
        check_terminal_dispositions(await outer.eval(REMOTE_IGNORED_MASKS))
        # The relayed interpreter is started by the remote, whose SIGHUP is live again.
        python = ["nohup", outer.info["executable"]]
        async with pushy.connect("local:", via=outer, python=python) as inner:
            check_terminal_dispositions(await inner.eval(REMOTE_IGNORED_MASKS))


async def test_close_is_bounded_when_background_jobs_hold_the_pipes(
    remote_python: str,
) -> None:
    conn = await pushy.connect("local:", python=remote_python)
    # A nohup'ed job survives SIGHUP and keeps the session's stderr pipe open.
    job = await conn.eval("__import__('subprocess').Popen(['nohup', 'sleep', '30']).pid")
    await conn.execute("import subprocess; subprocess.Popen('sleep 30 &', shell=True)")
    try:
        with anyio.fail_after(15):
            await conn.close()
    finally:
        os.kill(job, signal.SIGKILL)


async def test_close_with_pending_calls(conn: pushy.Session) -> None:
    errors: list[BaseException] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_sleep_until_lost, conn, errors)
        await anyio.sleep(0.2)
        with anyio.fail_after(15):
            await conn.close()
    assert len(errors) == 1 and "closed" in str(errors[0])


async def test_isolated_interpreter_needs_nothing_but_the_stdlib() -> None:
    """The shipped code runs under ``python -I -S`` and imports only the standard library."""
    async with pushy.connect("local:", python=[sys.executable, "-I", "-S"]) as conn:
        foreign = await conn.eval(
            "sorted({m.split('.')[0] for m in __import__('sys').modules}"
            " - set(__import__('sys').stdlib_module_names))"
        )
    assert foreign == ["__main__", "_aiopushy_remote"]


def test_shipped_code_imports_only_stdlib_and_itself() -> None:
    import ast

    root = Path(pushy.__file__).parent
    for package in ("_protocol", "_remote"):
        for path in (root / package).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level:
                    target = (node.module or "").split(".")[0]
                    assert node.level == 1 or target in ("_protocol", ""), (path, target)
                    if package == "_protocol":
                        assert node.level == 1, path
                elif isinstance(node, ast.Import | ast.ImportFrom):
                    names = (
                        [node.module]
                        if isinstance(node, ast.ImportFrom)
                        else [a.name for a in node.names]
                    )
                    for name in names:
                        assert name and name.split(".")[0] in sys.stdlib_module_names, (
                            path,
                            name,
                        )


def test_loader_has_no_quote_characters() -> None:
    from aiopushy import _bootstrap

    assert not set(_bootstrap.LOADER) & set("'\"`$\\")
    assert textwrap.dedent(_bootstrap.LOADER) == _bootstrap.LOADER


def test_shipped_code_parses_as_python_3_8() -> None:
    import ast

    from aiopushy import _bootstrap

    root = Path(pushy.__file__).parent
    for package in ("_protocol", "_remote"):
        for path in (root / package).glob("*.py"):
            ast.parse(path.read_text(), str(path), feature_version=(3, 8))
    ast.parse(_bootstrap.LOADER, feature_version=(3, 8))
    ast.parse(_bootstrap.stage_two(1024), feature_version=(3, 8))


async def test_missing_remote_python_is_its_own_error() -> None:
    with pytest.raises(pushy.PythonNotFoundError):
        await pushy.connect("local:", python=["sh", "-c", "exit 127", "x"])


async def test_old_remote_python_is_its_own_error() -> None:
    # The loader's first check: an interpreter older than 3.8 exits with status 5.
    with pytest.raises(pushy.PythonTooOldError, match=r"older than Python 3\.8"):
        await pushy.connect("local:", python=["sh", "-c", "exit 5", "x"])


async def test_noise_before_the_interpreter_starts_is_shown_not_parsed() -> None:
    seen: list[tuple[str, bytes]] = []
    chatty = ["sh", "-c", 'echo "motd: welcome"; exec "$0" "$@"', sys.executable]
    async with pushy.connect(
        "local:", python=chatty, output=lambda s, d: seen.append((s, d))
    ) as conn:
        assert await conn.eval("1 + 1") == 2
    assert ("stderr", b"motd: welcome\n") in seen


@pytest.mark.parametrize("part", [0, 1, 2])  # stage two, compiled modules, sources
async def test_a_corrupted_bootstrap_never_runs(
    part: int, remote_python: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiopushy import _bootstrap

    intact = _bootstrap.payload

    def corrupted(max_frame_size: int) -> bytes:
        data = bytearray(intact(max_frame_size))
        start = 0
        for _ in range(part):  # skip to the part: 12-digit length, 10-digit CRC, data
            start += 22 + int(data[start : start + 12])
        data[start + 22 + 100] ^= 0xFF
        return bytes(data)

    monkeypatch.setattr(_bootstrap, "payload", corrupted)
    with pytest.raises(pushy.ConnectError, match="corrupted bootstrap"):
        await pushy.connect("local:", python=remote_python, timeout=30)


async def test_remote_tracebacks_show_the_shipped_lines(conn: pushy.Session) -> None:
    # On PyPy the modules were compiled from the shipped sources, on CPython the code
    # objects came precompiled: both must find their sources for the traceback.
    with pytest.raises(FileNotFoundError) as caught:
        await conn.modules.os.stat("/nonexistent/aiopushy")
    lines = caught.value.remote_traceback.splitlines()  # type: ignore[attr-defined]
    shipped = [i for i, line in enumerate(lines) if 'File "<aiopushy>/' in line]
    assert shipped, lines
    for index in shipped:
        assert lines[index + 1].strip() and not lines[index + 1].lstrip().startswith("File")
