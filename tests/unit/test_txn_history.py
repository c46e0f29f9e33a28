"""Bounded transaction history: running and finished txns apart, cleaning by age and count,
replay equality, label reuse, the running-txn limit, and publish/expiry that never scan history."""

from __future__ import annotations

from collections import OrderedDict

import pytest

from common.errors import AlreadyExists, FailedPrecondition
from fe.txn.manager import TransactionManager
from fe.txn.publish import Publisher
from fe.txn.state import SourceType, TxnStatus
from tests.unit.test_catalog import FakeClients, build, spec
from tests.unit.test_txn import Clock, infos, setup

STREAM = SourceType.BACKEND_STREAMING


def visible(txns: TransactionManager, table, label: str, clock: Clock):
    """One stream load txn, begun, committed and published (finish time = the clock)."""
    txn, _, _ = txns.begin("d", "t", label, 60, "BE: 1", STREAM)
    txns.commit(txn.txn_id, infos(table), {}, 1)
    version = next(iter(txn.partition_versions.values()))
    txns.mark_visible(txn.txn_id, [(t, be, version, 1, 1) for t, bes in txn.tablet_backends.items()
                                   for be in bes], [])
    return txn


def aborted(txns: TransactionManager, label: str):
    txn, _, _ = txns.begin("d", "t", label, 60, "BE: 1", STREAM)
    txns.abort(txn.txn_id, "test")
    return txn


def state_of(txns: TransactionManager, db_id: int, labels: list[str]) -> tuple:
    """Everything the manager answers about a database, in a comparable form."""
    return (
        [t.to_dict() for t in txns.of_db(db_id)],
        txns.dump(),
        txns.counts(db_id),
        sorted(t.txn_id for t in txns.running()),
        {label: (t.txn_id if (t := txns.by_label(db_id, label)) else None) for label in labels},
    )


async def _table(tmp_path, clock):
    journal, catalog, txns = await setup(tmp_path, clock)
    catalog.create_database("d")
    table = await catalog.create_table("d", spec("t", buckets=1))
    return journal, catalog, txns, table


async def test_running_and_finished_are_kept_apart(tmp_path):
    clock = Clock()
    _, catalog, txns, table = await _table(tmp_path, clock)
    db_id = catalog.db("d").db_id
    prepare, _, _ = txns.begin("d", "t", "p", 60, "BE: 1", STREAM)
    committed, _, _ = txns.begin("d", "t", "c", 60, "BE: 1", STREAM)
    txns.commit(committed.txn_id, infos(table), {}, 1)
    done = visible(txns, table, "v", clock)
    gone = aborted(txns, "a")
    assert {t.txn_id for t in txns.running()} == {prepare.txn_id, committed.txn_id}
    assert [t.txn_id for t in txns.with_status(TxnStatus.COMMITTED)] == [committed.txn_id]
    assert [t.txn_id for t in txns.with_status(TxnStatus.VISIBLE)] == [done.txn_id]
    assert txns.counts(db_id) == (2, 2)
    # SHOW TRANSACTION lists both kinds
    assert [t.txn_id for t in txns.of_db(db_id)] == sorted(
        [prepare.txn_id, committed.txn_id, done.txn_id, gone.txn_id])
    assert txns.by_label(db_id, "a").txn_id == gone.txn_id and txns.by_label(db_id, "nope") is None


async def test_clean_by_count_drops_the_oldest_finished_first_and_frees_their_labels(tmp_path):
    clock = Clock()
    journal, catalog, txns, table = await _table(tmp_path, clock)
    db_id = catalog.db("d").db_id
    catalog._config.set("label_keep_max_num", "4")
    first, _, _ = txns.begin("d", "t", "l0", 60, "BE: 1", STREAM)  # begun first, finishes last
    finished = []
    for i in range(1, 5):
        clock.ms += 1000
        finished.append(visible(txns, table, f"l{i}", clock) if i % 2 else aborted(txns, f"l{i}"))
    running, _, _ = txns.begin("d", "t", "run", 60, "BE: 1", STREAM)
    clock.ms += 1000
    txns.abort(first.txn_id, "late")  # finish order: l1, l2, l3, l4, l0
    assert txns.counts(db_id) == (1, 5)
    with pytest.raises(AlreadyExists):
        txns.begin("d", "t", "l1", 60, "BE: 1", STREAM)

    # 6 txns, 4 kept: the two that finished first go, although l0 has the smallest id
    assert txns.clean_finished() == 2
    kept = [t.label for t in txns.of_db(db_id)]
    assert kept == ["l0", "l3", "l4", "run"]
    assert txns.find(finished[0].txn_id) is None and txns.by_label(db_id, "l2") is None
    assert txns.get(running.txn_id).status is TxnStatus.PREPARE  # running txns are never cleaned
    assert txns.clean_finished() == 0

    # a cleaned label may be used again; the kept ones may not
    again, _, _ = txns.begin("d", "t", "l1", 60, "BE: 1", STREAM)
    assert again.txn_id != finished[0].txn_id and txns.by_label(db_id, "l1") is again
    with pytest.raises(AlreadyExists, match="status \\[VISIBLE\\]"):
        txns.begin("d", "t", "l3", 60, "BE: 1", STREAM)


