"""TabletScheduler decisions on the simulator's fake clock (no processes, no real time)."""

import random

import pytest

from fe.catalog.model import WriteQuorum
from fe.clone.checker import healthy_count
from fe.clone.sched_ctx import (
    COLUMNS,
    MB,
    CloneKind,
    IllegalTransition,
    Priority,
    SchedConfig,
    SchedState,
    SchedType,
    TabletSchedCtx,
    TabletStatus,
)
from fe.clone.sim import SimCluster, SimExecutor

CFG = SchedConfig(repair_delay_factor_s=5, disable_balance=True)


def cluster(n=4, cfg=CFG, **kw):
    c = SimCluster(n, cfg=cfg, **kw)
    return c, sorted(c.backends)


def only_tablet(table):
    return table.partitions[0].tablets[0]


def assert_invariant(c, _stats=None):
    assert c.scheduler.check_invariant() == []


def test_source_is_highest_version_and_dest_has_no_replica():
    c, b = cluster(4)
    t = c.make_table(1, backends=b[:3])
    tab = only_tablet(t)
    tab.replica_on(b[1]).version = 3
    tab.replica_on(b[2]).bad = True
    tasks = c.run_round().tasks
    assert len(tasks) == 1
    task = tasks[0]
    assert (task.kind, task.src_backend_id, task.dest_backend_id) == (CloneKind.FULL, b[1], b[3])
    assert (task.version_from, task.version_to) == (1, 3)


def test_destination_is_least_loaded_backend_without_the_tablet():
    c, b = cluster(5)
    t = c.make_table(1, backends=b[:3])
    c.make_table(4, replication_num=1, backends=[b[3]])
    only_tablet(t).replica_on(b[0]).bad = True
    task = c.run_round().tasks[0]
    assert task.dest_backend_id == b[4]
    assert task.src_backend_id in (b[1], b[2])


def test_version_incomplete_is_cloned_in_place_incrementally_then_full_after_compaction():
    c, b = cluster(3)
    t = c.make_table(2)
    assert c.load(t, skip_backends=[b[2]]) and c.load(t, skip_backends=[b[2]])
    first = c.run_round().tasks
    assert {task.kind for task in first} == {CloneKind.INCREMENTAL}
    for task in first:
        assert task.dest_backend_id == b[2] and task.src_backend_id != b[2]
        assert (task.version_from, task.version_to, task.visible_version) == (2, 3, 3)
    c.run_rounds(2)
    assert all(healthy_count(tb, c.backend_views, 3) == 3 for _, _, tb in c.all_tablets())
    assert c.load(t, skip_backends=[b[2]])
    for bid in b[:2]:
        for _, _, tb in c.all_tablets():
            c.compact(bid, tb.tablet_id, 4)
    assert {task.kind for task in c.run_round().tasks} == {CloneKind.FULL}


def test_repair_waits_for_the_delay_then_repairs():
    c, b = cluster(4)
    c.make_table(3, backends=b[:3])
    c.kill(b[0])
    dead_at = c.clock.now_s
    sent_at = []
    c.run_rounds(25, on_round=lambda cl, s: sent_at.extend(s.now_s for _ in s.tasks))
    delay = CFG.repair_delay_s(Priority.NORMAL)
    assert sent_at and min(sent_at) >= dead_at + delay
    assert all(tb.replica_on(b[3]) for _, _, tb in c.all_tablets())


def test_one_slot_per_path_hinted_table_goes_first_and_other_waits():
    cfg = SchedConfig(slot_num_per_path=1, disable_balance=True)
    c, b = cluster(4, cfg)
    t1 = c.make_table(1, backends=b[:3])
    t2 = c.make_table(1, backends=b[:3])
    for t in (t1, t2):
        only_tablet(t).replica_on(b[2]).bad = True
    c.repair_hints = {(t2.table_id, None)}
    stats = c.run_round()
    assert [task.tablet_id for task in stats.tasks] == [only_tablet(t2).tablet_id]
    waiting = c.scheduler.get(only_tablet(t1).tablet_id)
    assert waiting.state is SchedState.PENDING and waiting.failed_sched == 1
    assert f"be{b[3]}" in waiting.err_msg and "full" in waiting.err_msg
    row = dict(zip(COLUMNS, c.scheduler.running()[0], strict=True))
    assert row["DynmPrio"] == "VERY_HIGH" and row["State"] == "RUNNING"


