"""BE rowsets: pending by txn, publish in version order, idempotent, cleared on abort, kept on restart."""

from __future__ import annotations

import pytest

from be.storage.rowsets import RowsetStore, StorageError
from be.storage.store import BeStore
from be.storage.tablets import TabletManager, TabletMeta
from common.rowcodec import decode_rows, encode_rows


def open_store(path):
    store = BeStore(str(path))
    tablets = TabletManager(store)
    return store, tablets, RowsetStore(store, tablets)


def meta(tablet_id: int) -> TabletMeta:
    return TabletMeta(tablet_id, tablet_id + 1, 1, 2, 3, 1, "[]")


def chunk(tablet_id: int, rows: list[tuple]):
    return (tablet_id, 3, encode_rows(rows), len(rows))


def test_publish_in_order_idempotent_and_scan(tmp_path):
    store, tablets, rs = open_store(tmp_path)
    tablets.create([meta(1)])
    rs.write(100, [chunk(1, [(1, "a"), (2, "b")])])
    rs.write(100, [chunk(1, [(3, "c")])])  # a second batch of the same txn appends
    rs.write(101, [chunk(1, [(4, "d")])])
    gap = rs.publish(101, 1, 3)
    assert not gap.ok and "version gap: replica at version 1 cannot publish version 3" in gap.error
    assert rs.publish(100, 1, 2).ok
    assert rs.publish(100, 1, 2).ok  # idempotent
    assert rs.publish(101, 1, 3).ok
    assert list(rs.scan(1, 2)) == [(1, "a"), (2, "b"), (3, "c")]
    assert list(rs.scan(1, 3)) == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    assert tablets.get(1).row_count == 4 and tablets.get(1).version == 3
    missed = rs.publish(999, 1, 4)
    assert not missed.ok and "missed the write" in missed.error
    with pytest.raises(StorageError, match="at version 3, below the requested 4"):
        list(rs.scan(1, 4))
    with pytest.raises(StorageError, match="already published"):
        rs.write(100, [chunk(1, [(9, "z")])])
    with pytest.raises(StorageError, match="tablet 77 does not exist"):
        rs.write(102, [chunk(77, [(9, "z")])])
    store.close()


def test_checksum_equal_for_equal_replicas_and_clear(tmp_path):
    stores = [open_store(tmp_path / f"be{i}") for i in range(2)]
    for _store, tablets, rs in stores:
        tablets.create([meta(5)])
        rs.write(7, [chunk(5, [(i, str(i)) for i in range(100)])])
        rs.write(8, [chunk(5, [(1000, "x")])])
        assert rs.publish(7, 5, 2).ok
    assert stores[0][2].checksum(5, 2) == stores[1][2].checksum(5, 2)
    assert stores[0][2].checksum(5, 2)[1] == 100
    assert stores[0][2].pending_txns() == {8}
    assert stores[0][2].clear(8) == 1 and stores[0][2].pending_txns() == set()
    assert not stores[0][2].publish(8, 5, 3).ok
    assert stores[1][2].publish(8, 5, 3).ok
    assert stores[0][2].checksum(5, 2) == stores[1][2].checksum(5, 2)
    for store, _, _ in stores:
        store.close()


def test_restart_keeps_visible_and_pending_rowsets(tmp_path):
    store, tablets, rs = open_store(tmp_path)
    tablets.create([meta(1)])
    rs.write(1, [chunk(1, [(1, "a")])])
    rs.publish(1, 1, 2)
    rs.write(2, [chunk(1, [(2, "b")])])
    store.close()
    store, tablets, rs = open_store(tmp_path)
    assert rs.pending_txns() == {2}
    assert rs.publish(2, 1, 3).ok
    assert list(rs.scan(1, 3)) == [(1, "a"), (2, "b")]
    assert tablets.drop([1], [999]) == []  # another replica of tablet 1: kept
    assert tablets.drop([1], [2]) == [1]
    rs.forget_tablet(1)
    assert rs.pending_txns() == set()
    store.close()


def test_rowcodec_round_trip_keeps_large_ints_and_nulls():
    rows = [(2**100, None, 1.5, True, "é"), (-(2**127), "", 0.0, False, "x")]
    assert decode_rows(encode_rows(rows)) == rows
    assert decode_rows(b"") == []
    with pytest.raises(ValueError, match="unknown row format"):
        decode_rows(b"\x09abc")
