"""A Stream Load body read as it arrives (be/load/body.py StreamBody): its pieces map as the body in
memory does (the same rows, counts, samples and row numbers) whatever sizes the reads come in; it
holds a few pieces, never the body; a body that cannot be cut is held whole (JSON up to a limit);
a client that stops mid-body fails the load and its txn is aborted; the coordinator loads a
streamed body as it loads the same body from gRPC."""

from __future__ import annotations

import random

import orjson
import pytest

import be.load.body as body_module
from be.load.body import JSON_WHOLE_MAX_BYTES, IncompleteBody, MemoryBody, StreamBody
from be.load.pipeline import BatchCounts, Prepared
from common.gen.tabletsim.v1 import types_pb2
from common.loadformat import LoadSpec, compile_load
from fe.txn.state import TxnStatus
from tests.unit.test_stream_load_pipeline import COLS, TS, cluster, csv_body, json_body, request, whole

__all__ = ["cluster"]  # the fixture, shared with test_stream_load_pipeline


def reader(data: bytes, sizes: list[int] | None = None, fail_after: int | None = None):
    """``read(n)`` over ``data``: each read gives at most n bytes, and the next of ``sizes`` (a
    client's packets) when given; raises ConnectionResetError once ``fail_after`` bytes are read."""
    pos = 0
    sizes = list(sizes or [])

    async def read(n: int) -> bytes:
        nonlocal pos
        if fail_after is not None and pos >= fail_after:
            raise ConnectionResetError("Connection lost")
        size = min(n, sizes.pop(0)) if sizes else n
        chunk = data[pos:pos + size]
        pos += len(chunk)
        return chunk

    return read


async def streamed(load_spec: LoadSpec, body: bytes, piece_bytes: int, sizes: list[int] | None = None):
    """Map ``body`` through a StreamBody's pieces and accumulate as the pipeline does."""
    plan = compile_load(load_spec, COLS, clock=lambda: TS)
    src = StreamBody(reader(body, sizes), read_bytes=997)
    counts = BatchCounts(max_samples=load_spec.max_error_samples)
    rows: list = []
    n = 0
    async for parse in src.pieces(plan, load_spec, piece_bytes):
        batch = parse(counts.total_rows)
        counts.add(Prepared(batch, {}, batch.filtered_rows, list(batch.errors)))
        rows.extend(batch.rows)
        n += 1
    return n, counts, rows, src


@pytest.mark.parametrize("fmt", ["csv", "json"])
async def test_streamed_pieces_map_as_the_whole_body(fmt):
    body = csv_body(3000) if fmt == "csv" else json_body(3000)
    load_spec = LoadSpec(format=fmt, where="id % 11 != 0", max_error_samples=50)
    one = whole(load_spec, body)
    rnd = random.Random(7)
    n, counts, rows, src = await streamed(load_spec, body, 4096, sizes=[rnd.randint(1, 3000) for _ in range(5000)])
    assert n > 10
    assert rows == one.rows
    assert (counts.total_rows, counts.filtered_rows, counts.unselected_rows) == \
        (one.total_rows, one.filtered_rows, one.unselected_rows)
    assert counts.errors == one.errors
    assert src.size == len(body)


async def test_a_small_body_is_one_piece_and_an_empty_one_none():
    n, counts, _, _ = await streamed(LoadSpec(), b"1,2024-01-01,a\n2,2024-01-02,b\n", 4096)
    assert n == 1 and counts.total_rows == 2
    n, counts, _, _ = await streamed(LoadSpec(), b"", 4096)
    assert n == 0 and counts.total_rows == 0


async def test_a_crlf_delimiter_is_cut_and_an_overlapping_one_is_not():
    body = b"".join(b"%d,2024-01-01,v\r\n" % i for i in range(3000))
    load_spec = LoadSpec(row_delimiter="\\r\\n")
    n, counts, rows, _ = await streamed(load_spec, body, 2048)
    assert n > 5 and counts.total_rows == 3000 and rows == whole(load_spec, body).rows
    overlapping = LoadSpec(row_delimiter="aa")
    body = b"aa".join(b"%d,2024-01-01,v" % i for i in range(3000))
    n, counts, _, src = await streamed(overlapping, body, 2048)
    assert n == 1 and counts.total_rows == 3000 and src.high_water == len(body)


@pytest.mark.parametrize("body", [
    b'{"id": 1,\n "v": "a"}\n' + b" " * 5000 + b"\n",  # one document over lines
    b"[\n" + b",\n".join(b'{"id": %d}' % i for i in range(500)) + b"\n]\n",  # an array document
])
async def test_json_bodies_that_are_not_line_by_line_are_held_whole(body):
    load_spec = LoadSpec(format="json")
    n, counts, _, src = await streamed(load_spec, body, 1024)
    assert n == 1 and src.high_water == len(body)
    one = whole(load_spec, body)
    assert (counts.total_rows, counts.filtered_rows, counts.errors) == (one.total_rows, one.filtered_rows, one.errors)


