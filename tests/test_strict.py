"""The strict decoder against frames built to hurt: each rule that keeps decoding linear
(nesting, keys, collisions, sharing, memory, mutation), with bytes alone.

The hostile-remote tests (``test_hostile.py``) send the same attacks from a real process.
"""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiopushy._protocol import bounds, codec, strict
from aiopushy._protocol import messages as m

from .attacks import (
    ATTACKS,
    MODULUS,
    PROTO,
    colliding_ints,
    deep_tuples_in_a_frozenset,
    doubling_tuples,
    empty_sets,
    memo_get,
)


def _decode(data: bytes, resolve: Callable[[Any], Any] = lambda pid: pid) -> Any:
    return codec.decode(data, resolve)


def _refused(data: bytes, match: str) -> None:
    with pytest.raises(codec.DecodeError, match=match):
        _decode(data)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_each_attack_is_a_clean_decode_error(name: str) -> None:
    data, match = ATTACKS[name]
    _refused(data, match)


# -- nesting ---------------------------------------------------------------------------


LEAF = [1, 2, 3]  # shared at every level: fetched from the memo each time


def _nested(kind: Callable[[Any], Any], depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = kind(value)
    return value


@pytest.mark.parametrize(
    ("kind", "levels"),
    [
        (lambda x: [x], bounds.MAX_DEPTH),
        (lambda x: (x,), bounds.MAX_DEPTH),
        (lambda x: {"k": x}, bounds.MAX_DEPTH),
        (lambda x: frozenset([x]), bounds.MAX_DEPTH),
        (lambda x: [x, LEAF], bounds.MAX_DEPTH - 1),  # LEAF adds a level at the bottom
    ],
    ids=["list", "tuple", "dict", "frozenset", "shared list"],
)
def test_nesting_is_limited_to_max_depth(kind: Callable[[Any], Any], levels: int) -> None:
    deepest = _nested(kind, levels)
    assert _decode(codec.encode(deepest, _no_refs)) == deepest
    _refused(codec.encode(kind(deepest), _no_refs), "nested more than 100 deep")


def test_deep_frames_decode_without_recursion() -> None:
    data = PROTO + b"]" * 200_000 + b"(K\x02K\x01tQ" + b"a" * 200_000 + b"."
    _refused(data, "nested more than 100 deep")


# -- keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "text",
        b"bytes",
        None,
        True,
        2**1000,
        -(2**70),
        1.5,
        3j,
        ...,
        frozenset({1, (2, 3)}),
        ("a", 1, 2.5, None, b"x", frozenset({1})),
        tuple(range(bounds.MAX_KEY_ITEMS)),
    ],
)
def test_cheap_keys_are_accepted(key: Any) -> None:
    value = ({key: 1}, {key}, frozenset({key}))
    assert _decode(codec.encode(value, _no_refs)) == value


@pytest.mark.parametrize(
    ("key", "match"),
    [
        (((1,),), "tuple key holding a tuple"),
        (tuple(range(bounds.MAX_KEY_ITEMS + 1)), "more than 32 items"),
        (2**1025, "more than 1024 bits"),
        ((2**1025,), "more than 1024 bits"),
        (range(3), "range as a set member"),
    ],
)
def test_costly_keys_are_refused(key: Any, match: str) -> None:
    for value in ({key: 1}, {key}, frozenset({key})):
        _refused(codec.encode(value, _no_refs), match)


@pytest.mark.parametrize(
    "keys",
    [
        [k * MODULUS + 1 for k in range(1, 40)],  # big ints
        [(k * MODULUS,) for k in range(40)],  # tuples hashing alike
        [complex(1_000_003 * k, -k) for k in range(2, 42)],  # complex numbers hashing to 0
    ],
    ids=["ints", "tuples", "complex"],
)
def test_colliding_keys_are_counted_per_container(keys: list[Any]) -> None:
    assert len({hash(k) for k in keys}) == 1
    few = keys[: bounds.MAX_COLLISIONS]
    # Up to the limit in each container, however many containers there are.
    value = [set(few), dict.fromkeys(few), frozenset(few)] * 3
    assert _decode(codec.encode(value, _no_refs)) == value
    for container in (set(keys), dict.fromkeys(keys), frozenset(keys)):
        _refused(codec.encode(container, _no_refs), "keys share a hash")


def test_small_ints_and_strings_need_no_counting() -> None:
    value = {**{i: i for i in range(-1000, 50_000)}, **{str(i): i for i in range(10_000)}}
    assert _decode(codec.encode(value, _no_refs)) == value


# -- sharing ---------------------------------------------------------------------------


