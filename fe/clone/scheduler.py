"""TabletScheduler: acts on what the checker and balancer found. It never detects on its own.

It turns each :class:`TabletSchedCtx` into a :class:`CloneTask` (a full or incremental clone, or a
drop), holds clone slots per BE path while the task runs, retries failures with exponential
backoff, and keeps the pending / running / history lists that SHOW PROC '/cluster_balance/...'
shows. The catalog is read through a :class:`ClusterView`; the scheduler changes no replica: the
task's executor does, as the BE and the FE's finish-task path do in StarRocks.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Protocol

from fe.catalog.model import Partition, Replica, ReplicaState, Table, Tablet
from fe.clone.balancer import ClusterLoadStatistic
from fe.clone.checker import CheckResult, TabletChecker, replica_healthy, version_complete
from fe.clone.sched_ctx import (
    BackendView,
    BalancePhase,
    CloneKind,
    CloneTask,
    Priority,
    SchedConfig,
    SchedState,
    SchedType,
    TabletSchedCtx,
    TabletStatus,
)

log = logging.getLogger(__name__)

REPAIR_POOL = "repair"
BALANCE_POOL = "balance"


class ClusterView(Protocol):
    """What the scheduler reads about the cluster at decision time."""

    @property
    def backends(self) -> Mapping[int, BackendView]: ...

    def locate(self, tablet_id: int) -> tuple[Table, Partition, Tablet] | None: ...

    def replica_counts(self) -> Mapping[int, int]: ...

    def source_has_versions(self, backend_id: int, tablet_id: int, from_v: int, to_v: int) -> bool: ...


class _Retry(Exception):
    """Cannot schedule now (no slot, no destination): stays pending, failed_sched += 1."""


class _Wait(Exception):
    """Not schedulable yet for a reason that is no failure (repair delay): stays pending."""


class _Finalize(Exception):
    def __init__(self, state: SchedState, msg: str) -> None:
        super().__init__(msg)
        self.state = state


class TabletScheduler:
    """A priority queue of tablets to repair or balance.

    Invariant (checked by :meth:`check_invariant` and asserted by the tests after every round):

    - ``pending`` and ``running`` are maps keyed by tablet id with disjoint keys; together they
      are exactly the tablets being scheduled, each tablet id at most once (``add`` dedupes).
    - every context in ``pending`` is PENDING and holds no slot; every one in ``running`` is
      RUNNING, and every clone in ``running`` holds one slot on its source path and one on its
      destination path from its pool (REPAIR or BALANCE); DROP tasks hold none.
    - the slots used on a path equal the slots the running contexts hold there, never more than
      the pool's capacity per path at the time they were taken.
    - ``history`` holds only final contexts (FINISHED, CANCELLED, TIMEOUT, UNEXPECTED), at most
      ``history_size`` of them, oldest dropped first.
    - len(pending) + len(running) <= cfg.max_scheduling_tablets.
    """

    def __init__(self, cfg: SchedConfig, checker: TabletChecker | None = None,
                 history_size: int = 1000) -> None:
        self.cfg = cfg
        self.checker = checker or TabletChecker()
        self.history_size = history_size
        self._pending: dict[int, TabletSchedCtx] = {}
        self._running: dict[int, TabletSchedCtx] = {}
        self._history: deque[TabletSchedCtx] = deque()
        self._last_unrecoverable: dict[int, TabletSchedCtx] = {}
        self._slots_used: dict[tuple[str, int, int], int] = {}
        self._hints: set[tuple[int, int | None]] = set()
        self._task_ids = itertools.count(1)

    # ---- queue ---------------------------------------------------------------------------------

    def update_config(self, cfg: SchedConfig) -> None:
        self.cfg = cfg

    def __contains__(self, tablet_id: int) -> bool:
        return tablet_id in self._pending or tablet_id in self._running

    def get(self, tablet_id: int) -> TabletSchedCtx | None:
        return self._pending.get(tablet_id) or self._running.get(tablet_id)

    def busy_tablets(self) -> set[int]:
        return set(self._pending) | set(self._running)

    def num_of(self, sched_type: SchedType) -> int:
        return sum(1 for c in itertools.chain(self._pending.values(), self._running.values())
                   if c.type is sched_type)

    def add(self, ctx: TabletSchedCtx) -> bool:
        """Queue ``ctx``; False when the tablet is already scheduled or the queue is full.

        An UNRECOVERABLE tablet goes straight to history (once, until something changes)."""
        if ctx.tablet_id in self:
            return False
        if ctx.status is TabletStatus.UNRECOVERABLE:
            last = self._last_unrecoverable.get(ctx.tablet_id)
            if last is not None and last.err_msg == ctx.err_msg:
                last.last_visit_s = ctx.create_s
                return False
            ctx.transition_to(SchedState.CANCELLED, ctx.create_s)
            log.warning("tablet %d is unrecoverable: %s", ctx.tablet_id, ctx.err_msg)
            self._to_history(ctx)
            self._last_unrecoverable[ctx.tablet_id] = ctx
            return False
        if len(self._pending) + len(self._running) >= self.cfg.max_scheduling_tablets:
            return False
        self._last_unrecoverable.pop(ctx.tablet_id, None)
        if self._matches_hint(ctx):
            ctx.hinted, ctx.dyn_prio = True, Priority.VERY_HIGH
        self._pending[ctx.tablet_id] = ctx
        return True

    def add_from_check(self, result: CheckResult, now_s: float) -> int:
        """Queue every ready tablet of a checker round; returns how many were added. A pending
        tablet the checker now ranks above its original priority is raised (never lowered)."""
        added = 0
        for h in result.to_schedule:
            cur = self._pending.get(h.tablet_id)
            if cur is not None:
                if (cur.type is SchedType.REPAIR and h.priority > cur.orig_prio
                        and h.priority > cur.priority):  # it got worse (lost another replica)
                    cur.dyn_prio = h.priority
                continue
            if h.tablet_id in self._running or (
                    h.status is not TabletStatus.UNRECOVERABLE
                    and len(self._pending) + len(self._running) >= self.cfg.max_scheduling_tablets):
                continue
            added += self.add(TabletSchedCtx.for_repair(h, now_s))
        return added

    def cancel(self, tablet_id: int, reason: str, now_s: float | None = None) -> bool:
        ctx = self._pending.pop(tablet_id, None) or self._running.pop(tablet_id, None)
        if ctx is None:
            return False
        when = now_s if now_s is not None else (ctx.last_visit_s or ctx.create_s)
        self._release(ctx)
        ctx.err_msg = reason
        ctx.transition_to(SchedState.CANCELLED, when)
        self._to_history(ctx)
        return True

    def set_repair_hints(self, hints: Iterable[tuple[int, int | None]], now_s: float) -> None:
        """ADMIN REPAIR TABLE (table_id, partition_id or None): pending and running tablets of
        those go VERY_HIGH and stay there; ADMIN CANCEL REPAIR = a smaller set (the hint is
        dropped and the original priority comes back)."""
        self._hints = set(hints)
        for ctx in itertools.chain(self._pending.values(), self._running.values()):
            if self._matches_hint(ctx):
                if not ctx.hinted:
                    ctx.hinted, ctx.dyn_prio, ctx.last_adjust_prio_s = True, Priority.VERY_HIGH, now_s
            elif ctx.hinted:
                ctx.hinted, ctx.dyn_prio, ctx.last_adjust_prio_s = False, ctx.orig_prio, now_s

    def _matches_hint(self, ctx: TabletSchedCtx) -> bool:
        return ctx.type is SchedType.REPAIR and (
            (ctx.table_id, None) in self._hints or (ctx.table_id, ctx.partition_id) in self._hints)

    def pending(self) -> list[list[str]]:
        return [c.row() for c in self._ordered_pending()]

    def running(self) -> list[list[str]]:
        return [c.row() for c in self._running.values()]

    def history(self) -> list[list[str]]:
        return [c.row() for c in self._history]

    def pending_ctxs(self) -> list[TabletSchedCtx]:
        return self._ordered_pending()

    def running_ctxs(self) -> list[TabletSchedCtx]:
        return list(self._running.values())

    def history_ctxs(self) -> list[TabletSchedCtx]:
        return list(self._history)

    def _ordered_pending(self) -> list[TabletSchedCtx]:
        return sorted(self._pending.values(), key=lambda c: (-c.priority, c.create_s, c.tablet_id))

    def _to_history(self, ctx: TabletSchedCtx) -> None:
        self._history.append(ctx)
        while len(self._history) > self.history_size:
            old = self._history.popleft()
            if self._last_unrecoverable.get(old.tablet_id) is old:
                del self._last_unrecoverable[old.tablet_id]

    def _finalize(self, ctx: TabletSchedCtx, state: SchedState, msg: str, now_s: float) -> None:
        self._pending.pop(ctx.tablet_id, None)
        self._running.pop(ctx.tablet_id, None)
        self._release(ctx)
        if msg:
            ctx.err_msg = msg
        ctx.transition_to(state, now_s)
        log.info("tablet %d %s scheduling %s: %s", ctx.tablet_id, ctx.type.value, state.value, msg)
        self._to_history(ctx)

    # ---- slots ---------------------------------------------------------------------------------

    def slot_capacity(self, pool: str) -> int:
        return self.cfg.slot_num_per_path if pool == REPAIR_POOL else self.cfg.balance_slot_num_per_path

    def slots_used(self, pool: str, backend_id: int, path_hash: int) -> int:
        return self._slots_used.get((pool, backend_id, path_hash), 0)

    def _free(self, pool: str, be: BackendView) -> int:
        return self.slot_capacity(pool) - self.slots_used(pool, be.backend_id, be.path_hash)

    def _take(self, ctx: TabletSchedCtx, pool: str, be: BackendView) -> None:
        key = (pool, be.backend_id, be.path_hash)
        self._slots_used[key] = self._slots_used.get(key, 0) + 1
        ctx.slots.append(key)

    def _release(self, ctx: TabletSchedCtx) -> None:
        for key in ctx.slots:
            left = self._slots_used.get(key, 0) - 1
            if left > 0:
                self._slots_used[key] = left
            else:
                self._slots_used.pop(key, None)
        ctx.slots.clear()

    # ---- scheduling ----------------------------------------------------------------------------

    def schedule(self, now_s: float, view: ClusterView) -> list[CloneTask]:
        """One scheduling round: the tasks to send now. Pending tablets go by dynamic priority,
        then age; one that cannot get a slot stays pending and the round moves on."""
        self._adjust_priorities(now_s)
        tasks: list[CloneTask] = []
        load: dict[int, int] = dict(view.replica_counts())
        stat: list[ClusterLoadStatistic] = []
        for ctx in self._ordered_pending():
            if ctx.next_sched_s > now_s:
                continue
            ctx.last_visit_s = now_s
            try:
                task = self._schedule_one(ctx, now_s, view, load, stat)
            except _Wait as w:
                ctx.err_msg = str(w)
                continue
            except _Retry as e:
                ctx.failed_sched += 1
                ctx.failed_sched_since_adjust += 1
                ctx.err_msg = str(e)
                self._release(ctx)
                ctx.reset_decision()
                continue
            except _Finalize as f:
                self._finalize(ctx, f.state, str(f), now_s)
                continue
            ctx.task_id = task.task_id
            ctx.last_sched_s = ctx.task_started_s = now_s
            ctx.err_msg = ""
            ctx.transition_to(SchedState.RUNNING, now_s)
            del self._pending[ctx.tablet_id]
            self._running[ctx.tablet_id] = ctx
            tasks.append(task)
        return tasks

    def _adjust_priorities(self, now_s: float) -> None:
        """StarRocks' adjustPriority: lower a tablet that keeps failing to schedule, raise one
        that waited long; VERY_HIGH originals and hinted tablets are never lowered."""
        cfg = self.cfg
        for ctx in self._pending.values():
            if ctx.hinted:
                continue
            if ctx.last_adjust_prio_s is None:
                ctx.last_adjust_prio_s = now_s
                continue
            if now_s - ctx.last_adjust_prio_s < cfg.adjust_prio_interval_s:
                continue
            if ctx.failed_sched_since_adjust > cfg.sched_failed_downgrade_threshold:
                if ctx.orig_prio is not Priority.VERY_HIGH and ctx.priority > Priority.LOW:
                    ctx.dyn_prio = ctx.priority.lower()
                    ctx.last_adjust_prio_s = now_s
                ctx.failed_sched_since_adjust = 0
            elif now_s - (ctx.last_sched_s or ctx.create_s) > cfg.max_not_scheduled_interval_s:
                if ctx.priority < Priority.VERY_HIGH:
                    ctx.dyn_prio = ctx.priority.higher()
                ctx.last_adjust_prio_s = now_s

    def _schedule_one(self, ctx: TabletSchedCtx, now_s: float, view: ClusterView,
                      load: dict[int, int], stat: list[ClusterLoadStatistic]) -> CloneTask:
        loc = view.locate(ctx.tablet_id)
        if loc is None:
            raise _Finalize(SchedState.CANCELLED, f"tablet {ctx.tablet_id} no longer exists")
        table, part, tablet = loc
        ctx.visible_version, ctx.committed_version = part.visible_version, part.committed_version
        backends = view.backends
        if ctx.type is SchedType.BALANCE:
            return self._schedule_balance(ctx, table, part, tablet, backends)
        h = self.checker.check_tablet(table, part, tablet, backends, now_s, self.cfg)
        if h.status is TabletStatus.HEALTHY:
            raise _Finalize(SchedState.FINISHED, "tablet is healthy")
        if h.status is TabletStatus.UNRECOVERABLE:
            raise _Finalize(SchedState.CANCELLED, h.reason)
        ctx.status = h.status
        if not h.ready and not ctx.hinted:  # an ADMIN REPAIR hint skips the repair delay
            raise _Wait(h.reason or "waiting for the repair delay")
        if h.status is TabletStatus.REDUNDANT:
            return self._drop_task(ctx, tablet, part, backends, load, view, SchedType.REPAIR,
                                   self._choose_redundant(table, part, tablet, backends, load))
        if h.status is TabletStatus.VERSION_INCOMPLETE:
            return self._repair_version(ctx, tablet, part, backends, view)
        # REPLICA_MISSING, REPLICA_RELOCATING: a full clone to a new BE
        src, src_be = self._choose_source(tablet, part, backends, REPAIR_POOL, exclude=None)
        dest_be = self._choose_dest(tablet, backends, load, stat, view, REPAIR_POOL)
        return self._clone_task(ctx, tablet, part, src, src_be, dest_be, CloneKind.FULL,
                                REPAIR_POOL, SchedType.REPAIR, load)

    def _schedule_balance(self, ctx: TabletSchedCtx, table: Table, part: Partition,
                          tablet: Tablet, backends: Mapping[int, BackendView]) -> CloneTask:
        v = part.visible_version
        src_be_id, dest_be_id = ctx.balance_src_be, ctx.balance_dest_be
        assert src_be_id is not None and dest_be_id is not None
        if ctx.phase is BalancePhase.DROP:
            if tablet.replica_on(src_be_id) is None:
                raise _Finalize(SchedState.FINISHED, "source replica already gone")
            left = sum(1 for r in tablet.replicas if r.backend_id != src_be_id
                       and replica_healthy(r, backends.get(r.backend_id), v))
            if left < table.replication_num:
                raise _Finalize(SchedState.CANCELLED, (
                    f"balance: only {left} healthy replicas besides backend {src_be_id}, "
                    f"need {table.replication_num}; source replica kept"))
            victim = tablet.replica_on(src_be_id)
            assert victim is not None
            return self._drop_task(ctx, tablet, part, backends, {}, None, SchedType.BALANCE, victim)
        if not (len(tablet.replicas) == table.replication_num and all(
                replica_healthy(r, backends.get(r.backend_id), v) for r in tablet.replicas)):
            raise _Finalize(SchedState.CANCELLED, "tablet is not healthy any more; balance cancelled")
        dest = backends.get(dest_be_id)
        if dest is None or not dest.available or tablet.replica_on(dest_be_id) is not None:
            raise _Finalize(SchedState.CANCELLED,
                            f"balance destination backend {dest_be_id} is unavailable or holds the tablet")
        if tablet.replica_on(src_be_id) is None:
            raise _Finalize(SchedState.CANCELLED, f"backend {src_be_id} holds no replica any more")
        src, src_be = self._choose_source(tablet, part, backends, BALANCE_POOL, exclude=None)
        if self._free(BALANCE_POOL, dest) <= 0:
            raise _Retry(f"balance slots of path {dest.path_hash} on backend {dest_be_id} are full")
        return self._clone_task(ctx, tablet, part, src, src_be, dest, CloneKind.FULL,
                                BALANCE_POOL, SchedType.BALANCE, {}, drop_after=src_be_id)

    def _repair_version(self, ctx: TabletSchedCtx, tablet: Tablet, part: Partition,
                        backends: Mapping[int, BackendView], view: ClusterView) -> CloneTask:
        v = part.visible_version
        lagging = [r for r in tablet.replicas
                   if (be := backends.get(r.backend_id)) is not None and be.alive and not r.bad
                   and r.state is ReplicaState.NORMAL and not version_complete(r, v)]
        # a replica holding every visible version whose failed version is only committed: no
        # source has that version before it is published, and a clone now would change nothing
        # (the tablet would be cloned again at once): wait for the publish
        unpublished = [r for r in lagging if r.version >= v and r.last_failed_version > v]
        lagging = [r for r in lagging if r not in unpublished]
        if not lagging and unpublished:
            raise _Wait(f"replica(s) on backend(s) {sorted(r.backend_id for r in unpublished)} miss only "
                        f"version(s) up to {max(r.last_failed_version for r in unpublished)}, committed but "
                        f"not visible yet (visible {v}): repaired once published")
        lagging.sort(key=lambda r: (backends[r.backend_id].decommissioned, r.version, r.backend_id))
        full_paths = []
        for r in lagging:
            dest = backends[r.backend_id]
            if self._free(REPAIR_POOL, dest) <= 0:
                full_paths.append(f"{dest.path_hash}@be{dest.backend_id}")
                continue
            src, src_be = self._choose_source(tablet, part, backends, REPAIR_POOL,
                                              exclude=r.backend_id)
            from_v, to_v = r.version + 1, max(v, src.version)
            kind = (CloneKind.INCREMENTAL if from_v <= to_v and view.source_has_versions(
                src.backend_id, tablet.tablet_id, from_v, to_v) else CloneKind.FULL)
            return self._clone_task(ctx, tablet, part, src, src_be, dest, kind, REPAIR_POOL,
                                    SchedType.REPAIR, {}, from_v=from_v, to_v=to_v)
        if full_paths:
            raise _Retry(f"repair slots full on destination path(s) {', '.join(full_paths)}")
        raise _Retry("no lagging replica on an alive backend to repair")

    def _choose_source(self, tablet: Tablet, part: Partition, backends: Mapping[int, BackendView],
                       pool: str, exclude: int | None) -> tuple[Replica, BackendView]:
        """The complete replica with the highest version (ties: least busy path) with a free
        slot. Replicas on decommissioned BEs may serve as sources."""
        v = part.visible_version
        cands = []
        for r in tablet.replicas:
            be = backends.get(r.backend_id)
            if (r.backend_id == exclude or be is None or not be.alive or r.bad
                    or r.state is not ReplicaState.NORMAL or not version_complete(r, v)):
                continue
            cands.append((-r.version, self.slots_used(pool, be.backend_id, be.path_hash),
                          r.backend_id, r, be))
        if not cands:
            raise _Retry(f"unable to find source replica at version {v}")
        cands.sort(key=lambda c: c[:3])
        for *_, r, be in cands:
            if self._free(pool, be) > 0:
                return r, be
        paths = ", ".join(f"{be.path_hash}@be{be.backend_id}" for *_, be in cands)
        raise _Retry(f"{pool} slots full on source path(s) {paths}")

    def _choose_dest(self, tablet: Tablet, backends: Mapping[int, BackendView],
                     load: dict[int, int], stat: list[ClusterLoadStatistic], view: ClusterView,
                     pool: str) -> BackendView:
        """The least loaded available BE without the tablet: replica count, then load score."""
        holders = {r.backend_id for r in tablet.replicas}
        cands = [be for bid, be in backends.items() if be.available and bid not in holders]
        if not cands:
            raise _Retry("unable to find an available destination backend without a replica")
        if not stat:
            stat.append(ClusterLoadStatistic(backends, view.replica_counts(), self.cfg))
        scores = stat[0].stats
        cands.sort(key=lambda be: (load.get(be.backend_id, 0),
                                   scores[be.backend_id].load_score if be.backend_id in scores else 0.0,
                                   be.backend_id))
        for be in cands:
            if self._free(pool, be) > 0:
                return be
        raise _Retry(f"{pool} slots full on every destination path ("
                     + ", ".join(f"{be.path_hash}@be{be.backend_id}" for be in cands[:5]) + ")")

    def _choose_redundant(self, table: Table, part: Partition, tablet: Tablet,
                          backends: Mapping[int, BackendView], load: Mapping[int, int]) -> Replica:
        """Which replica to drop: on a dead (or unknown) BE, then bad or not NORMAL, then
        lagging (lowest version), then on a decommissioned BE, then on the most loaded BE -
        never a healthy one when that would leave fewer than replication_num healthy."""
        v = part.visible_version
        healthy = sum(1 for r in tablet.replicas
                      if replica_healthy(r, backends.get(r.backend_id), v))

        def rank(r: Replica) -> tuple:
            be = backends.get(r.backend_id)
            if be is None or not be.alive:
                return (0, 0, 0)
            if r.bad or r.state is not ReplicaState.NORMAL:
                return (1, 0, 0)
            if not version_complete(r, v):
                return (2, r.version, 0)
            if be.decommissioned:
                return (3, 0, 0)
            return (4, -load.get(r.backend_id, 0), -be.used_capacity)

        for r in sorted(tablet.replicas, key=lambda r: (rank(r), r.backend_id)):
            if rank(r)[0] < 4 or healthy - 1 >= table.replication_num:
                return r
            break
        raise _Retry(f"no replica can be dropped without leaving fewer than "
                     f"{table.replication_num} healthy replicas")

    def _drop_task(self, ctx: TabletSchedCtx, tablet: Tablet, part: Partition,
                   backends: Mapping[int, BackendView], load: dict[int, int],
                   view: ClusterView | None, sched_type: SchedType, victim: Replica) -> CloneTask:
        be = backends.get(victim.backend_id)
        ctx.clone_kind = CloneKind.DROP
        if sched_type is SchedType.BALANCE:  # show the move: source -> destination
            dest = backends.get(ctx.balance_dest_be) if ctx.balance_dest_be is not None else None
            ctx.src_be, ctx.src_path = victim.backend_id, be.path_hash if be else None
            ctx.dest_be, ctx.dest_path = ctx.balance_dest_be, dest.path_hash if dest else None
        else:
            ctx.src_be, ctx.src_path = None, None
            ctx.dest_be, ctx.dest_path = victim.backend_id, be.path_hash if be else None
            ctx.copy_bytes = 0
        ctx.timeout_s = self.cfg.clone_timeout_min_s
        if victim.backend_id in load:
            load[victim.backend_id] -= 1
        return CloneTask(next(self._task_ids), tablet.tablet_id, CloneKind.DROP, None,
                         victim.backend_id, -1, -1, part.visible_version, ctx.timeout_s,
                         sched_type, None, be.path_hash if be else None)

    def _clone_task(self, ctx: TabletSchedCtx, tablet: Tablet, part: Partition, src: Replica,
                    src_be: BackendView, dest_be: BackendView, kind: CloneKind, pool: str,
                    sched_type: SchedType, load: dict[int, int], from_v: int = 1,
                    to_v: int | None = None, drop_after: int | None = None) -> CloneTask:
        to_v = src.version if to_v is None else to_v
        self._take(ctx, pool, src_be)
        self._take(ctx, pool, dest_be)
        if kind is CloneKind.FULL:
            from_v = 1
        ctx.src_be, ctx.src_path = src_be.backend_id, src_be.path_hash
        ctx.dest_be, ctx.dest_path = dest_be.backend_id, dest_be.path_hash
        ctx.clone_kind, ctx.version_from, ctx.version_to = kind, from_v, to_v
        ctx.copy_bytes = src.data_size
        ctx.timeout_s = self.cfg.clone_timeout_s(src.data_size)
        if dest_be.backend_id in load:
            load[dest_be.backend_id] += 1
        return CloneTask(next(self._task_ids), tablet.tablet_id, kind, src_be.backend_id,
                         dest_be.backend_id, from_v, to_v, part.visible_version, ctx.timeout_s,
                         sched_type, src_be.path_hash, dest_be.path_hash, drop_after)

    # ---- task reports --------------------------------------------------------------------------

    def on_task_finished(self, tablet_id: int, ok: bool, err: str, now_s: float,
                         view: ClusterView | None = None, task_id: int | None = None) -> bool:
        """A BE reported a task. Returns False for a report nobody waits for (a task that timed
        out or was cancelled, or a stale ``task_id``). A finished balance clone goes back to
        pending to have its source replica dropped by the next round."""
        ctx = self._running.get(tablet_id)
        if ctx is None or (task_id is not None and ctx.task_id != task_id):
            log.info("tablet %d: ignoring report of task %s (not running)", tablet_id, task_id)
            return False
        ctx.last_visit_s = now_s
        if not ok:
            self._fail_running(ctx, err or "clone task failed (no reason given)", now_s, False)
            return True
        if ctx.type is SchedType.BALANCE and ctx.phase is BalancePhase.CLONE:
            self._release(ctx)
            ctx.phase = BalancePhase.DROP
            ctx.transition_to(SchedState.PENDING, now_s)
            del self._running[tablet_id]
            self._pending[tablet_id] = ctx
            return True
        self._finalize(ctx, SchedState.FINISHED, "", now_s)
        return True

    def on_timeout(self, now_s: float) -> list[int]:
        """Fail running tasks past their timeout; returns their tablet ids (to cancel on BEs)."""
        late = [c for c in self._running.values()
                if c.task_started_s is not None and now_s - c.task_started_s > c.timeout_s]
        for ctx in late:
            self._fail_running(ctx, f"{ctx.clone_kind.value if ctx.clone_kind else 'task'} task "
                               f"timed out after {ctx.timeout_s:.0f} s", now_s, True)
        return [c.tablet_id for c in late]

    def _fail_running(self, ctx: TabletSchedCtx, err: str, now_s: float, timeout: bool) -> None:
        ctx.failed_running += 1
        if ctx.failed_running >= self.cfg.max_failed_runs:
            self._finalize(ctx, SchedState.TIMEOUT if timeout else SchedState.CANCELLED,
                           f"failed {ctx.failed_running} times (max_failed_runs="
                           f"{self.cfg.max_failed_runs}), last error: {err}", now_s)
            return
        self._release(ctx)
        ctx.reset_decision()
        ctx.err_msg = err
        ctx.next_sched_s = now_s + self.cfg.retry_backoff_s * 2 ** ctx.failed_running
        ctx.transition_to(SchedState.PENDING, now_s)
        del self._running[ctx.tablet_id]
        self._pending[ctx.tablet_id] = ctx

    # ---- invariant -----------------------------------------------------------------------------

    def check_invariant(self) -> list[str]:
        """The violations of the class invariant (empty when it holds)."""
        bad: list[str] = []
        both = set(self._pending) & set(self._running)
        if both:
            bad.append(f"tablets both pending and running: {sorted(both)}")
        for tid, c in self._pending.items():
            if c.tablet_id != tid or c.state is not SchedState.PENDING or c.slots:
                bad.append(f"pending tablet {tid}: state {c.state.value}, slots {c.slots}")
        held: dict[tuple[str, int, int], int] = {}
        for tid, c in self._running.items():
            if c.tablet_id != tid or c.state is not SchedState.RUNNING:
                bad.append(f"running tablet {tid}: state {c.state.value}")
            want = 0 if c.clone_kind is CloneKind.DROP else 2
            if len(c.slots) != want:
                bad.append(f"running tablet {tid} holds {len(c.slots)} slots, expected {want}")
            for key in c.slots:
                held[key] = held.get(key, 0) + 1
        if held != self._slots_used:
            bad.append(f"slot accounting {self._slots_used} != held {held}")
        for (pool, be, path), n in held.items():
            if n > self.slot_capacity(pool):
                bad.append(f"{pool} path {path} of backend {be} runs {n} > {self.slot_capacity(pool)}")
        if any(not c.state.is_final for c in self._history):
            bad.append("non-final context in history")
        if len(self._history) > self.history_size:
            bad.append(f"history has {len(self._history)} > {self.history_size}")
        if len(self._pending) + len(self._running) > self.cfg.max_scheduling_tablets:
            bad.append("more tablets scheduled than max_scheduling_tablets")
        return bad
