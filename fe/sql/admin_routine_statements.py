"""Routine load statements run through the AdminService: CREATE / ALTER / PAUSE / RESUME / STOP
ROUTINE LOAD, SHOW [ALL] ROUTINE LOAD and SHOW ROUTINE LOAD TASK, with StarRocks' result columns.

Also the small helpers every admin statement's rows use (StarRocks prints every SHOW value as
text: booleans ``true``/``false``, absent times ``NULL``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from common.gen.tabletsim.v1 import admin_pb2
from fe.sql import grammar as g
from fe.sql.result import ER_NOT_SUPPORTED, ER_SYNTAX, ExecContext, SqlError, SqlResult

# SHOW ROUTINE LOAD: StarRocks' columns (ShowRoutineLoadStmt), as the seed shows them. Doris adds a
# Lag column; here the lag is in the gRPC answer, /metrics (max_lag_of_partition) and the console.
ROUTINE_LOAD_COLUMNS = [
    "Id", "Name", "CreateTime", "PauseTime", "EndTime", "DbName", "TableName", "State", "DataSourceType",
    "CurrentTaskNum", "JobProperties", "DataSourceProperties", "CustomProperties", "Statistic", "Progress",
    "ReasonOfStateChanged", "ErrorLogUrls", "OtherMsg",
]
# SHOW ROUTINE LOAD TASK (StarRocks' ShowRoutineLoadTaskStmt)
ROUTINE_LOAD_TASK_COLUMNS = [
    "TaskId", "TxnId", "TxnStatus", "JobId", "CreateTime", "LastScheduledTime", "ExecuteStartTime", "Timeout",
    "BeId", "DataSourceProperties", "Message",
]

FINAL_STATES = ("STOPPED", "CANCELLED")

Handler = Callable[[Any, ExecContext], Any]


# ---------------------------------------------------------------------------- shared helpers

def text(value: Any) -> str:
    """A value as StarRocks shows it: booleans as Java prints them, the rest as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def like_matcher(pattern: str) -> Callable[[str], bool]:
    """SQL LIKE (``%``, ``_``, ``\\`` escapes), case-insensitive as MySQL's default collation."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    rx = re.compile("".join(out), re.S | re.I)
    return lambda s: rx.fullmatch(s) is not None


def limited(rows: list, limit: g.Limit | None) -> list:
    if limit is None:
        return rows
    return rows[limit.offset:limit.offset + limit.count]


def result_set(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> SqlResult:
    return SqlResult(columns=list(columns), rows=[tuple(text(v) for v in row) for row in rows])


# ---------------------------------------------------------------------------- statements

def _load_request_parts(load: g.LoadProperties, properties: dict[str, str], verb: str) -> dict[str, str]:
    """The job properties with the load properties that travel as properties (COLUMNS TERMINATED BY
    is the job's column_separator); the ones the FE has no field for are refused here."""
    props = dict(properties)
    if load.column_separator is not None:
        given = [k for k in props if k.strip().lower() == "column_separator"]
        if given:
            raise SqlError(f"{verb}: the column separator is given twice, by COLUMNS TERMINATED BY and by "
                           f"the property '{given[0]}'; keep one", ER_SYNTAX)
        props["column_separator"] = load.column_separator
    if load.row_delimiter is not None and load.row_delimiter not in ("\n", "\\n"):
        raise SqlError(f"{verb}: ROWS TERMINATED BY {load.row_delimiter!r} is not supported: routine load takes "
                       "each Kafka message as one row (a trailing '\\n' is dropped)", ER_NOT_SUPPORTED, "42000")
    if load.partitions:
        kind = "TEMPORARY PARTITION" if load.temporary_partitions else "PARTITION"
        raise SqlError(f"{verb}: {kind} ({', '.join(load.partitions)}) is not supported: every row goes to the "
                       "partition its partition column selects", ER_NOT_SUPPORTED, "42000")
    return props


async def create_routine_load(stmt: g.CreateRoutineLoad, ctx: ExecContext) -> SqlResult:
    props = _load_request_parts(stmt.load, stmt.properties, "CREATE ROUTINE LOAD")
    resp = await ctx.admin.CreateRoutineLoad(admin_pb2.CreateRoutineLoadRequest(
        db=ctx.require_db(stmt.job.db), name=stmt.job.name, table=stmt.table, columns=stmt.load.columns,
        where=stmt.load.where, properties=props, data_source_properties=stmt.source_properties))
    return SqlResult(message=f"routine load job {stmt.job.name} created with id {resp.id}")


async def alter_routine_load(stmt: g.AlterRoutineLoad, ctx: ExecContext) -> SqlResult:
    props = _load_request_parts(stmt.load, stmt.properties, "ALTER ROUTINE LOAD")
    resp = await ctx.admin.AlterRoutineLoad(admin_pb2.AlterRoutineLoadRequest(
        db=ctx.require_db(stmt.job.db), name=stmt.job.name, properties=props,
        data_source_properties=stmt.source_properties, columns=stmt.load.columns, where=stmt.load.where))
    return SqlResult(message=f"state {resp.state}")


def _control(method: str) -> Handler:
    async def run(stmt, ctx: ExecContext) -> SqlResult:
        request = admin_pb2.RoutineLoadRequest(db=ctx.require_db(stmt.job.db), name=stmt.job.name)
        resp = await getattr(ctx.admin, method)(request)
        return SqlResult(message=f"state {resp.state}")
    return run


def routine_load_values(r: admin_pb2.RoutineLoadRow) -> list[Any]:
    """One SHOW ROUTINE LOAD row, in ROUTINE_LOAD_COLUMNS order."""
    return [r.id, r.name, r.create_time, r.pause_time, r.end_time, r.db_name, r.table_name, r.state,
            r.data_source_type, r.current_task_num, r.job_properties, r.data_source_properties,
            r.custom_properties, r.statistic, r.progress, r.reason_of_state_changed, r.error_log_urls,
            r.other_msg]


async def show_routine_load(stmt: g.ShowRoutineLoad, ctx: ExecContext) -> SqlResult:
    db = ctx.require_db((stmt.job.db if stmt.job else None) or stmt.db)
    resp = await ctx.admin.ShowRoutineLoad(admin_pb2.ShowRoutineLoadRequest(
        db=db, name=stmt.job.name if stmt.job else "", include_stopped=stmt.include_all))
    jobs = list(resp.jobs)
    if not stmt.include_all:  # the FE answers a job named by FOR in any state
        jobs = [j for j in jobs if j.state not in FINAL_STATES]
        if stmt.job and not jobs:  # StarRocks' ShowExecutor
            raise SqlError(f"There is no running job named {stmt.job.name} in db {db}. Include history? false, you "
                           "can try `show all routine load job for job_name` if you want to list stopped and "
                           "cancelled jobs", ER_SYNTAX)
    if stmt.like is not None:
        match = like_matcher(stmt.like)
        jobs = [j for j in jobs if match(j.name)]
    if stmt.state is not None:
        jobs = [j for j in jobs if j.state.upper() == stmt.state.strip().upper()]
    return result_set(ROUTINE_LOAD_COLUMNS, (routine_load_values(j) for j in limited(jobs, stmt.limit)))


async def show_routine_load_task(stmt: g.ShowRoutineLoadTask, ctx: ExecContext) -> SqlResult:
    resp = await ctx.admin.ShowRoutineLoadTask(
        admin_pb2.RoutineLoadRequest(db=ctx.require_db(stmt.job.db), name=stmt.job.name))
    return result_set(ROUTINE_LOAD_TASK_COLUMNS, (
        [t.task_id, t.txn_id, t.txn_status, t.job_id, t.create_time, t.last_scheduled_time,
         t.execute_start_time, t.timeout, t.be_id, t.data_source_properties, t.message]
        for t in resp.tasks))


HANDLERS: dict[type, Handler] = {
    g.CreateRoutineLoad: create_routine_load,
    g.AlterRoutineLoad: alter_routine_load,
    g.PauseRoutineLoad: _control("PauseRoutineLoad"),
    g.ResumeRoutineLoad: _control("ResumeRoutineLoad"),
    g.StopRoutineLoad: _control("StopRoutineLoad"),
    g.ShowRoutineLoad: show_routine_load,
    g.ShowRoutineLoadTask: show_routine_load_task,
}
