"""The ssh scenarios (``python -m benchmarks --ssh``): connect and round trip on loopback.

A real OpenSSH ``sshd`` runs on a free 127.0.0.1 port for the whole run (the test suite's
``tests.sshservers.openssh_server``: generated keys, a known_hosts file of its own, no
``~/.ssh`` and no agent). The remote interpreter is the same ``--python`` as everywhere.
Two phases, each measuring its systems alternately (A B A B ... rounds) in the same run:

* connect: ``python -S -c pass`` (the start-up baseline of ``core``) and the raw OpenSSH
  command round trip ``ssh -o BatchMode=yes ... 127.0.0.1 true`` (the ssh baseline, with
  exactly the options the native path passes: ``ssh_options`` of ``make_options`` for the
  same keyword arguments, and its ``-T -a``), against ``await connect("ssh:127.0.0.1")``
  on the asyncssh path, cold (no pooled SSH connection: the previous sessions are closed
  and the pool is checked empty before every cold sample) and warm (a second interpreter
  while the cold one is still open, so the pooled SSH connection is reused), and on the
  native path (``use_native=True``: one ``ssh`` client per interpreter). Timed until
  ``connect()`` returns; closing is not timed.
* round trip: ``await conn.modules.os.getpid()`` on an open session of each path, against
  a raw ping-pong over the same kind of channel: an asyncssh connection with the same
  options (``create_process("cat", encoding=None)``) and an ``ssh ... cat`` child. A
  sample is the mean time of one round trip over a batch of sequential round trips.

On a host whose login shell does slow work for every command (a ``~/.bashrc`` running
``pyenv init``, say) each SSH session start pays it; the ssh baseline pays it as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncssh

import aiopushy
from aiopushy.transport import _asyncssh
from aiopushy.transport._nativessh import ssh_options
from aiopushy.transport._sshcommon import make_options
from tests.needs import sshd_missing
from tests.sshservers import Server, openssh_server

from .core import (
    OPERATION_TIMEOUT,
    PIPES,
    PYTHON_S,
    BenchmarkError,
    Comparison,
    EchoChild,
    Settings,
    alternate,
    getpid_round_trips,
    ping_pong,
    progress,
    report,
    table,
    time_connect,
    time_spawn,
)

HOST = "127.0.0.1"
TARGET = f"ssh:{HOST}"

# Scenario ids (keys of the JSON output, under "ssh") and system names (rows of the table).
SSH_BASELINE_STARTUP = "ssh_baseline_startup"
SSH_CONNECT = "ssh_connect"
SSH_RAW_ROUND_TRIP = "ssh_raw_round_trip"
SSH_ROUND_TRIP = "ssh_round_trip"

SSH_TRUE = f"ssh -o BatchMode=yes ... {HOST} true"
ASYNCSSH_COLD = f'asyncssh: await connect("{TARGET}"), cold'
ASYNCSSH_WARM = "asyncssh: connect, warm (pooled SSH connection)"
NATIVE_CONNECT = "native: connect(..., use_native=True)"
ASYNCSSH_CAT = 'asyncssh: create_process("cat") echo'
NATIVE_CAT = f"ssh -o BatchMode=yes ... {HOST} cat echo"
ASYNCSSH_GETPID = "asyncssh: await conn.modules.os.getpid()"
NATIVE_GETPID = "native: await conn.modules.os.getpid()"

#: (scenario id, label in the table, its systems), in the order of the table.
SCENARIOS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (SSH_BASELINE_STARTUP, "start-up (baselines)", (PYTHON_S, SSH_TRUE)),
    (SSH_CONNECT, "connect over ssh", (ASYNCSSH_COLD, ASYNCSSH_WARM, NATIVE_CONNECT)),
    (SSH_RAW_ROUND_TRIP, "round trip over ssh (baseline)", (ASYNCSSH_CAT, NATIVE_CAT)),
    (SSH_ROUND_TRIP, "round trip over ssh", (ASYNCSSH_GETPID, NATIVE_GETPID)),
)

COMPARISONS = (
    *(
        Comparison(system, baseline, None)
        for system in (ASYNCSSH_COLD, ASYNCSSH_WARM, NATIVE_CONNECT)
        for baseline in (PYTHON_S, SSH_TRUE)
    ),
    Comparison(ASYNCSSH_GETPID, ASYNCSSH_CAT, None),
    Comparison(NATIVE_GETPID, NATIVE_CAT, None),
)

FULL = Settings(
    "full",
    rounds=30,
    batch=200,
    warmup_calls=400,
    startup_rounds=20,
    warmup_starts=2,
    budget=60.0,
)
QUICK = Settings(
    "quick",
    rounds=4,
    batch=30,
    warmup_calls=30,
    startup_rounds=3,
    warmup_starts=1,
    budget=4.0,
)


def ssh_argv(kwargs: dict[str, Any], command: str) -> list[str]:
    """``ssh`` running ``command`` on the server as the native path would run it.

    ``kwargs`` are ``connect()``'s transport options, without ``use_native``.
    """
    options = make_options(HOST, **kwargs)
    return ["ssh", "-T", "-a", *ssh_options(options, False), "--", HOST, command]


def check_pool_empty(when: str) -> None:
    if pool := _asyncssh._pool():
        raise BenchmarkError(f"{when}, asyncssh's connection pool still holds {list(pool)}")


# -- connect ----------------------------------------------------------------------------


async def measure_connect(
    python: str, kwargs: dict[str, Any], settings: Settings
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """The connect phase: the two baselines and the three ways to connect, alternately."""
    ssh_true = ssh_argv(kwargs, "true")

    async def python_s() -> dict[str, float]:
        return {PYTHON_S: await time_spawn([python, "-S", "-c", "pass"])}

    async def raw_ssh() -> dict[str, float]:
        return {SSH_TRUE: await time_spawn(ssh_true)}

    async def cold_and_warm() -> dict[str, float]:
        check_pool_empty("before a cold connect")
        start = time.perf_counter()
        first = await aiopushy.connect(TARGET, python=python, timeout=OPERATION_TIMEOUT, **kwargs)
        cold = time.perf_counter() - start
        try:
            pooled = [id(entry) for entry in _asyncssh._pool().values()]
            if len(pooled) != 1:
                raise BenchmarkError(f"one open session, but {len(pooled)} pooled connections")
            warm, _ = await time_connect(python, TARGET, **kwargs)
            if [id(entry) for entry in _asyncssh._pool().values()] != pooled:
                raise BenchmarkError("the second session did not reuse the pooled connection")
        finally:
            await first.close()
        check_pool_empty("after closing every session")
        return {ASYNCSSH_COLD: cold, ASYNCSSH_WARM: warm}

    async def native() -> dict[str, float]:
        connected, _ = await time_connect(python, TARGET, use_native=True, **kwargs)
        return {NATIVE_CONNECT: connected}

    measures = [python_s, raw_ssh, cold_and_warm, native]
    for _ in range(settings.warmup_starts):
        for measure in measures:
            await asyncio.wait_for(measure(), OPERATION_TIMEOUT)
    samples, rounds = await alternate(measures, settings.startup_rounds, settings.budget)
    facts = {"rounds": rounds, "warmup_rounds": settings.warmup_starts, "ssh_baseline": ssh_true}
    return samples, facts


# -- round trip -------------------------------------------------------------------------


async def measure_round_trips(
    python: str, kwargs: dict[str, Any], settings: Settings
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """The round-trip phase: both raw echoes and both aiopushy paths, alternately.

    All four channels stay open for the whole phase.
    """
    async with contextlib.AsyncExitStack() as stack:
        # The raw asyncssh channel: a connection of its own (not the pooled one), opened
        # by aiopushy's own code from the same options.
        shared = await _asyncssh._open(make_options(HOST, **kwargs))
        stack.push_async_callback(close_connection, shared.connection)
        try:
            cat = await shared.connection.create_process("cat", encoding=None)
        except asyncssh.Error as exc:
            raise BenchmarkError(f"asyncssh: cannot start cat: {exc}") from exc
        stack.push_async_callback(close_channel, cat)
        native_cat = EchoChild(
            await asyncio.create_subprocess_exec(*ssh_argv(kwargs, "cat"), **PIPES)
        )
        stack.push_async_callback(native_cat.close)
        pushy = await stack.enter_async_context(
            aiopushy.connect(TARGET, python=python, timeout=OPERATION_TIMEOUT, **kwargs)
        )
        native = await stack.enter_async_context(
            aiopushy.connect(
                TARGET, python=python, timeout=OPERATION_TIMEOUT, use_native=True, **kwargs
            )
        )

        async def raw_asyncssh() -> dict[str, float]:
            return {ASYNCSSH_CAT: await ping_pong(cat.stdout, cat.stdin, settings.batch)}

        async def pushy_asyncssh() -> dict[str, float]:
            return {ASYNCSSH_GETPID: await getpid_round_trips(pushy, settings.batch)}

        async def raw_native() -> dict[str, float]:
            return {NATIVE_CAT: await native_cat.round_trips(settings.batch)}

        async def pushy_native() -> dict[str, float]:
            return {NATIVE_GETPID: await getpid_round_trips(native, settings.batch)}

        measures = [raw_asyncssh, pushy_asyncssh, raw_native, pushy_native]
        for warmup in (
            ping_pong(cat.stdout, cat.stdin, settings.warmup_calls),
            getpid_round_trips(pushy, settings.warmup_calls),
            native_cat.round_trips(settings.warmup_calls),
            getpid_round_trips(native, settings.warmup_calls),
        ):
            await asyncio.wait_for(warmup, OPERATION_TIMEOUT)
        samples, rounds = await alternate(measures, settings.rounds, settings.budget)
        facts = {
            "rounds": rounds,
            "calls_per_sample": settings.batch,
            "warmup_calls": settings.warmup_calls,
            "remote": dict(pushy.info),
        }
    return samples, facts


async def close_channel(process: asyncssh.SSHClientProcess[bytes]) -> None:
    """End the echo's input and wait for the channel to close."""
    process.stdin.write_eof()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(process.wait_closed(), OPERATION_TIMEOUT)
    process.close()


