"""Pushy's rule in the sync facade: the kind of a value decides how it travels.

Exact immutable builtins come back by value; lists, dicts, sets, bytearrays and every
other object come back as proxies to the remote objects. Plain ``assert`` statements
throughout: pytest rewrites them, which used to change what the facade did.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

import aiopushy
from aiopushy import sync as pushy


@pytest.fixture(scope="module")
def conn() -> Iterator[pushy.SyncSession]:
    with pushy.connect("local:", timeout=30) as session:
        yield session


# -- the example, as written -------------------------------------------------------


def test_the_example_as_written() -> None:
    script = textwrap.dedent(
        """
        from aiopushy import sync as pushy
        conn = pushy.connect("local:")
        p = conn.modules.sys.path
        p.append("/t")
        print(conn.eval("'/t' in __import__('sys').path"))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "True"


def test_a_pop_inside_an_assert_pops_the_remote_list(conn: pushy.SyncSession) -> None:
    conn.modules.sys.path.append("/t")
    assert conn.modules.sys.path.pop() == "/t"
    assert not conn.eval("'/t' in __import__('sys').path")


# -- Pushy's own list and dict proxy cases ------------------------------------------------


def test_pushys_list_proxy_cases(conn: pushy.SyncSession) -> None:
    conn.modules.sys.path.append("!")
    assert conn.modules.sys.path[-1] == "!"
    conn.modules.sys.path.pop()
    assert conn.modules.sys.path[-1] != "!"
    remote_list = conn.modules.builtins.list()
    assert type(remote_list) is pushy.SyncProxy
    assert isinstance(remote_list, conn.modules.builtins.list)
    local_dict = {"x": "y"}
    remote_list.append(local_dict)
    assert [local_dict] == remote_list
    assert remote_list == [local_dict]


def test_pushys_dict_proxy_cases(conn: pushy.SyncSession) -> None:
    d = conn.modules.builtins.dict()
    d["x"] = "y"
    assert d["x"] == "y"
    d = conn.modules.builtins.dict(x="y")
    assert d["x"] == "y"
    assert dict(x="y") == d
    d.update({"y": "z"})
    assert d == {"x": "y", "y": "z"}
    d.update(conn.modules.builtins.dict(a="b"))
    assert d == {"x": "y", "y": "z", "a": "b"}
    assert d != {}
    del d["x"]
    del d["y"]
    del d["a"]
    assert d == {}
    assert len(d) == 0
    assert not d


def test_comparing_a_list_proxy_with_a_local_list(conn: pushy.SyncSession) -> None:
    argv = conn.modules.sys.argv
    assert type(argv) is pushy.SyncProxy
    assert argv == pushy.copy(argv)
    assert argv == conn.eval("list(__import__('sys').argv)")
    assert argv != [*pushy.copy(argv), "more"]


# -- every kind of container, by value or by proxy ----------------------------------------


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("None", None),
        ("True", True),
        ("12", 12),
        ("1.5", 1.5),
        ("2j", 2j),
        ("'text'", "text"),
        ("b'raw'", b"raw"),
        ("(1, ('a', b'b'))", (1, ("a", b"b"))),
        ("frozenset({1, 2})", frozenset({1, 2})),
    ],
)
def test_immutable_builtins_come_back_by_value(
    conn: pushy.SyncSession, source: str, value: Any
) -> None:
    got = conn.eval(source)
    assert type(got) is type(value)
    assert got == value


@pytest.mark.parametrize(
    ("source", "mutate", "check"),
    [
        ("[]", lambda c: c.append(1), "[1]"),
        ("{}", lambda c: c.__setitem__("k", 1), "{'k': 1}"),
        ("set()", lambda c: c.add(1), "{1}"),
        ("bytearray(b'a')", lambda c: c.extend(b"b"), "bytearray(b'ab')"),
    ],
    ids=["list", "dict", "set", "bytearray"],
)
def test_a_mutation_through_every_container_proxy_reaches_the_remote(
    conn: pushy.SyncSession, source: str, mutate: Any, check: str
) -> None:
    conn.execute(f"container = {source}")
    container = conn.eval("container")
    assert type(container) is pushy.SyncProxy
    mutate(container)
    assert conn.eval(f"container == {check}")