def test_a_shared_container_cannot_change_afterwards() -> None:
    # L = []; memoized; fetched again (shared); then L.append(1): refused.
    _refused(PROTO + b"]\x94h\x00K\x01a0.", "added to after it was shared")
    # A list that would contain itself.
    _refused(PROTO + b"]\x94h\x00a.", "added to after it was shared")


def test_sharing_is_counted_with_its_expanded_size() -> None:
    row = [0] * 100
    matrix = [row] * 100  # 10,000 items from a few hundred bytes: within the allowance
    assert _decode(codec.encode(matrix, _no_refs)) == matrix
    big_row = list(range(2000))
    _refused(codec.encode([big_row] * 2000, _no_refs), "expand to more than")


# -- memory ----------------------------------------------------------------------------


def _peak(data: bytes) -> int:
    tracemalloc.start()
    try:
        try:
            value = _decode(data)
        except codec.DecodeError:
            value = None
        del value
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _bound(data: bytes) -> int:
    return strict.MEMORY_FACTOR * len(data) + strict.MEMORY_ALLOWANCE


LEGIT_VALUES = {
    "ints": list(range(256, 10_256)),
    "floats": [i * 0.5 for i in range(10_000)],
    "strings": [str(i) for i in range(10_000)],
    "records": [{"id": i, "name": f"host{i}", "up": True} for i in range(2_500)],
    "small records": [{"a": i} for i in range(10_000)],
    "pairs": [(f"h{i}", i) for i in range(10_000)],
    "int keys": {i: str(i) for i in range(10_000)},
    "set of ints": set(range(256, 10_256)),
    "set of pairs": {(i, i) for i in range(10_000)},
    "empty lists": [[] for _ in range(10_000)],
    "empty dicts": [{} for _ in range(10_000)],
    "bytes": b"x" * 2**20,
    "text": "\N{EURO SIGN}" * 2**18,
}


@pytest.mark.parametrize("name", list(LEGIT_VALUES))
def test_ordinary_values_fit_the_memory_bound(name: str) -> None:
    value = LEGIT_VALUES[name]
    data = codec.encode(value, _no_refs)
    assert _decode(data) == value
    assert _peak(data) <= _bound(data)


#: Frames of one cheap opcode repeated (tracemalloc is slow: 50,000 of each), and the
#: attacks, scaled down alike.
FLOODS = {
    "None": PROTO + b"(" + b"N" * 50_000 + b"l.",
    "memoized None": PROTO + b"(" + b"N\x94" * 25_000 + b"l.",
    "shared strings": PROTO + b"\x8c\x02ab\x94(" + b"h\x00" * 25_000 + b"l.",
    "ints": PROTO + b"(" + b"M\x00\x10" * 25_000 + b"l.",
    "marks": PROTO + b"(" * 50_000,
    "empty tuples": PROTO + b"(" + b")" * 50_000 + b"l.",
    "empty lists": PROTO + b"(" + b"]" * 50_000 + b"l.",
    "one-tuples": PROTO + b"N" + b"\x85" * 99 + b"(" + b"N\x85" * 25_000 + b"l.",
    "two-character strings": PROTO + b"(" + b"\x8c\x02ab" * 12_500 + b"l.",
    "euro signs": PROTO + b"(" + b"\x8c\x03\xe2\x82\xac" * 10_000 + b"l.",
    "references": PROTO + b"(" + b"(K\x02K\x01t\x94Q" * 5_000 + b"l.",
    "deep tuples in a frozenset": deep_tuples_in_a_frozenset(50_000),
    "doubling tuples": doubling_tuples(),
    "colliding ints": colliding_ints(2_000),
    "empty sets": empty_sets(50_000),
}


@pytest.mark.parametrize("name", list(FLOODS))
def test_hostile_frames_fit_the_memory_bound(name: str) -> None:
    data = FLOODS[name]
    assert _peak(data) <= _bound(data)


# -- references and mutation -----------------------------------------------------------


def test_objects_behind_references_are_never_changed() -> None:
    mine = [1, 2]
    ref = b"(K" + bytes([m.REF_RECEIVER]) + b"K\x07t\x94Q"  # the controller's own list
    for tail in (b"K\x03a.", b"(K\x03e.", b"\x94h\x01K\x03a."):
        with pytest.raises(codec.DecodeError):
            _decode(PROTO + ref + tail, lambda pid: mine)
    assert mine == [1, 2]
    # Referenced objects may be keys: they hash by identity or by our own code.
    assert _decode(PROTO + b"}" + ref + b"K\x01s.", lambda pid: "mine") == {"mine": 1}


def test_reduce_takes_numbers_only() -> None:
    assert _decode(codec.encode([slice(1, 2), range(3), 1 + 2j], _no_refs))
    rebuild = b"\x8c\x08builtins\x8c\x05slice\x93"
    _refused(PROTO + rebuild + b"]\x85R.", "not numbers")
    _refused(PROTO + rebuild + b"\x8c\x01a\x85R.", "not numbers")
    _refused(PROTO + b"\x8c\x08builtins\x8c\x07complex\x93\x8c\x031+2\x85R.", "not numbers")


