"""The controller's shortcuts when it encodes requests: they must send exactly what the
full encoder would, only sooner.

A plain expression (names and calls without arguments on ``conn.modules``) is encoded
once and its bytes sent again for every equal expression; ``conn.modules.os`` is built
once per session; only lazy calls check, when freed, whether they were awaited.
"""

from __future__ import annotations

import gc
import warnings

import pytest

import aiopushy as pushy
from aiopushy._protocol import codec
from aiopushy._protocol import messages as m
from aiopushy._proxy import ATTRIBUTES_KEPT, plain_evaluation

pytestmark = pytest.mark.anyio


async def test_plain_expressions_go_as_plain_values(conn: pushy.Session) -> None:
    expressions = [
        conn.modules.os.getpid(),
        conn.modules.os.path.sep,
        conn.modules.os,
        conn.modules.platform.python_version(),
        conn.modules.a.b().c().d,
    ]
    for by_reference in (False, True):
        for expression in expressions:
            args = (expression, by_reference)
            body = plain_evaluation(conn, args)
            assert body is not None
            # no reference in it: it decodes without a resolver, to the same steps
            op, (ops, flag) = codec.decode_values(body)
            assert (op, ops, flag) == (m.OP_EVALUATE_PLAIN, expression._pushy_ops, by_reference)
            again = plain_evaluation(conn, (_rebuilt(conn, expression), by_reference))
            assert again is body  # an equal expression: the same bytes, not encoded again


async def test_a_plain_request_gives_what_the_full_one_gives(conn: pushy.Session) -> None:
    for _ in range(3):  # the remote keeps the decoded request: the same answer each time
        assert await conn._request(m.OP_EVALUATE_PLAIN, (("os", "getcwd", _CALL), False)) == (
            await conn.eval("__import__('os').getcwd()")
        )
    path = await conn._request(m.OP_EVALUATE_PLAIN, (("sys", "path"), True))
    assert isinstance(path, pushy.Proxy)  # by reference when asked
    with pytest.raises(AttributeError):
        await conn._request(m.OP_EVALUATE_PLAIN, (("os", "no_such_name"), False))


_CALL = (m.EX_CALL, (), {})


def _rebuilt(conn: pushy.Session, expression: pushy.LazyRef) -> pushy.LazyRef:
    node: pushy.LazyRef = conn.modules
    for step in expression._pushy_ops:
        node = node.__getattr__(step) if type(step) is str else node()
    return node


async def test_anything_else_takes_the_full_encoder(conn: pushy.Session) -> None:
    proxy = await pushy.byref(conn.modules.sys.path)
    others = [
        conn.modules.os.getenv("HOME"),  # an argument
        conn.modules.builtins.dict(a=1),  # a keyword
        conn.modules.sys.modules["os"],  # an item
        proxy.copy(),  # rooted at a proxy
        conn.modules.os.getpid() + 1,  # an operator
    ]
    for expression in others:
        assert plain_evaluation(conn, (expression, False)) is None
        expression._pushy_used = True
    # and they all still evaluate, through the full encoder
    assert await conn.modules.os.getenv("NO_SUCH_VARIABLE_HERE") is None
    assert await conn.modules.builtins.dict(a=1) == {"a": 1}


async def test_equal_and_unequal_plain_expressions_give_their_own_values(
    conn: pushy.Session,
) -> None:
    sep, pid = await pushy.gather(conn.modules.os.sep, conn.modules.os.getpid())
    assert (sep, pid) == ("/", conn.info["pid"])
    assert await pushy.gather(*(conn.modules.os.getpid() for _ in range(50))) == [pid] * 50
    version = await conn.modules.platform.python_version()
    assert isinstance(version, str) and version.count(".") == 2


async def test_module_references_are_built_once(conn: pushy.Session) -> None:
    """Modules and their attributes are kept (up to a bound); deeper steps are built
    every time."""
    assert conn.modules.os is conn.modules.os
    assert conn.modules.os.path is conn.modules.os.path
    assert conn.modules.os.path.join is not conn.modules.os.path.join
    assert await conn.modules.os.getpid() == conn.info["pid"]
    kept = ATTRIBUTES_KEPT
    names = [f"name{number}" for number in range(kept + 5)]
    refs = [getattr(conn.modules.string, name) for name in names]
    assert [
        getattr(conn.modules.string, name) is ref for name, ref in zip(names, refs, strict=True)
    ] == [number < kept for number in range(kept + 5)]
    assert await conn.modules.string.digits == "0123456789"


async def test_kept_references_take_no_assignment(conn: pushy.Session) -> None:
    """The references kept as attributes leave assignment refused, as on any lazy
    reference, and ``__setattr__``/``__delattr__`` still read the remote attributes."""
    module = conn.modules.os
    with pytest.raises(AttributeError, match=r"builtins\.setattr"):
        module.sep = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError, match=r"builtins\.delattr"):
        del module.sep
    with pytest.raises(AttributeError, match=r"builtins\.setattr"):
        conn.modules.os2 = module  # type: ignore[misc]
    assert not hasattr(module, "__dict__")
    await module.__setattr__("aiopushy_kept_test", 5)
    assert await module.aiopushy_kept_test == 5
    await module.__delattr__("aiopushy_kept_test")
    assert await module.sep == "/"


async def test_only_calls_warn_when_dropped_unawaited(conn: pushy.Session) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attribute = conn.modules.os.sep
        del attribute
        gc.collect()
    with pytest.warns(RuntimeWarning, match="never awaited"):
        call = conn.modules.os.getpid()
        del call
        gc.collect()
