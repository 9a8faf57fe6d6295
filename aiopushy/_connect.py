"""``connect()``: turn a target string into a running session."""

from __future__ import annotations

import inspect
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import Any

import anyio

from . import _bootstrap
from ._exceptions import ConnectTimeout
from ._forwarding import ForwardPolicy
from ._protocol.framing import DEFAULT_MAX_FRAME_SIZE
from ._session import Session
from ._stderr import OutputHandler
from .transport import find_popen, split_target


class Connecting:
    """What ``connect()`` returns: await it for a session, or use it with ``async with``."""

    def __init__(self, target: str, **options: Any) -> None:
        self._target = target
        self._options = options
        self._session: Session | None = None

    def __await__(self) -> Generator[Any, None, Session]:
        return open_session(self._target, **self._options).__await__()

    async def __aenter__(self) -> Session:
        self._session = await open_session(self._target, **self._options)
        return self._session

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()


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
    via: Session | None = None,
    **transport_options: Any,
) -> Connecting:
    """Start (or reach) a Python interpreter and return a session to drive it.

    ``await connect(...)`` gives a ``Session``; ``async with connect(...) as conn:``
    also closes it at the end of the block.

    Args:
        target: ``"transport:address"``, split at the first colon (``"local:"``,
            ``"ssh:user@host"``, ...).
        python: the remote interpreter: a program name or path, or an argument vector.
            Default: the transport's choice (``sys.executable`` for ``local``).
        timeout: seconds allowed for the whole start-up (spawn, bootstrap, handshake).
        env: environment variables set inside the remote interpreter before any call.
        cwd: working directory the remote interpreter changes to before any call.
        output: ``handler(stream, data)`` for the remote's stdout/stderr; by default
            they are written to the local ``sys.stdout``/``sys.stderr``.
        heartbeat_interval: seconds between heartbeats.
        heartbeat_timeout: seconds of silence after which the session is declared lost
            (and the remote exits); default four heartbeat intervals.
        max_frame_size: largest message accepted from the remote, in bytes.
        forward_modules: modules (with their submodules) the remote may import from
            here when it lacks them, besides the packages of functions passed to
            ``Session.call``; ``True`` for any module outside the standard library.
        site: when the remote runs ``site`` (site-packages, ``.pth`` files): ``"lazy"``
            (start with ``-S``, run it on the first import that finds nothing, then look
            again), ``True`` (at start-up, as plain ``python``) or ``False`` (never).
            See the "Connecting" chapter for what ``"lazy"`` defers.
        via: start the interpreter from this session's remote interpreter instead of
            from here (``local`` and ``ssh`` targets): a bastion relays to hosts only it
            can reach. The new session's traffic travels through ``via``, and it ends
            when ``via`` ends. Chains (``via`` a relayed session) work too.
        **transport_options: passed to the transport's ``Popen``.

    Raises:
        ValueError: the target is malformed or names an unknown transport.
        ConnectError: the interpreter could not be started or did not complete the
            handshake (``ConnectTimeout`` when ``timeout`` ran out).
    """
    split_target(target)  # bad targets fail here, not at the first await
    ForwardPolicy(forward_modules)  # and bad module names
    if not (site is True or site is False or site == "lazy"):
        raise ValueError(f"site must be 'lazy', True or False, not {site!r}")
    if env is not None and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise TypeError("env must map strings to strings")
    if heartbeat_interval <= 0:
        raise ValueError("heartbeat_interval must be positive")
    if via is not None:
        if not isinstance(via, Session):
            raise TypeError(f"via must be a Session, not {type(via).__name__}")
        transport_options["via"] = via
    return Connecting(
        target,
        python=python,
        timeout=timeout,
        env=env,
        cwd=cwd,
        output=output,
        heartbeat_interval=heartbeat_interval,
        heartbeat_timeout=heartbeat_timeout,
        max_frame_size=max_frame_size,
        forward_modules=forward_modules,
        site=site,
        transport_options=transport_options,
    )


def _python_argv(python: str | Sequence[str] | None, popen: Any) -> list[str]:
    if python is None:
        module = inspect.getmodule(popen)
        python = getattr(module, "DEFAULT_PYTHON", None) or "python3"
    if isinstance(python, str):
        return [python]
    argv = list(python)
    if not argv or not all(isinstance(a, str) for a in argv):
        raise TypeError("python must be a string or a non-empty sequence of strings")
    return argv


async def open_session(
    target: str,
    *,
    python: str | Sequence[str] | None,
    timeout: float | None,  # noqa: ASYNC109 - applied with anyio.fail_after
    env: Mapping[str, str] | None,
    cwd: str | None,
    output: OutputHandler | None,
    heartbeat_interval: float,
    heartbeat_timeout: float | None,
    max_frame_size: int,
    forward_modules: bool | Iterable[str],
    site: bool | str,
    transport_options: dict[str, Any],
) -> Session:
    """Start the transport and the session; the body of ``connect()``."""
    name, address = split_target(target)
    popen = find_popen(name)
    if "via" in transport_options and "via" not in inspect.signature(popen).parameters:
        raise ValueError(
            f"the {name} transport cannot be started via another session "
            "(via= works with transports that start a program: local, ssh)"
        )
    argv = _python_argv(python, popen)
    lazy_site = site == "lazy" and "-S" not in argv  # the user's -S: never
    if site is not True and "-S" not in argv:
        argv.append("-S")
    command = _bootstrap.command(argv)
    session: Session | None = None
    try:
        with anyio.fail_after(timeout):
            transport = await popen(command, address, **transport_options)
            session = Session(
                target,
                transport,
                output=output,
                heartbeat_interval=heartbeat_interval,
                heartbeat_timeout=heartbeat_timeout or 4 * heartbeat_interval,
                max_frame_size=max_frame_size,
                forward_modules=forward_modules,
            )
            await session._start(env, cwd, lazy_site)
    except BaseException as exc:
        if session is not None:
            await session.close()
        if isinstance(exc, TimeoutError) and not isinstance(exc, ConnectTimeout):
            raise ConnectTimeout(
                f"{target}: start-up did not finish within {timeout} s",
                target=target,
                stderr=session.stderr_tail if session else "",
            ) from exc
        raise
    return session


__all__ = ["Connecting", "connect"]
