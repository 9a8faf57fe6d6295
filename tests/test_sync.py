"""The blocking facade, ``aiopushy.sync``: Pushy's own tests ported to it (over ``local:``
and over ssh to a real sshd), then what the facade adds: its rule for attribute reads,
round trips, threads, callbacks, the event-loop guard, moving between the worlds and exit.

Note for readers: inside an ``assert``, pytest stores each step of an expression in a
variable, so attribute chains written in an ``assert`` are read eagerly (more requests,
same values). The tests that count requests keep the expressions outside asserts.
"""

from __future__ import annotations

import contextlib
import faulthandler
import fractions
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import aiopushy
from aiopushy import sync as pushy

from .sshservers import Server

TIMEOUT = 30


@pytest.fixture(autouse=True)
def _bounded() -> Iterator[None]:
    """A hung test dumps every thread's stack and ends the run instead of hanging it."""
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module", params=["local", "ssh"])
def conn(request: pytest.FixtureRequest) -> Iterator[pushy.SyncSession]:
    """A sync session over ``local:``, then over ssh (Pushy's tests run on both)."""
    if request.param == "local":
        session = pushy.connect("local:", timeout=TIMEOUT)
    else:
        server: Server = request.getfixturevalue("openssh")
        session = pushy.connect("ssh:127.0.0.1", timeout=TIMEOUT, **server.connect_kwargs())
    with session:
        yield session


@pytest.fixture(scope="module")
def local() -> Iterator[pushy.SyncSession]:
    with pushy.connect("local:", timeout=TIMEOUT) as session:
        yield session


# -- Pushy's tests, ported ----------------------------------------------------------------


def test_eval(conn: pushy.SyncSession) -> None:
    assert conn.eval("1 + 2") == 3
    with pytest.raises(ZeroDivisionError):
        conn.eval("1 / 0")


def test_compile_lambda(conn: pushy.SyncSession) -> None:
    conn.execute("import os")
    getpid = lambda: os.getpid()  # noqa: E731, PLW0108 - compile() ships its source
    remote_getpid = conn.compile(getpid)
    assert remote_getpid() == conn.modules.os.getpid() == conn.info["pid"] != os.getpid()


def test_compile_function_with_defaults(conn: pushy.SyncSession) -> None:
    def add(a: int, b: int = 2) -> int:
        return a + b

    remote_add = conn.compile(add)
    assert remote_add(1, 2) == 3
    assert remote_add(1) == 3
    assert remote_add(a=1, b=2) == 3


def test_compile_eval_and_exec_modes(conn: pushy.SyncSession) -> None:
    code = conn.compile("lambda a, b: a + b", "eval")
    assert conn.eval(code)(1, 2) == 3
    code = conn.compile("def abc(a, b):\n    return a + b", "exec")
    locals_: dict[str, Any] = {}
    conn.eval(code, locals=locals_)
    assert "abc" in locals_
    assert locals_["abc"](1, 2) == 3


def test_execute_with_locals_and_remote_classes(conn: pushy.SyncSession) -> None:
    scope = {"a": 1}
    conn.execute("b = a + 1", scope)
    assert scope == {"a": 1, "b": 2}
    locals_: dict[str, Any] = {}
    conn.execute("class X:\n    def __init__(self):\n        self.x = 123\n", locals=locals_)
    x = locals_["X"]()
    assert x.x == 123
    assert isinstance(x, locals_["X"])


def test_dict_proxies(conn: pushy.SyncSession) -> None:
    # Comparisons are written as in Pushy's tests: the local dict first, so the remote
    # one compares by its reflected __eq__.
    dict_type = conn.modules.builtins.dict
    d = pushy.byref(dict_type)  # dict_type() alone gives a copy; byref keeps the dict
    d["x"] = "y"
    assert d["x"] == "y"
    d = pushy.byref(lambda: dict_type(x="y"))
    assert d["x"] == "y"
    assert dict(x="y") == d
    d.update({"y": "z"})
    assert {"x": "y", "y": "z"} == d  # noqa: SIM300
    d.update(pushy.byref(lambda: dict_type(a="b")))
    assert {"x": "y", "y": "z", "a": "b"} == d  # noqa: SIM300
    assert d != {}
    del d["x"], d["y"], d["a"]
    assert {} == d  # noqa: SIM300
    assert len(d) == 0 and not d

    remote_list = pushy.byref(conn.modules.builtins.list)
    assert type(remote_list) is pushy.SyncProxy
    assert isinstance(remote_list, conn.modules.builtins.list)
    local_dict = {"x": "y"}
    remote_list.append(local_dict)
    assert [local_dict] == remote_list


