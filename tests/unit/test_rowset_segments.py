"""A txn's pending rowset written in several calls (segments), as a chunked routine load task
writes it: appended in order, a resent chunk replaces, a gap is refused, an abort clears every
segment, and publish, scans, checksums, clone reads and compaction see the same rows as a
one-call write (no processes)."""

from __future__ import annotations

import orjson
import pytest

from be.load.writer import Chunk, rows_request
from be.service.backend import BackendServicer
from be.storage.compaction import CompactionManager
from be.storage.compaction_policy import CompactionType
from be.storage.rowsets import RowsetStore, StorageError, pending_key, read_chunks
from be.storage.store import PENDING_PREFIX, ROWSET_PREFIX, BeStore
from be.storage.tablets import TabletManager, TabletMeta
from common.config import StorageConfig
from common.rowcodec import decode_rows, encode_rows

ROWS = [(i, f"name-{i}", i * 0.25) for i in range(50)]


def open_store(path, max_versions: int = 1000):
    store = BeStore(str(path))
    tablets = TabletManager(store)
    return store, tablets, RowsetStore(store, tablets, lambda: max_versions)


def meta(tablet_id: int = 1) -> TabletMeta:
    return TabletMeta(tablet_id, tablet_id + 1, 1, 2, 3, 1, "[]")


def seg(rows: list[tuple], seq: int | None, tablet_id: int = 1) -> tuple:
    return (tablet_id, 3, encode_rows(rows), len(rows), seq)


def keys_with(store: BeStore, prefix: bytes) -> list[bytes]:
    return [k for k in store.db.keys(from_key=prefix) if k.startswith(prefix)]


def test_segments_written_in_several_calls_make_one_rowset(tmp_path):
    store, tablets, rs = open_store(tmp_path)
    tablets.create([meta()])
    assert rs.write(7, [seg(ROWS[:10], 0)]) == 10
    assert rs.write(7, [seg(ROWS[10:30], 1), seg(ROWS[30:45], 2)]) == 35
    assert rs.write(7, [seg(ROWS[45:], 3)]) == 5
    assert rs.pending_txns() == {7}
    assert rs.publish(7, 1, 2).ok
    m = tablets.get(1)
    start, end, rowset_id, rows, _bytes, chunks = m.rowsets[-1][:6]
    assert (start, end, rowset_id, rows, chunks) == (2, 2, 7, 50, 4)
    assert m.row_count == 50 and m.version == 2
    assert list(rs.scan(1, 2)) == ROWS
    store.close()


def test_a_resent_chunk_replaces_its_segment_and_a_gap_is_refused(tmp_path):
    store, tablets, rs = open_store(tmp_path)
    tablets.create([meta()])
    rs.write(7, [seg(ROWS[:20], 0)])
    rs.write(7, [seg(ROWS[20:40], 1)])
    rs.write(7, [seg(ROWS[20:40], 1)])  # its answer was lost: the coordinator sent it again
    rs.write(7, [seg(ROWS[:20], 0)])  # an older one again, too
    with pytest.raises(StorageError, match=r"chunk 4 arrived after 3 chunks; chunk 3 is missing"):
        rs.write(7, [seg(ROWS[40:], 2), seg(ROWS[40:], 4)])
    # the refused call wrote nothing, not even its first chunk (one batch)
    rs.write(7, [seg(ROWS[40:], 2)])
    assert rs.publish(7, 1, 2).ok
    assert list(rs.scan(1, 2)) == ROWS
    assert tablets.get(1).row_count == 50
    store.close()


def test_a_resent_chunk_after_a_restart_is_still_replaced(tmp_path):
    store, tablets, rs = open_store(tmp_path)
    tablets.create([meta()])
    rs.write(7, [seg(ROWS[:25], 0), seg(ROWS[25:], 1)])
    store.close()
    store, tablets, rs = open_store(tmp_path)
    rs.write(7, [seg(ROWS[25:], 1)])
    assert rs.publish(7, 1, 2).ok
    assert list(rs.scan(1, 2)) == ROWS and tablets.get(1).row_count == 50
    store.close()


def test_a_pending_rowset_stored_without_chunk_sizes_is_sized_at_start(tmp_path):
    store, tablets, rs = open_store(tmp_path)
    tablets.create([meta()])
    rs.write(7, [seg(ROWS[:20], None), seg(ROWS[20:], None)])
    marker = orjson.loads(store.db[pending_key(1, 7)])
    del marker["segments"]  # as the version before chunk positions stored it
    store.db[pending_key(1, 7)] = orjson.dumps(marker)
    store.close()
    store, tablets, rs = open_store(tmp_path)
    rs.write(7, [seg(ROWS[20:], 1)])  # a resend still replaces
    assert rs.publish(7, 1, 2).ok
    assert list(rs.scan(1, 2)) == ROWS and tablets.get(1).row_count == 50
    store.close()


