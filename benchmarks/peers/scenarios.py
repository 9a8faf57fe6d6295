"""What the peers family measures: its settings, the scenario ids (keys of the JSON),
the systems (rows of the table), the table's order and the comparisons."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import GETPID, PYTHON_S, RAW, Comparison, Settings
from ..systems.base import CHAIN_STEPS

MIB = 1024 * 1024
AIOPUSHY = "aiopushy"


@dataclass(frozen=True)
class PeerSettings(Settings):
    """``core.Settings``, and how much to measure in the scenarios of this family."""

    concurrent: int  # calls in flight
    concurrent_rounds: int
    bulk_size: int  # bytes
    bulk_rounds: int
    bulk_budget: float  # seconds for the bulk scenarios (their rounds are long)
    slow_batch: int  # chains per sample on the slow link
    slow_rounds: int
    delay: float  # seconds the proxy adds each way


FULL = PeerSettings(
    "full",
    rounds=30,
    batch=200,
    warmup_calls=200,
    startup_rounds=20,
    warmup_starts=2,
    budget=45.0,
    concurrent=1000,
    concurrent_rounds=20,
    bulk_size=64 * MIB,
    bulk_rounds=5,
    bulk_budget=100.0,
    slow_batch=10,
    slow_rounds=15,
    delay=0.005,
)
QUICK = PeerSettings(
    "quick",
    rounds=3,
    batch=20,
    warmup_calls=20,
    startup_rounds=3,
    warmup_starts=1,
    budget=3.0,
    concurrent=1000,
    concurrent_rounds=3,
    bulk_size=4 * MIB,
    bulk_rounds=3,
    bulk_budget=3.0,
    slow_batch=2,
    slow_rounds=3,
    delay=0.005,
)
WARMUP_BULK = MIB  # bytes moved by each bulk system once before measuring

# -- scenario ids (keys of the JSON) and systems (rows of the table) --------------------

LIMIT_ROUND_TRIP = "peers_limit_round_trip"
LIMIT_STARTUP = "peers_limit_startup"
CONNECT = "peers_connect"
ROUND_TRIP = "peers_round_trip"
ATTRIBUTE_CHAIN = "peers_attribute_chain"
CONCURRENT = "peers_concurrent"
BULK_BASELINE = "peers_bulk_baseline"
BULK_BYTES = "peers_bulk_bytes"
BULK_FILES = "peers_bulk_files"
SLOW_LINK = "peers_slow_link"

RAW_BLOCKING = "raw blocking ping-pong (os.read/os.write)"
A_CONNECT = 'aiopushy: connect("local:") + first call'
X_CONNECT = "execnet: makegateway + remote_exec"
R_CONNECT = "RPyC: classic stdio subprocess + first call"
M_CONNECT = "Mitogen: router.local + context.call"
A_BOUND = "aiopushy: getpid() resolved beforehand (a proxy)"
X_GETPID = "execnet: channel send + receive"
R_GETPID = "RPyC: conn.modules.os.getpid()"
R_BOUND = "RPyC: getpid() resolved beforehand"
M_GETPID = "Mitogen: context.call(os.getpid)"
A_JOIN = 'aiopushy: await conn.modules.os.path.join("a", "b")'
X_JOIN = 'execnet: channel message ("join", "a", "b")'
R_JOIN = 'RPyC: conn.modules.os.path.join("a", "b")'
M_JOIN = 'Mitogen: context.call(os.path.join, "a", "b")'
RAW_PIPELINED = "raw asyncio ping-pong, all pings written, then read"
A_GATHER = "aiopushy: asyncio.gather(conn.modules.os.getpid() ...)"
A_PUSHY_GATHER = "aiopushy: aiopushy.gather(conn.modules.os.getpid() ...)"
X_GATHER = "execnet: all sent on the channel, then received"
R_GATHER = "RPyC: rpyc.async_(conn.modules.os.getpid)"
M_GATHER = "Mitogen: context.call_async + receivers"
RAW_SINK = "raw asyncio pipe: there, length answered"
RAW_BACK = "raw asyncio pipe: there, then back"
RAW_CAT = "raw asyncio pipe: through a cat child"
RAW_SINK_BLOCKING = "raw blocking pipe: there, length answered"
A_LEN = "aiopushy: await conn.modules.builtins.len(blob)"
X_LEN = "execnet: channel send of the bytes"
R_LEN = "RPyC: conn.modules.builtins.len(blob)"
M_LEN = "Mitogen: context.call(len, blob)"
A_FILES = "aiopushy: putfile + getfile (local: shutil)"
A_FILES_PROTOCOL = "aiopushy: putfile + getfile via the protocol"
X_FILES = "execnet: file bytes in channel messages"
R_FILES = "RPyC: rpyc.classic.upload + download"
M_FILES = "Mitogen: context.call with the file bytes"
RAW_TCP = "raw asyncio TCP ping-pong via the proxy"
A_SLOW = "aiopushy daemon: await the chain"
R_SLOW = "RPyC classic over TCP: the chain"

#: Payload caps of bulk systems too slow for the full size within ``OPERATION_TIMEOUT``:
#: RPyC's ``PipeStream.write`` slices the remaining bytes after every 64,000-byte write
#: (quadratic), and took 30-60 s for one 64 MiB argument here.
BULK_CAPS = {R_LEN: 16 * MIB}

RAW_BULK = (RAW_SINK, RAW_BACK, RAW_CAT, RAW_SINK_BLOCKING)
BYTES_SYSTEMS = (A_LEN, X_LEN, R_LEN, M_LEN)
FILE_SYSTEMS = (A_FILES, A_FILES_PROTOCOL, X_FILES, R_FILES, M_FILES)
#: The raw baseline each bulk system is held against (same direction, same bytes moved).
BULK_BASELINES = {
    **{system: RAW_SINK for system in BYTES_SYSTEMS},
    **{system: RAW_BACK for system in FILE_SYSTEMS},
}
#: Systems moving their payload twice (there, then back).
TWICE = (RAW_BACK, *FILE_SYSTEMS)
BULK_TARGET = 0.5  # of the raw pipe's throughput


def scenarios(settings: PeerSettings) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(scenario id, label in the table, its systems), in the order of the table."""
    size = f"{settings.bulk_size // MIB} MiB"
    delay = f"{settings.delay * 1000:g} ms"
    return (
        (LIMIT_ROUND_TRIP, "round trip (baselines)", (RAW, RAW_BLOCKING)),
        (LIMIT_STARTUP, "start-up (baseline)", (PYTHON_S,)),
        (CONNECT, "connect + first call", (A_CONNECT, X_CONNECT, R_CONNECT, M_CONNECT)),
        (
            ROUND_TRIP,
            "call round trip",
            (GETPID, A_BOUND, X_GETPID, R_GETPID, R_BOUND, M_GETPID),
        ),
        (ATTRIBUTE_CHAIN, 'os.path.join("a", "b")', (A_JOIN, X_JOIN, R_JOIN, M_JOIN)),
        (
            CONCURRENT,
            f"{settings.concurrent:,} calls in flight",
            (RAW_PIPELINED, A_GATHER, A_PUSHY_GATHER, X_GATHER, R_GATHER, M_GATHER),
        ),
        (BULK_BASELINE, f"{size} over pipes (baselines)", RAW_BULK),
        (BULK_BYTES, f"{size} bytes argument", BYTES_SYSTEMS),
        (BULK_FILES, f"{size} file put + get", FILE_SYSTEMS),
        (
            SLOW_LINK,
            f"{CHAIN_STEPS}-step chain, TCP +{delay} each way",
            (RAW_TCP, A_SLOW, R_SLOW),
        ),
    )


