"""Process checks shared by the tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

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