def test_list_proxies(conn: pushy.SyncSession) -> None:
    conn.modules.sys.path.append("!")
    assert conn.modules.sys.path[-1] == "!"
    conn.modules.sys.path.pop()
    assert conn.modules.sys.path[-1] != "!"
    path = pushy.byref(lambda: conn.modules.sys.path)
    path.append("!!")
    assert path[-1] == "!!" == conn.modules.sys.path[-1]
    assert path.pop() == "!!"


def test_identity_round_trip(conn: pushy.SyncSession) -> None:
    builtins = conn.modules.builtins
    builtins.sys_object = sys
    try:
        assert builtins.sys_object is sys
    finally:
        del builtins.sys_object
    echo = conn.eval("lambda x: x")
    mine = object()
    assert echo(mine) is mine
    assert echo(test_eval) is test_eval  # a callable comes back as itself
    theirs = conn.eval("object()")
    assert echo(theirs) is theirs
    assert conn.modules.os is conn.modules.os


def test_auto_import(conn: pushy.SyncSession) -> None:
    assert conn.modules.xml.dom.minidom.parseString("<a/>").documentElement.tagName == "a"
    joined = conn.modules.os.path.join("a", "b")
    assert joined == "a/b"
    assert conn.modules["os.path"].basename("/x/y") == "y"
    assert conn.remote_import("email.utils").quote('a"b') == 'a\\"b'


def test_str_and_repr(conn: pushy.SyncSession) -> None:
    conn.execute(
        "class Shown:\n"
        "    def __str__(self): return 'str!'\n"
        "    def __repr__(self): return 'repr!'\n"
    )
    shown = conn.eval("Shown()")
    assert (str(shown), repr(shown), f"{shown}") == ("str!", "repr!", "str!")
    assert str(conn.modules.os.environ).startswith("environ({")
    assert repr(conn.modules.os).startswith("<module 'os'")


def test_threads_call_in_parallel(conn: pushy.SyncSession) -> None:
    sleep = conn.modules.time.sleep
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(sleep, 0.5) for _ in range(4)]:
            future.result(TIMEOUT)
    assert time.monotonic() - started < 1.5  # Pushy ran them one at a time: 2 s


def test_nested_connect(conn: pushy.SyncSession) -> None:
    with pushy.connect("local:", via=conn, timeout=TIMEOUT) as inner:
        pids = {os.getpid(), conn.modules.os.getpid(), inner.modules.os.getpid()}
        assert len(pids) == 3
        assert inner.modules.os.getppid() == conn.info["pid"]


# -- attribute reads and round trips ------------------------------------------------------


@contextlib.contextmanager
def requests(session: pushy.SyncSession) -> Iterator[Callable[[], int]]:
    """Count the requests ``session`` sends inside the block: ``count()`` so far."""
    statistics = session.async_session.statistics
    start = statistics()["requests"]
    yield lambda: statistics()["requests"] - start


def test_attribute_reads_give_values(local: pushy.SyncSession) -> None:
    version = local.modules.sys.version
    assert type(version) is str
    assert version.upper() == local.modules.sys.version.upper()
    env = local.modules.os.environ
    assert type(env) is pushy.SyncProxy
    assert env["HOME"] == os.environ["HOME"]
    assert len(env) > 0 and "PATH" in env and "HOME" in list(env.keys())
    assert local.modules.sys.maxsize == sys.maxsize
    assert local.modules.os.__name__ == "os"

    # A read is a snapshot, taken when it happens, as in Pushy.
    counter = local.modules.types.SimpleNamespace(count=0)
    before = counter.count
    counter.count += 1
    after = counter.count
    assert (before, after) == (0, 1)


def test_what_each_line_costs(local: pushy.SyncSession) -> None:
    """Attribute reads are sent at once (their kind decides what comes back), except a
    module of ``conn.modules`` and a method of an exact builtin container."""
    with requests(local) as count:
        joined = local.modules.os.path.join("a", "b")  # os.path, join, the call
    assert (joined, count()) == ("a/b", 3)
    with requests(local) as count:
        version = local.modules.sys.version
    assert (type(version), count()) == (str, 1)
    with requests(local) as count:
        path = local.modules.sys.path
    assert (type(path), count()) == (pushy.SyncProxy, 1)
    with requests(local) as count:
        path.append("/t")
        assert path[-1] == "/t" and "/t" in path and len(path) > 1
        assert path[-2:][-1] == "/t"  # a slice is a new remote list: one request
        path.pop()
    assert count() == 7  # append, getitem, in, len, the slice and its getitem, pop
    with requests(local) as count:
        names = list(local.modules.sys.builtin_module_names)  # a tuple: one value
    assert "sys" in names and count() == 1
    with requests(local) as count:
        copied = pushy.copy(path)
    assert type(copied) is list and count() == 1
    with requests(local) as count:
        local.modules.builtins.aiopushy_sync_marker = 1
        marker = local.eval("aiopushy_sync_marker")
        del local.modules.builtins.aiopushy_sync_marker
    assert (marker, count()) == (1, 3)


