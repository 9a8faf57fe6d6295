"""The session: a remote interpreter, and what you can do with it (see ``Link`` for the
machinery)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from . import _filecopy, _forwarding
from ._link import PUSHY_RULE, AnswerSink, Link, request_kind
from ._protocol import messages as m
from ._proxy import LazyRef, Proxy
from ._source import function_source

__all__ = ["PUSHY_RULE", "AnswerSink", "Session", "request_kind"]


class Session(Link):
    """A connection to one remote interpreter (what ``connect()`` gives you).

    Attributes:
        target: the ``"transport:address"`` string this session was made from.
        transport: the ``BaseTransport`` carrying the session.
        modules: lazy root of the remote's modules: ``await conn.modules.os.getpid()``.
        info: what the remote said of itself in the handshake (``pid``, ``python``,
            ``implementation``, ``platform``, ``executable``, ``hostname``).
        output: the handler for the remote's stdout/stderr (settable).
        forwarding: the ``ForwardPolicy`` of the modules the remote may import from
            here (see ``call`` and ``connect(forward_modules=)``).
    """

    # -- the public API -------------------------------------------------------------

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def eval(
        self,
        code: str | Proxy,
        globals: dict[str, Any] | Proxy | None = None,
        locals: dict[str, Any] | Proxy | None = None,
    ) -> Any:
        """Evaluate an expression (source text or a remote code object) remotely.

        With ``globals``/``locals`` left out, the session's persistent namespace is used.
        A local ``dict`` passed as either is sent by value and updated, when the call
        returns, with what the remote code left in it; a ``Proxy`` for a remote dict is
        used in place.
        """
        return await self._run(m.OP_EVAL, code, globals, locals)

    async def execute(
        self,
        code: str | Proxy,
        globals: dict[str, Any] | Proxy | None = None,
        locals: dict[str, Any] | Proxy | None = None,
    ) -> None:
        """Execute statements remotely; namespaces behave as in ``eval``."""
        await self._run(m.OP_EXECUTE, code, globals, locals)

    async def _run(self, op: int, code: Any, globals_: Any, locals_: Any) -> Any:
        if not isinstance(code, str | Proxy):
            raise TypeError(f"code must be source text or a remote code object, not {code!r}")
        for name, namespace in (("globals", globals_), ("locals", locals_)):
            if namespace is not None and not isinstance(namespace, dict | Proxy):
                raise TypeError(f"{name} must be a dict or a proxy, not {namespace!r}")
        sync = (type(globals_) is dict, type(locals_) is dict)
        answer = await self._request(op, (code, globals_, locals_, sync))
        value, new_globals, new_locals = self._shaped(answer, 3)
        for local, remote in ((globals_, new_globals), (locals_, new_locals)):
            # The Pushy rule sends a namespace as its items (a dict would be a proxy).
            items = dict(remote) if type(remote) is tuple else remote
            if type(local) is dict and type(items) is dict:
                local.clear()
                local.update(items)
        return value

    async def call(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``function(*args, **kwargs)`` remotely and return its result (values and
        proxies as for any call).

        ``function`` is a module-level function, or a staticmethod or classmethod of a
        module-level class. Its module is imported on the remote; if the remote lacks
        it, it is forwarded from here, with the rest of its top-level package.

        Raises:
            TypeError: a lambda, closure or nested function (use ``compile``).
        """
        module, path = _forwarding.function_address(function)
        self.forwarding.allow(module.partition(".")[0])
        target: LazyRef = self.modules[module]
        for name in path:
            target = getattr(target, name)
        return await target(*args, **kwargs)

    async def compile(self, source: str | Callable[..., Any], mode: str = "exec") -> Proxy:
        """Compile remotely; returns a proxy.

        ``source`` may be source text (giving a remote code object, compiled in ``mode``
        ``"exec"``, ``"eval"`` or ``"single"``, for ``eval``/``execute``) or a local
        function, whose source is shipped and defined in the session namespace (giving
        the remote function, callable through the proxy).
        """
        if isinstance(source, str):
            if mode not in ("exec", "eval", "single"):
                raise ValueError(f"mode must be 'exec', 'eval' or 'single', not {mode!r}")
            return await self._request(m.OP_COMPILE, (source, "<aiopushy>", mode))  # type: ignore[no-any-return]
        text, name = function_source(source)
        return await self._request(m.OP_DEFINE, (text, name))  # type: ignore[no-any-return]

    def statistics(self) -> dict[str, int]:
        """Local counts: objects exported to the remote, proxies held, pending requests,
        requests sent since the session started."""
        return {
            "exported": len(self._refs.exports),
            "proxies": len(self._refs.imports),
            "pending": len(self._pending),
            "requests": self._requests_sent,
        }

    async def remote_statistics(self) -> dict[str, int]:
        """The remote's counts: objects it exported to us, proxies it holds, its threads,
        the reads that brought our requests (``reads``: requests sent in one event-loop
        turn arrive together), and how many frames it wrote to us in how many writes
        (``writes``, ``frames_written``: answers to requests that arrive together leave
        together)."""
        counts: dict[str, int] = await self._request(m.OP_STATISTICS, ())
        return counts

    async def remote_import(self, name: str) -> Proxy:
        """Import module ``name`` remotely and return a proxy for it."""
        module: Proxy = await self.modules[name]
        return module

    async def putfile(self, local_path: str | os.PathLike[str], remote_path: str) -> None:
        """Copy a local file to the remote host, with the transport's means if it has one."""
        if self.transport.native_file_copy:
            await self.transport.putfile(os.fspath(local_path), remote_path)
        else:
            await _filecopy.put(self._request, os.fspath(local_path), remote_path)

    async def getfile(self, remote_path: str, local_path: str | os.PathLike[str]) -> None:
        """Copy a remote file here, with the transport's means if it has one."""
        if self.transport.native_file_copy:
            await self.transport.getfile(remote_path, os.fspath(local_path))
        else:
            await _filecopy.get(self._request, remote_path, os.fspath(local_path))
