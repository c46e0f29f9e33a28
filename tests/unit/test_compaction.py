"""BE compaction: version paths, the policy, the merge, the atomic swap, stale rowsets, the
version limit and clones of compacted replicas (no processes)."""

from __future__ import annotations

import time

import pytest

from be.storage import versions as V
from be.storage.compaction import CompactionManager, marker_key
from be.storage.compaction_policy import CompactionType, pick_base, pick_cumulative, point_after
from be.storage.merge import merge_chunks
from be.storage.rowsets import RowsetStore, StorageError, chunk_key
from be.storage.store import BeStore
from be.storage.tablets import TabletManager, TabletMeta
from common.config import StorageConfig
from common.rowcodec import decode_rows, encode_rows

CFG = StorageConfig()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def open_store(path, cfg: StorageConfig = CFG, clock: Clock | None = None):
    store = BeStore(str(path))
    tablets = TabletManager(store)
    rowsets = RowsetStore(store, tablets, lambda: cfg.tablet_max_versions)
    return store, tablets, rowsets, CompactionManager(store, tablets, rowsets, cfg, clock or Clock())


def load(rs: RowsetStore, txn: int, version: int, rows: list[tuple], tablet_id: int = 1) -> None:
    rs.write(txn, [(tablet_id, 3, encode_rows(rows), len(rows))])
    assert rs.publish(txn, tablet_id, version).ok


def rows_of(version: int) -> list[tuple]:
    return [(version, f"v{version}-{i}", i * 0.5) for i in range(version % 3 + 1)]


# ---------------------------------------------------------------- pure parts
def rs(start, end, rid=0, rows=1, nbytes=10):
    return [start, end, rid, rows, nbytes, 1]


def test_find_path_prefers_wide_live_rowsets_and_uses_stale_ones_for_older_versions():
    live = [rs(0, 5, 1), rs(6, 10, 2), rs(11, 11, 3)]
    stale = [rs(2, 2), rs(3, 3), rs(4, 5), rs(6, 6), rs(7, 7), rs(8, 10)]
    assert [r[:2] for r in V.find_path(live + stale, 0, 11)] == [[0, 5], [6, 10], [11, 11]]
    assert [r[:2] for r in V.find_path(live + stale, 0, 7)] == [[0, 5], [6, 6], [7, 7]]
    assert [r[:2] for r in V.find_path(live + stale, 6, 11)] == [[7, 7], [8, 10], [11, 11]]
    assert V.find_path(live + stale, 8, 10) is None  # version 9 alone was never a rowset
    assert V.find_path(live, 3, 11) is None  # compacted away without stale rowsets
    assert V.find_path(live, 11, 11) == [] and V.find_path([], 0, 1) == []
    assert V.covers(V.find_path(live, 0, 11), 0, 11) and not V.covers([rs(2, 3), rs(5, 6)], 1, 6)


def test_version_count_counts_the_initial_empty_rowset_until_a_base_compaction():
    assert V.version_count([]) == 1
    assert V.version_count([rs(2, 2), rs(3, 3)]) == 3
    assert V.version_count([rs(0, 3), rs(4, 4)]) == 2


def test_policy_cumulative_then_base():
    singles = [rs(v, v) for v in range(2, 8)]
    assert pick_cumulative(singles[:4], 2, CFG) is None  # 4 < min 5
    pick = pick_cumulative(singles, 2, CFG)
    assert pick.kind is CompactionType.CUMULATIVE and [r[0] for r in pick.inputs] == [2, 3, 4, 5, 6, 7]
    assert (pick.start_version, pick.end_version, point_after(pick, 2)) == (2, 7, 8)
    capped = StorageConfig(max_cumulative_compaction_num_singleton_deltas=5)
    assert pick_cumulative(singles, 2, capped).end_version == 6
    below = [rs(2, 7), rs(8, 12), rs(13, 17), rs(18, 22)]
    assert pick_base(below, 23, CFG, since_last_base_s=0) is None  # 4 cumulative rowsets, no base
    assert pick_base(below + [rs(23, 27)], 28, CFG, 0).start_version == 0  # 5 of them
    assert pick_base(below, 23, CFG, since_last_base_s=86400).end_version == 22  # too long since the last
    base = [rs(0, 50, nbytes=1000), rs(51, 55, nbytes=100)]
    assert pick_base(base, 56, CFG, 0) is None  # 10 % of the base's bytes
    assert pick_base(base + [rs(56, 60, nbytes=250)], 61, CFG, 0).inputs[0][:2] == [0, 50]  # 35 %


