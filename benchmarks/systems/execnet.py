"""execnet as a peer (``Execnet``), and what its bootstrap sends (``execnet_bootstrap``)."""

from __future__ import annotations

import shlex
from typing import Any

from ..core import EXIT_GRACE, OPERATION_TIMEOUT
from .base import Peer, argument_bytes

EXECNET = "execnet"

#: The execnet remote side of the steady-state scenarios: one channel loop answering
#: tuples, the idiomatic way to make repeated calls with execnet.
EXECNET_SERVER = """\
import os
for request in channel:
    op = request[0]
    if op == "getpid":
        channel.send(os.getpid())
    elif op == "join":
        channel.send(os.path.join(request[1], request[2]))
    elif op == "len":
        channel.send(len(request[1]))
    elif op == "put":
        with open(request[1], "wb") as out:
            out.write(request[2])
        channel.send(len(request[2]))
    elif op == "get":
        with open(request[1], "rb") as source:
            channel.send(source.read())
"""


class Execnet(Peer):
    """``execnet.makegateway("popen//python=...")`` (own ``Group``); the first call is a
    ``remote_exec`` sending ``os.getpid()`` back; later calls are tuples sent on one
    ``remote_exec`` channel loop, answered on the same channel (many in flight: all sent,
    then all received). Files travel as bytes in channel messages (execnet has no file
    copy of its own)."""

    name = EXECNET

    def __init__(self, python: str) -> None:
        import execnet

        self.group = execnet.Group()
        try:
            self.gateway = self.group.makegateway(f"popen//python={python}")
        except BaseException:
            self.group.terminate(EXIT_GRACE)
            raise
        self.channel: Any = None

    def first_call(self) -> int:
        channel = self.gateway.remote_exec("import os; channel.send(os.getpid())")
        return int(channel.receive(OPERATION_TIMEOUT))

    def start(self) -> None:
        self.channel = self.gateway.remote_exec(EXECNET_SERVER)

    def _call(self, *request: Any) -> Any:
        self.channel.send(request)
        return self.channel.receive(OPERATION_TIMEOUT)

    def getpid(self) -> int:
        return int(self._call("getpid"))

    def join(self, a: str, b: str) -> str:
        return str(self._call("join", a, b))

    def getpids(self, count: int) -> list[int]:
        for _ in range(count):
            self.channel.send(("getpid",))
        return [self.channel.receive(OPERATION_TIMEOUT) for _ in range(count)]

    def length(self, blob: bytes) -> int:
        return int(self._call("len", blob))

    def put_file(self, local_path: str, remote_path: str) -> None:
        with open(local_path, "rb") as source:
            self._call("put", remote_path, source.read())

    def get_file(self, remote_path: str, local_path: str) -> None:
        data = self._call("get", remote_path)
        with open(local_path, "wb") as out:
            out.write(data)

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
        self.group.terminate(EXIT_GRACE)


def execnet_bootstrap(python: str) -> dict[str, Any]:
    """What ``makegateway("popen//python=...")`` puts on the command line and writes to
    the child's stdin until the gateway is up (counted in ``sendexec``)."""
    import execnet
    from execnet import gateway_bootstrap, gateway_io

    sent: list[int] = []
    original = gateway_bootstrap.sendexec

    def counting(io: Any, *sources: str) -> None:
        sent.append(len((repr("\n".join(sources)) + "\n").encode("utf-8")))
        original(io, *sources)

    gateway_bootstrap.sendexec = counting  # type: ignore[assignment]
    try:
        peer = Execnet(python)
    finally:
        gateway_bootstrap.sendexec = original  # type: ignore[assignment]
    try:
        peer.first_call()
    finally:
        peer.close()
    argv = gateway_io.popen_args(execnet.XSpec(f"popen//python={python}"))
    args = argv[len(shlex.split(python)) :]
    return {
        "command_line": argument_bytes(args),
        "streamed": sum(sent),
        "note": "gateway_base source, uncompressed (repr of the source on one line)",
    }
