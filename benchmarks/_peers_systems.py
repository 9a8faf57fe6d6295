"""The peers of ``benchmarks.peers``, driven through their own (blocking) APIs.

Each peer starts the same interpreter over a local subprocess and offers the operations
the scenarios time: the first call of the connect scenario, a call round trip, the
``os.path.join("a", "b")`` chain, many calls in flight, a bytes argument and a file put
and get, each in the peer's idiomatic way (see the class docstrings). Everything here
blocks; ``benchmarks.peers`` runs it in a worker thread, timing inside that thread.

Also here: the raw blocking pipe ping-pong, and what each peer's bootstrap sends.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from . import _peers_remote
from .core import ECHO_LOOP, EXIT_GRACE, OPERATION_TIMEOUT, PING, BenchmarkError

EXECNET = "execnet"
RPYC = "RPyC"
MITOGEN = "Mitogen"

MODULES = {EXECNET: "execnet", RPYC: "rpyc", MITOGEN: "mitogen"}


def version(peer: str) -> str:
    """The installed version of ``peer`` (importing it), as text."""
    module = __import__(MODULES[peer])
    found = getattr(module, "__version__", "?")
    return ".".join(map(str, found)) if isinstance(found, tuple) else str(found)


def reap(process: subprocess.Popen[bytes]) -> None:
    """Wait for ``process`` to exit, killing it after ``EXIT_GRACE`` seconds."""
    try:
        process.wait(EXIT_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


#: The 10 steps of ``chain`` (attribute reads and calls after ``modules``), as text.
CHAIN = (
    'modules.pathlib.PurePosixPath("/usr/lib/python3/x")'
    '.parent.joinpath("share").parent.parent.parent.name'
)
CHAIN_STEPS = 10
CHAIN_RESULT = "usr"


def chain(modules: Any) -> Any:
    """``CHAIN`` on ``modules``: aiopushy's ``conn.modules`` (a lazy reference to await)
    or RPyC's (evaluated step by step as it is written)."""
    return (
        modules.pathlib.PurePosixPath("/usr/lib/python3/x")
        .parent.joinpath("share")
        .parent.parent.parent.name
    )