def test_merge_keeps_rows_in_order_and_passes_large_chunks_through():
    big = encode_rows([(i, f"{i:040d}") for i in range(3000)])
    small = [encode_rows([(i,)]) for i in range(5)]
    out = list(merge_chunks([small[0], small[1], big, small[2], encode_rows([]), small[3], small[4]]))
    assert out[1][0] is big  # passed through, not re-encoded
    assert [n for _p, n in out] == [2, 3000, 3]
    assert [r for p, _n in out for r in decode_rows(p)] == [(0,), (1,), *decode_rows(big), (2,), (3,), (4,)]


# ---------------------------------------------------------------- compaction on RocksDB
def test_compaction_keeps_rows_and_checksums_at_every_version(tmp_path):
    clock = Clock()
    a_store, a_tablets, a, a_cmp = open_store(tmp_path / "a", clock=clock)
    b_store, b_tablets, b, _ = open_store(tmp_path / "b")
    for tablets in (a_tablets, b_tablets):
        tablets.create([TabletMeta(1, 2, 1, 2, 3, 1, "[]")])
    for v in range(2, 14):
        load(a, 100 + v, v, rows_of(v))
        load(b, 100 + v, v, rows_of(v))
    before = {v: (list(a.scan(1, v)), a.checksum(1, v)) for v in range(1, 14)}
    assert a_tablets.get(1).version_count == 13
    out = a_cmp.compact(1, CompactionType.CUMULATIVE)
    assert out.ok and "versions 2-13, 12 rowsets" in out.message
    meta = a_tablets.get(1)
    assert [r[:2] for r in meta.rowsets] == [[2, 13]] and meta.cumulative_point == 14
    assert meta.version_count == 2 and len(meta.stale_rowsets) == 12
    for v in range(2, 16):
        load(a, 200 + v, v + 12, rows_of(v + 12))
        load(b, 200 + v, v + 12, rows_of(v + 12))
    assert a_cmp.compact(1, CompactionType.CUMULATIVE).ok
    assert a_cmp.compact(1, CompactionType.BASE) is None  # one cumulative rowset is no reason yet
    for v in range(28, 33):
        assert a_cmp.compact(1, CompactionType.CUMULATIVE) is None  # fewer than 5 above the point
        load(a, 300 + v, v, rows_of(v))
        load(b, 300 + v, v, rows_of(v))
    assert a_cmp.compact(1, CompactionType.CUMULATIVE).ok
    clock.now += 86400
    base = a_cmp.compact(1, CompactionType.BASE)
    assert base.ok and "versions 0-32" in base.message
    assert [r[:2] for r in a_tablets.get(1).rowsets] == [[0, 32]] and a_tablets.get(1).version_count == 1
    for v in range(1, 33):  # every older version is still readable through stale rowsets
        if v in before:
            assert (list(a.scan(1, v)), a.checksum(1, v)) == before[v]
        assert a.checksum(1, v) == b.checksum(1, v), v  # equal to a replica that never compacted
    st = a_cmp.status(1)
    assert st.last_base_result.startswith("OK") and st.cumulative_point == 33 and st.stale_rowset_num > 0
    assert a_cmp.counters.cumulative == 3 and a_cmp.counters.base == 1
    # the sweep deletes the stale rowsets; the current version stays readable, old ones do not
    swept = a.sweep_stale(int(clock.now * 1000) + 1)
    assert swept == 12 + 14 + 5 + 3
    assert a.checksum(1, 32) == b.checksum(1, 32)
    with pytest.raises(StorageError, match="compacted away"):
        a.checksum(1, 20)
    keys = [k for k, _ in a_store.db.items(from_key=b"rs/") if k.startswith(b"rs/")]
    assert len(keys) == a_tablets.get(1).rowsets[0][V.CHUNKS]  # nothing left of the inputs
    a_store.close()
    _s, tablets, again, _c = open_store(tmp_path / "a")
    assert again.checksum(1, 32) == b.checksum(1, 32) and tablets.get(1).cumulative_point == 33


