"""Catalog: DDL validation, placement, and live path == replay (fake BEs, no processes)."""

from __future__ import annotations

import pytest

from common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from fe.catalog.catalog import Catalog
from fe.catalog.ddl import ColumnSpec, PartitionSpec, TableSpec, check_table
from fe.catalog.model import WriteQuorum
from fe.catalog.placement import place_replicas
from fe.persist.editlog import EditLog
from fe.persist.ids import IdAllocator
from fe.persist.journal import Journal
from fe.system.backends import BackendRegistry, DiskInfo, Heartbeat
from fe.system.dynconfig import DynamicConfig

COLS = [ColumnSpec("id", "BIGINT", True), ColumnSpec("dt", "DATE"), ColumnSpec("v", "VARCHAR(8)", default="x")]


def spec(name="t", **kw) -> TableSpec:
    base = dict(name=name, columns=COLS, duplicate_key=["id"], distribution_columns=["id"], buckets=4)
    base.update(kw)
    return TableSpec(**base)


class FakeStub:
    def __init__(self, be_id: int, fail: set[int]) -> None:
        self.be_id, self.fail = be_id, fail
        self.tablets: set[int] = set()

    async def CreateTablets(self, request, timeout=None):
        if self.be_id in self.fail:
            raise ConnectionError(f"backend {self.be_id} is down")
        self.tablets |= {t.tablet_id for t in request.tablets}

    async def DropTablets(self, request, timeout=None):
        self.tablets -= set(request.tablet_ids)


class FakeClients:
    def __init__(self) -> None:
        self.fail: set[int] = set()
        self.stubs: dict[int, FakeStub] = {}

    def stub(self, be_id: int) -> FakeStub:
        return self.stubs.setdefault(be_id, FakeStub(be_id, self.fail))


def build(path, clients: FakeClients, bes: int = 3, more=None):
    """A journal with ids, config, backends and catalog (+ ``more(journal, catalog)`` domains), replayed."""
    journal = Journal(EditLog(str(path)))
    ids = IdAllocator(journal)
    config = DynamicConfig(journal)
    backends = BackendRegistry(journal, ids, heartbeat_timeout_s=lambda: 5, wall_ms=lambda: 1, mono=lambda: 1.0)
    catalog = Catalog(journal, ids, backends, clients, config, wall_ms=lambda: 1_700_000_000_000)
    for name, dom in (("ids", ids), ("config", config), ("backend", backends), ("catalog", catalog)):
        journal.register(name, dom)
    extra = more(journal, catalog) if more else None
    journal.replay()
    alive_backends(backends, bes)
    return (journal, catalog, extra) if more else (journal, catalog)


def alive_backends(backends: BackendRegistry, n: int) -> None:
    """``n`` BEs registered (or, after a replay, the ones already known) and heartbeating."""
    for i in range(n):
        if len(backends.all()) < n:
            bid = backends.register(0, "127.0.0.1", 9060 + i, 0, 1)
        else:
            bid = backends.all()[i].backend_id
        backends.heartbeat(Heartbeat(bid, "127.0.0.1", 9060 + i, 0, 1, DiskInfo(), 0))


def txns_and_routine(clock_ms):
    """A ``more`` for :func:`build`: the transaction manager and the routine load manager."""
    from fe.routineload.manager import RoutineLoadManager
    from fe.txn.manager import TransactionManager

    def more(journal, catalog):
        txns = TransactionManager(journal, catalog._ids, catalog, catalog._backends, catalog._config, clock_ms)
        journal.register("txn", txns)
        routine = RoutineLoadManager(journal, catalog._ids, catalog, txns, catalog._config, clock_ms)
        journal.register("routineload", routine)
        return txns, routine
    return more


def test_check_table_defaults_and_canonical_partitions():
    checked = check_table(spec(partition_column="dt", partitions=[
        PartitionSpec("p2", "2024-03-01"), PartitionSpec("p1", "2024-02-01"), PartitionSpec("pmax", "MAXVALUE"),
    ]))
    assert checked.replication_num == 3 and checked.write_quorum is WriteQuorum.MAJORITY
    assert [(p.name, p.lower, p.upper) for p in checked.partitions] == [
        ("p1", None, "2024-02-01"), ("p2", "2024-02-01", "2024-03-01"), ("pmax", "2024-03-01", None)]
    assert [c.is_key for c in checked.columns] == [True, False, False]
    assert checked.columns[0].nullable is False and checked.columns[1].nullable is True


