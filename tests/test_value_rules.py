"""The two rules of what travels by value, side by side on one live session.

The async API's rule (``codec.VALUE_TYPES``): plain data, containers included, comes
back as a copy. Pushy's rule (``messages.REQUEST_PUSHY``, what the sync facade asks for):
only immutable builtins do; lists, dicts, sets and bytearrays come back as proxies to the
remote objects, also inside tuples, in namespaces, iteration, callbacks and exceptions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import aiopushy as pushy
from aiopushy._session import PUSHY_RULE

pytestmark = pytest.mark.anyio


async def pushy_rule(work: Callable[[], Awaitable[Any]]) -> Any:
    """``await work()`` with Pushy's rule in effect for its requests."""
    token = PUSHY_RULE.set(True)
    try:
        return await work()
    finally:
        PUSHY_RULE.reset(token)


IMMUTABLE = "(None, True, 1, 2.5, 3j, 'text', b'bytes', (1, ('nested',)), frozenset({1}), ...)"


async def test_immutable_values_travel_by_value_under_both_rules(conn: pushy.Session) -> None:
    expected = eval(IMMUTABLE)
    assert await conn.eval(IMMUTABLE) == expected
    assert await pushy_rule(lambda: conn.eval(IMMUTABLE)) == expected


@pytest.mark.parametrize("source", ["[1, 2]", "{'a': 1}", "{1, 2}", "bytearray(b'ab')"])
async def test_mutable_containers_are_proxies_under_pushys_rule(
    conn: pushy.Session, source: str
) -> None:
    copy = await conn.eval(source)
    assert copy == eval(source) and not isinstance(copy, pushy.Proxy)
    proxy = await pushy_rule(lambda: conn.eval(source))
    assert isinstance(proxy, pushy.Proxy)
    assert await conn.modules.builtins.type(proxy).__name__ == type(copy).__name__


async def test_tuples_go_by_value_with_their_items_by_kind(conn: pushy.Session) -> None:
    await conn.execute("shared = [1]")
    pair = await pushy_rule(lambda: conn.eval("(shared, 'x')"))
    assert type(pair) is tuple and pair[1] == "x" and isinstance(pair[0], pushy.Proxy)
    await conn.modules.operator.iadd(pair[0], [2])
    assert await conn.eval("shared") == [1, 2]  # the remote list itself


async def test_namespaces_come_back_as_dicts_under_both_rules(conn: pushy.Session) -> None:
    for rule in (False, True):
        names: dict[str, Any] = {}
        token = PUSHY_RULE.set(rule)
        try:
            await conn.execute("x = [1]; y = 2", locals=names)
        finally:
            PUSHY_RULE.reset(token)
        assert type(names) is dict and names["y"] == 2
        assert isinstance(names["x"], pushy.Proxy) is rule


async def test_iteration_items_follow_the_rule(conn: pushy.Session) -> None:
    rows = await pushy.byref(conn.modules.builtins.eval("[[1], [2]]"))

    async def items() -> list[Any]:
        return [row async for row in rows]

    assert await items() == [[1], [2]]
    assert all(isinstance(row, pushy.Proxy) for row in await pushy_rule(items))


async def test_callback_arguments_and_exception_arguments_follow_the_rule(
    conn: pushy.Session,
) -> None:
    seen: list[Any] = []
    call = await conn.eval("lambda f: f([1, 2])")
    await pushy_rule(lambda: call(seen.append))
    assert isinstance(seen[0], pushy.Proxy)
    with pytest.raises(ValueError) as info:
        await pushy_rule(lambda: conn.execute("raise ValueError([1])"))
    assert isinstance(info.value.args[0], pushy.Proxy)
    with pytest.raises(ValueError) as info:
        await conn.execute("raise ValueError([1])")
    assert info.value.args[0] == [1]
