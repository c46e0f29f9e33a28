"""Execution of the admin grammar's statements (fe/sql/grammar.py) through the FE's AdminService,
with StarRocks' result columns, names and order.

:func:`execute` maps each statement to its AdminService call(s) and the answer to a result set
or an OK packet. The AdminService is the one implementation of every command: its checks and
error messages are the FE's, and its errors (``grpc.aio.AioRpcError``) propagate to the server,
which maps them to MySQL codes. Routine load statements are in admin_routine_statements.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from typing import Any

from common.gen.tabletsim.v1 import admin_pb2
from fe.service.admin_frontends import FRONTEND_COLUMNS
from fe.service.admin_replica import REPLICA_STATUSES
from fe.sql import grammar as g
from fe.sql.admin_routine_statements import HANDLERS as ROUTINE_HANDLERS
from fe.sql.admin_routine_statements import Handler, like_matcher, limited, result_set, text
from fe.sql.result import ER_NOT_SUPPORTED, ER_SYNTAX, ExecContext, SqlError, SqlResult

# SHOW BACKENDS: StarRocks' columns (BackendsProcDir.TITLE_NAMES), in its order, those a tabletsim
# BE has (no heartbeat/brpc ports, versions, CPU or memory figures)
BACKEND_COLUMNS = [
    "BackendId", "IP", "BePort", "HttpPort", "LastStartTime", "LastHeartbeat", "Alive", "SystemDecommissioned",
    "TabletNum", "DataUsedCapacity", "AvailCapacity", "TotalCapacity", "UsedPct", "ErrMsg",
]
# SHOW TABLET FROM <table>: the seed's header (StarRocks' LocalTabletsProcDir)
TABLETS_COLUMNS = [
    "TabletId", "ReplicaId", "BackendId", "SchemaHash", "Version", "VersionHash", "LstSuccessVersion",
    "LstSuccessVersionHash", "LstFailedVersion", "LstFailedVersionHash", "LstFailedTime", "DataSize", "RowCount",
    "State", "LstConsistencyCheckTime", "CheckVersion", "CheckVersionHash", "VersionCount", "PathHash", "MetaUrl",
    "CompactionStatus",
]
# SHOW TABLET <id> (StarRocks' ShowTabletStmt)
TABLET_COLUMNS = [
    "DbName", "TableName", "PartitionName", "IndexName", "DbId", "TableId", "PartitionId", "IndexId", "IsSync",
    "DetailCmd",
]
# SHOW PROC '/dbs/<db>/<table>/partitions/<partition>/<index>/<tablet>' (StarRocks' ReplicasProcNode)
REPLICAS_PROC_COLUMNS = [
    "ReplicaId", "BackendId", "Version", "VersionHash", "LstSuccessVersion", "LstSuccessVersionHash",
    "LstFailedVersion", "LstFailedVersionHash", "LstFailedTime", "SchemaHash", "DataSize", "RowCount", "State",
    "IsBad", "VersionCount", "PathHash", "MetaUrl", "CompactionStatus",
]
REPLICA_STATUS_COLUMNS = [
    "TabletId", "ReplicaId", "BackendId", "Version", "LastFailedVersion", "LastSuccessVersion",
    "CommittedVersion", "SchemaHash", "VersionNum", "IsBad", "State", "Status",
]
REPLICA_DISTRIBUTION_COLUMNS = ["BackendId", "ReplicaNum", "Graph", "Percent"]
FRONTEND_CONFIG_COLUMNS = ["Key", "AliasNames", "Value", "Type", "IsMutable", "Comment"]
# SHOW TRANSACTION (StarRocks' TransProcDir.TITLE_NAMES)
TRANSACTION_COLUMNS = [
    "TransactionId", "Label", "Coordinator", "TransactionStatus", "LoadJobSourceType", "PrepareTime",
    "CommitTime", "PublishTime", "FinishTime", "Reason", "ErrorReplicasCount", "ListenerId", "TimeoutMs",
    "ErrMsg",
]
# Java's names of the config types
_CONFIG_TYPES = {"bool": "boolean", "int": "int", "float": "double", "str": "String"}
_REPLICAS_PROC = re.compile(r"/dbs/(\d+)/(\d+)/partitions/(\d+)/(\d+)/(\d+)")


async def execute(stmt: g.AdminStatement, ctx: ExecContext) -> SqlResult:
    """Run ``stmt`` (from :func:`fe.sql.grammar.parse`): a result set, or an OK packet."""
    handler = HANDLERS.get(type(stmt))
    if handler is None:
        raise SqlError(f"statement {type(stmt).__name__} has no implementation", ER_NOT_SUPPORTED, "42000")
    return await handler(stmt, ctx)


# ---------------------------------------------------------------------------- backends and frontends

def _backend_values(b: admin_pb2.BackendRow) -> list[Any]:
    return [b.backend_id, b.host, b.be_port, b.http_port, b.last_start_time, b.last_heartbeat, b.alive,
            b.decommissioned, b.tablet_num, b.data_used_capacity, b.avail_capacity, b.total_capacity,
            b.used_pct, b.err_msg]


async def show_backends(stmt: g.ShowBackends, ctx: ExecContext) -> SqlResult:
    resp = await ctx.admin.ShowBackends(admin_pb2.ShowBackendsRequest())
    return result_set(BACKEND_COLUMNS, (_backend_values(b) for b in resp.backends))


async def show_frontends(stmt: g.ShowFrontends, ctx: ExecContext) -> SqlResult:
    resp = await ctx.admin.ShowFrontends(admin_pb2.ShowFrontendsRequest())
    return result_set(FRONTEND_COLUMNS, (
        [f.name, f.ip, f.edit_log_port, f.http_port, f.query_port, f.rpc_port, f.role, f.is_master,
         f.cluster_id, f.join, f.alive, f.replayed_journal_id, f.last_heartbeat, f.is_helper, f.err_msg,
         f.start_time, f.version]
        for f in resp.frontends))


def _split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SqlError(f"invalid backend address '{address}': expected \"host:port\" with the BePort SHOW "
                       f"BACKENDS shows, e.g. \"127.0.0.1:9060\"", ER_SYNTAX)
    return host, int(port)


async def _addresses(host: str) -> set[str]:
    """The IP addresses ``host`` names (itself when it does not resolve)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return {host}
    return {info[4][0] for info in infos} | {host}


