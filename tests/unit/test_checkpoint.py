"""Checkpoints off the event loop: the snapshot is taken on the loop at one seq, encoded and
written by a worker thread while records go on being appended, and replay (image + tail) gives
the same state. Also the image encoder and the file layout."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time

import orjson
import pytest

from fe.catalog.catalog import Catalog
from fe.persist.editlog import EditLog, encode_chunks, release
from fe.persist.ids import IdAllocator
from fe.persist.journal import Journal
from fe.routineload.manager import RoutineLoadManager
from fe.system.backends import BackendRegistry
from fe.system.dynconfig import DynamicConfig
from fe.txn.manager import TransactionManager
from fe.txn.state import SourceType
from tests.unit.test_catalog import FakeClients, alive_backends, spec

WALL_MS = 1_700_000_000_000


class Node:
    """Every journaled domain of an FE, wired as fe/node.py wires them, on fake BEs."""

    def __init__(self, path, checkpoint_every: int = 1000, bes: int = 3) -> None:
        self.every = checkpoint_every
        self.journal = Journal(EditLog(str(path)), lambda: self.every)
        self.ids = IdAllocator(self.journal)
        self.config = DynamicConfig(self.journal)
        self.backends = BackendRegistry(self.journal, self.ids, heartbeat_timeout_s=lambda: 5,
                                        wall_ms=lambda: WALL_MS, mono=lambda: 1.0)
        self.catalog = Catalog(self.journal, self.ids, self.backends, FakeClients(), self.config,
                               lambda: WALL_MS)
        self.txns = TransactionManager(self.journal, self.ids, self.catalog, self.backends, self.config,
                                       lambda: WALL_MS)
        self.routine = RoutineLoadManager(self.journal, self.ids, self.catalog, self.txns, self.config,
                                          lambda: WALL_MS)
        for name, domain in (("ids", self.ids), ("config", self.config), ("backend", self.backends),
                             ("catalog", self.catalog), ("txn", self.txns), ("routineload", self.routine)):
            self.journal.register(name, domain)
        self.journal.replay()
        alive_backends(self.backends, bes)


def infos(table):
    return {t.tablet_id: [r.backend_id for r in t.replicas] for p in table.partitions for t in p.tablets}


async def workload(node: Node, round_: int) -> None:
    """A bit of everything that changes metadata in place: loads, publish, aborts, replica
    updates, DDL, job state and progress, backends, config, label cleaning."""
    cat, txns = node.catalog, node.txns
    if "d" not in [db.name for db in cat.databases()]:
        cat.create_database("d")
        await cat.create_table("d", spec("t", buckets=2))
        node.routine.create("d", "j", "t", "", "", {},
                            {"kafka_broker_list": "127.0.0.1:9092", "kafka_topic": "x"})
    _, table = cat.table("d", "t")
    for i in range(3):
        txn, _, _ = txns.begin("d", "t", f"r{round_}-{i}", 60, "BE: 1", SourceType.BACKEND_STREAMING)
        if i == 2:
            txns.abort(txn.txn_id, "test")
            continue
        txns.commit(txn.txn_id, infos(table), {"note": [round_, i]}, 5)
        version = next(iter(txn.partition_versions.values()))
        txns.mark_visible(txn.txn_id, [(t, be, version, 5, 50) for t, bes in txn.tablet_backends.items()
                                       for be in bes], [])
    tablet = table.partitions[0].tablets[0]
    cat.update_replicas([{"tablet_id": tablet.tablet_id, "backend_id": tablet.replicas[0].backend_id,
                          "last_failed_version": 10 + round_}])
    cat.alter_table("d", "t", {"write_quorum": "one" if round_ % 2 else "majority"})
    job = node.routine.job("d", "j")
    node.routine.pause("d", "j")
    node.routine.resume("d", "j")
    node.routine.init_progress(job, [0], {0: 100 * round_})
    node.config.set("tablet_sched_slot_num_per_path", str(2 + round_ % 3))
    node.config.set("label_keep_max_num", "4")
    txns.clean_finished()
    await cat.create_table("d", spec(f"extra{round_}", buckets=1))


def test_encoded_pieces_are_orjson_byte_for_byte_and_release_empties():
    rng = random.Random(7)

    def value(depth):
        r = rng.random()
        if depth > 4 or r < 0.3:
            return rng.choice([0, -1, 2**40, 1.25, "", "é\"\\", None, True, False])
        if r < 0.65:
            return [value(depth + 1) for _ in range(rng.randint(0, 25))]
        return {f"k{i}": value(depth + 1) for i in range(rng.randint(0, 6))}

    for budget in (2, 40, 10**6):
        for _ in range(50):
            obj = value(0)
            pieces = list(encode_chunks(obj, budget))
            assert b"".join(pieces) == orjson.dumps(obj)
    big = {"a": [{"x": list(range(50))} for _ in range(500)], "b": {"c": [[1, 2]] * 300}}
    assert len(list(encode_chunks(big, 100))) > 100  # really in pieces
    release(big, 100)
    assert big == {} or all(not v for v in big.values())
    with pytest.raises(TypeError, match="Dict key must be str"):
        b"".join(encode_chunks({1: list(range(100))}, 10))


async def test_a_snapshot_does_not_change_when_the_state_moves_on(tmp_path):
    node = Node(tmp_path)
    await workload(node, 1)
    snapshot = node.journal.dump()
    before = orjson.dumps(snapshot)
    for round_ in range(2, 6):
        await workload(node, round_)
    assert orjson.dumps(snapshot) == before, "a dump() shares a container that an apply changes in place"
    assert orjson.dumps(node.journal.dump()) != before
    node.journal.close()


async def test_checkpoint_runs_in_a_worker_while_the_log_goes_on(tmp_path, monkeypatch):
    node = Node(tmp_path, checkpoint_every=10**9)
    await workload(node, 1)
    go = threading.Event()
    entered = threading.Event()
    writers: list[tuple[str, int]] = []
    real = EditLog.checkpoint

    def slow_checkpoint(self, state, seq):
        writers.append((threading.current_thread().name, seq))
        entered.set()
        assert go.wait(30), "the test never let the checkpoint finish"
        return real(self, state, seq)

    monkeypatch.setattr(EditLog, "checkpoint", slow_checkpoint)
    node.every = 5
    before = node.journal._editlog.last_seq
    await workload(node, 2)  # crosses the threshold: one checkpoint starts and blocks in the worker
    assert node.journal.checkpoint_running
    await workload(node, 3)  # many more records, threshold crossed again: no second checkpoint
    await workload(node, 4)
    # the worker writes the image once the records it covers are durable (the journal writer)
    assert await asyncio.to_thread(entered.wait, 30), "the checkpoint never started writing"
    assert len(writers) == 1
    name, image_seq = writers[0]
    assert name.startswith("fe-checkpoint") and name != threading.current_thread().name
    assert before < image_seq < node.journal._editlog.last_seq
    go.set()
    await node.journal.drain()
    assert not node.journal.checkpoint_running
    stats = node.journal.last_checkpoint
    assert stats.seq == image_seq and stats.image_bytes > 0
    await workload(node, 5)  # the next threshold starts the next checkpoint
    await node.journal.drain()
    assert len(writers) == 2
    last_image_seq = writers[1][1]
    live = node.journal.dump()
    records = node.journal._editlog.last_seq
    node.journal.close()

    assert os.listdir(tmp_path / "image") == [f"image.{last_image_seq}"]  # older images dropped
    node2 = Node(tmp_path)
    assert node2.journal.dump() == live
    assert node2.journal.replayed == records - last_image_seq
    node2.journal.close()


async def test_an_image_not_pointed_at_is_ignored_and_the_inline_image_still_loads(tmp_path):
    node = Node(tmp_path)
    await workload(node, 1)
    node.journal.checkpoint()
    await workload(node, 2)
    live = node.journal.dump()
    node.journal.close()
    # a crash between writing an image and pointing the log at it leaves a file nobody reads
    (tmp_path / "image" / "image.999999").write_bytes(b"{not json")
    (tmp_path / "image" / "image.1000000.part").write_bytes(b"")
    node2 = Node(tmp_path)
    assert node2.journal.dump() == live
    node2.journal.close()

    # an image stored inline in RocksDB (earlier versions) is read as before
    old = tmp_path / "old"
    log = EditLog(str(old))
    log.append("config.set", {"name": "heartbeat_timeout_second", "value": 9})
    from rocksdict import WriteBatch
    batch = WriteBatch(raw_mode=True)
    inline = {"seq": 1, "state": {"config": {"values": {"heartbeat_timeout_second": 7}}}}
    batch.put(b"image", orjson.dumps(inline))
    log._db.write(batch)
    log.append("config.set", {"name": "tablet_sched_slot_num_per_path", "value": 5})
    log.close()
    journal = Journal(EditLog(str(old)))
    config = DynamicConfig(journal)
    journal.register("config", config)
    journal.replay()
    assert (config.heartbeat_timeout_second, config.tablet_sched_slot_num_per_path) == (7, 5)
    assert journal.replayed == 1
    journal.close()


def catalog_image(backend_ids: list[int], tablets: int, replication_num: int, buckets: int = 1000) -> dict:
    """A catalog image of ``tablets`` tablets (tables of ``buckets`` buckets), as replay loads it."""
    next_id = 50_000_000
    tables = []
    for t in range(tablets // buckets):
        tablet_dicts = []
        for b in range(buckets):
            next_id += 1 + replication_num
            tablet_dicts.append({"tablet_id": next_id, "replicas": [
                {"replica_id": next_id - 1 - r, "backend_id": backend_ids[(b + r) % len(backend_ids)],
                 "version": 5, "last_success_version": 5, "last_failed_version": -1, "last_failed_time_ms": 0,
                 "state": "NORMAL", "bad": False, "data_size": 4096, "row_count": 100, "version_count": 3}
                for r in range(replication_num)]})
        next_id += 2
        tables.append({
            "table_id": next_id, "db_id": 40_000_000, "name": f"t{t}",
            "columns": [{"name": "id", "type": "BIGINT", "is_key": True, "nullable": False, "default": None}],
            "key_columns": ["id"], "distribution_columns": ["id"], "buckets": buckets,
            "replication_num": replication_num, "write_quorum": "MAJORITY", "partition_column": None,
            "partitions": [{"partition_id": next_id - 1, "name": f"t{t}", "lower": None, "upper": None,
                            "visible_version": 5, "visible_version_time_ms": WALL_MS, "next_version": 6,
                            "tablets": tablet_dicts}],
            "create_time_ms": WALL_MS,
        })
    return {"databases": [{"db_id": 40_000_000, "name": "big", "create_time_ms": WALL_MS, "tables": tables}]}


async def test_a_100k_tablet_checkpoint_keeps_the_loop_responsive(tmp_path):
    node = Node(tmp_path, checkpoint_every=10**9)
    node.catalog.load(catalog_image([b.backend_id for b in node.backends.all()], 100_000, 1))
    assert sum(1 for _ in node.catalog.tablet_locations()) == 100_000
    gaps: list[tuple[float, float]] = []  # (start, length) of each wait between two loop turns
    stop = asyncio.Event()

    async def ticker():
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append((last, now - last))
            last = now

    ticking = asyncio.create_task(ticker())
    warm_until = time.monotonic() + 5
    while len(gaps) < 10 and time.monotonic() < warm_until:  # the ticker measures before the checkpoint
        await asyncio.sleep(0.002)
    assert len(gaps) >= 10, "the loop ticker did not start"
    node.ids.next()  # journals an id batch now, so that the trigger below is a single record
    node.every = 1
    started = time.perf_counter()
    node.catalog.create_database("trigger")  # this record starts the checkpoint
    snapshot_taken = time.perf_counter()
    on_loop_s = snapshot_taken - started
    node.every = 10**9
    appended = 0
    deadline = time.monotonic() + 60
    while node.journal.checkpoint_running and time.monotonic() < deadline:
        node.config.set("tablet_sched_slot_num_per_path", str(2 + appended % 3))  # the log goes on
        appended += 1
        await asyncio.sleep(0.02)
    await node.journal.drain()
    stop.set()
    await ticking
    stats = node.journal.last_checkpoint
    worst = max(length for start, length in gaps if start >= snapshot_taken)
    print(f"\n100k tablets x 1 replica: snapshot {stats.snapshot_ms:.0f} ms on the loop "
          f"(the triggering record {on_loop_s * 1000:.0f} ms in all), "
          f"encode+write {stats.write_ms:.0f} ms in the worker, image {stats.image_bytes / 1e6:.1f} MB, "
          f"longest loop stall while the worker ran {worst * 1000:.0f} ms, {appended} records appended meanwhile")
    assert stats.image_bytes > 10_000_000 and appended > 0
    assert stats.snapshot_ms < 1000 and worst < 1.0
    live = node.journal.dump()
    node.journal.close()
    node2 = Node(tmp_path)
    assert node2.journal.dump() == live
    assert node2.journal.replayed == appended
    node2.journal.close()