class Peer:
    """An open connection of one peer to one interpreter."""

    name: ClassVar[str]

    def first_call(self) -> int:
        """The first call of the connect scenario: the remote's ``os.getpid()``."""
        return self.getpid()

    def start(self) -> None:
        """Get ready for the steady-state scenarios (not timed)."""

    def getpid(self) -> int:
        raise NotImplementedError

    def join(self, a: str, b: str) -> str:
        raise NotImplementedError

    def getpids(self, count: int) -> list[int]:
        """``os.getpid()`` ``count`` times, all in flight at once."""
        raise NotImplementedError

    def length(self, blob: bytes) -> int:
        """``len(blob)`` computed remotely: ``blob`` travels as an argument."""
        raise NotImplementedError

    def put_file(self, local_path: str, remote_path: str) -> None:
        raise NotImplementedError

    def get_file(self, remote_path: str, local_path: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


# -- execnet -------------------------------------------------------------------------

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


# -- RPyC ------------------------------------------------------------------------------

#: What ``rpyc.classic.connect_subproc()`` runs (``rpyc_classic.py -q -m stdio``), as a
#: ``-c`` program so that it runs on ``--python`` and needs no script on the PATH.
RPYC_STDIO_SERVER = "from rpyc.cli.rpyc_classic import main; main()"
RPYC_SERVER_ARGS = ("-q", "-m", "stdio")


class RequestCounter:
    """Counts the requests an RPyC connection sends: the synchronous ones (round trips
    the caller waits for) and all of them (also asynchronous ones, such as the releases
    of dropped netrefs)."""

    def __init__(self, conn: Any) -> None:
        self.sync = 0
        self.total = 0
        sync_request, async_request = conn.sync_request, conn.async_request

        def counted_sync(*args: Any) -> Any:
            self.sync += 1
            return sync_request(*args)

        def counted_async(*args: Any, **kwargs: Any) -> Any:
            self.total += 1
            return async_request(*args, **kwargs)

        self._conn = conn
        self._patches = {"sync_request": counted_sync, "async_request": counted_async}

    @contextlib.contextmanager
    def counting(self) -> Iterator[RequestCounter]:
        self.sync = self.total = 0
        vars(self._conn).update(self._patches)
        try:
            yield self
        finally:
            for name in self._patches:
                vars(self._conn).pop(name, None)


class Rpyc(Peer):
    """RPyC classic over a subprocess: ``rpyc.utils.factory.connect_subproc`` of
    ``rpyc_classic.py -q -m stdio`` with ``SlaveService`` (what
    ``rpyc.classic.connect_subproc`` does, on ``--python``). Calls are
    ``conn.modules.os.getpid()`` (also timed with ``getpid`` resolved once); many in
    flight with ``rpyc.async_``; files with ``rpyc.classic.upload``/``download``."""

    name = RPYC

    def __init__(self, python: str) -> None:
        from rpyc.utils import factory
        from rpyc.utils.classic import SlaveService

        argv = [python, "-u", "-c", RPYC_STDIO_SERVER, *RPYC_SERVER_ARGS]
        self.conn = factory.connect_subproc(argv, SlaveService)
        self.counter = RequestCounter(self.conn)
        self._getpid: Callable[[], int] | None = None

    def start(self) -> None:
        self._getpid = self.conn.modules.os.getpid

    def getpid(self) -> int:
        return int(self.conn.modules.os.getpid())

    def bound_getpid(self) -> int:
        assert self._getpid is not None
        return int(self._getpid())

    def join(self, a: str, b: str) -> str:
        return str(self.conn.modules.os.path.join(a, b))

    def getpids(self, count: int) -> list[int]:
        import rpyc

        getpid = rpyc.async_(self.conn.modules.os.getpid)
        results = [getpid() for _ in range(count)]
        return [result.value for result in results]

    def length(self, blob: bytes) -> int:
        return int(self.conn.modules.builtins.len(blob))

    def put_file(self, local_path: str, remote_path: str) -> None:
        import rpyc

        rpyc.classic.upload(self.conn, local_path, remote_path)

    def get_file(self, remote_path: str, local_path: str) -> None:
        import rpyc

        rpyc.classic.download(self.conn, remote_path, local_path)

    def chain(self) -> str:
        """The 10-step chain of the slow-link scenario."""
        return str(chain(self.conn.modules))

    def close(self) -> None:
        self._getpid = None
        process = getattr(self.conn, "proc", None)
        self.conn.close()
        if process is not None:
            reap(process)


class TcpRpyc(Rpyc):
    """RPyC classic over TCP: ``rpyc.classic.connect(host, port)``."""

    def __init__(self, host: str, port: int) -> None:
        import rpyc

        self.conn = rpyc.classic.connect(host, port)
        self.counter = RequestCounter(self.conn)
        self._getpid = None


# -- Mitogen ---------------------------------------------------------------------------


class MitogenHub:
    """One Mitogen broker and router for the whole run (created on first use)."""

    def __init__(self) -> None:
        self.router: Any = None
        self.broker: Any = None

    def get(self) -> Any:
        if self.router is None:
            import mitogen.master

            self.broker = mitogen.master.Broker()
            self.router = mitogen.master.Router(self.broker)
        return self.router

    def close(self) -> None:
        if self.broker is not None:
            self.broker.shutdown()
            self.broker.join()
            self.broker = self.router = None


class Mitogen(Peer):
    """``router.local(python_path=...)`` on a shared router; calls are
    ``context.call(fn, ...)``; many in flight with ``context.call_async`` and their
    receivers; bytes are call arguments; files are read or written by two small functions
    of ``benchmarks._peers_remote`` that Mitogen ships to the child, the bytes travelling
    as call argument and return value."""

    name = MITOGEN

    def __init__(self, python: str, hub: MitogenHub) -> None:
        self.context = hub.get().local(python_path=python)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        receiver = self.context.call_async(fn, *args)
        return receiver.get(timeout=OPERATION_TIMEOUT).unpickle()

    def getpid(self) -> int:
        return int(self._call(os.getpid))

    def join(self, a: str, b: str) -> str:
        return str(self._call(os.path.join, a, b))

    def getpids(self, count: int) -> list[int]:
        receivers = [self.context.call_async(os.getpid) for _ in range(count)]
        return [r.get(timeout=OPERATION_TIMEOUT).unpickle() for r in receivers]

    def length(self, blob: bytes) -> int:
        return int(self._call(len, blob))

    def put_file(self, local_path: str, remote_path: str) -> None:
        with open(local_path, "rb") as source:
            self._call(_peers_remote.write_file, remote_path, source.read())

    def get_file(self, remote_path: str, local_path: str) -> None:
        data = self._call(_peers_remote.read_file, remote_path)
        with open(local_path, "wb") as out:
            out.write(data)

    def close(self) -> None:
        self.context.shutdown(wait=True)


def open_peer(name: str, python: str, hub: MitogenHub) -> Peer:
    """Start ``python`` with peer ``name`` (spawn and bootstrap)."""
    if name == EXECNET:
        return Execnet(python)
    if name == RPYC:
        return Rpyc(python)
    if name == MITOGEN:
        return Mitogen(python, hub)
    raise ValueError(name)


def time_connect(name: str, python: str, hub: MitogenHub) -> float:
    """Seconds to start ``python`` with peer ``name`` and make the first call; closing
    is not timed."""
    start = time.perf_counter()
    peer = open_peer(name, python, hub)
    try:
        pid = peer.first_call()
        elapsed = time.perf_counter() - start
    finally:
        peer.close()
    if not isinstance(pid, int) or pid <= 0:
        raise BenchmarkError(f"{name}: os.getpid() gave {pid!r}")
    return elapsed


# -- the raw blocking baseline -----------------------------------------------------------


class BlockingChild:
    """A child with piped standard streams, talked to with blocking ``os.read``/``os.write``."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            bufsize=0,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.out, self.into = self.process.stdin.fileno(), self.process.stdout.fileno()

    def read_exactly(self, size: int, what: str) -> bytes:
        """``size`` bytes from the child's stdout; ``BenchmarkError`` if it ends first."""
        data = b""
        while len(data) < size:
            chunk = os.read(self.into, size - len(data))
            if not chunk:
                raise BenchmarkError(f"the {what} went away")
            data += chunk
        return data

    def close(self) -> None:
        try:
            self.process.communicate(timeout=EXIT_GRACE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()


class BlockingEcho(BlockingChild):
    """The raw ping-pong of ``core`` with blocking I/O: ``subprocess.Popen`` of the same
    echo loop, ``os.write``/``os.read`` on its pipes."""

    def __init__(self, python: str) -> None:
        super().__init__([python, "-c", ECHO_LOOP])

    def round_trips(self, count: int) -> float:
        """Mean seconds per round trip over ``count`` sequential round trips."""
        size = len(PING)
        start = time.perf_counter()
        for _ in range(count):
            os.write(self.out, PING)
            reply = self.read_exactly(size, "blocking echo loop")
            if reply != PING:
                raise BenchmarkError(f"the echo loop answered {reply!r}")
        return (time.perf_counter() - start) / count


class BlockingSink(BlockingChild):
    """The raw bulk baseline with blocking I/O: a child (``benchmarks.peers.BULK_CHILD``
    in ``sink`` mode) reads a length-prefixed message and answers its length."""

    def __init__(self, python: str, program: str) -> None:
        super().__init__([python, "-c", program, "sink"])

    def transfer(self, blob: bytes) -> float:
        """Seconds to write ``blob`` (with its length) and read the length back."""
        header = len(blob).to_bytes(8, "big")
        start = time.perf_counter()
        os.write(self.out, header)
        view = memoryview(blob)
        while view:
            view = view[os.write(self.out, view) :]
        reply = self.read_exactly(8, "blocking sink")
        elapsed = time.perf_counter() - start
        if reply != header:
            raise BenchmarkError(f"the sink answered {reply!r}")
        return elapsed


# -- bootstrap sizes ---------------------------------------------------------------------


def argument_bytes(argv: list[str]) -> int:
    """Bytes of an argument vector's items (UTF-8, without terminators)."""
    return sum(len(arg.encode("utf-8")) for arg in argv)


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


def mitogen_bootstrap(python: str, hub: MitogenHub) -> dict[str, Any]:
    """Mitogen's boot command (first stage, base64 of deflate), the compressed core it
    writes to the child's stdin, and module sources served until the first call
    returned."""
    import mitogen.parent

    router = hub.get()
    seen: list[tuple[Any, list[str]]] = []
    original = mitogen.parent.Connection.get_boot_command

    def recording(self: Any) -> list[str]:
        argv: list[str] = original(self)
        seen.append((self, argv))
        return argv

    responder = router.responder
    before = responder.good_load_module_size
    mitogen.parent.Connection.get_boot_command = recording  # type: ignore[method-assign]
    try:
        peer = Mitogen(python, hub)
    finally:
        mitogen.parent.Connection.get_boot_command = original  # type: ignore[method-assign]
    try:
        peer.first_call()
        modules = responder.good_load_module_size - before
    finally:
        peer.close()
    if not seen:
        raise BenchmarkError("Mitogen started no connection")
    connection, argv = seen[-1]
    preamble = len(connection.get_preamble())
    return {
        "command_line": argument_bytes(argv[len(connection.get_python_argv()) :]),
        "streamed": preamble + modules,
        "note": f"compressed mitogen.core {preamble} B, modules served {modules} B",
    }


def rpyc_bootstrap() -> dict[str, Any]:
    """RPyC sends no code: the remote needs rpyc (and plumbum) installed."""
    args = ["-u", "-c", RPYC_STDIO_SERVER, *RPYC_SERVER_ARGS]
    return {
        "command_line": argument_bytes(args),
        "streamed": 0,
        "note": "nothing shipped: rpyc and plumbum must be installed on the remote",
    }
