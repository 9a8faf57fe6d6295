"""What both ssh paths (asyncssh and the native client) share: addresses, options,
the remote command line, host-key policies and error messages."""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .._exceptions import ConnectError, SudoPasswordRequired
from .base import reject_unknown_options

PROBE_PYTHON = "aiopushy:probe-python"
"""Stands for the interpreter in the command when the user named none: find one."""

HostKeyPolicy = Literal["strict", "accept-new", "off"]
HOST_KEY_POLICIES: tuple[str, ...] = ("strict", "accept-new", "off")

#: Interpreters tried when ``python`` is not given, newest first.
PROBED_VERSIONS = tuple(f"python3.{minor}" for minor in range(20, 7, -1))
PROBED_UNVERSIONED = ("python3", "/usr/libexec/platform-python", "python")


@dataclass(frozen=True)
class SSHAddress:
    """A parsed ``ssh:`` address."""

    host: str
    port: int | None = None
    username: str | None = None


def parse_address(address: str) -> SSHAddress:
    """Parse ``host``, ``user@host``, ``host:port``, ``user@host:port`` or ``[ipv6]:port``.

    Raises:
        ValueError: the address is empty or malformed.
    """
    user, at, rest = address.rpartition("@")
    username = user if at else None
    if at and not user:
        raise ValueError(f"ssh address {address!r} has an empty user name")
    port: str | None = None
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError(f"ssh address {address!r}: expected [address] or [address]:port")
        port = tail[1:] if tail else None
    elif rest.count(":") == 1:
        host, port = rest.split(":")
    else:
        host = rest  # a host name, or a bare IPv6 address
    if not host:
        raise ValueError(f"ssh address {address!r} names no host")
    if port is None:
        return SSHAddress(host, None, username)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"ssh address {address!r} has an invalid port {port!r}")
    return SSHAddress(host, int(port), username)


@dataclass(frozen=True)
class SSHOptions:
    """Connection settings; the same names mean the same thing on both paths."""

    address: SSHAddress
    username: str | None = None  # None: from ssh config, else the current user
    port: int | None = None  # None: from ssh config, else 22
    password: str | None = field(default=None, repr=False)
    client_keys: tuple[str, ...] | None = None
    passphrase: str | None = field(default=None, repr=False)
    known_hosts: str | None = None
    host_key_policy: HostKeyPolicy = "strict"
    agent_path: str | None = None
    config: str | None = None
    tunnel: str | None = None
    keepalive_interval: float | None = None
    connect_timeout: float | None = None
    forward_agent: bool = False
    sudo: bool | str = False

    @property
    def known_hosts_path(self) -> str:
        """The known-hosts file checked (and, with ``accept-new``, appended to)."""
        return self.known_hosts or os.path.expanduser("~/.ssh/known_hosts")

    def host_label(self) -> str:
        """``host`` or ``[host]:port``, as OpenSSH writes it in messages and known_hosts."""
        host = self.address.host
        return host if self.port in (None, 22) else f"[{host}]:{self.port}"

    def target(self) -> str:
        """``ssh:[user@]host[:port]`` for messages."""
        user = f"{self.username}@" if self.username else ""
        return f"ssh:{user}{self.host_label()}"


def jump_options(options: SSHOptions) -> SSHOptions | None:
    """Settings for the ``tunnel`` (jump) host: same keys and host-key policy, no password."""
    if not options.tunnel:
        return None
    jump = parse_address(options.tunnel)
    return replace(
        options,
        address=jump,
        username=jump.username or options.username,
        port=jump.port,
        password=None,
        tunnel=None,
        forward_agent=False,
        sudo=False,
    )