async def _backend_request(address: str, backends: list[admin_pb2.BackendRow]) -> admin_pb2.BackendRequest:
    """The BackendRequest for "host:port": the BE by its id when SHOW BACKENDS has it under that
    name or an address of it ('localhost:9060' for '127.0.0.1'), else host and port as given
    (the FE answers which backend it does not know)."""
    host, port = _split_host_port(address)
    same_port = [b for b in backends if b.be_port == port]
    exact = [b for b in same_port if b.host == host]
    if not exact and same_port:
        wanted = await _addresses(host)
        exact = [b for b in same_port if (await _addresses(b.host)) & wanted]
    if len(exact) == 1:
        return admin_pb2.BackendRequest(backend_id=exact[0].backend_id)
    return admin_pb2.BackendRequest(host=host, be_port=port)


async def alter_system_backends(stmt: g.AlterSystemBackends, ctx: ExecContext) -> SqlResult:
    backends = list((await ctx.admin.ShowBackends(admin_pb2.ShowBackendsRequest())).backends)
    requests = [await _backend_request(a, backends) for a in stmt.backends]  # every address checked first
    method = ctx.admin.DecommissionBackend if stmt.action == "DECOMMISSION" else ctx.admin.DropBackend
    notes = []
    for request in requests:
        resp = await method(request)
        if stmt.action == "DECOMMISSION":
            notes.append(f"backend {resp.backend_id}: {resp.tablets_left} tablets left to move")
        else:
            notes.append(f"backend {resp.backend_id} dropped")
    return SqlResult(message="; ".join(notes))


# ---------------------------------------------------------------------------- tablets and SHOW PROC

def _compaction_text(r: admin_pb2.ReplicaRow) -> str:
    """StarRocks links the BE's compaction status page here; tabletsim shows what the BE reported."""
    if not r.HasField("compaction_status"):
        return "N/A"
    c = r.compaction_status
    return json.dumps({
        "cumulative point": c.cumulative_point,
        "last cumulative compaction time": c.last_cumulative_compaction_time or "N/A",
        "last cumulative compaction result": c.last_cumulative_compaction_result,
        "last base compaction time": c.last_base_compaction_time or "N/A",
        "last base compaction result": c.last_base_compaction_result,
        "stale rowset num": c.stale_rowset_num,
    }, separators=(",", ":"))


def _tablet_values(r: admin_pb2.ReplicaRow) -> list[Any]:
    return [r.tablet_id, r.replica_id, r.backend_id, r.schema_hash, r.version, 0, r.lst_success_version, 0,
            r.lst_failed_version, 0, r.lst_failed_time, r.data_size, r.row_count, r.state, "N/A", -1, -1,
            r.version_count, -1, "N/A", _compaction_text(r)]


