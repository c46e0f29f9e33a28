"""Stream Load of a large body in pieces (be/load/coordinator.py, be/load/pipeline.py): the pieces map
to the same rows, counts, samples and row numbers as the body in one piece, for CSV and
newline-delimited JSON, with bad rows on both sides of the cuts; a load over max_filter_ratio
aborts its txn and nothing becomes visible; rows keep their order per tablet."""

from __future__ import annotations

import orjson
import pytest

from be.load.coordinator import LoadCoordinator
from be.load.pipeline import BatchCounts, Prepared
from common import columnar
from common.coltypes import Column, parse_type
from common.gen.tabletsim.v1 import types_pb2
from common.loadformat import BatchResult, FilteredRow, LoadSpec, compile_load
from fe.txn.state import TxnStatus
from tests.unit.test_catalog import FakeClients, build, spec
from tests.unit.test_load_group_commit import NOW_MS, FakeFe, Replicas
from tests.unit.test_txn import with_txns

TS = 1_714_550_400.0
COLS = [Column("id", parse_type("BIGINT"), False), Column("dt", parse_type("DATE"), True),
        Column("v", parse_type("VARCHAR(8)"), True)]


def coordinator(piece_bytes: int) -> LoadCoordinator:
    return LoadCoordinator(lambda: 1, None, None, None, piece_bytes=piece_bytes)  # type: ignore[arg-type]


def csv_body(n: int, bad_every: int = 97) -> bytes:
    out = []
    for i in range(n):
        if i % bad_every == 5:
            out.append(b"x%d,2024-01-01,bad" % i)  # id not a number
        elif i % bad_every == 40:
            out.append(b"%d,2024-01-01" % i)  # a field short
        elif i % bad_every == 70:
            out.append(b"%d,2024-01-01,far-too-long" % i)  # longer than VARCHAR(8)
        else:
            out.append(b"%d,2024-01-%02d,v%d" % (i, i % 28 + 1, i % 1000))
    return b"\n".join(out) + b"\n"


def json_body(n: int, bad_every: int = 89) -> bytes:
    out = []
    for i in range(n):
        if i % bad_every == 3:
            out.append(b'{"id": %d, "dt": "2024-01-01"' % i)  # malformed
        elif i % bad_every == 50:
            out.append(b'{"id": "not-an-id", "v": "a"}')
        elif i % bad_every == 60:
            out.append(b"   ")  # blank: not a row
        else:
            out.append(orjson.dumps({"id": i, "dt": f"2024-02-{i % 28 + 1:02d}", "v": f"j{i % 100}"}))
    return b"\n".join(out) + b"\n"


def in_pieces(load_spec: LoadSpec, body: bytes, piece_bytes: int, **plan_kw) -> tuple[int, BatchCounts, list]:
    """Map ``body`` through the coordinator's pieces and accumulate as the pipeline does."""
    plan = compile_load(load_spec, COLS, clock=lambda: TS, **plan_kw)
    pieces = coordinator(piece_bytes)._pieces(plan, load_spec, body)
    counts = BatchCounts(max_samples=load_spec.max_error_samples)
    rows: list = []
    for parse in pieces:
        batch = parse(counts.total_rows)
        counts.add(Prepared(batch, {}, batch.filtered_rows, list(batch.errors)))
        rows.extend(batch.rows)
    return len(pieces), counts, rows


def whole(load_spec: LoadSpec, body: bytes, **plan_kw) -> BatchResult:
    return compile_load(load_spec, COLS, clock=lambda: TS, **plan_kw).parse(body)


@pytest.mark.parametrize("plan_kw", [{}, {"small_input_bytes": 0}])
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_pieces_map_as_the_whole_body(fmt, plan_kw):
    body = csv_body(3000) if fmt == "csv" else json_body(3000)
    load_spec = LoadSpec(format=fmt, where="id % 11 != 0", max_error_samples=50)
    one = whole(load_spec, body, **plan_kw)
    n, counts, rows = in_pieces(load_spec, body, 4096, **plan_kw)
    assert n > 10
    assert rows == one.rows
    assert (counts.total_rows, counts.filtered_rows, counts.unselected_rows) == \
        (one.total_rows, one.filtered_rows, one.unselected_rows)
    assert counts.errors == one.errors
    assert one.filtered_rows > 50 and one.unselected_rows > 0  # samples are cut at max_error_samples


def test_a_bad_row_on_each_side_of_a_cut_keeps_its_row_number():
    body = b"".join(b"%04d,2024-01-01,v\n" % i for i in range(400))  # 17-byte lines
    cut = body.find(b"\n", 2048) + 1  # where the first piece of 2048 bytes ends
    row_a = body[:cut].count(b"\n")  # its last row (rows count from 1)
    lines = body.split(b"\n")
    lines[row_a - 1], lines[row_a] = b"bad-a".ljust(16, b"-"), b"bad-b".ljust(16, b"-")
    body = b"\n".join(lines)
    load_spec = LoadSpec(max_error_samples=10)
    n, counts, _ = in_pieces(load_spec, body, 2048)
    assert n > 1
    assert [e.row[:5] for e in counts.errors] == ["bad-a", "bad-b"]
    assert counts.errors == whole(load_spec, body).errors
    assert counts.errors[0].reason.startswith(f"row {row_a}: expected 3 fields")
    assert counts.errors[1].reason.startswith(f"row {row_a + 1}: expected 3 fields")


def test_bad_utf8_in_one_piece_maps_that_piece_by_the_reference():
    body = csv_body(2000).replace(b"v17\n", b"v\xff\n", 1)
    load_spec = LoadSpec(max_error_samples=30)
    one = whole(load_spec, body)
    n, counts, rows = in_pieces(load_spec, body, 4096)
    assert n > 3 and rows == one.rows and counts.errors == one.errors
    assert any("invalid UTF-8" in e.reason for e in counts.errors)


