"""Starting a connection: the time to spawn, bootstrap and make a first call
(``os.getpid()``; closing is not timed), and the bytes each system puts on the command
line and streams to the child (its bootstrap size)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiopushy import _bootstrap
from aiopushy._protocol.framing import REMOTE_MAX_FRAME_SIZE

from ..core import OPERATION_TIMEOUT, PYTHON_S, Measure, alternate, time_connect, time_spawn
from ..systems import registry
from ..systems.base import argument_bytes
from ..systems.execnet import EXECNET, execnet_bootstrap
from ..systems.mitogen import MITOGEN, mitogen_bootstrap
from ..systems.registry import PEERS
from ..systems.rpyc import RPYC, rpyc_bootstrap
from .common import Run, in_thread
from .scenarios import A_CONNECT, AIOPUSHY, M_CONNECT, R_CONNECT, X_CONNECT


async def measure_connect(run: Run) -> dict[str, list[float]]:
    """The connect scenario: ``python -S -c pass``, aiopushy and each peer, alternately."""
    python, settings = run.python, run.settings

    async def python_s() -> dict[str, float]:
        return {PYTHON_S: await time_spawn([python, "-S", "-c", "pass"])}

    async def pushy() -> dict[str, float]:
        _, called = await time_connect(python)
        return {A_CONNECT: called}

    measures: list[Measure] = [python_s, pushy]
    for peer, system in zip(PEERS, (X_CONNECT, R_CONNECT, M_CONNECT), strict=True):
        if peer in run.available:
            measures.append(
                run.guard(
                    system, lambda p=peer: in_thread(registry.time_connect, p, python, run.hub)
                )
            )
    for _ in range(settings.warmup_starts):
        for measure in measures:
            await asyncio.wait_for(measure(), OPERATION_TIMEOUT)
    samples, rounds = await alternate(measures, settings.startup_rounds, settings.budget)
    run.facts["connect"] = {"rounds": rounds, "warmup_rounds": settings.warmup_starts}
    return samples


async def measure_bootstrap(run: Run) -> dict[str, dict[str, Any]]:
    """Bytes each system puts on the command line (after the interpreter) and streams to
    the child before the first call is answered."""
    python = run.python
    command = _bootstrap.command([python])[1:]
    sizes: dict[str, dict[str, Any]] = {
        AIOPUSHY: {
            "command_line": argument_bytes(command),
            "streamed": len(_bootstrap.payload(REMOTE_MAX_FRAME_SIZE)),
            "note": "stage two + marshalled code (no docstrings) + sources, each zlib",
        }
    }
    probes: dict[str, Callable[[], dict[str, Any]]] = {
        EXECNET: lambda: execnet_bootstrap(python),
        MITOGEN: lambda: mitogen_bootstrap(python, run.hub),
        RPYC: rpyc_bootstrap,
    }
    for name, probe in probes.items():
        if name not in run.available or name in run.skipped:
            continue
        try:
            sizes[name] = await in_thread(probe)
        except Exception as exc:
            run.skip(f"{name} bootstrap size", exc)
    for entry in sizes.values():
        entry["total"] = entry["command_line"] + entry["streamed"]
    return sizes
