"""The fan-out scenarios (``python -m benchmarks.fanout [--quick] [--json PATH] [--ssh]``).

The same work done by each system, in the same run: connect to N interpreters at once
(at most ``limit`` connecting at a time, the same limit for every system), make one call
on each (``os.getpid()``), hold all N sessions open at the same moment, close them all.

* locally: aiopushy (``Group(["local:"] * N)`` then ``group.run(getpid)``), against the
  floor, bare ``asyncio.create_subprocess_exec`` of the same interpreter, and against the
  peers execnet (``popen`` gateways), RPyC (classic stdio servers, one thread per host)
  and Mitogen (``router.local()``, one thread per host);
* over ssh (``--ssh``): N distinct "hosts" of ``tests.sshservers.openssh_fleet`` (real
  sshd processes on loopback addresses 127.77.x.y, 16 addresses per sshd, one port; no
  connection sharing), aiopushy (``Group`` of ``ssh:ADDRESS:PORT`` targets, asyncssh)
  against the floor, bare asyncssh (``connect`` + ``create_process`` per host, the same
  options), and against execnet (``ssh=`` gateways), RPyC (``zerodeploy.DeployedServer``
  on a plumbum ``SshMachine``) and Mitogen (``router.ssh()``). The three peers use the
  system ``ssh`` client with a generated config file (``-F``: the fleet's key, its
  known_hosts, its port, ``BatchMode yes``, no agent).

Every system starts the same remote interpreter, ``[python, "-S"]`` (``--python``, by
default this one; over ssh the same path, the fleet being this machine): without the
``site`` import, which costs several times a bare interpreter's start-up here and is
not what is compared. RPyC's server, which must import rpyc, gets rpyc's directory on its
``sys.path`` explicitly (zerodeploy copies rpyc next to its script anyway).

Each (system, N) sample runs in a fresh controller process (``benchmarks.fanout_worker``,
which documents the steps), so that memory figures do not mix: after its imports and one
untimed warm-up session it reads its RSS, then times connect + call for all N (``wall``),
reads its RSS again with all N open, and closes them (timed separately, ``close``, in the
JSON only). Figures: wall time (median over rounds, p10-p90) and controller memory per
session, ``(rss_open - rss_before) / N`` in MiB. The worker checks that N distinct pids
came back, none of them the controller's, and that every interpreter is gone after
closing; anything else fails the run. Systems alternate within each round (A B C A B C),
one round after the other, for each N; at large N the peers, several times slower than
aiopushy, take part in the first round(s) only (``FanoutSettings``), which keeps the full
run, local and ssh, near 20 minutes on two cores. Every system gets the same ``limit``
(32): at most that many hosts connecting at once (``Group(limit=)``, a semaphore for the
floors, a pool of that many threads for the peers). A peer that is not installed gives
a "skipped: not installed" row; RPyC over ssh is measured at N=50 only (``skip_above``).

Each "host" runs on this same machine, whose login shell may do slow work for every SSH
login (a ``~/.bashrc`` running ``pyenv init``): every system pays it once per host, and
RPyC's zerodeploy four times (a shell session, the copy of rpyc, the server, the tunnel).
Over ssh the peers' ``ssh`` child processes are not in the controller's RSS, while
aiopushy and asyncssh do the SSH protocol in-process.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .core import (
    BenchmarkError,
    Comparison,
    environment,
    family_parser,
    markdown,
    progress,
    report,
    run_family,
    table_rows,
)
from .core import summarize as core_summarize

ROOT = Path(__file__).resolve().parent.parent

#: System ids (as ``fanout_worker`` knows them), in the order of the tables.
LOCAL_SYSTEMS = ("aiopushy", "asyncio", "execnet", "rpyc", "mitogen")
SSH_SYSTEMS = ("aiopushy", "asyncssh", "execnet", "rpyc", "mitogen")
FLOORS = {"local": "asyncio", "ssh": "asyncssh"}
PEERS = ("execnet", "rpyc", "mitogen")

#: Short names for the table rows (the module docstring and the header say what each does).
NAMES = {
    ("aiopushy", "local"): "aiopushy Group",
    ("aiopushy", "ssh"): "aiopushy Group",
    ("asyncio", "local"): "bare asyncio subprocess",
    ("asyncssh", "ssh"): "bare asyncssh",
    ("execnet", "local"): "execnet popen",
    ("execnet", "ssh"): "execnet ssh",
    ("rpyc", "local"): "RPyC stdio (threads)",
    ("rpyc", "ssh"): "RPyC zerodeploy (threads)",
    ("mitogen", "local"): "Mitogen local (threads)",
    ("mitogen", "ssh"): "Mitogen ssh (threads)",
}
#: What each system does, for the header.
LEGEND = {
    "local": (
        'aiopushy Group: Group(["local:"] * N, limit=limit), then group.run(getpid)',
        "bare asyncio subprocess (the floor): create_subprocess_exec(python, -S, -c, getpid)",
        "execnet popen: Group().makegateway('popen//python=...'), then remote_exec(getpid)",
        "RPyC stdio: a classic server on stdio per host (as connect_subproc), threads",
        "Mitogen local: Router.local(), then context.call(os.getpid), threads",
    ),
    "ssh": (
        "aiopushy Group: Group(ssh:ADDRESS:PORT targets, limit=limit) on asyncssh, then run",
        "bare asyncssh (the floor): asyncssh.connect + create_process(python -S -c getpid)",
        "execnet ssh: makegateway('ssh=ADDRESS//python=...//ssh_config=FILE')",
        "RPyC zerodeploy: DeployedServer(SshMachine(ADDRESS)).classic_connect(), threads",
        "Mitogen ssh: Router.ssh(hostname=ADDRESS, ssh_args=[-F, FILE]), threads",
    ),
}
#: What each peer needs, to report it skipped rather than fail (the worker checks too).
MODULES = {"asyncssh": "asyncssh", "execnet": "execnet", "rpyc": "rpyc", "mitogen": "mitogen"}

#: The issue's targets: aiopushy's wall time within 2x of bare asyncssh; faster than
#: every peer; at most this many MiB of controller memory per session.
SSH_FLOOR_TARGET = 2.0
PEER_TARGET = 1.0
MEMORY_TARGET = 0.25
MIB = "MiB"


@dataclass(frozen=True)
class FanoutSettings:
    """How much to measure."""

    name: str
    #: (N, rounds, peer rounds), locally and over ssh: aiopushy and the floor are
    #: measured in every round, the peers (several times slower, and far from the
    #: targets either way) in the first ``peer rounds`` only, to keep the run short.
    local: tuple[tuple[int, int, int], ...]
    ssh: tuple[tuple[int, int, int], ...]
    limit: int  # hosts connecting at once, for every system
    timeout: float  # seconds for one sample's connect (and again for its close)
    #: ((system, where), largest N measured, why not beyond)
    skip_above: tuple[tuple[tuple[str, str], int, str], ...] = ()


RPYC_SSH_TOO_SLOW = (
    "4 ssh logins per host (shell, copy, server, tunnel): minutes per sample, over the time budget"
)

FULL = FanoutSettings(
    "full",
    local=((50, 3, 3), (100, 3, 2), (200, 3, 1)),
    ssh=((50, 2, 2), (100, 2, 1), (200, 2, 1)),
    limit=32,
    timeout=600.0,
    skip_above=((("rpyc", "ssh"), 50, RPYC_SSH_TOO_SLOW),),
)
QUICK = FanoutSettings("quick", local=((5, 1, 1),), ssh=((4, 1, 1),), limit=32, timeout=60.0)

#: Seconds a worker may take beyond its two phases (start-up, imports, warm-up) before
#: it is killed.
WORKER_SLACK = 120.0


# -- workers ------------------------------------------------------------------------------


def not_installed(system: str, where: str) -> str | None:
    module = MODULES.get(system)
    if module is not None and importlib.util.find_spec(module) is None:
        return "not installed"
    if (system, where) == ("rpyc", "ssh") and importlib.util.find_spec("plumbum") is None:
        return "plumbum not installed (zerodeploy needs it)"
    if (system, where) == ("rpyc", "ssh") and shutil.which("scp") is None:
        return "scp not installed (zerodeploy copies rpyc with it)"
    return None


def run_worker(
    system: str, n: int, where: str, python: str, settings: FanoutSettings, fleet: Path | None
) -> dict[str, Any]:
    """One sample in a fresh controller process; its JSON line, as a dict."""
    argv = [
        sys.executable,
        "-m",
        "benchmarks.fanout_worker",
        system,
        str(n),
        where,
        "--python",
        python,
        "--limit",
        str(settings.limit),
        "--timeout",
        str(settings.timeout),
    ]
    if fleet is not None:
        argv += ["--fleet", str(fleet)]
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, to kill it and its children
    )
    try:
        stdout, stderr = process.communicate(timeout=2 * settings.timeout + WORKER_SLACK)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise BenchmarkError(f"{system} N={n} {where}: the worker did not finish") from None
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if process.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        raise BenchmarkError(
            f"{system} N={n} {where}: the worker exited with {process.returncode}:\n{tail}"
        )
    lines = stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError) as exc:
        raise BenchmarkError(f"{system} N={n} {where}: no result in {stdout!r}") from exc
    return result


# -- measuring ----------------------------------------------------------------------------


def name(system: str, where: str, n: int) -> str:
    """A system's row in the tables (unique across N, as the JSON keys by it)."""
    return f"{NAMES[system, where]} N={n}"


