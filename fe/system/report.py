"""Tablet reports: what a BE really holds, reconciled with what the FE believes it holds.

Every report interval (and right after it starts) a BE sends all its tablets with their versions,
row counts and sizes, and the txns it still keeps pending rowsets of. The FE answers and fixes
its catalog through the journal:

- a replica the FE has on that BE but the BE does not hold (a wiped disk, a lost tablet) is
  marked bad once it is absent from ``strikes`` reports in a row: the tablet checker then sees it
  gone and the scheduler re-makes it by a full clone;
- a tablet the BE holds but the FE has no replica of on that BE (an orphan: a dropped table whose
  BE was down, a moved replica whose drop failed, a create rolled back) is answered in
  ``drop_tablet_ids`` once the same replica was orphaned in ``strikes`` reports in a row, and
  never while a CREATE/DROP TABLE is between its BE calls and its journal record. The answer
  names that replica (``drop_replica_ids``, as the scheduler's drops do): a clone may make a new
  replica of the tablet on that BE before the answer arrives, and the BE keeps the new one
  (replica ids are never reused: fe/persist/ids.py);
- versions only go up: a replica the BE reports at a higher version than the FE knows (a publish
  whose answer was lost) is raised, with its row count and size, and its lastFailedVersion is
  cleared once covered;
- pending txns that are VISIBLE, ABORTED or unknown are answered in ``finished_txn_ids``: the BE
  deletes those pending rowsets;
- row count, size and version count at the same version (compaction lowers the version count) are
  synced when one of them changed, and only then: an unchanged report journals nothing;
- each replica's compaction status is kept in memory (``Replica.compaction``), never journaled:
  runtime state that every report refreshes.

The FE's side of the comparison comes from the catalog's inverted index (backend -> tablet ->
replica, as StarRocks' TabletInvertedIndex): a report costs the reporting BE's tablets, not a walk
of every tablet in the cluster, so a big catalog never holds the event loop (and the heartbeats
it serves) for long.

Replicas in state CLONE, and tablets with a clone or drop task in flight on that BE (``busy``),
belong to the clone executor and are left alone. Two strikes (not one) because a report is built
on the BE a moment before the FE reads it: a replica created in between would look missing once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from common.compaction_status import CompactionStatus
from common.errors import NotFound
from fe.catalog.catalog import Catalog
from fe.catalog.model import Replica, ReplicaState
from fe.system.backends import BackendRegistry
from fe.txn.manager import TransactionManager
from fe.txn.state import TxnStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportedTablet:
    tablet_id: int
    replica_id: int
    version: int
    row_count: int
    data_size: int
    version_count: int
    compaction: CompactionStatus | None = None


@dataclass
class ReportOutcome:
    drop_tablet_ids: list[int] = field(default_factory=list)
    drop_replica_ids: list[int] = field(default_factory=list)
    """One per ``drop_tablet_ids`` entry: the orphan replica the BE reported."""
    finished_txn_ids: list[int] = field(default_factory=list)
    marked_missing: list[int] = field(default_factory=list)
    synced: list[int] = field(default_factory=list)


class TabletReportHandler:
    def __init__(self, catalog: Catalog, backends: BackendRegistry, txns: TransactionManager,
                 busy: Callable[[int, int], bool] = lambda backend_id, tablet_id: False,
                 strikes: int = 2) -> None:
        self._catalog = catalog
        self._backends = backends
        self._txns = txns
        self._busy = busy
        self._strikes = strikes
        self._orphan: dict[int, dict[int, tuple[int, int]]] = {}  # be -> tablet -> (replica, strikes)
        self._missing: dict[int, dict[int, int]] = {}

    def handle(self, backend_id: int, tablets: list[ReportedTablet],
               pending_txn_ids: list[int]) -> ReportOutcome:
        if self._backends.get(backend_id) is None:
            raise NotFound(f"unknown backend {backend_id}: register first (RegisterBackend)")
        out = ReportOutcome()
        held = {t.tablet_id: t for t in tablets}
        mine = self._catalog.replicas_on(backend_id)  # the inverted index: this BE's replicas only
        updates = self._missing_and_sync(backend_id, held, mine, out)
        self._orphans(backend_id, held, mine, out)
        if updates:
            self._catalog.update_replicas(updates)
        for txn_id in pending_txn_ids:
            txn = self._txns.find(txn_id)
            if txn is None or txn.status in (TxnStatus.VISIBLE, TxnStatus.ABORTED):
                out.finished_txn_ids.append(txn_id)
        if out.marked_missing or out.drop_tablet_ids:
            log.warning("report of backend %d: %d replicas missing (marked bad: %s), %d orphan "
                        "replicas to drop (tablet/replica: %s)", backend_id, len(out.marked_missing),
                        out.marked_missing[:10], len(out.drop_tablet_ids),
                        [f"{t}/{r}" for t, r in zip(out.drop_tablet_ids[:10], out.drop_replica_ids, strict=False)])
        return out

    def _missing_and_sync(self, backend_id: int, held: dict[int, ReportedTablet],
                          mine: dict[int, Replica], out: ReportOutcome) -> list[dict]:
        strikes = self._missing.setdefault(backend_id, {})
        updates: list[dict] = []
        for tablet_id, r in mine.items():
            rep = held.get(tablet_id)
            if rep is not None and rep.compaction is not None and rep.replica_id == r.replica_id:
                r.compaction = rep.compaction  # in memory only: not a journaled change
            if r.state is ReplicaState.CLONE or self._busy(backend_id, tablet_id):
                strikes.pop(tablet_id, None)
                continue
            if rep is None or rep.replica_id != r.replica_id:
                if r.bad:
                    continue
                n = strikes[tablet_id] = strikes.get(tablet_id, 0) + 1
                if n >= self._strikes:
                    del strikes[tablet_id]
                    out.marked_missing.append(tablet_id)
                    updates.append({"tablet_id": tablet_id, "backend_id": backend_id, "bad": True})
                continue
            strikes.pop(tablet_id, None)
            if rep.version > r.version:
                u = {"tablet_id": tablet_id, "backend_id": backend_id, "version": rep.version,
                     "last_success_version": rep.version, "row_count": rep.row_count,
                     "data_size": rep.data_size, "version_count": rep.version_count}
                if 0 <= r.last_failed_version <= rep.version:
                    u["last_failed_version"] = -1
                updates.append(u)
                out.synced.append(tablet_id)
            elif rep.version == r.version and (rep.row_count, rep.data_size, rep.version_count) != (
                    r.row_count, r.data_size, r.version_count):
                updates.append({"tablet_id": tablet_id, "backend_id": backend_id,
                                "row_count": rep.row_count, "data_size": rep.data_size,
                                "version_count": rep.version_count})
                out.synced.append(tablet_id)
        for tablet_id in [t for t in strikes if t not in mine]:
            del strikes[tablet_id]
        return updates

    def _orphans(self, backend_id: int, held: dict[int, ReportedTablet], mine: dict[int, Replica],
                 out: ReportOutcome) -> None:
        strikes = self._orphan.setdefault(backend_id, {})
        if self._catalog.ddl_in_progress:
            return  # a table being created (or dropped) is not judged until its record is written
        seen = set()
        for tablet_id, rep in held.items():
            if tablet_id in mine or self._busy(backend_id, tablet_id):
                continue
            seen.add(tablet_id)
            replica_id, n = strikes.get(tablet_id, (rep.replica_id, 0))
            n = n + 1 if replica_id == rep.replica_id else 1  # another replica now: count anew
            strikes[tablet_id] = (rep.replica_id, n)
            if n >= self._strikes:
                out.drop_tablet_ids.append(tablet_id)
                out.drop_replica_ids.append(rep.replica_id)
        for tablet_id in [t for t in strikes if t not in seen]:
            del strikes[tablet_id]

    def forget(self, backend_id: int) -> None:
        """The BE was dropped: its strikes go with it."""
        self._orphan.pop(backend_id, None)
        self._missing.pop(backend_id, None)
