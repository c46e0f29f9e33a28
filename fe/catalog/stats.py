"""SHOW PROC '/statistic' and '/statistic/<DbId>': tablets, replicas, unhealthy and inconsistent ones."""

from __future__ import annotations

from collections.abc import Callable

from common.errors import InvalidArgument, NotFound
from fe.catalog.catalog import Catalog
from fe.catalog.model import TabletLocation

STATISTIC_COLUMNS = [
    "DbId", "DbName", "TableNum", "PartitionNum", "IndexNum", "TabletNum", "ReplicaNum",
    "UnhealthyTabletNum", "InconsistentTabletNum",
]


class Statistics:
    """Counts per database; health and consistency come from whoever knows them.

    ``is_unhealthy(loc)`` is the tablet checker's verdict; ``is_inconsistent(tablet_id)`` the
    consistency checker's (replicas whose checksums at the visible version disagree).
    """

    def __init__(
        self,
        catalog: Catalog,
        is_unhealthy: Callable[[TabletLocation], bool],
        is_inconsistent: Callable[[int], bool],
    ) -> None:
        self._catalog = catalog
        self._is_unhealthy = is_unhealthy
        self._is_inconsistent = is_inconsistent
        self._extra: dict[str, Callable[[], tuple[list[str], list[list[str]]]]] = {}

    def register(self, path: str, fn: Callable[[], tuple[list[str], list[list[str]]]]) -> None:
        """More proc paths (e.g. '/cluster_balance/pending_tablets') from other domains."""
        self._extra[path] = fn

    def proc(self, path: str) -> tuple[list[str], list[list[str]]]:
        clean = "/" + path.strip().strip("'\"").strip("/")
        if clean == "/statistic":
            return STATISTIC_COLUMNS, self._statistic()
        if clean.startswith("/statistic/"):
            return ["UnhealthyTablets", "InconsistentTablets"], [self._db_detail(clean.split("/")[2])]
        if clean in self._extra:
            return self._extra[clean]()
        allowed = ", ".join(["'/statistic'", "'/statistic/<DbId>'", *(f"'{p}'" for p in sorted(self._extra))])
        raise InvalidArgument(f"unknown proc path '{path}'; allowed: {allowed}")

    def unhealthy_tablets(self, db_id: int) -> tuple[list[int], list[int]]:
        unhealthy, inconsistent = [], []
        for loc in self._catalog.tablet_locations():
            if loc.db.db_id != db_id:
                continue
            if self._is_unhealthy(loc):
                unhealthy.append(loc.tablet.tablet_id)
            if self._is_inconsistent(loc.tablet.tablet_id):
                inconsistent.append(loc.tablet.tablet_id)
        return sorted(unhealthy), sorted(inconsistent)

    def _statistic(self) -> list[list[str]]:
        rows = []
        totals = [0] * 7
        for db in self._catalog.databases():
            partitions = sum(len(t.partitions) for t in db.tables.values())
            tablets = sum(len(p.tablets) for t in db.tables.values() for p in t.partitions)
            replicas = sum(len(tb.replicas) for t in db.tables.values() for p in t.partitions for tb in p.tablets)
            unhealthy, inconsistent = self.unhealthy_tablets(db.db_id)
            counts = [len(db.tables), partitions, len(db.tables), tablets, replicas, len(unhealthy), len(inconsistent)]
            totals = [a + b for a, b in zip(totals, counts, strict=True)]
            rows.append([str(db.db_id), db.name, *map(str, counts)])
        rows.append(["Total", str(len(rows)), *map(str, totals)])
        return rows

    def _db_detail(self, db_id_text: str) -> list[str]:
        try:
            db_id = int(db_id_text)
        except ValueError:
            raise InvalidArgument(f"'/statistic/{db_id_text}': the DbId must be a number") from None
        if self._catalog.db_by_id(db_id) is None:
            raise NotFound(f"unknown DbId {db_id}; see SHOW PROC '/statistic' for the ids")
        unhealthy, inconsistent = self.unhealthy_tablets(db_id)
        return [f"[{', '.join(map(str, unhealthy))}]", f"[{', '.join(map(str, inconsistent))}]"]
