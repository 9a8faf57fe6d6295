"""A strict decoder for the pickle subset our encoder emits, for bytes from a hostile peer.

The C unpickler is fast but trusts its input: one ``LONG_BINPUT`` with a huge index makes
it allocate gigabytes, ``BUILD`` and ``REDUCE`` reach any object on its stack, and it
builds whatever sets and dicts it is told to, however costly their keys are to hash.
This decoder understands only the opcodes a protocol-5 pickler emits for our value types,
and holds every frame to rules that keep its cost linear in the frame's size:

* **Opcodes.** No ``PUT``-family opcodes (the memo only grows by ``MEMOIZE``, one entry
  per object); ``STACK_GLOBAL`` resolves only ``slice``, ``range``, ``complex`` and
  ``Ellipsis``; ``REDUCE`` calls only those three types, with numbers or ``None``; no
  ``BUILD``, ``INST``, ``OBJ``, ``NEWOBJ``, ``EXT*``, ``GLOBAL`` or buffers.
* **Nesting.** Containers nest at most ``MAX_DEPTH`` deep.
* **Keys.** A set member, frozenset member or dict key is a string, bytes, ``None``, a
  bool, an int of at most ``MAX_KEY_INT_BITS`` bits, a float, a complex, a frozenset, a
  reference, or a tuple of at most ``MAX_KEY_ITEMS`` of those (but tuples): hashing any
  of them is cheap and never recursive. Keys whose hash a peer could choose (all but
  strings, bytes and small ints, whose hashes are randomised or distinct) may share a
  hash at most ``MAX_COLLISIONS`` times in one container, so a set or dict never
  degrades into quadratic probing.
* **Sharing.** A container fetched again from the memo (``BINGET``) counts with its whole
  expanded size against ``EXPANSION_FACTOR`` nodes per byte of the frame, so a naive
  walk of the value (``repr``, ``==``, the caller's own code) stays linear in the frame;
  and it can no longer be changed (so no container grows after it was shared, and none
  contains itself).
* **Memory.** Every allocation beyond ``UNCHARGED_FACTOR`` bytes per byte of input is
  charged to a budget, so decoding ``n`` bytes allocates at most ``MEMORY_FACTOR * n +
  MEMORY_ALLOWANCE`` bytes (on CPython, whose object sizes the charges follow).
* **Mutation.** ``APPEND``/``SETITEM``/``ADDITEMS`` only change lists, dicts and sets that
  this decoder built and has not shared; objects from references are never changed.

The limits behind these rules, and the checks of keys and shared containers, are in
``bounds``. Decoding never recurses. ``steps`` decodes in slices (a generator that yields after
every ``step`` bytes of input, or as much work), so a large frame never holds up an
event loop for long; ``loads`` decodes at once. The decoder is one loop over local
variables, the most frequent opcodes tested first: it runs for every answer the
controller receives.
"""

from __future__ import annotations

import struct
from array import array

try:  # the C implementation alone: pickle.py imports much more
    from _pickle import loads as _scalar_loads
except ImportError:  # PyPy
    from pickle import loads as _scalar_loads

from .bounds import (
    CONTAINERS,
    EXPANSION_ALLOWANCE,
    EXPANSION_FACTOR,
    MAX_DEPTH,
    StrictDecodeError,
    add_items,
    measure,
)
from .codec import ALLOWED_GLOBALS

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    from typing import Any, Callable, Generator

    Steps = Generator[None, None, Any]

#: Bytes of memory per byte of the frame that decoding may allocate, and the allowance
#: every frame gets on top.
MEMORY_FACTOR = 64
MEMORY_ALLOWANCE = 65536
#: The most that any opcode not charged to the memory budget allocates per byte of input
#: (a stack or memo slot per one-byte opcode, a 28-byte int per three bytes).
UNCHARGED_FACTOR = 12

