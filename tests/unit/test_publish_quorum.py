"""Publish counts the write quorum the commit used, not the table's current one (issue 12, 3.1).

A txn committed with one replica under ONE must still publish after ALTER ... write_quorum = ALL,
live, after a replay of the edit log and after an image; a commit record written before the
quorum was recorded falls back to the table's current quorum. Fake BEs answer PublishVersion.
"""

from __future__ import annotations

from common.gen.tabletsim.v1 import backend_pb2
from fe.txn.publish import Publisher
from fe.txn.state import SourceType, TransactionState, TxnStatus
from tests.unit.test_catalog import spec
from tests.unit.test_txn import Clock, infos, setup

STREAM = SourceType.BACKEND_STREAMING


class PublishStub:
    """A BE that publishes every tablet it is sent at the requested version."""

    def __init__(self, be_id: int, calls: list[tuple[int, int]]) -> None:
        self.be_id, self.calls = be_id, calls

    async def PublishVersion(self, request, timeout=None):
        self.calls.append((self.be_id, request.txn_id))
        return backend_pb2.PublishVersionResponse(results=[
            backend_pb2.PublishResult(tablet_id=t.tablet_id, ok=True, version=t.version, row_count=1,
                                      data_size=10, version_count=2)
            for t in request.tablets])


class PublishClients:
    """BackendClients for the publisher: every BE answers; ``calls`` logs (backend, txn)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def stub(self, be_id: int) -> PublishStub:
        return PublishStub(be_id, self.calls)


def publisher(txns, catalog, clients: PublishClients) -> Publisher:
    return Publisher(txns, catalog, catalog._backends, clients)


async def _committed_under_one_then_all(tmp_path, clock: Clock):
    journal, catalog, txns = await setup(tmp_path, clock)
    catalog.create_database("d")
    table = await catalog.create_table("d", spec("t", buckets=2))
    bes = [b.backend_id for b in catalog._backends.all()]
    catalog.alter_table("d", "t", {"write_quorum": "ONE"})
    txn, _, _ = txns.begin("d", "t", "one", 60, "BE: 1", STREAM)
    txns.commit(txn.txn_id, infos(table, bes[:1]), {}, 5)
    catalog.alter_table("d", "t", {"write_quorum": "ALL"})
    return journal, catalog, txns, table, txn


async def test_a_commit_under_one_publishes_after_alter_to_all(tmp_path):
    clock = Clock()
    journal, catalog, txns, table, txn = await _committed_under_one_then_all(tmp_path, clock)
    clients = PublishClients()
    assert await publisher(txns, catalog, clients).run_once() == 1
    assert txn.status is TxnStatus.VISIBLE and table.partitions[0].visible_version == 2
    assert txn.quorum == 1 and table.quorum == 3

    # the next version of the partition is no longer stuck behind it; it needs ALL now
    bes = [b.backend_id for b in catalog._backends.all()]
    nxt, _, _ = txns.begin("d", "t", "all", 60, "BE: 1", STREAM)
    txns.commit(nxt.txn_id, infos(table, bes), {}, 5)
    assert await publisher(txns, catalog, clients).run_once() == 1
    assert nxt.status is TxnStatus.VISIBLE and table.partitions[0].visible_version == 3
    assert nxt.quorum == 3
    journal.close()


async def test_the_recorded_quorum_survives_replay_and_image(tmp_path):
    clock = Clock()
    journal, catalog, txns, table, txn = await _committed_under_one_then_all(tmp_path, clock)
    image = txns.dump()
    journal.close()

    journal2, catalog2, txns2 = await setup(tmp_path, clock)  # replays the edit log
    assert txns2.get(txn.txn_id).status is TxnStatus.COMMITTED
    assert await publisher(txns2, catalog2, PublishClients()).run_once() == 1
    assert txns2.get(txn.txn_id).status is TxnStatus.VISIBLE
    journal2.close()

    journal3, catalog3, txns3 = await setup(tmp_path / "image", clock)
    catalog3.load(catalog.dump())
    txns3.load(image)  # as an FE that starts from an image taken while the txn was COMMITTED
    assert await publisher(txns3, catalog3, PublishClients()).run_once() == 1
    assert txns3.get(txn.txn_id).status is TxnStatus.VISIBLE
    journal3.close()


async def test_an_old_commit_record_without_a_quorum_uses_the_tables_current_one(tmp_path):
    clock = Clock()
    journal, catalog, txns = await setup(tmp_path, clock)
    catalog.create_database("d")
    table = await catalog.create_table("d", spec("t", buckets=2))
    bes = [b.backend_id for b in catalog._backends.all()]
    catalog.alter_table("d", "t", {"write_quorum": "ALL"})
    # txn.begin and txn.commit records as an FE wrote them before the quorum was kept: one
    # replica took the rows
    begun = TransactionState(txn_id=catalog._ids.next(), db_id=catalog.db("d").db_id, table_id=table.table_id,
                             label="old", coordinator="BE: 1", source_type=STREAM, timeout_ms=60_000,
                             prepare_time_ms=clock.ms)
    journal.log("txn.begin", {k: v for k, v in begun.to_dict().items() if k != "quorum"})
    txn = txns.get(begun.txn_id)
    partition = table.partitions[0]
    journal.log("txn.commit", {
        "txn_id": txn.txn_id, "time_ms": clock.ms,
        "partition_versions": [[partition.partition_id, 2]],
        "tablet_backends": [[t, b] for t, b in infos(table, bes[:1]).items()],
        "error_replicas": [], "attachment": {}, "loaded_rows": 5,
    })
    assert txn.status is TxnStatus.COMMITTED
    clients = PublishClients()
    assert await publisher(txns, catalog, clients).run_once() == 0  # ALL of 3, one took the rows
    assert txn.status is TxnStatus.COMMITTED and clients.calls
    catalog.alter_table("d", "t", {"write_quorum": "ONE"})
    assert await publisher(txns, catalog, clients).run_once() == 1
    assert txn.status is TxnStatus.VISIBLE and txn.quorum == 0

    # an image entry without the field loads too
    old = {k: v for k, v in txn.to_dict().items() if k != "quorum"}
    assert TransactionState.from_dict(old).quorum == 0
    journal.close()

