"""The results of the peers family: the JSON (``results_of``: ``core.report`` of the
systems measured, with bulk throughput, bootstrap sizes and what was skipped) and the
header and tables printed."""

from __future__ import annotations

from typing import Any

from ..core import Comparison, environment, markdown, report
from ..systems.registry import PEERS, version
from .common import Run
from .scenarios import (
    BULK_BASELINE,
    BULK_BASELINES,
    BULK_BYTES,
    BULK_FILES,
    BULK_TARGET,
    MIB,
    RAW_BULK,
    RAW_CAT,
    TWICE,
    PeerSettings,
    comparisons,
    scenarios,
)


def results_of(
    run: Run,
    samples: dict[str, list[float]],
    versions: dict[str, dict[str, Any]],
    bootstrap: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The JSON results: ``core.report`` of the systems measured, plus bulk throughput,
    bootstrap sizes and what was skipped."""
    samples = {s: v for s, v in samples.items() if s not in run.skipped and v}
    labelled = {run.label(system): values for system, values in samples.items()}
    table_scenarios = [
        (scenario, label, tuple(run.label(s) for s in systems if s in samples))
        for scenario, label, systems in scenarios(run.settings)
    ]
    found = [
        Comparison(run.label(c.system), run.label(c.baseline), c.target)
        for c in comparisons()
        if c.system in samples and c.baseline in samples
    ]
    meta = {
        "peers": versions,
        "round_trips_counted": {run.label(s): n for s, n in run.round_trips.items()},
        **run.facts,
    }
    results = report(run.python, run.settings, labelled, meta, table_scenarios, found)
    results["skipped"] = dict(run.skipped)
    results["throughput"] = throughput(run, results)
    results["bootstrap"] = bootstrap
    return results


def throughput(run: Run, results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """MiB/s of every bulk system (payload bytes moved over the median time), against
    its raw baseline and the raw ``cat`` pipe."""
    medians: dict[str, float] = {}
    for scenario in (BULK_BASELINE, BULK_BYTES, BULK_FILES):
        for system, stats in results["scenarios"][scenario]["systems"].items():
            medians[system] = stats["median"]
    rates = {}
    for system, base in (*((s, None) for s in RAW_BULK), *BULK_BASELINES.items()):
        label = run.label(system)
        if label not in medians:
            continue
        moved = run.bulk_sizes[system] * (2 if system in TWICE else 1)
        rates[label] = {
            "moved_bytes": moved,
            "mib_per_s": moved / MIB / medians[label],
            "baseline": base,
        }
    cat = rates.get(RAW_CAT, {}).get("mib_per_s")
    for entry in rates.values():
        base = entry["baseline"]
        own = rates.get(base, {}).get("mib_per_s") if base else None
        entry["of_baseline"] = entry["mib_per_s"] / own if own else None
        entry["of_raw_cat"] = entry["mib_per_s"] / cat if cat else None
        entry["target"] = BULK_TARGET if base else None
        entry["met"] = (
            None if entry["of_baseline"] is None else entry["of_baseline"] >= BULK_TARGET
        )
    return rates


def throughput_table(results: dict[str, Any]) -> str:
    """The ``throughput`` of the results as a Markdown table."""
    rows = [["bulk system", "moved", "MiB/s", "vs its raw baseline", "vs raw cat", "goal"]]
    for system, entry in results["throughput"].items():
        of_base, of_cat = entry["of_baseline"], entry["of_raw_cat"]
        goal = "baseline" if entry["baseline"] is None else "-"
        if entry["met"] is not None:
            goal = f">= {entry['target']:.0%}: {'met' if entry['met'] else 'not met'}"
        rows.append(
            [
                system,
                f"{entry['moved_bytes'] // MIB} MiB",
                f"{entry['mib_per_s']:.0f}",
                "-" if of_base is None else f"{of_base:.0%} of {entry['baseline']}",
                "-" if of_cat is None else f"{of_cat:.0%}",
                goal,
            ]
        )
    return markdown(rows)


def bootstrap_table(results: dict[str, Any]) -> str:
    """The ``bootstrap`` sizes of the results as a Markdown table."""
    rows = [["bootstrap", "command line (B)", "streamed (B)", "total (B)", "what"]]
    for system, entry in results["bootstrap"].items():
        rows.append(
            [
                system,
                f"{entry['command_line']:,}",
                f"{entry['streamed']:,}",
                f"{entry['total']:,}",
                entry["note"],
            ]
        )
    return markdown(rows)


def header(python: str, settings: PeerSettings) -> str:
    """The heading printed before the family's figures: versions, machine, settings."""
    env = environment(python)
    versions = []
    for name in PEERS:
        try:
            versions.append(f"{name} {version(name)}")
        except Exception:
            versions.append(f"{name} (not installed)")
    return "\n".join(
        [
            f"## aiopushy {env['aiopushy']} and its peers ({', '.join(versions)})",
            "",
            f"Python {env['python']} ({env['implementation']}), {env['cpu_count']} CPUs, "
            f"{env['platform']}; remote interpreter: {python}",
            f"{settings.name} run: round trips {settings.rounds} rounds x {settings.batch} "
            f"calls, connect {settings.startup_rounds} rounds, {settings.concurrent:,} calls "
            f"in flight x {settings.concurrent_rounds}, bulk {settings.bulk_size // MIB} MiB x "
            f"{settings.bulk_rounds}, slow link {settings.slow_rounds} rounds x "
            f"{settings.slow_batch} chains (at most {settings.budget:g} s per scenario, bulk "
            f"{settings.bulk_budget:g} s, after 3 rounds); systems alternating within each "
            "round; peers run in a worker thread, timed inside it",
        ]
    )
