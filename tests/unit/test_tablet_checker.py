"""TabletChecker: statuses, priorities, the repair delay, hints and the fast path."""

import random
import time

import pytest

from common.coltypes import Column, ColumnType
from fe.catalog.model import Partition, Replica, ReplicaState, Table, Tablet, WriteQuorum
from fe.clone.checker import TabletChecker, repair_priority
from fe.clone.sched_ctx import BackendView, Priority, SchedConfig, TabletStatus
from fe.clone.sim import SimCluster

S = TabletStatus
P = Priority
NOW = 1_000.0
CFG = SchedConfig(repair_delay_factor_s=10)


def be(bid, alive=True, decom=False, dead_since=None):
    return BackendView(bid, alive, decom, dead_since if not alive else None, 100, 10, bid)


def backends(n=5, **over):
    out = {i: be(i) for i in range(1, n + 1)}
    out.update(over)
    return out


def rep(bid, version=5, **kw):
    return Replica(replica_id=100 + bid, backend_id=bid, version=version, **kw)


def tablet_of(replicas, replication_num=3, quorum=WriteQuorum.MAJORITY, visible=5):
    table = Table(7, 1, "t", [Column("k", ColumnType("INT"), is_key=True)], ["k"], ["k"], 1,
                  replication_num, quorum)
    part = Partition(8, "p", visible_version=visible, next_version=visible + 1)
    tablet = Tablet(9, list(replicas))
    part.tablets.append(tablet)
    table.partitions.append(part)
    return table, part, tablet


def check(replicas, bes=None, now=NOW, **kw):
    table, part, tablet = tablet_of(replicas, **kw)
    return TabletChecker().check_tablet(table, part, tablet, bes or backends(), now, CFG)


def test_all_healthy():
    h = check([rep(1), rep(2), rep(3)])
    assert (h.status, h.healthy_num) == (S.HEALTHY, 3)


@pytest.mark.parametrize("replicas,quorum,n_rep,expect", [
    ([rep(1), rep(2), rep(3, bad=True)], WriteQuorum.MAJORITY, 3, (S.REPLICA_MISSING, P.NORMAL)),
    ([rep(1), rep(2)], WriteQuorum.MAJORITY, 3, (S.REPLICA_MISSING, P.NORMAL)),
    ([rep(1)], WriteQuorum.MAJORITY, 3, (S.REPLICA_MISSING, P.VERY_HIGH)),
    ([rep(1), rep(2)], WriteQuorum.ALL, 3, (S.REPLICA_MISSING, P.HIGH)),
    ([rep(1), rep(2)], WriteQuorum.ONE, 3, (S.REPLICA_MISSING, P.NORMAL)),
    ([rep(1), rep(2)], WriteQuorum.MAJORITY, 5, (S.REPLICA_MISSING, P.HIGH)),
    ([rep(1), rep(2), rep(3, version=4)], WriteQuorum.MAJORITY, 3, (S.VERSION_INCOMPLETE, P.NORMAL)),
    ([rep(1), rep(2, version=3), rep(3, version=4)], WriteQuorum.MAJORITY, 3,
     (S.VERSION_INCOMPLETE, P.VERY_HIGH)),
    ([rep(1), rep(2), rep(3, last_failed_version=6)], WriteQuorum.MAJORITY, 3,
     (S.VERSION_INCOMPLETE, P.NORMAL)),
    ([rep(1), rep(2), rep(3), rep(4)], WriteQuorum.MAJORITY, 3, (S.REDUNDANT, P.VERY_HIGH)),
    ([rep(1, version=4), rep(2, version=3)], WriteQuorum.MAJORITY, 2, (S.UNRECOVERABLE, P.VERY_HIGH)),
])
def test_status_and_priority(replicas, quorum, n_rep, expect):
    h = check(replicas, quorum=quorum, replication_num=n_rep)
    assert (h.status, h.priority) == expect
    assert h.ready


def test_relocating_priority_low_then_normal():
    one = check([rep(1), rep(2), rep(3)], {**backends(), 3: be(3, decom=True)})
    assert (one.status, one.priority) == (S.REPLICA_RELOCATING, P.LOW)
    two = check([rep(1), rep(2), rep(3)], {**backends(), 2: be(2, decom=True), 3: be(3, decom=True)})
    assert (two.status, two.priority) == (S.REPLICA_RELOCATING, P.NORMAL)


def test_replica_on_unknown_backend_is_missing_at_once():
    h = check([rep(1), rep(2), rep(99)])
    assert (h.status, h.ready) == (S.REPLICA_MISSING, True)


def test_replica_in_clone_state_is_not_counted():
    h = check([rep(1), rep(2), rep(3, state=ReplicaState.CLONE)])
    assert h.status is S.REPLICA_MISSING and h.healthy_num == 2


def test_unrecoverable_names_why():
    h = check([rep(1, version=2), rep(2, version=2), rep(3, version=2)])
    assert h.status is S.UNRECOVERABLE and "visible version 5" in h.reason and "1:v2" in h.reason


def test_repair_priority_rules():
    assert repair_priority(1, 3, 2) is P.VERY_HIGH
    assert repair_priority(0, 1, 1) is P.VERY_HIGH
    assert repair_priority(2, 3, 2) is P.NORMAL
    assert repair_priority(2, 3, 3) is P.HIGH


@pytest.mark.parametrize("quorum,prio,factor", [
    (WriteQuorum.MAJORITY, P.NORMAL, 2), (WriteQuorum.ALL, P.HIGH, 1)])
