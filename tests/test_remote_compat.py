"""What is shipped to a remote runs on Python 3.8: nothing in it needs a newer version.

The suite runs remotes on this CPython and on PyPy 3.9. ``vermin`` reads every shipped
source (the remote packages, the loader and stage two of the bootstrap) for the language
features and standard library names it uses, and the minimum version each needs. Where
older CPythons are installed (``pythonX.Y`` on the path, or under pyenv), a session also
runs on each of them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


def _old_pythons() -> list[str]:
    """Installed CPythons from 3.8 up to this one, by version."""
    found = []
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for minor in range(8, sys.version_info[1]):
        candidates = [shutil.which(f"python3.{minor}")]
        candidates += sorted(map(str, pyenv.glob(f"3.{minor}.*/bin/python3.{minor}")))
        for candidate in candidates:
            if candidate and "/shims/" not in candidate and os.access(candidate, os.X_OK):
                found.append(candidate)
                break
    return found


OLD_PYTHONS = _old_pythons()


def _a_remote_function(values: list[int]) -> dict[str, int]:
    """Defined on the remote from its source: a call with values both ways."""
    return {"sum": sum(values), "count": len(values)}


@pytest.mark.skipif(not OLD_PYTHONS, reason="no older CPython installed")
@pytest.mark.parametrize("python", OLD_PYTHONS)
def test_a_session_runs_on_an_older_cpython(python: str) -> None:
    async def run() -> None:
        async with aiopushy.connect("local:", python=python, timeout=30) as conn:
            version = await conn.modules.sys.version_info[:2]
            assert tuple(version) == tuple(
                int(part) for part in Path(python).name[len("python") :].split(".")
            )
            pid = conn.info["pid"]
            assert (
                await aiopushy.gather(*(conn.modules.os.getpid() for _ in range(50))) == [pid] * 50
            )
            blob = os.urandom(3 * 1024 * 1024)  # read into its own buffer, in place
            assert await conn.modules.builtins.len(blob) == len(blob)
            function = await conn.compile(_a_remote_function)
            assert await function([1, 2, 3]) == {"sum": 6, "count": 3}
            with pytest.raises(ZeroDivisionError):
                await conn.eval("1 / 0")

    asyncio.run(run())
