"""Fan-out at scale over real SSH: 200 "hosts" on this machine, 10% of them dead.

180 loopback addresses are served by real OpenSSH sshd processes (16 addresses each),
10 refuse connections and 10 black-hole them (the TCP handshake completes, SSH never
answers). Each live target must succeed and report the address it was reached on; each
dead one must fail with its own error; and the run must take about one timeout, not
one per dead host.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator

import anyio
import pytest

import aiopushy as pushy
from aiopushy.transport import _asyncssh

from .procutil import alive, wait_until
from .sshservers import Fleet, openssh_fleet, require_sshd

pytestmark = pytest.mark.anyio

LIVE, REFUSED, BLACKHOLED = 180, 10, 10
#: Per target. Generous: 200 "hosts" share this machine's two cores.
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_sshd()
    with openssh_fleet(tmp_path_factory.mktemp("fleet"), LIVE, REFUSED, BLACKHOLED) as fleet:
        yield fleet


async def _where(conn: pushy.Session) -> tuple[str, int]:
    """The address the remote's sshd was reached on, and the interpreter's pid."""
    connection = await conn.modules.os.environ["SSH_CONNECTION"]
    return connection.split()[2], await conn.modules.os.getpid()


async def test_200_targets_with_dead_and_black_holed_ones(fleet: Fleet) -> None:
    addresses = list(fleet.live)
    dead = fleet.refused + fleet.blackholed
    for number, address in enumerate(dead):  # scattered among the live ones
        addresses.insert(number * 10 + 5, address)
    targets = [fleet.target(a) for a in addresses]
    assert len(set(targets)) == 200
    seen: list[tuple[int, int, int, int]] = []

    start = time.monotonic()
    results = await pushy.fanout(
        targets,
        _where,
        limit=16,
        timeout=TIMEOUT,
        connect_kwargs=fleet.connect_kwargs(python=[sys.executable, "-S"]),
        progress=lambda *counts: seen.append(counts),
    )
    elapsed = time.monotonic() - start

    assert [r.target for r in results] == targets
    by_address = dict(zip(addresses, results, strict=True))
    live = [by_address[a] for a in fleet.live]
    failures = [f"{r.target}: {r.error!r}" for r in live if not r.ok]
    assert not failures, failures[:5]
    assert [r.value[0] for r in live] == fleet.live  # each reached on its own address
    pids = {r.value[1] for r in live}
    assert len(pids) == LIVE and os.getpid() not in pids
    for address in fleet.refused:
        assert isinstance(by_address[address].error, pushy.ConnectionRefused)
    for address in fleet.blackholed:
        error = by_address[address].error
        assert isinstance(error, pushy.ConnectTimeout), error
        assert "connect did not finish" in str(error)
    # Ten dead hosts one after the other would take ten timeouts.
    assert elapsed < BLACKHOLED * TIMEOUT / 2
    assert seen[-1] == (LIVE, REFUSED + BLACKHOLED, 0, 200)

    # Every session was closed: no interpreter left, no pooled SSH connection.
    assert await wait_until(lambda: not any(alive(pid) for pid in pids), 20)
    with anyio.fail_after(10):
        while _asyncssh._pool():
            await anyio.sleep(0.05)
