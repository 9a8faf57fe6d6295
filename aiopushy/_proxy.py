"""Proxies for remote objects and lazy references that build remote expressions.

Attribute access, calls, ``[]`` and arithmetic on ``conn.modules`` or on a ``Proxy`` do
not talk to the remote: they return a ``LazyRef`` holding a root and a tuple of steps.
Awaiting it sends the whole expression in one request; the remote evaluates it and
returns the value (plain data) or a ``Proxy`` (anything else). A ``LazyRef`` passed as an
argument inside another expression is evaluated remotely in the same round trip.

Both classes keep Python's identity semantics for ``==`` and ``hash()``, and refuse
``bool()``, ``len()`` and ``iter()``, which cannot be answered without a round trip.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Generator
from typing import TYPE_CHECKING, Any

from ._protocol import messages as m
from ._protocol.codec import encode_values

if TYPE_CHECKING:
    from ._session import Session

Step = str | tuple[Any, ...]
"""One step of an expression: an attribute name, or an ``EX_*`` tuple (see messages)."""

#: Items fetched per round trip by ``async for``.
DEFAULT_BATCH = 64

# Dunder names that __getattr__ turns into remote attribute reads. Every other dunder, and
# the hooks notebooks and libraries probe with getattr(obj, name, None), raise
# AttributeError so that such probes do not mistake a proxy for something it is not
# (anyio reads __module__ and __qualname__ of callables, functools.wraps reads __dict__).
_REMOTE_DUNDERS = frozenset(
    {
        "__name__",
        "__file__",
        "__path__",
        "__version__",
        "__all__",
        "__len__",
        "__enter__",
        "__exit__",
        "__next__",
        "__setattr__",
        "__delattr__",
    }
)
_PROBED_PREFIXES = ("_repr_", "_ipython_", "_pushy_", "_asyncio_")


class _ModulesRoot:
    """Marker for the root of ``conn.modules`` expressions."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "modules"


MODULES = _ModulesRoot()


