"""Processes this interpreter starts for the controller: ``connect(..., via=session)``.

The controller asks this remote to start a program (a ``python -c LOADER``, an ``ssh``
client) and drives the next interpreter through it: what the controller sends arrives
as ``Relay.write_parts`` calls, and what the program writes is pushed back as calls of the
controller's ``notify`` callback, one per chunk. A reader thread per output stream waits
for each ``notify`` to return before reading on, so a slow controller slows the program
down instead of filling this process's memory.

Bytes the controller sends through this interpreter more than once (a forwarded
module's code, the bootstrap of each interpreter it starts) cross the link to it once:
the controller has them kept here under a key (``keep``) and then names the key in the
parts of a write (``Relay.write_parts``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading

from .._protocol import messages as m

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Sequence

CHUNK = 256 * 1024

#: What the controller had this interpreter keep, by key. It decides what and how much
#: (see ``transport/_relaycache.py``); nothing here is ever read but by its key.
_kept: dict[bytes, bytes] = {}


def keep(key: bytes, data: bytes) -> None:
    """Keep ``data`` under ``key`` for ``Relay.write_parts``."""
    if type(key) is not bytes or type(data) is not bytes:
        raise TypeError("keep takes a bytes key and bytes")
    _kept[key] = data


class Relay:
    """A child process whose standard streams are relayed to the controller."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None,
        notify: Callable[[int, Any], Any],
    ) -> None:
        environ = None if env is None else {**os.environ, **env}
        # Same process group as this interpreter: when it ends, its SIGHUP ends these too.
        self.process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environ,
            bufsize=0,
        )
        self._notify = notify
        self._write_lock = threading.Lock()
        self.pid = self.process.pid
        assert self.process.stdout is not None and self.process.stderr is not None
        for stream, pipe in ((m.STDOUT, self.process.stdout), (m.STDERR, self.process.stderr)):
            self._start(self._forward, stream, pipe)
        self._start(self._report_exit)

    @staticmethod
    def _start(target: Callable[..., None], *args: Any) -> None:
        threading.Thread(target=target, args=args, name="aiopushy-relay", daemon=True).start()

    def _forward(self, stream: int, pipe: Any) -> None:
        fd = pipe.fileno()
        try:
            while True:
                data = os.read(fd, CHUNK)
                self._notify(stream, data)
                if not data:
                    return
        except Exception:
            pass  # the controller went away: nobody is left to tell
        finally:
            pipe.close()

    def _report_exit(self) -> None:
        status = self.process.wait()
        with contextlib.suppress(Exception):
            self._notify(m.EXITED, status)

    def write_parts(self, parts: Sequence[bytes]) -> None:
        """Write ``parts`` to the child's standard input, in order: the items at even
        positions as they are, those at odd positions being keys of kept bytes.

        Raises:
            KeyError: a key names nothing kept (nothing of this write is written).
        """
        if type(parts) is not tuple or not all(type(part) is bytes for part in parts):
            raise TypeError("parts must be a tuple of bytes")
        chunks = [part if index % 2 == 0 else _kept[part] for index, part in enumerate(parts)]
        stdin = self.process.stdin
        if stdin is None or stdin.closed:
            raise BrokenPipeError("the relayed process's input is closed")
        with self._write_lock:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(stdin.fileno(), view) :]

    def close_input(self) -> None:
        """Close the child's standard input (an interpreter then exits)."""
        stdin = self.process.stdin
        if stdin is not None:
            with self._write_lock:
                stdin.close()

    def terminate(self) -> None:
        """Ask the child to end (SIGTERM), if it still runs."""
        if self.process.poll() is None:
            self.process.terminate()

    def kill(self) -> None:
        """End the child at once (SIGKILL), if it still runs."""
        if self.process.poll() is None:
            self.process.kill()

    def __repr__(self) -> str:
        return f"<aiopushy relay pid {self.pid}>"


def spawn(argv: Any, env: Any, notify: Any) -> Relay:
    """Start ``argv`` with ``env`` added to this process's environment."""
    if (
        not isinstance(argv, (list, tuple))
        or not argv
        or not all(isinstance(a, str) for a in argv)
    ):
        raise TypeError("argv must be a non-empty sequence of strings")
    if env is not None and not (
        isinstance(env, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
    ):
        raise TypeError("env must map strings to strings")
    if not callable(notify):
        raise TypeError("notify must be callable")
    return Relay(argv, env, notify)