async def test_clean_by_age_stops_at_the_first_young_one(tmp_path):
    clock = Clock()
    _, catalog, txns, table = await _table(tmp_path, clock)
    db_id = catalog.db("d").db_id
    catalog._config.set("label_keep_max_second", "10")
    a = visible(txns, table, "a", clock)
    clock.ms += 5_000
    b = aborted(txns, "b")
    clock.ms += 15_000
    c = visible(txns, table, "c", clock)
    clock.ms += 1_000  # a is 21 s old, b 16 s, c 1 s
    assert txns.clean_finished() == 2
    assert [t.txn_id for t in txns.of_db(db_id)] == [c.txn_id]
    assert txns.find(a.txn_id) is None and txns.find(b.txn_id) is None
    clock.ms += 10_001
    assert txns.clean_finished() == 1 and txns.counts(db_id) == (0, 0)
    assert txns.begin("d", "t", "a", 60, "BE: 1", STREAM)[0].status is TxnStatus.PREPARE


async def test_count_bound_is_per_database(tmp_path):
    clock = Clock()
    _, catalog, txns, table = await _table(tmp_path, clock)
    catalog.create_database("e")
    await catalog.create_table("e", spec("t", buckets=1))
    catalog._config.set("label_keep_max_num", "2")
    for i in range(3):
        visible(txns, table, f"d{i}", clock)
    other, _, _ = txns.begin("e", "t", "e0", 60, "BE: 1", STREAM)
    txns.abort(other.txn_id, "test")
    assert txns.clean_finished() == 1
    assert txns.counts(catalog.db("d").db_id) == (0, 2) and txns.counts(catalog.db("e").db_id) == (0, 1)


@pytest.mark.parametrize("image", [False, True])
async def test_live_path_and_replay_give_the_same_history(tmp_path, image):
    clock = Clock()
    journal, catalog, txns, table = await _table(tmp_path, clock)
    db_id = catalog.db("d").db_id
    catalog._config.set("label_keep_max_num", "3")
    labels = []
    for i in range(9):
        clock.ms += 1000
        label = f"l{i}"
        labels.append(label)
        if i % 3 == 0:
            txns.begin("d", "t", label, 60, "BE: 1", STREAM)  # stays PREPARE
        elif i % 3 == 1:
            visible(txns, table, label, clock)
        else:
            aborted(txns, label)
        if i == 4:
            assert txns.clean_finished() == 2  # 2 running + 3 finished, 3 kept: l1 and l2 go
            if image:
                journal.checkpoint()
    first = aborted(txns, "twice")
    second = aborted(txns, "twice")
    labels += ["twice", "x1", "x2"]
    assert txns.clean_finished() == 6  # 3 running + 6 finished, 3 kept: every finished one goes
    assert txns.by_label(db_id, "twice") is None
    third, _, _ = txns.begin("d", "t", "twice", 60, "BE: 1", STREAM)
    assert third.txn_id not in (first.txn_id, second.txn_id)
    x1 = visible(txns, table, "x1", clock)
    x2 = aborted(txns, "x2")
    live = state_of(txns, db_id, labels)
    live_journal = journal.dump()
    records = journal._editlog.last_seq
    journal.close()

    journal2, catalog2, txns2 = await setup(tmp_path, clock)
    assert journal2.dump() == live_journal
    assert state_of(txns2, db_id, labels) == live
    assert (journal2.replayed < records) if image else (journal2.replayed == records)
    # cleaning after the restart follows the finish order of before it
    catalog2._config.set("label_keep_max_num", "5")  # 4 running + x1 + x2
    assert txns2.clean_finished() == 1
    assert txns2.find(x1.txn_id) is None and txns2.get(x2.txn_id).status is TxnStatus.ABORTED
    assert txns2.counts(db_id) == (4, 1)