class RemoteNode:
    """What ``Proxy`` and ``LazyRef`` share: building expressions, and the refusals."""

    __slots__ = ()
    _pushy_session: Session

    def _pushy_derive(self, step: Step) -> LazyRef:
        raise NotImplementedError

    def _pushy_call(self, step: Step) -> LazyCall:
        raise NotImplementedError

    def __getattr__(self, name: str) -> LazyRef:
        if name[:1] == "_" and (
            name.startswith(_PROBED_PREFIXES)
            or (name.startswith("__") and name.endswith("__") and name not in _REMOTE_DUNDERS)
        ):
            raise AttributeError(name)
        return self._pushy_derive(name)  # a bare name is an attribute step

    def __call__(self, *args: Any, **kwargs: Any) -> LazyCall:
        return self._pushy_call((m.EX_CALL, args, kwargs))

    def __getitem__(self, key: Any) -> LazyRef:
        return self._pushy_derive((m.EX_GETITEM, key))

    def __setitem__(self, key: Any, value: Any) -> None:
        raise TypeError(
            "item assignment on a remote object needs a round trip: "
            "await conn.modules.operator.setitem(proxy, key, value)"
        )

    def __delitem__(self, key: Any) -> None:
        raise TypeError(
            "item deletion on a remote object needs a round trip: "
            "await conn.modules.operator.delitem(proxy, key)"
        )

    def __bool__(self) -> bool:
        raise TypeError(
            f"the truth of {self!r} is only known remotely: await it first "
            "(or await conn.modules.builtins.bool(...))"
        )

    def __iter__(self) -> Any:
        raise TypeError(f"{self!r} is remote: use 'async for', not 'for'")

    def __contains__(self, item: Any) -> bool:
        raise TypeError(f"{self!r} is remote: await conn.modules.operator.contains(proxy, item)")

    def __aiter__(self) -> AsyncIterator[Any]:
        return RemoteIterator(self)

    async def __aenter__(self) -> Any:
        session = self._pushy_session
        manager, value = session._shaped(await session._request(m.OP_ENTER, (self,)), 2)
        self._pushy_session._entered_managers.setdefault(id(self), []).append(manager)
        return value

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        session = self._pushy_session
        stack = session._entered_managers[id(self)]
        manager = stack.pop()
        if not stack:
            del session._entered_managers[id(self)]
        args: tuple[Any, ...] = (None, None, None)
        if exc is not None:
            args = session._remote_exception_args(exc)
        return bool(await manager.__exit__(*args))

    def _binary(self, name: str, other: Any) -> LazyRef:
        return self._pushy_derive((m.EX_BINARY, name, other))

    def _reflected(self, name: str, other: Any) -> LazyRef:
        return self._pushy_derive((m.EX_RBINARY, name, other))

    def __add__(self, other: Any) -> LazyRef:
        return self._binary("add", other)

    def __radd__(self, other: Any) -> LazyRef:
        return self._reflected("add", other)

    def __sub__(self, other: Any) -> LazyRef:
        return self._binary("sub", other)

    def __rsub__(self, other: Any) -> LazyRef:
        return self._reflected("sub", other)

    def __mul__(self, other: Any) -> LazyRef:
        return self._binary("mul", other)

    def __rmul__(self, other: Any) -> LazyRef:
        return self._reflected("mul", other)

    def __truediv__(self, other: Any) -> LazyRef:
        return self._binary("truediv", other)

    def __rtruediv__(self, other: Any) -> LazyRef:
        return self._reflected("truediv", other)

    def __floordiv__(self, other: Any) -> LazyRef:
        return self._binary("floordiv", other)

    def __rfloordiv__(self, other: Any) -> LazyRef:
        return self._reflected("floordiv", other)

    def __mod__(self, other: Any) -> LazyRef:
        return self._binary("mod", other)

    def __rmod__(self, other: Any) -> LazyRef:
        return self._reflected("mod", other)

    def __pow__(self, other: Any) -> LazyRef:
        return self._binary("pow", other)

    def __rpow__(self, other: Any) -> LazyRef:
        return self._reflected("pow", other)

    def __lshift__(self, other: Any) -> LazyRef:
        return self._binary("lshift", other)

    def __rlshift__(self, other: Any) -> LazyRef:
        return self._reflected("lshift", other)

    def __rshift__(self, other: Any) -> LazyRef:
        return self._binary("rshift", other)

    def __rrshift__(self, other: Any) -> LazyRef:
        return self._reflected("rshift", other)

    def __and__(self, other: Any) -> LazyRef:
        return self._binary("and_", other)

    def __rand__(self, other: Any) -> LazyRef:
        return self._reflected("and_", other)

    def __or__(self, other: Any) -> LazyRef:
        return self._binary("or_", other)

    def __ror__(self, other: Any) -> LazyRef:
        return self._reflected("or_", other)

    def __xor__(self, other: Any) -> LazyRef:
        return self._binary("xor", other)

    def __rxor__(self, other: Any) -> LazyRef:
        return self._reflected("xor", other)

    def __matmul__(self, other: Any) -> LazyRef:
        return self._binary("matmul", other)

    def __rmatmul__(self, other: Any) -> LazyRef:
        return self._reflected("matmul", other)

    def __lt__(self, other: Any) -> LazyRef:
        return self._binary("lt", other)

    def __le__(self, other: Any) -> LazyRef:
        return self._binary("le", other)

    def __gt__(self, other: Any) -> LazyRef:
        return self._binary("gt", other)

    def __ge__(self, other: Any) -> LazyRef:
        return self._binary("ge", other)

    def __neg__(self) -> LazyRef:
        return self._pushy_derive((m.EX_UNARY, "neg"))

    def __pos__(self) -> LazyRef:
        return self._pushy_derive((m.EX_UNARY, "pos"))

    def __invert__(self) -> LazyRef:
        return self._pushy_derive((m.EX_UNARY, "invert"))

    def __abs__(self) -> LazyRef:
        return self._pushy_derive((m.EX_UNARY, "abs"))

    # Identity semantics, stated explicitly because the comparisons above are remote.
    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __hash__(self) -> int:
        return id(self)