def scenario_id(where: str, n: int) -> str:
    return f"fanout_{where}_{n}"


def measure(
    where: str, python: str, settings: FanoutSettings, fleet: Path | None
) -> dict[str, Any]:
    """Every (system, N) of one transport; the results, as written by ``--json``."""
    systems = LOCAL_SYSTEMS if where == "local" else SSH_SYSTEMS
    sizes = settings.local if where == "local" else settings.ssh
    limits = {key: (largest, why) for key, largest, why in settings.skip_above}
    wall: dict[str, list[float]] = {}
    memory: dict[str, list[float]] = {}
    close: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    rss_before: dict[str, list[int]] = {}
    skipped: dict[str, dict[str, str]] = {}  # scenario id -> system name -> reason
    unavailable = {system: why for system in systems if (why := not_installed(system, where))}
    started = time.perf_counter()
    for n, rounds, peer_rounds in sizes:
        scenario = scenario_id(where, n)
        for number in range(rounds):
            progress(f"fanout {where}: N={n}, round {number + 1} of {rounds}...")
            for system in systems:
                row = name(system, where, n)
                largest, why = limits.get((system, where), (math.inf, ""))
                if system in unavailable or n > largest:
                    reason = unavailable.get(system, f"not measured above N={largest}: {why}")
                    skipped.setdefault(scenario, {})[row] = reason
                    continue
                if row in skipped.get(scenario, {}) or (system in PEERS and number >= peer_rounds):
                    continue
                result = run_worker(system, n, where, python, settings, fleet)
                if "skipped" in result:
                    skipped.setdefault(scenario, {})[row] = result["skipped"]
                    unavailable[system] = result["skipped"]
                    continue
                wall.setdefault(row, []).append(result["wall"])
                memory.setdefault(row, []).append(result["mib_per_session"])
                close.setdefault(row, []).append(result["close"])
                cpu.setdefault(row, []).append(result["controller_cpu"])
                rss_before.setdefault(row, []).append(result["rss_before"])
    elapsed = time.perf_counter() - started
    for n, _, _ in sizes:
        if name("aiopushy", where, n) not in wall:
            raise BenchmarkError(f"aiopushy was not measured at N={n} {where}")

    scenarios = [
        (
            scenario_id(where, n),
            f"fan-out {where}, N={n}",
            tuple(name(s, where, n) for s in systems if name(s, where, n) in wall),
        )
        for n, _, _ in sizes
    ]
    comparisons = [
        Comparison(pushy, other, target)
        for n, _, _ in sizes
        for pushy in [name("aiopushy", where, n)]
        for system, target in [
            (FLOORS[where], SSH_FLOOR_TARGET if where == "ssh" else None),
            *((peer, PEER_TARGET) for peer in PEERS),
        ]
        if (other := name(system, where, n)) in wall
    ]
    meta = {
        "where": where,
        "remote_argv": [python, "-S"],
        "limit": settings.limit,
        "sizes": [{"n": n, "rounds": r, "peer_rounds": p} for n, r, p in sizes],
        "seconds": elapsed,
        "skipped": skipped,
        "wall": "connect + one call on all N sessions; closing is timed separately",
    }
    results = report(python, settings, wall, meta, scenarios, comparisons)
    results["memory"] = memory_report(memory, rss_before, scenarios, comparisons)
    results["close"] = {
        "unit": "s",
        "systems": {system: core_summarize(samples) for system, samples in close.items()},
    }
    results["controller_cpu"] = {
        "unit": "s of CPU in the controller process during connect + call",
        "systems": {system: core_summarize(samples) for system, samples in cpu.items()},
    }
    return results