async def show_tablets_from(stmt: g.ShowTabletsFrom, ctx: ExecContext) -> SqlResult:
    resp = await ctx.admin.ShowTablets(admin_pb2.ShowTabletsRequest(
        db=ctx.require_db(stmt.table.db), table=stmt.table.name, partitions=stmt.partitions))
    rows = [[text(v) for v in _tablet_values(r)] for r in resp.tablets]
    index = {c.lower(): i for i, c in enumerate(TABLETS_COLUMNS)}
    for column, value in stmt.filters:
        i = index.get(column.lower())
        if i is None:
            raise SqlError(f"Unknown column '{column}' in where clause of SHOW TABLET; allowed: "
                           f"{', '.join(TABLETS_COLUMNS)}", ER_SYNTAX)
        rows = [row for row in rows if row[i].lower() == value.lower()]
    return result_set(TABLETS_COLUMNS, limited(rows, stmt.limit))


async def show_tablet(stmt: g.ShowTablet, ctx: ExecContext) -> SqlResult:
    t = await ctx.admin.ShowTablet(admin_pb2.ShowTabletRequest(tablet_id=stmt.tablet_id))
    detail = f"SHOW PROC '/dbs/{t.db_id}/{t.table_id}/partitions/{t.partition_id}/{t.table_id}/{t.tablet_id}';"
    # one index per table (no rollups): IndexName and IndexId are the table's
    return result_set(TABLET_COLUMNS, [[t.db_name, t.table_name, t.partition_name, t.table_name, t.db_id,
                                        t.table_id, t.partition_id, t.table_id, True, detail]])


async def _show_replicas_proc(path: str, ids: tuple[int, ...], ctx: ExecContext) -> SqlResult:
    db_id, table_id, partition_id, index_id, tablet_id = ids
    t = await ctx.admin.ShowTablet(admin_pb2.ShowTabletRequest(tablet_id=tablet_id))
    if (t.db_id, t.table_id, t.partition_id, t.table_id) != (db_id, table_id, partition_id, index_id):
        raise SqlError(f"proc path '{path}': tablet {tablet_id} is in /dbs/{t.db_id}/{t.table_id}/partitions/"
                       f"{t.partition_id}/{t.table_id} (SHOW TABLET {tablet_id} gives its DetailCmd)", ER_SYNTAX)
    return result_set(REPLICAS_PROC_COLUMNS, (
        [r.replica_id, r.backend_id, r.version, 0, r.lst_success_version, 0, r.lst_failed_version, 0,
         r.lst_failed_time, r.schema_hash, r.data_size, r.row_count, r.state, r.is_bad, r.version_count, -1,
         "N/A", _compaction_text(r)]
        for r in t.replicas))


async def show_proc(stmt: g.ShowProc, ctx: ExecContext) -> SqlResult:
    """Every path the FE's ShowProc takes, passed through; and two that StarRocks' SHOW statements
    stand for here: '/backends' (SHOW BACKENDS) and SHOW TABLET's DetailCmd (the tablet's replicas)."""
    clean = "/" + stmt.path.strip().strip("/")
    if clean == "/backends":
        return await show_backends(g.ShowBackends(), ctx)
    m = _REPLICAS_PROC.fullmatch(clean)
    if m:
        return await _show_replicas_proc(stmt.path, tuple(int(x) for x in m.groups()), ctx)
    resp = await ctx.admin.ShowProc(admin_pb2.ShowProcRequest(path=stmt.path))
    return result_set(resp.column_names, (r.values for r in resp.rows))


# ---------------------------------------------------------------------------- replicas

async def admin_show_replica_status(stmt: g.AdminShowReplicaStatus, ctx: ExecContext) -> SqlResult:
    status = (stmt.status or "").strip().upper()
    if stmt.negate and status not in REPLICA_STATUSES:
        raise SqlError(f"invalid status '{stmt.status}'; allowed: {', '.join(REPLICA_STATUSES)}", ER_SYNTAX)
    resp = await ctx.admin.ShowReplicaStatus(admin_pb2.ShowReplicaStatusRequest(
        db=ctx.require_db(stmt.table.db), table=stmt.table.name, partitions=stmt.partitions,
        status="" if stmt.negate else (stmt.status or "")))
    rows = [r for r in resp.replicas if not (stmt.negate and r.status == status)]
    return result_set(REPLICA_STATUS_COLUMNS, (
        [r.tablet_id, r.replica_id, r.backend_id, r.version, r.last_failed_version, r.last_success_version,
         r.committed_version, r.schema_hash, r.version_num, r.is_bad, r.state, r.status]
        for r in rows))


async def admin_show_replica_distribution(stmt: g.AdminShowReplicaDistribution, ctx: ExecContext) -> SqlResult:
    resp = await ctx.admin.ShowReplicaDistribution(admin_pb2.ShowReplicaDistributionRequest(
        db=ctx.require_db(stmt.table.db), table=stmt.table.name, partitions=stmt.partitions))
    return result_set(REPLICA_DISTRIBUTION_COLUMNS,
                      ([d.backend_id, d.replica_num, d.graph, d.percent] for d in resp.distribution))


