"""Routing whole Arrow tables to tablets and encoding them as columnar segments (issue 14).

``Router.route_table`` against the row-at-a-time ``Router.route`` on random rows (NULLs and
values outside every range included): the same partition for every row and the same rejects with
the same reasons. Buckets differ on purpose (a polars hash of whole columns instead of crc32 of
each value's text), so the bucket is checked for what it must be: one value, one bucket, in any
batch. ``encode_tablet_tables`` cuts each tablet's table into segments of at most CHUNK_ROWS rows
that decode back to it. No processes.
"""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pytest

from be.load import writer
from be.load.coordinator import LoadCoordinator
from be.load.router import Router, columns_of
from common import columnar
from common.coltypes import Column, parse_type
from common.gen.tabletsim.v1 import types_pb2
from common.loadformat import BatchResult, FilteredRow

# (partition column type, [(lower, upper)] in any order (None: unbounded), value generator)
CASES = {
    "INT": ([("10", "20"), (None, "10"), ("30", "40")],
            lambda r: r.choice([None, r.randint(-5, 50), 10, 20, 30, 40])),
    "BIGINT-maxvalue": ([("0", "100"), ("100", None)],
                        lambda r: r.choice([None, r.randint(-50, 10**12), 0, 100])),
    "LARGEINT": ([("0", "100000000000000000000000"), ("100000000000000000000000", None)],
                 lambda r: r.choice([None, r.randint(-10, 2**100), 10**23])),
    "DATE": ([(None, "2024-01-01"), ("2024-02-01", "2024-03-01")],
             lambda r: r.choice([None, "2023-12-31", "2024-01-01", "2024-03-01",
                                 f"2024-0{r.randint(1, 4)}-{r.randint(10, 28)}"])),
    "DATETIME": ([("2024-01-01 00:00:00", "2024-01-02 00:00:00"), ("2024-01-02 00:00:00", None)],
                 lambda r: r.choice([None, "2023-12-31 23:59:59", "2024-01-02 00:00:00",
                                     f"2024-01-0{r.randint(1, 3)} 0{r.randint(0, 9)}:1{r.randint(0, 9)}:00"])),
}


def partitioned(kind: str, bounds: list[tuple[str | None, str | None]]) -> Router:
    """A table (k <kind>, id BIGINT, s VARCHAR) by RANGE(k), partition i with 3 or 4 buckets,
    distributed by (id, s)."""
    cols = [Column("k", parse_type(kind.split("-")[0])), Column("id", parse_type("BIGINT"), nullable=False),
            Column("s", parse_type("VARCHAR(8)"))]
    parts = []
    for i, (lower, upper) in enumerate(bounds):
        p = types_pb2.TargetPartition(partition_id=i + 1, name=f"p{i}", tablets=[
            types_pb2.TargetTablet(tablet_id=100 * (i + 1) + b) for b in range(3 + i % 2)])
        if lower is not None:
            p.lower = lower
        if upper is not None:
            p.upper = upper
        parts.append(p)
    target = types_pb2.LoadTarget(columns_json=json.dumps([c.to_dict() for c in cols]),
                                  distribution_columns=["id", "s"], partition_column="k", partitions=parts)
    return Router(target, columns_of(target))


def unpartitioned(buckets: int = 6) -> Router:
    cols = [Column("id", parse_type("BIGINT"), nullable=False), Column("name", parse_type("VARCHAR(16)")),
            Column("v", parse_type("INT"))]
    target = types_pb2.LoadTarget(
        columns_json=json.dumps([c.to_dict() for c in cols]), distribution_columns=["id"],
        partitions=[types_pb2.TargetPartition(partition_id=7, name="t", tablets=[
            types_pb2.TargetTablet(tablet_id=100 + b) for b in range(buckets)])])
    return Router(target, columns_of(target))


def rows_by_partition(router: Router, by_tablet: dict) -> dict[int, list]:
    """partition id -> its rows, in input order (ids are the row numbers)."""
    out: dict[int, list] = {}
    for tablet_id, rows in by_tablet.items():
        if isinstance(rows, pa.Table):
            rows = columnar.rows_of(rows)
        out.setdefault(router.tablets[tablet_id].partition_id, []).extend(rows)
    return {p: sorted(rows, key=lambda row: row[1]) for p, rows in out.items()}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kind", sorted(CASES))