def memory_report(
    memory: dict[str, list[float]],
    rss_before: dict[str, list[int]],
    scenarios: Sequence[tuple[str, str, Sequence[str]]],
    comparisons: Sequence[Comparison],
) -> dict[str, Any]:
    """Controller memory per session, in MiB: the JSON's ``"memory"`` key."""
    stats = {system: core_summarize(samples) for system, samples in memory.items()}
    for system, samples in rss_before.items():
        stats[system]["rss_before_mib"] = statistics.median(samples) / 2**20
    ratios = []
    for comparison in comparisons:
        baseline = stats[comparison.baseline]["median"]
        ratio = stats[comparison.system]["median"] / baseline if baseline > 0 else None
        ratios.append(
            {"system": comparison.system, "baseline": comparison.baseline, "ratio": ratio}
        )
    targets = [
        {
            "system": system,
            "target": MEMORY_TARGET,
            "met": stats[system]["median"] <= MEMORY_TARGET,
        }
        for _, _, systems in scenarios
        for system in systems
        if system.startswith("aiopushy")
    ]
    return {
        "unit": "MiB per session",
        "scenarios": {
            scenario: {"label": label, "systems": {system: stats[system] for system in systems}}
            for scenario, label, systems in scenarios
        },
        "comparisons": ratios,
        "targets": targets,
    }