def _repair(method: str, verb: str) -> Handler:
    async def run(stmt, ctx: ExecContext) -> SqlResult:
        request = admin_pb2.RepairTableRequest(db=ctx.require_db(stmt.table.db), table=stmt.table.name,
                                               partitions=stmt.partitions)
        resp = await getattr(ctx.admin, method)(request)
        return SqlResult(message=f"{verb} {resp.tablets} tablets")
    return run


async def admin_check_tablets(stmt: g.AdminCheckTablets, ctx: ExecContext) -> SqlResult:
    """StarRocks checks the tablets' consistency in the background; here CheckConsistency compares
    the replicas' checksums of each named tablet's table now (SHOW PROC '/statistic' then shows
    InconsistentTabletNum)."""
    props = {k.strip().lower(): v for k, v in stmt.properties.items()}
    if props.get("type", "").strip().lower() != "consistency":
        raise SqlError("ADMIN CHECK TABLET needs PROPERTIES(\"type\" = \"consistency\"), the only check type",
                       ER_SYNTAX)
    tables: dict[tuple[str, str], list[int]] = {}
    for tablet_id in stmt.tablet_ids:
        t = await ctx.admin.ShowTablet(admin_pb2.ShowTabletRequest(tablet_id=tablet_id))
        tables.setdefault((t.db_name, t.table_name), []).append(tablet_id)
    notes = []
    for (db, table), ids in tables.items():
        resp = await ctx.admin.CheckConsistency(admin_pb2.CheckConsistencyRequest(db=db, table=table))
        unread = sorted({r.tablet_id for r in resp.replicas if r.tablet_id in ids and r.error})
        notes.append(f"{db}.{table}: {resp.checked_tablets} tablets checked, {resp.inconsistent_tablets} "
                     f"inconsistent" + (f"; replicas of tablets {unread} could not be read" if unread else ""))
    return SqlResult(message="; ".join(notes))


# ---------------------------------------------------------------------------- config and transactions

async def admin_set_frontend_config(stmt: g.AdminSetFrontendConfig, ctx: ExecContext) -> SqlResult:
    for name, value in stmt.configs.items():
        await ctx.admin.SetConfig(admin_pb2.SetConfigRequest(name=name, value=value))
    return SqlResult()


async def admin_show_frontend_config(stmt: g.AdminShowFrontendConfig, ctx: ExecContext) -> SqlResult:
    """Every config, then SQL LIKE on the name here (the FE's pattern is a substring match, and it
    answers NOT_FOUND where StarRocks shows an empty set)."""
    resp = await ctx.admin.ShowConfig(admin_pb2.ShowConfigRequest())
    configs = list(resp.configs)
    if stmt.like is not None:
        match = like_matcher(stmt.like)
        configs = [c for c in configs if match(c.key)]
    return result_set(FRONTEND_CONFIG_COLUMNS, (
        [c.key, "[]", c.value, _CONFIG_TYPES.get(c.type, c.type), c.is_mutable, c.comment] for c in configs))


async def show_transaction(stmt: g.ShowTransaction, ctx: ExecContext) -> SqlResult:
    resp = await ctx.admin.ShowTransactions(admin_pb2.ShowTransactionsRequest(
        db=ctx.require_db(stmt.db), txn_id=stmt.txn_id or 0, label=stmt.label or "", status=stmt.status or ""))
    # ListenerId and TimeoutMs: the AdminService's TransactionRow has neither (NULL)
    return result_set(TRANSACTION_COLUMNS, (
        [t.transaction_id, t.label, t.coordinator, t.transaction_status, t.load_job_source_type, t.prepare_time,
         t.commit_time, t.publish_time, t.finish_time, t.reason, t.error_replicas_count, "NULL", "NULL", ""]
        for t in resp.transactions))


HANDLERS: dict[type, Handler] = {
    **ROUTINE_HANDLERS,
    g.ShowBackends: show_backends,
    g.ShowFrontends: show_frontends,
    g.AlterSystemBackends: alter_system_backends,
    g.ShowTabletsFrom: show_tablets_from,
    g.ShowTablet: show_tablet,
    g.ShowProc: show_proc,
    g.AdminShowReplicaStatus: admin_show_replica_status,
    g.AdminShowReplicaDistribution: admin_show_replica_distribution,
    g.AdminRepairTable: _repair("RepairTable", "repairing first"),
    g.AdminCancelRepairTable: _repair("CancelRepairTable", "no longer repairing first"),
    g.AdminCheckTablets: admin_check_tablets,
    g.AdminSetFrontendConfig: admin_set_frontend_config,
    g.AdminShowFrontendConfig: admin_show_frontend_config,
    g.ShowTransaction: show_transaction,
}
