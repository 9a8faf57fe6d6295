"""Smoke run of ``python -m benchmarks --quick``: it runs and reports; speed is not judged."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("raw_ping_pong", "aiopushy_round_trip", "baseline_startup", "aiopushy_connect")


def test_quick_benchmark_run_writes_all_scenarios(tmp_path):
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "| scenario" in completed.stdout

    results = json.loads(out.read_text(encoding="utf-8"))
    for scenario in SCENARIOS:
        systems = results["scenarios"][scenario]["systems"]
        assert systems, scenario
        for system, stats in systems.items():
            assert stats["samples"], system
            assert all(sample > 0 for sample in stats["samples"]), system
            for key in ("median", "p10", "p90", "min", "max"):
                assert stats[key] > 0, (system, key)
    for comparison in results["comparisons"]:
        assert comparison["ratio"] > 0, comparison