# -- tables --------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    """``core.table_rows`` of the wall times, with a "skipped: reason" row per skipped system
    at the end of its scenario."""
    rows = table_rows(results)
    scenario_of = {scenario["label"]: key for key, scenario in results["scenarios"].items()}
    skipped = results["meta"]["skipped"]
    out = rows[:1]

    def add_skipped(label: str) -> None:
        for system, reason in skipped.get(scenario_of[label], {}).items():
            out.append([label, system, "skipped", "", f"skipped: {reason}", "", ""])

    current = None
    for row in rows[1:]:
        if row[0] and row[0] != current:  # a continuation row has no scenario cell
            if current is not None:
                add_skipped(current)
            current = row[0]
        out.append(row)
    if current is not None:
        add_skipped(current)
    return markdown(out)


def memory_table(results: dict[str, Any]) -> str:
    """Controller memory per session, one row per system and N."""
    memory = results["memory"]
    by_system: dict[str, list[dict[str, Any]]] = {}
    for comparison in memory["comparisons"]:
        by_system.setdefault(comparison["system"], []).append(comparison)
    targets = {t["system"]: t for t in memory["targets"]}
    rows = [["scenario", "system", "MiB/session", "spread (p10-p90)", "ratio", "target", "met"]]
    skipped = results["meta"]["skipped"]
    for scenario_key, scenario in memory["scenarios"].items():
        label = scenario["label"]
        for system, stats in scenario["systems"].items():
            cells = [
                label,
                system,
                f"{stats['median']:.3f} {MIB}",
                f"{stats['p10']:.3f}-{stats['p90']:.3f} {MIB}",
            ]
            lines = [
                ["-" if c["ratio"] is None else f"{c['ratio']:.2f}x vs {c['baseline']}", "", ""]
                for c in by_system.get(system, [])
            ] or [["baseline", "", ""]]
            if (target := targets.get(system)) is not None:
                lines[0][1:] = [
                    f"<= {target['target']:g} {MIB}",
                    "met" if target["met"] else "not met",
                ]
            for line in lines:
                rows.append([*cells, *line])
                cells = ["", "", "", ""]
        for system, reason in skipped.get(scenario_key, {}).items():
            rows.append([label, system, "skipped", "", f"skipped: {reason}", "", ""])
    return markdown(rows)


def header(where: str, python: str, settings: FanoutSettings) -> str:
    env = environment(python)
    sizes = settings.local if where == "local" else settings.ssh
    rounds = ", ".join(
        f"N={n} x {r} rounds" + (f" ({p} for the peers)" if p < r else "") for n, r, p in sizes
    )
    return "\n".join(
        [
            f"## fan-out, {where}: connect to N interpreters, one call on each, close",
            "",
            f"Python {env['python']}, {env['cpu_count']} CPUs; aiopushy {env['aiopushy']}; "
            f"remote interpreter: {python} -S for every system",
            f"{settings.name} run: {rounds}; at most {settings.limit} hosts connecting at once "
            "for every system; each sample in a fresh controller process, systems "
            "alternating within each round",
            "",
            *(f"- {line}" for line in LEGEND[where]),
        ]
    )


# -- the run -----------------------------------------------------------------------------------


def write_fleet(fleet: Any, directory: Path) -> Path:
    """The fleet's description for the workers, with an ssh config for the peers."""
    config = directory / "ssh_config"
    config.write_text(
        "Host *\n"
        f"  Port {fleet.port}\n"
        f"  User {fleet.username}\n"
        f"  IdentityFile {fleet.keys.user_key_path}\n"
        "  IdentitiesOnly yes\n"
        "  IdentityAgent none\n"
        f"  UserKnownHostsFile {fleet.keys.known_hosts}\n"
        "  GlobalKnownHostsFile /dev/null\n"
        "  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n"
        "  ControlMaster no\n"
        "  ControlPath none\n"
        "  LogLevel ERROR\n"
    )
    path = directory / "fleet.json"
    description = {
        "port": fleet.port,
        "username": fleet.username,
        "addresses": fleet.live,
        "user_key": str(fleet.keys.user_key_path),
        "known_hosts": str(fleet.keys.known_hosts),
        "ssh_config": str(config),
    }
    path.write_text(json.dumps(description), encoding="utf-8")
    return path


