"""``aiopushy.gather``: many remote expressions in flight at once, without a task each."""

from __future__ import annotations

import asyncio
from typing import Any

from ._protocol import messages as m
from ._protocol.framing import frame_parts
from ._proxy import LazyRef, Proxy, RemoteNode, _ByReference, mark_used
from ._session import Session, request_kind


async def gather(
    *expressions: RemoteNode | _ByReference, return_exceptions: bool = False
) -> list[Any]:
    """Await many remote expressions at once, like ``asyncio.gather``, without a task each.

    Each expression (a lazy reference, a proxy, or ``byref(...)``) is sent as its own
    request as soon as it is encoded, so they are all in flight together; the values come
    back in the order given. Expressions of different sessions may be mixed.
    ``asyncio.gather(*expressions)`` gives the same values, but wraps each expression in a
    task, which costs about as much as the request itself: use this for thousands.

    Raises:
        TypeError: an argument is not a remote expression.
        Exception: the first failure, as ``asyncio.gather`` does (the other requests still
            run; their answers are dropped). With ``return_exceptions=True`` failures take
            their places in the list instead.
    """
    results: list[Any] = [None] * len(expressions)
    batches: dict[Session, tuple[list[int], list[tuple[int, tuple[Any, ...]]]]] = {}
    for index, expression in enumerate(expressions):
        if type(expression) is Proxy:
            results[index] = expression  # awaiting a proxy gives the proxy
            continue
        node: RemoteNode
        if type(expression) is _ByReference:
            node, by_reference = expression.node, True
        elif isinstance(expression, LazyRef):  # LazyRef and LazyCall, nothing else
            node, by_reference = expression, False
        else:
            raise TypeError(
                "gather() takes remote expressions (lazy references, proxies, byref()), "
                f"not {type(expression).__name__}"
            )
        mark_used(node)
        positions, requests = batches.setdefault(node._pushy_session, ([], []))
        positions.append(index)
        requests.append((m.OP_EVALUATE, (node, by_reference)))
    runs = [
        _request_all(session, requests, return_exceptions)
        for session, (_, requests) in batches.items()
    ]
    if len(runs) == 1:
        values = [await runs[0]]
    else:  # a task per session; the first failure cancels the others
        tasks = [asyncio.ensure_future(run) for run in runs]
        for task in tasks:
            task.add_done_callback(_retrieve)
        try:
            values = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
    for (positions, _), answers in zip(batches.values(), values, strict=True):
        for index, answer in zip(positions, answers, strict=True):
            results[index] = answer
    return results


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a task's failure as seen: the caller got the first one already."""
    if not task.cancelled():
        task.exception()


async def _request_all(
    session: Session, requests: list[tuple[int, tuple[Any, ...]]], return_exceptions: bool
) -> list[Any]:
    """Send the requests in order, then wait for all answers, in order; no task per
    request. See ``aiopushy.gather``.

    The transport's input coalesces the writes (see ``WriterStream``): the first request
    goes out at once, the others in growing batches while the remote starts on it.
    """
    ids: list[int] = []
    futures: list[asyncio.Future[Any]] = []
    kind = request_kind()
    try:
        for op, args in requests:
            try:
                request_id, future, body = session._register(op, args)
            except Exception as exc:  # a closed session, an argument that cannot travel
                if not return_exceptions:
                    raise
                future = session._loop.create_future()
                future.set_exception(exc)
                futures.append(future)
                continue
            ids.append(request_id)
            futures.append(future)
            try:
                await session._send_frames(frame_parts(kind, request_id, body))
            except Exception:  # the session failed: so did every pending future
                if not return_exceptions or session._error is None:
                    raise
        return await asyncio.gather(*futures, return_exceptions=return_exceptions)
    finally:
        pending = session._pending
        for request_id in ids:
            pending.pop(request_id, None)
        for future in futures:
            if not future.done():
                future.cancel()  # its answer, if it comes, is dropped
            elif not future.cancelled():
                future.exception()  # retrieved: gather reported the first one