def test_running_per_path_never_exceeds_slots():
    cfg = SchedConfig(slot_num_per_path=2, disable_balance=True)
    c, b = cluster(6, cfg)
    c.make_table(60, backends=b[:3])
    c.executor = SimExecutor(c, duration=lambda task: 3.0)
    c.kill(b[0])

    def per_round(cl, _stats):
        assert_invariant(cl)
        for (pool, _be, _path), n in cl.scheduler._slots_used.items():
            assert n <= cl.scheduler.slot_capacity(pool)

    c.run_rounds(120, on_round=per_round)
    assert all(healthy_count(tb, c.backend_views, 1) >= 3 for _, _, tb in c.all_tablets())


def test_timeout_retries_with_backoff_then_history():
    cfg = SchedConfig(disable_balance=True, clone_timeout_min_s=10, max_failed_runs=3,
                      retry_backoff_s=2)
    c, b = cluster(4, cfg)
    t = c.make_table(1, backends=b[:3], data_size=MB)
    only_tablet(t).replica_on(b[0]).bad = True
    c.executor = SimExecutor(c, duration=lambda task: 10_000.0)
    sent, timed_out = [], []

    def per_round(cl, s):
        assert_invariant(cl)
        sent.extend(s.now_s for _ in s.tasks)
        timed_out.extend(s.now_s for _ in s.timed_out)

    while not c.scheduler.history_ctxs():
        per_round(c, c.run_round())
    assert len(timed_out) == 3 and len(sent) == 4 and sent[3] == timed_out[2]
    assert sent[1] - timed_out[0] >= 2 * 2 and sent[2] - timed_out[1] >= 2 * 4
    assert timed_out[0] - sent[0] > 10
    (ctx,) = c.scheduler.history_ctxs()
    assert ctx.state is SchedState.TIMEOUT and ctx.failed_running == 3
    assert "failed 3 times" in ctx.err_msg and "timed out after 10 s" in ctx.err_msg
    # the checker finds the tablet again next round: a fresh context, counters reset
    fresh = c.scheduler.get(only_tablet(t).tablet_id)
    assert fresh is not ctx and fresh.failed_running == 0


def test_failed_clone_retries_then_cancelled_with_error():
    cfg = SchedConfig(disable_balance=True, max_failed_runs=2)
    c, b = cluster(4, cfg)
    t = c.make_table(1, backends=b[:3])
    only_tablet(t).replica_on(b[0]).bad = True
    c.executor = SimExecutor(c, fail=lambda task: "disk full on destination")
    c.run_rounds(20, on_round=assert_invariant)
    (ctx,) = [x for x in c.scheduler.history_ctxs() if x.tablet_id == only_tablet(t).tablet_id][:1]
    assert ctx.state is SchedState.CANCELLED and "disk full on destination" in ctx.err_msg


def test_unrecoverable_goes_to_history_once_and_does_not_block_others():
    c, b = cluster(4)
    t = c.make_table(2, backends=b[:3])
    lost, fine = t.partitions[0].tablets
    t.partitions[0].visible_version, t.partitions[0].next_version = 2, 3
    for r in fine.replicas:
        r.version = 2
    fine.replica_on(b[0]).bad = True
    stats = c.run_rounds(5, on_round=assert_invariant)
    assert [task.tablet_id for task in stats[0].tasks] == [fine.tablet_id]
    hist = [x for x in c.scheduler.history_ctxs() if x.tablet_id == lost.tablet_id]
    assert len(hist) == 1 and hist[0].status is TabletStatus.UNRECOVERABLE
    assert "no replica at visible version 2" in hist[0].err_msg
    assert healthy_count(fine, c.backend_views, 2) == 3