# What the charged allocations cost (CPython, 64 bits, rounded up; a stack slot included).
_LIST, _LIST_ITEM = 64, 24
_DICT, _DICT_ITEM = 72, 112
_SET, _SET_ITEM = 224, 128
_TUPLE, _TUPLE_ITEM = 56, 8
_ENTRY = 8  # a container's entry while it is on the stack
_SHARED = 64  # a container's entry among the shared ones
_STR_ASCII, _STR, _STR_PER_BYTE = 57, 88, 4
_BYTES, _BYTEARRAY, _LONG = 41, 72, 40
_REFERENCE = 256  # a proxy and its table entry
_REDUCED = 80  # a slice, range or complex

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
_NO_ENTRIES = array("q")
_MEMO_INDEX = {0x68: _U1, 0x6A: _U4}  # BINGET, LONG_BINGET
#: Opcodes that take items off the stack: those above the mark, or a fixed number.
_COLLECTING = {0x74, 0x65, 0x75, 0x90, 0x91, 0x31, 0x61, 0x73, 0x85, 0x86, 0x87}
_TAKES = {0x61: 1, 0x73: 2, 0x85: 1, 0x86: 2, 0x87: 3}  # APPEND, SETITEM, TUPLE1-3
#: The container each adding opcode adds to, and what one item it takes costs in memory.
_ADDING = {
    0x61: (list, _LIST_ITEM),
    0x65: (list, _LIST_ITEM),
    0x73: (dict, _DICT_ITEM // 2),
    0x75: (dict, _DICT_ITEM // 2),
    0x90: (set, _SET_ITEM),
}
_REDUCE_ARGS = frozenset({int, float, bool, type(None)})
#: Items a batch may have before it is added in slices.
_SLICE_ITEMS = 16384


def _truncated() -> StrictDecodeError:
    return StrictDecodeError("truncated data")


def _underflow() -> StrictDecodeError:
    return StrictDecodeError("stack underflow")


def _not_on_stack(kind: type) -> StrictDecodeError:
    return StrictDecodeError(f"expected a {kind.__name__} on the stack")


def _too_deep() -> StrictDecodeError:
    return StrictDecodeError(f"containers nested more than {MAX_DEPTH} deep")


def _out_of_memory() -> StrictDecodeError:
    return StrictDecodeError(f"the value needs more than {MEMORY_FACTOR} bytes per byte")


#: Scalars decoded lately, by their encoding (``loads`` fills it): equal bytes decode to
#: equal values, and scalars cannot change, so one may be handed out again. At most
#: ``SCALARS_KEPT`` encodings of at most ``SCALAR_BYTES`` bytes; when full, it starts over.
SCALARS: dict[bytes, Any] = {}
SCALARS_KEPT = 1024
SCALAR_BYTES = 48


def loads(data: bytes, persistent_load: Callable[[Any], Any]) -> Any:
    """Decode ``data`` at once; ``persistent_load(pid)`` turns each reference into an
    object.

    Raises:
        StrictDecodeError: anything outside the allowed subset, or malformed bytes.
    """
    if _one_scalar(data):  # most answers: the C unpickler is safe with one scalar
        try:
            value = _scalar_loads(data)
        except UnicodeDecodeError:
            raise StrictDecodeError("invalid UTF-8 in a string") from None
        except Exception as exc:
            raise StrictDecodeError(f"malformed scalar: {exc!s:.80}") from None
        if len(data) <= SCALAR_BYTES and type(data) is bytes:
            if len(SCALARS) >= SCALARS_KEPT:
                SCALARS.clear()
            SCALARS[data] = value
        return value
    decoded: list[Any] = []
    for _ in _decode(data, persistent_load, 0, decoded):  # a for loop: the cheapest drive
        raise AssertionError("unsliced decoding yielded")  # pragma: no cover
    return decoded[0]


#: Opcodes of one scalar and their operand's width (a value, or the length of one).
_FIXED_WIDTH = {0x4E: 0, 0x88: 0, 0x89: 0, 0x4B: 1, 0x4D: 2, 0x4A: 4, 0x47: 8}
_LENGTH_WIDTH = {0x8C: 1, 0x43: 1, 0x8A: 1, 0x58: 4, 0x42: 4, 0x8B: 4}


def _one_scalar(data: bytes) -> bool:
    """Whether ``data`` is exactly what ``pickle.dumps`` writes for one ``None``, bool,
    int, float, string or bytes: protocol, frame, one opcode, maybe ``MEMOIZE``, ``STOP``."""
    end = len(data)
    pos = 11 if data.startswith(b"\x80\x05\x95") else 2
    if end <= pos or not data.startswith(b"\x80\x05"):
        return False
    op = data[pos]
    width = _FIXED_WIDTH.get(op)
    if width is not None:
        pos += 1 + width
    else:
        width = _LENGTH_WIDTH.get(op)
        if width is None or end < pos + 1 + width:
            return False
        pos += 1 + width + int.from_bytes(data[pos + 1 : pos + 1 + width], "little")
    if pos < end and data[pos] == 0x94:
        pos += 1
    return pos + 1 == end and data[pos] == 0x2E


def steps(data: bytes, persistent_load: Callable[[Any], Any], step: int = 65536) -> Steps:
    """Decode ``data`` in slices: a generator that yields after about every ``step``
    bytes of input (or as much work) and returns the value (``StopIteration.value``).

    Raises:
        StrictDecodeError: as ``loads`` does, from the slice that finds the problem.
    """
    return _decode(data, persistent_load, step, [])


def _decode(  # noqa: PLR0915 - one loop over local variables is the decoder's speed
    data: bytes, persistent_load: Callable[[Any], Any], step: int, decoded: list[Any]
) -> Steps:
    if type(data) is not bytes:
        data = bytes(data)
    view = None  # made on the first string: most answers have none
    end = len(data)
    pos = 0
    stack: list[Any] = []
    push = stack.append
    memo: list[Any] = []
    marks: list[int] = []
    floor = 0  # the stack below the innermost mark is out of reach
    # An entry ``position << 7 | depth`` for each container this decoder built that is on
    # the stack, positions ascending. A container leaves the stack only into another
    # container (or by POP), and comes back only through the memo, which shares it: so
    # these are the only containers that may still change, and the depth of the others is
    # final.
    containers = _NO_ENTRIES[:0]
    shared: set[int] = set()  # ids of containers fetched from the memo: unchangeable
    # Objects from references, by id (kept alive, so that no id is reused): never changed
    # and never walked.
    foreign: dict[int, Any] = {}
    counts: dict[tuple[int, int], int] = {}  # (container id, steerable key hash): uses
    memory = (MEMORY_FACTOR - UNCHARGED_FACTOR) * end + MEMORY_ALLOWANCE
    expansion = EXPANSION_FACTOR * end + EXPANSION_ALLOWANCE
    sliced = step > 0
    if not sliced:
        step = end + 1  # no checkpoint is ever reached
    checkpoint = step
    if data.startswith(b"\x80\x05\x95") and end >= 11:  # the usual PROTO 5 and FRAME
        pos = 11
    while pos < end:
        if pos >= checkpoint:
            yield
            checkpoint = pos + step
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
            if view is None:
                view = memoryview(data)
            if op in _TEXT:
                try:
                    text = str(view[pos : pos + size], "utf-8", "surrogatepass")
                except UnicodeDecodeError:
                    raise StrictDecodeError("invalid UTF-8 in a string") from None
                memory -= _STR_ASCII + size if text.isascii() else _STR + _STR_PER_BYTE * size
                push(text)
            elif op == 0x96:
                memory -= _BYTEARRAY + size
                push(bytearray(view[pos : pos + size]))
            elif op in {0x8A, 0x8B}:
                memory -= _LONG + 2 * size
                push(int.from_bytes(data[pos : pos + size], "little", signed=True))
            else:
                memory -= _BYTES + size
                push(data[pos : pos + size])
            if memory < 0:
                raise _out_of_memory()
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
        elif op == 0x28:  # MARK
            floor = len(stack)
            marks.append(floor)
        elif op in _COLLECTING:
            # TUPLE, APPENDS, SETITEMS, ADDITEMS, FROZENSET, POP_MARK take the items above
            # the mark; TUPLE1 to TUPLE3, APPEND and SETITEM the top one to three.
            if op in _TAKES:
                start = len(stack) - _TAKES[op]
                if start < floor:
                    raise _underflow()
            else:
                if not marks:
                    raise StrictDecodeError("no mark on the stack")
                start = marks.pop()
                floor = marks[-1] if marks else 0
            items = stack[start:]
            del stack[start:]
            if containers and containers[-1] >= start << 7:
                depth = _inner_depth(containers, start) + 1
                if depth > MAX_DEPTH:
                    raise _too_deep()
            else:
                depth = 1
            if op == 0x31:  # POP_MARK
                continue
            if op == 0x74 or 0x85 <= op <= 0x87:  # TUPLE, TUPLE1, TUPLE2, TUPLE3
                memory -= _TUPLE + _ENTRY + _TUPLE_ITEM * len(items)
                if memory < 0:
                    raise _out_of_memory()
                push(tuple(items))
                containers.append(start << 7 | depth)
                continue
            if op == 0x91:  # FROZENSET
                memory -= _SET + _ENTRY + _SET_ITEM * len(items)
                if memory < 0:
                    raise _out_of_memory()
                members: set[Any] = set()
                member_counts: dict[tuple[int, int], int] = {}
                for first in range(0, len(items), _SLICE_ITEMS):
                    if first and sliced:
                        yield
                    chunk = items[first : first + _SLICE_ITEMS]
                    memory -= add_items(members, chunk, foreign, member_counts)
                    if memory < 0:
                        raise _out_of_memory()
                push(frozenset(members))
                containers.append(start << 7 | depth)
                continue
            # Added to the container below the items: one this decoder built (its entry is
            # on top of the others) and has not shared.
            kind, item_cost = _ADDING[op]
            top = start - 1
            if top < floor or type(stack[top]) is not kind:
                raise _not_on_stack(kind)
            entry = containers[-1] if containers else -1
            if entry >> 7 != top:
                raise StrictDecodeError(f"only a {kind.__name__} built here can be added to")
            target = stack[top]
            if id(target) in shared:
                raise StrictDecodeError(f"a {kind.__name__} is added to after it was shared")
            if depth > entry & 127:
                containers[-1] = top << 7 | depth
            memory -= item_cost * len(items)
            if memory < 0:
                raise _out_of_memory()
            if kind is list:
                target.extend(items)
                continue
            for first in range(0, len(items), _SLICE_ITEMS):
                if first and sliced:
                    yield
                memory -= add_items(target, items[first : first + _SLICE_ITEMS], foreign, counts)
                if memory < 0:
                    raise _out_of_memory()
        elif op == 0x4E:  # NONE
            push(None)
        elif op == 0x51:  # BINPERSID
            start = len(stack) - 1
            if start < floor:
                raise _underflow()
            pid = stack.pop()
            _inner_depth(containers, start)
            memory -= _REFERENCE
            if memory < 0:
                raise _out_of_memory()
            value = persistent_load(pid)
            foreign[id(value)] = value
            push(value)
        elif op == 0x88:  # NEWTRUE
            push(True)
        elif op == 0x89:  # NEWFALSE
            push(False)
        elif op in {0x5D, 0x7D, 0x8F}:  # EMPTY_LIST, EMPTY_DICT, EMPTY_SET
            if op == 0x5D:
                memory -= _LIST
                push([])
            elif op == 0x7D:
                memory -= _DICT
                push({})
            else:
                memory -= _SET
                push(set())
            memory -= _ENTRY
            if memory < 0:
                raise _out_of_memory()
            containers.append((len(stack) - 1) << 7 | 1)
        elif op == 0x29:  # EMPTY_TUPLE
            memory -= _ENTRY
            push(())
            containers.append((len(stack) - 1) << 7 | 1)
        elif op in _MEMO_INDEX:
            prefix = _MEMO_INDEX[op]
            if pos + prefix.size > end:
                raise _truncated()
            index = prefix.unpack_from(data, pos)[0]
            pos += prefix.size
            if index >= len(memo):
                raise StrictDecodeError("memo index out of range")
            value = memo[index]
            if type(value) in CONTAINERS and id(value) not in foreign:
                walk = measure(value, expansion, foreign, step if sliced else 0)
                try:
                    while True:
                        next(walk)
                        yield
                except StopIteration as measured:
                    depth, size = measured.value
                expansion -= size
                if id(value) not in shared:
                    shared.add(id(value))
                    memory -= _SHARED
                memory -= _ENTRY
                if memory < 0:
                    raise _out_of_memory()
                push(value)
                containers.append((len(stack) - 1) << 7 | depth)
            else:
                push(value)
        elif op in {0x80, 0x95}:  # PROTO, FRAME (its length is a read-ahead hint)
            pos += 1 if op == 0x80 else 8
            if pos > end:
                raise _truncated()
        elif op == 0x2E:  # STOP
            if len(stack) != 1 or marks:
                raise StrictDecodeError("unbalanced stack at STOP")
            if pos != end:
                raise StrictDecodeError("trailing bytes after STOP")
            decoded.append(stack[0])
            return stack[0]
        elif op == 0x47:  # BINFLOAT
            if pos + 8 > end:
                raise _truncated()
            push(_F8.unpack_from(data, pos)[0])
            pos += 8
        elif op == 0x30:  # POP
            start = len(stack) - 1
            if start < floor:
                raise _underflow()
            stack.pop()
            _inner_depth(containers, start)
        elif op in {0x93, 0x52}:  # STACK_GLOBAL, REDUCE
            start = len(stack) - 2
            if start < floor:
                raise _underflow()
            first, second = stack[start:]
            del stack[start:]
            if op == 0x93:
                _inner_depth(containers, start)
                push(_global(first, second))
            else:
                if _inner_depth(containers, start) > 1:  # the arguments hold containers
                    raise StrictDecodeError("REDUCE arguments are not numbers")
                memory -= _REDUCED
                push(_reduce(first, second))
        else:
            raise StrictDecodeError(f"opcode {op:#04x} is not allowed")
    raise StrictDecodeError("data ended before STOP")


def _inner_depth(containers: array[int], start: int) -> int:
    """Forget the containers at stack positions from ``start`` on (they were taken off the
    stack); the depth of the deepest of them, 0 if none."""
    depth = 0
    limit = start << 7
    while containers and containers[-1] >= limit:
        inner = containers.pop() & 127
        depth = max(depth, inner)
    return depth


def _global(module: Any, name: Any) -> Any:
    try:
        return ALLOWED_GLOBALS[(module, name)]
    except (KeyError, TypeError):
        raise StrictDecodeError(f"refusing to load global {module!s:.80}.{name!s:.80}") from None


def _reduce(function: Any, args: Any) -> Any:
    if not (function is slice or function is range or function is complex):
        raise StrictDecodeError("REDUCE of something other than slice, range, complex")
    if type(args) is not tuple or len(args) > 3:
        raise StrictDecodeError("REDUCE arguments are not a tuple of at most three")
    for arg in args:
        if type(arg) not in _REDUCE_ARGS:
            raise StrictDecodeError("REDUCE arguments are not numbers")
    try:
        return function(*args)
    except (TypeError, ValueError, OverflowError):
        raise StrictDecodeError("invalid slice, range or complex") from None
