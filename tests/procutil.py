"""Process checks shared by the tests."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator

import anyio


def _read(pid: int | str, name: str) -> str | None:
    try:
        with open(f"/proc/{pid}/{name}") as f:
            return f.read()
    except OSError:  # gone (or not ours to read)
        return None


def _state_and_parent(pid: int | str) -> tuple[str, int] | None:
    stat = _read(pid, "stat")
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left for an init that does not reap counts as dead)."""
    found = _state_and_parent(pid)
    return found is not None and found[0] != "Z"


def command_name(pid: int | str) -> str:
    """The name ``pid`` runs under (``/proc/PID/comm``), ``""`` once it is gone."""
    return (_read(pid, "comm") or "").strip()


def children(pid: int, name: str) -> list[int]:
    """Pids of this machine's processes called ``name`` whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and command_name(entry) == name:
            state = _state_and_parent(entry)
            if state is not None and state[1] == pid:
                found.append(int(entry))
    return found


async def wait_until(predicate: Callable[[], object], seconds: float) -> bool:
    """Poll ``predicate`` every 50 ms for at most ``seconds``; its last truth value."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await anyio.sleep(0.05)
    return bool(predicate())


#: The signals whose inherited dispositions the remote resets.
HANGUP_SIGNALS = {signal.SIGHUP, signal.SIGINT, signal.SIGPIPE}

#: A remote expression: the signal masks that ``/proc`` shows ignored, in hexadecimal,
#: for the remote interpreter and for a program it starts with ``subprocess``.
REMOTE_IGNORED_MASKS = (
    "[line.split()[1] for line in open('/proc/self/status') if line.startswith('SigIgn:')]"
    " + __import__('subprocess').run(['grep', 'SigIgn:', '/proc/self/status'],"
    " capture_output=True, text=True, check=True).stdout.split()[1:]"
)


def ignored_hangup_signals(mask: str) -> set[signal.Signals]:
    """Which of ``HANGUP_SIGNALS`` a ``/proc/PID/status`` ``SigIgn`` mask ignores."""
    bits = int(mask, 16)
    return {s for s in HANGUP_SIGNALS if bits & (1 << (s - 1))}


#: What an interpreter started from a terminal has: Python ignores SIGPIPE itself (and
#: ``subprocess`` restores it for the programs it starts); SIGHUP and SIGINT are live.
TERMINAL_IGNORES = ({signal.SIGPIPE}, set[signal.Signals]())


def check_terminal_dispositions(masks: list[str]) -> None:
    """Assert that ``REMOTE_IGNORED_MASKS``' answer matches ``TERMINAL_IGNORES``."""
    found = tuple(ignored_hangup_signals(mask) for mask in masks)
    assert found == TERMINAL_IGNORES, f"ignored (remote, its child): {found}"


@contextlib.contextmanager
def inherited_dispositions(ignored: bool) -> Iterator[None]:
    """Give this process SIGHUP and SIGINT ignored (as under ``nohup`` in a background
    job) or at their interactive dispositions, so that what it starts inherits them;
    restores the previous ones after."""
    wanted = {
        signal.SIGHUP: signal.SIG_IGN if ignored else signal.SIG_DFL,
        signal.SIGINT: signal.SIG_IGN if ignored else signal.default_int_handler,
    }
    previous = {number: signal.signal(number, handler) for number, handler in wanted.items()}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
