"""Load targets and the write quorum on both sides of a load (issue 12, 3.2).

The FE hands a coordinator only the replicas a write can count: NORMAL, not bad, on an alive
backend (StarRocks' OlapTableSink). The coordinator refuses before writing anything when a tablet
has fewer of them than its quorum (Unavailable: a routine load task then reports
TOO_FEW_REPLICAS and its job pauses), and whatever quorum it reaches the FE's commit check
reaches too. No processes: the FE's catalog in memory, the BE's writer with fake sends.
"""

from __future__ import annotations

import grpc
import pytest

from be.load.router import Router, columns_of
from be.load.writer import encode_tablet_rows, replicate
from common import quorum
from common.errors import Unavailable
from fe.catalog.model import ReplicaState, WriteQuorum
from fe.service.frontend import load_target
from fe.txn.state import SourceType, TxnStatus
from tests.unit.test_catalog import spec
from tests.unit.test_txn import Clock, setup

STREAM = SourceType.BACKEND_STREAMING


async def _cluster(tmp_path, quorum: str = "MAJORITY"):
    """3 BEs, a table of 2 tablets x 3 replicas; tablet 0's replica on BE 0 is a CLONE, tablet 1's
    replica on BE 1 is bad, and BE 2 is dead: one writable replica per tablet."""
    journal, catalog, txns = await setup(tmp_path, Clock())
    catalog.create_database("d")
    table = await catalog.create_table("d", spec("t", buckets=2, properties={"write_quorum": quorum}))
    bes = [b.backend_id for b in catalog._backends.all()]
    t0, t1 = table.partitions[0].tablets
    t0.replica_on(bes[0]).state = ReplicaState.CLONE
    t1.replica_on(bes[1]).bad = True
    catalog._backends.get(bes[2]).alive = False
    return journal, catalog, txns, table, bes


def _targets(target) -> dict[int, list[int]]:
    return {t.tablet_id: [r.backend_id for r in t.replicas] for p in target.partitions for t in p.tablets}


async def _write(target, dead: set[int]):
    """The coordinator's replicated write of 20 rows; sends to ``dead`` BEs fail as a dead peer's do.
    Returns (outcome or the error raised, the BEs written)."""
    router = Router(target, columns_of(target))
    by_tablet, _ = router.route([(i, "2024-01-01", f"m{i}") for i in range(20)])
    encoded = encode_tablet_rows(router, by_tablet)
    written: list[int] = []

    async def send(backend_id: int, address: str, txn_id: int, chunks) -> None:
        if backend_id in dead:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                       details="failed to connect to all addresses")
        written.append(backend_id)

    try:
        return await replicate(7, router, encoded, send, quorum=target.quorum), written
    except Unavailable as exc:
        return exc, written


async def test_targets_are_the_normal_replicas_on_alive_backends(tmp_path):
    journal, catalog, _, table, bes = await _cluster(tmp_path)
    t0, t1 = table.partitions[0].tablets
    target = load_target(catalog.db("d"), table, catalog._backends)
    assert _targets(target) == {t0.tablet_id: [bes[1]], t1.tablet_id: [bes[0]]}
    assert target.quorum == 2 and target.replication_num == 3

    # back to health: every replica is a target again
    t0.replica_on(bes[0]).state = ReplicaState.NORMAL
    t1.replica_on(bes[1]).bad = False
    catalog._backends.get(bes[2]).alive = True
    target = load_target(catalog.db("d"), table, catalog._backends)
    assert _targets(target) == {t0.tablet_id: bes, t1.tablet_id: bes}
    journal.close()


async def test_below_quorum_the_coordinator_refuses_before_writing(tmp_path):
    """MAJORITY of 3 with one writable replica per tablet: the coordinator counted the CLONE and
    the bad replica, reached 2 of 2 and the FE refused its commit (an OTHER error, retried every
    second). Now it refuses first, names the tablet and writes nothing."""
    journal, catalog, txns, table, bes = await _cluster(tmp_path)
    target = load_target(catalog.db("d"), table, catalog._backends)
    error, written = await _write(target, dead={bes[2]})
    assert isinstance(error, Unavailable), error
    assert "reached 1 of the 2 replicas its write quorum needs" in str(error)
    assert "1 of its 3 replicas" in str(error) and "NORMAL on an alive backend" in str(error)
    assert written == []
    journal.close()


@pytest.mark.parametrize("quorum", ["ONE", "MAJORITY", "ALL"])
async def test_the_commit_check_agrees_with_the_coordinators_count(tmp_path, quorum):
    """What the coordinator's count lets through, the FE's commit check accepts; what it refuses,
    it refuses before writing (one writable replica per tablet: only ONE loads)."""
    journal, catalog, txns, table, bes = await _cluster(tmp_path, quorum)
    txn, db, _ = txns.begin("d", "t", "l", 60, "BE: 1", STREAM)
    target = load_target(db, table, catalog._backends)
    outcome, written = await _write(target, dead={bes[2]})
    if isinstance(outcome, Unavailable):
        assert quorum != "ONE" and written == [], outcome
    else:
        txns.commit(txn.txn_id, {i.tablet_id: list(i.backend_ids) for i in outcome.commit_infos}, {}, 20)
        assert quorum == "ONE" and txn.status is TxnStatus.COMMITTED
        assert sorted(written) == sorted([bes[0], bes[1]])
    journal.close()


def test_one_definition_of_the_quorum_and_of_the_replicas_that_count():
    assert [quorum.needed(q, n) for q in ("ONE", "MAJORITY", "ALL") for n in (1, 2, 3, 5)] == [
        1, 1, 1, 1, 1, 2, 2, 3, 1, 2, 3, 5]
    assert all(WriteQuorum(q).needed(n) == quorum.needed(q, n) for q in quorum.WRITE_QUORUMS for n in range(1, 8))
    with pytest.raises(ValueError, match="invalid write_quorum 'SOME': allowed values are ONE, MAJORITY, ALL"):
        quorum.needed("SOME", 3)
    assert quorum.counts(ReplicaState.NORMAL.value, bad=False)
    assert not quorum.counts(ReplicaState.CLONE.value, bad=False)
    assert not quorum.counts(ReplicaState.DECOMMISSION.value, bad=False)
    assert not quorum.counts(ReplicaState.NORMAL.value, bad=True)
    assert quorum.writable(ReplicaState.NORMAL.value, False, backend_alive=True)
    assert not quorum.writable(ReplicaState.NORMAL.value, False, backend_alive=False)
