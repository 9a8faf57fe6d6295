"""Shared fixtures: the asyncio backend, and sessions on every remote interpreter we test.

The behaviour suite runs with the remote on the controller's own Python and on Debian's
``pypy3`` (Python 3.9), which stands for the oldest interpreters the remote code supports.
Without ``pypy3`` the PyPy runs are skipped locally, but fail in CI (``CI`` set).
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import aiopushy as pushy

from .needs import PYPY, pypy_missing, require
from .sshservers import Server, openssh_server, require_sshd


@pytest.fixture
def anyio_backend() -> Any:
    """asyncio's own loop, or uvloop with ``AIOPUSHY_TEST_LOOP=uvloop`` (test_uvloop.py)."""
    if os.environ.get("AIOPUSHY_TEST_LOOP") == "uvloop":
        return ("asyncio", {"use_uvloop": True})
    return "asyncio"


@pytest.fixture(params=["cpython", "pypy"], scope="session")
def remote_python(request: pytest.FixtureRequest) -> str:
    """The remote interpreter: the controller's own Python, then PyPy 3.9."""
    if request.param == "cpython":
        return sys.executable
    require(pypy_missing())
    assert PYPY is not None
    return PYPY


@pytest.fixture
async def conn(remote_python: str, anyio_backend: str) -> AsyncIterator[pushy.Session]:
    """A session on a local remote interpreter, closed after the test."""
    async with pushy.connect("local:", python=remote_python, timeout=30) as session:
        yield session


@pytest.fixture(scope="module")
def openssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real OpenSSH sshd on a loopback port, for the tests of one module."""
    require_sshd()
    with openssh_server(tmp_path_factory.mktemp("sshd")) as server:
        yield server
