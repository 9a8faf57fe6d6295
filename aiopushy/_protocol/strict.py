"""A strict decoder for the pickle subset our encoder emits, for bytes from a hostile peer.

The C unpickler is fast but trusts its input in ways a hostile peer can abuse (a single
``LONG_BINPUT`` with a huge index makes it allocate gigabytes for its memo; ``BUILD``
and ``REDUCE`` reach any object on its stack). This decoder understands only the opcodes
a protocol-5 pickler emits for our value types, and nothing else:

* no ``PUT``-family opcodes (the memo only grows by ``MEMOIZE``, one entry per object);
* ``STACK_GLOBAL`` resolves only ``slice``, ``range``, ``complex`` and ``Ellipsis``, and
  ``REDUCE`` calls only those three types;
* ``APPEND``/``SETITEM``/``ADDITEMS`` only touch exact lists, dicts and sets that this
  decoder built itself (objects behind references are never exact containers);
* no ``BUILD``, ``INST``, ``OBJ``, ``NEWOBJ``, ``EXT*``, ``GLOBAL`` or buffers.

Every allocation is bounded by the input's length, and decoding never recurses.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    from typing import Any, Callable

_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("builtins", "slice"): slice,
    ("builtins", "range"): range,
    ("builtins", "complex"): complex,
    ("builtins", "Ellipsis"): Ellipsis,
}

_U1 = struct.Struct("<B")
_U2 = struct.Struct("<H")
_U4 = struct.Struct("<I")
_I4 = struct.Struct("<i")
_U8 = struct.Struct("<Q")
_F8 = struct.Struct(">d")


class StrictDecodeError(Exception):
    """The bytes use an opcode or construct outside the allowed subset, or are malformed."""


class _Stop(Exception):
    pass


class _Decoder:
    """One decoding pass; opcodes are dispatched through ``_OPCODES``."""

    def __init__(self, data: bytes, persistent_load: Callable[[Any], Any]) -> None:
        self.view = memoryview(data)
        self.end = len(data)
        self.pos = 0
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: list[Any] = []
        self.persistent_load = persistent_load

    def run(self) -> Any:
        view, opcodes = self.view, _OPCODES
        try:
            while True:
                if self.pos >= self.end:
                    raise StrictDecodeError("data ended before STOP")
                op = view[self.pos]
                self.pos += 1
                handler = opcodes.get(op)
                if handler is None:
                    raise StrictDecodeError(f"opcode {op:#04x} is not allowed")
                handler(self)
        except _Stop:
            pass
        if len(self.stack) != 1 or self.marks:
            raise StrictDecodeError("unbalanced stack at STOP")
        if self.pos != self.end:
            raise StrictDecodeError("trailing bytes after STOP")
        return self.stack[0]

    # -- helpers ------------------------------------------------------------------

    def take(self, n: int) -> memoryview:
        start = self.pos
        if start + n > self.end:
            raise StrictDecodeError("truncated data")
        self.pos = start + n
        return self.view[start : self.pos]

    def sized(self, size: struct.Struct) -> memoryview:
        return self.take(size.unpack(self.take(size.size))[0])

    def pop(self, count: int = 1) -> list[Any]:
        if len(self.stack) - (self.marks[-1] if self.marks else 0) < count:
            raise StrictDecodeError("stack underflow")
        items = self.stack[-count:]
        del self.stack[-count:]
        return items

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise StrictDecodeError("no mark on the stack")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def top(self, kind: type) -> Any:
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise StrictDecodeError(f"expected a {kind.__name__} on the stack")
        target = self.stack[-1]
        if type(target) is not kind:
            raise StrictDecodeError(f"expected a {kind.__name__} on the stack")
        return target

    def push(self, value: Any) -> None:
        self.stack.append(value)

    def skip(self, n: int) -> None:
        self.take(n)

    def discard(self, items: list[Any]) -> None:
        """Drop popped items (``POP``, ``POP_MARK``)."""

    # -- opcodes ------------------------------------------------------------------

    def stop(self) -> None:
        raise _Stop

    def memoize(self) -> None:
        if not self.stack:
            raise StrictDecodeError("MEMOIZE on an empty stack")
        self.memo.append(self.stack[-1])

    def get(self, index: int) -> None:
        if index >= len(self.memo):
            raise StrictDecodeError("memo index out of range")
        self.push(self.memo[index])

    def long(self, size: int) -> None:
        self.push(int.from_bytes(self.take(size), "little", signed=True))

    def text(self, size: struct.Struct) -> None:
        try:
            self.push(str(self.sized(size), "utf-8", "surrogatepass"))
        except UnicodeDecodeError:
            raise StrictDecodeError("invalid UTF-8 in a string") from None

    def append(self) -> None:
        (item,) = self.pop(1)
        self.top(list).append(item)

    def extend(self, items: list[Any]) -> None:
        self.top(list).extend(items)

    def set_items(self, items: list[Any]) -> None:
        target = self.top(dict)
        if len(items) % 2:
            raise StrictDecodeError("odd number of dict items")
        try:
            for index in range(0, len(items), 2):
                target[items[index]] = items[index + 1]
        except TypeError:
            raise StrictDecodeError("unhashable dict key") from None

    def add_items(self) -> None:
        items = self.pop_mark()
        try:
            self.top(set).update(items)
        except TypeError:
            raise StrictDecodeError("unhashable set member") from None

    def frozenset(self) -> None:
        try:
            self.push(frozenset(self.pop_mark()))
        except TypeError:
            raise StrictDecodeError("unhashable frozenset member") from None

    def stack_global(self) -> None:
        module, name = self.pop(2)
        try:
            self.push(_ALLOWED_GLOBALS[(module, name)])
        except (KeyError, TypeError):
            raise StrictDecodeError(
                f"refusing to load global {module!s:.80}.{name!s:.80}"
            ) from None

    def reduce(self) -> None:
        function, args = self.pop(2)
        if not (function is slice or function is range or function is complex):
            raise StrictDecodeError("REDUCE of something other than slice, range, complex")
        if type(args) is not tuple:
            raise StrictDecodeError("REDUCE arguments are not a tuple")
        try:
            self.push(function(*args))
        except (TypeError, ValueError, OverflowError):
            raise StrictDecodeError("invalid slice, range or complex") from None

    def persistent_id(self) -> None:
        (pid,) = self.pop(1)
        self.push(self.persistent_load(pid))


_OPCODES: dict[int, Callable[[_Decoder], None]] = {
    0x2E: _Decoder.stop,  # STOP
    0x80: lambda d: d.skip(1),  # PROTO
    0x95: lambda d: d.skip(8),  # FRAME: the length is only a read-ahead hint
    0x94: _Decoder.memoize,  # MEMOIZE
    0x68: lambda d: d.get(d.take(1)[0]),  # BINGET
    0x6A: lambda d: d.get(_U4.unpack(d.take(4))[0]),  # LONG_BINGET
    0x28: lambda d: d.marks.append(len(d.stack)),  # MARK
    0x30: lambda d: d.discard(d.pop(1)),  # POP
    0x31: lambda d: d.discard(d.pop_mark()),  # POP_MARK
    0x4E: lambda d: d.push(None),  # NONE
    0x88: lambda d: d.push(True),  # NEWTRUE
    0x89: lambda d: d.push(False),  # NEWFALSE
    0x4B: lambda d: d.push(d.take(1)[0]),  # BININT1
    0x4D: lambda d: d.push(_U2.unpack(d.take(2))[0]),  # BININT2
    0x4A: lambda d: d.push(_I4.unpack(d.take(4))[0]),  # BININT
    0x8A: lambda d: d.long(d.take(1)[0]),  # LONG1
    0x8B: lambda d: d.long(_U4.unpack(d.take(4))[0]),  # LONG4
    0x47: lambda d: d.push(_F8.unpack(d.take(8))[0]),  # BINFLOAT
    0x8C: lambda d: d.text(_U1),  # SHORT_BINUNICODE
    0x58: lambda d: d.text(_U4),  # BINUNICODE
    0x8D: lambda d: d.text(_U8),  # BINUNICODE8
    0x43: lambda d: d.push(bytes(d.sized(_U1))),  # SHORT_BINBYTES
    0x42: lambda d: d.push(bytes(d.sized(_U4))),  # BINBYTES
    0x8E: lambda d: d.push(bytes(d.sized(_U8))),  # BINBYTES8
    0x96: lambda d: d.push(bytearray(d.sized(_U8))),  # BYTEARRAY8
    0x5D: lambda d: d.push([]),  # EMPTY_LIST
    0x7D: lambda d: d.push({}),  # EMPTY_DICT
    0x8F: lambda d: d.push(set()),  # EMPTY_SET
    0x29: lambda d: d.push(()),  # EMPTY_TUPLE
    0x61: _Decoder.append,  # APPEND
    0x65: lambda d: d.extend(d.pop_mark()),  # APPENDS
    0x73: lambda d: d.set_items(d.pop(2)),  # SETITEM
    0x75: lambda d: d.set_items(d.pop_mark()),  # SETITEMS
    0x90: _Decoder.add_items,  # ADDITEMS
    0x91: _Decoder.frozenset,  # FROZENSET
    0x74: lambda d: d.push(tuple(d.pop_mark())),  # TUPLE
    0x85: lambda d: d.push(tuple(d.pop(1))),  # TUPLE1
    0x86: lambda d: d.push(tuple(d.pop(2))),  # TUPLE2
    0x87: lambda d: d.push(tuple(d.pop(3))),  # TUPLE3
    0x93: _Decoder.stack_global,  # STACK_GLOBAL
    0x52: _Decoder.reduce,  # REDUCE
    0x51: _Decoder.persistent_id,  # BINPERSID
}


def loads(data: bytes, persistent_load: Callable[[Any], Any]) -> Any:
    """Decode ``data``; ``persistent_load(pid)`` turns each reference into an object."""
    return _Decoder(data, persistent_load).run()
