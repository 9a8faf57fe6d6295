"""Fan-out over many local interpreters, with dead and hanging targets among them."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

import aiopushy as pushy
from aiopushy._fanout import output_prefix
from aiopushy.transport.local import LocalTransport

pytestmark = pytest.mark.anyio


async def _hanging_popen(command: Sequence[str], address: str, **kwargs: Any) -> LocalTransport:
    """A transport whose interpreter never answers (a black-holed host)."""
    transport = await LocalTransport.spawn(["sleep", "60"], address)
    assert isinstance(transport, LocalTransport)
    return transport


@pytest.fixture
def hanging() -> Iterator[str]:
    pushy.transports["hang"] = _hanging_popen
    yield "hang:"
    del pushy.transports["hang"]


async def _pid(conn: pushy.Session) -> int:
    pid: int = await conn.modules.os.getpid()
    return pid


async def test_fanout_collects_results_in_order(hanging: str) -> None:
    targets = ["local:"] * 6 + ["nosuch:host", hanging, hanging, hanging]
    seen: list[tuple[int, int, int, int]] = []
    start = time.monotonic()
    results = await pushy.fanout(
        targets, _pid, limit=4, timeout=3, progress=lambda *counts: seen.append(counts)
    )
    elapsed = time.monotonic() - start
    assert [r.target for r in results] == targets
    live, dead = results[:6], results[6:]
    assert all(r.ok for r in live) and len({r.value for r in live}) == 6
    assert os.getpid() not in {r.value for r in live}
    assert all(not r.ok for r in dead)
    assert isinstance(dead[0].error, ValueError)
    assert all(isinstance(r.error, TimeoutError) for r in dead[1:])
    assert elapsed < 3 * 3  # bounded by the timeout, not by the number of dead targets
    assert seen[-1] == (6, 4, 0, 10)


async def test_waiting_for_a_slot_does_not_count_against_the_timeout(hanging: str) -> None:
    # One start-up slot: the live targets wait 2 s behind the hanging one, then connect.
    targets = [hanging, "local:", "local:"]
    results = await pushy.fanout(targets, _pid, limit=1, timeout=2)
    assert [r.ok for r in results] == [False, True, True]
    assert isinstance(results[0].error, pushy.ConnectTimeout)
    assert "connect did not finish within 2 s" in str(results[0].error)
    assert all(r.elapsed < 2 for r in results[1:])  # their own time, not the queue's


async def test_raise_on_error() -> None:
    with pytest.raises(pushy.FanoutError) as info:
        await pushy.fanout(["local:", "nosuch:x"], _pid, raise_on_error=True)
    assert [r.target for r in info.value.failed] == ["nosuch:x"]
    assert len(info.value.results) == 2


async def test_per_target_settings_override() -> None:
    results = await pushy.fanout(
        ["local:"],
        lambda conn: conn.modules.os.environ.get("FANOUT"),
        connect_kwargs={"env": {"FANOUT": "all"}},
        per_target={"local:": {"env": {"FANOUT": "mine"}}},
    )
    assert results[0].value == "mine"


async def test_group_keeps_sessions_open() -> None:
    async with pushy.Group(["local:", "local:", "nosuch:x"], limit=2) as group:
        assert [r.target for r in group.failed] == ["nosuch:x"]
        first = await group.run(_pid)
        second = await group.run(_pid)
        assert len(first) == 2 and len({r.value for r in first}) == 2
        assert [r.value for r in first] == [r.value for r in second]
        sessions = [session for _, session in group.sessions]
    assert all(s.closed for s in sessions)


async def test_output_is_prefixed_with_the_target(capsys: pytest.CaptureFixture[str]) -> None:
    async def job(conn: pushy.Session) -> None:
        await conn.execute("print('hello')\nprint('world')")

    await pushy.fanout(["local:"], job)
    out = capsys.readouterr().out.splitlines()
    assert out == ["local: hello", "local: world"]  # one colon after "local:"
    assert output_prefix("ssh:web1") == "ssh:web1: "


async def test_cancelling_a_group_start_closes_what_connected(hanging: str) -> None:
    import anyio

    before = pushy.Group(["local:", hanging], timeout=30)
    with anyio.move_on_after(3):
        await before.__aenter__()
    assert before.sessions == []  # the local session was connected, then closed


async def test_retries_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiopushy import _fanout as fanout_module
    from aiopushy.transport import local

    monkeypatch.setattr(fanout_module, "BACKOFF", 0.01)
    attempts: list[str] = []

    async def flaky(command: Sequence[str], address: str, **kwargs: Any) -> Any:
        attempts.append(address)
        if address == "denied":
            raise pushy.AuthenticationError("no")
        if attempts.count(address) <= 2:
            raise pushy.ConnectionRefused("rebooting")
        return await local.Popen(command, "")

    pushy.transports["flaky"] = flaky
    try:
        results = await pushy.fanout(["flaky:a", "flaky:b", "flaky:denied"], _pid, retries=2)
        assert [r.ok for r in results] == [True, True, False]
        assert attempts.count("a") == attempts.count("b") == 3
        assert attempts.count("denied") == 1  # credentials are never retried
        results = await pushy.fanout(["flaky:c"], _pid, retries=1)
        assert not results[0].ok and isinstance(results[0].error, pushy.ConnectionRefused)
    finally:
        del pushy.transports["flaky"]


def test_open_file_limit_is_raised_for_many_targets() -> None:
    import resource

    from aiopushy._fanout import raise_open_file_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        raise_open_file_limit(200)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= min(200 * 8, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
