"""Value encoding: plain data by value, everything else by reference.

The codec is pickle protocol 5 with two restrictions that make it safe to decode bytes
from a hostile peer:

* ``find_class`` admits only ``slice``, ``range``, ``complex`` and ``Ellipsis``; every
  other global (and so every ``REDUCE`` of anything else) is refused.
* A reference (pickle's *persistent id*) decodes to an inert ``Ref`` placeholder: a tuple
  subclass without ``__dict__``, so pickle's ``BUILD``, ``REDUCE`` and ``NEWOBJ`` opcodes
  cannot reach a real object through it. Only after ``load()`` returns are placeholders
  replaced with real objects, by a caller-supplied ``resolve`` that validates them.

Exact instances of ``VALUE_TYPES`` travel by value (containers recursively); the encoder
asks its ``reference`` callback for a persistent id for any other object.
"""

import io
import pickle
from typing import Any, Callable, Dict, Optional, Tuple

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

_ALLOWED_GLOBALS: Dict[Tuple[str, str], Any] = {
    ("builtins", "slice"): slice,
    ("builtins", "range"): range,
    ("builtins", "complex"): complex,
    ("builtins", "Ellipsis"): Ellipsis,
}


class DecodeError(Exception):
    """The bytes are not a valid encoded value, or they name something they must not."""


class Ref(tuple):  # type: ignore[type-arg]
    """Placeholder for a reference while a message is decoded: ``(kind, *payload)``."""

    __slots__ = ()


Reference = Callable[[Any], Tuple[Any, ...]]
Resolve = Callable[[Tuple[Any, ...]], Any]


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, reference: Reference) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self._reference = reference

    def persistent_id(self, obj: Any) -> Optional[Tuple[Any, ...]]:
        if type(obj) in VALUE_TYPES or obj is complex or obj is range or obj is slice:
            # The three types are the callables pickle itself emits to rebuild values.
            return None
        return self._reference(obj)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.references = 0
        self.resolve: Optional[Resolve] = None
        self.error: Optional[BaseException] = None

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise DecodeError(f"refusing to load global {module!s:.80}.{name!s:.80}") from None

    def persistent_load(self, pid: Any) -> Any:
        if type(pid) is not tuple or not pid:
            raise DecodeError("malformed reference")
        self.references += 1
        if self.resolve is None:
            return Ref(pid)
        try:
            return self.resolve(pid)
        except BaseException as exc:
            self.error = exc
            raise


def encode(obj: Any, reference: Reference) -> bytes:
    """Encode ``obj``; ``reference(x)`` gives the persistent id of each non-value ``x``."""
    buffer = io.BytesIO()
    _Pickler(buffer, reference).dump(obj)
    return buffer.getvalue()


def encode_values(obj: Any) -> bytes:
    """Encode data made only of value types (handshake and settings)."""

    def refuse(x: Any) -> Tuple[Any, ...]:
        raise TypeError(f"{type(x).__name__} cannot travel by value")

    return encode(obj, refuse)


def decode(data: bytes, resolve: Resolve, trusted: bool = False) -> Any:
    """Decode ``data``, replacing each reference with ``resolve(payload)``.

    ``resolve`` receives the reference's tuple with every nested reference already
    resolved. Whatever it raises propagates unchanged, so it may raise ``DecodeError``
    for references it will not accept.

    With ``trusted`` (only for bytes from the controller, which the remote obeys anyway)
    references are resolved as pickle meets them, which saves a walk over the result;
    otherwise they are inert placeholders until ``load()`` has finished.

    Raises:
        DecodeError: the bytes are malformed, too deeply nested, or name a forbidden global.
    """
    buffer = io.BytesIO(data)
    unpickler = _Unpickler(buffer)
    if trusted:
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
    if unpickler.references and not trusted:
        try:
            obj = _Substitution(resolve).walk(obj)
        except RecursionError:
            raise DecodeError("message nested too deeply") from None
    return obj


def decode_values(data: bytes) -> Any:
    """Decode data that must contain no references at all."""

    def refuse(payload: Tuple[Any, ...]) -> Any:
        raise DecodeError("unexpected reference in a value-only message")

    return decode(data, refuse)


class _Substitution:
    """Replaces ``Ref`` placeholders in a freshly decoded value, in place where mutable."""

    def __init__(self, resolve: Resolve) -> None:
        self.resolve = resolve
        self.seen: Dict[int, Any] = {}

    def walk(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is Ref:
            return self.resolve(tuple(self.walk(item) for item in obj))
        if kind not in _CONTAINERS:
            return obj
        key = id(obj)
        if key in self.seen:
            return self.seen[key]
        self.seen[key] = obj
        if kind is list:
            for index, item in enumerate(obj):
                obj[index] = self.walk(item)
        elif kind is dict:
            items = list(obj.items())
            obj.clear()
            for k, v in items:
                obj[self.walk(k)] = self.walk(v)
        elif kind is set:
            members = list(obj)
            obj.clear()
            obj.update(self.walk(m) for m in members)
        else:
            if kind is slice:
                obj = slice(self.walk(obj.start), self.walk(obj.stop), self.walk(obj.step))
            else:  # tuple, frozenset
                obj = kind(self.walk(item) for item in obj)
            self.seen[key] = obj
        return obj


_CONTAINERS = frozenset({list, dict, set, tuple, frozenset, slice})
