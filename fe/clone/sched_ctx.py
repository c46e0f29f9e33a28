"""Tablet scheduling vocabulary: priorities, statuses, config, and one tablet's scheduling context.

A :class:`TabletSchedCtx` is what StarRocks' TabletSchedCtx is: the scheduler's record of one
tablet being repaired or balanced, shown row by row in SHOW PROC '/cluster_balance/pending_tablets'
(and running_tablets, history_tablets). Its state machine::

    PENDING ──schedule──> RUNNING ──task ok──> FINISHED
       │  ^                  │
       │  └──fail, retry─────┤──fail max_failed_runs times──> CANCELLED | TIMEOUT
       │     (backoff)       └──unexpected──> UNEXPECTED
       └──healthy again──> FINISHED;  dropped / unrecoverable / cancel──> CANCELLED

Times are seconds on the caller's clock (``now_s``); nothing here reads a real clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from common.timefmt import fmt_ms


class Priority(enum.IntEnum):
    LOW = 0
    NORMAL = 1
    HIGH = 2
    VERY_HIGH = 3

    def lower(self) -> Priority:
        return Priority(max(self - 1, Priority.LOW))

    def higher(self) -> Priority:
        return Priority(min(self + 1, Priority.VERY_HIGH))


class TabletStatus(enum.Enum):
    HEALTHY = "HEALTHY"
    REPLICA_MISSING = "REPLICA_MISSING"
    VERSION_INCOMPLETE = "VERSION_INCOMPLETE"
    REPLICA_RELOCATING = "REPLICA_RELOCATING"
    REDUNDANT = "REDUNDANT"
    UNRECOVERABLE = "UNRECOVERABLE"


class SchedType(enum.Enum):
    REPAIR = "REPAIR"
    BALANCE = "BALANCE"


class CloneKind(enum.Enum):
    FULL = "FULL"
    INCREMENTAL = "INCREMENTAL"
    DROP = "DROP"


class BalancePhase(enum.Enum):
    """A balance move is a clone to the destination, then a drop of the source replica."""

    CLONE = "CLONE"
    DROP = "DROP"


class SchedState(enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    UNEXPECTED = "UNEXPECTED"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({SchedState.FINISHED, SchedState.CANCELLED, SchedState.TIMEOUT,
                    SchedState.UNEXPECTED})

TRANSITIONS: dict[SchedState, frozenset[SchedState]] = {
    SchedState.PENDING: frozenset({SchedState.RUNNING, SchedState.FINISHED, SchedState.CANCELLED}),
    SchedState.RUNNING: frozenset({SchedState.PENDING, SchedState.FINISHED, SchedState.CANCELLED,
                                   SchedState.TIMEOUT, SchedState.UNEXPECTED}),
    SchedState.FINISHED: frozenset(),
    SchedState.CANCELLED: frozenset(),
    SchedState.TIMEOUT: frozenset(),
    SchedState.UNEXPECTED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A scheduling context was asked to make a move its transition table does not allow."""


MB = 1024 * 1024


