"""Running local code remotely: ``call()`` and import forwarding, on CPython and PyPy.

Each test writes a package of its own (a unique name) into a directory that only the
controller has on ``sys.path``: the remote, started elsewhere, can only get it forwarded.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import anyio
import pytest

import aiopushy
import aiopushy as pushy
import aiopushy._modulefiles
from aiopushy import sync
from aiopushy._protocol import messages as m

from .sshservers import Server

FILES = {
    "__init__.py": "VERSION = '1.0'\n",
    "disks.py": """\
        import os
        from . import helpers
        from .sub import deep


        def usage(path, depth=1):
            return {"path": path, "depth": depth, "double": helpers.double(depth),
                    "deep": deep.name(), "pid": os.getpid()}


        def boom():
            raise ValueError("raised by forwarded code")


        class Tool:
            @staticmethod
            def static(x):
                return x + 1

            @classmethod
            def klass(cls, x):
                return cls.__name__, x
        """,
    "helpers.py": "def double(x):\n    return 2 * x\n",
    "sub/__init__.py": "",
    "sub/deep.py": """\
        from .. import helpers


        def name():
            return __name__, helpers.double(21)
        """,
}


def write_package(root: Path, name: str, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """A fresh package ``fwd_<random>`` with subpackages, imported by the controller."""
    name = f"fwd_{uuid.uuid4().hex[:8]}"
    write_package(tmp_path, name, FILES)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(f"{name}.disks")
    yield module
    for loaded in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[loaded]


async def test_call_forwards_the_package_with_subpackages_and_relative_imports(
    conn: pushy.Session, package: ModuleType, remote_python: str
) -> None:
    top = package.__name__.split(".")[0]
    result = await conn.call(package.usage, "/var", depth=2)
    assert result == {
        "path": "/var",
        "depth": 2,
        "double": 4,
        "deep": (f"{top}.sub.deep", 42),
        "pid": conn.info["pid"],
    }
    remote_file = await conn.eval(f"__import__('{top}').__file__")
    assert remote_file == f"controller:{Path(package.__file__).parent / '__init__.py'}"
    # Compiled here and run as it is where the bytecode matches (the same CPython), else
    # compiled there from the source (PyPy).
    precompiled = await conn.eval(f"bool(__import__('{top}').__loader__._code)")
    assert precompiled == (remote_python == sys.executable)
    assert await conn.call(package.Tool.static, 1) == 2
    assert await conn.call(package.Tool.klass, 5) == ("Tool", 5)


async def test_the_modules_a_module_imports_come_along(
    conn: pushy.Session, package: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    answer = aiopushy._forwarding.answer

    def counting(name: str, *args: object) -> tuple[object, ...]:
        asked.append(name)
        return answer(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(aiopushy._forwarding, "answer", counting)
    await conn.call(package.usage, "/")
    top = package.__name__.split(".")[0]
    # helpers, sub and sub.deep come with disks, which imports them
    assert asked == [top, f"{top}.disks"]


async def test_tracebacks_show_the_forwarded_lines(
    conn: pushy.Session, package: ModuleType
) -> None:
    with pytest.raises(ValueError, match="raised by forwarded code") as info:
        await conn.call(package.boom)
    remote = info.value.remote_traceback  # type: ignore[attr-defined]
    assert f"controller:{package.__file__}" in remote
    assert 'raise ValueError("raised by forwarded code")' in remote


async def test_what_is_not_allowed_is_refused(conn: pushy.Session, package: ModuleType) -> None:
    # Nothing was passed to call() yet: nothing is forwarded.
    top = package.__name__.split(".")[0]
    with pytest.raises(ModuleNotFoundError, match="does not forward it"):
        await conn.modules[top]
    await conn.call(package.usage, "/")
    # A module of the controller that no call() or forward_modules named.
    other = "fwd_other_" + uuid.uuid4().hex[:8]
    with pytest.raises(ModuleNotFoundError, match=f"'{other}' on the remote.*does not forward"):
        await conn.eval(f"__import__('{other}')")
    # Allowed, but neither side has it.
    with pytest.raises(ModuleNotFoundError, match="controller does not have it either"):
        await conn.eval(f"__import__('{top}.nosuch')")


async def test_forward_modules_names_more(
    remote_python: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    names = [f"fwd_extra_{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for name in names:
        write_package(tmp_path, name, {"__init__.py": f"NAME = {name!r}\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    async with pushy.connect("local:", python=remote_python, forward_modules=names[:1]) as conn:
        assert await conn.modules[names[0]].NAME == names[0]
        with pytest.raises(ModuleNotFoundError, match="does not forward"):
            await conn.modules[names[1]]
    async with pushy.connect("local:", python=remote_python, forward_modules=True) as conn:
        assert await conn.modules[names[2]].NAME == names[2]


async def test_extension_modules_are_not_forwarded(
    conn: pushy.Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"fwd_ext_{uuid.uuid4().hex[:8]}"
    write_package(tmp_path, name, {"__init__.py": ""})
    # A real compiled extension (a copy of one of the standard library's) in the package.
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    candidates = ("_json", "_csv", "_struct", "_bisect", "select", "math", "_socket")
    origins = [importlib.util.find_spec(c).origin for c in candidates]  # type: ignore[union-attr]
    found = next(o for o in origins if o and o.endswith(suffix))
    shutil.copy(found, tmp_path / name / f"fast{suffix}")
    monkeypatch.syspath_prepend(str(tmp_path))
    conn.forwarding.allow(name)
    with pytest.raises(ImportError, match="compiled extension module") as info:
        await conn.eval(f"__import__('{name}.fast')")
    assert not isinstance(info.value, ModuleNotFoundError)


async def test_lambdas_closures_and_nested_functions_are_refused(conn: pushy.Session) -> None:
    def nested() -> int:
        return 1

    captured = 3

    def closure() -> int:
        return captured

    for function in (lambda: 1, nested, closure):
        with pytest.raises(TypeError, match="compile"):
            await conn.call(function)


def test_the_sync_api_has_call(package: ModuleType) -> None:
    with sync.connect("local:") as conn:
        result = conn.call(package.usage, "/tmp", depth=1)
        assert result["double"] == 2 and result["pid"] == conn.info["pid"]


MAIN_SCRIPT = """\
import asyncio, os, sys
import aiopushy


