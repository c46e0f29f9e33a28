"""BE clone storage: rowsets listed for a clone, installed in full or incrementally (no processes)."""

from __future__ import annotations

import pytest

from be.storage.rowsets import RowsetStore, StorageError, chunk_key
from be.storage.store import BeStore
from be.storage.tablets import TabletManager, TabletMeta
from common.rowcodec import encode_rows


def open_store(path):
    store = BeStore(str(path))
    tablets = TabletManager(store)
    return store, tablets, RowsetStore(store, tablets)


def meta(replica_id: int = 2) -> TabletMeta:
    return TabletMeta(1, replica_id, 1, 2, 3, 1, "[]")


def load(rs: RowsetStore, txn: int, version: int, rows: list[tuple]) -> None:
    rs.write(txn, [(1, 3, encode_rows(rows), len(rows))])
    assert rs.publish(txn, 1, version).ok


def copy(src_store: BeStore, dst_store: BeStore, rowsets: list[list[int]]) -> None:
    for _start, _end, txn, _rows, _bytes, n in rowsets:
        for i in range(n):
            dst_store.db.put(chunk_key(1, txn, i), src_store.db.get(chunk_key(1, txn, i)))


def test_full_then_incremental_clone_gives_equal_checksums(tmp_path):
    s1, t1, src = open_store(tmp_path / "src")
    s2, t2, dst = open_store(tmp_path / "dst")
    t1.create([meta()])
    for v, txn in ((2, 100), (3, 101), (4, 102)):
        load(src, txn, v, [(txn, f"r{txn}")])
    with pytest.raises(StorageError):
        src.clone_rowsets(1, 0, 5)  # not reached
    first = src.clone_rowsets(1, 0, 3)
    assert [r[:2] for r in first] == [[2, 2], [3, 3]]
    t2.create([meta(9)])  # the stand-in replica the FE made before the clone
    # the coordinator's write of txn 101 reached the stand-in replica too (the same bytes as the source's)
    dst.write(101, [(1, 3, s1.db.get(chunk_key(1, 101, 0)), 1)])
    copy(s1, s2, first)
    installed = dst.install_clone(meta(9), first, incremental=False)
    assert installed.version == 3 and installed.row_count == 2
    assert dst.pending_tablets() == {}  # txn 101 is visible now: its pending marker went
    assert dst.checksum(1, 3) == src.checksum(1, 3)
    rest = src.clone_rowsets(1, 3, 4)
    copy(s1, s2, rest)
    with pytest.raises(StorageError):
        dst.install_clone(meta(9), src.clone_rowsets(1, 3, 4)[1:] + [[6, 6, 1, 1, 1, 0]], incremental=True)
    assert dst.install_clone(meta(9), rest, incremental=True).version == 4
    assert dst.checksum(1, 4) == src.checksum(1, 4)
    assert list(dst.scan(1, 4)) == list(src.scan(1, 4))
    s1.close()
    s2.close()
    _s, _t, again = open_store(tmp_path / "dst")  # installed for good (synced batch)
    assert again.checksum(1, 4)[1] == 3


def test_full_clone_replaces_old_rowsets_and_keeps_a_complete_stand_in_replica(tmp_path):
    s1, t1, src = open_store(tmp_path / "src")
    s2, t2, dst = open_store(tmp_path / "dst")
    t1.create([meta()])
    t2.create([meta()])
    load(src, 100, 2, [(1,)])
    load(dst, 200, 2, [(2,), (3,)])  # a diverged replica: replaced in full
    rowsets = src.clone_rowsets(1, 0, 2)
    copy(s1, s2, rowsets)
    out = dst.install_clone(meta(7), rowsets, incremental=False)
    assert out.replica_id == 7 and out.rowsets == rowsets and list(dst.scan(1, 2)) == [(1,)]
    assert s2.db.get(chunk_key(1, 200, 0)) is None  # the replaced rowset's data is gone
    load(dst, 101, 3, [(4,)])
    assert dst.install_clone(meta(7), rowsets, incremental=False).version == 3  # already past: kept
