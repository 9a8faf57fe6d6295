"""The sans-I/O protocol core: frames, codec and object tables, with bytes alone."""

from __future__ import annotations

import contextlib
import gc
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiopushy._protocol import codec, framing
from aiopushy._protocol import messages as m
from aiopushy._protocol.objects import ExportTable, ImportTable

# -- framing ------------------------------------------------------------------------


def test_frames_round_trip_in_any_chunking() -> None:
    frames = [(m.REQUEST, i, bytes([i]) * i) for i in range(50)]
    wire = b"".join(framing.encode_frame(*f) for f in frames)
    for step in (1, 7, 100, len(wire)):
        decoder = framing.FrameDecoder()
        out = []
        for start in range(0, len(wire), step):
            decoder.receive_data(wire[start : start + step])
            out.extend(decoder.frames())
        assert [tuple(f) for f in out] == frames
        assert decoder.buffered == 0


def _read_through_buffers(decoder: framing.FrameDecoder, wire: bytes, step: int) -> list[Any]:
    """Feed ``wire`` as a reader with ``readinto`` would: into ``receive_buffer`` when the
    decoder offers one, else ``step`` bytes at a time through ``receive_data``."""
    out: list[Any] = []
    pos = 0
    while pos < len(wire):
        target = decoder.receive_buffer()
        if target is not None:
            count = min(len(target), step, len(wire) - pos)
            target[:count] = wire[pos : pos + count]
            decoder.received_into(count)
        else:
            count = min(step, len(wire) - pos)
            decoder.receive_data(wire[pos : pos + count])
        pos += count
        out.extend(decoder.frames())
    return out


@pytest.mark.parametrize("step", [1000, 65536, 3 * 2**20 + 7])
def test_large_bodies_are_received_into_their_own_buffers(step: int) -> None:
    big = bytes(range(256)) * (framing.DIRECT_BODY // 256 + 3)
    frames = [
        (m.REQUEST, 1, b"small"),
        (m.REQUEST, 2, big),
        (m.REQUEST, 3, b""),
        (m.REQUEST, 4, big[::-1] * 2),
        (m.REQUEST, 5, b"after"),
    ]
    wire = b"".join(framing.encode_frame(*f) for f in frames)
    decoder = framing.FrameDecoder(max_frame_size=8 * 2**20)
    out = _read_through_buffers(decoder, wire, step)
    assert [(k, i, bytes(b)) for k, i, b in out] == frames
    if step < len(big):  # it did not come whole in one chunk: filled in place
        assert type(out[1].body) is bytearray
    assert decoder.buffered == 0 and decoder.receive_buffer() is None


def test_receive_data_finishes_a_body_begun_in_its_buffer() -> None:
    """A reader may switch to plain chunks mid-body; bytes past the body stay in order."""
    big = b"z" * (framing.DIRECT_BODY + 10)
    wire = framing.encode_frame(m.RESULT, 7, big) + framing.encode_frame(m.RESULT, 8, b"next")
    decoder = framing.FrameDecoder(max_frame_size=4 * 2**20)
    decoder.receive_data(wire[:100])
    target = decoder.receive_buffer()
    assert target is not None
    target[:1000] = wire[100:1100]
    decoder.received_into(1000)
    assert decoder.next_frame() is None
    decoder.receive_data(wire[1100:])  # the rest of the body, and the next frame
    assert [(f.request_id, bytes(f.body)) for f in decoder.frames()] == [(7, big), (8, b"next")]


def test_no_buffer_is_offered_for_a_frame_over_the_limit() -> None:
    decoder = framing.FrameDecoder(max_frame_size=framing.DIRECT_BODY)
    decoder.receive_data(framing.HEADER.pack(framing.DIRECT_BODY + 1, m.RESULT, 1))
    assert decoder.receive_buffer() is None  # next_frame refuses it, from its header
    with pytest.raises(framing.FrameError, match="exceeds"):
        decoder.next_frame()


def test_trusted_decoding_of_a_bytearray_body_reads_it_in_place() -> None:
    value = {"blob": b"\x00" * 300_000, "items": [1, (2.5, "three")], "nested": {"x": None}}
    body = codec.encode_values(value)
    assert codec.decode_values(bytearray(body), trusted=True) == value
    with pytest.raises(codec.DecodeError, match="trailing"):
        codec.decode_values(bytearray(body + b"."), trusted=True)


def test_oversized_frame_is_rejected_from_its_header() -> None:
    decoder = framing.FrameDecoder(max_frame_size=1024)
    decoder.receive_data(framing.HEADER.pack(1025, m.RESULT, 1))
    with pytest.raises(framing.FrameError, match="exceeds"):
        decoder.next_frame()


@given(st.binary(max_size=2000))
def test_frame_decoder_never_fails_uncleanly(data: bytes) -> None:
    decoder = framing.FrameDecoder(max_frame_size=4096)
    decoder.receive_data(data)
    with contextlib.suppress(framing.FrameError):
        decoder.frames()


# -- codec --------------------------------------------------------------------------

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.complex_numbers(allow_nan=False)
    | st.text()
    | st.binary()
    | st.binary().map(bytearray)
    | st.just(...),
    lambda children: (
        st.lists(children, max_size=5)
        | st.lists(children, max_size=5).map(tuple)
        | st.dictionaries(st.text(max_size=5) | st.integers(), children, max_size=5)
        | st.frozensets(st.integers() | st.text(max_size=5), max_size=5)
        | st.sets(st.integers(), max_size=5)
    ),
    max_leaves=30,
)


