"""Value encoding: plain data by value, everything else by reference.

The wire format is pickle protocol 5. Exact instances of ``VALUE_TYPES`` travel by value
(containers recursively); for any other object the encoder asks its ``reference``
callback for a *persistent id*, a tuple naming the object (see ``references``).

Decoding depends on who sent the bytes:

* From a peer that may be hostile (the remote, seen by the controller): the strict
  decoder in ``strict``, which knows only the opcodes our encoder emits, calls nothing
  but ``slice``, ``range`` and ``complex``, and bounds every allocation by the input.
* From the controller (seen by the remote, which runs whatever the controller asks
  anyway): the C unpickler, restricted to the same globals, for speed.
"""

from __future__ import annotations

import io
import threading

try:  # the C implementation alone: pickle.py would also import re, struct and more
    from _pickle import Pickler, Unpickler, dumps
except ImportError:  # PyPy
    from pickle import Pickler, Unpickler, dumps

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    from typing import Any, Callable, Generator, Tuple

    Reference = Callable[[Any], Tuple[Any, ...]]
    Resolve = Callable[[Tuple[Any, ...]], Any]

PROTOCOL = 5

VALUE_TYPES = frozenset(
    {
        type(None),
        bool,
        int,
        float,
        complex,
        str,
        bytes,
        bytearray,
        slice,
        range,
        type(Ellipsis),
        tuple,
        list,
        dict,
        set,
        frozenset,
    }
)

#: The value types that cannot change: all that travels by value under ``REQUEST_PUSHY``
#: (tuples and frozensets by value, their items each by its own kind).
IMMUTABLE_TYPES = frozenset(
    {
        type(None),
        bool,
        int,
        float,
        complex,
        str,
        bytes,
        slice,
        range,
        type(Ellipsis),
        tuple,
        frozenset,
    }
)

#: The only globals either decoder loads: what pickle names to rebuild our value types.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("builtins", "slice"): slice,
    ("builtins", "range"): range,
    ("builtins", "complex"): complex,
    ("builtins", "Ellipsis"): Ellipsis,
}


class DecodeError(Exception):
    """The bytes are not a valid encoded value, or they name something they must not."""


# Both classes are set up by assigning attributes after the C constructor: a Python-level
# __init__ would cost a frame on every message.


class _Pickler(Pickler):
    _reference: Reference
    _value_types: frozenset[type] = VALUE_TYPES

    def persistent_id(self, obj: Any) -> tuple[Any, ...] | None:
        if type(obj) in self._value_types or obj is complex or obj is range or obj is slice:
            # The three types are the callables pickle itself emits to rebuild values.
            return None
        return self._reference(obj)


class _Unpickler(Unpickler):
    resolve: Resolve
    error: BaseException | None = None

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise DecodeError(f"refusing to load global {module!s:.80}.{name!s:.80}") from None

    def persistent_load(self, pid: Any) -> Any:
        try:
            return _checked_resolve(self.resolve, pid)
        except BaseException as exc:
            self.error = exc  # raised again as itself, not as an unpickling error
            raise


def _checked_resolve(resolve: Resolve, pid: Any) -> Any:
    if type(pid) is not tuple or not pid:
        raise DecodeError("malformed reference")
    return resolve(pid)


#: Values that contain nothing else: encoded without a pickler of our own (the same bytes).
_SCALAR_TYPES = frozenset({type(None), bool, int, float, str, bytes})


def encode(obj: Any, reference: Reference, value_types: frozenset[type] = VALUE_TYPES) -> bytes:
    """Encode ``obj``; ``reference(x)`` gives the persistent id of each ``x`` whose type is
    not among ``value_types``."""
    if type(obj) in _SCALAR_TYPES:  # most answers: no references possible
        return dumps(obj, PROTOCOL)
    buffer = io.BytesIO()
    pickler = _Pickler(buffer, PROTOCOL)
    pickler._reference = reference
    pickler._value_types = value_types
    pickler.dump(obj)
    return buffer.getvalue()