def run_ssh(python: str, settings: FanoutSettings) -> dict[str, Any]:
    from tests.sshservers import openssh_fleet

    hosts = max(n for n, _, _ in settings.ssh)
    progress(f"fanout ssh: starting sshd for {hosts} hosts...")
    with (
        tempfile.TemporaryDirectory(prefix="aiopushy-bench-fleet-") as directory,
        contextlib.ExitStack() as stack,
    ):
        try:
            fleet = stack.enter_context(openssh_fleet(Path(directory), hosts))
        except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            raise BenchmarkError(f"cannot start the sshd fleet: {exc}") from exc
        return measure("ssh", python, settings, write_fleet(fleet, Path(directory)))


def run_and_report(python: str, quick: bool, ssh: bool) -> dict[str, Any]:
    """Measure, print the header and tables; the results for the JSON (``"fanout"``).

    ``{"local": ..., "ssh": ...}``; ``"ssh"`` only with ``ssh``, and ``{"skipped":
    reason}`` without sshd.
    """
    settings = QUICK if quick else FULL
    results: dict[str, Any] = {}
    print(flush=True)
    print(header("local", python, settings), flush=True)
    results["local"] = measure("local", python, settings, None)
    print_tables(results["local"])
    if ssh:
        from tests.needs import sshd_missing

        print(flush=True)
        reason = sshd_missing(client=True)
        if reason is not None:
            print(f"ssh fan-out skipped: {reason}", flush=True)
            results["ssh"] = {"skipped": reason}
        else:
            print(header("ssh", python, settings), flush=True)
            results["ssh"] = run_ssh(python, settings)
            print_tables(results["ssh"])
    return results


def print_tables(results: dict[str, Any]) -> None:
    seconds = results["meta"]["seconds"]
    print(f"(measured in {seconds:.0f} s)", flush=True)
    print()
    print("Wall time, connect + one call on all N:")
    print()
    print(table(results))
    print()
    print("Controller memory per session, (RSS with all N open - RSS before) / N:")
    print()
    print(memory_table(results), flush=True)


# -- command line ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = family_parser(
        "python -m benchmarks.fanout",
        "Fan-out: N interpreters at once with aiopushy, the floors and the peers.",
        "tiny N, one round: a smoke run",
        "the interpreter to start (with -S) for every system (default: this one)",
    )
    parser.add_argument(
        "--ssh", action="store_true", help="also fan out over ssh to a fleet of local sshd"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print("# aiopushy fan-out benchmarks", flush=True)
    return run_family(
        "benchmarks.fanout",
        lambda: run_and_report(args.python, args.quick, args.ssh),
        args.json,
    )


if __name__ == "__main__":
    sys.exit(main())