async def test_an_array_line_after_the_first_piece_maps_that_piece_whole():
    body = b"\n".join(orjson.dumps({"id": i, "v": "a"}) for i in range(400)) + b'\n[{"id": 1}]\n'
    load_spec = LoadSpec(format="json")
    n, counts, rows, _ = await streamed(load_spec, body, 1024)
    one = whole(load_spec, body)
    assert n > 1 and rows == one.rows and counts.errors == one.errors  # every other line is valid
    assert counts.filtered_rows == 1 and "array" in counts.errors[0].reason


async def test_a_json_body_held_whole_is_refused_over_the_limit_unless_ignore_json_size(monkeypatch):
    assert JSON_WHOLE_MAX_BYTES == 100 * 1024 * 1024  # StarRocks' streaming_load_max_batch_size_mb
    monkeypatch.setattr(body_module, "JSON_WHOLE_MAX_BYTES", 32)
    body = b"[1" + b" " * 64 + b"]"
    load_spec = LoadSpec(format="json", strip_outer_array=True)
    plan = compile_load(load_spec, COLS, clock=lambda: TS)
    with pytest.raises(IncompleteBody, match="set the header ignore_json_size: true"):
        [p async for p in StreamBody(reader(body), read_bytes=16).pieces(plan, load_spec, 8)]
    src = StreamBody(reader(body), read_bytes=16, ignore_json_size=True)
    assert len([p async for p in src.pieces(plan, load_spec, 8)]) == 1


async def test_a_large_body_is_never_held_whole():
    """The stream's own high-water mark: bytes read and not yet handed over as a piece. A body held
    whole would reach its size; the stream holds under two pieces (a piece plus a read)."""
    row = b"".join(b"%d,2024-01-%02d,v%d\n" % (i, i % 28 + 1, i % 1000) for i in range(2000))
    body = row * 200  # ~5 MB
    piece_bytes = 64 * 1024
    load_spec = LoadSpec()
    plan = compile_load(load_spec, COLS, clock=lambda: TS)
    src = StreamBody(reader(body), read_bytes=16 * 1024)
    pieces = 0
    async for _parse in src.pieces(plan, load_spec, piece_bytes):  # not mapped: the cut alone is measured
        pieces += 1
    assert src.size == len(body) and pieces > 50
    assert src.high_water <= piece_bytes + 16 * 1024 + len(row.split(b"\n")[0]) + 1
    assert src.high_water * 50 < len(body)


async def test_a_client_that_stops_mid_body_fails_with_what_was_read():
    body = csv_body(3000)
    load_spec = LoadSpec()
    plan = compile_load(load_spec, COLS, clock=lambda: TS)
    src = StreamBody(reader(body, fail_after=10_000), read_bytes=1000)
    with pytest.raises(IncompleteBody, match=r"after 10000 bytes \(ConnectionResetError: Connection lost\)"):
        [p async for p in src.pieces(plan, load_spec, 4096)]


async def test_memory_and_stream_bodies_read_whole_for_group_commit_with_a_limit():
    assert await MemoryBody(b"abc").read_all(1, "x") == b"abc"  # gRPC's body: already in memory
    assert await StreamBody(reader(b"a" * 100), read_bytes=7).read_all(100, "x") == b"a" * 100
    with pytest.raises(IncompleteBody, match="a group commit load takes a body of up to 50 bytes"):
        await StreamBody(reader(b"a" * 100), read_bytes=7).read_all(50, "a group commit load")


# ---------------------------------------------------------------------- the coordinator, end to end
async def test_the_coordinator_loads_a_streamed_body_as_the_same_body_in_memory(cluster):
    coordinator_with, replicas, txns = cluster
    body = csv_body(4000)
    one = await coordinator_with(8192).stream_load(request("memory", body, max_filter_ratio=0.1))
    req = request("stream", b"", max_filter_ratio=0.1)
    src = StreamBody(reader(body), read_bytes=3000)
    many = await coordinator_with(8192).stream_load(req, src)
    assert one.status == many.status == "Success"
    for field in ("number_total_rows", "number_loaded_rows", "number_filtered_rows", "number_unselected_rows",
                  "load_bytes"):
        assert getattr(one, field) == getattr(many, field), field
    assert list(many.filtered_rows) == list(one.filtered_rows)
    assert replicas.tablet_rows(many.txn_id) == replicas.tablet_rows(one.txn_id)
    assert src.high_water < len(body) / 5
    for field in ("begin_txn_time_ms", "stream_load_plan_time_ms", "read_data_time_ms", "write_data_time_ms",
                  "commit_and_publish_time_ms", "load_time_ms"):
        assert many.HasField(field), field  # set, so that a gRPC answer shows them


async def test_a_body_cut_short_aborts_its_txn_and_keeps_its_id(cluster):
    coordinator_with, replicas, txns = cluster
    result = types_pb2.StreamLoadResult()
    src = StreamBody(reader(csv_body(4000), fail_after=40_000), read_bytes=3000)
    with pytest.raises(IncompleteBody):
        await coordinator_with(8192).stream_load(request("cut", b""), src, result)
    assert result.txn_id and result.label == "cut" and result.HasField("begin_txn_time_ms")
    assert replicas.chunks.get(result.txn_id)  # pieces had been written before the client went away ...
    assert txns.get(result.txn_id).status is TxnStatus.ABORTED  # ... and the abort clears them
