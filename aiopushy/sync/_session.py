"""``SyncSession`` and ``connect()``: the async ``Session``, driven with blocking calls."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .._connect import Connecting
from .._connect import connect as async_connect
from .._protocol.framing import DEFAULT_MAX_FRAME_SIZE
from .._session import Session
from .._stderr import OutputHandler
from ..transport import BaseTransport
from ._loop import facade_loop, opened, refuse_inside_loop
from ._proxy import SyncModules, call, call_on, to_async, to_sync


def _sent_namespace(namespace: Any) -> Any:
    """What the async core gets for a ``globals``/``locals`` argument: a local dict is
    copied (the core refills the copy, which is then copied back)."""
    converted = to_async(namespace)
    if type(namespace) is dict and converted is namespace:
        return dict(namespace)
    return converted


class SyncSession:
    """A connection to one remote interpreter, driven with blocking calls.

    What ``aiopushy.sync.connect()`` gives. It has the methods of the async ``Session``
    without ``await``; results are plain values or ``SyncProxy`` objects. A session is
    safe to use from several threads at once. Use it as a context manager, or call
    ``close()``; sessions left open are closed at interpreter exit.
    ``conn.modules.os.getpid()`` calls a remote function; ``conn.async_session`` is the
    async session underneath.
    """

    def __init__(self, session: Session) -> None:
        if not isinstance(session, Session):
            raise TypeError(f"SyncSession wraps an aiopushy.Session, not {session!r}")
        self._session = session
        self._modules = SyncModules(session.modules)

    @classmethod
    def from_async(cls, session: Session) -> SyncSession:
        """A sync session driving the async ``session``.

        Its calls run on the event loop that made ``session``: the facade's own for a
        session of ``aiopushy.sync``, or an application's loop, which must then keep
        running in another thread (calls made while it is not running raise
        ``RuntimeError``; calls from that loop's own thread are refused too). Closing
        either object closes the session; one made elsewhere is not closed at exit.
        """
        return cls(session)

    @property
    def async_session(self) -> Session:
        """The async ``Session`` underneath, for ``await`` code on its event loop."""
        return self._session

    @property
    def modules(self) -> Any:
        """The remote's modules, imported on first use: ``conn.modules.os.getpid()``."""
        return self._modules

    @property
    def target(self) -> str:
        """The ``"transport:address"`` string the session was made from."""
        return self._session.target

    @property
    def transport(self) -> BaseTransport:
        """The transport carrying the session."""
        return self._session.transport

    @property
    def info(self) -> dict[str, Any]:
        """What the remote said of itself: ``pid``, ``python``, ``platform``, ..."""
        return self._session.info

    @property
    def closed(self) -> bool:
        """Whether the session has ended (closed, or lost)."""
        return self._session.closed

    @property
    def stderr_tail(self) -> str:
        """The last few KiB the remote wrote to its standard error."""
        return self._session.stderr_tail

    @property
    def output(self) -> OutputHandler:
        """The handler of remote output; it runs in the thread running the event loop."""
        return self._session.output

    @output.setter
    def output(self, handler: OutputHandler) -> None:
        self._session.output = handler

    def __repr__(self) -> str:
        return f"<aiopushy.sync.SyncSession {self._session!r}>"

    def __enter__(self) -> SyncSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- running code -----------------------------------------------------------------

    def eval(
        self,
        code: str | Any,
        globals: dict[str, Any] | Any | None = None,
        locals: dict[str, Any] | Any | None = None,
    ) -> Any:
        """Evaluate an expression (source text or a code object from ``compile``).

        Namespaces work as in the async API: without them the session's persistent
        namespace is used; a local dict is sent by value and refilled when the call
        returns; a proxy for a remote dict is used in place.
        """
        return self._run_code(Session.eval, code, globals, locals)

    def execute(
        self,
        code: str | Any,
        globals: dict[str, Any] | Any | None = None,
        locals: dict[str, Any] | Any | None = None,
    ) -> None:
        """Execute statements remotely; namespaces behave as in ``eval``."""
        self._run_code(Session.execute, code, globals, locals)

    def _run_code(self, method: Any, code: Any, globals_: Any, locals_: Any) -> Any:
        sent_globals = _sent_namespace(globals_)
        sent_locals = sent_globals if locals_ is globals_ else _sent_namespace(locals_)
        value = call(
            self._session, method, self._session, to_async(code), sent_globals, sent_locals
        )
        for local, sent in ((globals_, sent_globals), (locals_, sent_locals)):
            if type(local) is dict and sent is not local:
                refilled = to_sync(sent)
                local.clear()
                local.update(refilled)
        return value

    def compile(self, source: str | Callable[..., Any], mode: str = "exec") -> Any:
        """Compile source text remotely (a code object for ``eval``/``execute``), or ship
        a local function's source and define it remotely (the remote function)."""
        return call(self._session, Session.compile, self._session, source, mode)

    def call(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run module-level ``function(*args, **kwargs)`` remotely, its module forwarded
        from here if the remote lacks it (see ``aiopushy.Session.call``); its result,
        under Pushy's rule."""
        run = functools.partial(Session.call, self._session, function, **to_async(kwargs))
        return call(self._session, run, *to_async(args))

    def remote_import(self, name: str) -> Any:
        """Import module ``name`` remotely; a proxy for it."""
        return call(self._session, Session.remote_import, self._session, name)

    # -- files ------------------------------------------------------------------------

    def putfile(self, local_path: str | os.PathLike[str], remote_path: str) -> None:
        """Copy a local file to the remote host."""
        call(self._session, Session.putfile, self._session, local_path, remote_path)

    def getfile(self, remote_path: str, local_path: str | os.PathLike[str]) -> None:
        """Copy a remote file here."""
        call(self._session, Session.getfile, self._session, remote_path, local_path)

    # -- the rest ---------------------------------------------------------------------

    def close(self) -> None:
        """End the session; safe to call twice (see the async ``Session.close``)."""
        loop = self._session._loop
        if self._session.closed and (loop.is_closed() or not loop.is_running()):
            return  # the loop is gone (interpreter exit): nothing left to release
        call(self._session, Session.close, self._session)

    def statistics(self) -> dict[str, int]:
        """Local counts: exported objects, proxies held, pending requests."""
        return self._session.statistics()

    def remote_statistics(self) -> dict[str, int]:
        """The remote's counts: exported objects, proxies held, its threads."""
        counts: dict[str, int] = call(self._session, Session.remote_statistics, self._session)
        return counts


async def _open(connecting: Connecting) -> Session:
    return await connecting


def async_via(via: Any) -> Session | Any:
    """``via`` for the async core: a ``SyncSession`` gives its async session."""
    return via.async_session if isinstance(via, SyncSession) else via


def connect(
    target: str,
    python: str | Sequence[str] | None = None,
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    output: OutputHandler | None = None,
    heartbeat_interval: float = 5.0,
    heartbeat_timeout: float | None = None,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    forward_modules: bool | Iterable[str] = (),
    site: bool | str = "lazy",
    via: SyncSession | Session | None = None,
    **transport_options: Any,
) -> SyncSession:
    """Start (or reach) a Python interpreter; a blocking session to drive it.

    Takes the arguments of ``aiopushy.connect()``; ``via`` may be a ``SyncSession``. The
    ``output`` handler runs in the facade's event-loop thread: it must return quickly
    and must not call the facade.

    Raises:
        ValueError: the target is malformed or names an unknown transport.
        ConnectError: the interpreter could not be started (``ConnectTimeout`` when
            ``timeout`` ran out).
        RuntimeError: called from inside a running event loop.
    """
    refuse_inside_loop()
    loop = facade_loop()
    via_session = async_via(via)
    if isinstance(via_session, Session) and via_session._loop is not loop:
        raise ValueError("via must be a session of aiopushy.sync (or of its event loop)")
    connecting = async_connect(
        target,
        python,
        timeout=timeout,
        env=env,
        cwd=cwd,
        output=output,
        heartbeat_interval=heartbeat_interval,
        heartbeat_timeout=heartbeat_timeout,
        max_frame_size=max_frame_size,
        forward_modules=forward_modules,
        site=site,
        via=via_session,
        **transport_options,
    )
    session: Session = call_on(loop, _open, connecting)
    opened(session)
    return SyncSession(session)
