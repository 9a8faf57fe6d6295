"""The event loop of aiopushy's own programs (the command line, the daemon): uvloop when
it is installed (``pip install aiopushy[speed]``), else asyncio's own.

The library itself runs on whatever loop its caller runs. ``AIOPUSHY_LOOP=asyncio`` in
the environment keeps asyncio's loop even when uvloop is installed.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

#: The environment variable that chooses the loop: ``asyncio``, or ``uvloop`` (the default
#: when it is installed).
LOOP_VARIABLE = "AIOPUSHY_LOOP"


def uses_uvloop() -> bool:
    """Whether aiopushy's programs run on uvloop here.

    Raises:
        ValueError: ``AIOPUSHY_LOOP`` names another loop, or ``uvloop`` while it is not
            installed.
    """
    wanted = os.environ.get(LOOP_VARIABLE, "")
    installed = importlib.util.find_spec("uvloop") is not None
    if wanted == "asyncio":
        return False
    if wanted == "uvloop" and not installed:
        raise ValueError(f"{LOOP_VARIABLE}=uvloop, but uvloop is not installed")
    if wanted not in ("", "uvloop"):
        raise ValueError(f"{LOOP_VARIABLE} must be 'asyncio' or 'uvloop', not {wanted!r}")
    return installed


def backend_options() -> dict[str, Any]:
    """``anyio.run``'s ``backend_options`` for the loop ``uses_uvloop`` chooses."""
    return {"use_uvloop": uses_uvloop()}
