"""Smoke runs of ``python -m benchmarks --quick [--ssh]``: they run and report; speed is not
judged."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .needs import require, sshd_missing
from .sshservers import require_sshd

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("raw_ping_pong", "aiopushy_round_trip", "baseline_startup", "aiopushy_connect")
SSH_SCENARIOS = ("ssh_baseline_startup", "ssh_connect", "ssh_raw_round_trip", "ssh_round_trip")


def run_quick(out, *options, module="benchmarks", timeout=300):
    completed = subprocess.run(
        [sys.executable, "-m", module, "--quick", *options, "--json", str(out)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert completed.returncode == 0, completed.stderr
    assert "| scenario" in completed.stdout
    return completed, json.loads(out.read_text(encoding="utf-8"))


def assert_positive(results, scenarios):
    for scenario in scenarios:
        systems = results["scenarios"][scenario]["systems"]
        assert systems, scenario
        for system, stats in systems.items():
            assert stats["samples"], system
            assert all(sample > 0 for sample in stats["samples"]), system
            for key in ("median", "p10", "p90", "min", "max"):
                assert stats[key] > 0, (system, key)
    for comparison in results["comparisons"]:
        assert comparison["ratio"] > 0, comparison


def test_quick_benchmark_run_writes_all_scenarios(tmp_path):
    _, results = run_quick(tmp_path / "results.json")
    assert_positive(results, SCENARIOS)
    assert "ssh" not in results


def test_quick_ssh_benchmark_run_writes_the_ssh_scenarios(tmp_path):
    require_sshd(client=True)
    completed, results = run_quick(tmp_path / "results.json", "--ssh")
    assert "## ssh on loopback" in completed.stdout
    assert_positive(results, SCENARIOS)
    assert_positive(results["ssh"], SSH_SCENARIOS)
    assert results["ssh"]["comparisons"]


def test_quick_fanout_benchmark_run_measures_every_installed_system(tmp_path):
    options = ["--ssh"]
    if (reason := sshd_missing(client=True)) is not None:
        if os.environ.get("CI"):
            require(reason)  # fails, naming what is missing
        options = []  # the local fan-out only
    _, results = run_quick(
        tmp_path / "fanout.json", *options, module="benchmarks.fanout", timeout=120
    )
    assert set(results) == {"local", *(["ssh"] if options else [])}
    for where, family in results.items():
        skipped = family["meta"]["skipped"]
        for scenario_id, scenario in family["scenarios"].items():
            systems = scenario["systems"]
            memory = family["memory"]["scenarios"][scenario_id]["systems"]
            # aiopushy, the floor and the three peers: each measured or reported skipped
            assert len(systems) + len(skipped.get(scenario_id, {})) == 5, (where, scenario_id)
            assert any(system.startswith("aiopushy") for system in systems), where
            assert not any(
                system.startswith("aiopushy") for system in skipped.get(scenario_id, {})
            )
            assert set(memory) == set(systems), where
            for system, stats in systems.items():
                assert stats["samples"] and all(s > 0 for s in stats["samples"]), system
                for key in ("median", "p10", "p90", "min", "max"):
                    assert stats[key] > 0, (system, key)
                # RSS growth may round to zero pages at tiny N, but never goes far negative
                assert memory[system]["median"] > -1.0, system
                assert memory[system]["rss_before_mib"] > 0, system
                assert family["close"]["systems"][system]["median"] > 0, system
        for comparison in family["comparisons"]:
            assert comparison["ratio"] > 0, comparison


def test_quick_peers_benchmark_run_measures_aiopushy_and_a_peer(tmp_path):
    _, results = run_quick(tmp_path / "peers.json", module="benchmarks.peers", timeout=120)
    # every system not skipped has positive figures, and so has every comparison
    assert_positive(results, list(results["scenarios"]))
    systems = [s for scenario in results["scenarios"].values() for s in scenario["systems"]]
    assert not any(system.startswith("aiopushy") for system in results["skipped"])
    for scenario_id in ("peers_connect", "peers_round_trip", "peers_bulk_bytes"):
        scenario = results["scenarios"][scenario_id]["systems"]
        assert any(system.startswith("aiopushy") for system in scenario), scenario_id
    peers = results["meta"]["peers"]
    measured = [name for name, peer in peers.items() if peer["skipped"] is None]
    assert measured, peers
    for name in measured:
        assert any(system.startswith(f"{name}: ") for system in systems), name
    for entry in results["throughput"].values():
        assert entry["mib_per_s"] > 0, entry
    assert results["bootstrap"]["aiopushy"]["total"] > 0


def test_quick_sync_facade_benchmark_run_compares_with_rpyc(tmp_path):
    completed, results = run_quick(
        tmp_path / "sync.json", module="benchmarks.syncfacade", timeout=120
    )
    assert_positive(results, ["method", "len"])
    assert {c["system"] for c in results["comparisons"]} == {
        "aiopushy.sync: remote.count(None)",
        "aiopushy.sync: len(remote)",
    }
    # one request per operation for the facade; RPyC needs two for the method call
    assert results["round_trips"] == {
        "aiopushy.sync: remote.count(None)": 1,
        "aiopushy.sync: len(remote)": 1,
        "RPyC classic: remote.count(None)": 2,
        "RPyC classic: len(remote)": 1,
    }
    assert "round trips per call" in completed.stdout


def test_quick_forwarding_benchmark_run_compares_with_mitogen(tmp_path):
    completed, results = run_quick(
        tmp_path / "forwarding.json", module="benchmarks.forwarding", timeout=180
    )
    assert_positive(results, ["connect", "import", "connect via a relay", "import via a relay"])
    for system in ("aiopushy", "Mitogen"):
        assert results["bytes_read"][system]["median"] > results["package"]["bytes"] / 20
    # Via a relay, the package crossed the link to it once, not once per interpreter (5).
    relay_read = results["relay_bytes_read"]["aiopushy"]["median"]
    assert 0 < relay_read < results["bytes_read"]["aiopushy"]["median"] / 3
    assert "while importing" in completed.stdout
    assert "the relay read" in completed.stdout


def test_quick_eventloops_benchmark_run_compares_uvloop_with_asyncio(tmp_path):
    pytest.importorskip("uvloop")
    completed, results = run_quick(
        tmp_path / "eventloops.json", module="benchmarks.eventloops", timeout=180
    )
    assert_positive(results, ["round_trip", "gather", "pushy_gather", "connect"])
    systems = results["scenarios"]["round_trip"]["systems"]
    assert set(systems) == {"aiopushy on asyncio: round_trip", "aiopushy on uvloop: round_trip"}
    assert "aiopushy on uvloop" in completed.stdout