def comparisons() -> list[Comparison]:
    """Every comparison of the family; those missing a system are dropped when reporting."""
    found = [
        Comparison(RAW_BLOCKING, RAW, None),
        Comparison(GETPID, RAW, 1.3),
        *(Comparison(GETPID, peer, 1.0) for peer in (X_GETPID, R_GETPID, R_BOUND, M_GETPID)),
        Comparison(A_BOUND, R_BOUND, 1.0),
        Comparison(A_BOUND, RAW, None),
        *(Comparison(peer, RAW, None) for peer in (X_GETPID, R_GETPID, R_BOUND, M_GETPID)),
        Comparison(A_CONNECT, PYTHON_S, 2.0),
        *(Comparison(A_CONNECT, peer, None) for peer in (X_CONNECT, R_CONNECT, M_CONNECT)),
        *(Comparison(peer, PYTHON_S, None) for peer in (X_CONNECT, R_CONNECT, M_CONNECT)),
        Comparison(A_JOIN, RAW, None),
        *(Comparison(A_JOIN, peer, None) for peer in (X_JOIN, R_JOIN, M_JOIN)),
        *(Comparison(peer, RAW, None) for peer in (X_JOIN, R_JOIN, M_JOIN)),
        Comparison(A_GATHER, RAW_PIPELINED, None),
        *(Comparison(A_GATHER, peer, None) for peer in (X_GATHER, R_GATHER, M_GATHER)),
        Comparison(A_PUSHY_GATHER, RAW_PIPELINED, None),
        *(Comparison(A_PUSHY_GATHER, peer, None) for peer in (X_GATHER, R_GATHER, M_GATHER)),
        *(Comparison(peer, RAW_PIPELINED, None) for peer in (X_GATHER, R_GATHER, M_GATHER)),
        *(Comparison(raw, RAW_SINK, None) for raw in (RAW_BACK, RAW_CAT, RAW_SINK_BLOCKING)),
        *(Comparison(system, base, 1 / BULK_TARGET) for system, base in BULK_BASELINES.items()),
        Comparison(A_SLOW, RAW_TCP, None),
        Comparison(A_SLOW, R_SLOW, None),
        Comparison(R_SLOW, RAW_TCP, None),
    ]
    return found
