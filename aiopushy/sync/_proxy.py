"""Blocking proxies, and the conversions between the sync and the async world.

``SyncProxy`` wraps an async ``Proxy``; ``SyncRef`` wraps an async ``LazyRef`` (an
expression not sent yet). Both build the same expressions as the async classes and send
each one with a blocking call (one request), so there is one implementation of the
protocol, the async core's.

Every request the facade makes asks for Pushy's rule of what travels by value
(``messages.REQUEST_PUSHY``): exact immutable builtins come back as values, everything
else, lists, dicts and sets included, as proxies. The kind of a value decides, never how
the calling code was compiled.

So an attribute read is sent at once and gives the attribute's value, as in Pushy. Two
reads are known to give a proxy without asking, and stay a ``SyncRef`` that travels with
the next step instead: a module (``conn.modules.os``, the same ``SyncRef`` each time),
and a method of an exact builtin ``list``, ``dict``, ``set``, ``frozenset`` or
``bytearray`` (``remote_list.append``).
Inside ``byref(lambda: ...)`` nothing is sent: the expression is built whole.

Values crossing between the worlds are converted here, and only here: async proxies
coming back become sync proxies (one per remote object while it is alive, so identity
holds); sync proxies and refs passed as arguments become their async counterparts;
local callables passed as arguments become ``Callback`` objects, which the remote calls
in a worker thread.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from .._exceptions import ConnectionLost, ProtocolError, RemoteError
from .._protocol import messages as m
from .._protocol.codec import VALUE_TYPES
from .._proxy import (
    DEFAULT_BATCH,
    LazyRef,
    Proxy,
    RemoteIterator,
    RemoteNode,
    mark_used,
)
from .._session import PUSHY_RULE, Session
from ._loop import in_thread, request, run
from ._operators import Operators

_CONTAINERS = frozenset({list, tuple, set, frozenset, dict})

#: The methods of the exact builtin containers, by the type name a proxy carries. A
#: builtin type cannot be changed, and its instances have no attributes of their own, so
#: ``remote_list.append`` is a method whatever the list holds.
_BUILTIN_METHODS: dict[str, frozenset[str]] = {
    kind.__name__: frozenset(
        name for name in dir(kind) if not name.startswith("_") and callable(getattr(kind, name))
    )
    for kind in (list, dict, set, frozenset, bytearray)
}

# -- conversions ----------------------------------------------------------------------

_table_lock = threading.Lock()
_sync_proxies: weakref.WeakValueDictionary[int, SyncProxy] = weakref.WeakValueDictionary()
_callbacks: weakref.WeakValueDictionary[int, Callback] = weakref.WeakValueDictionary()


def _convert_items(value: Any, convert: Callable[[Any], Any]) -> Any:
    """``value`` (an exact list, tuple, set, frozenset or dict) with ``convert`` applied to
    its items; ``value`` itself when nothing changed."""
    if type(value) is dict:
        pairs = [(convert(k), convert(v)) for k, v in value.items()]
        if all(a is k and b is v for (a, b), (k, v) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    items = [convert(item) for item in value]
    if all(a is b for a, b in zip(items, value, strict=True)):
        return value
    return type(value)(items)


def to_sync(value: Any) -> Any:
    """A value from the async core, for sync code: ``Proxy`` -> ``SyncProxy``."""
    kind = type(value)
    if kind is Proxy:
        with _table_lock:
            proxy = _sync_proxies.get(id(value))
            if proxy is None or proxy._pushy_node is not value:
                proxy = SyncProxy(value)
                _sync_proxies[id(value)] = proxy
        return proxy
    if kind is Callback:
        return value.function
    if kind in _CONTAINERS:
        return _convert_items(value, to_sync)
    return value


def to_async(value: Any) -> Any:
    """A value from sync code, for the async core (see the module's docstring)."""
    kind = type(value)
    if kind is SyncProxy or kind is SyncRef:
        return value._pushy_node
    if kind in _CONTAINERS:
        return _convert_items(value, to_async)
    if kind in VALUE_TYPES or kind is Callback or isinstance(value, RemoteNode):
        return value
    if callable(value) and not inspect.iscoroutinefunction(value):
        with _table_lock:
            callback = _callbacks.get(id(value))
            if callback is None or callback.function is not value:
                callback = Callback(value)
                _callbacks[id(value)] = callback
        return callback
    return value  # async functions are awaited on the loop, as in the async API


class Callback:
    """A local callable as the remote sees it: each call runs it in a worker thread.

    So the callable may block, and call back into the sync API, without stopping the
    event loop. Its arguments arrive converted to the sync world.
    """

    __slots__ = ("__weakref__", "function")

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function

    def __call__(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        return in_thread(self._call, args, kwargs)

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return to_async(self.function(*to_sync(args), **to_sync(kwargs)))

    def __repr__(self) -> str:
        return f"<aiopushy.sync callback {self.function!r}>"


def sync_exception(error: BaseException) -> None:
    """Convert, in place, the async proxies an exception from the core carries."""
    if isinstance(error, RemoteError):
        error.remote_exception = to_sync(error.remote_exception)
        error.remote_args = to_sync(error.remote_args)
    args = to_sync(error.args)
    if args is not error.args:
        error.args = args


async def _under_pushys_rule(function: Callable[..., Any], *args: Any) -> Any:
    PUSHY_RULE.set(True)  # in this task's own context only
    return await function(*args)


def _for_sync(blocking: Callable[..., Any], *args: Any) -> Any:
    """``blocking(*args)``, its result and its exceptions converted for sync code."""
    try:
        result = blocking(*args)
    except Exception as error:
        sync_exception(error)
        raise
    return to_sync(result)


def call_on(loop: asyncio.AbstractEventLoop, function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function(*args)`` (a coroutine function) on ``loop``, its requests under
    Pushy's rule; its converted result."""
    return _for_sync(run, loop, _under_pushys_rule, function, *args)


def call(session: Session, function: Callable[..., Any], *args: Any) -> Any:
    """``call_on`` the loop that ``session`` belongs to."""
    return call_on(session._loop, function, *args)


def evaluate(node: RemoteNode) -> Any:
    """Send expression ``node`` (one request under Pushy's rule); its value, for sync
    code. A ``Proxy`` is its own value."""
    mark_used(node)
    if type(node) is Proxy:
        return to_sync(node)
    return _evaluate_as(node, m.REQUEST_PUSHY)


def _evaluate_as(node: RemoteNode, kind: int, by_reference: bool = False) -> Any:
    """Evaluate ``node`` in one request of frame ``kind`` (whose rule of what travels by
    value applies, unless ``by_reference``); its value, for sync code."""
    return _for_sync(request, node._pushy_session, kind, m.OP_EVALUATE, (node, by_reference))


# -- lazy mode: building whole expressions for byref() ---------------------------------

_local = threading.local()


def _building() -> bool:
    return bool(getattr(_local, "building", 0))


# -- the proxies ----------------------------------------------------------------------


class _Exhausted:
    """Returned by the remote ``next(iterator, default)`` at the end (sent by reference)."""

    __slots__ = ()


_EXHAUSTED = _Exhausted()
_UNAVAILABLE = (ConnectionLost, ProtocolError, RuntimeError)


class _SyncNode(Operators):
    """What ``SyncProxy`` and ``SyncRef`` share: every protocol method is one request."""

    __slots__ = ("_pushy_node",)
    _pushy_node: Any  # Proxy for SyncProxy, LazyRef for SyncRef

    def __init__(self, node: RemoteNode) -> None:
        object.__setattr__(self, "_pushy_node", node)

    # -- building blocks --------------------------------------------------------------

    def _pushy_step(self, ref: LazyRef) -> Any:
        """Evaluate the expression ``ref`` now, or keep it lazy inside ``byref()``."""
        mark_used(ref)
        return SyncRef(ref) if _building() else evaluate(ref)

    def _pushy_binary(self, name: str, other: Any) -> Any:
        return self._pushy_step(self._pushy_node._binary(name, to_async(other)))

    def _pushy_reflected(self, name: str, other: Any) -> Any:
        return self._pushy_step(self._pushy_node._reflected(name, to_async(other)))

    def _pushy_unary(self, name: str) -> Any:
        return self._pushy_step(getattr(self._pushy_node, f"__{name}__")())

    def _pushy_call(self, module: str, name: str, *args: Any) -> Any:
        session = self._pushy_node._pushy_session
        function = RemoteNode.__getattr__(RemoteNode.__getattr__(session.modules, module), name)
        return evaluate(function(*to_async(args)))

    # -- attributes, calls, items -----------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_pushy_"):
            raise AttributeError(name)
        ref = RemoteNode.__getattr__(self._pushy_node, name)  # refuses probes, as async
        if _building() or self._pushy_gives_proxy(name):
            return SyncRef(ref)
        return evaluate(ref)

    def _pushy_gives_proxy(self, name: str) -> bool:
        """Whether attribute ``name`` is known to be a proxy's without asking: a method of
        an exact builtin container."""
        node = self._pushy_node
        return type(node) is Proxy and name in _BUILTIN_METHODS.get(node._pushy_type, ())

    def __setattr__(self, name: str, value: Any) -> None:
        self._pushy_call("builtins", "setattr", self, name, value)

    def __delattr__(self, name: str) -> None:
        self._pushy_call("builtins", "delattr", self, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._pushy_step(self._pushy_node(*to_async(args), **to_async(kwargs)))

    def __getitem__(self, key: Any) -> Any:
        return self._pushy_step(self._pushy_node[to_async(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._pushy_call("operator", "setitem", self, key, value)

    def __delitem__(self, key: Any) -> None:
        self._pushy_call("operator", "delitem", self, key)

    # -- containers and iteration -----------------------------------------------------

    def __len__(self) -> int:
        length: int = self._pushy_call("builtins", "len", self)
        return length

    def __contains__(self, item: Any) -> bool:
        return bool(self._pushy_call("operator", "contains", self, item))

    def __bool__(self) -> bool:
        return bool(self._pushy_call("builtins", "bool", self))

    def __iter__(self) -> Iterator[Any]:
        return SyncIterator(self._pushy_node, DEFAULT_BATCH)

    def __reversed__(self) -> Any:
        return self._pushy_call("builtins", "reversed", self)

    def __next__(self) -> Any:
        item = self._pushy_call("builtins", "next", self, _EXHAUSTED)
        if item is _EXHAUSTED:
            raise StopIteration
        return item

    # -- context managers -------------------------------------------------------------

    def __enter__(self) -> Any:
        return call(self._pushy_node._pushy_session, self._pushy_node.__aenter__)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        session = self._pushy_node._pushy_session
        return bool(call(session, self._pushy_node.__aexit__, exc_type, exc, tb))

    # -- text, introspection ----------------------------------------------------------

    def __str__(self) -> str:
        text: str = self._pushy_call("builtins", "str", self)
        return text

    def __repr__(self) -> str:
        try:
            text: str = self._pushy_call("builtins", "repr", self)
        except _UNAVAILABLE as error:  # keep debuggers and error reports working
            return f"<aiopushy.sync.{type(self).__name__} {self._pushy_node!r}: {error}>"
        return text

    def __format__(self, spec: str) -> str:
        text: str = self._pushy_call("builtins", "format", self, spec)
        return text

    def __dir__(self) -> list[str]:
        names: list[str] = self._pushy_call("builtins", "dir", self)
        return names

    def __instancecheck__(self, instance: Any) -> bool:
        return bool(self._pushy_call("builtins", "isinstance", instance, self))

    def __subclasscheck__(self, subclass: Any) -> bool:
        return bool(self._pushy_call("builtins", "issubclass", subclass, self))

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"{type(self).__name__} objects cannot be pickled or copied")


class SyncProxy(_SyncNode):
    """A remote object, driven with blocking calls.

    Protocol methods work as on the object itself, each in one request: calls,
    attributes (read, set, deleted), items, ``len``, ``in``, ``bool``, iteration (in
    batches), ``with``, arithmetic and comparison operators, ``str``, ``repr``,
    ``format``, ``hash``, ``int``/``float``/``index``, ``dir``, and
    ``isinstance(x, proxy)`` for a remote class. While it is alive, the same
    ``SyncProxy`` stands for the same remote object.
    """

    __slots__ = ("__weakref__",)


class SyncRef(_SyncNode):
    """A remote expression not sent yet, known to give a proxy: a module of
    ``conn.modules``, a method of an exact builtin container (``remote_list.append``), or
    what ``byref`` builds.

    Every use sends the expression together with that use, in one request, as
    ``SyncProxy`` does for its object.
    """

    __slots__ = ()


class SyncModules(SyncRef):
    """``conn.modules`` of a sync session: ``conn.modules.os`` is the module ``os``, a
    ``SyncRef`` sent with its next step, the same one each time (so identity holds)."""

    __slots__ = ("_pushy_modules",)

    def __init__(self, node: RemoteNode) -> None:
        super().__init__(node)
        object.__setattr__(self, "_pushy_modules", {})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_pushy_"):
            raise AttributeError(name)
        module: SyncRef | None = self._pushy_modules.get(name)
        if module is None:
            node = RemoteNode.__getattr__(self._pushy_node, name)
            mark_used(node)  # kept for later: never a forgotten await
            module = self._pushy_modules[name] = SyncRef(node)
        return module


class SyncIterator:
    """Iteration over a remote iterable: items fetched in batches, handed out locally."""

    def __init__(self, node: RemoteNode, batch: int) -> None:
        self._remote = RemoteIterator(node, batch)
        self._session = node._pushy_session
        self._items: list[Any] = []

    def __iter__(self) -> SyncIterator:
        return self

    def __next__(self) -> Any:
        if not self._items:
            self._items = call(self._session, self._remote.next_batch)
            if not self._items:
                raise StopIteration
            self._items.reverse()
        return self._items.pop()


def iterate(obj: SyncProxy | SyncRef, batch: int = DEFAULT_BATCH) -> SyncIterator:
    """Iterate over a remote iterable fetching ``batch`` items per request.

    ``for x in proxy`` fetches 64 at a time; ``batch=1`` suits iterators that produce
    items slowly.
    """
    if not isinstance(obj, _SyncNode):
        raise TypeError(f"iterate() takes a sync proxy, not {type(obj).__name__}")
    return SyncIterator(obj._pushy_node, batch)


def copy(obj: Any) -> Any:
    """A local copy of the remote value of ``obj``, in one request: what the async API
    gives, containers by value (their items too), other objects as proxies.

    ``copy(conn.modules.sys.path)`` is a local ``list`` of the remote list's items. Any
    other argument is returned as it is.
    """
    if not isinstance(obj, _SyncNode):
        return obj
    node = obj._pushy_node
    mark_used(node)
    if type(node) is not LazyRef:  # a proxy: ask for the object it stands for, by value
        node = LazyRef(node._pushy_session, node, ())
    return _evaluate_as(node, m.REQUEST)


def byref(build: Callable[[], Any]) -> SyncProxy:
    """Call ``build()`` and hold the remote value it gives by reference, even plain data.

    ``build`` builds a remote expression, usually in a lambda:
    ``byref(lambda: conn.modules.sys.path)`` gives a proxy for the remote list itself,
    ``byref(lambda: conn.modules.builtins.dict(a=1))`` one for a new remote dict. While
    ``build`` runs, attribute reads, calls, items and operators on remote objects send
    nothing; the whole expression then travels in one request. A remote callable works
    as ``build`` too: ``byref(conn.modules.builtins.dict)`` is a new remote dict.

    Raises:
        TypeError: ``build`` is not callable, or gives no remote value (a value read
            before ``byref`` was called, as in ``byref(conn.modules.sys.path)``, is a
            copy already).
    """
    if not callable(build):
        raise TypeError(
            "byref() takes a function building a remote expression, as in "
            f"byref(lambda: conn.modules.sys.path), not {type(build).__name__}"
        )
    _local.building = getattr(_local, "building", 0) + 1
    try:
        expression = build()
    finally:
        _local.building -= 1
    if type(expression) is SyncProxy:
        return expression
    if type(expression) is not SyncRef:
        raise TypeError(
            f"the function given to byref() returned {type(expression).__name__}, not a "
            "remote expression (build it from conn.modules or from a proxy)"
        )
    node = expression._pushy_node
    mark_used(node)
    proxy: SyncProxy = _evaluate_as(node, m.REQUEST_PUSHY, by_reference=True)
    return proxy
