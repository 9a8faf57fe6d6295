"""The event loop of aiopushy's own programs (the command line, the daemon): asyncio's
own, or uvloop (``pip install aiopushy[speed]``) with ``AIOPUSHY_LOOP=uvloop``.

uvloop is not the default even where it is installed, because it does not win here:
``python -m benchmarks.eventloops`` measured 0.92x asyncio's time for a round trip,
0.98x for 1,000 calls in flight, and 1.12x for connect + first call, which dominates a
fleet run (see ``docs/performance.rst``). The library itself runs on whatever loop its
caller runs.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

#: The environment variable that chooses the loop: ``asyncio`` (the default) or ``uvloop``.
LOOP_VARIABLE = "AIOPUSHY_LOOP"


def uses_uvloop() -> bool:
    """Whether aiopushy's programs run on uvloop here (``AIOPUSHY_LOOP=uvloop``).

    Raises:
        ValueError: ``AIOPUSHY_LOOP`` names another loop, or ``uvloop`` while it is not
            installed.
    """
    wanted = os.environ.get(LOOP_VARIABLE, "") or "asyncio"
    if wanted not in ("asyncio", "uvloop"):
        raise ValueError(f"{LOOP_VARIABLE} must be 'asyncio' or 'uvloop', not {wanted!r}")
    if wanted == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise ValueError(
            f"{LOOP_VARIABLE}=uvloop, but uvloop is not installed (pip install aiopushy[speed])"
        )
    return wanted == "uvloop"


def backend_options() -> dict[str, Any]:
    """``anyio.run``'s ``backend_options`` for the loop ``uses_uvloop`` chooses."""
    return {"use_uvloop": uses_uvloop()}
