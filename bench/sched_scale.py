"""Scheduler cost as tablets grow: checker and scheduler time per round, memory per replica.

Run: ``python bench/sched_scale.py [--quick]``. Prints a table, then the same figures as JSON.

For each (tablets, BEs) it builds a simulated cluster (3 replicas per tablet, round-robin), then
times on the fake clock:
- ``check_healthy_ms``: one TabletChecker round when every tablet is healthy (the fast path);
- ``check_degraded_ms``: one round after one BE has been dead past the repair delay;
- ``sched_add_ms`` / ``sched_round_ms``: queueing that round's unhealthy tablets, then one
  ``schedule()`` round (bounded by slots and tablet_sched_max_scheduling_tablets);
- ``bytes_per_replica``: tracemalloc's count of the catalog built, over the replicas.
The baseline beside them (``py_loop_ns``) is a bare Python loop over the same replicas, so the
ratio holds on a noisy machine. Each time is the best of three.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fe.clone.checker import TabletChecker  # noqa: E402
from fe.clone.sched_ctx import SchedConfig  # noqa: E402
from fe.clone.scheduler import TabletScheduler  # noqa: E402
from fe.clone.sim import SimCluster  # noqa: E402


def best_of(fn, n=3):
    best, out = float("inf"), None
    for _ in range(n):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def measure(n_tablets: int, n_backends: int) -> dict:
    cfg = SchedConfig(disable_balance=True)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    c = SimCluster(n_backends, cfg=cfg)
    c.make_table(n_tablets, data_size=64 * 1024 * 1024)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    n_replicas = n_tablets * 3
    checker = TabletChecker()
    views = c.backend_views

    def bare_loop():
        n = 0
        for _, _, tab in c.all_tablets():
            for r in tab.replicas:
                n += r.version
        return n

    base_s, _ = best_of(bare_loop)
    healthy_s, res = best_of(lambda: checker.check_all(c.tables, views, c.clock.now_s, cfg))
    assert not res.to_schedule
    victim = sorted(c.backends)[0]
    c.kill(victim)
    c.clock.advance(cfg.repair_delay_factor_s * 3 + 1)
    views = c.backend_views
    degraded_s, res = best_of(lambda: checker.check_all(c.tables, views, c.clock.now_s, cfg))
    sched = TabletScheduler(cfg, checker)
    add_s, _ = best_of(lambda: sched.add_from_check(res, c.clock.now_s), n=1)
    view = c.view()
    round_s, tasks = best_of(lambda: sched.schedule(c.clock.now_s, view), n=1)
    round2_s, _ = best_of(lambda: sched.schedule(c.clock.now_s + 1, view), n=1)
    return {
        "tablets": n_tablets, "backends": n_backends, "replicas": n_replicas,
        "check_healthy_ms": round(healthy_s * 1e3, 2),
        "check_degraded_ms": round(degraded_s * 1e3, 2),
        "unhealthy": len(res.to_schedule),
        "sched_add_ms": round(add_s * 1e3, 2),
        "sched_round_ms": round(round_s * 1e3, 2),
        "sched_round2_ms": round(round2_s * 1e3, 2),
        "tasks_first_round": len(tasks),
        "pending_after": len(sched.pending_ctxs()),
        "bytes_per_replica": round((after - before) / n_replicas, 1),
        "py_loop_ns_per_replica": round(base_s / n_replicas * 1e9, 1),
        "check_healthy_ns_per_replica": round(healthy_s / n_replicas * 1e9, 1),
    }


COLS = ["tablets", "backends", "check_healthy_ms", "check_degraded_ms", "unhealthy", "sched_add_ms",
        "sched_round_ms", "sched_round2_ms", "tasks_first_round", "pending_after",
        "bytes_per_replica", "py_loop_ns_per_replica", "check_healthy_ns_per_replica"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only 1k and 10k tablets")
    args = ap.parse_args()
    sizes = [1_000, 10_000] + ([] if args.quick else [100_000])
    rows = [measure(n, b) for n in sizes for b in (3, 20, 200)]
    widths = [max(len(col), *(len(str(r[col])) for r in rows)) for col in COLS]
    print("  ".join(col.rjust(w) for col, w in zip(COLS, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r[col]).rjust(w) for col, w in zip(COLS, widths, strict=True)))
    print(json.dumps({"bench": "sched_scale", "python": sys.version.split()[0], "rows": rows}))


if __name__ == "__main__":
    main()