def _no_refs(obj: Any) -> tuple[Any, ...]:
    raise AssertionError(f"unexpected reference for {obj!r}")


@given(values)
def test_values_round_trip_exactly(value: Any) -> None:
    data = codec.encode(value, _no_refs)
    assert codec.decode(data, _no_refs) == value


_shared_encoder = codec.Encoder(_no_refs)


@given(values)
def test_a_reused_encoder_gives_the_bytes_of_a_fresh_pickler(value: Any) -> None:
    assert _shared_encoder.encode(value) == codec.encode(value, _no_refs)


def test_encoder_keeps_nothing_alive_and_survives_failures() -> None:
    import weakref

    class Thing:
        pass

    def refuse(obj: Any) -> tuple[Any, ...]:
        raise ValueError("no")

    thing = Thing()
    alive = weakref.ref(thing)
    encoder = codec.Encoder(lambda obj: (m.REF_SENDER, 1, "Thing"))
    encoder.encode([thing, "x" * 100])
    del thing
    gc.collect()
    assert alive() is None  # neither the memo nor the buffer holds it
    failing = codec.Encoder(refuse)
    with pytest.raises(ValueError):
        failing.encode([1, object()])
    assert failing.encode([1, 2]) == codec.encode([1, 2], _no_refs)


def test_encoder_is_safe_across_threads_and_nested_calls() -> None:
    import threading

    encoder: codec.Encoder

    class Nested:  # its reference is computed by encoding something else meanwhile
        pass

    def reference(obj: Any) -> tuple[Any, ...]:
        return (m.REF_SENDER, len(encoder.encode(["inner", obj is None])), "Nested")

    encoder = codec.Encoder(reference)
    expected = codec.encode([Nested(), list(range(50))], reference)
    results: list[bytes] = []

    def work() -> None:
        for _ in range(200):
            results.append(encoder.encode([Nested(), list(range(50))]))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 800 and set(results) == {expected}


def test_slices_and_ranges_round_trip() -> None:
    for value in (slice(1, None, -1), range(2, 10, 3), 3 + 4j, ...):
        assert codec.decode(codec.encode(value, _no_refs), _no_refs) == value


def test_non_values_become_references_and_resolve() -> None:
    class Thing:
        pass

    thing = Thing()
    seen: list[Any] = []

    def reference(obj: Any) -> tuple[Any, ...]:
        seen.append(obj)
        return (m.REF_SENDER, 7, "Thing")

    data = codec.encode({"t": [thing, (thing,)]}, reference)
    assert seen == [thing, thing]  # one transmission per place: both get released
    decoded = codec.decode(data, lambda payload: ("resolved", *payload))
    assert decoded == {"t": [("resolved", 1, 7, "Thing"), (("resolved", 1, 7, "Thing"),)]}


def test_subclasses_of_value_types_are_references() -> None:
    import collections

    refs: list[Any] = []
    codec.encode([collections.OrderedDict(), True], lambda o: refs.append(o) or (1, 1, "x"))
    assert len(refs) == 1 and isinstance(refs[0], collections.OrderedDict)


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    "data",
    [
        pickle.dumps(_Evil(), protocol=5),
        pickle.dumps(print, protocol=5),
        pickle.dumps(ExportTable, protocol=5),
        b"cos\nsystem\n(S'echo pwned'\ntR.",  # protocol 0 GLOBAL + REDUCE
        b"",
        b"\x80\x05N",  # truncated (no STOP)
        pickle.dumps(1) + b"extra",
    ],
)
def test_decoder_refuses_crafted_input(data: bytes) -> None:
    with pytest.raises(codec.DecodeError):
        codec.decode(data, lambda payload: payload)


def test_objects_behind_references_are_out_of_reach() -> None:
    # BUILD or REDUCE on a referenced object must not reach the real object.
    target = type("Target", (), {})()
    build = b"\x80\x05(K\x02K\x01tQ}\x94\x8c\x05owned\x94K\x01sb."  # persid + dict + BUILD
    with pytest.raises(codec.DecodeError):
        codec.decode(build, lambda payload: target)
    assert not hasattr(target, "owned")
    reduce_ = b"\x80\x05(K\x02K\x01tQ)R."  # call the referenced object
    with pytest.raises(codec.DecodeError):
        codec.decode(reduce_, lambda payload: print)


