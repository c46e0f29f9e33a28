"""The tablet scheduling daemon: checker -> balancer -> scheduler -> executor, on the FE's clock.

Every ``tablet_sched_checker_interval_seconds`` (a dynamic config, read each round) one round:

1. running tasks past their timeout are failed (the scheduler retries them with backoff) and
   cancelled; CLONE replicas no task works on (an FE restart mid-clone) are removed;
2. the :class:`TabletChecker` looks at every tablet (its verdict is UnhealthyTabletNum);
   for heartbeat_timeout_second after the FE starts nothing more happens: no BE has heartbeated
   yet, so every one looks dead and every tablet unrecoverable (a follower promoted to leader
   skips that wait: it inherits the BEs' liveness from the journal, fe/system/backends.py);
3. ready tablets are queued (ADMIN REPAIR hints raise theirs to VERY_HIGH);
4. when nothing needs repair and balance is not disabled, the balancer proposes moves;
5. the scheduler picks tasks within the slots and the executor runs them.

A finished task wakes the daemon, so that the next step (a balance move's drop, a redundant
replica) does not wait for a whole interval. This object is also the scheduler's ClusterView.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from common.daemon import PeriodicDaemon
from fe.catalog.catalog import Catalog
from fe.catalog.model import Partition, Table, Tablet
from fe.clone.balancer import ClusterLoadStatistic, select_moves
from fe.clone.checker import CheckResult, TabletChecker
from fe.clone.executor import CloneExecutor, TaskResult
from fe.clone.sched_ctx import COLUMNS, BackendView, CloneKind, CloneTask, SchedConfig, SchedType
from fe.clone.scheduler import TabletScheduler
from fe.persist.ids import IdAllocator
from fe.system.backends import Backend, BackendRegistry
from fe.system.be_client import BackendClients
from fe.system.dynconfig import DynamicConfig

log = logging.getLogger(__name__)


@dataclass
class TabletSchedulerStat:
    """StarRocks' TabletSchedulerStat counters of clone tasks, since this FE started leading:
    ``/metrics`` exports them as starrocks_fe_clone_task_total, starrocks_fe_clone_task_success,
    starrocks_fe_clone_task_copy_bytes and starrocks_fe_clone_task_copy_duration_ms (type
    INTER_NODE: every tabletsim clone copies between two BEs; INTRA_NODE, a move between the disks
    of one BE, does not exist here)."""

    clone_task: int = 0
    """Clone tasks sent to a destination BE (FULL or INCREMENTAL; replica drops are not clones)."""
    clone_task_succeeded: int = 0
    inter_node_copy_bytes: int = 0
    inter_node_copy_ms: int = 0


LOAD_STAT_COLUMNS = ["BeId", "Available", "LoadScore", "UsedCapacity", "Capacity", "UsedPercent",
                     "ReplicaNum", "CapCoeff", "Class"]


class TabletSchedDaemon:
    def __init__(self, catalog: Catalog, backends: BackendRegistry, clients: BackendClients,
                 ids: IdAllocator, config: DynamicConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self._catalog = catalog
        self._registry = backends
        self._config = config
        self._clock = clock
        self.checker = TabletChecker()
        self.scheduler = TabletScheduler(self.sched_config(), self.checker)
        self.executor = CloneExecutor(catalog, backends, clients, ids, self._on_task_finished)
        self.hints: set[tuple[int, int | None]] = set()
        self.last_check: CheckResult | None = None
        self.stat = TabletSchedulerStat()
        self._unhealthy: set[int] = set()
        self._dead_since: dict[int, float] = {}
        self._views: dict[int, BackendView] = {}
        self._counts: dict[int, int] = {}
        self._started_s: float | None = None
        backends.add_listener(self._on_backend_event)
        catalog.on_table_dropped(lambda db, table, reason: self._forget_table(table.table_id))
        self._daemon = PeriodicDaemon("tablet-scheduler",
                                      lambda: float(config.tablet_sched_checker_interval_seconds),
                                      self.run_once)

    # ---- life cycle ---------------------------------------------------------------------------
    def start(self, *, grace: bool = True) -> None:
        """``grace``: wait heartbeat_timeout_second before scheduling (an FE that starts knows no
        live BE yet); a promoted follower that inherited the BEs' liveness does not wait."""
        self._started_s = self._clock() if grace else None
        self._daemon.start()

    async def close(self) -> None:
        await self._daemon.close()
        await self.executor.close()

    def wake(self) -> None:
        self._daemon.wake()

    # ---- config and views ---------------------------------------------------------------------
    def sched_config(self) -> SchedConfig:
        c = self._config
        return SchedConfig(
            repair_delay_factor_s=float(c.tablet_sched_repair_delay_factor_second),
            slot_num_per_path=int(c.tablet_sched_slot_num_per_path),
            clone_timeout_min_s=float(c.tablet_sched_min_clone_task_timeout_sec),
            clone_timeout_max_s=float(max(c.tablet_sched_max_clone_task_timeout_sec,
                                          c.tablet_sched_min_clone_task_timeout_sec)),
            balance_load_score_threshold=float(c.tablet_sched_balance_load_score_threshold),
            capacity_used_percent_high_water=float(c.capacity_used_percent_high_water),
            disable_balance=bool(c.tablet_sched_disable_balance),
            max_scheduling_tablets=int(c.tablet_sched_max_scheduling_tablets),
        )

    def _on_backend_event(self, be: Backend, event: str) -> None:
        if event == "dead":
            self._dead_since[be.backend_id] = self._clock()
        elif event in ("alive", "dropped"):
            self._dead_since.pop(be.backend_id, None)

    def refresh_views(self, now_s: float) -> dict[int, BackendView]:
        """BackendViews from the registry. Used capacity = the bytes of the tablet replicas the
        catalog places on the BE (what balancing moves); capacity = the BE's disk (heartbeats,
        or its --capacity-bytes)."""
        used: dict[int, int] = {}
        counts: dict[int, int] = {}
        for loc in self._catalog.tablet_locations():
            for r in loc.tablet.replicas:
                used[r.backend_id] = used.get(r.backend_id, 0) + r.data_size
                counts[r.backend_id] = counts.get(r.backend_id, 0) + 1
        views = {}
        for be in self._registry.all():
            dead_since = None
            if not be.alive:
                dead_since = self._dead_since.setdefault(be.backend_id, now_s)
            views[be.backend_id] = BackendView(
                be.backend_id, be.alive, be.decommissioned, dead_since, be.disk.total_capacity,
                used.get(be.backend_id, 0), be.backend_id)
        self._views, self._counts = views, counts
        return views

    # ---- ClusterView --------------------------------------------------------------------------
    @property
    def backends(self) -> Mapping[int, BackendView]:
        return self._views

    def locate(self, tablet_id: int) -> tuple[Table, Partition, Tablet] | None:
        loc = self._catalog.find_location(tablet_id)
        return (loc.table, loc.partition, loc.tablet) if loc else None

    def replica_counts(self) -> Mapping[int, int]:
        return self._counts

    def source_has_versions(self, backend_id: int, tablet_id: int, from_v: int, to_v: int) -> bool:
        """BEs keep every version (no compaction), so a source at ``to_v`` has them all; a BE that
        lacks them after all falls back to a full clone and says so."""
        loc = self._catalog.find_location(tablet_id)
        r = loc.tablet.replica_on(backend_id) if loc else None
        return r is not None and r.version >= to_v

    # ---- one round ----------------------------------------------------------------------------
    def run_once(self) -> None:
        now = self._clock()
        cfg = self.sched_config()
        sched = self.scheduler
        sched.update_config(cfg)
        views = self.refresh_views(now)
        for tablet_id in sched.on_timeout(now):
            self.executor.abort(tablet_id)
        self.executor.drop_stale_clone_replicas()
        tables = [t for db in self._catalog.databases() for t in db.tables.values()]
        result = self.checker.check_all(tables, views, now, cfg, self.hints)
        self.last_check = result
        self._unhealthy = {t for ids in result.unhealthy_by_db.values() for t in ids}
        if self._started_s is not None and now - self._started_s < self._config.heartbeat_timeout_second:
            return  # just started: BEs have not heartbeated yet, every one looks dead
        sched.set_repair_hints(self.hints, now)
        sched.add_from_check(result, now)
        if (not cfg.disable_balance and not result.to_schedule and not result.waiting
                and sched.num_of(SchedType.REPAIR) == 0 and sched.num_of(SchedType.BALANCE) == 0):
            # moves are chosen in batches on settled counts: while one runs, its destination
            # already counts the new replica and its source still the old one
            free = sum(1 for be in views.values() if be.available) * cfg.balance_slot_num_per_path
            for ctx in select_moves(tables, views, now, cfg, sched.busy_tablets(), free,
                                    self._counts):
                sched.add(ctx)
        for task in sched.schedule(now, self):
            log.info("tablet %d: %s %s task %d, backend %s -> %s, versions %d..%d, timeout %.0f s",
                     task.tablet_id, task.type.value, task.kind.value, task.task_id,
                     task.src_backend_id, task.dest_backend_id, task.version_from, task.version_to,
                     task.timeout_s)
            self.executor.submit(task)
            if task.kind is not CloneKind.DROP:
                self.stat.clone_task += 1

    def _on_task_finished(self, task: CloneTask, result: TaskResult) -> None:
        if result.ok and task.kind is not CloneKind.DROP:
            self.stat.clone_task_succeeded += 1
            self.stat.inter_node_copy_bytes += result.copied_bytes
            self.stat.inter_node_copy_ms += result.copy_ms
        ctx = self.scheduler.get(task.tablet_id)
        if ctx is not None and ctx.task_id == task.task_id and result.ok:
            ctx.err_msg = result.detail
            if result.copied_bytes:
                ctx.copy_bytes = result.copied_bytes
        self.scheduler.on_task_finished(task.tablet_id, result.ok, result.err, self._clock(), self,
                                        task_id=task.task_id)
        self.wake()

    def _forget_table(self, table_id: int) -> None:
        self.hints = {h for h in self.hints if h[0] != table_id}

    # ---- what operators see -------------------------------------------------------------------
    def is_unhealthy(self, tablet_id: int) -> bool:
        return tablet_id in self._unhealthy

    def proc_pending(self) -> tuple[list[str], list[list[str]]]:
        return list(COLUMNS), self.scheduler.pending()

    def proc_running(self) -> tuple[list[str], list[list[str]]]:
        return list(COLUMNS), self.scheduler.running()

    def proc_history(self) -> tuple[list[str], list[list[str]]]:
        return list(COLUMNS), self.scheduler.history()

    def proc_load_stat(self) -> tuple[list[str], list[list[str]]]:
        views = self.refresh_views(self._clock()) if not self._views else self._views
        return LOAD_STAT_COLUMNS, ClusterLoadStatistic(views, self._counts, self.sched_config()).rows()

    def register_procs(self, register: Callable[[str, Callable[[], tuple[list[str], list[list[str]]]]], None]) -> None:
        register("/cluster_balance/pending_tablets", self.proc_pending)
        register("/cluster_balance/running_tablets", self.proc_running)
        register("/cluster_balance/history_tablets", self.proc_history)
        register("/cluster_balance/cluster_load_stat", self.proc_load_stat)

    def tablets_on(self, backend_id: int) -> int:
        return self._catalog.replica_count(backend_id)
