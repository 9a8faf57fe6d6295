"""``aiopushy.gather``: many remote expressions in flight at once, without a task each."""

from __future__ import annotations

import asyncio
import gc
import time

import anyio
import pytest

import aiopushy as pushy

pytestmark = pytest.mark.anyio


async def test_thousand_calls_come_back_in_order(conn: pushy.Session) -> None:
    values = await pushy.gather(*(conn.modules.operator.mul(i, 3) for i in range(1000)))
    assert values == [i * 3 for i in range(1000)]
    assert conn.statistics()["pending"] == 0


async def test_every_kind_of_expression_and_sessions_mixed(
    conn: pushy.Session, remote_python: str
) -> None:
    path = await pushy.byref(conn.modules.sys.path)
    async with pushy.connect("local:", python=remote_python) as other:
        values = await pushy.gather(
            conn.modules.os.getpid(),
            other.modules.os.getpid(),
            path,  # a proxy gives itself
            pushy.byref(other.modules.sys.path),
            conn.modules.builtins.len(path),
            other.modules.operator.add(40, 2),
        )
        assert values[0] == conn.info["pid"] and values[1] == other.info["pid"]
        assert values[2] is path
        assert isinstance(values[3], pushy.Proxy) and values[3]._pushy_session is other
        assert values[4] == await conn.modules.builtins.len(path)
        assert values[5] == 42
    assert await pushy.gather() == []


async def test_the_first_failure_is_raised_and_the_others_are_dropped(
    conn: pushy.Session,
) -> None:
    calls = [conn.modules.operator.truediv(1, n) for n in (1, 0, 2, 0)]
    with pytest.raises(ZeroDivisionError):
        await pushy.gather(*calls)
    assert await conn.modules.operator.add(1, 1) == 2  # nothing stranded
    assert conn.statistics()["pending"] == 0


async def test_return_exceptions_puts_failures_in_place(conn: pushy.Session) -> None:
    values = await pushy.gather(
        conn.modules.operator.truediv(1, 2),
        conn.modules.operator.truediv(1, 0),
        conn.modules.builtins.open("/nonexistent/aiopushy"),
        conn.modules.builtins.len(object()),  # a local object: sent by reference
        return_exceptions=True,
    )
    assert values[0] == 0.5
    assert isinstance(values[1], ZeroDivisionError)
    assert isinstance(values[2], FileNotFoundError)
    assert isinstance(values[3], pushy.RemoteError | TypeError)


async def test_a_closed_session_fails_each_of_its_expressions(
    conn: pushy.Session, remote_python: str
) -> None:
    other = await pushy.connect("local:", python=remote_python)
    await other.close()
    values = await pushy.gather(
        conn.modules.operator.add(1, 2), other.modules.os.getpid(), return_exceptions=True
    )
    assert values[0] == 3 and isinstance(values[1], pushy.ConnectionLost)
    with pytest.raises(pushy.ConnectionLost):
        await pushy.gather(other.modules.os.getpid())


async def test_failures_in_several_sessions_report_one_and_leak_none(
    conn: pushy.Session, remote_python: str
) -> None:
    reported: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: reported.append(context))
    try:
        closed = [await pushy.connect("local:", python=remote_python) for _ in range(2)]
        for session in closed:
            await session.close()
        with pytest.raises(pushy.ConnectionLost):
            await pushy.gather(*(session.modules.os.getpid() for session in closed))
        async with pushy.connect("local:", python=remote_python) as other:
            started = time.monotonic()
            with pytest.raises(ZeroDivisionError):  # at once: conn's slow call is abandoned
                await pushy.gather(
                    conn.modules.time.sleep(5), other.modules.operator.truediv(1, 0)
                )
            assert time.monotonic() - started < 4
        await asyncio.sleep(0.05)
        gc.collect()
        assert reported == []  # no "exception was never retrieved"
        assert conn.statistics()["pending"] == 0
    finally:
        loop.set_exception_handler(None)


async def test_cancelling_leaves_nothing_pending(conn: pushy.Session) -> None:
    started = time.monotonic()
    with anyio.move_on_after(0.3):
        await pushy.gather(*(conn.modules.time.sleep(5) for _ in range(20)))
    assert time.monotonic() - started < 4
    assert conn.statistics()["pending"] == 0
    assert await conn.modules.operator.add(2, 2) == 4


async def test_only_remote_expressions_are_accepted(conn: pushy.Session) -> None:
    async def local() -> int:
        return 1

    coroutine = local()
    with pytest.raises(TypeError, match="remote expressions"):
        await pushy.gather(conn.modules.os.getpid(), coroutine)  # type: ignore[arg-type]
    coroutine.close()
    with pytest.raises(TypeError, match="remote expressions"):
        await pushy.gather(42)  # type: ignore[arg-type]
    await asyncio.sleep(0)
