"""AdminService methods of the catalog: databases, tables, tablets, replicas, SHOW PROC, config."""

from __future__ import annotations

from common.compaction_status import CompactionStatus
from common.errors import InvalidArgument, NotFound
from common.gen.tabletsim.v1 import admin_pb2
from common.timefmt import fmt_ms
from fe.catalog.catalog import Catalog
from fe.catalog.ddl import ColumnSpec, PartitionSpec, TableSpec
from fe.catalog.model import Partition, Replica, Table, Tablet
from fe.catalog.stats import Statistics
from fe.system.backends import BackendRegistry
from fe.system.dynconfig import DynamicConfig


def _require(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(f"field '{field}' is required")
    return value


def compaction_status(c: CompactionStatus) -> admin_pb2.CompactionStatus:
    """The replica's last reported compaction status; a time is empty when none ran yet."""
    return admin_pb2.CompactionStatus(
        cumulative_point=c.cumulative_point,
        last_cumulative_compaction_time=fmt_ms(c.last_cumulative_ms) if c.last_cumulative_ms > 0 else "",
        last_cumulative_compaction_result=c.last_cumulative_result,
        last_base_compaction_time=fmt_ms(c.last_base_ms) if c.last_base_ms > 0 else "",
        last_base_compaction_result=c.last_base_result,
        stale_rowset_num=c.stale_rowset_num,
    )


def replica_row(tablet: Tablet, r: Replica, partition: Partition) -> admin_pb2.ReplicaRow:
    """One row of SHOW TABLET(S); compaction_status stays unset until the BE reported the replica."""
    row = admin_pb2.ReplicaRow(
        tablet_id=tablet.tablet_id, replica_id=r.replica_id, backend_id=r.backend_id,
        schema_hash=-1, version=r.version, lst_success_version=r.last_success_version,
        lst_failed_version=r.last_failed_version,
        lst_failed_time=fmt_ms(r.last_failed_time_ms) if r.last_failed_time_ms else "N/A",
        data_size=r.data_size, row_count=r.row_count, state=r.state.value, is_bad=r.bad,
        version_count=r.version_count, partition_name=partition.name,
    )
    if r.compaction is not None:
        row.compaction_status.CopyFrom(compaction_status(r.compaction))
    return row


def create_table_stmt(table: Table) -> str:
    cols = []
    for c in table.columns:
        line = f"  `{c.name}` {c.type}{'' if c.nullable else ' NOT NULL'}"
        if c.default is not None:
            line += f' DEFAULT "{c.default}"'
        cols.append(line)
    stmt = f"CREATE TABLE `{table.name}` (\n" + ",\n".join(cols) + "\n)"
    stmt += f"\nDUPLICATE KEY({', '.join(f'`{k}`' for k in table.key_columns)})"
    if table.partition_column:
        parts = []
        for p in table.partitions:
            upper = "MAXVALUE" if p.upper is None else f'("{p.upper}")'
            if p.lower is None:
                parts.append(f"  PARTITION {p.name} VALUES LESS THAN {upper}")
            else:
                parts.append(f'  PARTITION {p.name} VALUES [("{p.lower}"), {upper})')
        stmt += f"\nPARTITION BY RANGE(`{table.partition_column}`) (\n" + ",\n".join(parts) + "\n)"
    stmt += f"\nDISTRIBUTED BY HASH({', '.join(f'`{d}`' for d in table.distribution_columns)}) BUCKETS {table.buckets}"
    props = ",\n".join(f'  "{k}" = "{v}"' for k, v in table.properties().items())
    return stmt + f"\nPROPERTIES (\n{props}\n);"


class CatalogAdmin:
    """Mixed into the AdminServicer; errors are mapped by its @servicer decorator."""

    _backends: BackendRegistry
    _catalog: Catalog
    _stats: Statistics
    _dynconfig: DynamicConfig

    async def CreateDatabase(self, request, context):
        db = self._catalog.create_database(_require(request.db, "db"), request.if_not_exists)
        return admin_pb2.CreateDatabaseResponse(db_id=db.db_id)

    async def DropDatabase(self, request, context):
        await self._catalog.drop_database(_require(request.db, "db"), request.if_exists)
        return admin_pb2.DropDatabaseResponse()

    async def ShowDatabases(self, request, context):
        return admin_pb2.ShowDatabasesResponse(databases=[
            admin_pb2.DatabaseRow(db_id=d.db_id, name=d.name, table_num=len(d.tables))
            for d in self._catalog.databases()
        ])

    async def CreateTable(self, request, context):
        spec = TableSpec(
            name=_require(request.table, "table"),
            columns=[
                ColumnSpec(c.name, c.type, c.not_null, c.default if c.HasField("default") else None)
                for c in request.columns
            ],
            duplicate_key=list(request.duplicate_key),
            partition_column=request.partition_column or None,
            partitions=[
                PartitionSpec(p.name, _require(p.values_less_than, f"partitions[{p.name}].values_less_than"),
                              p.lower if p.HasField("lower") else None)
                for p in request.partitions
            ],
            distribution_columns=list(request.distributed_by),
            buckets=request.buckets if request.HasField("buckets") else None,
            properties=dict(request.properties),
        )
        table = await self._catalog.create_table(_require(request.db, "db"), spec, request.if_not_exists)
        tablets = sum(len(p.tablets) for p in table.partitions)
        return admin_pb2.CreateTableResponse(
            table_id=table.table_id, tablet_num=tablets, replica_num=tablets * table.replication_num
        )

    async def DropTable(self, request, context):
        await self._catalog.drop_table(_require(request.db, "db"), _require(request.table, "table"),
                                       request.if_exists)
        return admin_pb2.DropTableResponse()

    async def ShowTables(self, request, context):
        db = self._catalog.db(_require(request.db, "db"))
        return admin_pb2.ShowTablesResponse(tables=[
            admin_pb2.TableRow(
                table_id=t.table_id, name=t.name, partition_num=len(t.partitions),
                tablet_num=sum(len(p.tablets) for p in t.partitions), replication_num=t.replication_num,
                write_quorum=t.write_quorum.value, create_time=fmt_ms(t.create_time_ms),
            )
            for t in sorted(db.tables.values(), key=lambda t: t.name)
        ])

    async def DescribeTable(self, request, context):
        db, table = self._catalog.table(_require(request.db, "db"), _require(request.table, "table"))
        return admin_pb2.DescribeTableResponse(
            db_id=db.db_id, table_id=table.table_id, table=table.name,
            columns=[
                admin_pb2.DescribeColumnRow(
                    field=c.name, type=str(c.type), null="YES" if c.nullable else "NO",
                    key="true" if c.is_key else "false", default="NULL" if c.default is None else c.default,
                    extra="",
                )
                for c in table.columns
            ],
            keys_type="DUP_KEYS", key_columns=table.key_columns,
            partition_column=table.partition_column or "",
            partitions=[
                admin_pb2.PartitionRow(
                    partition_id=p.partition_id, partition_name=p.name, visible_version=p.visible_version,
                    range=_range_text(table, p), buckets=len(p.tablets), replication_num=table.replication_num,
                )
                for p in table.partitions
            ],
            distributed_by=table.distribution_columns, buckets=table.buckets,
            properties=table.properties(), create_table_stmt=create_table_stmt(table),
        )

    async def AlterTable(self, request, context):
        table = self._catalog.alter_table(_require(request.db, "db"), _require(request.table, "table"),
                                          dict(request.properties))
        return admin_pb2.AlterTableResponse(properties=table.properties())

    async def ShowTablet(self, request, context):
        if request.tablet_id <= 0:
            raise InvalidArgument("field 'tablet_id' is required (a positive TabletId)")
        loc = self._catalog.location(request.tablet_id)
        return admin_pb2.ShowTabletResponse(
            db_name=loc.db.name, table_name=loc.table.name, partition_name=loc.partition.name,
            db_id=loc.db.db_id, table_id=loc.table.table_id, partition_id=loc.partition.partition_id,
            tablet_id=loc.tablet.tablet_id, visible_version=loc.partition.visible_version,
            replicas=[replica_row(loc.tablet, r, loc.partition) for r in loc.tablet.replicas],
        )

    async def ShowTablets(self, request, context):
        _, table = self._catalog.table(_require(request.db, "db"), _require(request.table, "table"))
        rows = [
            replica_row(t, r, p)
            for p in self._catalog.partitions(table, list(request.partitions))
            for t in p.tablets
            for r in t.replicas
        ]
        return admin_pb2.ShowTabletsResponse(tablets=rows)

    async def ShowReplicaDistribution(self, request, context):
        _, table = self._catalog.table(_require(request.db, "db"), _require(request.table, "table"))
        counts: dict[int, int] = {b.backend_id: 0 for b in self._backends.all()}
        for p in self._catalog.partitions(table, list(request.partitions)):
            for t in p.tablets:
                for r in t.replicas:
                    counts[r.backend_id] = counts.get(r.backend_id, 0) + 1
        total = sum(counts.values())
        rows = []
        for be_id in sorted(counts):
            share = counts[be_id] / total if total else 0.0
            rows.append(admin_pb2.ReplicaDistributionRow(
                backend_id=be_id, replica_num=counts[be_id], graph="#" * round(share * 50),
                percent=f"{share * 100:.2f} %",
            ))
        return admin_pb2.ShowReplicaDistributionResponse(distribution=rows)

    async def ShowProc(self, request, context):
        columns, rows = self._stats.proc(request.path)
        return admin_pb2.ShowProcResponse(
            column_names=columns, rows=[admin_pb2.ProcRow(values=r) for r in rows]
        )

    async def SetConfig(self, request, context):
        self._dynconfig.set(_require(request.name, "name"), _require(request.value, "value"))
        return admin_pb2.SetConfigResponse()

    async def ShowConfig(self, request, context):
        rows = self._dynconfig.show(request.pattern)
        if request.pattern and not rows:
            raise NotFound(f"no config matches '{request.pattern}'")
        return admin_pb2.ShowConfigResponse(configs=[
            admin_pb2.ConfigRow(
                key=s.name, value=str(v).lower() if s.type is bool else str(v), type=s.type.__name__,
                is_mutable=True, default=str(s.default).lower() if s.type is bool else str(s.default),
                starrocks_default=s.starrocks_default, comment=s.doc,
            )
            for s, v in rows
        ])


def _range_text(table: Table, p: Partition) -> str:
    if not table.partition_column:
        return ""
    lower = "MINVALUE" if p.lower is None else p.lower
    upper = "MAXVALUE" if p.upper is None else p.upper
    return f"[{lower}, {upper})"