def test_repair_delay_per_priority(quorum, prio, factor):
    dead = {**backends(), 3: be(3, alive=False, dead_since=NOW)}
    delay = CFG.repair_delay_factor_s * factor
    before = check([rep(1), rep(2), rep(3)], dead, now=NOW + delay - 0.5, quorum=quorum)
    assert (before.status, before.priority, before.ready) == (S.REPLICA_MISSING, prio, False)
    after = check([rep(1), rep(2), rep(3)], dead, now=NOW + delay + 0.5, quorum=quorum)
    assert (after.status, after.ready) == (S.REPLICA_MISSING, True)


def test_repair_delay_factors_of_config():
    assert [CFG.repair_delay_s(p) for p in (P.VERY_HIGH, P.HIGH, P.NORMAL, P.LOW)] == [0, 10, 20, 30]


def test_very_high_goes_at_once():
    dead = {**backends(), 2: be(2, alive=False, dead_since=NOW), 3: be(3, alive=False, dead_since=NOW)}
    h = check([rep(1), rep(2), rep(3)], dead, now=NOW + 0.1)
    assert (h.status, h.priority, h.ready) == (S.REPLICA_MISSING, P.VERY_HIGH, True)


def test_version_incomplete_goes_at_once_while_waiting_for_dead_backend():
    dead = {**backends(6), 5: be(5, alive=False, dead_since=NOW)}
    replicas = [rep(1), rep(2), rep(3), rep(4, version=4), rep(5)]
    h = check(replicas, dead, now=NOW + 0.1, replication_num=5)
    assert (h.status, h.priority, h.ready) == (S.VERSION_INCOMPLETE, P.NORMAL, True)
    replicas[3].version = 5  # once the lagging one is repaired, the dead BE is waited for
    h = check(replicas, dead, now=NOW + 0.1, replication_num=5)
    assert (h.status, h.ready) == (S.REPLICA_MISSING, False)


def test_force_redundant_when_every_backend_holds_a_replica():
    h = check([rep(1), rep(2), rep(3, bad=True)], backends(3))
    assert (h.status, h.priority) == (S.REDUNDANT, P.VERY_HIGH)


def test_check_all_db_counts_and_hints():
    c = SimCluster(4)
    t1 = c.make_table(6, db_id=1)
    t2 = c.make_table(6, db_id=2)
    c.decommission(sorted(c.backends)[0])
    res = TabletChecker().check_all(c.tables, c.backend_views, NOW, CFG)
    expected = {t.tablet_id for tb in (t1, t2) for p in tb.partitions for t in p.tablets
                if any(r.backend_id == sorted(c.backends)[0] for r in t.replicas)}
    assert {x for ids in res.unhealthy_by_db.values() for x in ids} == expected
    assert set(res.unhealthy_by_db) == {1, 2}
    assert {h.priority for h in res.to_schedule} == {P.LOW}
    hinted = TabletChecker().check_all(c.tables, c.backend_views, NOW, CFG, {(t2.table_id, None)})
    prios = {h.table_id: h.priority for h in hinted.to_schedule}
    assert prios == {t1.table_id: P.LOW, t2.table_id: P.VERY_HIGH}
    assert res.tablet_num == 12 and res.replica_num == 36
    assert res.status_counts[S.HEALTHY] == 12 - len(expected)


def test_partition_hint_only_raises_that_partition():
    c = SimCluster(3)
    t = c.make_table(2, n_partitions=2)
    c.kill(sorted(c.backends)[0])
    p0 = t.partitions[0].partition_id
    res = TabletChecker().check_all(c.tables, c.backend_views, c.clock.now_s, CFG, {(t.table_id, p0)})
    assert {h.partition_id for h in res.to_schedule} == {p0}
    assert all(h.priority is P.VERY_HIGH for h in res.to_schedule)
    assert {h.partition_id for h in res.waiting} == {t.partitions[1].partition_id}


def test_fast_path_agrees_with_full_check():
    rng = random.Random(7)
    c = SimCluster(6)
    c.make_table(300)
    for _, _, tablet in c.all_tablets():
        for r in tablet.replicas:
            roll = rng.random()
            if roll < 0.05:
                r.bad = True
            elif roll < 0.1:
                r.version = 0
            elif roll < 0.12:
                r.last_failed_version = 3
    c.kill(sorted(c.backends)[1])
    c.decommission(sorted(c.backends)[2])
    checker = TabletChecker()
    now = c.clock.now_s + 100
    res = checker.check_all(c.tables, c.backend_views, now, CFG)
    flagged = {h.tablet_id: h.status for h in res.to_schedule + res.waiting}
    for table, part, tablet in c.all_tablets():
        h = checker.check_tablet(table, part, tablet, c.backend_views, now, CFG)
        assert flagged.get(tablet.tablet_id, S.HEALTHY) is h.status


def test_check_all_speed_is_printed_not_asserted():
    c = SimCluster(20)
    c.make_table(20_000)
    c.kill(sorted(c.backends)[0])
    start = time.perf_counter()
    res = TabletChecker().check_all(c.tables, c.backend_views, c.clock.now_s, CFG)
    took = time.perf_counter() - start
    print(f"\ncheck_all: {res.tablet_num} tablets in {took * 1000:.1f} ms "
          f"({len(res.waiting)} waiting for the dead BE)")
    assert res.tablet_num == 20_000
