"""Requests the remote makes of the controller: callbacks, and modules to import.

A remote may be hostile: every request is checked before anything runs. A callback may
only call an object the controller handed out; a module request carries only a name, and
the session's ``ForwardPolicy`` decides (see ``_forwarding``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from . import _forwarding
from ._exceptions import ConnectionLost, ProtocolError
from ._protocol import messages as m
from ._protocol.errors import exception_info
from ._protocol.framing import Frame

if TYPE_CHECKING:
    from ._session import Session

#: The longest module name a remote may ask for.
MAX_MODULE_NAME = 1000


def serve_request(session: Session, frame: Frame, request: Any) -> None:
    """Check a request from the remote and start serving it (in a task of the session).

    Called by the pump in order with the other frames: a release behind this request
    cannot drop an object the request names before the request is read.

    Raises:
        ProtocolError: the request is malformed, or calls what was not handed out.
    """
    if type(request) is tuple and request[:1] == (m.OP_FIND_MODULE,):
        name, bytecode = _module_request(request)
        session._spawn(_serve_module(session, frame.request_id, name, bytecode), "import")
        return
    if type(request) is tuple and request[:1] == (m.OP_READ_DATA,):
        package, relative = _data_request(request)
        session._spawn(_serve_data(session, frame.request_id, package, relative), "data")
        return
    try:
        op, (target, args, items) = request
        kwargs = dict(items) if type(items) is tuple else None
    except (TypeError, ValueError):
        raise ProtocolError("malformed callback request") from None
    if op != m.OP_CALL or type(args) is not tuple or kwargs is None:
        raise ProtocolError("malformed callback request")
    if not all(type(name) is str for name in kwargs):
        raise ProtocolError("malformed callback request: a keyword is not a string")
    if not session._refs.exports.holds(target):
        # Only what the controller handed out may be called back (not a type that a
        # global names, not a proxy, not a value).
        raise ProtocolError(f"callback of a {type(target).__name__} it was not handed")
    session._spawn(_serve_callback(session, frame.request_id, target, args, kwargs), "callback")


Bounds = tuple[type[str] | type[bytes], int, int]  # a type, and the least and greatest length


def _pair(request: tuple[Any, ...], first: Bounds, second: Bounds, what: str) -> Any:
    """The two arguments of request ``(op, (a, b))``, each of the type and within the
    lengths given."""
    if len(request) == 2 and type(request[1]) is tuple and len(request[1]) == 2:
        pair: tuple[Any, Any] = request[1]
        if all(
            type(value) is kind and low <= len(value) <= high
            for value, (kind, low, high) in zip(pair, (first, second), strict=True)
        ):
            return pair
    raise ProtocolError(f"malformed {what} request")


def _module_request(request: tuple[Any, ...]) -> tuple[str, bytes]:
    """``(name, bytecode key)`` of an OP_FIND_MODULE request."""
    name: tuple[str, bytes] = _pair(request, (str, 1, MAX_MODULE_NAME), (bytes, 0, 64), "module")
    return name


def _data_request(request: tuple[Any, ...]) -> tuple[str, str]:
    """``(package, relative path)`` of an OP_READ_DATA request."""
    file: tuple[str, str] = _pair(request, (str, 1, MAX_MODULE_NAME), (str, 0, 4096), "data file")
    return file


async def _serve_callback(
    session: Session, request_id: int, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    async def call() -> Any:
        result = target(*args, **kwargs)
        return await result if isinstance(result, Awaitable) else result

    await _reply(session, request_id, call)


async def _serve_module(session: Session, request_id: int, name: str, bytecode: bytes) -> None:
    # Finding, reading and compiling a module, or reading a data file: not in the loop.
    await _reply(
        session,
        request_id,
        lambda: anyio.to_thread.run_sync(_forwarding.answer, name, session.forwarding, bytecode),
        shared=True,
    )


async def _serve_data(session: Session, request_id: int, package: str, relative: str) -> None:
    await _reply(
        session,
        request_id,
        lambda: anyio.to_thread.run_sync(
            _forwarding.data_file, package, relative, session.forwarding
        ),
        shared=True,
    )


async def _reply(
    session: Session, request_id: int, work: Callable[[], Awaitable[Any]], shared: bool = False
) -> None:
    """Answer request ``request_id`` with what ``work()`` gives, or with the exception it
    raises: the remote always gets an answer (a failure here must not leave it waiting).

    ``shared``: the bytes in the answer go to other sessions too (module code, data
    files); a relay may keep them (see ``transport/_relaycache.py``).
    """
    blobs: list[bytes] = []
    try:
        value = await work()
        kind, reply = m.RESULT, session._encoder.encode(value)
        if shared:
            _bytes_within(value, blobs)
    except Exception as exc:
        kind, reply = m.ERROR, session._encoder.encode(exception_info(exc))
    with contextlib.suppress(ConnectionLost):
        await session._send(kind, request_id, reply, blobs)


def _bytes_within(value: Any, found: list[bytes]) -> None:
    """Add the ``bytes`` in ``value`` (in tuples too) to ``found``, in encoding order."""
    if type(value) is bytes:
        found.append(value)
    elif type(value) is tuple:
        for item in value:
            _bytes_within(item, found)
