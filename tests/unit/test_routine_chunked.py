"""A routine load task consumes, parses and writes its batch in chunks of write_buffer_size bytes,
inside one txn: the same attachment and rows as a one-chunk run, max_filter_ratio over the whole
batch (exceeded: the txn is aborted and its segments cleared), quorum across chunks, no txn
without data (a fake broker and FE; real BE rowset stores, no processes)."""

from __future__ import annotations

import json
from typing import NamedTuple

import orjson
from aiokafka.errors import OffsetOutOfRangeError

from be.load.coordinator import LoadCoordinator
from be.load.routine_task import RoutineLoadRunner
from be.storage.rowsets import RowsetStore
from be.storage.store import ROWSET_PREFIX, BeStore
from be.storage.tablets import TabletManager, TabletMeta
from common.coltypes import Column, parse_type
from common.errors import Unavailable
from common.gen.tabletsim.v1 import backend_pb2, frontend_pb2, types_pb2
from common.loadformat import LoadSpec, compile_load

TABLETS = (101, 102, 103)
BES = (1, 2, 3)
PARTITION = 3
COLUMNS = [Column("id", parse_type("BIGINT"), nullable=False, is_key=True),
           Column("name", parse_type("VARCHAR(16)")), Column("v", parse_type("INT"))]


def target() -> types_pb2.LoadTarget:
    return types_pb2.LoadTarget(
        db="d", table="t", columns_json=json.dumps([c.to_dict() for c in COLUMNS]),
        distribution_columns=["id"], buckets=len(TABLETS), replication_num=3, quorum=2,
        partitions=[types_pb2.TargetPartition(partition_id=PARTITION, name="t", tablets=[
            types_pb2.TargetTablet(tablet_id=t, replicas=[
                types_pb2.TargetReplica(backend_id=b, address=f"127.0.0.1:{9060 + b}") for b in BES])
            for t in TABLETS])])


def messages(n: int, bad_from: int | None = None) -> list[bytes]:
    """CSV rows; some filtered (one column), some unselected (v < 0 against WHERE v >= 0)."""
    out = []
    for i in range(n):
        if (bad_from is None and i % 23 == 5) or (bad_from is not None and i >= bad_from):
            out.append(b"bad-row-%d" % i)
        elif i % 17 == 3:
            out.append(b"%d,n%d,-1" % (i, i))
        else:
            out.append(b"%d,n%d,%d" % (i, i, i % 50))
    return out


class Record(NamedTuple):
    value: bytes
    offset: int


class FakeConsumer:
    """A broker's partitions in memory; ``per_fetch`` records at most per getmany."""

    def __init__(self, log: dict[int, list[bytes]], per_fetch: int, out_of_range_at: int | None = None) -> None:
        self.log = log
        self.per_fetch = per_fetch
        self.pos: dict[int, int] = {}
        self.fetched: set[int] = set()
        self.fetches = 0
        self.asked: list[int] = []  # max_records of each getmany
        self.out_of_range_at = out_of_range_at
        self.stopped = False

    def assign(self, tps) -> None:
        self.tps = list(tps)

    def seek(self, tp, offset: int) -> None:
        self.pos[tp.partition] = offset

    async def getmany(self, *tps, timeout_ms: int = 0, max_records: int | None = None):
        self.fetches += 1
        self.asked.append(max_records or 0)
        if self.out_of_range_at is not None and self.fetches >= self.out_of_range_at:
            raise OffsetOutOfRangeError({tps[0]: self.pos[tps[0].partition]})
        left = min(max_records or self.per_fetch, self.per_fetch)
        out = {}
        turn = self.fetches % len(tps)  # partitions take turns to go first
        for tp in tps[turn:] + tps[:turn]:
            p = tp.partition
            self.fetched.add(p)
            values = self.log[p][self.pos[p]:self.pos[p] + left]
            if values:
                out[tp] = [Record(v, self.pos[p] + i) for i, v in enumerate(values)]
                self.pos[p] += len(values)
                left -= len(values)
            if left <= 0:
                break
        return out

    def highwater(self, tp) -> int | None:
        return len(self.log[tp.partition]) if tp.partition in self.fetched else None

    async def end_offsets(self, tps):
        return {tp: len(self.log[tp.partition]) for tp in tps}

    async def beginning_offsets(self, tps):
        return {tp: 0 for tp in tps}

    async def stop(self) -> None:
        self.stopped = True


