"""Large answers from a real remote: decoded in slices while the event loop runs, in
order with what follows them, and held to ``max_frame_size``."""

from __future__ import annotations

import asyncio

import pytest

import aiopushy as pushy
from aiopushy import _pump
from aiopushy._protocol import codec, framing

pytestmark = pytest.mark.anyio

RECORDS = "[{'id': i, 'name': 'host%d' % i, 'up': True} for i in range(100_000)]"


async def test_a_large_answer_is_decoded_between_turns_of_the_loop(
    conn: pushy.Session,
) -> None:
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    counting = asyncio.ensure_future(count_turns())
    try:
        await asyncio.sleep(0)
        started = turns
        value = await conn.eval(RECORDS)
        during = turns - started
    finally:
        counting.cancel()
    assert value == eval(RECORDS)
    size = len(codec.encode(value, lambda obj: ()))
    assert size > _pump.SLICED_FRAME
    assert during >= size // _pump.SLICE_BYTES  # one turn of the loop per slice at least


async def test_frames_behind_a_large_one_keep_their_order(conn: pushy.Session) -> None:
    keep = await conn.eval("[]")  # a remote list: its releases travel behind the answers
    answers = await asyncio.gather(
        conn.eval(RECORDS),
        conn.modules.operator.add(1, 2),
        conn.eval(RECORDS.replace("host", "node")),
        conn.modules.builtins.len(keep),
    )
    assert answers[1] == 3 and answers[3] == 0
    assert answers[0][-1] == {"id": 99_999, "name": "host99999", "up": True}
    assert answers[2][-1]["name"] == "node99999"
    assert await conn.eval("6 * 7") == 42


async def test_an_answer_over_max_frame_size_is_refused_from_its_header(
    remote_python: str,
) -> None:
    async with pushy.connect("local:", python=remote_python, max_frame_size=2**20) as conn:
        assert len(await conn.eval("b'x' * (2**20 - 100)")) == 2**20 - 100
        with pytest.raises(pushy.ProtocolError, match="max_frame_size"):
            await conn.eval("b'x' * 2**21")
        assert conn.closed


async def test_arguments_may_be_larger_than_answers(conn: pushy.Session) -> None:
    blob = b"x" * (framing.DEFAULT_MAX_FRAME_SIZE + 2**20)  # to the remote: its own limit
    assert await conn.modules.builtins.len(blob) == len(blob)


async def test_a_large_argument_arrives_intact_with_frames_around_it(
    conn: pushy.Session,
) -> None:
    """Bodies of at least ``DIRECT_BODY`` are read into their own buffers on the remote:
    the bytes arrive as sent, and the requests around them keep their order."""
    import asyncio
    import hashlib
    import os

    blobs = [os.urandom(framing.DIRECT_BODY * n + 12345) for n in (1, 5)]
    digest = conn.modules.hashlib.sha256
    results = await asyncio.gather(
        conn.modules.os.getpid(),
        digest(blobs[0]).hexdigest(),
        conn.modules.builtins.len(b"small"),
        digest(blobs[1]).hexdigest(),
        conn.modules.os.getpid(),
    )
    pid = conn.info["pid"]
    expected = [hashlib.sha256(blob).hexdigest() for blob in blobs]
    assert results == [pid, expected[0], 5, expected[1], pid]