class Proxy(RemoteNode):
    """A reference to one remote object, alive while this proxy is.

    Awaiting a proxy gives the proxy itself, so ``await x`` works whether ``x`` is a
    proxy or a lazy reference. Dropping the last reference to it tells the remote (in a
    batch) that the object may be freed there.
    """

    __slots__ = ("__weakref__", "_pushy_oid", "_pushy_session", "_pushy_type")

    def __init__(self, session: Session, oid: int, type_name: str) -> None:
        self._pushy_session = session
        self._pushy_oid = oid
        self._pushy_type = type_name

    def _pushy_derive(self, step: Step) -> LazyRef:
        return LazyRef(self._pushy_session, self, (step,))

    def _pushy_call(self, step: Step) -> LazyCall:
        return LazyCall(self._pushy_session, self, (step,))

    def __await__(self) -> Generator[Any, None, Proxy]:
        return self
        yield  # pragma: no cover - makes this a generator

    def __repr__(self) -> str:
        session = self._pushy_session.target
        return f"<aiopushy.Proxy {self._pushy_type} #{self._pushy_oid} on {session}>"


class LazyRef(RemoteNode):
    """A remote expression not evaluated yet: await it to evaluate it in one round trip.

    A lazy *call* (a ``LazyCall``) dropped without being awaited (or used inside another
    expression) emits a ``RuntimeWarning``, like a coroutine that was never awaited.
    """

    __slots__ = ("_pushy_ops", "_pushy_plain", "_pushy_root", "_pushy_session", "_pushy_used")

    def __init__(
        self,
        session: Session,
        root: Any,
        ops: tuple[Step, ...],
        plain: tuple[str | None, ...] | None = None,
    ) -> None:
        self._pushy_session = session
        self._pushy_root = root
        self._pushy_ops = ops
        # The expression's key when it is plain (see plain_evaluation): its attribute
        # names, with None for each call without arguments; None when it is not plain.
        self._pushy_plain = plain
        self._pushy_used = False

    def _pushy_derive(self, step: Step) -> LazyRef:
        self._pushy_used = True
        plain = self._pushy_plain
        if plain is not None:
            plain = (*plain, step) if type(step) is str else None
        return LazyRef(self._pushy_session, self._pushy_root, (*self._pushy_ops, step), plain)

    def _pushy_call(self, step: Step) -> LazyCall:
        self._pushy_used = True
        plain = self._pushy_plain
        if plain is not None:  # step is (EX_CALL, args, kwargs): plain without arguments
            plain = None if step[1] or step[2] else (*plain, None)
        return LazyCall(self._pushy_session, self._pushy_root, (*self._pushy_ops, step), plain)

    def __await__(self) -> Generator[Any, None, Any]:
        self._pushy_used = True
        return self._pushy_session._request(m.OP_EVALUATE, (self, False)).__await__()

    def __repr__(self) -> str:
        return f"<aiopushy.LazyRef {describe(self._pushy_root, self._pushy_ops)}>"


class LazyCall(LazyRef):
    """A ``LazyRef`` whose last step is a call: it warns when dropped unused.

    A class of its own so that only calls pay for the check when they are freed.
    """

    __slots__ = ()

    def __del__(self) -> None:
        if not self._pushy_used:
            warnings.warn(f"remote call {self!r} was never awaited", RuntimeWarning, stacklevel=1)


#: Module references ``conn.modules`` keeps, and attribute references each module
#: reference keeps, at the most; past these, new ones are built every time.
MODULES_KEPT = 512
ATTRIBUTES_KEPT = 64


class _WithDict(LazyRef):
    __slots__ = ("__dict__",)


