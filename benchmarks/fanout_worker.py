"""One fan-out measurement in a fresh controller process, for ``benchmarks.fanout``.

``python -m benchmarks.fanout_worker SYSTEM N local|ssh --python PATH --limit L
[--fleet FLEET.json] [--timeout SECONDS]`` opens N sessions with one system, makes one call
(``os.getpid()``) on each, holds all N open at the same moment, closes them, and prints
one JSON line::

    {"system": ..., "where": ..., "n": N, "limit": L, "wall": s, "close": s,
     "controller_cpu": s, "rss_before": bytes, "rss_open": bytes, "mib_per_session": MiB}

or ``{"skipped": reason}`` when the system's library is not installed. A wrong answer (not
N distinct pids, the controller's own pid among them, an interpreter still running after
closing) or a child process left behind exits with status 1 and the reason on stderr.

The steps, for every system alike:

1. import everything the system needs, then one untimed warm-up session (connect, call,
   close: lazy imports, caches, helper threads), then the RSS of this process
   (``/proc/self/statm``, after ``gc.collect()``): ``rss_before``;
2. timed (``wall``): connect to all N and make the call on each, at most ``limit`` hosts
   connecting at once; also the CPU time this controller process spent meanwhile
   (``controller_cpu``, all its threads);
3. with all N sessions open: ``rss_open``; ``mib_per_session = (rss_open - rss_before) / N``;
4. timed separately (``close``): close all N sessions.

Every remote interpreter is ``[python, "-S"]``. The systems:

* ``aiopushy``: ``async with aiopushy.Group(targets, limit=L)`` then ``group.run(job)``.
* ``asyncio`` (local floor): ``asyncio.create_subprocess_exec(python, "-S", "-c", ...)``
  N at once (a semaphore of L), reading the pid the child prints; the child then waits
  for the end of its input, so that all N are alive at the same moment like the sessions.
* ``asyncssh`` (ssh floor): ``asyncssh.connect()`` per host (the same options aiopushy
  passes) and ``create_process("python -S -c ...")`` reading the pid; the remote
  interpreter waits for the end of its input, like the local floor.
* ``execnet``: ``execnet.Group().makegateway(spec)`` (``popen//python=...`` or
  ``ssh=ADDRESS//python=...//ssh_config=FILE``) and ``remote_exec`` of getpid, in a
  thread pool of L threads (``makegateway`` blocks until the gateway is up).
* ``rpyc``: classic (``SlaveService``) connections in a thread pool of L threads:
  locally a stdio server started like ``rpyc.classic.connect_subproc()`` but without
  ``rpyc_classic.py``'s plumbum CLI, over ssh ``rpyc.utils.zerodeploy.DeployedServer``
  on a plumbum ``SshMachine``.
* ``mitogen``: ``mitogen.master.Router`` and ``router.local()`` / ``router.ssh()`` in a
  thread pool of L threads.

Controller memory only: over ssh, execnet, RPyC and Mitogen run the system ``ssh`` client
as child processes (one per session, three for RPyC's zerodeploy), whose memory is not
in this process's RSS; aiopushy and asyncssh do the SSH protocol in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from .core import PIPES, BenchmarkError, finish, leftover_children

SYSTEMS = ("aiopushy", "asyncio", "asyncssh", "execnet", "rpyc", "mitogen")
#: What each system needs installed, to report it skipped rather than fail.
REQUIRES: dict[tuple[str, str], tuple[str, ...]] = {
    ("asyncssh", "ssh"): ("asyncssh",),
    ("execnet", "local"): ("execnet",),
    ("execnet", "ssh"): ("execnet",),
    ("rpyc", "local"): ("rpyc",),
    ("rpyc", "ssh"): ("rpyc", "plumbum", "rpyc.utils.zerodeploy"),
    ("mitogen", "local"): ("mitogen.master",),
    ("mitogen", "ssh"): ("mitogen.master", "mitogen.ssh"),
}
#: The floors only make sense on their own transport.
UNSUPPORTED = {("asyncio", "ssh"), ("asyncssh", "local")}

#: The child of the floors: print the pid, then live until the end of the input.
GETPID_AND_WAIT = (
    "import os, sys; sys.stdout.write('%d\\n' % os.getpid()); sys.stdout.flush(); sys.stdin.read()"
)
#: RPyC's classic stdio server (``rpyc_classic.py -m stdio`` without its plumbum CLI).
RPYC_STDIO_SERVER = """\
import os, sys
sys.path.insert(0, {path!r})
import rpyc.utils.classic
stdin, stdout = sys.stdin, sys.stdout
sys.stdin = open(os.devnull)
sys.stdout = open(os.devnull, "w")
conn = rpyc.utils.classic.connect_pipes(stdin, stdout)
try:
    conn.serve_all()