async def test_max_running_txn_num_per_db_refuses_begin_and_loses_nothing(tmp_path):
    clock = Clock()
    journal, catalog, txns, table = await _table(tmp_path, clock)
    db_id = catalog.db("d").db_id
    catalog._config.set("max_running_txn_num_per_db", "2")
    a, _, _ = txns.begin("d", "t", "a", 60, "BE: 1", STREAM)
    b, _, _ = txns.begin("d", "t", "b", 60, "BE: 1", STREAM)
    txns.commit(b.txn_id, infos(table), {}, 1)  # COMMITTED still runs
    before = journal.dump()
    with pytest.raises(FailedPrecondition,
                       match=rf"^current running txns on db {db_id} is 2, larger than limit 2 "):
        txns.begin("d", "t", "c", 60, "BE: 1", STREAM)
    assert journal.dump() == before  # refused before any record: nothing begun, nothing to clean up
    assert txns.by_label(db_id, "c") is None
    # routine load tasks are neither refused nor counted (as in StarRocks: the number of tasks per
    # BE bounds them)
    rl, _, _ = txns.begin("d", "t", "job-task", 60, "BE: 1", SourceType.ROUTINE_LOAD_TASK)
    assert txns.counts(db_id) == (2, 0) and len(txns.running()) == 3
    txns.abort(a.txn_id, "done")
    c, _, _ = txns.begin("d", "t", "c", 60, "BE: 1", STREAM)  # the same label, retried, goes through
    assert c.status is TxnStatus.PREPARE and txns.counts(db_id) == (2, 1)
    txns.abort(rl.txn_id, "done")
    assert txns.counts(db_id) == (2, 2)
    # the limit is dynamic and the count survives a restart
    journal.close()
    _, catalog2, txns2 = await setup(tmp_path, clock)
    assert txns2.counts(db_id) == (2, 2)
    with pytest.raises(FailedPrecondition, match="larger than limit 2"):
        txns2.begin("d", "t", "e", 60, "BE: 1", STREAM)
    catalog2._config.set("max_running_txn_num_per_db", "3")
    assert txns2.begin("d", "t", "e", 60, "BE: 1", STREAM)[0].status is TxnStatus.PREPARE


class NoScanDict(dict):
    """A dict that may be read by key but not iterated: proves a code path never scans it."""

    def _scan(self, *args):
        raise AssertionError("a finished-transaction index was scanned")

    __iter__ = keys = values = items = _scan


class NoScanOrderedDict(OrderedDict):
    def _scan(self, *args):
        raise AssertionError("a database's finished transactions were scanned")

    __iter__ = keys = values = items = __reversed__ = _scan


async def test_publish_and_expiry_never_visit_finished_txns(tmp_path):
    clock = Clock()
    journal, catalog, txns, table = await _table(tmp_path, clock)
    db = catalog.db("d")
    partition = table.partitions[0]
    base = {"db_id": db.db_id, "table_id": table.table_id, "coordinator": "BE: 1",
            "source_type": STREAM.value, "timeout_ms": 60_000, "prepare_time_ms": clock.ms,
            "commit_time_ms": clock.ms, "publish_time_ms": clock.ms, "finish_time_ms": clock.ms, "reason": "",
            "partition_versions": [], "tablet_backends": [], "error_replicas": [], "attachment": {},
            "loaded_rows": 0}
    history = [{**base, "txn_id": 1_000_000 + i, "label": f"old-{i}",
                "status": (TxnStatus.VISIBLE if i % 2 else TxnStatus.ABORTED).value} for i in range(100_000)]
    txns.load({"txns": history})  # as an image holding 100k finished txns
    assert txns.counts(db.db_id) == (0, 100_000)
    stale, _, _ = txns.begin("d", "t", "stale", 5, "BE: 1", STREAM)
    ready, _, _ = txns.begin("d", "t", "ready", 60, "BE: 1", STREAM)
    txns.commit(ready.txn_id, infos(table), {}, 1)
    waiting, _, _ = txns.begin("d", "t", "waiting", 60, "BE: 1", STREAM)
    txns.commit(waiting.txn_id, infos(table), {}, 1)

    txns._txns = NoScanDict(txns._txns)
    txns._final = NoScanDict({k: NoScanOrderedDict(v) for k, v in txns._final.items()})
    publisher = Publisher(txns, catalog, catalog._backends, FakeClients())
    assert [t.txn_id for t in publisher.ready()] == [ready.txn_id]  # the next version in line only
    assert partition.visible_version == 1
    clock.ms += 6_000
    assert txns.abort_expired() == [stale.txn_id]
    assert txns.counts(db.db_id) == (2, 100_001)
    assert txns.by_label(db.db_id, "old-7").status is TxnStatus.VISIBLE  # label lookups stay O(1)
    with pytest.raises(AlreadyExists):
        txns.begin("d", "t", "old-7", 60, "BE: 1", STREAM)


def test_the_new_settings_have_starrocks_names_and_defaults(tmp_path):
    journal, catalog = build(tmp_path, FakeClients())
    assert catalog._config.label_keep_max_num == 1000
    assert catalog._config.max_running_txn_num_per_db == 1000
    journal.close()