def make_options(address: str, **kwargs: Any) -> SSHOptions:
    """Validate ``Popen``'s arguments into ``SSHOptions``.

    Raises:
        ValueError: a malformed address or an unknown host-key policy.
        TypeError: an unknown keyword argument.
    """
    parsed = parse_address(address)
    username = kwargs.pop("username", None) or parsed.username
    port = kwargs.pop("port", None) or parsed.port
    policy = kwargs.pop("host_key_policy", "strict")
    if policy not in HOST_KEY_POLICIES:
        raise ValueError(
            f"host_key_policy must be one of {', '.join(HOST_KEY_POLICIES)}, not {policy!r}"
        )
    client_keys = kwargs.pop("client_keys", None)
    if isinstance(client_keys, str | os.PathLike):
        client_keys = [client_keys]
    known = {f for f in SSHOptions.__dataclass_fields__ if f not in ("address", "username")}
    reject_unknown_options("ssh", kwargs, known)
    return SSHOptions(
        address=parsed,
        username=username,
        port=None if port is None else int(port),
        host_key_policy=policy,
        client_keys=None if client_keys is None else tuple(os.fspath(k) for k in client_keys),
        **kwargs,
    )


def remote_command(command: Sequence[str], sudo: bool | str) -> str:
    """The shell command line that starts the interpreter on the remote host.

    ``command`` is the interpreter's argument vector; a first element of
    ``PROBE_PYTHON`` means "find the newest Python >= 3.8" in the same shell command.
    It always runs under ``/bin/sh``, whatever the user's login shell is.
    """
    prefix = ""
    if sudo:
        prefix = "sudo -n " + (f"-u {shlex.quote(sudo)} " if isinstance(sudo, str) else "") + "-- "
    if command[0] != PROBE_PYTHON:
        script = "exec " + prefix + shlex.join(command)
    else:
        rest = shlex.join(command[1:])
        tried = ", ".join((*PROBED_VERSIONS, *PROBED_UNVERSIONED))
        # Newest first; each candidate must also run (a pyenv shim may exist but fail).
        # The check skips site (-S): with it, it would cost as much as the real start.
        check = shlex.quote("import sys; sys.exit(sys.version_info < (3, 8))")
        script = (
            "best=; for p in " + " ".join((*PROBED_VERSIONS, *PROBED_UNVERSIONED)) + "; do "
            f'if command -v "$p" >/dev/null 2>&1 && "$p" -S -c {check} >/dev/null 2>&1; '
            "then best=$p; break; fi; done; "
            'if [ -z "$best" ]; then echo '
            + shlex.quote(f"aiopushy: no Python 3.8 or newer found; tried {tried}")
            + " >&2; exit 127; fi; "
            "exec " + prefix + '"$best" ' + rest
        )
    return "exec /bin/sh -c " + shlex.quote(script)


def make_known_hosts_directory(options: SSHOptions) -> None:
    """With ``accept-new``, create the known-hosts file's directory (mode 0700) if it is
    missing, so that the first key can be recorded; this host's paths only."""
    if options.host_key_policy == "accept-new":
        directory = os.path.dirname(options.known_hosts_path) or "."
        with contextlib.suppress(OSError):
            os.makedirs(directory, mode=0o700, exist_ok=True)


def host_key_error_message(options: SSHOptions, changed: bool) -> str:
    """Explain a host-key failure and how to fix it."""
    label = options.host_label()
    path = options.known_hosts_path
    if changed:
        return (
            f"the host key of {label} has CHANGED since it was recorded in {path}: someone "
            "may be intercepting the connection, or the host was reinstalled. If you are "
            f"sure it is legitimate, remove the old entry (ssh-keygen -R '{label}' -f {path})"
        )
    where = path if os.path.exists(path) else f"{path} (which does not exist)"
    return (
        f"the host key of {label} is not in {where}. Verify it and add it (for example with "
        f"ssh-keyscan -p {options.port or 22} {options.address.host} >> {path}), or connect with "
        "host_key_policy='accept-new' to trust it on first use"
    )


SUDO_PASSWORD_MARKERS = ("a password is required", "a terminal is required")


def sudo_failure(options: SSHOptions, stderr: str) -> tuple[type[ConnectError], str] | None:
    """``sudo -n`` refusing to ask for a password, as a start-up failure explanation."""
    if options.sudo and any(marker in stderr for marker in SUDO_PASSWORD_MARKERS):
        who = options.sudo if isinstance(options.sudo, str) else "root"
        return SudoPasswordRequired, (
            f"sudo wants a password to run Python as {who}; aiopushy never types one. "
            "Allow it without a password (NOPASSWD in sudoers) or log in as that user"
        )
    return None
