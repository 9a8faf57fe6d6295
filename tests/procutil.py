"""Process checks shared by the tests."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left for an init that does not reap counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def wait_until(predicate: Callable[[], object], seconds: float) -> bool:
    """Poll ``predicate`` every 50 ms for at most ``seconds``; its last truth value."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await anyio.sleep(0.05)
    return bool(predicate())