finally:
    conn.close()
"""
#: Seconds for the remote interpreters to be gone after closing (they are on this host).
GONE_WITHIN = 15.0

T = TypeVar("T")


class Skipped(Exception):
    """The system cannot be measured here (not installed)."""


@dataclass(frozen=True)
class Fleet:
    """The ssh "hosts" (``tests.sshservers.openssh_fleet``), as ``benchmarks.fanout``
    describes them in a JSON file."""

    port: int
    username: str
    addresses: list[str]
    user_key: str
    known_hosts: str
    ssh_config: str  # an OpenSSH client config naming the above, for the ssh-based peers

    @classmethod
    def load(cls, path: str) -> Fleet:
        with open(path, encoding="utf-8") as f:
            return cls(**json.load(f))


@dataclass(frozen=True)
class Context:
    """What every system gets: where to connect and how."""

    where: str  # "local" or "ssh"
    python: str
    limit: int
    timeout: float
    fleet: Fleet | None

    @property
    def argv(self) -> list[str]:
        """The remote interpreter, for every system."""
        return [self.python, "-S"]

    def hosts(self, n: int) -> list[str]:
        """``n`` hosts: ssh addresses, or ``"local"`` ``n`` times."""
        if self.fleet is None:
            return ["local"] * n
        if n > len(self.fleet.addresses):
            raise BenchmarkError(f"{n} hosts wanted, the fleet has {len(self.fleet.addresses)}")
        return self.fleet.addresses[:n]


def rss() -> int:
    """This process's resident set size in bytes, after a garbage collection."""
    gc.collect()
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def threaded(limit: int, work: Callable[[str], T], hosts: Sequence[str]) -> list[T]:
    """``work(host)`` for every host, ``limit`` threads at a time; the first error raises."""
    with ThreadPoolExecutor(max_workers=limit) as pool:
        return list(pool.map(work, hosts))


# -- the systems ---------------------------------------------------------------------------


class System:
    """Open N sessions with one call each (``open``), then close them (``close``)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def open(self, hosts: list[str]) -> list[int]:
        """Connect to every host and call getpid on each; the pids, in host order."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def finish(self) -> None:
        """Release what the system keeps across sessions (after the measurement)."""


class Aiopushy(System):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        import aiopushy

        self.aiopushy = aiopushy
        if ctx.where == "ssh":
            importlib.import_module("aiopushy.transport._asyncssh")
        self.group: Any = None

    async def open(self, hosts: list[str]) -> list[int]:
        kwargs: dict[str, Any] = {"python": self.ctx.argv}
        if self.ctx.fleet is None:
            targets = ["local:"] * len(hosts)
        else:
            fleet = self.ctx.fleet
            targets = [f"ssh:{address}:{fleet.port}" for address in hosts]
            kwargs.update(
                client_keys=[fleet.user_key],
                known_hosts=fleet.known_hosts,
                agent_path=None,
                config=os.devnull,
            )
        self.group = self.aiopushy.Group(
            targets, limit=self.ctx.limit, timeout=self.ctx.timeout, connect_kwargs=kwargs
        )
        await self.group.__aenter__()
        if self.group.failed:
            first = self.group.failed[0]
            raise BenchmarkError(
                f"aiopushy: {len(self.group.failed)} of {len(targets)} targets failed to "
                f"connect; {first.target}: {first.error!r}"
            )
        results = await self.group.run(lambda session: session.modules.os.getpid())
        failed = [r for r in results if not r.ok]
        if failed:
            raise BenchmarkError(
                f"aiopushy: getpid failed on {failed[0].target}: {failed[0].error!r}"
            )
        return [r.value for r in results]

    async def close(self) -> None:
        if self.group is not None:
            await self.group.aclose()
            self.group = None


