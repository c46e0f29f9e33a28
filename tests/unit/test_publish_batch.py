"""Batch publish: consecutive committed versions publish in one round, one PublishVersion per BE.

Eight loads into one partition commit versions 2..9 while a publish is under way; the next round
takes all eight, in version order, instead of one a round. A version that misses its quorum holds
back the later versions of its partitions (they become visible in order), not other partitions.
"""

from __future__ import annotations

from common.gen.tabletsim.v1 import backend_pb2
from fe.txn.publish import Publisher
from fe.txn.state import SourceType, TxnStatus
from tests.unit.test_catalog import spec
from tests.unit.test_txn import Clock, infos, setup

STREAM = SourceType.BACKEND_STREAMING


class BatchStub:
    """A BE that publishes what it is sent, in order, except the txns in ``refuse``."""

    def __init__(self, be_id: int, calls: list, refuse: set[int]) -> None:
        self.be_id, self.calls, self.refuse = be_id, calls, refuse

    async def PublishVersion(self, request, timeout=None):
        self.calls.append((self.be_id, [(t.txn_id, t.tablet_id, t.version) for t in request.tablets]))
        return backend_pb2.PublishVersionResponse(results=[
            backend_pb2.PublishResult(tablet_id=t.tablet_id, txn_id=t.txn_id, ok=t.txn_id not in self.refuse,
                                      version=t.version if t.txn_id not in self.refuse else t.version - 1,
                                      row_count=1, data_size=10, version_count=2)
            for t in request.tablets])


class BatchClients:
    def __init__(self, refuse: set[int] | None = None) -> None:
        self.calls: list = []
        self.refuse = refuse or set()

    def stub(self, be_id: int) -> BatchStub:
        return BatchStub(be_id, self.calls, self.refuse)


async def _committed(tmp_path, tables: int = 1, loads: int = 8):
    journal, catalog, txns = await setup(tmp_path, Clock())
    catalog.create_database("d")
    made = [await catalog.create_table("d", spec(f"t{i}", buckets=2)) for i in range(tables)]
    out = []
    for n in range(loads):
        table = made[n % tables]
        txn, _, _ = txns.begin("d", table.name, f"l{n}", 60, "BE: 1", STREAM)
        txns.commit(txn.txn_id, infos(table), {}, 1)
        out.append(txn)
    return journal, catalog, txns, made, out


async def test_consecutive_versions_of_one_partition_publish_in_one_round(tmp_path):
    journal, catalog, txns, (table,), loads = await _committed(tmp_path)
    clients = BatchClients()
    publisher = Publisher(txns, catalog, catalog._backends, clients)
    assert [t.txn_id for t in publisher.ready()] == [loads[0].txn_id]  # the head alone
    assert publisher.ready_chain() == loads  # the head and every version after it, in order
    assert await publisher.publish_chain(loads) == 8
    assert all(t.status is TxnStatus.VISIBLE for t in loads)
    assert table.partitions[0].visible_version == 9
    assert len(clients.calls) == 3  # one call per BE for the eight txns
    for _be, tablets in clients.calls:
        versions = [v for _txn, _tablet, v in tablets]
        assert versions == sorted(versions) and len(tablets) == 8 * 2  # two tablets, in version order
    journal.close()


async def test_a_version_below_quorum_holds_back_the_later_versions_of_its_partition_only(tmp_path):
    journal, catalog, txns, tables, loads = await _committed(tmp_path, tables=2, loads=6)
    # loads alternate tables: t0 gets versions 2, 3, 4 (loads 0, 2, 4), t1 gets 2, 3, 4 (loads 1, 3, 5)
    clients = BatchClients(refuse={loads[2].txn_id})  # t0's version 3 misses its quorum everywhere
    publisher = Publisher(txns, catalog, catalog._backends, clients)
    assert sorted(t.txn_id for t in publisher.ready_chain()) == sorted(t.txn_id for t in loads)
    assert await publisher.run_once() == 4
    assert [t.status for t in loads] == [TxnStatus.VISIBLE, TxnStatus.VISIBLE, TxnStatus.COMMITTED,
                                         TxnStatus.VISIBLE, TxnStatus.COMMITTED, TxnStatus.VISIBLE]
    assert tables[0].partitions[0].visible_version == 2 and tables[1].partitions[0].visible_version == 4
    # the replicas come back: the held versions publish, in order, in the next round
    clients.refuse.clear()
    assert publisher.ready_chain() == [loads[2], loads[4]]
    assert await publisher.run_once() == 2
    assert all(t.status is TxnStatus.VISIBLE for t in loads) and tables[0].partitions[0].visible_version == 4
    journal.close()


async def test_a_round_is_bounded_and_takes_committed_txns_only(tmp_path):
    journal, catalog, txns, (table,), loads = await _committed(tmp_path, loads=3)
    nxt, _, _ = txns.begin("d", "t0", "later", 60, "BE: 1", STREAM)  # no version yet: still PREPARE
    publisher = Publisher(txns, catalog, catalog._backends, BatchClients())
    assert publisher.ready_chain(limit=2) == loads[:2]  # the limit bounds a round
    assert publisher.ready_chain() == loads  # the PREPARE txn has no version yet: not in the chain
    assert nxt.status is TxnStatus.PREPARE
    journal.close()


async def test_a_txn_that_loaded_nothing_becomes_visible(tmp_path):
    """A load whose rows were all filtered out (by WHERE, say) commits no tablet and touches no
    partition: it has no version to wait for, and publishes at once (it waited out its whole
    timeout and answered Publish Timeout before)."""
    journal, catalog, txns, (table,), loads = await _committed(tmp_path, loads=1)
    empty, _, _ = txns.begin("d", table.name, "nothing", 60, "BE: 1", STREAM)
    txns.commit(empty.txn_id, {}, {}, 0)
    assert not empty.partition_versions
    publisher = Publisher(txns, catalog, catalog._backends, BatchClients())
    assert empty in publisher.ready_chain()
    assert await publisher.run_once() == 2
    assert empty.status is TxnStatus.VISIBLE and loads[0].status is TxnStatus.VISIBLE
    journal.close()