def test_redundant_drop_order_dead_bad_lagging_decommissioned_then_most_loaded():
    c, b = cluster(8)
    t = c.make_table(1, backends=b[:3])
    tab = only_tablet(t)
    c.make_table(3, replication_num=1, backends=[b[6]])  # b6 is the most loaded healthy BE
    extra = [(b[3], {}), (b[4], {"bad": True}), (b[5], {"version": 0}), (b[6], {}), (b[7], {})]
    for bid, attrs in extra:
        r = tab.replicas[0].__class__(replica_id=9_000 + bid, backend_id=bid, **attrs)
        tab.replicas.append(r)
        c.account(bid, 1, 0)
    c.kill(b[3])
    c.decommission(b[7])
    dropped = []
    for _ in range(8):
        stats = c.run_round()
        dropped += [task.dest_backend_id for task in stats.tasks if task.kind is CloneKind.DROP]
    assert dropped == [b[3], b[4], b[5], b[7], b[6]]
    assert len(tab.replicas) == 3 and healthy_count(tab, c.backend_views, 1) == 3


def test_dynamic_priority_lowered_on_failures_raised_on_waiting_hint_stays():
    cfg = SchedConfig(disable_balance=True, adjust_prio_interval_s=5, sched_failed_downgrade_threshold=2,
                      max_not_scheduled_interval_s=1000)
    c2, b2 = cluster(3, cfg)
    t2 = c2.make_table(1, quorum=WriteQuorum.ALL)
    c2.kill(b2[0])
    ctx = None
    for _ in range(30):
        c2.run_round()
        ctx = c2.scheduler.get(only_tablet(t2).tablet_id) or ctx
    assert ctx is not None and ctx.orig_prio is Priority.HIGH
    assert ctx.priority < ctx.orig_prio and ctx.failed_sched > 2
    assert "destination" in ctx.err_msg
    c2.repair_hints = {(t2.table_id, None)}  # ADMIN REPAIR TABLE
    c2.run_rounds(30)
    assert ctx.priority is Priority.VERY_HIGH and ctx.hinted
    c2.repair_hints = set()  # ADMIN CANCEL REPAIR TABLE
    c2.run_round()
    assert ctx.priority is ctx.orig_prio and not ctx.hinted
    waiting = TabletSchedCtx(1, 1, 1, 1, SchedType.REPAIR, TabletStatus.REPLICA_MISSING,
                             Priority.LOW, create_s=0.0)
    sched = SimCluster(3, cfg=SchedConfig(adjust_prio_interval_s=1, max_not_scheduled_interval_s=10)).scheduler
    sched.add(waiting)
    sched._adjust_priorities(1.0)
    sched._adjust_priorities(20.0)
    assert waiting.priority is Priority.NORMAL


def test_add_dedupes_and_respects_max_scheduling_tablets():
    c, b = cluster(3, SchedConfig(max_scheduling_tablets=2))

    def ctx(tid):
        return TabletSchedCtx(tid, 1, 1, 1, SchedType.REPAIR, TabletStatus.REPLICA_MISSING,
                              Priority.NORMAL, create_s=0.0)

    s = c.scheduler
    assert s.add(ctx(1)) and not s.add(ctx(1)) and s.add(ctx(2)) and not s.add(ctx(3))
    assert s.cancel(1, "ADMIN said so", 5.0) and not s.cancel(1, "again")
    assert s.history_ctxs()[0].err_msg == "ADMIN said so" and s.add(ctx(3))
    assert s.check_invariant() == []


def test_history_is_bounded():
    c = SimCluster(3, cfg=CFG, history_size=5)
    for tid in range(20):
        ctx = TabletSchedCtx(tid, 1, 1, 1, SchedType.REPAIR, TabletStatus.REPLICA_MISSING,
                             Priority.NORMAL, create_s=0.0)
        c.scheduler.add(ctx)
        c.scheduler.cancel(tid, "x", 1.0)
    assert len(c.scheduler.history()) == 5 and c.scheduler.check_invariant() == []


