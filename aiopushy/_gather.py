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
    """Send the requests in order, then wait for all answers, in order; no task and no
    future per request. See ``aiopushy.gather``.

    The transport's input coalesces the writes (see ``WriterStream``): the first request
    goes out at once, the others in growing batches while the remote starts on it.
    """
    answers = _Answers(len(requests), session._loop.create_future(), return_exceptions)
    ids: list[int] = []
    kind = request_kind()
    try:
        for index, (op, args) in enumerate(requests):
            place = _Place(answers, index)
            try:
                request_id, _, body = session._register(op, args, place)
            except Exception as exc:  # a closed session, an argument that cannot travel
                if not return_exceptions:
                    raise
                place.set_exception(exc)
                continue
            ids.append(request_id)
            pieces = frame_parts(kind, request_id, body)
            try:
                if not session._write_at_once(pieces):
                    await session._send_frames(pieces)
            except Exception:  # the session failed: so did every pending request
                if not return_exceptions or session._error is None:
                    raise
        return await answers.future
    finally:
        pending = session._pending
        for request_id in ids:
            pending.pop(request_id, None)  # an answer still to come is dropped
        if answers.future.done() and not answers.future.cancelled():
            answers.future.exception()  # retrieved: raised above, or not needed
        answers.future.cancel()


class _Answers:
    """The answers to one ``_request_all``, in order: ``future`` gets them all, or the
    first failure (unless failures are returned in their places)."""

    __slots__ = ("future", "missing", "return_exceptions", "values")

    def __init__(
        self, count: int, future: asyncio.Future[list[Any]], return_exceptions: bool
    ) -> None:
        self.values: list[Any] = [None] * count
        self.missing = count
        self.future = future
        self.return_exceptions = return_exceptions
        if not count:
            future.set_result(self.values)


class _Place:
    """One request's place among the ``_Answers``: what waits for its answer in the
    session's ``_pending``, where a future would (``AnswerSink``), at less cost."""

    __slots__ = ("answered", "answers", "index")

    def __init__(self, answers: _Answers, index: int) -> None:
        self.answers = answers
        self.index = index
        self.answered = False

    def done(self) -> bool:
        """Whether the answer came."""
        return self.answered

    def set_result(self, value: Any) -> None:
        """Put the answer in its place."""
        self.answered = True
        answers = self.answers
        answers.values[self.index] = value
        answers.missing -= 1
        if not answers.missing and not answers.future.done():
            answers.future.set_result(answers.values)

    def set_exception(self, exc: BaseException) -> None:
        """Put the failure in its place, or fail them all with it."""
        if self.answers.return_exceptions:
            self.set_result(exc)
        else:
            self.answered = True
            if not self.answers.future.done():
                self.answers.future.set_exception(exc)