@pytest.mark.parametrize("index", [0x0FFFFFFF, 0xFFFFFFFF])
def test_memo_index_cannot_force_huge_allocations(index: int) -> None:
    data = b"\x80\x05N" + b"r" + index.to_bytes(4, "little") + b"."  # LONG_BINPUT
    with pytest.raises(codec.DecodeError, match="not allowed"):
        codec.decode(data, lambda payload: payload)
    data = b"\x80\x05]j" + index.to_bytes(4, "little") + b"."  # LONG_BINGET
    with pytest.raises(codec.DecodeError, match="out of range"):
        codec.decode(data, lambda payload: payload)


@pytest.mark.parametrize("size", [2**31, 2**62])
def test_length_prefixes_cannot_force_huge_allocations(size: int) -> None:
    for opcode in (b"\x8e", b"\x96", b"\x8d"):  # BINBYTES8, BYTEARRAY8, BINUNICODE8
        data = b"\x80\x05" + opcode + size.to_bytes(8, "little") + b"xyz."
        with pytest.raises(codec.DecodeError, match="truncated"):
            codec.decode(data, lambda payload: payload)


@pytest.mark.parametrize(
    ("opcode", "width"),
    [
        (0x8C, 1),
        (0x58, 4),
        (0x8D, 8),
        (0x43, 1),
        (0x42, 4),
        (0x8E, 8),
        (0x96, 8),
        (0x8A, 1),
        (0x8B, 4),
        (0x68, 1),
        (0x6A, 4),
        (0x4B, 1),
        (0x4D, 2),
        (0x4A, 4),
        (0x47, 8),
        (0x95, 8),
    ],
)
def test_every_operand_is_bounds_checked(opcode: int, width: int) -> None:
    for size in range(width):  # the operand itself cut short
        data = b"\x80\x05" + bytes([opcode]) + b"\x05" * size
        with pytest.raises(codec.DecodeError, match="truncated"):
            codec.decode(data, lambda payload: payload)
    if opcode not in (0x68, 0x6A, 0x4B, 0x4D, 0x4A, 0x47, 0x95):  # a length: data cut short
        data = b"\x80\x05" + bytes([opcode]) + (5).to_bytes(width, "little") + b"ab."
        with pytest.raises(codec.DecodeError, match="truncated"):
            codec.decode(data, lambda payload: payload)


@given(values)
def test_trusted_and_strict_decoders_agree(value: Any) -> None:
    data = codec.encode(value, _no_refs)
    assert codec.decode(data, _no_refs, trusted=True) == codec.decode(data, _no_refs)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_garbage_never_escapes_as_anything_but_decode_error(data: bytes) -> None:
    calls: list[Any] = []
    with contextlib.suppress(codec.DecodeError):
        codec.decode(data, calls.append)


@settings(deadline=None)
@given(values, st.integers(0, 40))
def test_mutated_messages_fail_cleanly(value: Any, position: int) -> None:
    data = bytearray(codec.encode(value, _no_refs))
    data[position % len(data)] ^= 0x5A
    with contextlib.suppress(codec.DecodeError):
        codec.decode(bytes(data), lambda payload: payload)


def test_value_only_decoding_refuses_references() -> None:
    data = codec.encode([object()], lambda o: (m.REF_SENDER, 1, "object"))
    with pytest.raises(codec.DecodeError, match="unexpected reference"):
        codec.decode_values(data)
    with pytest.raises(TypeError):
        codec.encode_values([object()])


# -- object tables ------------------------------------------------------------------


def test_export_table_counts_transmissions() -> None:
    table = ExportTable()
    thing = object()
    oid = table.export(thing)
    assert table.export(thing) == oid
    assert table.get(oid) is thing
    table.release(oid, 1)
    assert table.get(oid) is thing
    table.release(oid, 1)
    with pytest.raises(KeyError):
        table.get(oid)
    table.release(oid, 5)  # unknown ids are ignored
    with pytest.raises(ValueError):
        table.release("x", 1)
    with pytest.raises(KeyError):
        table.get("1")


def test_import_table_releases_what_it_received() -> None:
    released: list[tuple[int, int]] = []
    table: ImportTable[Any] = ImportTable(lambda oid, count: released.append((oid, count)))

    class P:
        pass

    first = table.get(5, lambda oid: P())
    assert table.get(5, lambda oid: P()) is first
    del first
    gc.collect()
    assert released == [(5, 2)]
    assert len(table) == 0


def test_sync_scanner_separates_noise_from_protocol() -> None:
    wire = b"Welcome to host!\n" + framing.SYNC + b"frames"
    for step in (1, 3, len(wire)):
        scanner = framing.SyncScanner()
        noise, data = b"", b""
        for start in range(0, len(wire), step):
            more_noise, more_data = (
                scanner.feed(wire[start : start + step])
                if not scanner.synced
                else (b"", wire[start : start + step])
            )
            noise += more_noise
            data += more_data
        assert (noise, data) == (b"Welcome to host!\n", b"frames")
    with pytest.raises(framing.FrameError, match="handshake"):
        framing.SyncScanner(limit=100).feed(b"x" * 200)
