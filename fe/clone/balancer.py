"""Load statistics and the replica balancer (StarRocks' ClusterLoadStatistic / LoadBalancer).

Per available BE (alive, not decommissioned)::

    capacityCoefficient = 0.5                 if used% < 50 %
                        = 1.0                 if used% > capacity_used_percent_high_water (0.75)
                        = 2 x used% - 0.5     in between
    loadScore = capacityCoefficient x (used% / cluster used%)
              + (1 - capacityCoefficient) x (replicas / cluster average replicas per BE)

A BE is HIGH when (score - avg) / avg > balance_load_score_threshold, LOW when (avg - score) / avg
exceeds it, MID otherwise. The balancer proposes moves of fully healthy tablets from HIGH BEs to
LOW ones (MID ones when there is no LOW BE, and from MID when there is no HIGH BE), each a BALANCE
clone to the destination followed by a drop of the source replica, and only when the move leaves
the destination's score no higher than the source's (so moves never oscillate).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fe.catalog.model import Partition, Table, Tablet
from fe.clone.checker import replica_healthy
from fe.clone.sched_ctx import BackendView, SchedConfig, TabletSchedCtx


class LoadClass(enum.Enum):
    LOW = "LOW"
    MID = "MID"
    HIGH = "HIGH"


def capacity_coefficient(used_percent: float, high_water: float) -> float:
    if used_percent < 0.5:
        return 0.5
    if used_percent > high_water:
        return 1.0
    return min(max(2 * used_percent - 0.5, 0.5), 1.0)


@dataclass
class BackendLoadStatistic:
    backend_id: int
    total_capacity: int
    used_capacity: int
    replica_num: int
    load_score: float = 0.0
    capacity_coefficient: float = 0.5
    clazz: LoadClass = LoadClass.MID

    @property
    def used_percent(self) -> float:
        return self.used_capacity / self.total_capacity if self.total_capacity > 0 else 0.0

    def row(self) -> list[str]:
        """SHOW PROC '/cluster_balance/cluster_load_stat/...'-like row."""
        return [str(self.backend_id), "true", f"{self.load_score:.6f}", str(self.used_capacity),
                str(self.total_capacity), f"{100 * self.used_percent:.2f} %",
                str(self.replica_num), f"{self.capacity_coefficient:.3f}", self.clazz.value]


class ClusterLoadStatistic:
    """Load scores of the available BEs, computed once per balance round."""

    def __init__(self, backends: Mapping[int, BackendView], replica_counts: Mapping[int, int],
                 cfg: SchedConfig) -> None:
        self.cfg = cfg
        self.stats: dict[int, BackendLoadStatistic] = {
            bid: BackendLoadStatistic(bid, be.total_capacity, be.used_capacity,
                                      replica_counts.get(bid, 0))
            for bid, be in backends.items() if be.available
        }
        n = len(self.stats)
        total_cap = sum(s.total_capacity for s in self.stats.values())
        self.avg_used_percent = (sum(s.used_capacity for s in self.stats.values()) / total_cap
                                 if total_cap > 0 else 0.0)
        self.avg_replica_num = sum(s.replica_num for s in self.stats.values()) / n if n else 0.0
        for s in self.stats.values():
            s.capacity_coefficient, s.load_score = self._score(s.used_capacity, s.total_capacity,
                                                               s.replica_num)
        self.avg_load_score = sum(s.load_score for s in self.stats.values()) / n if n else 0.0
        for s in self.stats.values():
            s.clazz = self.classify(s.load_score)

    def _score(self, used: int, total: int, replicas: int) -> tuple[float, float]:
        used_percent = used / total if total > 0 else 0.0
        coef = capacity_coefficient(used_percent, self.cfg.capacity_used_percent_high_water)
        cap_prop = used_percent / self.avg_used_percent if self.avg_used_percent > 0 else 0.0
        rep_prop = replicas / self.avg_replica_num if self.avg_replica_num > 0 else 0.0
        return coef, coef * cap_prop + (1 - coef) * rep_prop

    def score_with(self, backend_id: int, replica_delta: int, used_delta: int) -> float:
        """The BE's score if it gained ``replica_delta`` replicas and ``used_delta`` bytes
        (cluster averages unchanged: a move only shifts load between BEs)."""
        s = self.stats[backend_id]
        return self._score(s.used_capacity + used_delta, s.total_capacity,
                           s.replica_num + replica_delta)[1]

    def classify(self, score: float) -> LoadClass:
        avg = self.avg_load_score
        if avg <= 0:
            return LoadClass.MID
        off = (score - avg) / avg
        if off > self.cfg.balance_load_score_threshold:
            return LoadClass.HIGH
        if -off > self.cfg.balance_load_score_threshold:
            return LoadClass.LOW
        return LoadClass.MID

    def of_class(self, clazz: LoadClass) -> list[BackendLoadStatistic]:
        return [s for s in self.stats.values() if s.clazz is clazz]

    def is_balanced(self) -> bool:
        return all(s.clazz is LoadClass.MID for s in self.stats.values())

    def rows(self) -> list[list[str]]:
        return [s.row() for s in sorted(self.stats.values(), key=lambda s: s.backend_id)]


def replica_counts(tables: Iterable[Table]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for table in tables:
        for p in table.partitions:
            for t in p.tablets:
                for r in t.replicas:
                    counts[r.backend_id] = counts.get(r.backend_id, 0) + 1
    return counts


def select_moves(tables: Iterable[Table], backends: Mapping[int, BackendView], now_s: float,
                 cfg: SchedConfig, busy_tablets: set[int] | frozenset, max_moves: int,
                 counts: Mapping[int, int] | None = None) -> list[TabletSchedCtx]:
    """Choose up to ``max_moves`` balance moves (BALANCE contexts for the scheduler).

    Only fully healthy tablets (every replica healthy, exactly replication_num of them) that are
    not already being scheduled (``busy_tablets``) move; the destination never holds the tablet.
    """
    if cfg.disable_balance or max_moves <= 0:
        return []
    tables = list(tables)
    stat = ClusterLoadStatistic(backends, counts if counts is not None else replica_counts(tables),
                                cfg)
    high, low = stat.of_class(LoadClass.HIGH), stat.of_class(LoadClass.LOW)
    if not high and not low:
        return []
    sources = high or stat.of_class(LoadClass.MID)
    dests = low or stat.of_class(LoadClass.MID)
    src_ids = {s.backend_id for s in sources}
    dest_ids = [s.backend_id for s in dests]
    delta: dict[int, tuple[int, int]] = {bid: (0, 0) for bid in stat.stats}

    def score(bid: int) -> float:
        dr, du = delta[bid]
        return stat.score_with(bid, dr, du)

    by_src: dict[int, list[tuple[Table, Partition, Tablet, int]]] = {b: [] for b in src_ids}
    for table in tables:
        rep = table.replication_num
        for p in table.partitions:
            v = p.visible_version
            for t in p.tablets:
                if t.tablet_id in busy_tablets or len(t.replicas) != rep:
                    continue
                if not all(replica_healthy(r, backends.get(r.backend_id), v) for r in t.replicas):
                    continue
                for r in t.replicas:
                    if r.backend_id in by_src:
                        by_src[r.backend_id].append((table, p, t, r.data_size))
    moves: list[TabletSchedCtx] = []
    chosen: set[int] = set()
    for src in sorted(src_ids, key=lambda b: (-stat.stats[b].load_score, b)):
        for table, p, t, size in by_src[src]:
            if len(moves) >= max_moves:
                return moves
            if stat.classify(score(src)) is LoadClass.LOW or (
                    high and stat.classify(score(src)) is not LoadClass.HIGH):
                break
            if t.tablet_id in chosen:
                continue
            holders = {r.backend_id for r in t.replicas}
            for dest in sorted(dest_ids, key=lambda b: (score(b), b)):
                if dest in holders or dest == src:
                    continue
                src_after = stat.score_with(src, delta[src][0] - 1, delta[src][1] - size)
                dest_after = stat.score_with(dest, delta[dest][0] + 1, delta[dest][1] + size)
                if dest_after > src_after:
                    continue
                delta[src] = (delta[src][0] - 1, delta[src][1] - size)
                delta[dest] = (delta[dest][0] + 1, delta[dest][1] + size)
                chosen.add(t.tablet_id)
                moves.append(TabletSchedCtx.for_balance(
                    tablet_id=t.tablet_id, db_id=table.db_id, table_id=table.table_id,
                    partition_id=p.partition_id, src_be=src, dest_be=dest,
                    visible_version=p.visible_version, committed_version=p.committed_version,
                    now_s=now_s))
                break
    return moves
