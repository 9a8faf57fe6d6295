"""The ``ssh`` transport on the system OpenSSH client (``use_native=True``).

The same ``SSHOptions`` become ``ssh`` options (``port`` -> ``-p``, ``client_keys`` ->
``-i``, ``known_hosts`` -> ``UserKnownHostsFile``, ``config`` -> ``-F``, ``tunnel`` ->
``-J``, ``host_key_policy`` -> ``StrictHostKeyChecking``), so everything else in the
user's ``~/.ssh/config`` still applies. Without a password ``BatchMode`` forbids any
prompt; with one, ``SSH_ASKPASS`` points at a private helper that reads the password from
the ``ssh`` process's own environment: it is never on a command line or on disk.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import tempfile
from typing import TYPE_CHECKING

import anyio

from .._exceptions import (
    AuthenticationError,
    ConnectError,
    ConnectionRefused,
    ConnectTimeout,
    HostKeyError,
    HostNotFoundError,
)
from ._process import ProcessTransport
from ._sshcommon import (
    SSHOptions,
    host_key_error_message,
    jump_options,
    remote_command,
    sudo_failure,
)

if TYPE_CHECKING:
    from .._session import Session

_POLICY = {"strict": "yes", "accept-new": "accept-new", "off": "no"}
_PASSWORD_VARIABLE = "AIOPUSHY_SSH_PASSWORD"

# ssh's own messages (exit status 255) and the errors they mean.
_SSH_ERRORS: tuple[tuple[str, type[ConnectError]], ...] = (
    ("Could not resolve hostname", HostNotFoundError),
    ("Connection refused", ConnectionRefused),
    ("timed out", ConnectTimeout),
    ("Host key verification failed", HostKeyError),
    ("REMOTE HOST IDENTIFICATION HAS CHANGED", HostKeyError),
    ("Permission denied", AuthenticationError),
)


def ssh_options(options: SSHOptions, askpass: bool) -> list[str]:
    """The OpenSSH command-line options shared by ``ssh`` and ``scp``."""
    args = [
        "-o", f"BatchMode={'no' if askpass else 'yes'}",
        "-o", f"StrictHostKeyChecking={_POLICY[options.host_key_policy]}",
        "-o", "UserKnownHostsFile="
        + ("/dev/null" if options.host_key_policy == "off" else options.known_hosts_path),
    ]  # fmt: skip
    if options.username:
        args += ["-o", f"User={options.username}"]
    if options.port:
        args += ["-o", f"Port={options.port}"]
    if askpass:
        args += ["-o", "NumberOfPasswordPrompts=1"]
    for key in options.client_keys or ():
        args += ["-i", key]
    if options.config:
        args += ["-F", options.config]
    jump = jump_options(options)
    if jump is not None:
        # Not -J: a ProxyCommand carries our options (keys, known_hosts, host-key policy)
        # to the jump host too, as the asyncssh path does.
        hop = shlex.join(["ssh", *ssh_options(jump, False)])
        host = shlex.join(["--", jump.address.host])
        args += ["-o", f"ProxyCommand={hop.replace('%', '%%')} -W %h:%p {host}"]
    if options.keepalive_interval:
        args += ["-o", f"ServerAliveInterval={int(options.keepalive_interval)}"]
    if options.connect_timeout:
        args += ["-o", f"ConnectTimeout={max(1, int(options.connect_timeout))}"]
    if options.agent_path:
        args += ["-o", f"IdentityAgent={options.agent_path}"]
    return args


def _absolute(path: str) -> str:
    """An absolute local path: scp would take ``a:b`` for a remote one."""
    return os.path.join(os.getcwd(), path)


def _agent_forwarding(options: SSHOptions) -> list[str]:
    if not options.forward_agent:
        return ["-a"]
    return ["-o", f"ForwardAgent={options.agent_path or 'yes'}"]


class _AskPass:
    """A private directory holding the askpass helper, removed on close."""

    def __init__(self, password: str) -> None:
        self.directory = tempfile.mkdtemp(prefix="aiopushy-askpass-")
        self.helper = os.path.join(self.directory, "askpass")
        with open(self.helper, "w", encoding="utf-8") as f:
            f.write(f'#!/bin/sh\nprintf "%s\\n" "${_PASSWORD_VARIABLE}"\n')
        os.chmod(self.helper, stat.S_IRWXU)
        self.env = {
            "SSH_ASKPASS": self.helper,
            "SSH_ASKPASS_REQUIRE": "force",
            "DISPLAY": os.environ.get("DISPLAY", "aiopushy:0"),
            _PASSWORD_VARIABLE: password,
        }

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class NativeSSHTransport(ProcessTransport):
    """An interpreter started through the system ``ssh`` client."""

    native_file_copy = True
    options: SSHOptions
    _askpass: _AskPass | None

    @classmethod
    async def open(
        cls, command: list[str], options: SSHOptions, via: Session | None = None
    ) -> NativeSSHTransport:
        """Run ``ssh ... host 'exec /bin/sh -c ...'`` here, or on ``via``'s host.

        Raises:
            ValueError: a password with ``via`` (the askpass helper lives here).
        """
        if via is not None and options.password is not None:
            raise ValueError(
                "password authentication is not available with via=: the ssh client runs "
                f"on {via.target}; use keys there, or forward_agent=True on that session"
            )
        askpass = _AskPass(options.password) if options.password is not None else None
        argv = [
            "ssh",
            "-T",
            *_agent_forwarding(options),
            *ssh_options(options, askpass is not None),
            "--",
            options.address.host,
            remote_command(command, options.sudo),
        ]
        try:
            env = askpass.env if askpass else None
            transport = await cls.spawn(argv, options.address.host, env, via)
        except BaseException:
            if askpass:
                askpass.remove()
            raise
        assert isinstance(transport, NativeSSHTransport)
        # scp would run here, not on via's host: relayed sessions copy through the protocol.
        transport.native_file_copy = via is None
        transport.options = options
        transport._askpass = askpass
        return transport

    def explain_startup_failure(
        self, returncode: int | None, stderr: str
    ) -> tuple[type[ConnectError], str] | None:
        """Recognise ssh's own failures (exit status 255) and sudo's password prompt."""
        if returncode != 255:
            return sudo_failure(self.options, stderr)
        for marker, kind in _SSH_ERRORS:
            if marker in stderr:
                if kind is HostKeyError:
                    changed = "CHANGED" in stderr
                    return kind, host_key_error_message(self.options, changed)
                return kind, f"ssh failed: {marker.lower()}"
        return None

    async def aclose(self) -> None:
        """Close the session, then remove the askpass helper."""
        try:
            await super().aclose()
        finally:
            if self._askpass:
                self._askpass.remove()

    async def _scp(self, source: str, target: str) -> None:
        askpass = _AskPass(self.options.password) if self.options.password is not None else None
        argv = [
            "scp",
            "-q",
            *ssh_options(self.options, askpass is not None),
            source,
            target,
        ]
        try:
            result = await anyio.run_process(
                argv,
                check=False,
                env={**os.environ, **askpass.env} if askpass else None,
                stdin=None,
            )
        finally:
            if askpass:
                askpass.remove()
        if result.returncode:
            message = result.stderr.decode("utf-8", "replace").strip()
            if "No such file" in message:
                raise FileNotFoundError(2, message)
            raise OSError(f"scp failed (exit status {result.returncode}): {message}")

    def _remote(self, path: str) -> str:
        host = self.options.address.host
        return f"[{host}]:{path}" if ":" in host else f"{host}:{path}"

    async def getfile(self, remote_path: str, local_path: str) -> None:
        """Copy with ``scp`` (SFTP protocol)."""
        await self._scp(self._remote(remote_path), _absolute(local_path))

    async def putfile(self, local_path: str, remote_path: str) -> None:
        """Copy with ``scp`` (SFTP protocol)."""
        await self._scp(_absolute(local_path), self._remote(remote_path))
