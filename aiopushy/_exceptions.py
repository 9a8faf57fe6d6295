"""Every exception aiopushy raises, in one hierarchy rooted at ``PushyError``.

* ``ConnectError`` -- a session could not be started (the transport failed, the remote
  interpreter did not start, the handshake failed or timed out), with a subclass for
  each cause a user can act on: ``ConnectTimeout``, ``HostNotFoundError``,
  ``ConnectionRefused``, ``AuthenticationError``, ``HostKeyError``,
  ``PythonNotFoundError``, ``PythonTooOldError``, ``SudoPasswordRequired``.
* ``ConnectionLost`` -- an established session ended: the remote died, stopped answering
  heartbeats, or the session was closed while a call was pending.
* ``ProtocolError`` -- the peer sent bytes that break the protocol; the session is closed.
* ``RemoteError`` -- remote code raised an exception with no builtin counterpart.

Builtin exceptions raised by remote code (``ZeroDivisionError``, ``KeyError``, ...) are
re-raised as themselves; their ``remote_traceback`` attribute and their ``__cause__`` (a
``RemoteTraceback``) carry the remote traceback text.
"""

from __future__ import annotations

import builtins
from typing import Any

from ._protocol.errors import parse_exception_info


class PushyError(Exception):
    """Base class of every aiopushy error."""


class ConnectError(PushyError):
    """A session could not be established.

    Attributes:
        target: the ``transport:address`` string, when known.
        stderr: the tail of the remote's standard error, when there was one.
    """

    def __init__(self, message: str, *, target: str = "", stderr: str = "") -> None:
        if stderr:
            message = f"{message}\n--- remote stderr ---\n{stderr.rstrip()}"
        super().__init__(message)
        self.target = target
        self.stderr = stderr


class ConnectTimeout(ConnectError, TimeoutError):
    """Start-up (spawn, bootstrap and handshake) did not finish within ``timeout``."""


class HostNotFoundError(ConnectError):
    """The host name could not be resolved."""


class ConnectionRefused(ConnectError):
    """Nothing accepts connections at the host and port."""


class AuthenticationError(ConnectError):
    """The remote side refused our credentials (the message never contains a password)."""


class HostKeyError(ConnectError):
    """The server's host key is unknown or has changed (see ``host_key_policy``)."""


class PythonNotFoundError(ConnectError):
    """No suitable Python interpreter was found (or the one named does not exist)."""


class PythonTooOldError(ConnectError):
    """The remote Python is older than 3.8, the oldest the remote code supports."""


class SudoPasswordRequired(ConnectError):
    """``sudo`` wants a password; aiopushy runs it non-interactively (``sudo -n``)."""


class ConnectionLost(PushyError):
    """The session ended while, or before, a call was waiting for its answer.

    Attributes:
        stderr: the tail of the remote's standard error, when there was one.
    """

    def __init__(self, message: str, *, stderr: str = "") -> None:
        if stderr:
            message = f"{message}\n--- remote stderr ---\n{stderr.rstrip()}"
        super().__init__(message)
        self.stderr = stderr


class ProtocolError(PushyError):
    """The peer broke the protocol (malformed, oversized or forbidden data)."""


class RemoteTraceback(Exception):
    """Carries the remote traceback text as the ``__cause__`` of a re-raised exception."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n\nRemote traceback:\n{self.text}"


class RemoteError(PushyError):
    """Remote code raised an exception that has no builtin counterpart here.

    Attributes:
        remote_type: the remote exception's type as ``module.QualName``.
        remote_message: ``str()`` of the remote exception.
        remote_traceback: the remote traceback, formatted.
        remote_args: the exception's ``args`` (values, or proxies for remote objects).
        remote_exception: a proxy for the remote exception object itself, so that its
            attributes can be awaited (``await err.remote_exception.returncode``).
    """

    def __init__(
        self,
        remote_type: str,
        remote_message: str,
        remote_traceback: str,
        remote_args: tuple[Any, ...] = (),
        remote_exception: Any = None,
    ) -> None:
        super().__init__(f"{remote_type}: {remote_message}")
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback
        self.remote_args = remote_args
        self.remote_exception = remote_exception

    def __str__(self) -> str:
        return f"{self.remote_type}: {self.remote_message}\n\nRemote traceback:\n" + (
            self.remote_traceback
        )


#: Builtin exceptions re-raised as themselves. The BaseException-only ones (SystemExit,
#: KeyboardInterrupt, GeneratorExit) and the iteration protocol's would change control
#: flow here, so they arrive as ``RemoteError`` instead.
REBUILT_EXCEPTIONS = {
    name: value
    for name, value in vars(builtins).items()
    if isinstance(value, type)
    and issubclass(value, Exception)
    and value not in (StopIteration, StopAsyncIteration)
}


def rebuild_exception(info: Any, target: str) -> BaseException:
    """The local exception for what the remote of ``target`` sent about one it raised:
    the builtin itself where ``REBUILT_EXCEPTIONS`` has it, else ``RemoteError`` (and
    ``ProtocolError`` for malformed information)."""
    try:
        module, name, args, message, text, obj = parse_exception_info(info)
    except ValueError as exc:
        return ProtocolError(f"{target}: {exc}")
    kind = REBUILT_EXCEPTIONS.get(name) if module == "builtins" else None
    if kind is not None:
        try:
            error = kind(*args)
        except Exception:
            pass
        else:
            error.remote_traceback = text  # type: ignore[attr-defined]
            error.__cause__ = RemoteTraceback(text)
            return error
    return RemoteError(f"{module}.{name}", message, text, args, obj)