class _KeepingRef(_WithDict):
    """A ``LazyRef`` that keeps the attribute references it gave out (up to
    ``MODULES_KEPT`` or ``ATTRIBUTES_KEPT``), as attributes of its own: the next lookup
    finds them without ``__getattr__``. (On
    CPython 3.11 a lookup that reaches ``__getattr__`` first builds an ``AttributeError``,
    which costs more than the rest of a call's expression.)"""

    __slots__ = ("_pushy_kept",)

    @property
    def __dict__(self) -> Any:  # type: ignore[override]  # kept private, as with slots
        raise AttributeError("__dict__")

    # Assignment raises, as on any lazy reference (whose slots take no new names). The
    # two methods also shadow the remote attributes of their names, which _REMOTE_DUNDERS
    # promises: _pushy_start keeps those references first, where lookups find them.
    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_pushy_"):
            raise AttributeError(
                f"{self!r} is remote: use await conn.modules.builtins.setattr(obj, name, value)"
            )
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise AttributeError(
            f"{self!r} is remote: use await conn.modules.builtins.delattr(obj, name)"
        )

    def _pushy_start(self) -> None:
        self._pushy_kept = 0
        for name in ("__setattr__", "__delattr__"):
            self._pushy_derive(name)
        self._pushy_kept = 0  # these two do not count

    def _pushy_keep(self, name: str, ref: LazyRef, kept: int) -> LazyRef:
        if self._pushy_kept < kept:
            self._pushy_kept += 1
            object.__setattr__(self, name, ref)
        return ref


class ModulesRef(_KeepingRef):
    """``conn.modules``: a ``LazyRef`` that keeps the references to the modules it gave
    out (``conn.modules.os`` is built once, not on every use)."""

    __slots__ = ()

    def __init__(self, session: Session) -> None:
        super().__init__(session, MODULES, (), ())
        self._pushy_used = True
        self._pushy_start()

    def _pushy_derive(self, step: Step) -> LazyRef:
        if type(step) is not str:
            return super()._pushy_derive(step)
        return self._pushy_keep(step, ModuleRef(self._pushy_session, step), MODULES_KEPT)


class ModuleRef(_KeepingRef):
    """``conn.modules.name``: a ``LazyRef`` that keeps the references to the attributes
    it gave out (``conn.modules.os.getpid`` is built once, not on every call)."""

    __slots__ = ()

    def __init__(self, session: Session, name: str) -> None:
        super().__init__(session, MODULES, (name,), (name,))
        self._pushy_start()

    def _pushy_derive(self, step: Step) -> LazyRef:
        ref = super()._pushy_derive(step)
        return self._pushy_keep(step, ref, ATTRIBUTES_KEPT) if type(step) is str else ref


#: The types of lazy references (``type(x) in LAZY_TYPES`` is the fast test).
LAZY_TYPES = (LazyRef, LazyCall, ModuleRef, ModulesRef)
#: Those that may be plain (see ``plain_evaluation``).
_PLAIN_TYPES = (LazyRef, LazyCall, ModuleRef)

#: Encoded bodies of ``plain_evaluation`` requests, by their key: evaluating to a value,
#: and by reference (at most ``PLAIN_KEPT`` each).
_plain_bodies: tuple[dict[tuple[str | None, ...], bytes], ...] = ({}, {})
PLAIN_KEPT = 4096


def plain_evaluation(session: object, args: tuple[Any, ...]) -> bytes | None:
    """The body of a request evaluating ``args`` (``OP_EVALUATE``'s), from a cache, when
    its expression is plain: on ``conn.modules``, made only of attribute names and calls
    without arguments (``conn.modules.os.getpid()``); ``None`` for any other.

    It goes as ``OP_EVALUATE_PLAIN``: the expression's steps as plain values, no
    reference at all, so equal expressions have equal bodies. The first one is encoded,
    and its bytes are sent again; the remote keeps the requests it decoded, by their bytes.
    """
    node, by_reference = args
    if type(node) not in _PLAIN_TYPES:
        return None
    key = node._pushy_plain
    if key is None or node._pushy_session is not session:
        return None
    node._pushy_used = True
    bodies = _plain_bodies[by_reference is True]
    body = bodies.get(key)
    if body is None:
        body = encode_values((m.OP_EVALUATE_PLAIN, (node._pushy_ops, by_reference is True)))
        if len(bodies) < PLAIN_KEPT:
            bodies[key] = body
    return body