def test_clearing_an_aborted_txn_deletes_every_segment(tmp_path):
    store, tablets, rs = open_store(tmp_path)
    tablets.create([meta(1), meta(2)])
    for i in range(5):
        rs.write(9, [seg(ROWS[i * 10:(i + 1) * 10], i, 1), seg(ROWS[i * 10:(i + 1) * 10], i, 2)])
    rs.write(10, [seg(ROWS[:1], 0, 1)])  # another txn keeps its rowset
    assert len(keys_with(store, ROWSET_PREFIX)) == 11
    assert rs.clear(9) == 2
    assert rs.pending_txns() == {10}
    assert len(keys_with(store, ROWSET_PREFIX)) == 1 and len(keys_with(store, PENDING_PREFIX)) == 1
    assert not rs.publish(9, 1, 2).ok
    store.close()


def test_segments_and_one_write_give_the_same_rows_checksum_clone_reads_and_compaction(tmp_path):
    cfg = StorageConfig(min_cumulative_compaction_num_singleton_deltas=2)
    one = open_store(tmp_path / "one")
    many = open_store(tmp_path / "many")
    for _store, tablets, _rs in (one, many):
        tablets.create([meta()])
    for txn, version in ((20, 2), (21, 3), (22, 4)):
        rows = [(txn, r[1], r[2]) for r in ROWS]
        one[2].write(txn, [(1, 3, encode_rows(rows), len(rows))])
        for i in range(0, len(rows), 7):
            many[2].write(txn, [seg(rows[i:i + 7], i // 7)])
        assert one[2].publish(txn, 1, version).ok and many[2].publish(txn, 1, version).ok
    assert many[1].get(1).rowsets[-1][5] == 8  # eight segments
    assert one[2].checksum(1, 4) == many[2].checksum(1, 4)
    assert list(one[2].scan(1, 4)) == list(many[2].scan(1, 4))
    path, snap = many[2].clone_plan(1, 2, 4)  # what a clone source streams
    assert [r for payload in read_chunks(snap, 1, path) for r in decode_rows(payload)] == list(one[2].scan(1, 4))[50:]
    compaction = CompactionManager(many[0], many[1], many[2], cfg)
    outcome = compaction.compact(1, CompactionType.CUMULATIVE)
    assert outcome is not None and outcome.ok, outcome
    assert many[1].get(1).rowsets[-1][:2] == [2, 4]
    assert one[2].checksum(1, 4) == many[2].checksum(1, 4)
    for store, _, _ in (one, many):
        store.close()


def test_the_version_limit_is_checked_when_a_txn_opens_a_tablet_not_for_its_later_segments(tmp_path):
    limit = [1000]
    store = BeStore(str(tmp_path))
    tablets = TabletManager(store)
    rs = RowsetStore(store, tablets, lambda: limit[0])
    tablets.create([meta()])
    rs.write(7, [seg(ROWS[:10], 0)])
    limit[0] = 1  # the replica is at the limit now (version_count 1)
    rs.write(7, [seg(ROWS[10:], 1)])  # the open rowset takes its next segment
    with pytest.raises(StorageError, match="Too many versions. tablet_id: 1, version_count: 1, limit: 1"):
        rs.write(8, [seg(ROWS[:1], 0)])
    limit[0] = 1000
    assert rs.publish(7, 1, 2).ok and tablets.get(1).row_count == 50
    store.close()


class Aborted(Exception):
    pass


class _Context:
    def invocation_metadata(self):
        return ()

    async def abort(self, code, message):
        raise Aborted(f"{code.name}: {message}")


async def test_write_rows_carries_the_position_so_a_resent_request_does_not_double_rows(tmp_path):
    store, tablets, rs = open_store(tmp_path)
    tablets.create([meta()])
    servicer = BackendServicer(store, tablets, rs, None, None, 0, lambda: 5)  # type: ignore[arg-type]
    first = rows_request(7, [Chunk(1, 3, encode_rows(ROWS[:20]), 20, 0)])
    second = rows_request(7, [Chunk(1, 3, encode_rows(ROWS[20:]), 30, 1)])
    assert first.chunks[0].HasField("seq") and second.chunks[0].seq == 1
    for req in (first, second, second):  # the second one's answer was lost, so it came again
        await servicer.WriteRows(req, _Context())
    with pytest.raises(Aborted, match="FAILED_PRECONDITION: backend 5: txn 7 on tablet 1: chunk 5 arrived after 2"):
        await servicer.WriteRows(rows_request(7, [Chunk(1, 3, encode_rows(ROWS[:1]), 1, 5)]), _Context())
    legacy = rows_request(7, [Chunk(1, 3, encode_rows([(99, "x", 0.0)]), 1)])  # no position: appended
    assert not legacy.chunks[0].HasField("seq")
    await servicer.WriteRows(legacy, _Context())
    assert rs.publish(7, 1, 2).ok
    assert list(rs.scan(1, 2)) == ROWS + [(99, "x", 0.0)]
    store.close()
