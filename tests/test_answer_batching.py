"""The remote's answers to requests that arrive together leave together, in one write,
and an answer never waits for a slow request behind it for longer than the hand-off to
another reading thread takes."""

from __future__ import annotations

import asyncio
import time

import anyio
import pytest

import aiopushy as pushy

pytestmark = pytest.mark.anyio


async def _busy_then(conn: pushy.Session, seconds: float) -> asyncio.Task[object]:
    """Keep one remote thread busy for ``seconds`` (so requests pile up in the input
    until another thread takes over reading); the request's task."""
    task = asyncio.ensure_future(conn.modules.time.sleep(seconds))
    await asyncio.sleep(0.05)
    return task


async def test_answers_to_a_burst_leave_in_few_writes(conn: pushy.Session) -> None:
    pid = conn.info["pid"]
    busy = await _busy_then(conn, 0.3)
    before = await conn.remote_statistics()
    pids = await pushy.gather(*(conn.modules.os.getpid() for _ in range(500)))
    after = await conn.remote_statistics()
    await busy
    assert pids == [pid] * 500
    frames = after["frames_written"] - before["frames_written"]
    writes = after["writes"] - before["writes"]
    assert frames >= 500
    assert writes < frames / 10, (writes, frames)


async def test_an_answer_does_not_wait_for_the_slow_request_behind_it(
    conn: pushy.Session,
) -> None:
    """Both requests reach the remote in one read: the quick one is answered (its answer
    held while the slow one runs) within moments, not after the slow one."""
    busy = await _busy_then(conn, 0.3)
    quick = asyncio.ensure_future(conn.modules.os.getpid())
    slow = asyncio.ensure_future(conn.modules.time.sleep(3))
    start = time.monotonic()
    with anyio.fail_after(1.5):
        assert await quick == conn.info["pid"]
    assert time.monotonic() - start < 1.5
    assert not slow.done()
    await busy
    slow.cancel()
