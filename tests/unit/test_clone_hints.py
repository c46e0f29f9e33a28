"""ADMIN REPAIR TABLE on the simulator: a hinted table skips the repair delay (no processes)."""

from __future__ import annotations

from fe.clone.checker import healthy_count
from fe.clone.sched_ctx import SchedConfig
from fe.clone.sim import SimCluster


def test_repair_hint_repairs_its_table_at_once_while_others_wait():
    c = SimCluster(4, SchedConfig(repair_delay_factor_s=60, slot_num_per_path=1, disable_balance=True))
    first, second = c.make_table(4), c.make_table(4)
    dead = sorted(c.backends)[0]
    c.kill(dead)
    c.repair_hints = {(second.table_id, None)}
    c.run_rounds(10)
    views = c.backend_views
    for t in second.partitions[0].tablets:
        assert healthy_count(t, views, 1) == 3 and t.replica_on(dead) is None
    waiting = [t for t in first.partitions[0].tablets if t.replica_on(dead) is not None]
    assert waiting and all(healthy_count(t, views, 1) == 2 for t in waiting)
    assert c.scheduler.check_invariant() == []
