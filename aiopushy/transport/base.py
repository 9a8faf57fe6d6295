"""The transport interface: an address turned into a byte-stream pair (and stderr).

A transport knows how to reach an interpreter and, optionally, how to copy files with its
own means (SFTP, a file share, a local copy). It knows nothing of the protocol.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import ClassVar

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream

from .._exceptions import ConnectError


def reject_unknown_options(transport: str, given: Iterable[str], allowed: Iterable[str]) -> None:
    """Raise ``TypeError`` naming the keyword arguments a transport does not take."""
    unknown = set(given) - set(allowed)
    if unknown:
        names = ", ".join(sorted(unknown))
        raise TypeError(f"{transport} transport got unexpected arguments: {names}")


class EmptyReceiveStream(ByteReceiveStream):
    """A stream that is always at its end: for transports without a standard error."""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Raise ``anyio.EndOfStream`` at once."""
        raise anyio.EndOfStream

    async def aclose(self) -> None:
        """Nothing to close."""


class BaseTransport(abc.ABC):
    """Base class of every transport, as returned by a transport module's ``Popen``.

    Attributes:
        address: the address this transport connected to.
        stdin: stream to the remote interpreter's standard input.
        stdout: stream from the remote interpreter's standard output.
        stderr: stream from its standard error (``EmptyReceiveStream`` if there is none).
        native_file_copy: ``True`` when ``getfile``/``putfile`` use the transport's own
            means; otherwise the session copies files through the protocol.
        needs_bootstrap: ``False`` when the far side already runs aiopushy (a daemon):
            the session then skips sending the remote code.
        ended_by: what ends the far side's stream, for the message of a lost session.
    """

    native_file_copy: bool = False
    needs_bootstrap: ClassVar[bool] = True
    ended_by: ClassVar[str] = "the remote interpreter went away"

    address: str
    stdin: ByteSendStream
    stdout: ByteReceiveStream
    stderr: ByteReceiveStream

    async def getfile(self, remote_path: str, local_path: str) -> None:
        """Copy ``remote_path`` on the remote host to ``local_path`` here."""
        raise NotImplementedError

    async def putfile(self, local_path: str, remote_path: str) -> None:
        """Copy ``local_path`` here to ``remote_path`` on the remote host."""
        raise NotImplementedError

    @property
    def returncode(self) -> int | None:
        """The remote process's exit status once known, else ``None``."""
        return None

    async def wait(self) -> int | None:
        """Wait until the remote process has exited, if the transport can tell; its status."""
        return self.returncode

    def explain_startup_failure(
        self, returncode: int | None, stderr: str
    ) -> tuple[type[ConnectError], str] | None:
        """For a remote that ended before the handshake: the error class and message, if
        the transport recognises the cause (``sudo`` asking for a password, say)."""
        return None

    def kill(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """End the connection at once, without grace (the peer misbehaved or froze).

        The default does nothing; ``aclose`` still follows.
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the streams and release the process or connection.

        Must return within a bounded time even if the remote does not cooperate.
        """

    async def close(self) -> None:
        """Alias of ``aclose`` (Pushy's name)."""
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.address!r}>"