def test_route_table_partitions_and_rejects_as_route_does(kind, seed):
    bounds, value = CASES[kind]
    router = partitioned(kind, bounds)
    rng = random.Random(seed)
    rows = [(value(rng), i, rng.choice([None, "a", "bb", "ccc"])) for i in range(rng.randint(1, 3000))]
    by_rows, rejected_rows = router.route(rows)
    by_table, rejected = router.route_table(columnar.table_from_rows(rows, router.schema), max_samples=7)

    assert set(by_table) == set(by_rows)  # the tablets of the same touched partitions
    assert rows_by_partition(router, by_table) == rows_by_partition(router, by_rows)
    assert rejected.count == len(rejected_rows)
    assert rejected.samples == [(repr(row)[:200], reason) for row, reason in rejected_rows[:7]]
    assert all(reason.startswith("no partition for k = ") for _, reason in rejected.samples)


def test_null_goes_to_the_lowest_partition_only_when_it_is_unbounded_below():
    router = partitioned("INT", [(None, "10"), ("10", "20")])
    by_tablet, rejected = router.route_table(columnar.table_from_rows([(None, 1, "a")], router.schema))
    assert rejected.count == 0 and sum(t.num_rows for t in by_tablet.values()) == 1
    assert {router.tablets[t].partition_id for t in by_tablet} == {1}

    router = partitioned("INT", [("0", "10"), ("10", "20")])
    by_tablet, rejected = router.route_table(columnar.table_from_rows([(None, 1, "a"), (25, 2, "b")], router.schema))
    assert by_tablet == {} and rejected.count == 2
    assert rejected.samples == [("(None, 1, 'a')", "no partition for k = None"),
                                ("(25, 2, 'b')", "no partition for k = 25")]


def test_every_rejected_row_is_counted_but_only_max_samples_are_kept():
    router = partitioned("INT", [("0", "10")])
    rows = [(100 + i, i, "x") for i in range(50)] + [(1, 50, "y")]
    by_tablet, rejected = router.route_table(columnar.table_from_rows(rows, router.schema), max_samples=3)
    assert rejected.count == 50 and len(rejected.samples) == 3
    assert sum(t.num_rows for t in by_tablet.values()) == 1
    _, none_kept = router.route_table(columnar.table_from_rows(rows, router.schema), max_samples=0)
    assert none_kept.count == 50 and none_kept.samples == []


