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

Every allocation is bounded by the input's length, and decoding never recurses. The
decoder is one loop over local variables, the most frequent opcodes tested first: it runs
for every answer the controller receives.
"""

from __future__ import annotations

import struct

from .codec import ALLOWED_GLOBALS

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    from typing import Any, Callable


_U1 = struct.Struct("<B")
_U2 = struct.Struct("<H")
_U4 = struct.Struct("<I")
_I4 = struct.Struct("<i")
_U8 = struct.Struct("<Q")
_F8 = struct.Struct(">d")


# The length prefix of each opcode followed by that many bytes of data.
_TEXT = {0x8C: _U1, 0x58: _U4, 0x8D: _U8}  # SHORT_BINUNICODE, BINUNICODE, BINUNICODE8
_SIZED = {
    **_TEXT,
    0x43: _U1,  # SHORT_BINBYTES
    0x42: _U4,  # BINBYTES
    0x8E: _U8,  # BINBYTES8
    0x96: _U8,  # BYTEARRAY8
    0x8A: _U1,  # LONG1
    0x8B: _U4,  # LONG4
}
_MEMO_INDEX = {0x68: _U1, 0x6A: _U4}  # BINGET, LONG_BINGET


class StrictDecodeError(Exception):
    """The bytes use an opcode or construct outside the allowed subset, or are malformed."""


def _truncated() -> StrictDecodeError:
    return StrictDecodeError("truncated data")


def _underflow() -> StrictDecodeError:
    return StrictDecodeError("stack underflow")


def _not_on_stack(kind: type) -> StrictDecodeError:
    return StrictDecodeError(f"expected a {kind.__name__} on the stack")


def loads(data: bytes, persistent_load: Callable[[Any], Any]) -> Any:  # noqa: PLR0915
    """Decode ``data``; ``persistent_load(pid)`` turns each reference into an object.

    Raises:
        StrictDecodeError: anything outside the allowed subset, or malformed bytes.
    """
    if type(data) is not bytes:
        data = bytes(data)
    view = memoryview(data)
    end = len(data)
    pos = 0
    stack: list[Any] = []
    push = stack.append
    memo: list[Any] = []
    marks: list[int] = []
    floor = 0  # the stack below the innermost mark is out of reach
    if data.startswith(b"\x80\x05\x95") and end >= 11:  # the usual PROTO 5 and FRAME
        pos = 11
    while pos < end:
        op = data[pos]
        pos += 1
        if op == 0x94:  # MEMOIZE
            if not stack:
                raise StrictDecodeError("MEMOIZE on an empty stack")
            memo.append(stack[-1])
        elif op in _SIZED:  # strings, bytes, bytearrays, long integers
            prefix = _SIZED[op]
            if pos + prefix.size > end:
                raise _truncated()
            size = prefix.unpack_from(data, pos)[0]
            pos += prefix.size
            if pos + size > end:
                raise _truncated()
            if op in _TEXT:
                try:
                    push(str(view[pos : pos + size], "utf-8", "surrogatepass"))
                except UnicodeDecodeError:
                    raise StrictDecodeError("invalid UTF-8 in a string") from None
            elif op == 0x96:
                push(bytearray(view[pos : pos + size]))
            elif op in {0x8A, 0x8B}:
                push(int.from_bytes(data[pos : pos + size], "little", signed=True))
            else:
                push(data[pos : pos + size])
            pos += size
        elif op == 0x4B:  # BININT1
            if pos >= end:
                raise _truncated()
            push(data[pos])
            pos += 1
        elif op in {0x4A, 0x4D}:  # BININT, BININT2
            unpack = _I4 if op == 0x4A else _U2
            if pos + unpack.size > end:
                raise _truncated()
            push(unpack.unpack_from(data, pos)[0])
            pos += unpack.size
        elif 0x85 <= op <= 0x87:  # TUPLE1, TUPLE2, TUPLE3
            count = op - 0x84
            if len(stack) - floor < count:
                raise _underflow()
            value = tuple(stack[-count:])
            del stack[-count:]
            push(value)
        elif op == 0x28:  # MARK
            floor = len(stack)
            marks.append(floor)
        elif op in {0x74, 0x65, 0x75, 0x90, 0x91, 0x31}:
            # TUPLE, APPENDS, SETITEMS, ADDITEMS, FROZENSET, POP_MARK: pop to the mark
            if not marks:
                raise StrictDecodeError("no mark on the stack")
            start = marks.pop()
            floor = marks[-1] if marks else 0
            items = stack[start:]
            del stack[start:]
            if op == 0x74:
                push(tuple(items))
            elif op == 0x31:
                pass
            elif op == 0x91:
                try:
                    push(frozenset(items))
                except TypeError:
                    raise StrictDecodeError("unhashable frozenset member") from None
            else:
                kind = list if op == 0x65 else dict if op == 0x75 else set
                if len(stack) <= floor or type(stack[-1]) is not kind:
                    raise _not_on_stack(kind)
                _add_items(stack[-1], items)
        elif op == 0x4E:  # NONE
            push(None)
        elif op == 0x51:  # BINPERSID
            if len(stack) <= floor:
                raise _underflow()
            push(persistent_load(stack.pop()))
        elif op == 0x88:  # NEWTRUE
            push(True)
        elif op == 0x89:  # NEWFALSE
            push(False)
        elif op == 0x5D:  # EMPTY_LIST
            push([])
        elif op == 0x7D:  # EMPTY_DICT
            push({})
        elif op == 0x29:  # EMPTY_TUPLE
            push(())
        elif op == 0x8F:  # EMPTY_SET
            push(set())
        elif op in _MEMO_INDEX:
            prefix = _MEMO_INDEX[op]
            if pos + prefix.size > end:
                raise _truncated()
            index = prefix.unpack_from(data, pos)[0]
            pos += prefix.size
            if index >= len(memo):
                raise StrictDecodeError("memo index out of range")
            push(memo[index])
        elif op in {0x80, 0x95}:  # PROTO, FRAME (its length is a read-ahead hint)
            pos += 1 if op == 0x80 else 8
            if pos > end:
                raise _truncated()
        elif op == 0x2E:  # STOP
            if len(stack) != 1 or marks:
                raise StrictDecodeError("unbalanced stack at STOP")
            if pos != end:
                raise StrictDecodeError("trailing bytes after STOP")
            return stack[0]
        elif op in {0x61, 0x73}:  # APPEND, SETITEM
            count = 1 if op == 0x61 else 2
            if len(stack) - floor < count:
                raise _underflow()
            items = stack[-count:]
            del stack[-count:]
            kind = list if op == 0x61 else dict
            if len(stack) <= floor or type(stack[-1]) is not kind:
                raise _not_on_stack(kind)
            _add_items(stack[-1], items)
        elif op == 0x47:  # BINFLOAT
            if pos + 8 > end:
                raise _truncated()
            push(_F8.unpack_from(data, pos)[0])
            pos += 8
        elif op == 0x30:  # POP
            if len(stack) <= floor:
                raise _underflow()
            stack.pop()
        elif op in {0x93, 0x52}:  # STACK_GLOBAL, REDUCE
            if len(stack) - floor < 2:
                raise _underflow()
            first, second = stack[-2:]
            del stack[-2:]
            push(_global(first, second) if op == 0x93 else _reduce(first, second))
        else:
            raise StrictDecodeError(f"opcode {op:#04x} is not allowed")
    raise StrictDecodeError("data ended before STOP")


def _add_items(target: Any, items: list[Any]) -> None:
    """``APPEND(S)``, ``SETITEM(S)``, ``ADDITEMS``: ``target`` is an exact list, dict or set
    that this decoder built."""
    if type(target) is list:
        target.extend(items)
    elif type(target) is set:
        try:
            target.update(items)
        except TypeError:
            raise StrictDecodeError("unhashable set member") from None
    else:
        if len(items) % 2:
            raise StrictDecodeError("odd number of dict items")
        try:
            for index in range(0, len(items), 2):
                target[items[index]] = items[index + 1]
        except TypeError:
            raise StrictDecodeError("unhashable dict key") from None


def _global(module: Any, name: Any) -> Any:
    try:
        return ALLOWED_GLOBALS[(module, name)]
    except (KeyError, TypeError):
        raise StrictDecodeError(f"refusing to load global {module!s:.80}.{name!s:.80}") from None


def _reduce(function: Any, args: Any) -> Any:
    if not (function is slice or function is range or function is complex):
        raise StrictDecodeError("REDUCE of something other than slice, range, complex")
    if type(args) is not tuple:
        raise StrictDecodeError("REDUCE arguments are not a tuple")
    try:
        return function(*args)
    except (TypeError, ValueError, OverflowError):
        raise StrictDecodeError("invalid slice, range or complex") from None
