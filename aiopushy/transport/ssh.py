"""``ssh`` -- a Python interpreter on another host, started over SSH.

``connect("ssh:user@host:port", ...)`` starts the remote interpreter with nothing
installed or written there. By default the connection is made with **asyncssh**, and
every interpreter (and the SFTP session) for the same host and settings shares one SSH
connection. ``use_native=True`` runs the system ``ssh`` client instead, which honours
everything in ``~/.ssh/config`` (ProxyJump, Kerberos, ControlMaster, ...).

Host keys are verified against ``~/.ssh/known_hosts`` (or ``known_hosts=``) unless
``host_key_policy`` says otherwise: ``"strict"`` (default), ``"accept-new"`` (trust and
record a host never seen, refuse a changed key) or ``"off"``.

``via=session`` starts the connection from that session's host instead (a bastion in
front of a private network): the system ``ssh`` client runs there, with that host's
``~/.ssh`` and agent, and the pipes are relayed through the session.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._asyncssh import AsyncSSHTransport
from ._sshcommon import PROBE_PYTHON, make_known_hosts_directory, make_options
from .base import BaseTransport

if TYPE_CHECKING:
    from .._session import Session

DEFAULT_PYTHON = PROBE_PYTHON
"""With no ``python=``, the newest ``python3.X``/``python3``/``python`` >= 3.8 is used."""


async def Popen(
    command: Sequence[str],
    address: str,
    username: str | None = None,
    password: str | None = None,
    use_native: bool | None = None,
    *,
    via: Session | None = None,
    **kwargs: Any,
) -> BaseTransport:
    """Start ``command`` on the host named by ``address``; the ``ssh`` transport.

    Args:
        command: the interpreter's argument vector (its first item may be
            ``PROBE_PYTHON``: find an interpreter).
        address: ``host``, ``user@host``, ``host:port``, ``user@host:port`` or
            ``[ipv6]:port``.
        username: login name; default the one in the address, else the current user.
        password: password authentication; without it, public keys (agent, ``~/.ssh``).
        use_native: ``True`` for the system ``ssh`` client; default asyncssh.
        via: run the system ``ssh`` client on this session's host (a bastion), its pipes
            relayed through the session; file paths in the options are that host's.
        **kwargs: ``port``, ``client_keys``, ``passphrase``, ``known_hosts``,
            ``host_key_policy``, ``agent_path``, ``config``, ``tunnel``,
            ``keepalive_interval``, ``connect_timeout``, ``forward_agent``, ``sudo``.

    Raises:
        ConnectError: or one of its subclasses naming the cause.
    """
    options = make_options(address, username=username, password=password, **kwargs)
    if via is None:
        make_known_hosts_directory(options)
    if use_native or via is not None:
        if via is not None and use_native is False:
            raise ValueError(
                "via= runs the system ssh client on the relaying host: drop use_native=False"
            )
        from ._nativessh import NativeSSHTransport

        native: BaseTransport = await NativeSSHTransport.open(list(command), options, via)
        return native
    return await AsyncSSHTransport.open(list(command), options)
