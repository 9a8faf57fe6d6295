"""Whether an attribute read is the middle of a longer expression: a look at the caller.

The facade reads attributes eagerly, as Pushy did, except where the value read is consumed
at once by the next step of the same expression: another attribute read or assignment, a
method call, a subscript with a simple key, ``in`` or a ``for`` loop. There the read stays
lazy, so that ``conn.modules.os.path.join("a", "b")`` travels as one request.

The test is made on the caller's bytecode: the instruction that triggered ``__getattr__``
and the one after it. Only the patterns below count as "consumed at once"; anything else
(an unknown instruction, a read through ``getattr()``, a Python version that compiles
differently) answers "no", which costs round trips but never correctness.
"""

from __future__ import annotations

import dis
import sys
import threading
import weakref
from types import CodeType, FrameType

# The next instruction consumes the value just read, and only it.
_CONSUMERS = frozenset(
    {
        "LOAD_ATTR",
        "LOAD_METHOD",  # Python < 3.12
        "STORE_ATTR",
        "DELETE_ATTR",
        "CONTAINS_OP",  # ``key in conn.modules.os.environ``
        "GET_ITER",  # ``for path in conn.modules.sys.path``
    }
)
# ``value[key]`` with ``key`` pushed by one instruction that cannot touch ``value``.
_KEY_LOADS = frozenset(
    {
        "LOAD_CONST",
        "LOAD_SMALL_INT",
        "LOAD_FAST",
        "LOAD_FAST_BORROW",
        "LOAD_NAME",
        "LOAD_DEREF",
    }
)
_SUBSCRIPTS = frozenset({"BINARY_SUBSCR", "STORE_SUBSCR", "DELETE_SUBSCR"})
_IGNORED = frozenset({"CACHE", "EXTENDED_ARG", "NOP"})
# From Python 3.12 a method call loads the method with LOAD_ATTR and the low oparg bit set.
_METHOD_FLAG = sys.version_info >= (3, 12)

_cache: dict[int, tuple[weakref.ref[CodeType], frozenset[int]]] = {}
_cache_lock = threading.Lock()


def _is_subscript(instruction: dis.Instruction) -> bool:
    if instruction.opname in _SUBSCRIPTS:
        return True
    return instruction.opname == "BINARY_OP" and instruction.argrepr == "[]"  # 3.14


def _chained_offsets(code: CodeType) -> frozenset[int]:
    """Offsets of the attribute loads in ``code`` whose value the next step consumes."""
    instructions = [i for i in dis.get_instructions(code) if i.opname not in _IGNORED]
    chained = set()
    for index, here in enumerate(instructions):
        if here.opname == "LOAD_METHOD" or (
            here.opname == "LOAD_ATTR" and _METHOD_FLAG and (here.arg or 0) & 1
        ):
            chained.add(here.offset)  # a method call follows
            continue
        if here.opname != "LOAD_ATTR" or index + 1 == len(instructions):
            continue
        after = instructions[index + 1]
        subscript = index + 2 < len(instructions) and _is_subscript(instructions[index + 2])
        if after.opname in _CONSUMERS or (after.opname in _KEY_LOADS and subscript):
            chained.add(here.offset)
    return frozenset(chained)


def _offsets(code: CodeType) -> frozenset[int]:
    # Keyed by id with a weak reference, not by the code object: hashing a code object
    # hashes its constants, every time.
    entry = _cache.get(id(code))
    if entry is not None and entry[0]() is code:
        return entry[1]
    offsets = _chained_offsets(code)
    key = id(code)

    def forget(_: object) -> None:
        with _cache_lock:
            if key in _cache and _cache[key][0]() is None:
                del _cache[key]

    with _cache_lock:
        _cache[key] = (weakref.ref(code, forget), offsets)
    return offsets


def consumed_at_once(frame: FrameType | None) -> bool:
    """Whether ``frame`` is executing an attribute load whose value its next step consumes.

    ``frame`` is the caller of ``__getattr__``. Any doubt answers ``False``.
    """
    if frame is None:
        return False
    try:
        return frame.f_lasti in _offsets(frame.f_code)
    except Exception:  # an interpreter whose bytecode we cannot read: stay eager
        return False
