"""Columnar rowset segments in storage: both formats read as the same rows and tables, checksums
that depend on the rows only (not the cut into segments, not the format, not the compaction
history), compaction converting old segments, and clones copying columnar segments as they are
(no processes)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from be.clone.source import stream_rowsets
from be.storage import merge
from be.storage import versions as V
from be.storage.compaction import CompactionManager
from be.storage.compaction_policy import CompactionType, Pick, pick_base
from be.storage.rowsets import RowsetStore, StorageError, chunk_key, read_chunks
from be.storage.store import BeStore
from be.storage.tablets import TabletManager, TabletMeta, arrow_schema_of
from common import columnar
from common.coltypes import Column, parse_type
from common.config import StorageConfig
from common.rowcodec import encode_rows

COLUMNS = [Column("id", parse_type("BIGINT"), nullable=False, is_key=True),
           Column("big", parse_type("LARGEINT")),
           Column("price", parse_type("DECIMAL(20,3)")),
           Column("day", parse_type("DATE")),
           Column("at", parse_type("DATETIME")),
           Column("name", parse_type("VARCHAR(32)")),
           Column("score", parse_type("DOUBLE")),
           Column("ok", parse_type("BOOLEAN"))]
SCHEMA_JSON = orjson.dumps([c.to_dict() for c in COLUMNS]).decode()
SCHEMA = arrow_schema_of(SCHEMA_JSON)


def row(i: int) -> tuple:
    """Values as the load path stores them (common/coltypes.py), with NULLs and the edges of
    LARGEINT, DECIMAL, DATE and DATETIME."""
    if i % 7 == 3:
        return (i, None, None, None, None, None, None, None)
    return (i, (-(2**127) if i % 2 else 2**127 - 1) + i * (1 if i % 2 else -1),
            f"{i * 1000 + 7:d}.{i % 1000:03d}" if i % 5 else "-99999999999999999.999",
            "0001-01-01" if i % 11 == 0 else f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
            "9999-12-31 23:59:59" if i % 13 == 0 else f"2024-02-29 {i % 24:02d}:{i % 60:02d}:05",
            f"name-{i}", i * 0.25 - 3, i % 3 == 0)


ROWS = [row(i) for i in range(120)]


CFG = StorageConfig()


def open_store(path, cfg: StorageConfig = CFG):
    store = BeStore(str(path))
    tablets = TabletManager(store)
    rowsets = RowsetStore(store, tablets, lambda: cfg.tablet_max_versions)
    return store, tablets, rowsets, CompactionManager(store, tablets, rowsets, cfg, lambda: 1_000_000.0)


def meta(replica_id: int = 2, schema_json: str = SCHEMA_JSON) -> TabletMeta:
    return TabletMeta(1, replica_id, 1, 2, 3, 1, schema_json)


def old(rows: list[tuple]) -> bytes:
    return encode_rows(rows)


def new(rows: list[tuple]) -> bytes:
    return columnar.encode_segment(columnar.table_from_rows(rows, SCHEMA))


def load(rs: RowsetStore, txn: int, version: int, rows: list[tuple], encode=new, per_segment: int = 0) -> None:
    """Publish ``rows`` at ``version`` in segments of ``per_segment`` rows (0: one segment)."""
    step = per_segment or max(len(rows), 1)
    chunks = [(1, 3, encode(rows[i:i + step]), len(rows[i:i + step])) for i in range(0, max(len(rows), 1), step)]
    rs.write(txn, chunks)
    assert rs.publish(txn, 1, version).ok


def segments(store: BeStore, rowsets: list[list[int]]) -> list[bytes]:
    return list(read_chunks(store.db.snapshot(), 1, rowsets))


def test_old_and_columnar_segments_read_as_the_same_rows_and_tables(tmp_path):
    store, tablets, rs, _ = open_store(tmp_path)
    tablets.create([meta()])
    load(rs, 100, 2, ROWS[:50], old, per_segment=20)
    load(rs, 101, 3, ROWS[50:], new, per_segment=30)
    kinds = [columnar.is_columnar(p) for p in segments(store, tablets.get(1).rowsets)]
    assert kinds == [False] * 3 + [True] * 3
    assert list(rs.scan(1, 3)) == ROWS  # LARGEINT as int, DECIMAL/DATE/DATETIME as text, NULLs kept
    assert list(rs.scan(1, 2)) == ROWS[:50]
    tables = list(rs.scan_tables(1, 3))
    assert [t.num_rows for t in tables] == [20, 20, 10, 30, 30, 10]
    assert all(t.schema.equals(SCHEMA, check_metadata=True) for t in tables)
    assert [r for t in tables for r in columnar.rows_of(t)] == ROWS
    with pytest.raises(StorageError, match="below the requested 4"):
        list(rs.scan_tables(1, 4))
    store.close()


def test_checksum_ignores_the_cut_into_segments_and_the_format(tmp_path):
    replicas = []
    for name, encode, per_segment in (("one", new, 0), ("many-columnar", new, 7), ("many-old", old, 9),
                                      ("one-old", old, 0)):
        store, tablets, rs, _ = open_store(tmp_path / name)
        tablets.create([meta()])
        load(rs, 100, 2, ROWS[:64], encode, per_segment)
        load(rs, 101, 3, ROWS[64:], encode, per_segment)
        replicas.append(rs)
    sums = {(rs.checksum(1, 2), rs.checksum(1, 3)) for rs in replicas}
    assert len(sums) == 1, sums
    (at2, at3), = sums
    assert at2[1] == 64 and at3[1] == 120 and at2[0] != at3[0]

    store, tablets, rs, _ = open_store(tmp_path / "differs")
    tablets.create([meta()])
    changed = [*ROWS[:10], (10, *ROWS[10][1:6], 999.0, ROWS[10][7]), *ROWS[11:]]
    load(rs, 100, 2, changed[:64])
    load(rs, 101, 3, changed[64:])
    assert rs.checksum(1, 3) != at3 and rs.checksum(1, 3)[1] == 120
    swapped = [ROWS[1], ROWS[0], *ROWS[2:]]  # the same rows in another order: another checksum
    store2, tablets2, rs2, _ = open_store(tmp_path / "order")
    tablets2.create([meta()])
    load(rs2, 100, 2, swapped[:64])
    assert rs2.checksum(1, 2) != at2


def test_compaction_converts_old_segments_and_keeps_rows_and_checksums(tmp_path):
    store, tablets, rs, cmp = open_store(tmp_path / "a")
    ref_store, ref_tablets, ref, _ = open_store(tmp_path / "ref")  # never compacted, columnar
    tablets.create([meta()])
    ref_tablets.create([meta()])
    for v in range(2, 14):
        part = ROWS[(v - 2) * 10:(v - 1) * 10]
        load(rs, 100 + v, v, part, old if v % 2 else new, per_segment=4)
        load(ref, 100 + v, v, part)
    before = {v: (list(rs.scan(1, v)), rs.checksum(1, v)) for v in range(1, 14)}
    assert all(before[v][1] == ref.checksum(1, v) for v in before)
    out = cmp.compact(1, CompactionType.CUMULATIVE)
    assert out.ok, out.message
    live = tablets.get(1).rowsets
    assert [r[:2] for r in live] == [[2, 13]]
    merged = segments(store, live)
    assert all(columnar.is_columnar(p) for p in merged) and len(merged) == 1  # 120 small rows: one segment
    assert sum(merge.count_rows(p) for p in merged) == live[0][V.ROWS] == 120
    for v in range(1, 14):
        assert (list(rs.scan(1, v)), rs.checksum(1, v)) == before[v], v
    assert [t.schema.equals(SCHEMA, check_metadata=True) for t in rs.scan_tables(1, 13)] == [True]
    store.close()
    ref_store.close()


def test_a_base_compaction_rewrites_an_old_base_once_then_extends_it_in_place(tmp_path):
    store, tablets, rs, cmp = open_store(tmp_path / "a")
    ref_store, ref_tablets, ref, _ = open_store(tmp_path / "ref")
    tablets.create([meta()])
    ref_tablets.create([meta()])
    # a replica written before columnar segments: an old base [0-6] and old rowsets 7-11, below
    # the cumulative point (as cumulative compactions leave them) for a base compaction to fold
    old_base = [0, 6, 555, 50, len(old(ROWS[:50])), 1]
    store.db.put(chunk_key(1, 555, 0), old(ROWS[:50]))
    m = tablets.get(1)
    m.rowsets, m.version, m.row_count, m.cumulative_point = [old_base], 6, 50, 12
    ref_meta = ref_tablets.get(1)
    ref_meta.rowsets, ref_meta.version, ref_meta.row_count = [list(old_base)], 6, 50
    ref_store.db.put(chunk_key(1, 555, 0), new(ROWS[:50]))
    for v in range(7, 12):
        part = ROWS[50 + (v - 7) * 10:50 + (v - 6) * 10]
        load(rs, 100 + v, v, part, old)
        load(ref, 100 + v, v, part)
    want = ref.checksum(1, 11)
    assert rs.checksum(1, 11) == want and want[1] == 100
    out = cmp._merge_and_swap(1, 2, 12, _base_pick(tablets.get(1)), store.db.snapshot(), 0.0, SCHEMA)
    assert out[0], out[1]
    base = tablets.get(1).rowsets[0]
    assert base[:2] == [0, 11] and base[V.RID] != 555  # rewritten under a new id
    assert all(columnar.is_columnar(p) for p in segments(store, [base]))
    assert rs.checksum(1, 11) == want and list(rs.scan(1, 11)) == ROWS[:100]
    assert rs.checksum(1, 6) == ref.checksum(1, 6)  # through the stale old base
    for v in range(12, 17):
        load(rs, 100 + v, v, ROWS[v * 5:v * 5 + 5])
    assert cmp.compact(1, CompactionType.CUMULATIVE).ok  # [12-16], the point moves to 17
    again = cmp._merge_and_swap(1, 2, 17, _base_pick(tablets.get(1)), store.db.snapshot(), 0.0, SCHEMA)
    assert again[0], again[1]
    extended = tablets.get(1).rowsets[0]
    assert extended[V.RID] == base[V.RID] and extended[V.CHUNKS] > base[V.CHUNKS]  # in place now
    assert [r[:2] for r in tablets.get(1).rowsets] == [[0, 16]]
    assert list(rs.scan(1, 16)) == ROWS[:100] + ROWS[60:85]
    store.close()
    ref_store.close()


def _base_pick(m: TabletMeta) -> Pick:
    pick = pick_base(m.rowsets, m.cumulative_point, CFG, since_last_base_s=86400)
    assert pick is not None and pick.kind is CompactionType.BASE
    return pick


def test_merge_cuts_large_inputs_into_bounded_columnar_segments_and_passes_large_ones_through(monkeypatch):
    big = columnar.encode_segment(columnar.table_from_rows(ROWS * 40, SCHEMA))
    assert len(big) >= merge.PASS_THROUGH_BYTES
    smalls = [old(ROWS[i:i + 10]) for i in range(0, 120, 10)]
    out = list(merge.merge_chunks([*smalls[:3], big, *smalls[3:], old([])], SCHEMA))
    assert out[1][0] is big and out[1][1] == 4800  # columnar and in the schema: passed through
    assert [n for _p, n in out] == [30, 4800, 90]
    assert all(columnar.is_columnar(p) and merge.count_rows(p) == n for p, n in out)
    rows = [r for p, _n in out for r in columnar.segment_to_rows(p)]
    assert rows == ROWS[:30] + ROWS * 40 + ROWS[30:]
    monkeypatch.setattr(merge, "MAX_CHUNK_ROWS", 1000)
    cut = list(merge.merge_chunks([old(ROWS * 40)] + smalls, SCHEMA))  # old big input: converted, cut
    assert [n for _p, n in cut] == [1000] * 4 + [920]
    assert [r for p, _n in cut for r in columnar.segment_to_rows(p)] == ROWS * 40 + ROWS


def test_count_rows_reads_both_formats_without_the_rows():
    assert merge.count_rows(old(ROWS)) == merge.count_rows(new(ROWS)) == 120
    assert merge.count_rows(old([])) == merge.count_rows(new([])) == 0


def test_a_clone_copies_columnar_segments_byte_for_byte_and_checksums_equal(tmp_path):
    s1, t1, src, cmp = open_store(tmp_path / "src")
    s2, t2, dst, _ = open_store(tmp_path / "dst")
    t1.create([meta()])
    for v in range(2, 9):
        load(src, 100 + v, v, ROWS[(v - 2) * 15:(v - 1) * 15], new if v % 3 else old, per_segment=6)
    assert cmp.compact(1, CompactionType.CUMULATIVE).ok  # 2-8 in one columnar segment

    async def pull() -> list[list[int]]:
        got: dict[int, list[int]] = {}
        async for c in stream_rowsets(s1, src, 1, 0, 8):
            got.setdefault(c.version, [c.start_version, c.version, c.txn_id, c.row_count, c.rowset_bytes,
                                       c.chunk_count])
            if c.chunk_count:
                s2.db.put(chunk_key(1, c.txn_id, c.chunk_index), c.rows)
        return [got[v] for v in sorted(got)]

    rowsets = asyncio.run(pull())
    t2.create([meta(9)])  # as the clone task does for a replica it does not hold yet
    installed = dst.install_clone(meta(9), rowsets, incremental=False)
    assert installed.version == 8 and installed.schema_json == SCHEMA_JSON
    assert segments(s2, rowsets) == segments(s1, rowsets)
    assert dst.checksum(1, 8) == src.checksum(1, 8) and dst.checksum(1, 8)[1] == 105
    assert list(dst.scan(1, 8)) == ROWS[:105]
    assert [t.num_rows for t in dst.scan_tables(1, 8)] == [105]
    s1.close()
    s2.close()


def test_a_tablet_without_columns_checksums_its_rows_in_either_format(tmp_path):
    store, tablets, rs, cmp = open_store(tmp_path / "a")
    tablets.create([meta(schema_json="[]")])
    store2, tablets2, rs2, _ = open_store(tmp_path / "b")
    tablets2.create([meta(schema_json="[]")])
    load(rs, 100, 2, ROWS, new, per_segment=50)
    load(rs2, 100, 2, ROWS, old, per_segment=7)
    assert list(rs.scan(1, 2)) == list(rs2.scan(1, 2)) == ROWS
    assert rs.checksum(1, 2) == rs2.checksum(1, 2)
    with pytest.raises(StorageError, match="declares no columns"):
        next(rs.scan_tables(1, 2))
    for v in range(3, 8):
        load(rs2, 100 + v, v, ROWS[:v], old)
        load(rs, 100 + v, v, ROWS[:v], new)
    want = rs2.checksum(1, 7)
    assert cmp.compact(1, CompactionType.CUMULATIVE).ok  # rows stay rows without a schema
    assert rs.checksum(1, 7) == want and list(rs.scan(1, 7)) == list(rs2.scan(1, 7))
    store.close()
    store2.close()


def test_a_segment_that_does_not_fit_the_schema_is_named(tmp_path):
    store, tablets, rs, _ = open_store(tmp_path)
    tablets.create([meta()])
    load(rs, 100, 2, [(1, "x")], old)
    with pytest.raises(StorageError, match=r"chunk 0 of rowset 100 \(versions 2-2\) does not fit"):
        rs.checksum(1, 2)
    store.close()


def test_a_compaction_input_that_does_not_fit_the_schema_fails_the_compaction_and_says_which(tmp_path):
    store, tablets, rs, cmp = open_store(tmp_path)
    tablets.create([meta()])
    for v in range(2, 7):
        load(rs, 100 + v, v, [(1, "x")] if v == 4 else ROWS[:3], old)
    out = cmp.compact(1, CompactionType.CUMULATIVE)
    assert not out.ok and "input segment 2 (marshal-row" in out.message and "does not fit" in out.message
    assert [r[:2] for r in tablets.get(1).rowsets] == [[v, v] for v in range(2, 7)]  # kept as they were
    store.close()