class FakeFe:
    """BeginTxn / CommitTxn / AbortTxn / ReportRoutineLoadTask; an abort clears every BE, as the FE's does."""

    def __init__(self, stores: dict[int, RowsetStore]) -> None:
        self.stores = stores
        self.begun: list[int] = []
        self.commits: list[frontend_pb2.CommitTxnRequest] = []
        self.aborts: list[frontend_pb2.AbortTxnRequest] = []
        self.reports: list[frontend_pb2.RoutineLoadTaskReport] = []
        self.segments_at_abort = 0

    async def BeginTxn(self, req, timeout=None):
        txn_id = 500 + len(self.begun)
        self.begun.append(txn_id)
        return frontend_pb2.BeginTxnResponse(txn_id=txn_id, target=target())

    async def CommitTxn(self, req, timeout=None):
        self.commits.append(req)
        return frontend_pb2.CommitTxnResponse(status="COMMITTED")

    async def AbortTxn(self, req, timeout=None):
        self.aborts.append(req)
        self.segments_at_abort = sum(len(segment_keys(s)) for s in self.stores.values())
        for rowsets in self.stores.values():
            rowsets.clear(req.txn_id)
        return frontend_pb2.AbortTxnResponse()

    async def ReportRoutineLoadTask(self, req, timeout=None):
        self.reports.append(req)
        return frontend_pb2.RoutineLoadTaskReportResponse()


def segment_keys(rowsets: RowsetStore) -> list[bytes]:
    db = rowsets._store.db
    return [k for k in db.keys(from_key=ROWSET_PREFIX) if k.startswith(ROWSET_PREFIX)]


class Cluster(LoadCoordinator):
    """Three BEs' rowset stores; this coordinator writes each replica into its BE's store."""

    def __init__(self, tmp_path, consumer_log: dict[int, list[bytes]]) -> None:
        self.stores: dict[int, RowsetStore] = {}
        self._db: list[BeStore] = []
        for be in BES:
            store = BeStore(str(tmp_path / f"be{be}"))
            tablets = TabletManager(store)
            tablets.create([TabletMeta(t, t * 10 + be, 1, 2, PARTITION, 1, "[]") for t in TABLETS])
            self.stores[be] = RowsetStore(store, tablets)
            self._db.append(store)
        self.fe = FakeFe(self.stores)
        super().__init__(lambda: 1, self.fe, self.stores[1], None)  # type: ignore[arg-type]
        self.log = consumer_log
        self.consumer: FakeConsumer | None = None
        self.sends: list[tuple[int, int]] = []  # (backend, consumed messages when it was sent)
        self.fail: dict[int, int] = {}  # backend -> fail from its n-th send on

    async def send(self, backend_id: int, address: str, txn_id: int, chunks) -> None:
        assert self.consumer is not None
        self.sends.append((backend_id, sum(self.consumer.pos.values())))
        if backend_id in self.fail and sum(1 for b, _ in self.sends if b == backend_id) >= self.fail[backend_id]:
            raise Unavailable(f"backend {backend_id} is down")
        self.stores[backend_id].write(txn_id, chunks)

    def start_consumer(self, per_fetch: int, out_of_range_at: int | None = None):
        async def start(brokers, props, group_id):
            self.consumer = FakeConsumer(self.log, per_fetch, out_of_range_at)
            return self.consumer
        return start

    def close(self) -> None:
        for store in self._db:
            store.close()


def task(max_filter_ratio: float = 1.0, start: int = 0, partitions: int = 2) -> backend_pb2.RoutineLoadTask:
    return backend_pb2.RoutineLoadTask(
        job_id=9, job_name="job", task_id="t1", label="job-t1", db="d", table="t",
        params=types_pb2.LoadParams(format="csv", where="v >= 0", max_filter_ratio=max_filter_ratio),
        broker_list=["127.0.0.1:9"], topic="events", start_offsets={p: start for p in range(partitions)},
        max_batch_interval_s=60, max_batch_rows=1_000_000, max_batch_size_bytes=100 * 1024 * 1024,
        consume_second=60, timeout_s=60)