def test_a_distribution_value_always_goes_to_the_same_bucket():
    router = unpartitioned(buckets=5)
    rng = random.Random(7)
    home: dict[int, int] = {}
    for batch in range(6):  # batches of different sizes and orders, some of several chunks
        ids = [rng.randint(0, 300) for _ in range(rng.randint(1, 2000))]
        rows = [(i, f"n{i}", batch) for i in ids]
        table = columnar.table_from_rows(rows, router.schema)
        if batch % 2:
            table = pa.concat_tables([table.slice(0, len(rows) // 2), table.slice(len(rows) // 2)])
        by_tablet, _ = router.route_table(table)
        for tablet_id, part in by_tablet.items():
            for i in part.column("id").to_pylist():
                assert home.setdefault(i, tablet_id) == tablet_id, f"id {i} in tablets {home[i]} and {tablet_id}"
    assert len(set(home.values())) == 5  # and the values spread over every bucket


def test_a_bucket_depends_on_the_value_not_on_the_integer_width():
    narrow = pa.table({"id": pa.array([1, 2, 3], pa.int32())})
    wide = pa.table({"id": pa.array([1, 2, 3], pa.int64())})
    cols = [Column("id", parse_type("INT"), nullable=False)]
    target = types_pb2.LoadTarget(columns_json=json.dumps([c.to_dict() for c in cols]), distribution_columns=["id"],
                                  partitions=[types_pb2.TargetPartition(partition_id=1, name="t", tablets=[
                                      types_pb2.TargetTablet(tablet_id=10 + b) for b in range(4)])])
    router = Router(target, columns_of(target))
    a, _ = router.route_table(narrow)
    b, _ = router.route_table(wide)
    assert {t: p.column("id").to_pylist() for t, p in a.items()} == \
        {t: p.column("id").to_pylist() for t, p in b.items()}


def test_every_tablet_of_a_touched_partition_is_a_key_and_rows_keep_their_order():
    router = partitioned("INT", [(None, "10"), ("10", "20"), ("30", "40")])
    rows = [(5, i, "a") for i in range(3)] + [(35, 3, "b")]  # partitions 1 and 3; 2 untouched
    by_tablet, rejected = router.route_table(columnar.table_from_rows(rows, router.schema))
    assert rejected.count == 0
    assert set(by_tablet) == {100, 101, 102, 300, 301, 302}
    assert sum(t.num_rows for t in by_tablet.values()) == 4
    assert all(t.schema.equals(router.schema) for t in by_tablet.values())

    router = unpartitioned(buckets=4)
    rows = [(i % 3, f"n{i}", i) for i in range(40)]
    by_tablet, _ = router.route_table(columnar.table_from_rows(rows, router.schema))
    assert set(by_tablet) == {100, 101, 102, 103}  # one that got no row is a key too
    for part in by_tablet.values():
        v = part.column("v").to_pylist()
        assert v == sorted(v)  # input order within a tablet
    assert router.route_table(columnar.table_from_rows([], router.schema))[0] == {}


def test_encode_tablet_tables_cuts_chunk_rows_segments_that_decode_back(monkeypatch):
    monkeypatch.setattr(writer, "CHUNK_ROWS", 7)
    router = unpartitioned(buckets=3)
    rows = [(i, None if i % 5 == 0 else f"n{i}", i * 3) for i in range(40)]
    by_tablet, _ = router.route_table(columnar.table_from_rows(rows, router.schema))
    by_tablet[102] = by_tablet[102].slice(0, 0)  # a tablet that got no row
    encoded = writer.encode_tablet_tables(router, by_tablet)
    assert set(encoded) == set(by_tablet)
    for tablet_id, chunks in encoded.items():
        table = by_tablet[tablet_id]
        n = table.num_rows
        expected = [min(7, n - i) for i in range(0, n, 7)] or [0]
        assert [c.row_count for c in chunks] == expected
        assert all(c.tablet_id == tablet_id and c.partition_id == 7 and c.seq is None for c in chunks)
        assert all(columnar.is_columnar(c.rows) for c in chunks)
        decoded = [columnar.decode_segment(c.rows) for c in chunks]
        assert [d.num_rows for d in decoded] == expected
        assert all(d.schema.equals(router.schema) for d in decoded)
        assert pa.concat_tables(decoded).equals(table)


def test_prepare_counts_rejects_with_the_parse_filtered_rows_and_caps_the_samples():
    router = partitioned("INT", [("0", "10")])
    rows = [(i, i, "a") for i in range(20)]  # 10 in range, 10 past it
    batch = BatchResult(rows=rows, total_rows=25, filtered_rows=5,
                        errors=[FilteredRow(row=f"bad {i}", reason="not a valid INT") for i in range(3)])
    prepared = LoadCoordinator.prepare(batch, router, max_samples=5)
    assert prepared.filtered == 15
    assert [e.row for e in prepared.errors] == ["bad 0", "bad 1", "bad 2", "(10, 10, 'a')", "(11, 11, 'a')"]
    assert prepared.errors[3].reason == "no partition for k = 10"
    assert sum(c.row_count for chunks in prepared.encoded.values() for c in chunks) == 10
    assert set(prepared.encoded) == {100, 101, 102}


def test_prepare_routes_the_batch_table_when_the_parser_gives_one():
    router = unpartitioned(buckets=3)
    rows = [(i, f"n{i}", i) for i in range(30)]
    batch = BatchResult(total_rows=31, filtered_rows=1)
    batch.table = columnar.table_from_rows(rows, router.schema)  # a vectorized plan's result
    prepared = LoadCoordinator.prepare(batch, router)
    assert prepared.filtered == 1 and prepared.errors == []
    decoded = [columnar.decode_segment(c.rows) for chunks in prepared.encoded.values() for c in chunks]
    assert sorted(columnar.rows_of(pa.concat_tables(decoded))) == rows
