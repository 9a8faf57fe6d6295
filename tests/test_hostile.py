"""A hostile remote: crafted and random frames against a live session.

The far side here is a fake remote in this process, joined to the session by in-memory
streams (fault injection): it answers the handshake, then sends what a hostile peer
might. The controller must end the session with a clean ``ProtocolError`` (or carry on),
never run anything, never hang and never touch its own objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import ByteReceiveStream, ByteSendStream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiopushy as pushy
from aiopushy import _bootstrap
from aiopushy._protocol import PROTOCOL_VERSION, codec
from aiopushy._protocol import messages as m
from aiopushy._protocol.framing import HEADER, SYNC, FrameDecoder, encode_frame
from aiopushy.transport import BaseTransport

from .attacks import ATTACKS

pytestmark = pytest.mark.anyio


class _Out(ByteSendStream):
    def __init__(self, queue: asyncio.Queue[bytes | None]) -> None:
        self.queue = queue

    async def send(self, item: bytes) -> None:
        await self.queue.put(bytes(item))

    async def aclose(self) -> None:
        await self.queue.put(None)


class _In(ByteReceiveStream):
    def __init__(self, queue: asyncio.Queue[bytes | None]) -> None:
        self.queue = queue

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await self.queue.get()
        if data is None:
            await self.queue.put(None)
            raise anyio.EndOfStream
        return data

    async def aclose(self) -> None:
        pass


class FakeRemote(BaseTransport):
    """A transport whose far end is this test: frames in, frames out."""

    def __init__(self) -> None:
        self.address = "fake"
        self.to_remote: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.to_controller: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.stdin = _Out(self.to_remote)
        self.stdout = _In(self.to_controller)
        self.stderr = _In(asyncio.Queue())
        self.stderr.queue.put_nowait(None)
        self.decoder = FrameDecoder()
        self.bootstrap_skipped = False

    def send(self, kind: int, request_id: int, body: bytes = b"") -> None:
        self.to_controller.put_nowait(encode_frame(kind, request_id, body))

    def send_raw(self, data: bytes) -> None:
        self.to_controller.put_nowait(data)

    async def next_frame(self) -> Any:
        while True:
            frame = self.decoder.next_frame()
            if frame is not None:
                return frame
            data = await self.to_remote.get()
            assert data is not None, "controller closed its output"
            if not self.bootstrap_skipped:
                for _ in range(_bootstrap.PAYLOAD_PARTS):  # skip the bootstrap
                    length = int(data[:12])
                    data = data[12 + 10 + length :]
                self.bootstrap_skipped = True
            self.decoder.receive_data(data)

    async def handshake(self, protocol: int = PROTOCOL_VERSION) -> None:
        self.send_raw(SYNC)
        self.send(m.HELLO, 0, codec.encode_values({"protocol": protocol, "pid": 1}))
        setup = await self.next_frame()
        assert setup.kind == m.SETUP
        self.send(m.RESULT, setup.request_id, codec.encode_values(None))

    async def aclose(self) -> None:
        self.to_controller.put_nowait(None)


async def _connect(protocol: int = PROTOCOL_VERSION) -> tuple[pushy.Session, FakeRemote]:
    remote = FakeRemote()

    async def popen(command: Sequence[str], address: str, **kwargs: Any) -> FakeRemote:
        return remote

    pushy.transports["fake"] = popen
    handshake = asyncio.ensure_future(remote.handshake(protocol))
    try:
        with anyio.fail_after(5):
            session = await pushy.connect("fake:", python="unused")
    finally:
        del pushy.transports["fake"]
        handshake.cancel()
    return session, remote


@pytest.fixture
async def fake(anyio_backend: str) -> AsyncIterator[tuple[pushy.Session, FakeRemote]]:
    session, remote = await _connect()
    yield session, remote
    await session.close()


async def _answer(remote: FakeRemote, kind: int, body: bytes) -> None:
    request = await remote.next_frame()
    while request.kind != m.REQUEST:  # skip pongs and releases
        request = await remote.next_frame()
    remote.send(kind, request.request_id, body)


async def _call_answered_with(
    session: pushy.Session, remote: FakeRemote, kind: int, body: bytes
) -> Any:
    answering = asyncio.ensure_future(_answer(remote, kind, body))
    try:
        with anyio.fail_after(5):
            return await session.modules.builtins.int(1)
    finally:
        answering.cancel()


async def test_fake_remote_works(fake: tuple[pushy.Session, FakeRemote]) -> None:
    session, remote = fake
    assert await _call_answered_with(session, remote, m.RESULT, codec.encode_values(42)) == 42


async def test_wrong_protocol_version_is_a_connect_error(anyio_backend: str) -> None:
    with pytest.raises(pushy.ConnectError, match="protocol"):
        await _connect(protocol=PROTOCOL_VERSION + 1)


class Precious:
    def __init__(self) -> None:
        self.touched = False


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, ("import os; os._exit(99)",))


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (m.RESULT, pickle.dumps(_Evil(), protocol=5)),
        (m.RESULT, pickle.dumps(_Evil(), protocol=2)),
        (m.RESULT, b"\x80\x05N" + b"r\xff\xff\xff\x7f" + b"."),  # memo bomb
        (m.RESULT, b"\x80\x05(K\x02K\x63tQ."),  # reference to an object never exported
        (m.RESULT, b"garbage"),
        (m.RELEASE, codec.encode_values("not pairs")),
        (m.OUTPUT, b"\x00"),
        (77, b""),  # unknown frame kind
    ],
)
async def test_crafted_frames_end_the_session_cleanly(
    fake: tuple[pushy.Session, FakeRemote], kind: int, body: bytes
) -> None:
    session, remote = fake
    if kind == m.OUTPUT:
        remote.send(kind, 99, body)  # output for a stream that does not exist
        kind, body = m.RESULT, codec.encode_values(0)
    elif kind in (m.RELEASE, 77):
        remote.send(kind, 0, body)
        kind, body = m.RESULT, codec.encode_values(0)
    with pytest.raises(pushy.ProtocolError):
        await _call_answered_with(session, remote, kind, body)
    assert session.closed


async def test_build_on_an_exported_object_cannot_touch_it(
    fake: tuple[pushy.Session, FakeRemote],
) -> None:
    session, remote = fake
    precious = Precious()

    async def exchange() -> None:
        request = await remote.next_frame()
        # The request carries a reference to ``precious``: find its object id.
        oids: list[int] = []
        codec.decode(request.body, lambda pid: pid[0] == m.REF_SENDER and oids.append(pid[1]))
        oid = oids[0]
        evil = (
            b"\x80\x05(K\x02J" + oid.to_bytes(4, "little") + b"tQ"  # ref to precious
            b"}\x8c\x07touched\x88sb."  # BUILD {"touched": True}
        )
        remote.send(m.RESULT, request.request_id, evil)

    exchanging = asyncio.ensure_future(exchange())
    with pytest.raises(pushy.ProtocolError), anyio.fail_after(5):
        await session.modules.builtins.id(precious)
    await exchanging
    assert precious.touched is False


async def test_oversized_frame_is_refused_from_its_header(
    fake: tuple[pushy.Session, FakeRemote],
) -> None:
    session, remote = fake
    remote.send_raw(HEADER.pack(2**31, m.RESULT, 1))
    with pytest.raises(pushy.ProtocolError, match="exceeds"), anyio.fail_after(5):
        await session.eval("1")


async def test_callback_requests_only_reach_what_was_given(
    fake: tuple[pushy.Session, FakeRemote],
) -> None:
    session, remote = fake
    # Ask the controller to call object id 1, which it never exported.
    call = b"\x80\x05K\x09(K\x02K\x01tQ))\x87\x86."  # (OP_CALL, (ref, (), ()))
    remote.send(m.REQUEST, 5, call)
    with pytest.raises(pushy.ProtocolError), anyio.fail_after(5):
        while True:
            await _call_answered_with(session, remote, m.RESULT, codec.encode_values(1))


_MALFORMED_MODULE = [
    (),
    ("a",),
    ("a", "b"),
    (5, b""),
    ("x" * 1001, b""),
    ("", b""),
    ("a", b"k" * 65),
]
_MALFORMED_DATA = [(), ("a",), (5, "x"), ("a", b"x"), ("a", "x" * 4097)]


@pytest.mark.parametrize(
    ("op", "args", "message"),
    [(m.OP_FIND_MODULE, args, "malformed module request") for args in _MALFORMED_MODULE]
    + [(m.OP_READ_DATA, args, "malformed data file request") for args in _MALFORMED_DATA],
)
async def test_malformed_module_and_data_requests_end_the_session(
    fake: tuple[pushy.Session, FakeRemote], op: int, args: tuple[Any, ...], message: str
) -> None:
    session, remote = fake
    remote.send(m.REQUEST, 5, codec.encode_values((op, args)))
    with pytest.raises(pushy.ProtocolError, match=message), anyio.fail_after(5):
        while True:
            await _call_answered_with(session, remote, m.RESULT, codec.encode_values(1))


async def test_a_data_file_request_reads_nothing_not_forwarded(
    fake: tuple[pushy.Session, FakeRemote],
) -> None:
    """No package is forwarded: whatever the path, the answer is an error, the session
    goes on."""
    session, remote = fake
    requests = [("os", "../../../etc/passwd"), ("aiopushy", "py.typed"), ("x", "/etc/passwd")]
    for request_id, (package, relative) in enumerate(requests, 20):
        body = codec.encode_values((m.OP_READ_DATA, (package, relative)))
        remote.send(m.REQUEST, request_id, body)
        kind, answered_id, answer = await remote.next_frame()
        assert (kind, answered_id) == (m.ERROR, request_id)
        assert b"root:" not in answer
    assert not session.closed


async def test_a_module_request_is_answered_by_the_policy(
    fake: tuple[pushy.Session, FakeRemote],
) -> None:
    """A path is never a module name; what the session forwards nothing of is refused."""
    session, remote = fake
    for request_id, name in enumerate(["../../etc/passwd", "/etc/passwd", "os", "json"], 10):
        remote.send(m.REQUEST, request_id, codec.encode_values((m.OP_FIND_MODULE, (name, b""))))
        kind, answered_id, answer = await remote.next_frame()
        assert (kind, answered_id) == (m.RESULT, request_id)
        status, message = codec.decode_values(answer)
        assert status in (m.MODULE_MISSING, m.MODULE_REFUSED), message
        assert "passwd" not in message or status == m.MODULE_MISSING
    assert not session.closed


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    frames=st.lists(
        st.tuples(st.sampled_from(sorted(m.FRAME_KIND_NAMES)), st.binary(max_size=60)),
        max_size=4,
    )
)
def test_random_frames_never_hang_or_escape(frames: list[tuple[int, bytes]]) -> None:
    async def scenario() -> None:
        session, remote = await _connect()
        try:
            for kind, body in frames:
                remote.send(kind, 1, body)
            try:
                result = await _call_answered_with(
                    session, remote, m.RESULT, codec.encode_values("fine")
                )
            except (pushy.ProtocolError, pushy.ConnectionLost, pushy.RemoteError):
                return
            except Exception as exc:  # a remote builtin exception, if a frame was ERROR
                assert type(exc).__module__ == "builtins"
                return
            assert result == "fine"
        finally:
            await session.close()

    asyncio.run(scenario())


# -- a hostile remote as a real process ----------------------------------------------------

HOSTILE = Path(__file__).with_name("hostile_remote.py")


def hostile(attack: str) -> list[str]:
    """The ``python`` of a target whose remote is ``hostile_remote.py ATTACK``."""
    return [sys.executable, str(HOSTILE), attack]


class LoopWatch:
    """The longest the event loop went without running a 10 ms ticker (beyond the 10 ms)."""

    longest_gap = 0.0


@contextlib.asynccontextmanager
async def watching_the_loop() -> AsyncIterator[LoopWatch]:
    watch = LoopWatch()

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            watch.longest_gap = max(watch.longest_gap, now - last - 0.01)
            last = now

    ticker = asyncio.ensure_future(tick())
    try:
        yield watch
    finally:
        ticker.cancel()


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_a_hostile_answer_is_a_clean_error_within_a_second(attack: str) -> None:
    async with pushy.connect("local:", python=hostile(attack), timeout=30) as conn:
        async with watching_the_loop() as watch:
            with anyio.fail_after(1), pytest.raises(pushy.ProtocolError, match=ATTACKS[attack][1]):
                await conn.eval("1")
        assert conn.closed
    assert watch.longest_gap < 0.5


@pytest.mark.parametrize("attack", ["doubling tuples in a set", "deep tuples in a frozenset"])
async def test_a_hostile_hello_is_a_connect_error(attack: str) -> None:
    async with watching_the_loop() as watch:
        with anyio.fail_after(20), pytest.raises(pushy.ConnectError, match=ATTACKS[attack][1]):
            await pushy.connect("local:", python=hostile(f"hello-{attack}"))
    assert watch.longest_gap < 0.5


@pytest.mark.parametrize("name", ["range", "complex", "slice"])
async def test_a_callback_may_only_call_what_was_handed_out(name: str) -> None:
    async with pushy.connect("local:", python=hostile(f"callback-{name}"), timeout=30) as conn:
        with anyio.fail_after(5), pytest.raises(pushy.ProtocolError, match="not handed"):
            await conn.eval("1")


@pytest.mark.parametrize("attack", [*ATTACKS, "hello-doubling tuples in a set", "callback-range"])
async def test_one_hostile_target_among_ten_leaves_the_other_nine_untouched(attack: str) -> None:
    targets = [f"local:{index}" for index in range(10)]  # local: ignores the address
    async with watching_the_loop() as watch:
        results = await pushy.fanout(
            targets,
            lambda conn: conn.modules.os.getpid(),
            per_target={targets[3]: {"python": hostile(attack)}},
            timeout=60,
        )
    assert [result.ok for result in results] == [index != 3 for index in range(10)]
    assert len({result.value for result in results if result.ok}) == 9
    assert isinstance(results[3].error, (pushy.ProtocolError, pushy.ConnectError))
    assert watch.longest_gap < 0.5