def test_the_version_limit_refuses_writes_with_starrocks_message(tmp_path):
    cfg = StorageConfig(tablet_max_versions=4)
    _store, tablets, rowsets, cmp = open_store(tmp_path, cfg)
    tablets.create([TabletMeta(1, 2, 1, 2, 3, 1, "[]")])
    for v in (2, 3, 4):
        load(rowsets, v, v, [(v,)])
    with pytest.raises(StorageError) as err:
        rowsets.write(9, [(1, 3, encode_rows([(9,)]), 1)])
    assert str(err.value) == "Too many versions. tablet_id: 1, version_count: 4, limit: 4"
    small = StorageConfig(tablet_max_versions=4, min_cumulative_compaction_num_singleton_deltas=2)
    assert CompactionManager(_store, tablets, rowsets, small).compact(1, CompactionType.CUMULATIVE).ok
    load(rowsets, 9, 5, [(9,)])  # compaction made room


def test_a_kill_before_the_swap_leaves_the_old_rowsets_and_recovery_deletes_the_output(tmp_path):
    store, tablets, rowsets, cmp = open_store(tmp_path)
    tablets.create([TabletMeta(1, 2, 1, 2, 3, 1, "[]")])
    for v in range(2, 8):
        load(rowsets, v, v, [(v,)])
    checksum = rowsets.checksum(1, 7)
    # what a compaction killed after writing its output, before the swap, leaves behind
    store.db.put(marker_key(1, 777), b"")
    store.db.put(chunk_key(1, 777, 0), encode_rows([(2,), (3,)]))
    store.close()
    store, tablets, rowsets, cmp = open_store(tmp_path)  # recovery runs at start
    assert store.db.get(chunk_key(1, 777, 0)) is None and store.db.get(marker_key(1, 777)) is None
    assert [r[0] for r in tablets.get(1).rowsets] == [2, 3, 4, 5, 6, 7]
    assert rowsets.checksum(1, 7) == checksum


def test_a_swap_whose_inputs_changed_is_refused_and_its_output_deleted(tmp_path):
    store, tablets, rowsets, cmp = open_store(tmp_path)
    tablets.create([TabletMeta(1, 2, 1, 2, 3, 1, "[]")])
    for v in range(2, 8):
        load(rowsets, v, v, [(v,)])
    inputs = [list(r) for r in tablets.get(1).rowsets[:5]]
    snap = store.db.snapshot()  # the compaction's view, taken before ...
    # ... a full clone replaced the replica
    rowsets.install_clone(TabletMeta(1, 9, 1, 2, 3, 1, "[]"), [], incremental=False)
    assert not rowsets.swap_compacted(1, 2, inputs, [2, 6, 55, 5, 50, 1], 7, marker_key(1, 55), 0)
    original = cmp._merge_and_swap
    assert original(1, 2, 2, pick_cumulative(inputs, 2, CFG), snap, 0.0)[0] is False
    assert not [k for k, _ in store.db.items(from_key=b"rs/") if k.startswith(b"rs/")]
    assert not [k for k, _ in store.db.items(from_key=b"cmp/") if k.startswith(b"cmp/")]


def test_incremental_clone_from_a_compacted_source_uses_stale_rowsets_then_needs_a_full_clone(tmp_path):
    clock = Clock()
    _s, tablets, src, cmp = open_store(tmp_path / "src", clock=clock)
    tablets.create([TabletMeta(1, 2, 1, 2, 3, 1, "[]")])
    for v in range(2, 9):
        load(src, v, v, [(v,)])
    assert cmp.compact(1, CompactionType.CUMULATIVE).ok  # [2-8]
    _s.close()
    _s, tablets, src, cmp = open_store(tmp_path / "src", clock=clock)  # stale rowsets kept across a restart
    assert len(tablets.get(1).stale_rowsets) == 7 and b"stale" not in _s.db.get(b"tablet/" + (1).to_bytes(8, "big"))
    assert [r[:2] for r in src.clone_rowsets(1, 4, 8)] == [[5, 5], [6, 6], [7, 7], [8, 8]]
    assert [r[:2] for r in src.clone_rowsets(1, 0, 8)] == [[2, 8]]
    src.sweep_stale(int(clock.now * 1000) + 1)
    assert not [k for k, _ in _s.db.items(from_key=b"stale/") if k.startswith(b"stale/")]
    with pytest.raises(StorageError, match=r"cannot serve versions \(4, 8\]"):
        src.clone_rowsets(1, 4, 8)
    assert [r[:2] for r in src.clone_rowsets(1, 1, 8)] == [[2, 8]]  # a full clone still can