@dataclass(frozen=True)
class SchedConfig:
    """The tablet checker's and scheduler's knobs, built from the FE dynamic config by the caller."""

    repair_delay_factor_s: float = 5.0
    """tablet_sched_repair_delay_factor_second: a replica on a dead BE counts as missing after
    this x 1 / 2 / 3 for HIGH / NORMAL / LOW priority (StarRocks default 60)."""
    slot_num_per_path: int = 2
    """tablet_sched_slot_num_per_path: concurrent repair clones per BE storage path."""
    balance_slot_num_per_path: int = 1
    """Concurrent balance clones per BE storage path (a pool separate from repair)."""
    clone_timeout_min_s: float = 10.0
    """Lower bound of a clone task's timeout."""
    clone_timeout_max_s: float = 600.0
    """Upper bound of a clone task's timeout."""
    clone_bytes_per_s_for_timeout: int = 50 * MB
    """Timeout = tablet size / this, clamped to [min, max]."""
    max_failed_runs: int = 3
    """A tablet whose task failed (or timed out) this many times goes to history."""
    retry_backoff_s: float = 2.0
    """After the n-th failure a tablet waits retry_backoff_s x 2^n before it is retried."""
    balance_load_score_threshold: float = 0.1
    """tablet_sched_balance_load_score_threshold: |score - avg| / avg beyond this is unbalanced."""
    capacity_used_percent_high_water: float = 0.75
    """Above this disk use a BE's load score weighs disk use only."""
    disable_balance: bool = False
    """tablet_sched_disable_balance."""
    max_scheduling_tablets: int = 10000
    """tablet_sched_max_scheduling_tablets: at most this many tablets in pending + running."""
    adjust_prio_interval_s: float = 30.0
    """Dynamic priority changes at most once per this interval per tablet (StarRocks 5 min)."""
    max_not_scheduled_interval_s: float = 60.0
    """A pending tablet not scheduled for this long is raised one priority level."""
    sched_failed_downgrade_threshold: int = 5
    """A pending tablet that failed to schedule more than this often since the last adjustment is
    lowered one level (VERY_HIGH originals and ADMIN REPAIR hints are never lowered)."""

    def repair_delay_s(self, priority: Priority) -> float:
        """How long a replica on a dead BE is waited for before it counts as missing."""
        factor = {Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}.get(priority, 0)
        return self.repair_delay_factor_s * factor

    def clone_timeout_s(self, data_bytes: int) -> float:
        raw = data_bytes / self.clone_bytes_per_s_for_timeout if self.clone_bytes_per_s_for_timeout else 0
        return min(max(raw, self.clone_timeout_min_s), self.clone_timeout_max_s)


@dataclass(frozen=True, slots=True)
class BackendView:
    """What the checker and scheduler know about one BE (from heartbeats and the registry)."""

    backend_id: int
    alive: bool
    decommissioned: bool
    dead_since_s: float | None
    total_capacity: int
    used_capacity: int
    path_hash: int
    """One storage path per BE; the backend id when nothing else is known."""

    @property
    def available(self) -> bool:
        """Can take new replicas: alive and not being decommissioned."""
        return self.alive and not self.decommissioned


@dataclass(frozen=True)
class CloneTask:
    """One task the scheduler asks a BE to run (the FE sends it; the executor applies it)."""

    task_id: int
    tablet_id: int
    kind: CloneKind
    src_backend_id: int | None  # None for DROP
    dest_backend_id: int  # the BE that clones into, or whose replica is dropped
    version_from: int
    version_to: int
    visible_version: int
    timeout_s: float
    type: SchedType
    src_path_hash: int | None = None
    dest_path_hash: int | None = None
    drop_backend_id_after: int | None = None
    """Balance moves: the replica to drop once this clone has finished."""


COLUMNS: tuple[str, ...] = (
    "TabletId", "Type", "Status", "State", "OrigPrio", "DynmPrio", "SrcBe", "SrcPath", "DestBe",
    "DestPath", "Timeout", "Create", "LstSched", "LstVisit", "Finished", "Rate", "FailedSched",
    "FailedRunning", "LstAdjPrio", "VisibleVer", "VisibleVerHash", "CmtVer", "CmtVerHash", "ErrMsg",
)
"""SHOW PROC '/cluster_balance/{pending,running,history}_tablets' columns, as in the seed
(the version hashes are always 0: tabletsim, like StarRocks 2.x+, has no version hash)."""


def _fmt_time(t: float | None) -> str:
    return "N/A" if t is None else fmt_ms(int(t * 1000))


