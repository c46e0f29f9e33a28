"""The catalog: databases, tables, partitions, tablets and replicas (journal domain ``catalog``).

DDL runs under one lock. CREATE TABLE is atomic: ids and placement are decided, every BE creates
its replicas, and only then is the table journaled; a BE failing part-way makes the FE drop what
was created and answer UNAVAILABLE, so no half-made table is ever visible (a killed FE leaves at
most orphan replicas on BEs, which tablet reports clean up). The ids sent to the BEs come from a
journaled id batch (fe/persist/ids.py), so a restarted FE never gives them to another table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import orjson

from common.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable
from common.gen.tabletsim.v1 import backend_pb2
from fe.catalog.ddl import (
    ALTERABLE_PROPERTIES,
    CheckedTable,
    TableSpec,
    check_name,
    check_table,
    parse_table_properties,
)
from fe.catalog.model import (
    Database,
    GroupCommitMode,
    Partition,
    Replica,
    ReplicaState,
    Table,
    Tablet,
    TabletLocation,
    WriteQuorum,
)
from fe.catalog.placement import place_replicas
from fe.persist.ids import IdAllocator
from fe.persist.journal import Journal
from fe.system.backends import BackendRegistry
from fe.system.be_client import BackendClients
from fe.system.dynconfig import DynamicConfig

log = logging.getLogger(__name__)

DROP_TIMEOUT_S = 5.0
REPLICA_FIELDS = frozenset({"version", "last_success_version", "last_failed_version", "last_failed_time_ms",
                            "state", "bad", "data_size", "row_count", "version_count"})


class Catalog:
    def __init__(
        self,
        journal: Journal,
        ids: IdAllocator,
        backends: BackendRegistry,
        clients: BackendClients,
        config: DynamicConfig,
        wall_ms: Callable[[], int],
    ) -> None:
        self._journal = journal
        self._ids = ids
        self._backends = backends
        self._clients = clients
        self._config = config
        self._wall_ms = wall_ms
        self._dbs: dict[str, Database] = {}
        self._tablets: dict[int, TabletLocation] = {}
        # the inverted index (StarRocks' TabletInvertedIndex): backend -> tablet -> its replica
        # there. Kept by every apply that adds, drops or moves replicas and by load(), so the
        # live path and replay keep it equal to a walk of the catalog.
        self._by_backend: dict[int, dict[int, Replica]] = {}
        self._lock = asyncio.Lock()
        self._table_dropped: list[Callable[[Database, Table, str], None]] = []
        self._verbs = {
            "create_db": self._apply_create_db,
            "drop_db": self._apply_drop_db,
            "create_table": self._apply_create_table,
            "drop_table": self._apply_drop_table,
            "alter_table": self._apply_alter_table,
            "add_replica": self._apply_add_replica,
            "update_replicas": self._apply_update_replicas,
            "drop_replica": self._apply_drop_replica,
        }

    # ------------------------------------------------------------------ queries
    def databases(self) -> list[Database]:
        return sorted(self._dbs.values(), key=lambda d: d.db_id)

    def db(self, name: str) -> Database:
        db = self._dbs.get(name)
        if db is None:
            known = ", ".join(sorted(self._dbs)) or "none"
            raise NotFound(f"unknown database '{name}'; databases: {known}")
        return db

    def db_by_id(self, db_id: int) -> Database | None:
        return next((d for d in self._dbs.values() if d.db_id == db_id), None)

    def table(self, db_name: str, table_name: str) -> tuple[Database, Table]:
        db = self.db(db_name)
        table = db.tables.get(table_name)
        if table is None:
            known = ", ".join(sorted(db.tables)) or "none"
            raise NotFound(f"unknown table '{table_name}' in database '{db_name}'; tables: {known}")
        return db, table

    def partitions(self, table: Table, names: list[str]) -> list[Partition]:
        """The named partitions of ``table`` (all when ``names`` is empty)."""
        if not names:
            return list(table.partitions)
        out = []
        for name in names:
            p = table.partition(name)
            if p is None:
                raise NotFound(
                    f"unknown partition '{name}' of table '{table.name}'; "
                    f"partitions: {', '.join(x.name for x in table.partitions)}"
                )
            out.append(p)
        return out

    def location(self, tablet_id: int) -> TabletLocation:
        loc = self._tablets.get(tablet_id)
        if loc is None:
            raise NotFound(f"unknown tablet {tablet_id}")
        return loc

    def find_location(self, tablet_id: int) -> TabletLocation | None:
        return self._tablets.get(tablet_id)

    def tablet_locations(self) -> Iterator[TabletLocation]:
        return iter(list(self._tablets.values()))

    def replicas_on(self, backend_id: int) -> dict[int, Replica]:
        """tablet id -> the replica on ``backend_id``, for that backend's replicas only (a copy:
        the index, not a walk of every tablet)."""
        return dict(self._by_backend.get(backend_id, {}))

    def replica_count(self, backend_id: int) -> int:
        return len(self._by_backend.get(backend_id, ()))

    def replicas_per_backend(self) -> dict[int, int]:
        counts: dict[int, int] = {b.backend_id: 0 for b in self._backends.all()}
        for backend_id, replicas in self._by_backend.items():
            counts[backend_id] = len(replicas)
        return counts

    @property
    def ddl_in_progress(self) -> bool:
        """A CREATE/DROP is between its BE calls and its journal record (reports must not judge
        the tablets it touches yet)."""
        return self._lock.locked()

    def on_table_dropped(self, fn: Callable[[Database, Table, str], None]) -> None:
        """``fn(db, table, reason)`` after a table (or its database) is dropped."""
        self._table_dropped.append(fn)

    # ------------------------------------------------------------------ DDL
    def create_database(self, name: str, if_not_exists: bool = False) -> Database:
        check_name("database", name)
        if name in self._dbs:
            if if_not_exists:
                return self._dbs[name]
            raise AlreadyExists(f"database '{name}' already exists")
        db_id = self._ids.next()
        self._journal.log("catalog.create_db", {"db_id": db_id, "name": name, "time_ms": self._wall_ms()})
        return self._dbs[name]

    async def drop_database(self, name: str, if_exists: bool = False) -> None:
        async with self._lock:
            if name not in self._dbs:
                if if_exists:
                    return
                self.db(name)
            db = self._dbs[name]
            tablets = self._replicas_by_backend([t for t in db.tables.values()])
            self._journal.log("catalog.drop_db", {"db_id": db.db_id, "name": name})
        await self._drop_on_backends(tablets)

    async def create_table(self, db_name: str, spec: TableSpec, if_not_exists: bool = False) -> Table:
        checked = check_table(spec)
        async with self._lock:
            db = self.db(db_name)
            if checked.name in db.tables:
                if if_not_exists:
                    return db.tables[checked.name]
                raise AlreadyExists(f"table '{checked.name}' already exists in database '{db_name}'")
            table = self._new_table(db, checked)
            await self._create_on_backends(table)
            self._journal.log("catalog.create_table", {"db_id": db.db_id, "table": table.to_dict()})
            created = db.tables[table.name]
        log.info("created table %s.%s (id %d): %d partitions, %d tablets x %d replicas",
                 db_name, created.name, created.table_id, len(created.partitions),
                 sum(len(p.tablets) for p in created.partitions), created.replication_num)
        return created

    async def drop_table(self, db_name: str, table_name: str, if_exists: bool = False) -> None:
        async with self._lock:
            db = self.db(db_name)
            if table_name not in db.tables:
                if if_exists:
                    return
                self.table(db_name, table_name)
            table = db.tables[table_name]
            tablets = self._replicas_by_backend([table])
            self._journal.log("catalog.drop_table", {"db_id": db.db_id, "name": table_name})
        await self._drop_on_backends(tablets)

    def alter_table(self, db_name: str, table_name: str, props: dict[str, str]) -> Table:
        _, table = self.table(db_name, table_name)
        if not props:
            raise InvalidArgument(
                f"ALTER TABLE needs at least one property; allowed: {', '.join(ALTERABLE_PROPERTIES)}")
        parsed = parse_table_properties(props, alter=True)
        record: dict[str, Any] = {"db_id": self.db(db_name).db_id, "name": table_name}
        for key, value in parsed.items():  # only the properties given change
            record[key] = value.value if isinstance(value, (WriteQuorum, GroupCommitMode)) else value
        self._journal.log("catalog.alter_table", record)
        return table

    # ------------------------------------------------------------------ helpers
    def _new_table(self, db: Database, checked: CheckedTable) -> Table:
        candidates = {
            b.backend_id: 0 for b in self._backends.all() if b.alive and not b.decommissioned
        }
        current = self.replicas_per_backend()
        for be in candidates:
            candidates[be] = current.get(be, 0)
        placement = place_replicas(len(checked.partitions) * checked.buckets, checked.replication_num, candidates)
        table = Table(
            table_id=self._ids.next(), db_id=db.db_id, name=checked.name, columns=checked.columns,
            key_columns=checked.key_columns, distribution_columns=checked.distribution_columns,
            buckets=checked.buckets, replication_num=checked.replication_num,
            write_quorum=checked.write_quorum, partition_column=checked.partition_column,
            create_time_ms=self._wall_ms(), group_commit=checked.group_commit,
            group_commit_interval_ms=checked.group_commit_interval_ms,
        )
        slots = iter(placement)
        for cp in checked.partitions:
            partition = Partition(self._ids.next(), cp.name, cp.lower, cp.upper,
                                  visible_version_time_ms=table.create_time_ms)
            for _ in range(checked.buckets):
                tablet = Tablet(self._ids.next())
                tablet.replicas = [Replica(self._ids.next(), be) for be in next(slots)]
                partition.tablets.append(tablet)
            table.partitions.append(partition)
        return table

    async def _create_on_backends(self, table: Table) -> None:
        schema_json = orjson.dumps([c.to_dict() for c in table.columns]).decode()
        per_be: dict[int, list[backend_pb2.TabletMeta]] = {}
        for p in table.partitions:
            for t in p.tablets:
                for r in t.replicas:
                    per_be.setdefault(r.backend_id, []).append(backend_pb2.TabletMeta(
                        tablet_id=t.tablet_id, replica_id=r.replica_id, db_id=table.db_id,
                        table_id=table.table_id, partition_id=p.partition_id,
                        version=p.visible_version, schema_json=schema_json,
                    ))
        timeout = float(self._config.tablet_create_timeout_second)

        async def create(be_id: int, metas: list[backend_pb2.TabletMeta]) -> None:
            await self._clients.stub(be_id).CreateTablets(
                backend_pb2.CreateTabletsRequest(tablets=metas), timeout=timeout
            )

        results = await asyncio.gather(*(create(be, m) for be, m in per_be.items()), return_exceptions=True)
        failures = {be: exc for be, exc in zip(per_be, results, strict=True) if isinstance(exc, BaseException)}
        if not failures:
            return
        await self._drop_on_backends({be: [m.tablet_id for m in metas] for be, metas in per_be.items()})
        be_id, exc = next(iter(failures.items()))
        detail = f"{exc.code().name}: {exc.details()}" if isinstance(exc, grpc.aio.AioRpcError) else repr(exc)
        raise Unavailable(
            f"CREATE TABLE {table.name} rolled back: backend {be_id} could not create its "
            f"{len(per_be[be_id])} replicas ({detail}); nothing was created"
        )

    def _replicas_by_backend(self, tables: list[Table]) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for table in tables:
            for p in table.partitions:
                for t in p.tablets:
                    for r in t.replicas:
                        out.setdefault(r.backend_id, []).append(t.tablet_id)
        return out

    async def _drop_on_backends(self, tablets: dict[int, list[int]]) -> None:
        async def drop(be_id: int, ids: list[int]) -> None:
            be = self._backends.get(be_id)
            if be is None or not be.alive:
                return  # its tablet report will show them as orphans, dropped then
            try:
                await self._clients.stub(be_id).DropTablets(
                    backend_pb2.DropTabletsRequest(tablet_ids=ids), timeout=DROP_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as exc:
                log.warning("backend %d did not drop %d tablets (%s); its report will clean them",
                            be_id, len(ids), exc.code().name)

        await asyncio.gather(*(drop(be, ids) for be, ids in tablets.items()))

    # ------------------------------------------------------------------ journal domain
    def apply(self, verb: str, data: dict[str, Any]) -> Any:
        return self._verbs[verb](data)

    def _apply_create_db(self, d: dict[str, Any]) -> None:
        self._ids.observe(d["db_id"])
        self._dbs[d["name"]] = Database(d["db_id"], d["name"], {}, d.get("time_ms", 0))

    def _db_by_id(self, db_id: int) -> Database:
        db = self.db_by_id(db_id)
        if db is None:
            raise ValueError(f"edit log names unknown database id {db_id}")
        return db

    def _apply_drop_db(self, d: dict[str, Any]) -> None:
        db = self._dbs.pop(d["name"])
        for table in db.tables.values():
            self._unindex(table)
            self._notify_dropped(db, table, f"database '{db.name}' was dropped")

    def _apply_create_table(self, d: dict[str, Any]) -> None:
        db = self._db_by_id(d["db_id"])
        table = Table.from_dict(d["table"])
        db.tables[table.name] = table
        self._index(db, table)

    def _apply_drop_table(self, d: dict[str, Any]) -> None:
        db = self._db_by_id(d["db_id"])
        table = db.tables.pop(d["name"])
        self._unindex(table)
        self._notify_dropped(db, table, f"table '{db.name}.{table.name}' was dropped")

    def _apply_alter_table(self, d: dict[str, Any]) -> None:
        table = self._db_by_id(d["db_id"]).tables[d["name"]]
        if "write_quorum" in d:
            table.write_quorum = WriteQuorum(d["write_quorum"])
        if "group_commit" in d:
            table.group_commit = GroupCommitMode(d["group_commit"])
        if "group_commit_interval_ms" in d:
            table.group_commit_interval_ms = int(d["group_commit_interval_ms"])

    # ------------------------------------------------------------------ replicas (clone, reports)
    def add_replica(self, tablet_id: int, replica: Replica) -> Replica:
        """A new replica of a tablet (a clone destination, usually in state CLONE)."""
        self.location(tablet_id)
        self._journal.log("catalog.add_replica", {"tablet_id": tablet_id, "replica": replica.to_dict()})
        return self.location(tablet_id).tablet.replica_on(replica.backend_id)

    def update_replicas(self, updates: list[dict[str, Any]]) -> None:
        """Change replica fields: each update names ``tablet_id`` and ``backend_id`` plus any of
        :data:`REPLICA_FIELDS` (versions after a clone or a report, ``bad``, ``state``)."""
        for u in updates:
            unknown = set(u) - REPLICA_FIELDS - {"tablet_id", "backend_id"}
            if unknown:
                raise ValueError(f"update_replicas: unknown replica fields {sorted(unknown)}")
        if updates:
            self._journal.log("catalog.update_replicas", {"updates": updates})

    def drop_replica(self, tablet_id: int, backend_id: int) -> None:
        self._journal.log("catalog.drop_replica", {"tablet_id": tablet_id, "backend_id": backend_id})

    def _apply_add_replica(self, d: dict[str, Any]) -> None:
        loc = self._tablets.get(d["tablet_id"])
        if loc is None:
            return  # the table was dropped after the record was written
        replica = Replica.from_dict(d["replica"])
        self._ids.observe(replica.replica_id)
        loc.tablet.replicas = [r for r in loc.tablet.replicas if r.backend_id != replica.backend_id]
        loc.tablet.replicas.append(replica)
        self._by_backend.setdefault(replica.backend_id, {})[loc.tablet.tablet_id] = replica

    def _apply_update_replicas(self, d: dict[str, Any]) -> None:
        for u in d["updates"]:
            loc = self._tablets.get(u["tablet_id"])
            replica = loc.tablet.replica_on(u["backend_id"]) if loc else None
            if replica is None:
                continue
            for name, value in u.items():
                if name in REPLICA_FIELDS:
                    setattr(replica, name, ReplicaState(value) if name == "state" else value)

    def _apply_drop_replica(self, d: dict[str, Any]) -> None:
        loc = self._tablets.get(d["tablet_id"])
        if loc is not None:
            loc.tablet.replicas = [r for r in loc.tablet.replicas if r.backend_id != d["backend_id"]]
            self._index_drop(d["backend_id"], loc.tablet.tablet_id)

    def _notify_dropped(self, db: Database, table: Table, reason: str) -> None:
        for fn in self._table_dropped:
            fn(db, table, reason)

    def _index(self, db: Database, table: Table) -> None:
        ids = [table.table_id]
        for p in table.partitions:
            ids.append(p.partition_id)
            for t in p.tablets:
                ids.append(t.tablet_id)
                ids.extend(r.replica_id for r in t.replicas)
                self._tablets[t.tablet_id] = TabletLocation(db, table, p, t)
                for r in t.replicas:
                    self._by_backend.setdefault(r.backend_id, {})[t.tablet_id] = r
        self._ids.observe(*ids)

    def _unindex(self, table: Table) -> None:
        for p in table.partitions:
            for t in p.tablets:
                self._tablets.pop(t.tablet_id, None)
                for r in t.replicas:
                    self._index_drop(r.backend_id, t.tablet_id)

    def _index_drop(self, backend_id: int, tablet_id: int) -> None:
        replicas = self._by_backend.get(backend_id)
        if replicas is not None:
            replicas.pop(tablet_id, None)
            if not replicas:
                del self._by_backend[backend_id]

    def dump(self) -> dict[str, Any]:
        return {"databases": [db.to_dict() for db in self.databases()]}

    def load(self, state: dict[str, Any]) -> None:
        self._dbs.clear()
        self._tablets.clear()
        self._by_backend.clear()
        for d in state.get("databases", []):
            db = Database.from_dict(d)
            self._dbs[db.name] = db
            self._ids.observe(db.db_id)
            for table in db.tables.values():
                self._index(db, table)