def test_row_has_the_seed_columns_and_state_machine_refuses_bad_moves():
    ctx = TabletSchedCtx(4203036, 1, 2, 3, SchedType.REPAIR, TabletStatus.REPLICA_MISSING,
                         Priority.HIGH, create_s=1_550_732_420.0, visible_version=1, committed_version=2)
    row = ctx.row_dict()
    assert list(row) == list(COLUMNS) and len(COLUMNS) == 24
    assert (row["TabletId"], row["Type"], row["State"], row["SrcBe"], row["Finished"]) == (
        "4203036", "REPAIR", "PENDING", "-1", "N/A")
    assert (row["VisibleVer"], row["CmtVer"], row["OrigPrio"]) == ("1", "2", "HIGH")
    with pytest.raises(IllegalTransition):
        ctx.transition_to(SchedState.TIMEOUT, 1.0)
    ctx.transition_to(SchedState.CANCELLED, 2.0)
    assert ctx.state.is_final
    with pytest.raises(IllegalTransition):
        ctx.transition_to(SchedState.PENDING, 3.0)


def test_clone_timeout_is_clamped():
    cfg = SchedConfig(clone_timeout_min_s=10, clone_timeout_max_s=600, clone_bytes_per_s_for_timeout=MB)
    assert [cfg.clone_timeout_s(n) for n in (0, 100 * MB, 10_000 * MB)] == [10, 100, 600]


def test_randomized_kills_restarts_keep_the_invariant():
    rng = random.Random(20240611)
    cfg = SchedConfig(repair_delay_factor_s=3, slot_num_per_path=2, disable_balance=False,
                      max_failed_runs=3)
    c, b = cluster(7, cfg, rng=rng)
    tables = [c.make_table(25, backends=b[:5]), c.make_table(15, quorum=WriteQuorum.ONE)]
    c.executor = SimExecutor(c, duration=lambda task: rng.choice([0.0, 1.0, 3.0]),
                             fail=lambda task: "injected failure" if rng.random() < 0.1 else None)
    for _ in range(200):
        roll = rng.random()
        alive = [x for x in b if c.backends[x].alive]
        if roll < 0.04 and len(alive) > 4:
            c.kill(rng.choice(alive))
        elif roll < 0.10:
            dead = [x for x in b if not c.backends[x].alive]
            if dead:
                c.restart(rng.choice(dead))
        elif roll < 0.25:
            c.load(rng.choice(tables))
        c.run_round()
        assert_invariant(c)
        assert len(c.scheduler.history()) <= c.scheduler.history_size
    for x in b:
        c.restart(x)
    rounds = c.run_until_quiet(400, on_round=assert_invariant)
    assert rounds < 400
    for table, part, tab in c.all_tablets():
        assert len(tab.replicas) == table.replication_num
        assert healthy_count(tab, c.backend_views, part.visible_version) == table.replication_num


def test_a_replica_missing_only_a_committed_version_waits_for_its_publish():
    """`make chaos SEED=1`, a be_be_partition: a write to one replica failed, so the commit set its
    last_failed_version to the committed, not yet visible, version. The replica held every visible
    version, so the repair fell back to a full clone up to the visible version, which left the
    failed version in place, and the tablet was cloned again at once: 996 clone tasks in 12 s.
    No source can give a version before it is published: the repair waits for the publish."""
    c, b = cluster(3)
    t = c.make_table(1)
    tab = only_tablet(t)
    v = t.partitions[0].visible_version
    lagging = tab.replica_on(b[2])
    lagging.last_failed_version = v + 1  # committed at v + 1 without this replica
    for _ in range(5):
        assert c.run_round().tasks == []
    assert lagging.last_failed_version == v + 1
    # once v + 1 is visible the replica is one version behind: an incremental clone of it
    assert c.load(t, skip_backends=[b[2]])
    (task,) = c.run_round().tasks
    assert (task.kind, task.dest_backend_id, task.version_from, task.version_to) == (
        CloneKind.INCREMENTAL, b[2], v + 1, v + 1)