@dataclass(eq=False)
class TabletSchedCtx:
    tablet_id: int
    db_id: int
    table_id: int
    partition_id: int
    type: SchedType
    status: TabletStatus
    orig_prio: Priority
    create_s: float
    visible_version: int = 1
    committed_version: int = 1
    dyn_prio: Priority | None = None
    state: SchedState = SchedState.PENDING
    src_be: int | None = None
    src_path: int | None = None
    dest_be: int | None = None
    dest_path: int | None = None
    clone_kind: CloneKind | None = None
    version_from: int = -1
    version_to: int = -1
    timeout_s: float = 0.0
    last_sched_s: float | None = None
    last_visit_s: float | None = None
    finished_s: float | None = None
    task_started_s: float | None = None
    failed_sched: int = 0
    failed_running: int = 0
    last_adjust_prio_s: float | None = None
    err_msg: str = ""
    hinted: bool = False
    """ADMIN REPAIR hint: dynamic priority pinned at VERY_HIGH."""
    next_sched_s: float = 0.0
    """Retry backoff: not scheduled before this time."""
    balance_src_be: int | None = None
    """BALANCE: the BE whose replica moves away (dropped after the clone)."""
    balance_dest_be: int | None = None
    """BALANCE: the BE that receives the new replica."""
    phase: BalancePhase = BalancePhase.CLONE
    copy_bytes: int = 0
    task_id: int | None = None
    failed_sched_since_adjust: int = field(default=0, repr=False)
    slots: list[tuple[str, int, int]] = field(default_factory=list, repr=False)
    """(pool, backend_id, path_hash) slots this context holds while RUNNING."""

    def __post_init__(self) -> None:
        if self.dyn_prio is None:
            self.dyn_prio = self.orig_prio

    @classmethod
    def for_repair(cls, health, now_s: float) -> TabletSchedCtx:
        """A REPAIR context from a :class:`fe.clone.checker.TabletHealth`."""
        return cls(
            tablet_id=health.tablet_id, db_id=health.db_id, table_id=health.table_id,
            partition_id=health.partition_id, type=SchedType.REPAIR, status=health.status,
            orig_prio=health.priority, create_s=now_s, visible_version=health.visible_version,
            committed_version=health.committed_version,
            err_msg=health.reason if health.status is TabletStatus.UNRECOVERABLE else "",
        )

    @classmethod
    def for_balance(cls, *, tablet_id: int, db_id: int, table_id: int, partition_id: int,
                    src_be: int, dest_be: int, visible_version: int, committed_version: int,
                    now_s: float) -> TabletSchedCtx:
        return cls(
            tablet_id=tablet_id, db_id=db_id, table_id=table_id, partition_id=partition_id,
            type=SchedType.BALANCE, status=TabletStatus.HEALTHY, orig_prio=Priority.LOW,
            create_s=now_s, visible_version=visible_version, committed_version=committed_version,
            balance_src_be=src_be, balance_dest_be=dest_be,
        )

    @property
    def priority(self) -> Priority:
        assert self.dyn_prio is not None
        return self.dyn_prio

    def transition_to(self, target: SchedState, now_s: float) -> None:
        """Move to ``target``; raises :class:`IllegalTransition` on a move the table forbids."""
        if target not in TRANSITIONS[self.state]:
            raise IllegalTransition(
                f"tablet {self.tablet_id}: scheduling state {self.state.value} -> {target.value} "
                f"is not allowed (allowed: {sorted(s.value for s in TRANSITIONS[self.state])})")
        self.state = target
        self.last_visit_s = now_s
        if target.is_final:
            self.finished_s = now_s

    def reset_decision(self) -> None:
        """Forget the chosen source/destination (before a retry)."""
        self.src_be = self.src_path = self.dest_be = self.dest_path = None
        self.clone_kind = None
        self.version_from = self.version_to = -1
        self.timeout_s = 0.0
        self.task_started_s = None
        self.task_id = None

    def rate(self) -> str:
        if self.finished_s is None or self.task_started_s is None or not self.copy_bytes:
            return "N/A"
        elapsed = max(self.finished_s - self.task_started_s, 1e-3)
        return f"{self.copy_bytes / elapsed / MB:.3f} MB/s"

    def row(self) -> list[str]:
        """One SHOW PROC '/cluster_balance/...' row, in :data:`COLUMNS` order."""
        def num(v: int | None) -> str:
            return "-1" if v is None else str(v)

        return [
            str(self.tablet_id), self.type.value, self.status.value, self.state.value,
            self.orig_prio.name, self.priority.name, num(self.src_be), num(self.src_path),
            num(self.dest_be), num(self.dest_path), str(int(self.timeout_s)),
            _fmt_time(self.create_s), _fmt_time(self.last_sched_s), _fmt_time(self.last_visit_s),
            _fmt_time(self.finished_s), self.rate(), str(self.failed_sched),
            str(self.failed_running), _fmt_time(self.last_adjust_prio_s),
            str(self.visible_version), "0", str(self.committed_version), "0", self.err_msg or "N/A",
        ]

    def row_dict(self) -> dict[str, str]:
        return dict(zip(COLUMNS, self.row(), strict=True))
