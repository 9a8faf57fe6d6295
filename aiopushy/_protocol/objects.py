"""Object tables: what one side exported to its peer, and the proxies it holds for the peer.

Reference counting across the link works by counting *transmissions*, so that releases
never race with new exports: every time an object is encoded its export count goes up by
one; the receiver counts how often it received each id while one proxy stood for it, and
when that proxy dies it releases exactly that many. An object leaves the export table
when its count reaches zero.
"""

from __future__ import annotations

import threading
import weakref

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    from typing import Any, Callable


class ExportTable:
    """Objects this side has sent by reference, by object id (``oid``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, list[Any]] = {}  # oid -> [object, transmissions]
        self._by_identity: dict[int, int] = {}  # id(object) -> oid
        self._next_oid = 1

    def export(self, obj: Any) -> int:
        """Return the oid for ``obj``, adding one transmission to its count."""
        with self._lock:
            oid = self._by_identity.get(id(obj))
            if oid is None:
                oid = self._next_oid
                self._next_oid += 1
                self._entries[oid] = [obj, 1]
                self._by_identity[id(obj)] = oid
            else:
                self._entries[oid][1] += 1
            return oid

    def get(self, oid: Any) -> Any:
        """Return the exported object ``oid``; ``KeyError`` if there is none."""
        if type(oid) is not int:
            raise KeyError(oid)
        return self._entries[oid][0]

    def holds(self, obj: Any) -> bool:
        """Whether ``obj`` itself is exported (handed to the peer and not yet released)."""
        with self._lock:
            oid = self._by_identity.get(id(obj))
            return oid is not None and self._entries[oid][0] is obj

    def release(self, oid: Any, count: Any) -> None:
        """Forget ``count`` transmissions of ``oid``; unknown ids are ignored."""
        if type(oid) is not int or type(count) is not int or count <= 0:
            raise ValueError("malformed release")
        with self._lock:
            entry = self._entries.get(oid)
            if entry is None:
                return
            entry[1] -= count
            if entry[1] <= 0:
                del self._entries[oid]
                del self._by_identity[id(entry[0])]

    def clear(self) -> None:
        """Drop every exported object (the peer is gone)."""
        with self._lock:
            self._entries.clear()
            self._by_identity.clear()

    def __len__(self) -> int:
        return len(self._entries)


class ImportTable:
    """One live proxy per peer oid, and how many transmissions that proxy stands for.

    ``release(oid, count)`` is called, from whichever thread drops the last reference to
    a proxy, with the number of transmissions to give back to the peer.
    """

    def __init__(self, release: Callable[[int, int], None]) -> None:
        self._release = release
        # RLock: a weakref callback may run inside ``get`` when it triggers a collection.
        self._lock = threading.RLock()
        self._entries: dict[int, list[Any]] = {}  # oid -> [weakref to proxy, count]

    def get(self, oid: int, make: Callable[[int], Any]) -> Any:
        """Return the proxy for ``oid``, making it with ``make(oid)`` if none is alive."""
        with self._lock:
            entry = self._entries.get(oid)
            if entry is not None:
                proxy = entry[0]()
                if proxy is not None:
                    entry[1] += 1
                    return proxy
                # The old proxy died but its callback has not run yet: settle it now.
                del self._entries[oid]
                self._release(oid, entry[1])
            proxy = make(oid)
            ref = weakref.ref(proxy, self._dropped_callback(oid))
            self._entries[oid] = [ref, 1]
            return proxy

    def _dropped_callback(self, oid: int) -> Callable[[weakref.ref[Any]], None]:
        def dropped(ref: weakref.ref[Any]) -> None:
            with self._lock:
                entry = self._entries.get(oid)
                if entry is None or entry[0] is not ref:
                    return
                del self._entries[oid]
            self._release(oid, entry[1])

        return dropped

    def __len__(self) -> int:
        return len(self._entries)
