"""The replica-repair simulator: a product, not a test hack (trio's MockClock in spirit).

:class:`SimCluster` holds catalog tables built from :mod:`fe.catalog.model`, a set of
:class:`SimBackend` s that can die, come back and be decommissioned, and a :class:`SimExecutor`
that runs :class:`CloneTask` s on virtual time the way the BEs and the FE's finish-task path
would: a full clone to a new BE first adds a replica in state CLONE (not readable, not counted),
which becomes NORMAL at the source's version when the clone finishes; an incremental clone brings
a lagging replica up to the source's version; DROP removes the replica. ``run_rounds`` drives
checker -> balancer -> scheduler -> executor on a :class:`FakeClock`. No real clock, no I/O, and
the only randomness is the ``random.Random`` passed in.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from common.coltypes import Column, ColumnType
from fe.catalog.model import Partition, Replica, ReplicaState, Table, Tablet, WriteQuorum
from fe.clone.balancer import select_moves
from fe.clone.checker import CheckResult, TabletChecker, healthy_count
from fe.clone.sched_ctx import BackendView, CloneKind, CloneTask, SchedConfig, SchedType
from fe.clone.scheduler import TabletScheduler

log = logging.getLogger(__name__)

GB = 1024 ** 3


class FakeClock:
    """Virtual seconds since the epoch; only :meth:`advance` moves it."""

    def __init__(self, start_s: float = 1_700_000_000.0) -> None:
        self.now_s = start_s

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"the clock only moves forward (advance({seconds}))")
        self.now_s += seconds
        return self.now_s


@dataclass
class SimBackend:
    backend_id: int
    total_capacity: int = 100 * GB
    base_used: int = 0
    """Bytes used by things other than tablets."""
    alive: bool = True
    decommissioned: bool = False
    dead_since_s: float | None = None
    path_hash: int | None = None
    compacted_upto: dict[int, int] = field(default_factory=dict)
    """tablet id -> versions up to this one were compacted (no longer cloneable one by one)."""
    replica_bytes: int = 0
    replica_num: int = 0

    def view(self) -> BackendView:
        return BackendView(self.backend_id, self.alive, self.decommissioned, self.dead_since_s,
                           self.total_capacity, self.base_used + self.replica_bytes,
                           self.path_hash if self.path_hash is not None else self.backend_id)


FailRule = Callable[[CloneTask], "str | None"]
DurationRule = Callable[[CloneTask], float]


@dataclass
class _InFlight:
    task: CloneTask
    finish_s: float
    created_replica: bool


class SimExecutor:
    """Runs clone and drop tasks on virtual time. ``duration`` says how long a task takes (0 =
    done by the next poll); ``fail`` returns an error message to make a task fail."""

    def __init__(self, cluster: SimCluster, duration: DurationRule | None = None,
                 fail: FailRule | None = None) -> None:
        self.cluster = cluster
        self.duration = duration or (lambda task: 0.0)
        self.fail = fail or (lambda task: None)
        self.in_flight: dict[int, _InFlight] = {}  # by tablet id

    def submit(self, task: CloneTask, now_s: float) -> None:
        c = self.cluster
        created = False
        if task.kind is not CloneKind.DROP:
            _, part, tablet = c.index[task.tablet_id]
            if tablet.replica_on(task.dest_backend_id) is None:
                tablet.replicas.append(Replica(next(c.replica_ids), task.dest_backend_id, version=1,
                                               last_success_version=-1, state=ReplicaState.CLONE))
                c.account(task.dest_backend_id, 1, 0)
                created = True
        self.in_flight[task.tablet_id] = _InFlight(task, now_s + self.duration(task), created)

    def abort(self, tablet_id: int) -> None:
        f = self.in_flight.pop(tablet_id, None)
        if f is not None:
            self._undo(f)

    def _undo(self, f: _InFlight) -> None:
        if f.created_replica:
            loc = self.cluster.index.get(f.task.tablet_id)
            if loc is not None:
                r = loc[2].replica_on(f.task.dest_backend_id)
                if r is not None and r.state is ReplicaState.CLONE:
                    self.cluster.remove_replica(loc[2], r)

    def poll(self, now_s: float) -> list[tuple[CloneTask, bool, str]]:
        """Finish every task due by ``now_s``; returns (task, ok, error) reports."""
        done = [f for f in self.in_flight.values() if f.finish_s <= now_s]
        reports = []
        for f in sorted(done, key=lambda f: (f.finish_s, f.task.task_id)):
            del self.in_flight[f.task.tablet_id]
            err = self._apply(f)
            if err:
                self._undo(f)
            reports.append((f.task, not err, err))
        return reports

    def _apply(self, f: _InFlight) -> str:
        t, c = f.task, self.cluster
        loc = c.index.get(t.tablet_id)
        if loc is None:
            return f"tablet {t.tablet_id} was dropped"
        injected = self.fail(t)
        if injected:
            return injected
        _, part, tablet = loc
        dest = c.backends.get(t.dest_backend_id)
        if t.kind is CloneKind.DROP:
            r = tablet.replica_on(t.dest_backend_id)
            if r is not None:
                c.remove_replica(tablet, r)
            return ""
        src_be = c.backends.get(t.src_backend_id) if t.src_backend_id is not None else None
        for role, be in (("source", src_be), ("destination", dest)):
            if be is None or not be.alive:
                return f"{role} backend {t.src_backend_id if role == 'source' else t.dest_backend_id} is dead"
        src = tablet.replica_on(t.src_backend_id)  # type: ignore[arg-type]
        dst = tablet.replica_on(t.dest_backend_id)
        if src is None or dst is None:
            return "source or destination replica vanished during the clone"
        if t.kind is CloneKind.INCREMENTAL and not c.source_has_versions(
                t.src_backend_id, t.tablet_id, t.version_from, t.version_to):  # type: ignore[arg-type]
            return f"source lost versions [{t.version_from}, {t.version_to}] to compaction"
        c.account(dst.backend_id, 0, src.data_size - dst.data_size)
        dst.version = dst.last_success_version = src.version
        dst.last_failed_version, dst.bad, dst.state = -1, False, ReplicaState.NORMAL
        dst.data_size, dst.row_count, dst.version_count = src.data_size, src.row_count, src.version_count
        if t.kind is CloneKind.FULL:
            dest.compacted_upto[t.tablet_id] = src.version  # type: ignore[union-attr]
        return ""


@dataclass
class RoundStats:
    now_s: float
    checked: CheckResult
    tasks: list[CloneTask]
    reports: list[tuple[CloneTask, bool, str]]
    timed_out: list[int]
    balance_moves: int


class SimCluster:
    """Catalog tables + simulated BEs + executor, driven on a fake clock. Implements the
    scheduler's :class:`~fe.clone.scheduler.ClusterView`."""

    def __init__(self, n_backends: int = 3, cfg: SchedConfig | None = None,
                 clock: FakeClock | None = None, rng: random.Random | None = None,
                 capacity: int = 100 * GB, history_size: int = 1000) -> None:
        self.cfg = cfg or SchedConfig()
        self.clock = clock or FakeClock()
        self.rng = rng or random.Random(0)
        self.backends: dict[int, SimBackend] = {}
        self.tables: list[Table] = []
        self.index: dict[int, tuple[Table, Partition, Tablet]] = {}
        self.ids = itertools.count(10_000)
        self.replica_ids = itertools.count(1_000_000)
        self.checker = TabletChecker()
        self.scheduler = TabletScheduler(self.cfg, self.checker, history_size=history_size)
        self.executor = SimExecutor(self)
        self.repair_hints: set[tuple[int, int | None]] = set()
        self._views: dict[int, BackendView] | None = None
        for _ in range(n_backends):
            self.add_backend(capacity)

    # ---- backends --------------------------------------------------------------------------------

    def add_backend(self, capacity: int = 100 * GB, base_used: int = 0) -> SimBackend:
        be = SimBackend(next(self.ids), capacity, base_used)
        self.backends[be.backend_id] = be
        self._views = None
        return be

    def kill(self, backend_id: int) -> None:
        be = self.backends[backend_id]
        if be.alive:
            be.alive, be.dead_since_s = False, self.clock.now_s
            self._views = None

    def restart(self, backend_id: int) -> None:
        be = self.backends[backend_id]
        be.alive, be.dead_since_s = True, None
        self._views = None

    def decommission(self, backend_id: int) -> None:
        self.backends[backend_id].decommissioned = True
        self._views = None

    def compact(self, backend_id: int, tablet_id: int, upto_version: int) -> None:
        self.backends[backend_id].compacted_upto[tablet_id] = upto_version

    def account(self, backend_id: int, replicas: int, nbytes: int) -> None:
        be = self.backends.get(backend_id)
        if be is not None:
            be.replica_num += replicas
            be.replica_bytes += nbytes
            self._views = None

    def remove_replica(self, tablet: Tablet, replica: Replica) -> None:
        tablet.replicas.remove(replica)
        self.account(replica.backend_id, -1, -replica.data_size)

    # ---- ClusterView -------------------------------------------------------------------------------

    @property
    def backend_views(self) -> dict[int, BackendView]:
        if self._views is None:
            self._views = {bid: be.view() for bid, be in self.backends.items()}
        return self._views

    def locate(self, tablet_id: int) -> tuple[Table, Partition, Tablet] | None:
        return self.index.get(tablet_id)

    def replica_counts(self) -> Mapping[int, int]:
        return {bid: be.replica_num for bid, be in self.backends.items()}

    def source_has_versions(self, backend_id: int, tablet_id: int, from_v: int, to_v: int) -> bool:
        be = self.backends.get(backend_id)
        loc = self.index.get(tablet_id)
        if be is None or not be.alive or loc is None:
            return False
        r = loc[2].replica_on(backend_id)
        return r is not None and r.version >= to_v and from_v > be.compacted_upto.get(tablet_id, 0)

    def view(self) -> _View:
        return _View(self)

    # ---- catalog -----------------------------------------------------------------------------------

    def make_table(self, n_tablets: int, replication_num: int = 3,
                   backends: Iterable[int] | None = None,
                   quorum: WriteQuorum = WriteQuorum.MAJORITY, *, db_id: int = 1,
                   n_partitions: int = 1, data_size: int = 1024 * 1024) -> Table:
        """A table whose tablets' replicas go round-robin over ``backends`` (default: all)."""
        be_ids = list(backends) if backends is not None else sorted(self.backends)
        if len(be_ids) < replication_num:
            raise ValueError(f"replication_num {replication_num} needs at least that many "
                             f"backends, got {len(be_ids)}")
        table_id = next(self.ids)
        table = Table(table_id, db_id, f"t{table_id}", [Column("k", ColumnType("INT"), is_key=True)], ["k"], ["k"],
                      n_tablets, replication_num, quorum)
        k = 0
        for pi in range(n_partitions):
            part = Partition(next(self.ids), f"p{pi}")
            for _ in range(n_tablets):
                tablet = Tablet(next(self.ids))
                for j in range(replication_num):
                    bid = be_ids[(k + j) % len(be_ids)]
                    tablet.replicas.append(Replica(next(self.replica_ids), bid, data_size=data_size))
                    self.account(bid, 1, data_size)
                k += 1
                part.tablets.append(tablet)
                self.index[tablet.tablet_id] = (table, part, tablet)
            table.partitions.append(part)
        self.tables.append(table)
        return table

    def load(self, table: Table, skip_backends: Iterable[int] = ()) -> bool:
        """Publish one new version to every partition of ``table``. Replicas on dead BEs, on
        ``skip_backends``, or not caught up miss it (last_failed_version = the version). Fails
        (False, nothing changes) when a tablet would get fewer than its write quorum."""
        skip = set(skip_backends)

        def writable(r: Replica, v: int) -> bool:
            be = self.backends.get(r.backend_id)
            return (be is not None and be.alive and r.backend_id not in skip and not r.bad
                    and r.state is ReplicaState.NORMAL and r.version == v - 1)

        for part in table.partitions:
            v = part.next_version
            if any(sum(writable(r, v) for r in t.replicas) < table.quorum for t in part.tablets):
                return False
        for part in table.partitions:
            v = part.next_version
            for t in part.tablets:
                for r in t.replicas:
                    if writable(r, v):
                        r.version = r.last_success_version = v
                        r.version_count += 1
                    elif r.state is ReplicaState.NORMAL:
                        r.last_failed_version = max(r.last_failed_version, v)
            part.visible_version, part.next_version = v, v + 1
        return True

    def all_tablets(self) -> Iterable[tuple[Table, Partition, Tablet]]:
        return self.index.values()

    def min_healthy_margin(self) -> int:
        """min over tablets of (healthy replicas - write quorum); negative = quorum violated."""
        views = self.backend_views
        return min((healthy_count(t, views, p.visible_version) - tb.quorum
                    for tb, p, t in self.index.values()), default=0)

    # ---- rounds ------------------------------------------------------------------------------------

    def run_round(self, round_s: float = 1.0) -> RoundStats:
        now = self.clock.now_s
        sched, view = self.scheduler, self.view()
        reports = self.executor.poll(now)
        for task, ok, err in reports:
            sched.on_task_finished(task.tablet_id, ok, err, now, view, task_id=task.task_id)
        timed_out = sched.on_timeout(now)
        for tid in timed_out:
            self.executor.abort(tid)
        checked = self.checker.check_all(self.tables, self.backend_views, now, self.cfg,
                                         self.repair_hints)
        sched.set_repair_hints(self.repair_hints, now)
        sched.add_from_check(checked, now)
        moves = 0
        if not self.cfg.disable_balance and sched.num_of(SchedType.REPAIR) == 0:
            free = sum(1 for be in self.backend_views.values() if be.available) \
                * self.cfg.balance_slot_num_per_path - sched.num_of(SchedType.BALANCE)
            for ctx in select_moves(self.tables, self.backend_views, now, self.cfg,
                                    sched.busy_tablets(), max(free, 0), self.replica_counts()):
                moves += sched.add(ctx)
        tasks = sched.schedule(now, view)
        for task in tasks:
            self.executor.submit(task, now)
        self.clock.advance(round_s)
        return RoundStats(now, checked, tasks, reports, timed_out, moves)

    def run_rounds(self, n: int, round_s: float = 1.0,
                   on_round: Callable[[SimCluster, RoundStats], None] | None = None) -> list[RoundStats]:
        out = []
        for _ in range(n):
            stats = self.run_round(round_s)
            if on_round is not None:
                on_round(self, stats)
            out.append(stats)
        return out

    def run_until_quiet(self, max_rounds: int, round_s: float = 1.0,
                        on_round: Callable[[SimCluster, RoundStats], None] | None = None) -> int:
        """Run until nothing is scheduled, in flight or unhealthy-and-ready; returns the rounds
        used (``max_rounds`` when it never got quiet)."""
        for i in range(max_rounds):
            stats = self.run_round(round_s)
            if on_round is not None:
                on_round(self, stats)
            if (not stats.checked.to_schedule and not stats.checked.waiting
                    and not self.scheduler.busy_tablets() and not self.executor.in_flight
                    and not stats.tasks and stats.balance_moves == 0):
                return i + 1
        return max_rounds


class _View:
    """The :class:`~fe.clone.scheduler.ClusterView` of a :class:`SimCluster`."""

    def __init__(self, cluster: SimCluster) -> None:
        self._c = cluster

    @property
    def backends(self) -> Mapping[int, BackendView]:
        return self._c.backend_views

    def locate(self, tablet_id: int) -> tuple[Table, Partition, Tablet] | None:
        return self._c.locate(tablet_id)

    def replica_counts(self) -> Mapping[int, int]:
        return self._c.replica_counts()

    def source_has_versions(self, backend_id: int, tablet_id: int, from_v: int, to_v: int) -> bool:
        return self._c.source_has_versions(backend_id, tablet_id, from_v, to_v)
