"""AdminService methods of routine load: CREATE / ALTER / PAUSE / RESUME / STOP / SHOW."""

from __future__ import annotations

import json

from common.errors import InvalidArgument
from common.gen.tabletsim.v1 import admin_pb2, types_pb2
from common.timefmt import fmt_ms
from fe.catalog.catalog import Catalog
from fe.routineload.job import RoutineLoadJob
from fe.routineload.manager import RoutineLoadManager
from fe.routineload.properties import (
    custom_properties_display,
    data_source_properties_display,
    job_properties_display,
)
from fe.routineload.state import JobState
from fe.txn.manager import TransactionManager


def _require(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(f"field '{field}' is required")
    return value


def _compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def job_row(job: RoutineLoadJob) -> admin_pb2.RoutineLoadRow:
    """SHOW ROUTINE LOAD's row of ``job``."""
    running = len(job.tasks) if job.state is JobState.RUNNING else 0
    return admin_pb2.RoutineLoadRow(
        id=job.job_id, name=job.name, create_time=fmt_ms(job.create_time_ms),
        pause_time=fmt_ms(job.sm.pause_time_ms or 0), end_time=fmt_ms(job.sm.end_time_ms or 0),
        db_name=job.db_name, table_name=job.table_name, state=job.state.value, data_source_type="KAFKA",
        current_task_num=running,
        job_properties=job_properties_display(
            job.props, partitions=",".join(map(str, job.source.partitions)) or "*",
            column_to_column_expr=job.columns, where_expr=job.where or "*", current_task_concurrent_num=running),
        data_source_properties=data_source_properties_display(job.source, job.partitions or None),
        custom_properties=custom_properties_display(job.source),
        statistic=_compact(job.stat.display()),
        progress=_compact({str(p): str(o) for p, o in sorted(job.progress.items())}),
        reason_of_state_changed=job.sm.reason if job.state in (JobState.PAUSED, JobState.CANCELLED,
                                                                JobState.STOPPED) else "",
        error_log_urls=", ".join(job.error_log_urls),
        other_msg=job.other_msg,
        # a STOPPED or CANCELLED job reads Kafka no more: no lag (StarRocks #17104); PAUSED keeps it
        lag=_compact({} if job.state.is_final else {str(p): lag for p, lag in job.lag().items()}),
        error_samples=[types_pb2.FilteredRow(row=e["row"], reason=e["reason"]) for e in job.error_samples],
    )


class RoutineLoadAdmin:
    _catalog: Catalog
    _routine: RoutineLoadManager
    _txns: TransactionManager

    async def CreateRoutineLoad(self, request, context):
        job = self._routine.create(
            _require(request.db, "db"), _require(request.name, "name"), _require(request.table, "table"),
            request.columns, request.where, dict(request.properties), dict(request.data_source_properties))
        return admin_pb2.CreateRoutineLoadResponse(id=job.job_id)

    async def AlterRoutineLoad(self, request, context):
        job = self._routine.alter(_require(request.db, "db"), _require(request.name, "name"),
                                  dict(request.properties), dict(request.data_source_properties),
                                  request.columns, request.where)
        return admin_pb2.RoutineLoadResponse(state=job.state.value)

    async def PauseRoutineLoad(self, request, context):
        job = self._routine.pause(_require(request.db, "db"), _require(request.name, "name"))
        return admin_pb2.RoutineLoadResponse(state=job.state.value)

    async def ResumeRoutineLoad(self, request, context):
        job = self._routine.resume(_require(request.db, "db"), _require(request.name, "name"))
        return admin_pb2.RoutineLoadResponse(state=job.state.value)

    async def StopRoutineLoad(self, request, context):
        job = self._routine.stop(_require(request.db, "db"), _require(request.name, "name"))
        return admin_pb2.RoutineLoadResponse(state=job.state.value)

    async def ShowRoutineLoad(self, request, context):
        db = _require(request.db, "db")
        if request.name:
            jobs = [self._routine.job(db, request.name)]
        else:
            db_id = self._catalog.db(db).db_id
            jobs = [j for j in self._routine.jobs() if j.db_id == db_id
                    and (request.include_stopped or not j.state.is_final)]
        return admin_pb2.ShowRoutineLoadResponse(jobs=[job_row(j) for j in jobs])

    async def ShowRoutineLoadTask(self, request, context):
        job = self._routine.job(_require(request.db, "db"), _require(request.name, "name"))
        rows = []
        for t in job.tasks:
            txn = self._txns.find(t.txn_id) if t.txn_id > 0 else None
            rows.append(admin_pb2.RoutineLoadTaskRow(
                task_id=t.task_id, txn_id=t.txn_id, txn_status=txn.status.value if txn else "UNKNOWN",
                job_id=job.job_id, create_time=fmt_ms(t.create_time_ms),
                last_scheduled_time=fmt_ms(t.last_scheduled_ms), execute_start_time=fmt_ms(t.execute_start_ms),
                timeout=self._routine.timeout_s(job), be_id=t.backend_id,
                data_source_properties=_compact({str(p): job.progress.get(p, -1) for p in t.partitions}),
                message=t.message,
            ))
        return admin_pb2.ShowRoutineLoadTaskResponse(tasks=rows)