async def run(tmp_path, log: dict[int, list[bytes]], write_buffer_size: int, req: backend_pb2.RoutineLoadTask,
              per_fetch: int = 7, fail: dict[int, int] | None = None, out_of_range_at: int | None = None) -> Cluster:
    cluster = Cluster(tmp_path, log)
    cluster.fail = fail or {}
    runner = RoutineLoadRunner(cluster, cluster.fe, write_buffer_size=write_buffer_size,  # type: ignore[arg-type]
                               start_consumer=cluster.start_consumer(per_fetch, out_of_range_at))
    await runner._run(req)
    assert cluster.consumer is not None and cluster.consumer.stopped
    return cluster


def split(values: list[bytes]) -> dict[int, list[bytes]]:
    return {0: values[0::2], 1: values[1::2]}


def publish(cluster: Cluster, version: int = 2) -> dict[int, tuple[str, int]]:
    """Publish the committed txn on the replicas that took it; each tablet's checksum (equal on all)."""
    commit = cluster.fe.commits[0]
    sums: dict[int, tuple[str, int]] = {}
    for info in commit.tablet_commit_infos:
        for be in info.backend_ids:
            assert cluster.stores[be].publish(commit.txn_id, info.tablet_id, version).ok
            got = cluster.stores[be].checksum(info.tablet_id, version)
            assert sums.setdefault(info.tablet_id, got) == got
    return sums


async def test_a_chunked_task_commits_the_same_attachment_and_rows_as_a_one_chunk_run(tmp_path):
    log = {0: messages(300)}  # one partition: the same order of rows however the fetches are cut
    one = await run(tmp_path / "one", log, 1 << 30, task(partitions=1))
    many = await run(tmp_path / "many", log, 64, task(partitions=1))
    try:
        assert len(one.fe.commits) == len(many.fe.commits) == 1 and not one.fe.aborts and not many.fe.aborts
        assert len(many.fe.begun) == 1  # one txn for the whole batch
        a1, a2 = (orjson.loads(c.fe.commits[0].attachment_json) for c in (one, many))
        a1.pop("task_execute_time_ms")
        a2.pop("task_execute_time_ms")
        assert a1 == a2
        assert a1["offsets"] == {"0": [0, 300]} and a1["eos"]
        assert a1["total_rows"] == 300 and a1["filtered_rows"] == 13 and a1["unselected_rows"] == 17
        assert a1["loaded_rows"] == 270 == many.fe.commits[0].loaded_rows
        # the samples number the rows of the whole batch, whichever chunk they were in
        numbers = [int(e["reason"].split(":")[0].removeprefix("row ")) for e in a2["error_samples"]]
        assert numbers == sorted(numbers) and numbers[-1] > 250
        assert publish(one) == publish(many)
        segments = [many.stores[1]._tablets.get(t).rowsets[-1][5] for t in TABLETS]
        assert all(n > 5 for n in segments), segments
        # written while consuming, not after: the first write left most of the batch unread
        assert many.sends[0][1] < 100
        # and no fetch turned more than a chunk's worth of records into objects at once
        # (64 bytes of 6- to 12-byte messages), where max_batch_rows alone would allow a million
        assert max(many.consumer.asked) <= 12 and one.consumer.asked[0] > 1000
    finally:
        one.close()
        many.close()


