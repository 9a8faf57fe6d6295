"""What is shipped to a remote runs on Python 3.8: nothing in it needs a newer version.

The suite runs remotes on this CPython and on PyPy 3.9; no CPython 3.8 is at hand on the
test machines, so ``vermin`` reads every shipped source (the remote packages, the loader
and stage two of the bootstrap) for the language features and standard library names it
uses, and the minimum version each needs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiopushy
from aiopushy import _bootstrap
from aiopushy._protocol.framing import REMOTE_MAX_FRAME_SIZE


def vermin(*paths: Path) -> subprocess.CompletedProcess[str]:
    """Run ``vermin`` on ``paths`` for a target of 3.8 and up."""
    run = "import sys, vermin; sys.exit(vermin.main())"
    return subprocess.run(
        [sys.executable, "-c", run, "--no-tips", "--violations", "-t=3.8-", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_shipped_code_needs_nothing_newer_than_python_3_8(tmp_path: Path) -> None:
    root = Path(aiopushy.__file__).parent
    shipped = [root / package for package in _bootstrap.SHIPPED_PACKAGES]
    (tmp_path / "loader.py").write_text(_bootstrap.LOADER)
    (tmp_path / "stage_two.py").write_text(_bootstrap.stage_two(REMOTE_MAX_FRAME_SIZE))
    completed = vermin(*shipped, tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    # Something was read: the shipped packages' files, and the two bootstrap stages.
    checked = len(list(tmp_path.glob("*.py"))) + sum(len(list(p.glob("*.py"))) for p in shipped)
    assert checked > 15


def test_the_check_finds_what_3_8_lacks(tmp_path: Path) -> None:
    """The same check fails on code that needs 3.9 (so a pass above means something)."""
    (tmp_path / "new.py").write_text("import math\nprint(math.lcm(4, 6), 'a'.removeprefix('a'))\n")
    completed = vermin(tmp_path)
    assert completed.returncode != 0
    assert "removeprefix" in completed.stdout