def describe(root: Any, ops: tuple[Step, ...]) -> str:
    """A readable rendering of an expression, for ``repr``."""
    text = repr(root) if root is MODULES else f"<{root._pushy_type} #{root._pushy_oid}>"
    for step in ops:
        if type(step) is str:
            text += f".{step}"
            continue
        kind = step[0]
        if kind == m.EX_CALL:
            text += "(...)" if step[1] or step[2] else "()"
        elif kind == m.EX_GETITEM:
            text += "[...]"
        elif kind == m.EX_UNARY:
            text = f"{step[1]}({text})"
        else:
            text = f"({text} {step[1]} ...)"
    return text


def mark_used(value: Any) -> None:
    """Note that a lazy call was consumed (sent inside another request)."""
    if type(value) is LazyCall:
        value._pushy_used = True


class RemoteIterator:
    """``async for`` over a remote iterable, fetching ``batch`` items per round trip."""

    def __init__(self, node: RemoteNode, batch: int = DEFAULT_BATCH) -> None:
        mark_used(node)
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._node: RemoteNode | None = node
        self._iterator: Any = None
        self._items: list[Any] = []
        self._batch = batch

    def __aiter__(self) -> RemoteIterator:
        return self

    async def __anext__(self) -> Any:
        while not self._items:
            if self._node is not None:
                node, self._node = self._node, None
                request = (m.OP_ITER_START, (node, self._batch))
                session = node._pushy_session
            elif self._iterator is not None:
                session = self._iterator._pushy_session
                request = (m.OP_ITER_NEXT, (self._iterator, self._batch))
            else:
                raise StopAsyncIteration
            self._iterator, items = session._shaped(await session._request(*request), 2)
            if type(items) is not tuple:
                session._shaped(items, -1)  # not a tuple: a protocol violation
            self._items = list(reversed(items))
        return self._items.pop()

    async def next_batch(self) -> list[Any]:
        """The items fetched but not handed out yet, else the next batch; ``[]`` at the end.

        For consumers that hand items out without a trip to the event loop per item (the
        blocking facade, ``aiopushy.sync``). Mixes freely with ``__anext__``.
        """
        try:
            first = await self.__anext__()
        except StopAsyncIteration:
            return []
        rest, self._items = self._items, []
        rest.reverse()
        return [first, *rest]


def iterate(node: RemoteNode, batch: int = DEFAULT_BATCH) -> RemoteIterator:
    """``async for`` over a remote iterable with a chosen batch size.

    ``batch=1`` streams items one round trip each, for iterables that produce slowly.
    """
    return RemoteIterator(node, batch)


class _ByReference:
    """An expression whose value must come back as a proxy even if it is plain data."""

    __slots__ = ("node",)

    def __init__(self, node: RemoteNode) -> None:
        self.node = node

    def __await__(self) -> Generator[Any, None, Proxy]:
        mark_used(self.node)
        session = self.node._pushy_session
        return session._request(m.OP_EVALUATE, (self.node, True)).__await__()


def byref(node: RemoteNode) -> _ByReference:
    """Await ``byref(expr)`` to hold the result by reference, as a ``Proxy``.

    Plain data (lists, dicts, ...) normally comes back as a copy; ``await
    byref(conn.modules.sys.path)`` instead gives a proxy for the remote list itself, so
    ``await path.append(x)`` changes it.
    """
    if not isinstance(node, RemoteNode):
        raise TypeError(f"byref() takes a proxy or lazy reference, not {type(node).__name__}")
    return _ByReference(node)
