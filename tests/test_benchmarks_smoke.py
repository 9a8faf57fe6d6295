"""Smoke runs of ``python -m benchmarks --quick [--ssh]``: they run and report; speed is not
judged."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .sshservers import SSHD

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("raw_ping_pong", "aiopushy_round_trip", "baseline_startup", "aiopushy_connect")
SSH_SCENARIOS = ("ssh_baseline_startup", "ssh_connect", "ssh_raw_round_trip", "ssh_round_trip")


def run_quick(out, *options):
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", *options, "--json", str(out)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
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
    if SSHD is None or shutil.which("ssh") is None:
        if os.environ.get("CI"):
            pytest.fail("sshd and ssh are required in CI (apt-get install openssh-server)")
        pytest.skip("OpenSSH's sshd or ssh is not installed (apt-get install openssh-server)")
    completed, results = run_quick(tmp_path / "results.json", "--ssh")
    assert "## ssh on loopback" in completed.stdout
    assert_positive(results, SCENARIOS)
    assert_positive(results["ssh"], SSH_SCENARIOS)
    assert results["ssh"]["comparisons"]