class Encoder:
    """``encode`` for one peer (and one rule of what travels by value), with a pickler
    kept from message to message.

    Setting up a pickler costs more than pickling a typical request, so each encoder keeps
    one and clears it after every message (the pickled objects are not kept alive). A
    second thread, or a nested call, that finds it in use gets a pickler of its own.
    """

    def __init__(self, reference: Reference, value_types: frozenset[type] = VALUE_TYPES) -> None:
        self._reference = reference
        self._value_types = value_types
        self._lock = threading.Lock()
        self._buffer = io.BytesIO()
        self._pickler: _Pickler | None = None

    def encode(self, obj: Any) -> bytes:
        """Encode ``obj`` (see ``encode``)."""
        if type(obj) in _SCALAR_TYPES:
            return dumps(obj, PROTOCOL)
        if not self._lock.acquire(False):
            return encode(obj, self._reference, self._value_types)
        buffer = self._buffer
        try:
            pickler = self._pickler
            if pickler is None:
                pickler = self._pickler = _Pickler(buffer, PROTOCOL)
                pickler._reference = self._reference
                pickler._value_types = self._value_types
            try:
                pickler.dump(obj)
            except BaseException:
                self._pickler = None  # start afresh rather than trust its state
                raise
            finally:
                pickler.clear_memo()
            return buffer.getvalue()
        finally:
            buffer.seek(0)
            buffer.truncate()
            self._lock.release()


def encode_values(obj: Any) -> bytes:
    """Encode data made only of value types (handshake and settings)."""

    def refuse(x: Any) -> tuple[Any, ...]:
        raise TypeError(f"{type(x).__name__} cannot travel by value")

    return encode(obj, refuse)


def decode(data: bytes, resolve: Resolve, trusted: bool = False) -> Any:
    """Decode ``data``, replacing each reference with ``resolve(payload)``.

    ``resolve`` receives the reference's tuple with every nested reference already
    resolved. Whatever it raises propagates unchanged, so it may raise ``DecodeError``
    for references it will not accept.

    Args:
        data: the encoded value.
        resolve: turns a reference tuple into an object.
        trusted: the bytes come from the controller (use the fast C unpickler).

    Raises:
        DecodeError: the bytes are malformed or use anything outside the allowed subset.
    """
    if not trusted:
        return _decode_strictly(data, resolve)
    # A large body received into its own bytearray is read in place (BytesIO would copy it).
    buffer: Any = io.BytesIO(data) if type(data) is bytes else _ViewReader(data)
    unpickler = _Unpickler(buffer)
    unpickler.resolve = resolve
    try:
        obj = unpickler.load()
    except DecodeError:
        raise
    except Exception as exc:
        if unpickler.error is not None:
            raise unpickler.error from None
        raise DecodeError(f"undecodable message: {type(exc).__name__}: {exc!s:.200}") from None
    if buffer.tell() != len(data):
        raise DecodeError("trailing bytes after the encoded value")
    return obj


class _ViewReader:
    """A file over a buffer, for the unpickler: what ``io.BytesIO`` offers, without
    copying the buffer first (large values are copied once, by ``readinto``)."""

    __slots__ = ("_pos", "_view")

    def __init__(self, data: Any) -> None:
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else min(self._pos + size, len(self._view))
        chunk = bytes(self._view[self._pos : end])
        self._pos = end
        return chunk

    def readinto(self, target: Any) -> int:
        count = min(len(target), len(self._view) - self._pos)
        target[:count] = self._view[self._pos : self._pos + count]
        self._pos += count
        return count

    def readline(self) -> bytes:
        end = self._pos
        while end < len(self._view) and self._view[end] != 0x0A:
            end += 1
        return self.read(end + 1 - self._pos)

    def tell(self) -> int:
        return self._pos


_strict: Any = None


def _strict_module() -> Any:
    global _strict
    if _strict is None:  # imported on first use: only the controller decodes untrusted bytes
        from . import strict

        _strict = strict
    return _strict


def _decode_strictly(data: bytes, resolve: Resolve) -> Any:
    strict = _strict_module()
    try:
        return strict.loads(data, lambda pid: _checked_resolve(resolve, pid))
    except strict.StrictDecodeError as exc:
        raise DecodeError(str(exc)) from None


def decode_in_slices(data: bytes, resolve: Resolve, step: int) -> Generator[None, None, Any]:
    """``decode`` of untrusted ``data`` in slices: a generator that yields after about
    every ``step`` bytes of input (or as much work) and returns the value.

    Raises:
        DecodeError: as ``decode`` does, from the slice that finds the problem.
    """
    strict = _strict_module()
    steps = strict.steps(data, lambda pid: _checked_resolve(resolve, pid), step)
    try:
        return (yield from steps)
    except strict.StrictDecodeError as exc:
        raise DecodeError(str(exc)) from None


def refuse_references(payload: tuple[Any, ...]) -> Any:
    """The ``resolve`` of value-only messages: any reference is an error.

    Raises:
        DecodeError: always.
    """
    raise DecodeError("unexpected reference in a value-only message")


def decode_values(data: bytes, trusted: bool = False) -> Any:
    """Decode data that must contain no references at all (see ``decode``)."""
    return decode(data, refuse_references, trusted)