class AsyncioFloor(System):
    """The local floor: bare ``asyncio.create_subprocess_exec``."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.processes: list[asyncio.subprocess.Process] = []

    async def open(self, hosts: list[str]) -> list[int]:
        starting = asyncio.Semaphore(self.ctx.limit)

        async def one() -> int:
            async with starting:
                process = await asyncio.create_subprocess_exec(
                    *self.ctx.argv, "-c", GETPID_AND_WAIT, **PIPES
                )
                self.processes.append(process)
                assert process.stdout is not None
                return int(await process.stdout.readline())

        return list(await asyncio.gather(*(one() for _ in hosts)))

    async def close(self) -> None:
        await asyncio.gather(*(finish(process) for process in self.processes))
        self.processes.clear()


class AsyncsshFloor(System):
    """The ssh floor: bare asyncssh, one connection and one channel per host."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        import asyncssh

        self.asyncssh = asyncssh
        self.connections: list[Any] = []
        self.channels: list[Any] = []

    async def open(self, hosts: list[str]) -> list[int]:
        fleet = self.ctx.fleet
        assert fleet is not None
        starting = asyncio.Semaphore(self.ctx.limit)
        command = shlex.join([*self.ctx.argv, "-c", GETPID_AND_WAIT])

        async def one(address: str) -> int:
            async with starting:
                # The options aiopushy's asyncssh transport passes for the same settings.
                connection = await self.asyncssh.connect(
                    address,
                    port=fleet.port,
                    username=fleet.username,
                    client_keys=[fleet.user_key],
                    known_hosts=fleet.known_hosts,
                    config=[os.devnull],
                    keepalive_interval=0,
                )
                self.connections.append(connection)
                channel = await connection.create_process(command, encoding=None)
                self.channels.append(channel)
                return int(await channel.stdout.readline())

        return list(await asyncio.gather(*(one(address) for address in hosts)))

    async def close(self) -> None:
        async def close_channel(channel: Any) -> None:
            channel.stdin.write_eof()
            await channel.wait_closed()

        async def close_connection(connection: Any) -> None:
            connection.close()
            await connection.wait_closed()

        await asyncio.gather(*(close_channel(channel) for channel in self.channels))
        await asyncio.gather(*(close_connection(c) for c in self.connections))
        self.channels.clear()
        self.connections.clear()


class ThreadedSystem(System):
    """A blocking library: connect and call in a pool of ``limit`` threads."""

    def open_one(self, host: str) -> tuple[Any, int]:
        """Connect to ``host`` and call getpid; a handle for ``close_one``, and the pid."""
        raise NotImplementedError

    def close_one(self, handle: Any) -> None:
        raise NotImplementedError

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.handles: list[Any] = []

    def _open_sync(self, hosts: list[str]) -> list[int]:
        def one(host: str) -> int:
            handle, pid = self.open_one(host)
            self.handles.append(handle)
            return pid

        return threaded(self.ctx.limit, one, hosts)

    async def open(self, hosts: list[str]) -> list[int]:
        return await asyncio.get_running_loop().run_in_executor(None, self._open_sync, hosts)

    def _close_sync(self) -> None:
        threaded(self.ctx.limit, self.close_one, list(self.handles))
        self.handles.clear()

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._close_sync)