def test_protocol_methods(local: pushy.SyncSession) -> None:
    d = local.modules.collections.OrderedDict()
    d["a"] = 1
    assert d["a"] + 1 == 2
    assert (len(d), "a" in d, "b" in d, bool(d), list(d)) == (1, True, False, True, ["a"])
    del d["a"]
    assert not d
    with pytest.raises(KeyError):
        d["missing"]

    Fraction = local.modules.fractions.Fraction
    third = Fraction(1, 3)
    assert type(third) is pushy.SyncProxy
    assert str(third + 1) == "4/3" and str(1 + third) == "4/3" and str(2 - third) == "5/3"
    assert third * 3 == 1 and 3 * third == 1 and third == Fraction(2, 6) and third != 1
    assert str(third / 2) == "1/6" and str(1 / third) == "3" and str(third**2) == "1/9"
    assert str(-third) == "-1/3" and str(abs(-third)) == "1/3" and str(+third) == "1/3"
    assert third < 1 and third <= 1 and not third > 1 and third >= third
    assert 1 > third and 0 < third  # noqa: SIM300 - the reflected comparisons
    assert float(third) == pytest.approx(1 / 3) and int(third * 4) == 1
    assert math.floor(third) == 0 and math.ceil(third) == 1 and math.trunc(third) == 0
    assert str(round(third, 2)) == "33/100" and round(third) == 0
    assert divmod(7, Fraction(2)) == (3, 1)
    assert hash(third) == hash(fractions.Fraction(1, 3))
    total = third
    total += 1  # falls back to total = total + 1: the remote Fraction is immutable anyway
    assert str(total) == "4/3" and str(third) == "1/3"
    assert 5 // local.eval("2") == 2 and 5 % local.eval("__import__('decimal').Decimal(3)") == 2
    assert [1, 2, 3][local.modules.operator.index(1)] == 2
    assert "join" in dir(local.modules.os.path)
    assert f"{Fraction(1, 4):}" == "1/4"


def test_attributes_can_be_set_and_deleted(local: pushy.SyncSession) -> None:
    namespace = local.modules.types.SimpleNamespace()
    namespace.value = [1, 2]
    assert namespace.value == [1, 2]
    del namespace.value
    with pytest.raises(AttributeError):
        namespace.value  # noqa: B018


