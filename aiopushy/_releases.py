"""Remote objects to release: queued from any thread, sent in one frame."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable

from ._protocol import codec
from ._protocol import messages as m
from ._protocol.framing import encode_frame


class ReleaseQueue:
    """``(oid, count)`` pairs whose last local proxy was dropped, for the remote.

    ``queue`` may be called from any thread (a garbage collection runs where it runs);
    the first pair queued since the last frame calls ``schedule`` (which must be safe
    from any thread, as ``loop.call_soon_threadsafe`` is) to have the frame sent.
    """

    def __init__(self, schedule: Callable[[], object]) -> None:
        self._schedule = schedule
        self._pairs: collections.deque[tuple[int, int]] = collections.deque()
        self._scheduled = False

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def queue(self, oid: int, count: int) -> None:
        """Queue a release; schedule the frame if none is scheduled."""
        self._pairs.append((oid, count))
        if not self._scheduled:
            self._scheduled = True
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self._schedule()

    def frame(self) -> bytes:
        """The frame releasing every pair queued (``b""`` if none), taken off the queue."""
        self._scheduled = False
        pairs, releases = self._pairs, []
        while pairs:  # popleft: an append from another thread is never lost
            releases.append(pairs.popleft())
        if not releases:
            return b""
        return encode_frame(m.RELEASE, 0, codec.encode_values(tuple(releases)))