class Execnet(ThreadedSystem):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        import execnet

        self.execnet = execnet
        self.group = execnet.Group()

    def spec(self, host: str) -> str:
        python = shlex.join(self.ctx.argv)
        if self.ctx.fleet is None:
            return f"popen//python={python}"
        return f"ssh={host}//python={python}//ssh_config={self.ctx.fleet.ssh_config}"

    def open_one(self, host: str) -> tuple[Any, int]:
        gateway = self.group.makegateway(self.spec(host))
        channel = gateway.remote_exec("import os; channel.send(os.getpid())")
        pid = channel.receive(self.ctx.timeout)
        channel.waitclose(self.ctx.timeout)
        return gateway, pid

    def close_one(self, handle: Any) -> None:
        handle.exit()

    def _close_sync(self) -> None:
        # Group.terminate asks every gateway to exit, then joins them all (in threads).
        self.group.terminate(timeout=self.ctx.timeout)
        self.handles.clear()


class Rpyc(ThreadedSystem):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        import rpyc
        import rpyc.utils.classic
        import rpyc.utils.factory

        self.rpyc = rpyc
        if ctx.where == "ssh":
            import plumbum
            import rpyc.utils.zerodeploy

            self.plumbum = plumbum
            self.zerodeploy = rpyc.utils.zerodeploy
        # Where rpyc is installed: the stdio server's sys.path (it runs with -S).
        self.rpyc_path = os.path.dirname(os.path.dirname(rpyc.__file__))

    def open_one(self, host: str) -> tuple[Any, int]:
        if self.ctx.fleet is None:
            server = RPYC_STDIO_SERVER.format(path=self.rpyc_path)
            conn = self.rpyc.utils.factory.connect_subproc(
                [*self.ctx.argv, "-u", "-c", server], self.rpyc.utils.classic.SlaveService
            )
            return (conn, None, None), conn.modules.os.getpid()
        config = self.ctx.fleet.ssh_config
        machine = self.plumbum.SshMachine(
            host,
            ssh_opts=["-F", config],
            scp_opts=["-F", config],
            connect_timeout=self.ctx.timeout,
        )
        try:
            deployed = self.zerodeploy.DeployedServer(
                machine, python_executable=machine[self.ctx.python]["-S"]
            )
        except BaseException:
            machine.close()
            raise
        conn = deployed.classic_connect()
        return (conn, deployed, machine), conn.modules.os.getpid()

    def close_one(self, handle: Any) -> None:
        conn, deployed, _ = handle
        proc = getattr(conn, "proc", None)
        conn.close()
        if proc is not None:  # the local stdio server: it exits at the end of its input
            try:
                proc.wait(self.ctx.timeout)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    proc.wait()
        if deployed is not None:
            deployed.close(timeout=self.ctx.timeout)


class Mitogen(ThreadedSystem):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        import mitogen.master

        if ctx.where == "ssh":
            import mitogen.ssh  # router.ssh() would import it; up front, before the RSS
        self.broker = mitogen.master.Broker()
        self.router = mitogen.master.Router(self.broker)

    def open_one(self, host: str) -> tuple[Any, int]:
        if self.ctx.fleet is None:
            context = self.router.local(
                python_path=self.ctx.argv, connect_timeout=self.ctx.timeout
            )
        else:
            context = self.router.ssh(
                hostname=host,
                python_path=self.ctx.argv,
                ssh_args=["-F", self.ctx.fleet.ssh_config],
                connect_timeout=self.ctx.timeout,
            )
        return context, context.call(os.getpid)

    def close_one(self, handle: Any) -> None:
        handle.shutdown(wait=True)

    async def finish(self) -> None:
        self.broker.shutdown()
        self.broker.join()


CLASSES: dict[str, Callable[[Context], System]] = {
    "aiopushy": Aiopushy,
    "asyncio": AsyncioFloor,
    "asyncssh": AsyncsshFloor,
    "execnet": Execnet,
    "rpyc": Rpyc,
    "mitogen": Mitogen,
}


# -- the measurement -------------------------------------------------------------------------