@pytest.mark.parametrize("kw, message", [
    (dict(buckets=0), "invalid BUCKETS 0"),
    (dict(duplicate_key=["v"]), "DUPLICATE KEY columns must be the first columns"),
    (dict(duplicate_key=["zz"]), "DUPLICATE KEY column 'zz' does not exist"),
    (dict(distribution_columns=[]), "DISTRIBUTED BY HASH(columns) is required"),
    (dict(properties={"replication_num": "0"}), "'replication_num' = '0': must be an integer 1..32"),
    (dict(partition_column="dt", partitions=[PartitionSpec("a", "MAXVALUE"), PartitionSpec("b", "MAXVALUE")]),
     "ranges would overlap"),
    (dict(partition_column="dt", partitions=[PartitionSpec("a", "2024-13-01")]),
     "partition bound '2024-13-01' is not a valid DATE value"),
    (dict(partition_column="dt", partitions=[PartitionSpec("a", "2024-01-01", "2024-02-01")]),
     "lower bound '2024-02-01' must be less than upper bound '2024-01-01'"),
    (dict(partition_column="dt", partitions=[PartitionSpec("a", "2024-01-01"), PartitionSpec("a", "2024-02-01")]),
     "duplicate partition name 'a'"),
    (dict(partitions=[PartitionSpec("a", "1")]), "partitions were given without a partition column"),
    (dict(name="1bad"), "invalid table name '1bad'"),
    (dict(columns=[ColumnSpec("id", "FLOAT")], duplicate_key=["id"], distribution_columns=["id"]),
     "cannot be a key column"),
    (dict(columns=[*COLS, ColumnSpec("n", "INT", default="abc")]), "column 'n': invalid default value"),
])
def test_check_table_rejects(kw, message):
    with pytest.raises(InvalidArgument) as info:
        check_table(spec(**kw))
    assert message in str(info.value)


def test_placement_spreads_by_replica_count():
    placement = place_replicas(10, 3, {1: 0, 2: 0, 3: 0, 4: 0, 5: 0})
    assert all(len(set(bes)) == 3 for bes in placement)
    counts = {be: sum(be in bes for bes in placement) for be in range(1, 6)}
    assert counts == dict.fromkeys(range(1, 6), 6)
    # an already-loaded BE gets fewer new replicas
    placement = place_replicas(3, 1, {1: 5, 2: 0, 3: 0})
    assert placement == [[2], [3], [2]]
    with pytest.raises(FailedPrecondition, match="replication_num is 3 but only 2 alive backends"):
        place_replicas(1, 3, {1: 0, 2: 0})


async def test_live_path_and_replay_give_the_same_catalog(tmp_path):
    clients = FakeClients()
    journal, catalog = build(tmp_path, clients)
    catalog.create_database("d")
    await catalog.create_table("d", spec("a"))
    await catalog.create_table("d", spec("b", partition_column="dt", partitions=[
        PartitionSpec("p1", "2024-01-01"), PartitionSpec("p2", "MAXVALUE")], properties={"write_quorum": "one"}))
    await catalog.create_table("d", spec("c"))
    await catalog.drop_table("d", "c")
    catalog.alter_table("d", "a", {"write_quorum": "ALL"})
    catalog.create_database("e")
    await catalog.drop_database("e")
    live = journal.dump()
    assert {t for s in clients.stubs.values() for t in s.tablets} == {
        loc.tablet.tablet_id for loc in catalog.tablet_locations()}
    journal.close()

    journal2, catalog2 = build(tmp_path, FakeClients())
    assert journal2.dump() == live
    assert sorted(catalog2.db("d").tables) == ["a", "b"]
    assert catalog2.table("d", "a")[1].write_quorum is WriteQuorum.ALL
    loc = next(iter(catalog2.tablet_locations()))
    assert catalog2.location(loc.tablet.tablet_id).table.name in ("a", "b")


async def test_failed_backend_rolls_back_create_table(tmp_path):
    clients = FakeClients()
    journal, catalog = build(tmp_path, clients)
    catalog.create_database("d")
    failing = catalog._backends.all()[1].backend_id
    clients.fail.add(failing)
    with pytest.raises(Unavailable, match=f"backend {failing} could not create its 4 replicas"):
        await catalog.create_table("d", spec("t"))
    assert catalog.db("d").tables == {}
    assert all(not s.tablets for s in clients.stubs.values())
    with pytest.raises(NotFound):
        catalog.table("d", "t")
    clients.fail.clear()
    await catalog.create_table("d", spec("t"))
    with pytest.raises(AlreadyExists):
        await catalog.create_table("d", spec("t"))
