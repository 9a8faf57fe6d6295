"""What the tests need from the machine, and one rule for when it is missing.

Each ``*_missing()`` returns ``None`` when the piece is there (creating what a fresh
machine lacks but the tests may create themselves), else a reason naming the piece and
how to install it. ``require(reason)`` then skips the test, except in CI (``CI`` set),
where ``.ci/run`` installs everything and a missing piece is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def _program(name: str) -> str | None:
    """``name`` on ``PATH``, or in ``/usr/sbin`` (not on every user's ``PATH``)."""
    found = shutil.which(name) or f"/usr/sbin/{name}"
    return found if os.access(found, os.X_OK) else None


SSHD = _program("sshd")
SMBD = _program("smbd")
PYPY = shutil.which("pypy3")
SUDO = shutil.which("sudo")

#: sshd's privilege separation directory (compiled in; Debian's). Starting the service
#: creates it, so a machine where sshd is installed but never ran lacks it.
PRIVSEP_DIR = "/run/sshd"


def ssh_client_missing() -> str | None:
    """Why the OpenSSH client cannot run here, or None."""
    if shutil.which("ssh") is None:
        return "the OpenSSH client ssh is not installed (apt-get install openssh-client)"
    return None


def sshd_missing(client: bool = False) -> str | None:
    """Why OpenSSH's sshd (and with ``client``, ``ssh``) cannot run here, or None.

    Creates sshd's privilege separation directory when it is missing, as starting the
    service would; sshd refuses to run, ``sshd -t`` included, without it.
    """
    if SSHD is None:
        return "OpenSSH's sshd is not installed (apt-get install openssh-server)"
    try:
        os.makedirs(PRIVSEP_DIR, mode=0o755, exist_ok=True)
    except OSError as exc:
        return (
            f"sshd's privilege separation directory {PRIVSEP_DIR} is missing and cannot "
            f"be created ({exc.strerror}): create it as root"
        )
    return ssh_client_missing() if client else None


def samba_missing() -> str | None:
    """Why Samba's smbd cannot serve the tests here, or None."""
    if SMBD is None or _program("smbpasswd") is None:
        return "Samba's smbd is not installed (apt-get install samba)"
    return None


def pypy_missing() -> str | None:
    """Why the remote side cannot run on PyPy here, or None."""
    return None if PYPY else "pypy3 is not installed (apt-get install pypy3)"


def sudo_missing() -> str | None:
    """Why ``sudo`` to root cannot be tested here, or None."""
    if SUDO is None:
        return "sudo is not installed (apt-get install sudo)"
    if os.getuid() != 0:
        return "the sudo test runs as root (it needs sudo without a password)"
    return None


def ssh_agent_missing() -> str | None:
    """Why an ssh-agent cannot be started here, or None."""
    if shutil.which("ssh-agent") is None:
        return "ssh-agent is not installed (apt-get install openssh-client)"
    return None


def require(reason: str | None) -> None:
    """Skip the test when ``reason`` says a piece is missing; in CI, fail it instead."""
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"required in CI: {reason}")
        pytest.skip(reason)


def mount_namespace_missing() -> str | None:
    """Why a test cannot give a process a private ``/etc/hosts`` here (``unshare -m`` and
    a bind mount, as root), or None. A capability of the machine, not a package: tests
    skip without it, in CI too."""
    if shutil.which("unshare") is None or os.getuid() != 0:
        return "needs root and unshare (util-linux) for a private /etc/hosts"
    probe = ["unshare", "-m", "sh", "-c", "mount --bind /etc/hosts /etc/hosts"]
    if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        return "this machine does not allow mount namespaces (unshare -m)"
    return None


#: A second local user for the tests that try the servers as someone else.
OTHER_USER = "aiopushy-other"


def other_user_missing() -> str | None:
    """Why a second local user cannot be had here (creating it if needed), or None."""
    import pwd

    try:
        pwd.getpwnam(OTHER_USER)
        return None
    except KeyError:
        pass
    if os.getuid() != 0 or shutil.which("useradd") is None:
        return f"needs root and useradd to create the local user {OTHER_USER}"
    command = ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER_USER]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return f"cannot create the local user {OTHER_USER}: {result.stderr.strip()}"
    return None