async def test_max_filter_ratio_over_the_whole_batch_aborts_and_clears_the_chunks_written(tmp_path):
    log = {0: messages(200, bad_from=140)}  # 60 of 200 bad, all in the last chunks: 0.3 > 0.2
    cluster = await run(tmp_path, log, 64, task(max_filter_ratio=0.2, partitions=1))
    try:
        assert not cluster.fe.commits
        assert [a.txn_id for a in cluster.fe.aborts] == cluster.fe.begun == [500]
        assert cluster.fe.segments_at_abort > 0  # the good chunks had been written...
        assert all(segment_keys(s) == [] for s in cluster.stores.values())  # ...and the abort cleared them
        report = cluster.fe.reports[-1]
        assert (report.outcome, report.error_kind, report.txn_id) == ("FAILED", "ERROR_ROWS", 500)
        assert "too many filtered rows in a batch: 60 of 191 (0.3141) > max_filter_ratio 0.2" in report.message
        assert report.error_samples and all(e.row.startswith("bad-row-") for e in report.error_samples)
        assert report.error_samples[0].reason.startswith("row 141:")  # numbered in the batch, not the chunk
    finally:
        cluster.close()


async def test_the_same_bad_rows_within_the_ratio_commit(tmp_path):
    log = split(messages(200, bad_from=140))
    cluster = await run(tmp_path, log, 64, task(max_filter_ratio=0.5))
    try:
        assert len(cluster.fe.commits) == 1 and not cluster.fe.aborts
        assert orjson.loads(cluster.fe.commits[0].attachment_json)["filtered_rows"] == 60
    finally:
        cluster.close()


async def test_a_replica_failing_mid_batch_misses_the_txn_but_the_quorum_commits(tmp_path):
    log = split(messages(300))
    cluster = await run(tmp_path, log, 64, task(), fail={3: 2})
    try:
        assert len(cluster.fe.commits) == 1
        infos = cluster.fe.commits[0].tablet_commit_infos
        assert sorted(i.tablet_id for i in infos) == list(TABLETS)
        assert all(list(i.backend_ids) == [1, 2] for i in infos)
        assert sum(1 for be, _ in cluster.sends if be == 3) == 2  # nothing more went to it after it failed
        assert len(publish(cluster)) == len(TABLETS)
    finally:
        cluster.close()


async def test_too_few_replicas_mid_batch_stops_the_task_and_aborts(tmp_path):
    log = split(messages(300))
    cluster = await run(tmp_path, log, 64, task(), fail={2: 3, 3: 3})
    try:
        assert not cluster.fe.commits and [a.txn_id for a in cluster.fe.aborts] == [500]
        report = cluster.fe.reports[-1]
        assert report.error_kind == "TOO_FEW_REPLICAS" and "reached 1 of the 2 replicas" in report.message
        assert sum(cluster.consumer.pos.values()) < 300  # it stopped consuming
        assert all(segment_keys(s) == [] for s in cluster.stores.values())
    finally:
        cluster.close()


async def test_no_data_begins_no_txn(tmp_path):
    cluster = await run(tmp_path, split(messages(300)), 64, task(start=150))
    try:
        assert cluster.fe.begun == [] and [r.outcome for r in cluster.fe.reports] == ["NO_DATA"]
    finally:
        cluster.close()


async def test_an_offset_out_of_range_after_some_chunks_aborts_their_txn(tmp_path):
    cluster = await run(tmp_path, split(messages(300)), 64, task(), out_of_range_at=10)
    try:
        assert cluster.fe.begun == [500] and [a.txn_id for a in cluster.fe.aborts] == [500]
        assert cluster.fe.segments_at_abort > 0 and not cluster.fe.commits
        assert cluster.fe.reports[-1].error_kind == "OFFSET_OUT_OF_RANGE"
    finally:
        cluster.close()


def test_now_is_the_batch_s_not_the_chunk_s():
    ticks = iter([1_700_000_000, 1_700_003_600])
    plan = compile_load(LoadSpec(columns="k, t = now()", timezone="UTC"),
                        [Column("k", parse_type("INT")), Column("t", parse_type("DATETIME"))],
                        clock=lambda: next(ticks))
    first = plan.parse_messages([b"1", b"2"])
    later = plan.parse_messages([b"3"], first_row=2)  # the same batch's next chunk
    assert {r[1] for r in first.rows + later.rows} == {"2023-11-14 22:13:20"}
    assert plan.parse_messages([b"4"]).rows == [(4, "2023-11-14 23:13:20")]  # the next batch