def work(x):
    return x * 2, __name__, os.getpid()


if __name__ == "__main__":
    with open(sys.argv[1], "a") as marker:  # the remote must never run this block
        marker.write(f"{os.getpid()}\\n")

    async def main():
        async with aiopushy.connect("local:", cwd="/") as conn:
            doubled, name, pid = await conn.call(work, 21)
            print(doubled, name, pid == conn.info["pid"])

    asyncio.run(main())
"""


@pytest.mark.parametrize("how", ["script", "-m"])
def test_functions_of_main_run_remotely_without_the_main_block(tmp_path: Path, how: str) -> None:
    package = f"fwd_main_{uuid.uuid4().hex[:8]}"
    write_package(tmp_path, package, {"__init__.py": "", "tool.py": MAIN_SCRIPT})
    marker = tmp_path / "marker"
    root = str(Path(__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    target = (
        [str(tmp_path / package / "tool.py")] if how == "script" else ["-m", f"{package}.tool"]
    )
    done = subprocess.run(
        [sys.executable, *target, str(marker)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    name = "__aiopushy_main__" if how == "script" else f"{package}.tool"
    assert done.stdout == f"42 {name} True\n"
    assert len(marker.read_text().split()) == 1  # only the controller ran the block


async def test_package_data_through_importlib_resources(
    conn: pushy.Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"fwd_data_{uuid.uuid4().hex[:8]}"
    files = {
        "__init__.py": "",
        "loader.py": """\
            import importlib.resources


            def read_old_way():
                return (
                    importlib.resources.read_text(__package__, "config.json"),
                    importlib.resources.is_resource(__package__, "config.json"),
                    sorted(importlib.resources.contents(__package__)),
                )


            def read():
                root = importlib.resources.files(__package__)
                return (
                    (root / "config.json").read_text(),
                    root.joinpath("data", "blob.bin").read_bytes(),
                    sorted(p.name for p in root.iterdir()),
                    sorted(p.name for p in (root / "data").iterdir()),
                    (root / "data").is_dir(), (root / "config.json").is_file(),
                )
            """,
        "config.json": '{"answer": 42}',
        "data/blob.bin": "\x00\x01binary",
    }
    write_package(tmp_path, name, files)
    monkeypatch.syspath_prepend(str(tmp_path))
    loader = importlib.import_module(f"{name}.loader")
    assert await conn.call(loader.read_old_way) == (
        '{"answer": 42}',
        True,
        ["config.json", "data"],
    )
    if await conn.eval("__import__('sys').version_info < (3, 10)"):
        return  # files() of 3.9 knows packages on the file system only
    assert await conn.call(loader.read) == (
        '{"answer": 42}',
        b"\x00\x01binary",
        ["config.json", "data"],
        ["blob.bin"],
        True,
        True,
    )
    # Only what the package's own listing names is read: a file outside it is not.
    with pytest.raises(FileNotFoundError):
        await conn.eval(
            f"__import__('{name}').__spec__.loader.get_resource_reader('{name}')"
            ".files().joinpath('..', '..', 'etc', 'passwd').read_bytes()"
        )
    for loaded in [k for k in sys.modules if k.startswith(name)]:
        del sys.modules[loaded]


@pytest.mark.parametrize("native", [False, True], ids=["asyncssh", "openssh-client"])
async def test_forwarding_over_a_real_sshd(
    openssh: Server, package: ModuleType, native: bool, anyio_backend: str
) -> None:
    kwargs = openssh.connect_kwargs(use_native=native)
    async with pushy.connect("ssh:127.0.0.1", timeout=60, **kwargs) as conn:
        result = await conn.call(package.usage, "/srv", depth=3)
        assert result["double"] == 6 and result["pid"] == conn.info["pid"]
        with pytest.raises(ValueError, match="raised by forwarded code") as info:
            await conn.call(package.boom)
        assert "raise ValueError" in info.value.remote_traceback  # type: ignore[attr-defined]


async def test_forwarding_through_a_relay(conn: pushy.Session, package: ModuleType) -> None:
    """The relayed session asks its own controller (through the relay, which does not
    have the package either)."""
    async with pushy.connect("local:", via=conn, timeout=30) as relayed:
        result = await relayed.call(package.usage, "/", depth=1)
        assert result["pid"] == relayed.info["pid"] != conn.info["pid"]
        assert result["double"] == 2
    top = package.__name__.split(".")[0]
    assert not await conn.eval(f"'{top}' in __import__('sys').modules")


async def test_each_module_file_is_read_once_per_process(
    remote_python: str, package: ModuleType, monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    reads: list[str] = []
    read = aiopushy._modulefiles._read

    def counting(name: str, spec: object) -> object:
        reads.append(name)
        return read(name, spec)

    monkeypatch.setattr(aiopushy._modulefiles, "_read", counting)
    sessions = [pushy.connect("local:", python=remote_python, timeout=30) for _ in range(4)]
    opened = [await connecting for connecting in sessions]
    try:
        results = await asyncio.gather(*(s.call(package.usage, "/") for s in opened))
    finally:
        await asyncio.gather(*(s.close() for s in opened))
    assert len({r["pid"] for r in results}) == 4
    assert sorted(reads) == sorted(set(reads)) and len(reads) == 5  # 5 modules, once each


async def test_a_failure_serving_a_module_is_an_answer_not_a_hang(
    conn: pushy.Session, package: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the controller fails while finding the module."""

    def failing(*args: object) -> object:
        raise RuntimeError("the finder broke")

    monkeypatch.setattr(aiopushy._forwarding, "answer", failing)
    with anyio.fail_after(10), pytest.raises(RuntimeError, match="the finder broke"):
        await conn.call(package.usage, "/")
    assert await conn.eval("1 + 1") == 2


