"""The remote's answers to requests that arrive together leave together, in one write,
and an answer never waits for a slow request behind it for longer than the hand-off to
another reading thread takes."""

from __future__ import annotations

import asyncio
import time

import anyio
import pytest

import aiopushy as pushy
from aiopushy._protocol import messages as m
from aiopushy._protocol.framing import encode_frame
from aiopushy.transport._streams import WriterStream

pytestmark = pytest.mark.anyio


async def _busy_then(conn: pushy.Session, seconds: float) -> asyncio.Task[object]:
    """Keep one remote thread busy for ``seconds`` (another takes over reading); the
    request's task."""
    task = asyncio.ensure_future(conn.modules.time.sleep(seconds))
    await asyncio.sleep(0.05)
    return task


async def test_answers_to_a_burst_leave_in_few_writes(conn: pushy.Session) -> None:
    """500 requests written at once (one write: the remote reads them together)."""
    pid = conn.info["pid"]
    before = await conn.remote_statistics()
    ids, futures, frames = [], [], []
    for _ in range(500):
        request_id, future, body = conn._register(m.OP_EVALUATE, (conn.modules.os.getpid(), False))
        ids.append(request_id)
        futures.append(future)
        frames.append(encode_frame(m.REQUEST, request_id, body))
    stdin = conn.transport.stdin
    assert isinstance(stdin, WriterStream)
    try:
        stdin.write_nowait([b"".join(frames)])
        with anyio.fail_after(10):
            pids = await asyncio.gather(*futures)
    finally:
        for request_id in ids:
            conn._pending.pop(request_id, None)
    after = await conn.remote_statistics()
    assert pids == [pid] * 500
    written = after["frames_written"] - before["frames_written"]
    writes = after["writes"] - before["writes"]
    assert written >= 500
    assert writes < written / 10, (writes, written)


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
