"""``connect(site=...)``: when the remote runs ``site``.

By default (``"lazy"``) the interpreter starts with ``-S`` and runs ``site`` on its first
import that finds nothing, then looks again: installed packages stay importable, and
what ``.pth`` files do happens then, not at start-up.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import aiopushy as pushy

from .sshservers import Server

pytestmark = pytest.mark.anyio

STATE = "(__import__('sys').flags.no_site, 'site' in __import__('sys').modules)"
INSTALLED = "anyio"  # in the site-packages of the interpreter running the tests


async def test_lazy_by_default_and_installed_packages_still_import(
    anyio_backend: str,
) -> None:
    async with pushy.connect("local:", timeout=30) as conn:
        assert await conn.eval(STATE) == (1, False)
        assert await conn.eval("__import__('os').getpid()") == conn.info["pid"]
        assert await conn.eval(STATE) == (1, False)  # the standard library: no miss
        assert await conn.modules.anyio.__name__ == INSTALLED  # a miss: site, then found
        assert await conn.eval(STATE) == (1, True)
        purelib = sysconfig.get_paths()["purelib"]
        assert purelib in await conn.modules.sys.path
        # import forwarding still comes last, behind what site installed
        finders = await conn.eval("[type(f).__name__ for f in __import__('sys').meta_path]")
        assert finders[-2:] == ["SiteOnFirstMiss", "Finder"]


async def test_pth_files_run_at_the_first_miss(tmp_path: Path, anyio_backend: str) -> None:
    """A fresh venv whose site-packages holds a ``.pth`` file and a module: the line of
    the ``.pth`` runs at the first miss, not at start-up, and the module imports."""
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = str(venv / "bin" / "python")
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    packages = Path(purelib)
    (packages / "marker.pth").write_text("import os; os.environ['AIOPUSHY_PTH_RAN'] = '1'\n")
    (packages / "venvpkg.py").write_text("VALUE = 42\n")
    async with pushy.connect("local:", python=python, timeout=30) as conn:
        assert await conn.modules.os.environ.get("AIOPUSHY_PTH_RAN") is None
        assert await conn.modules.venvpkg.VALUE == 42
        assert await conn.modules.os.environ.get("AIOPUSHY_PTH_RAN") == "1"
    async with pushy.connect("local:", python=python, site=False, timeout=30) as conn:
        with pytest.raises(ModuleNotFoundError):
            await conn.modules.venvpkg.VALUE
        assert await conn.modules.os.environ.get("AIOPUSHY_PTH_RAN") is None


async def test_site_true_runs_it_at_start_up(anyio_backend: str) -> None:
    async with pushy.connect("local:", site=True, timeout=30) as conn:
        assert await conn.eval(STATE) == (0, True)
        assert await conn.modules.anyio.__name__ == INSTALLED


@pytest.mark.parametrize("how", ["site=False", "python -S"])
async def test_never_with_site_false_or_the_users_dash_s(how: str, anyio_backend: str) -> None:
    options = {"site": False} if how == "site=False" else {"python": [sys.executable, "-S"]}
    async with pushy.connect("local:", timeout=30, **options) as conn:  # type: ignore[arg-type]
        with pytest.raises(ModuleNotFoundError):
            await conn.modules.anyio.__name__
        assert await conn.eval(STATE) == (1, False)


def test_a_bad_value_is_refused() -> None:
    with pytest.raises(ValueError, match="site must be"):
        pushy.connect("local:", site="yes")
    with pytest.raises(ValueError, match="site must be"):
        pushy.connect("local:", site=1)  # type: ignore[arg-type]


async def test_lazy_on_every_interpreter_runs_site_on_a_miss(
    remote_python: str, anyio_backend: str
) -> None:
    async with pushy.connect("local:", python=remote_python, timeout=30) as conn:
        assert await conn.eval(STATE) == (1, False)
        with pytest.raises(ModuleNotFoundError):
            await conn.modules.no_such_module_anywhere.x
        assert await conn.eval(STATE) == (1, True)


async def test_lazy_over_a_real_sshd(openssh: Server, anyio_backend: str) -> None:
    """Through the ssh transport's command line (and its Python probe, with -S added)."""
    for python in (sys.executable, None):
        kwargs = openssh.connect_kwargs()
        async with pushy.connect("ssh:127.0.0.1", python=python, timeout=60, **kwargs) as conn:
            assert (await conn.eval(STATE))[0] == 1
            if python is not None:
                assert await conn.modules.anyio.__name__ == INSTALLED
                assert await conn.eval(STATE) == (1, True)