@pytest.mark.parametrize("body", [
    b'{"id": 1,\n "v": "a"}\n' + b" " * 5000 + b"\n",  # one document over lines
    b"[\n" + b",\n".join(b'{"id": %d}' % i for i in range(500)) + b"\n]\n",  # an array document
    b"\n".join(b'{"id": %d}' % i for i in range(400)) + b'\n[{"id": 1}]\n',  # an array line
])
def test_json_bodies_that_are_not_line_by_line_stay_whole(body):
    load_spec = LoadSpec(format="json")
    plan = compile_load(load_spec, COLS, clock=lambda: TS)
    assert len(coordinator(1024)._pieces(plan, load_spec, body)) == 1


def test_samples_list_mapping_errors_before_unrouted_rows_as_one_piece_does():
    counts = BatchCounts(max_samples=3)
    parse_err = [FilteredRow(f"p{i}", "r") for i in range(2)]
    routed = [FilteredRow(f"u{i}", "r") for i in range(2)]
    for _ in range(2):
        batch = BatchResult(total_rows=4, filtered_rows=2)
        batch.errors.extend(parse_err)
        counts.add(Prepared(batch, {}, 4, parse_err + routed))
    assert [e.row for e in counts.errors] == ["p0", "p1", "p0"]
    assert counts.filtered_rows == 8 and counts.total_rows == 8


# ---------------------------------------------------------------------- the coordinator, end to end
class SeqReplicas(Replicas):
    """Each txn's chunks by (tablet, seq): pieces add up to one pending rowset per tablet."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: dict[int, dict[int, dict[int | None, list[tuple]]]] = {}  # txn -> tablet -> seq -> rows

    def _take(self, txn_id, chunks) -> None:
        for c in chunks:
            tablet_id, payload, seq = c[0], c[2], c[4] if len(c) > 4 else None
            self.chunks.setdefault(txn_id, {}).setdefault(tablet_id, {})[seq] = columnar.segment_to_rows(payload)

    async def WriteRows(self, req, timeout=None):
        self._take(req.txn_id, [(c.tablet_id, c.partition_id, c.rows, c.row_count, c.seq) for c in req.chunks])

    def tablet_rows(self, txn_id: int) -> dict[int, list[int]]:
        return {t: [r[0] for s in sorted(by_seq) for r in by_seq[s]]
                for t, by_seq in self.chunks.get(txn_id, {}).items()}


@pytest.fixture
async def cluster(tmp_path):
    journal, catalog, txns = build(tmp_path / "fe", FakeClients(), more=with_txns(lambda: NOW_MS))
    catalog.create_database("d")
    await catalog.create_table("d", spec("t", buckets=3))
    fe = FakeFe(txns, catalog)
    replicas = SeqReplicas()
    be_id = catalog._backends.all()[0].backend_id
    made: list[LoadCoordinator] = []

    def coordinator_with(piece_bytes: int) -> LoadCoordinator:
        c = LoadCoordinator(lambda: be_id, fe, replicas, replicas, abort_retry_s=0.01, piece_bytes=piece_bytes)
        made.append(c)
        return c

    try:
        yield coordinator_with, replicas, txns
    finally:
        for c in made:
            await c.close()
        journal.close()


def request(label: str, body: bytes, **params) -> types_pb2.StreamLoadRequest:
    return types_pb2.StreamLoadRequest(db="d", table="t", label=label, data=body, timeout_s=60,
                                       params=types_pb2.LoadParams(**params))


async def test_a_body_in_pieces_loads_as_in_one_piece_in_order_per_tablet(cluster):
    coordinator_with, replicas, txns = cluster
    body = csv_body(4000)
    one = await coordinator_with(1 << 30).stream_load(request("one", body, max_filter_ratio=0.1))
    many = await coordinator_with(8192).stream_load(request("many", body, max_filter_ratio=0.1))
    assert one.status == many.status == "Success"
    for field in ("number_total_rows", "number_loaded_rows", "number_filtered_rows", "number_unselected_rows",
                  "load_bytes"):
        assert getattr(one, field) == getattr(many, field), field
    assert list(many.filtered_rows) == list(one.filtered_rows) and len(many.filtered_rows) == 20
    assert txns.get(many.txn_id).status is TxnStatus.VISIBLE
    by_tablet = replicas.tablet_rows(many.txn_id)
    assert by_tablet == replicas.tablet_rows(one.txn_id)
    assert all(ids == sorted(ids) for ids in by_tablet.values())  # the body's order, across pieces
    assert len(replicas.chunks[many.txn_id][next(iter(by_tablet))]) > 1  # written piece by piece


async def test_a_body_over_max_filter_ratio_is_aborted_and_nothing_is_visible(cluster):
    coordinator_with, replicas, txns = cluster
    body = b"".join(b"%d,2024-01-01,v\n" % i if i % 4 else b"bad\n" for i in range(4000))  # a quarter bad
    res = await coordinator_with(8192).stream_load(request("bad", body, max_filter_ratio=0.2))
    assert res.status == "Fail" and res.number_loaded_rows == 0
    assert res.message.startswith("too many filtered rows: 1000 of 4000 rows were filtered")
    assert res.number_total_rows == 4000 and res.number_filtered_rows == 1000
    assert replicas.chunks.get(res.txn_id)  # pieces had been written before the ratio was known ...
    assert txns.get(res.txn_id).status is TxnStatus.ABORTED  # ... and the abort clears them
    assert not txns.with_status(TxnStatus.VISIBLE)