# -- sliced decoding -------------------------------------------------------------------


def _run_steps(data: bytes, step: int) -> tuple[Any, int]:
    decoding = strict.steps(data, lambda pid: pid, step)
    slices = 0
    while True:
        try:
            next(decoding)
        except StopIteration as done:
            return done.value, slices
        slices += 1


def test_steps_give_the_value_loads_gives() -> None:
    value = [LEGIT_VALUES["records"], LEGIT_VALUES["set of pairs"], [list(range(50))] * 50]
    data = codec.encode(value, _no_refs)
    decoded, slices = _run_steps(data, 4096)
    assert decoded == strict.loads(data, lambda pid: pid) == value
    assert slices >= len(data) // 4096 - 1


def test_one_large_batch_is_added_in_slices() -> None:
    count = 5 * 16384
    data = PROTO + b"\x8f(" + b"".join(b"J" + struct.pack("<i", i) for i in range(count))
    data += b"\x90."
    decoded, slices = _run_steps(data, 1 << 30)  # no byte checkpoint: only the batch yields
    assert decoded == set(range(count)) and slices == 4


def test_a_large_shared_walk_is_measured_in_slices() -> None:
    data = codec.encode([list(range(3000))] * 20, _no_refs)
    decoded, slices = _run_steps(data, 1000)
    assert len(decoded) == 20 and slices >= 19 * 3  # 19 walks of 3,001 nodes


# -- generated adversarial frames ------------------------------------------------------

_ATOMS = [
    b"N",
    b"\x88",
    b"K\x07",
    b"M\x00\x10",
    b"J\xff\xff\xff\xff",
    b"G" + b"\x3f\xf0" + b"\0" * 6,
]
_ATOMS += [b"\x8c\x01a", b"C\x01b", b"\x8a\x09" + b"\xff" * 9, b")"]
_OPS = [b"]", b"}", b"\x8f", b"(", b"\x85", b"\x86", b"\x87", b"t", b"e", b"u", b"\x90", b"\x91"]
_OPS += [b"a", b"s", b"0", b"1", b"\x94", b"(K" + bytes([m.REF_RECEIVER]) + b"K\x01tQ"]


@st.composite
def adversarial_frames(draw: st.DrawFn) -> bytes:
    """Opcode sequences of the allowed subset, with memo fetches of what came before: the
    shapes a hostile peer can build, not random bytes."""
    pieces = [PROTO]
    memoized = 0
    for _ in range(draw(st.integers(1, 60))):
        choice = draw(st.integers(0, 9))
        if choice < 3:
            pieces.append(draw(st.sampled_from(_ATOMS)))
        elif choice < 8:
            piece = draw(st.sampled_from(_OPS))
            memoized += piece == b"\x94"
            pieces.append(piece)
        elif memoized:
            pieces.append(memo_get(draw(st.integers(0, memoized - 1))))
        pieces.append(b"\x94" * draw(st.integers(0, 1)))
        memoized += pieces[-1] == b"\x94"
    if draw(st.booleans()):  # repeat a tail, so that sharing and batches grow
        pieces.extend(pieces[-3:] * draw(st.integers(1, 200)))
    return b"".join(pieces) + b"."


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(adversarial_frames())
def test_adversarial_frames_decode_or_fail_cleanly_within_bounds(data: bytes) -> None:
    before = tracemalloc.is_tracing()
    tracemalloc.start()
    try:
        try:
            value = strict.loads(data, lambda pid: ("ref", pid))
        except strict.StrictDecodeError:
            return
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not before:
            tracemalloc.stop()
    assert peak <= _bound(data)
    size, depth = _walk(value)
    assert depth <= bounds.MAX_DEPTH
    assert size <= bounds.EXPANSION_FACTOR * len(data) + bounds.EXPANSION_ALLOWANCE + len(data)
    hash(repr(value))  # a naive walk of the value is bounded too


def _walk(value: Any) -> tuple[int, int]:
    """Nodes (with repetition) and depth, as a naive recursive walk would count them."""
    size, depth = 0, 0
    pending = [(value, 0)]
    while pending:
        node, level = pending.pop()
        size += 1
        if type(node) in bounds.CONTAINERS:
            depth = max(depth, level + 1)
            parts = [p for item in node.items() for p in item] if type(node) is dict else node
            pending.extend((part, level + 1) for part in parts)
    return size, depth


def _no_refs(obj: Any) -> tuple[Any, ...]:
    raise AssertionError(f"unexpected reference for {obj!r}")
