"""TabletChecker: looks at every tablet and says what is wrong with it. It never acts.

The checker reads the catalog objects (:mod:`fe.catalog.model`) and a :class:`BackendView` per BE,
and returns a :class:`TabletHealth` per tablet: a status (HEALTHY, REPLICA_MISSING,
VERSION_INCOMPLETE, REPLICA_RELOCATING, REDUNDANT, UNRECOVERABLE), a priority and whether the
tablet is ``ready`` to be scheduled. What to do about it is the scheduler's business.

Replica classes, for a partition at visible version V:

- *dead*: its BE is known but not alive. It counts as missing only once the BE has been dead for
  the repair delay (``repair_delay_factor_s`` x 1 / 2 / 3 for HIGH / NORMAL / LOW); until then the
  tablet is REPLICA_MISSING with ``ready=False`` (waiting for the BE to come back). VERY_HIGH
  tablets and VERSION_INCOMPLETE ones are ready at once.
- *gone*: its BE is unknown (dropped), or the replica is bad or not in state NORMAL.
- *alive*: on an alive BE, not bad, state NORMAL.  *complete*: alive and caught up (version >= V
  and no failed version above its version).  *healthy*: complete and its BE not decommissioned.

Priorities (StarRocks' rules, with the tabletsim additions noted): 0 healthy, or at most 1 healthy
of 3 or more -> VERY_HIGH; healthy < write quorum -> HIGH; otherwise NORMAL. REPLICA_RELOCATING is
NORMAL when healthy < quorum, else LOW. REDUNDANT is VERY_HIGH, as in StarRocks ("delete redundant
replicas can free the space quickly"); dropping takes no clone slot. An ADMIN REPAIR hint raises an
unhealthy tablet to VERY_HIGH.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fe.catalog.model import Partition, Replica, ReplicaState, Table, Tablet
from fe.clone.sched_ctx import BackendView, Priority, SchedConfig, TabletStatus

_NORMAL = ReplicaState.NORMAL


def version_complete(replica: Replica, visible_version: int) -> bool:
    """Caught up to the visible version with no failed version above what it holds."""
    return replica.version >= visible_version and (
        replica.last_failed_version < 0 or replica.last_failed_version <= replica.version)


def replica_healthy(replica: Replica, be: BackendView | None, visible_version: int) -> bool:
    """The definition every module shares: readable, writable, caught up, staying."""
    return (be is not None and be.alive and not be.decommissioned and not replica.bad
            and replica.state is _NORMAL and version_complete(replica, visible_version))


def healthy_count(tablet: Tablet, backends: Mapping[int, BackendView], visible_version: int,
                  exclude_backend: int | None = None) -> int:
    return sum(1 for r in tablet.replicas if r.backend_id != exclude_backend
               and replica_healthy(r, backends.get(r.backend_id), visible_version))


def repair_priority(healthy: int, replication_num: int, quorum: int) -> Priority:
    if healthy == 0 or (replication_num >= 3 and healthy <= 1):
        return Priority.VERY_HIGH
    if healthy < quorum:
        return Priority.HIGH
    return Priority.NORMAL


@dataclass(slots=True)
class TabletHealth:
    db_id: int
    table_id: int
    partition_id: int
    tablet_id: int
    status: TabletStatus
    priority: Priority
    ready: bool
    visible_version: int
    committed_version: int
    healthy_num: int
    replication_num: int
    reason: str = ""


@dataclass
class CheckResult:
    to_schedule: list[TabletHealth] = field(default_factory=list)
    """Unhealthy tablets that are ready to be scheduled (UNRECOVERABLE ones included, so the
    scheduler can record why in its history)."""
    waiting: list[TabletHealth] = field(default_factory=list)
    """Unhealthy but not ready: replicas on a BE dead for less than the repair delay."""
    unhealthy_by_db: dict[int, list[int]] = field(default_factory=dict)
    """db id -> unhealthy tablet ids (SHOW PROC '/statistic' UnhealthyTabletNum and
    '/statistic/<DbId>' UnhealthyTablets)."""
    tablet_num: int = 0
    replica_num: int = 0
    status_counts: dict[TabletStatus, int] = field(default_factory=dict)


def _replica_brief(tablet: Tablet) -> str:
    return ",".join(f"{r.backend_id}:v{r.version}/{r.state.value}{'/bad' if r.bad else ''}"
                    for r in tablet.replicas)


class TabletChecker:
    """Detects unhealthy tablets. Stateless between rounds: the caller passes time and config."""

    def check_tablet(self, table: Table, partition: Partition, tablet: Tablet,
                     backends: Mapping[int, BackendView], now_s: float,
                     cfg: SchedConfig) -> TabletHealth:
        n_available = sum(1 for be in backends.values() if be.available)
        return self._check(table, partition, tablet, backends, now_s, cfg, n_available)

    def check_all(self, tables: Iterable[Table], backends: Mapping[int, BackendView], now_s: float,
                  cfg: SchedConfig,
                  repair_hints: set[tuple[int, int | None]] | frozenset = frozenset()) -> CheckResult:
        """One checker round over every tablet of ``tables``.

        ``repair_hints`` holds (table_id, partition_id or None for the whole table) from ADMIN
        REPAIR TABLE: their unhealthy tablets go VERY_HIGH (and so are ready at once).
        """
        result = CheckResult()
        counts = result.status_counts
        good = {bid for bid, be in backends.items() if be.available}
        n_available = len(good)
        check = self._check
        for table in tables:
            rep = table.replication_num
            whole_hint = (table.table_id, None) in repair_hints
            for partition in table.partitions:
                v = partition.visible_version
                hinted = whole_hint or (table.table_id, partition.partition_id) in repair_hints
                result.tablet_num += len(partition.tablets)
                for tablet in partition.tablets:
                    replicas = tablet.replicas
                    result.replica_num += len(replicas)
                    if len(replicas) == rep:
                        for r in replicas:  # fast path: every replica healthy
                            if (r.backend_id not in good or r.bad or r.state is not _NORMAL
                                    or r.version < v or r.last_failed_version > r.version):
                                break
                        else:
                            continue
                    h = check(table, partition, tablet, backends, now_s, cfg, n_available)
                    if h.status is TabletStatus.HEALTHY:
                        continue
                    counts[h.status] = counts.get(h.status, 0) + 1
                    result.unhealthy_by_db.setdefault(table.db_id, []).append(tablet.tablet_id)
                    if hinted:
                        h.priority = Priority.VERY_HIGH
                        h.ready = True
                    (result.to_schedule if h.ready else result.waiting).append(h)
        counts[TabletStatus.HEALTHY] = result.tablet_num - sum(counts.values())
        return result

    def _check(self, table: Table, partition: Partition, tablet: Tablet,
               backends: Mapping[int, BackendView], now_s: float, cfg: SchedConfig,
               n_available: int) -> TabletHealth:
        v = partition.visible_version
        rep = table.replication_num
        quorum = table.quorum
        alive = complete = healthy = lagging = gone = 0
        dead_for: list[float] = []
        available_holders: set[int] = set()
        for r in tablet.replicas:
            be = backends.get(r.backend_id)
            if be is None:
                gone += 1
                continue
            if not be.alive:
                since = be.dead_since_s if be.dead_since_s is not None else now_s
                dead_for.append(now_s - since)
                continue
            if be.available:
                available_holders.add(r.backend_id)
            if r.bad or r.state is not _NORMAL:
                gone += 1
                continue
            alive += 1
            if not version_complete(r, v):
                lagging += 1
                continue
            complete += 1
            if not be.decommissioned:
                healthy += 1
        has_dest = n_available > len(available_holders)
        prio = repair_priority(healthy, rep, quorum)

        def health(status: TabletStatus, priority: Priority, ready: bool = True,
                   reason: str = "") -> TabletHealth:
            return TabletHealth(table.db_id, table.table_id, partition.partition_id,
                                tablet.tablet_id, status, priority, ready, v,
                                partition.committed_version, healthy, rep, reason)

        if complete == 0:
            return health(TabletStatus.UNRECOVERABLE, Priority.VERY_HIGH, reason=(
                f"tablet {tablet.tablet_id}: no replica at visible version {v} on an alive "
                f"backend to copy from (replicas be:version/state: {_replica_brief(tablet)})"))
        if alive < rep:
            delay = cfg.repair_delay_s(prio)
            waiting = sum(1 for d in dead_for if d < delay)
            ready = prio is Priority.VERY_HIGH or alive + waiting < rep
            if not ready and lagging and complete < rep:
                # repair what can be repaired now; the dead BE may still come back
                return health(TabletStatus.VERSION_INCOMPLETE, prio)
            if has_dest:
                return health(TabletStatus.REPLICA_MISSING, prio, ready,
                              "" if ready else "waiting for dead backend(s) to come back")
            if gone and rep > 1 and n_available >= rep and len(tablet.replicas) >= n_available:
                # every available BE already holds a replica: drop the bad one to make room
                return health(TabletStatus.REDUNDANT, Priority.VERY_HIGH)
            if not (lagging and complete < rep):
                return health(TabletStatus.REPLICA_MISSING, prio, ready,
                              "no available backend without a replica of this tablet")
        if lagging and complete < rep:
            return health(TabletStatus.VERSION_INCOMPLETE, prio)
        if healthy < rep and has_dest:
            return health(TabletStatus.REPLICA_RELOCATING,
                          Priority.NORMAL if healthy < quorum else Priority.LOW)
        if len(tablet.replicas) > rep:
            return health(TabletStatus.REDUNDANT, Priority.VERY_HIGH)
        if healthy < rep:
            return health(TabletStatus.REPLICA_RELOCATING,
                          Priority.NORMAL if healthy < quorum else Priority.LOW,
                          reason="no available backend to move the replica to")
        return health(TabletStatus.HEALTHY, Priority.NORMAL)