async def test_a_forwarded_import_waits_without_the_global_import_lock(
    conn: pushy.Session, package: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one remote thread waits for the controller's answer to a forwarded import,
    another imports freely. importlib holds its global import lock around ``find_spec``;
    held while waiting, it could stop the thread that reads the answer (PyPy's garbage
    collector frees module locks under it), and both would wait forever."""
    answer = aiopushy._forwarding.answer

    def slow(*args: object) -> object:
        time.sleep(1.0)
        return answer(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(aiopushy._forwarding, "answer", slow)
    call = asyncio.ensure_future(conn.call(package.usage, "/"))
    await asyncio.sleep(0.3)  # the remote now waits in the forwarding finder
    assert not call.done()
    elapsed = await conn.eval(
        "(lambda start: (__import__('colorsys'), __import__('time').monotonic() - start)[1])"
        "(__import__('time').monotonic())"
    )
    assert elapsed < 0.4  # not the 0.7 s left of the forwarded import's wait
    with anyio.fail_after(10):
        assert (await call)["double"] == 2


async def test_a_remote_asking_directly_gets_only_what_the_policy_allows(
    conn: pushy.Session, package: ModuleType
) -> None:
    """The remote process itself sends the requests its finder would never send: the
    controller's own checks answer them."""
    top = package.__name__.split(".")[0]
    await conn.call(package.usage, "/")  # the package is forwarded now
    ask = (
        "__import__('_aiopushy_remote._remote.output', fromlist=['current']).current.peer.request"
    )
    for relative in ("../../../../etc/passwd", "/etc/passwd", "__init__.py", "disks.py"):
        with pytest.raises(FileNotFoundError):
            await conn.eval(f"{ask}({m.OP_READ_DATA}, ({top!r}, {relative!r}))")
    status, message = await conn.eval(f"{ask}({m.OP_FIND_MODULE}, ('json', b''))")
    assert status == m.MODULE_REFUSED and "does not forward" in message
    status, *_ = await conn.eval(f"{ask}({m.OP_FIND_MODULE}, ({top + '.helpers'!r}, b''))")
    assert status == m.MODULE_SOURCE