def test_base_compaction_extends_the_base_in_place_and_a_kill_before_its_swap_keeps_the_base(tmp_path):
    clock = Clock()
    cfg = StorageConfig(min_cumulative_compaction_num_singleton_deltas=2, min_base_compaction_num_singleton_deltas=1)
    store, tablets, rowsets, cmp = open_store(tmp_path, cfg, clock)
    tablets.create([TabletMeta(1, 2, 1, 2, 3, 1, "[]")])
    big = [(i, f"{i:060d}") for i in range(2000)]  # one chunk above the pass-through size
    load(rowsets, 2, 2, big)
    load(rowsets, 3, 3, rows_of(3))
    assert cmp.compact(1, CompactionType.CUMULATIVE).ok and cmp.compact(1, CompactionType.BASE).ok
    base = list(tablets.get(1).rowsets[0])
    assert base[:2] == [0, 3]
    chunks_before = {i: store.db.get(chunk_key(1, base[V.RID], i)) for i in range(base[V.CHUNKS])}
    for v in (4, 5):
        load(rowsets, v, v, rows_of(v))
    assert cmp.compact(1, CompactionType.CUMULATIVE).ok
    out = cmp.compact(1, CompactionType.BASE)
    assert out.ok
    grown = tablets.get(1).rowsets[0]
    assert grown[:3] == [0, 5, base[V.RID]] and grown[V.CHUNKS] == base[V.CHUNKS] + 1  # appended, same id
    assert {i: store.db.get(chunk_key(1, base[V.RID], i)) for i in range(base[V.CHUNKS])} == chunks_before
    assert list(rowsets.scan(1, 3)) == big + rows_of(3)  # the old base, a stale [0-3], reads as before
    assert list(rowsets.scan(1, 5)) == big + rows_of(3) + rows_of(4) + rows_of(5)
    # a base compaction killed after writing its appended chunks, before the swap
    checksum = rowsets.checksum(1, 5)
    first = grown[V.CHUNKS]
    store.db.put(marker_key(1, grown[V.RID]), first.to_bytes(8, "big"))
    store.db.put(chunk_key(1, grown[V.RID], first), encode_rows([(99,)]))
    store.close()
    store, tablets, rowsets, cmp = open_store(tmp_path, cfg, clock)
    assert store.db.get(chunk_key(1, grown[V.RID], first)) is None  # the appended chunk went
    assert store.db.get(chunk_key(1, grown[V.RID], first - 1)) is not None  # the base's own stayed
    assert rowsets.checksum(1, 5) == checksum and list(rowsets.scan(1, 3)) == big + rows_of(3)
    # sweeping the stale [0-3] keeps the live base's chunks
    rowsets.sweep_stale(int(clock.now * 1000) + 1)
    assert rowsets.checksum(1, 5) == checksum and not tablets.get(1).stale_rowsets


def test_the_write_limit_holds_for_an_output_smaller_than_one_write_batch(tmp_path):
    # compaction_write_limit_mb_per_sec slept only after a full write batch, so the small
    # compactions a steady load makes (tens of KB) were never limited at all
    cfg = StorageConfig(compaction_write_limit_mb_per_sec=0.05, min_cumulative_compaction_num_singleton_deltas=2)
    _store, tablets, rowsets, cmp = open_store(tmp_path, cfg)
    tablets.create([TabletMeta(1, 2, 1, 2, 3, 1, "[]")])
    for v in range(2, 6):
        load(rowsets, v, v, [(i, f"row {i:06d} of version {v}") for i in range(300)])
    started = time.monotonic()
    out = cmp.compact(1, CompactionType.CUMULATIVE)
    took = time.monotonic() - started
    written = int(out.message.split(", ")[-2].split()[0])  # "..., N bytes, T ms"
    assert out.ok and written > 5_000, out.message
    assert took >= written / (0.05 * 1024 * 1024) * 0.9, f"{written} bytes compacted in {took:.3f} s"
