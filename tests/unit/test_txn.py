"""Transaction manager: labels, quorum at commit, versions, publish, abort, timeouts, replay."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from common.errors import AlreadyExists, FailedPrecondition, Unavailable
from fe.catalog.model import WriteQuorum
from fe.txn.manager import TransactionManager
from fe.txn.state import SourceType, TxnStatus
from tests.unit.test_catalog import FakeClients, build, spec


class Clock:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000


def with_txns(now_ms: Callable[[], int]) -> Callable:
    """``more`` for tests.unit.test_catalog.build: a TransactionManager on the clock ``now_ms``,
    registered as the journal's "txn" domain; build then returns (journal, catalog, txns)."""
    def more(journal, catalog):
        txns = TransactionManager(journal, catalog._ids, catalog, catalog._backends, catalog._config, now_ms)
        journal.register("txn", txns)
        return txns

    return more


async def setup(tmp_path, clock: Clock):
    return build(tmp_path, FakeClients(), more=with_txns(lambda: clock.ms))


def infos(table, backends=None):
    p = table.partitions[0]
    return {t.tablet_id: [r.backend_id for r in t.replicas if backends is None or r.backend_id in backends]
            for t in p.tablets}


async def test_commit_publish_abort_and_replay(tmp_path):
    clock = Clock()
    journal, catalog, txns = await setup(tmp_path, clock)
    catalog.create_database("d")
    table = await catalog.create_table("d", spec("t", buckets=2))
    bes = [b.backend_id for b in catalog._backends.all()]

    t1, _, _ = txns.begin("d", "t", "l1", 60, "BE: 1", SourceType.BACKEND_STREAMING)
    with pytest.raises(AlreadyExists, match=rf"relate to txn \[{t1.txn_id}\], status \[PREPARE\]"):
        txns.begin("d", "t", "l1", 60, "BE: 1", SourceType.BACKEND_STREAMING)
    txns.commit(t1.txn_id, infos(table, bes[:2]), {}, 10)
    assert t1.status is TxnStatus.COMMITTED and t1.partition_versions == {table.partitions[0].partition_id: 2}
    failed = [r for t in table.partitions[0].tablets for r in t.replicas if r.backend_id == bes[2]]
    assert all(r.last_failed_version == 2 for r in failed) and len(t1.error_replicas) == 2
    published = [(tid, be, 2, 5, 50, 2) for tid, bs in t1.tablet_backends.items() for be in bs]
    txns.mark_visible(t1.txn_id, published, [])
    assert t1.status is TxnStatus.VISIBLE and table.partitions[0].visible_version == 2
    assert all(r.version == 2 and r.version_count == 2
               for t in table.partitions[0].tablets for r in t.replicas if r.backend_id != bes[2])

    # below quorum: refused and aborted
    t2, _, _ = txns.begin("d", "t", "l2", 60, "BE: 1", SourceType.BACKEND_STREAMING)
    with pytest.raises(Unavailable, match="reached 1 of the 2 replicas its write quorum \\(MAJORITY\\) needs"):
        txns.commit(t2.txn_id, infos(table, bes[:1]), {}, 0)
    assert t2.status is TxnStatus.ABORTED and "commit refused" in t2.reason
    with pytest.raises(FailedPrecondition, match="is ABORTED; only a PREPARE transaction can be committed"):
        txns.commit(t2.txn_id, infos(table), {}, 0)
    # the label of an aborted txn can be used again
    t3, _, _ = txns.begin("d", "t", "l2", 60, "BE: 1", SourceType.BACKEND_STREAMING)
    catalog.alter_table("d", "t", {"write_quorum": "one"})
    assert table.write_quorum is WriteQuorum.ONE
    txns.commit(t3.txn_id, infos(table, bes[:1]), {}, 0)
    assert t3.partition_versions == {table.partitions[0].partition_id: 3}

    # timeouts abort only PREPARE txns
    t4, _, _ = txns.begin("d", "t", "l4", 5, "BE: 1", SourceType.BACKEND_STREAMING)
    clock.ms += 6_000
    assert txns.abort_expired() == [t4.txn_id]
    assert "timeout" in t4.reason and t3.status is TxnStatus.COMMITTED

    live = journal.dump()
    journal.close()
    journal2, catalog2, txns2 = await setup(tmp_path, clock)
    assert journal2.dump() == live
    assert txns2.get(t3.txn_id).status is TxnStatus.COMMITTED
    assert txns2.by_label(catalog2.db("d").db_id, "l2").txn_id == t3.txn_id


def test_state_transitions_are_a_closed_table():
    from fe.txn.state import TRANSITIONS

    assert TRANSITIONS[TxnStatus.PREPARE] == {TxnStatus.COMMITTED, TxnStatus.ABORTED}
    assert TRANSITIONS[TxnStatus.COMMITTED] == {TxnStatus.VISIBLE}
    assert TxnStatus.VISIBLE.is_final and TxnStatus.ABORTED.is_final and not TxnStatus.COMMITTED.is_final


async def test_publish_takes_the_version_count_the_backend_reports(tmp_path):
    """A BE's compactions lower its version count: the FE takes the count each publish answers
    with, never counts up on its own (an old record without it still counts up by one)."""
    clock = Clock()
    journal, catalog, txns = await setup(tmp_path, clock)
    catalog.create_database("d")
    table = await catalog.create_table("d", spec("t", buckets=1))
    bes = [b.backend_id for b in catalog._backends.all()]
    replicas = table.partitions[0].tablets[0].replicas
    for version, count in ((2, 2), (3, 3), (4, 1), (5, 2)):
        txn, _, _ = txns.begin("d", "t", f"l{version}", 60, "BE: 1", SourceType.BACKEND_STREAMING)
        txns.commit(txn.txn_id, infos(table, bes), {}, 1)
        txns.mark_visible(txn.txn_id, [(tid, be, version, 1, 1, count) for tid, bs in txn.tablet_backends.items()
                                       for be in bs], [])
        assert {r.version_count for r in replicas} == {count}
    txn, _, _ = txns.begin("d", "t", "old", 60, "BE: 1", SourceType.BACKEND_STREAMING)
    txns.commit(txn.txn_id, infos(table, bes), {}, 1)
    txns.mark_visible(txn.txn_id, [(tid, be, 6, 1, 1) for tid, bs in txn.tablet_backends.items() for be in bs], [])
    assert {r.version_count for r in replicas} == {3}
    journal.close()