def check_pids(system: str, pids: Sequence[Any], n: int) -> None:
    """N distinct integer pids, none of them this controller's."""
    if len(pids) != n or not all(isinstance(pid, int) and pid > 0 for pid in pids):
        raise BenchmarkError(f"{system}: expected {n} pids, got {list(pids)[:10]!r}...")
    if len(set(pids)) != n:
        raise BenchmarkError(f"{system}: only {len(set(pids))} distinct pids among {n}")
    if os.getpid() in pids:
        raise BenchmarkError(f"{system}: a session answered with the controller's own pid")


def running(pid: int) -> bool:
    """Whether ``pid`` is alive (not gone, not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


async def check_gone(system: str, pids: Sequence[int]) -> None:
    """Every remote interpreter has exited (the fleet is this host: its pids are ours)."""
    deadline = time.monotonic() + GONE_WITHIN
    while (alive := [pid for pid in pids if running(pid)]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if alive:
        raise BenchmarkError(f"{system}: {len(alive)} interpreters still run after closing")


async def measure(system_name: str, system: System, ctx: Context, n: int) -> dict[str, Any]:
    hosts = ctx.hosts(n)
    warmup = hosts[:1]
    pids = await system.open(warmup)
    check_pids(system_name, pids, 1)
    await system.close()
    await check_gone(system_name, pids)

    before = rss()
    cpu_start = time.process_time()
    start = time.perf_counter()
    try:
        pids = await asyncio.wait_for(system.open(hosts), ctx.timeout)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        check_pids(system_name, pids, n)
        opened = rss()
    finally:
        closing = time.perf_counter()
        await asyncio.wait_for(system.close(), ctx.timeout)
        closed = time.perf_counter() - closing
    await check_gone(system_name, pids)
    await system.finish()
    return {
        "system": system_name,
        "where": ctx.where,
        "n": n,
        "limit": ctx.limit,
        "wall": wall,
        "close": closed,
        "controller_cpu": cpu,
        "rss_before": before,
        "rss_open": opened,
        "mib_per_session": (opened - before) / n / 2**20,
    }


def kill_leftovers() -> list[int]:
    """Kill (by pid) this process's children still around; their pids."""
    children = leftover_children(wait=5.0)
    for pid in children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for pid in children:
        with contextlib.suppress(OSError):
            os.waitpid(pid, 0)
    return children


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fanout_worker",
        description="One fan-out measurement; prints one JSON line.",
    )
    parser.add_argument("system", choices=SYSTEMS)
    parser.add_argument("n", type=int)
    parser.add_argument("where", choices=("local", "ssh"))
    parser.add_argument("--python", default=sys.executable, help="the remote interpreter")
    parser.add_argument("--limit", type=int, default=32, help="hosts connecting at once")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per phase")
    parser.add_argument("--fleet", metavar="PATH", help="the fleet's JSON file (for ssh)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if (args.system, args.where) in UNSUPPORTED:
        print(f"{args.system} is not measured over {args.where}", file=sys.stderr)
        return 2
    if args.where == "ssh" and not args.fleet:
        print("--fleet is required for ssh", file=sys.stderr)
        return 2
    fleet = Fleet.load(args.fleet) if args.where == "ssh" else None
    ctx = Context(args.where, args.python, args.limit, args.timeout, fleet)
    status = 0
    try:
        for module in REQUIRES.get((args.system, args.where), ()):
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise Skipped(f"not installed ({exc})") from exc
        system = CLASSES[args.system](ctx)
        result = asyncio.run(measure(args.system, system, ctx, args.n))
    except Skipped as exc:
        result = {"system": args.system, "where": args.where, "n": args.n, "skipped": str(exc)}
    except Exception as exc:  # any failure fails the measurement, with its reason
        print(f"fanout_worker: {args.system} N={args.n} {args.where}: {exc!r}", file=sys.stderr)
        result, status = {}, 1
    if children := kill_leftovers():
        print(f"fanout_worker: child processes left behind (killed): {children}", file=sys.stderr)
        status = 1
    if status == 0:
        print(json.dumps(result), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
