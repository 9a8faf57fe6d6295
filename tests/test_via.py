"""Hierarchical connects: ``connect(..., via=session)`` starts the next interpreter from a
remote one and relays its pipes through that session (local through local here; ssh
through ssh is in test_ssh.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import aiopushy as pushy

from .procutil import alive, wait_until

pytestmark = pytest.mark.anyio


@pytest.fixture
async def bastion(anyio_backend: str) -> AsyncIterator[pushy.Session]:
    async with pushy.connect("local:", timeout=30) as session:
        yield session


async def test_local_through_local(bastion: pushy.Session, remote_python: str) -> None:
    async with pushy.connect("local:", via=bastion, python=remote_python, timeout=30) as inner:
        bastion_pid = await bastion.modules.os.getpid()
        assert await inner.modules.os.getppid() == bastion_pid  # started by the bastion
        assert inner.info["pid"] not in (bastion_pid, os.getpid())
        assert await inner.modules.os.path.join("a", "b") == os.path.join("a", "b")
        with pytest.raises(ZeroDivisionError):
            await inner.eval("1 / 0")
        # Many requests in flight through the relay at once, all answered correctly.
        square = await inner.eval("lambda x: x * x")
        assert await asyncio.gather(*(square(i) for i in range(200))) == [
            i * i for i in range(200)
        ]


async def test_default_python_is_the_bastions(bastion: pushy.Session) -> None:
    async with pushy.connect("local:", via=bastion, timeout=30) as inner:
        assert inner.info["executable"] == bastion.info["executable"]


async def test_bulk_data_and_files_through_the_relay(
    bastion: pushy.Session, tmp_path: Path
) -> None:
    blob = os.urandom(3 * 1024 * 1024 + 7)
    async with pushy.connect("local:", via=bastion, timeout=30) as inner:
        assert not inner.transport.native_file_copy  # a local copy would be on the wrong host
        reverse = await inner.eval("lambda b: b[::-1]")
        assert await reverse(blob) == blob[::-1]
        source, copy, back = tmp_path / "a", tmp_path / "b", tmp_path / "c"
        source.write_bytes(blob)
        await inner.putfile(source, str(copy))
        await inner.getfile(str(copy), back)
        assert back.read_bytes() == blob


async def test_output_and_callbacks_cross_the_relay(bastion: pushy.Session) -> None:
    seen: list[tuple[str, bytes]] = []
    async with pushy.connect(
        "local:", via=bastion, timeout=30, output=lambda s, d: seen.append((s, d))
    ) as inner:
        await inner.execute("import sys; print('out line'); print('err line', file=sys.stderr)")
        calls: list[int] = []
        apply = await inner.eval("lambda f, n: [f(i) for i in range(n)]")
        assert await apply(lambda i: calls.append(i) or i + 1, 5) == [1, 2, 3, 4, 5]
        assert calls == [0, 1, 2, 3, 4]
    text = b"".join(d for _, d in seen)
    assert b"out line" in text and b"err line" in text


async def test_chain_of_three_and_the_end_of_a_hop(bastion: pushy.Session) -> None:
    async with pushy.connect("local:", via=bastion, timeout=30) as middle:
        inner = await pushy.connect("local:", via=middle, timeout=30)
        assert await inner.modules.os.getppid() == middle.info["pid"]
        inner_pid = inner.info["pid"]
        await middle.close()
        # The hop below ended: the relayed session ends at once, not at a heartbeat timeout.
        with pytest.raises(pushy.ConnectionLost):
            await asyncio.wait_for(inner.modules.os.getpid(), 5)
        assert inner.closed
        await inner.close()
        assert await wait_until(lambda: not alive(inner_pid), 10)
        assert await bastion.eval("2") == 2  # the bastion is untouched


async def test_closing_the_relayed_session_ends_its_interpreter(bastion: pushy.Session) -> None:
    inner = await pushy.connect("local:", via=bastion, timeout=30)
    pid = inner.info["pid"]
    assert alive(pid)
    await inner.close()
    assert await wait_until(lambda: not alive(pid), 10)

    async def exported() -> int:
        return (await bastion.remote_statistics())["exported"]  # type: ignore[no-any-return]

    for _ in range(50):
        if await exported() == 0:
            break
        await asyncio.sleep(0.05)
    assert await exported() == 0
    assert await bastion.eval("3") == 3


async def test_relayed_interpreter_killed_mid_call(bastion: pushy.Session) -> None:
    async with pushy.connect("local:", via=bastion, timeout=30) as inner:
        call = asyncio.ensure_future(inner.modules.time.sleep(30))
        await asyncio.sleep(0.3)
        os.kill(inner.info["pid"], 9)
        with pytest.raises(pushy.ConnectionLost, match="exit status -9"):
            await asyncio.wait_for(call, 10)
    assert await bastion.eval("4") == 4


async def test_start_up_failures_via(bastion: pushy.Session) -> None:
    with pytest.raises(pushy.ConnectError, match=r"cannot start '/no/such/python' via local:"):
        await pushy.connect("local:", via=bastion, python="/no/such/python")
    with pytest.raises(pushy.PythonNotFoundError):
        await pushy.connect("local:", via=bastion, python=["sh", "-c", "exit 127", "x"])
    assert await bastion.eval("5") == 5


async def test_bad_via_arguments(bastion: pushy.Session) -> None:
    with pytest.raises(TypeError, match="via must be a Session"):
        pushy.connect("local:", via="local:")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="daemon transport cannot be started via"):
        await pushy.connect("daemon:127.0.0.1", via=bastion)
    with pytest.raises(ValueError, match="password authentication is not available with via"):
        await pushy.connect("ssh:127.0.0.1", via=bastion, password="x")
    with pytest.raises(ValueError, match="drop use_native=False"):
        await pushy.connect("ssh:127.0.0.1", via=bastion, use_native=False)
    closed = await pushy.connect("local:")
    await closed.close()
    with pytest.raises(pushy.ConnectError, match="that session is closed"):
        await pushy.connect("local:", via=closed)


async def test_fanout_through_a_bastion(bastion: pushy.Session) -> None:
    async def job(conn: pushy.Session) -> int:
        return await conn.modules.os.getppid()  # type: ignore[no-any-return]

    results = await pushy.fanout(["local:"] * 6, job, connect_kwargs={"via": bastion})
    assert [r.value for r in results] == [bastion.info["pid"]] * 6
