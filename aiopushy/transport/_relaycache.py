"""Bytes a relaying interpreter keeps for us, so that they cross the link to it once.

Sessions started ``via`` another session send the same large bytes many times: each
interpreter's bootstrap, each forwarded module's code. The session marks them as
*blobs* when it sends a frame (``Session._send(..., blobs=)``). Before its input goes to
the relay, ``RelayCache.parts`` finds each blob in it and, the first time, has the
relaying interpreter keep the blob under a key (its BLAKE2b digest, ``OP_RELAY_KEEP``);
the write then names the key instead of carrying the bytes (``OP_RELAY_WRITE``).

Nothing changes in what the relayed program reads: the relay writes the very bytes it
was given, only once instead of every time. The controller still decides every answer
(a forwarded module is still asked for by each session, under that session's policy);
the relay only repeats bytes the controller told it to keep, when the controller names
them. A write names a key only once the keep request has been answered, so never a
key the relay might not have yet; if keeping fails, the blob is sent as it is.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._exceptions import PushyError
from .._protocol import messages as m

if TYPE_CHECKING:
    from .._session import Session

#: Blobs smaller than this are sent as they are: a key and a keep request would cost more.
MIN_BLOB = 4096
#: The most one relaying interpreter keeps for us; later blobs are sent every time.
KEPT_LIMIT = 256 * 1024 * 1024

_caches: weakref.WeakKeyDictionary[Session, RelayCache] = weakref.WeakKeyDictionary()


def cache_for(via: Session) -> RelayCache:
    """The ``RelayCache`` of the interpreter behind ``via`` (one per session, dropped
    when the session ends)."""
    cache = _caches.get(via)
    if cache is None:
        cache = _caches[via] = RelayCache(via)
        ref = weakref.ref(via)

        def drop() -> None:
            ended = ref()
            if ended is not None:
                _caches.pop(ended, None)

        via._on_end(drop)
    return cache


class RelayCache:
    """The blobs kept by the interpreter behind one session, and how much they weigh."""

    def __init__(self, via: Session, limit: int | None = None) -> None:
        self._via = weakref.ref(via)  # the session holds its caches, not the reverse
        self.limit = KEPT_LIMIT if limit is None else limit
        self._kept: dict[bytes, asyncio.Future[bool]] = {}  # done with True once kept
        self._keys: dict[int, tuple[bytes, bytes]] = {}  # id(blob) -> (blob, key): no rehash
        self.kept_bytes = 0

    async def parts(self, data: bytes, blobs: Sequence[bytes]) -> tuple[bytes, ...]:
        """``data`` as ``Relay.write_parts`` takes it: literal bytes at even positions,
        at odd positions the keys of kept blobs that ``data`` holds.

        ``blobs`` are looked for in the order given, each after the one before.
        """
        parts: list[bytes] = []
        start = 0
        for blob in blobs:
            if len(blob) < MIN_BLOB:
                continue
            at = data.find(blob, start)
            if at < 0:
                continue
            key = await self._kept_key(blob)
            if key is not None:
                parts += (data[start:at], key)
                start = at + len(blob)
        parts.append(data[start:])
        return tuple(parts)

    async def _kept_key(self, blob: bytes) -> bytes | None:
        """The key under which the relay keeps ``blob``, having it kept first if need
        be; ``None`` if it cannot be kept (over the limit, or the keep request failed)."""
        known = self._keys.get(id(blob))
        if known is not None and known[0] is blob:
            key = known[1]
        else:
            key = hashlib.blake2b(blob, digest_size=16).digest()
        kept = self._kept.get(key)
        if kept is None:
            if self.kept_bytes + len(blob) > self.limit:
                return None
            return key if await self._keep(key, blob) else None
        # Shielded: a waiter cancelled must not cancel the keeping for the others.
        return key if await asyncio.shield(kept) else None

    async def _keep(self, key: bytes, blob: bytes) -> bool:
        kept = self._kept[key] = asyncio.get_running_loop().create_future()
        self._keys[id(blob)] = (blob, key)
        self.kept_bytes += len(blob)
        ok = False
        try:
            via = self._via()
            if via is not None:
                # The blob goes on as a blob: a relay in front of this one keeps it too.
                await via._request(m.OP_RELAY_KEEP, (key, blob), blobs=(blob,))
                ok = True
        except (PushyError, OSError):
            pass  # sent as it is; a later write tries again
        finally:
            kept.set_result(ok)
            if not ok:
                del self._kept[key]
                self._keys.pop(id(blob), None)
                self.kept_bytes -= len(blob)
        return ok
