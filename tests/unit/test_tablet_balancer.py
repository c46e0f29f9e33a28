"""Load scores, balance moves and decommission, on the simulator's fake clock."""

import pytest

from fe.clone.balancer import ClusterLoadStatistic, LoadClass, capacity_coefficient, select_moves
from fe.clone.checker import healthy_count
from fe.clone.sched_ctx import BackendView, CloneKind, SchedConfig, SchedType
from fe.clone.sim import GB, SimCluster

CFG = SchedConfig()


def view(bid, total, used, alive=True, decom=False):
    return BackendView(bid, alive, decom, None, total, used, bid)


@pytest.mark.parametrize("used,coef", [(0.1, 0.5), (0.49, 0.5), (0.5, 0.5), (0.6, 0.7),
                                       (0.75, 1.0), (0.9, 1.0)])
def test_capacity_coefficient(used, coef):
    assert capacity_coefficient(used, 0.75) == pytest.approx(coef)


def test_load_score_formula_and_classes():
    bes = {1: view(1, 100, 20), 2: view(2, 100, 20), 3: view(3, 100, 80), 4: view(4, 100, 0, alive=False)}
    stat = ClusterLoadStatistic(bes, {1: 10, 2: 10, 3: 40, 4: 99}, CFG)
    assert set(stat.stats) == {1, 2, 3}  # dead BEs do not take part
    assert stat.avg_used_percent == pytest.approx(120 / 300)
    assert stat.avg_replica_num == pytest.approx(20)
    s1 = stat.stats[1]
    assert s1.capacity_coefficient == 0.5
    assert s1.load_score == pytest.approx(0.5 * (0.2 / 0.4) + 0.5 * (10 / 20))
    s3 = stat.stats[3]
    assert s3.capacity_coefficient == 1.0
    assert s3.load_score == pytest.approx(0.8 / 0.4)
    assert [s.clazz for s in (s1, stat.stats[2], s3)] == [LoadClass.LOW, LoadClass.LOW, LoadClass.HIGH]
    assert not stat.is_balanced() and len(stat.rows()) == 3


def test_moves_only_healthy_idle_tablets_to_backends_without_them():
    c = SimCluster(3)
    t = c.make_table(12)
    c.add_backend()
    c.add_backend()
    tablets = t.partitions[0].tablets
    tablets[0].replicas[0].version = 0  # lagging: not fully healthy
    busy = {tablets[1].tablet_id}
    moves = select_moves(c.tables, c.backend_views, c.clock.now_s, CFG, busy, 100)
    assert moves
    ids = [m.tablet_id for m in moves]
    assert tablets[0].tablet_id not in ids and tablets[1].tablet_id not in ids
    assert len(ids) == len(set(ids))
    by_id = {tb.tablet_id: tb for tb in tablets}
    for m in moves:
        assert m.type is SchedType.BALANCE
        assert by_id[m.tablet_id].replica_on(m.balance_dest_be) is None
        assert by_id[m.tablet_id].replica_on(m.balance_src_be) is not None
    assert select_moves(c.tables, c.backend_views, 0, SchedConfig(disable_balance=True), set(), 9) == []
    assert len(select_moves(c.tables, c.backend_views, 0, CFG, set(), 2)) == 2


def _quorum_holds_every_round(cl, stats):
    assert cl.scheduler.check_invariant() == []
    views = cl.backend_views
    for table, part, tab in cl.all_tablets():
        assert healthy_count(tab, views, part.visible_version) >= table.quorum, tab.tablet_id


def test_three_loaded_plus_two_empty_converge_with_quorum_every_round():
    c = SimCluster(3, capacity=10 * GB)
    c.make_table(40, data_size=20 * 1024 * 1024)
    c.make_table(20, data_size=5 * 1024 * 1024)
    c.add_backend(10 * GB)
    c.add_backend(10 * GB)
    kinds = set()
    rounds = c.run_until_quiet(600, on_round=lambda cl, s: (
        _quorum_holds_every_round(cl, s), kinds.update((t.type, t.kind) for t in s.tasks)))
    assert rounds < 600
    assert kinds == {(SchedType.BALANCE, CloneKind.FULL), (SchedType.BALANCE, CloneKind.DROP)}
    stat = ClusterLoadStatistic(c.backend_views, c.replica_counts(), c.cfg)
    assert stat.is_balanced(), [(s.backend_id, s.load_score, s.clazz) for s in stat.stats.values()]
    assert min(c.replica_counts().values()) > 0
    for table, _part, tab in c.all_tablets():
        assert len(tab.replicas) == table.replication_num  # no redundant replica left
        assert len({r.backend_id for r in tab.replicas}) == table.replication_num
    hist = c.scheduler.history_ctxs()
    assert hist and all(h.state.value == "FINISHED" for h in hist)


def test_decommission_moves_every_replica_off_the_backend():
    c = SimCluster(4)
    c.make_table(30, backends=sorted(c.backends)[:3])
    gone = sorted(c.backends)[0]
    c.decommission(gone)
    rounds = c.run_until_quiet(400, on_round=_quorum_holds_every_round)
    assert rounds < 400
    for table, part, tab in c.all_tablets():
        assert tab.replica_on(gone) is None
        assert healthy_count(tab, c.backend_views, part.visible_version) == table.replication_num
    assert c.backends[gone].replica_num == 0