async def close_connection(connection: asyncssh.SSHClientConnection) -> None:
    connection.close()
    await connection.wait_closed()


# -- the run ------------------------------------------------------------------------------


async def run(python: str, server: Server, settings: Settings) -> dict[str, Any]:
    """Both phases against ``server``; the raw figures, in seconds, as written by ``--json``."""
    kwargs = server.connect_kwargs()
    progress(f"ssh: measuring connect ({settings.startup_rounds} rounds)...")
    connects, connect_facts = await measure_connect(python, kwargs, settings)
    progress(f"ssh: measuring round trips ({settings.rounds} rounds x {settings.batch} calls)...")
    round_trips, round_trip_facts = await measure_round_trips(python, kwargs, settings)
    check_pool_empty("after the ssh benchmarks")
    meta = {
        "openssh": openssh_version(),
        "asyncssh": asyncssh.__version__,
        "connect": connect_facts,
        "round_trip": round_trip_facts,
    }
    samples = {**connects, **round_trips}
    return report(python, settings, samples, meta, SCENARIOS, COMPARISONS)


def openssh_version() -> str:
    result = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
    return (result.stderr or result.stdout).strip()


def header(settings: Settings) -> str:
    return "\n".join(
        [
            f"## ssh on loopback ({openssh_version()}, asyncssh {asyncssh.__version__})",
            "",
            f"{settings.name} run: connect {settings.startup_rounds} rounds (after "
            f"{settings.warmup_starts} warm-up), round trips {settings.rounds} rounds x "
            f"{settings.batch} calls per system (after {settings.warmup_calls} warm-up calls), "
            "systems alternating within each round",
        ]
    )


def run_and_report(python: str, quick: bool) -> dict[str, Any]:
    """Start sshd, measure, print the table; the results for the JSON's ``"ssh"`` key.

    Without sshd (or ssh), print why and give ``{"skipped": reason}``.
    """
    print(flush=True)
    reason = sshd_missing(client=True)
    if reason is not None:
        print(f"ssh benchmarks skipped: {reason}", flush=True)
        return {"skipped": reason}
    settings = QUICK if quick else FULL
    print(header(settings), flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="aiopushy-bench-sshd-") as directory,
        contextlib.ExitStack() as stack,
    ):
        try:
            server = stack.enter_context(openssh_server(Path(directory)))
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            raise BenchmarkError(f"cannot start sshd: {exc}") from exc
        results = asyncio.run(run(python, server, settings))
    print()
    print(table(results), flush=True)
    return results