def test_with_on_remote_context_managers(local: pushy.SyncSession, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("line 1\nline 2\n")
    with local.modules.builtins.open(str(tmp_path / "f.txt")) as f:
        assert f.read() == "line 1\nline 2\n"
    assert f.closed
    with pytest.raises(ValueError), local.modules.builtins.open(str(tmp_path / "f.txt")) as f:
        raise ValueError("inside")
    assert f.closed
    with local.modules.contextlib.suppress(local.modules.builtins.KeyError):
        raise KeyError("suppressed by the remote __exit__")


def test_iteration(local: pushy.SyncSession, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("".join(f"line {i}\n" for i in range(150)))
    lines = list(local.modules.builtins.open(str(tmp_path / "f.txt")))
    assert lines == [f"line {i}\n" for i in range(150)]
    with requests(local) as count:
        items = [x for x in pushy.iterate(local.eval("iter(range(10))"), batch=4)]
    assert items == list(range(10)) and count() == 1 + 3  # the eval, then 4 + 4 + 2
    generator = local.eval("(i * i for i in range(3))")
    assert (next(generator), next(generator), next(generator)) == (0, 1, 4)
    with pytest.raises(StopIteration):
        next(generator)
    assert list(reversed(pushy.byref(lambda: local.modules.builtins.list("abc")))) == list("cba")


def test_isinstance_with_remote_classes(local: pushy.SyncSession) -> None:
    ordered = local.modules.collections.OrderedDict()
    assert isinstance(ordered, local.modules.collections.OrderedDict)
    assert isinstance(ordered, local.modules.builtins.dict)
    assert not isinstance(ordered, local.modules.builtins.list)
    assert isinstance(3, local.modules.builtins.int)
    assert issubclass(local.modules.collections.OrderedDict, local.modules.builtins.dict)


def test_byref_holds_even_immutable_values_by_reference(local: pushy.SyncSession) -> None:
    with pytest.raises(TypeError, match="returned int"):
        pushy.byref(lambda: 1)
    with requests(local) as count:
        version = pushy.byref(lambda: local.modules.sys.version)
    assert count() == 1 and type(version) is pushy.SyncProxy
    assert version.upper() == local.modules.sys.version.upper()
    path = local.modules.sys.path  # a proxy already, without byref
    assert pushy.byref(lambda: path) is path
    assert pushy.byref(local.modules.builtins.dict) == {}
    with pytest.raises(TypeError, match="not callable"):
        pushy.byref(path)  # a remote list is not callable


# -- exceptions, callbacks, output, lifetime ---------------------------------------------


def test_exceptions_keep_their_type_and_remote_traceback(local: pushy.SyncSession) -> None:
    with pytest.raises(ZeroDivisionError) as caught:
        local.eval("1 / 0")
    assert "ZeroDivisionError" in caught.value.remote_traceback  # type: ignore[attr-defined]
    assert isinstance(caught.value.__cause__, aiopushy.RemoteTraceback)
    with pytest.raises(pushy.RemoteError) as remote:
        local.modules.subprocess.check_call(["false"])
    assert remote.value.remote_type == "subprocess.CalledProcessError"
    assert "check_call" in remote.value.remote_traceback
    assert type(remote.value.remote_exception) is pushy.SyncProxy
    assert remote.value.remote_exception.returncode == 1
    with pytest.raises(KeyError) as key_error:
        local.eval("{}[object()]")
    assert type(key_error.value.args[0]) is pushy.SyncProxy


def test_callbacks_run_in_threads_and_may_call_back(local: pushy.SyncSession) -> None:
    apply = local.eval("lambda fn, items: [fn(i) for i in items]")
    threads = set()

    def times_ten(x: int) -> int:
        threads.add(threading.current_thread())
        product: int = local.modules.operator.mul(x, 10)  # back into the sync API
        return product

    assert apply(times_ten, [1, 2, 3]) == [10, 20, 30]
    assert threading.current_thread() not in threads
    assert all(thread.name != "aiopushy.sync" for thread in threads)

    received: list[Any] = []
    apply(received.append, [local.eval("object()")])
    assert type(received[0]) is pushy.SyncProxy

    def fails(x: int) -> int:
        raise KeyError(x)

    with pytest.raises(KeyError):
        apply(fails, [1])

    async def doubled(x: int) -> int:  # async callbacks are awaited on the loop
        return 2 * x

    assert apply(doubled, [4]) == [8]


def test_remote_output(local: pushy.SyncSession) -> None:
    lines: list[bytes] = []
    with pushy.connect("local:", output=lambda stream, data: lines.append(data)) as session:
        session.execute("print('hello')")
        assert session.output is not None
    assert lines == [b"hello\n"]


def test_dropped_proxies_are_released(local: pushy.SyncSession) -> None:
    before = local.remote_statistics()["exported"]
    held = [local.eval("object()") for _ in range(5)]
    assert local.remote_statistics()["exported"] == before + 5
    del held
    deadline = time.monotonic() + 10
    while local.remote_statistics()["exported"] != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert local.remote_statistics()["exported"] == before


def test_closed_session() -> None:
    session = pushy.connect("local:", timeout=TIMEOUT)
    proxy = session.eval("object()")
    session.close()
    session.close()
    assert session.closed
    with pytest.raises(pushy.ConnectionLost):
        session.eval("1")
    with pytest.raises(pushy.ConnectionLost):
        str(proxy)
    assert "session closed" in repr(proxy)


def test_remote_dying_mid_call_is_connection_lost() -> None:
    with pushy.connect("local:", timeout=TIMEOUT) as session:
        started = time.monotonic()
        with pytest.raises(pushy.ConnectionLost, match="exit status 3"):
            session.modules.os._exit(3)
        assert time.monotonic() - started < 5
        assert session.closed and session.statistics()["pending"] == 0
        with pytest.raises(pushy.ConnectionLost):
            session.modules.os.getpid()


def test_files(local: pushy.SyncSession, tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"payload")
    local.putfile(tmp_path / "a", str(tmp_path / "b"))
    local.getfile(str(tmp_path / "b"), tmp_path / "c")
    assert (tmp_path / "c").read_bytes() == b"payload"