def test_containers_inside_tuples_are_proxies(conn: pushy.SyncSession) -> None:
    conn.execute("inner = [1]")
    pair = conn.eval("(inner, 'x')")
    assert type(pair) is tuple
    assert pair[1] == "x"
    pair[0].append(2)
    assert conn.eval("inner") == conn.eval("inner")  # a proxy each time, equal values
    assert pushy.copy(conn.eval("inner")) == [1, 2]


def test_copy_gives_a_local_value_in_one_request(conn: pushy.SyncSession) -> None:
    nested = conn.eval("{'a': [1, {2}], 'b': (3, bytearray(b'x'))}")
    copied = pushy.copy(nested)
    assert copied == {"a": [1, {2}], "b": (3, bytearray(b"x"))}
    assert type(copied["a"]) is list
    assert pushy.copy(5) == 5  # a local value is returned as it is


# -- eval, execute, compile, iteration, callbacks, exceptions, fan-out ----------------------


def test_execute_with_locals_follows_the_rule(conn: pushy.SyncSession) -> None:
    names: dict[str, Any] = {}
    conn.execute("items = [1, 2]\ncount = 2", locals=names)
    assert names["count"] == 2
    assert type(names["items"]) is pushy.SyncProxy
    names["items"].append(3)
    assert len(names["items"]) == 3


def test_compiled_functions_return_by_the_rule(conn: pushy.SyncSession) -> None:
    def make(n: int) -> list[int]:
        return list(range(n))

    remote_make = conn.compile(make)
    made = remote_make(3)
    assert type(made) is pushy.SyncProxy
    assert pushy.copy(made) == [0, 1, 2]


def test_iteration_items_follow_the_rule(conn: pushy.SyncSession) -> None:
    rows = conn.eval("[[1], [2], 3]")
    items = list(rows)
    assert type(items[0]) is pushy.SyncProxy
    assert items[2] == 3
    assert [pushy.copy(row) for row in items[:2]] == [[1], [2]]


def test_callback_arguments_follow_the_rule(conn: pushy.SyncSession) -> None:
    seen: list[Any] = []
    conn.eval("lambda f: f([1, 2], key={'k': 1})")(lambda value, key: seen.extend([value, key]))
    assert all(type(item) is pushy.SyncProxy for item in seen)
    seen[0].append(3)  # the remote list, while the remote holds it
    assert len(seen[0]) == 3


def test_exception_arguments_follow_the_rule(conn: pushy.SyncSession) -> None:
    with pytest.raises(ValueError) as info:
        conn.execute("raise ValueError([1], 'text')")
    assert type(info.value.args[0]) is pushy.SyncProxy
    assert info.value.args[1] == "text"


def test_fanout_and_group_follow_the_rule(conn: pushy.SyncSession) -> None:
    results = pushy.fanout(["local:", "local:"], lambda c: type(c.modules.sys.path).__name__)
    assert [r.value for r in results] == ["SyncProxy", "SyncProxy"]
    with pushy.Group(["local:"]) as group:
        lengths = group.run(lambda c: len(c.modules.sys.path))
    assert lengths[0].value > 0


def test_the_async_api_keeps_its_own_rule(conn: pushy.SyncSession) -> None:
    async def path_from_async() -> Any:
        return await conn.async_session.modules.sys.path

    async_path = aiopushy.sync._loop.run(conn.async_session._loop, path_from_async)
    assert type(async_path) is list


# -- the same body with and without a tracer ------------------------------------------------


def _body(conn: pushy.SyncSession) -> list[Any]:
    path = conn.modules.sys.path
    path.append("/traced")
    popped = conn.modules.sys.path.pop()
    env = conn.modules.os.environ
    return [
        type(path).__name__,
        popped,
        type(conn.modules.sys.version).__name__,
        type(env).__name__,
        conn.eval("'/traced' in __import__('sys').path"),
        len(conn.modules.sys.argv) == len(pushy.copy(conn.modules.sys.argv)),
    ]


def test_a_tracer_changes_nothing(conn: pushy.SyncSession) -> None:
    untraced = _body(conn)

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return tracer  # every line of every frame, as a debugger or coverage would

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        traced = _body(conn)
    finally:
        sys.settrace(previous)
    assert traced == untraced == ["SyncProxy", "/traced", "str", "SyncProxy", False, True]
