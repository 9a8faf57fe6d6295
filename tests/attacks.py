"""The attacks of the security review, as frames a hostile remote sends (no test
dependencies: the hostile remote process imports this too)."""

from __future__ import annotations

import struct
import sys

#: Python's hash modulus: ints that differ by a multiple of it share a hash.
MODULUS = sys.hash_info.modulus
PROTO = b"\x80\x05"


def memo_get(index: int) -> bytes:
    """``BINGET index`` (or ``LONG_BINGET``)."""
    return b"h" + bytes([index]) if index < 256 else b"j" + struct.pack("<I", index)


def deep_tuples_in_a_frozenset(depth: int = 10**6) -> bytes:
    """10**6 one-element tuples nested in a frozenset: hashing them overflowed the C stack
    of the old decoder (SIGSEGV)."""
    return PROTO + b"(K\x01" + b"\x85" * depth + b"\x91."


def doubling_tuples(levels: int = 100, container: bytes = b"\x8f") -> bytes:
    """``x = (x, x)`` ``levels`` deep through the memo, then put in a set (or any other
    container): hashing or walking it visits 2**levels nodes from about 7 bytes a level."""
    data = PROTO + b"K\x01\x940"
    for index in range(levels):
        data += memo_get(index) + memo_get(index) + b"\x86\x940"  # TUPLE2, MEMOIZE, POP
    member = memo_get(levels)
    if container == b"\x8f":
        return data + b"\x8f(" + member + b"\x90."
    if container == b"}":
        return data + b"}" + member + b"N" + b"s."
    return data + b"]" + member + b"a."


def colliding_ints(count: int = 20_000) -> bytes:
    """A set of ints that all hash to 0: building it probes quadratically (written as
    bytes: building the set here would take as long)."""
    members = b""
    for k in range(1, count + 1):
        value = k * MODULUS
        size = value.bit_length() // 8 + 1
        members += b"\x8a" + bytes([size]) + value.to_bytes(size, "little", signed=True)
    return PROTO + b"\x8f(" + members + b"\x90."


def empty_sets(count: int = 10**6) -> bytes:
    """One byte each, 216 bytes of memory each."""
    return PROTO + b"](" + b"\x8f" * count + b"e."


def large_with_a_bad_end(count: int = 500_000) -> bytes:
    """A megabyte of good list items, then a byte too many: refused after the slices."""
    return PROTO + b"](" + b"K\x01" * count + b"e." + b"!"


ATTACKS = {
    "deep tuples in a frozenset": (deep_tuples_in_a_frozenset(), "nested more than 100"),
    "doubling tuples in a set": (doubling_tuples(), "expand to more than"),
    "doubling tuples as a dict key": (doubling_tuples(container=b"}"), "expand to more"),
    "doubling tuples in a list": (doubling_tuples(container=b"]"), "expand to more than"),
    "colliding ints": (colliding_ints(), "keys share a hash"),
    "empty sets": (empty_sets(), "bytes per byte"),
    "a large frame with a bad end": (large_with_a_bad_end(), "trailing bytes"),
}
