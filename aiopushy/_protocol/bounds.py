"""The rules that keep a strict decode linear in the frame's size, beside the decoder's
loop (``strict``): which keys are cheap to hash, how often a peer may make them collide,
and what a container shared through the memo expands to.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    from typing import Any, Generator, Iterable

#: How deep containers may nest (``[[]]`` is 2 deep).
MAX_DEPTH = 100
#: The most items a tuple used as a key may have.
MAX_KEY_ITEMS = 32
#: The largest int (in bits) that may be used in a key.
MAX_KEY_INT_BITS = 1024
#: How often keys of one container may share a hash a peer could have chosen.
MAX_COLLISIONS = 16
#: Nodes (items of containers, counted with repetition) per byte of the frame that shared
#: containers may add, and the allowance every frame gets on top.
EXPANSION_FACTOR = 16
EXPANSION_ALLOWANCE = 65536
#: What one entry of the collision counts costs in memory.
COUNTED_KEY = 120

CONTAINERS = frozenset({list, dict, set, tuple, frozenset})
#: Keys whose hash a peer cannot steer into collisions: str and bytes (randomised) and the
#: singletons. Small ints are handled apart: at most ten of them share a hash.
_SAFE_KEYS = frozenset({str, bytes, type(None), bool, type(Ellipsis)})
_SMALL_INT = 2**63


class StrictDecodeError(Exception):
    """The bytes use an opcode or construct outside the allowed subset, are malformed, or
    would cost more than the rules allow."""


def add_items(
    target: Any, items: list[Any], foreign: dict[int, Any], counts: dict[Any, int]
) -> int:
    """Add ``items`` to the dict (key, value, key, value, ...) or set ``target``; what the
    collision counts cost in memory.

    Raises:
        StrictDecodeError: a key breaks the rules, or a dict got an odd number of items.
    """
    if type(target) is set:
        cost = check_keys(items, foreign, counts, id(target))
        target.update(items)
        return cost
    if len(items) % 2:
        raise StrictDecodeError("odd number of dict items")
    keys = items[0::2]
    cost = check_keys(keys, foreign, counts, id(target))
    target.update(zip(keys, items[1::2]))
    return cost


def check_keys(
    keys: Iterable[Any], foreign: dict[int, Any], counts: dict[Any, int], owner: int
) -> int:
    """Check that each key is cheap to hash (see the module's rules) and count the hashes
    a peer could steer per ``owner``; what the counts cost in memory.

    Raises:
        StrictDecodeError: a key breaks the rules.
    """
    cost = 0
    for key in keys:
        kind = type(key)
        if kind in _SAFE_KEYS:
            continue
        if kind is int:
            if -_SMALL_INT < key < _SMALL_INT:
                continue
            if key.bit_length() > MAX_KEY_INT_BITS:
                raise StrictDecodeError(f"an int key of more than {MAX_KEY_INT_BITS} bits")
        elif kind is tuple:
            if len(key) > MAX_KEY_ITEMS:
                raise StrictDecodeError(f"a tuple key of more than {MAX_KEY_ITEMS} items")
            for item in key:
                item_kind = type(item)
                if item_kind is int:
                    if item.bit_length() > MAX_KEY_INT_BITS:
                        raise StrictDecodeError(f"an int key of more than {MAX_KEY_INT_BITS} bits")
                elif not (
                    item_kind in _SAFE_KEYS
                    or item_kind is float
                    or item_kind is complex
                    or item_kind is frozenset
                    or id(item) in foreign
                ):
                    raise StrictDecodeError(f"a tuple key holding a {item_kind.__name__}")
        elif id(key) in foreign or key is slice or key is range or key is complex:
            continue  # hashed by identity, or by the controller's own code
        elif not (kind is float or kind is complex or kind is frozenset):
            raise StrictDecodeError(f"a {kind.__name__} as a set member or dict key")
        slot = (owner, hash(key))
        used = counts.get(slot, 0) + 1
        if used > MAX_COLLISIONS:
            raise StrictDecodeError(f"more than {MAX_COLLISIONS} keys share a hash")
        if used == 1:
            cost += COUNTED_KEY
        counts[slot] = used
    return cost


def measure(
    value: Any, budget: int, foreign: dict[int, Any], step: int
) -> Generator[None, None, Any]:
    """Walk ``value`` as a naive traversal would (shared parts again each time): its
    ``(depth, size)``; yields after about every ``step`` nodes when ``step`` is set.

    Raises:
        StrictDecodeError: it has more than ``budget`` nodes.
    """
    size = 0
    depth = 1
    pending: list[tuple[Any, int]] = [(value, 1)]
    slice_end = step if step else budget + 1
    while pending:
        node, level = pending.pop()
        depth = max(depth, level)
        kind = type(node)
        size += 1 + (2 * len(node) if kind is dict else len(node))
        if size > budget:
            raise StrictDecodeError(
                f"shared containers expand to more than {EXPANSION_FACTOR} items per byte"
            )
        walked = size - len(node)  # the nodes met so far, for the slices
        parts: Iterable[Any] = (p for item in node.items() for p in item) if kind is dict else node
        for part in parts:
            walked += 1
            if walked >= slice_end:
                yield
                slice_end = walked + step
            if type(part) in CONTAINERS and id(part) not in foreign:
                pending.append((part, level + 1))
    return depth, size
