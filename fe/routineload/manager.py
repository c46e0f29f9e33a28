"""The routine load job manager (journal domain ``routineload``).

Operator verbs (create, alter, pause, resume, stop) check the pure state machine and journal the
change. The commit hook makes exactly-once real: a task's commit is accepted only if the task is
still the job's current task for its partitions and its start offsets equal the stored progress;
the new progress is applied inside the txn's own commit record. Everything else is aborted and
the renewed task re-reads from the stored progress.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from common.loadformat import LoadSpec, LoadSpecError, compile_row_load
from fe.catalog.catalog import Catalog
from fe.catalog.model import Database, Table
from fe.persist.ids import IdAllocator
from fe.persist.journal import Journal
from fe.routineload.job import MAX_ERROR_LOG_URLS, MAX_ERROR_SAMPLES, RoutineLoadJob, RoutineLoadTask
from fe.routineload.properties import (
    JobProperties,
    KafkaSource,
    PropertyError,
    alter_job_properties,
    alter_kafka_source,
    alter_offsets,
    parse_job_properties,
    parse_kafka_source,
)
from fe.routineload.state import (
    IllegalTransition,
    JobState,
    JobStateMachine,
    PauseReasonKind,
    RetryBackoff,
    TaskErrorKind,
    check_alter,
    check_pause,
    check_resume,
    check_stop,
    on_task_failure,
)
from fe.system.dynconfig import DynamicConfig
from fe.txn.manager import CommitHook, TransactionManager
from fe.txn.state import SourceType, TransactionState, TxnStatus

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE_MS = 1000
TASK_ID_LEN = 36  # a uuid4 in text
MAX_REPLACED_TASKS = 256
MAX_SUCCESSORS = 4096


def no_data_message(seconds: int) -> str:
    return f"there is no new data in kafka, wait for {seconds} seconds to schedule again"


class RoutineLoadManager:
    def __init__(self, journal: Journal, ids: IdAllocator, catalog: Catalog, txns: TransactionManager,
                 config: DynamicConfig, wall_ms: Callable[[], int]) -> None:
        self._journal = journal
        self._ids = ids
        self._catalog = catalog
        self._txns = txns
        self._config = config
        self._wall_ms = wall_ms
        self._jobs: dict[int, RoutineLoadJob] = {}
        self._txn_tasks: dict[int, tuple[int, str]] = {}  # txn -> (job, task), live only
        # live only: renewed task -> the task that replaced it (a failure report after the abort
        # that renewed the task reaches its successor); job -> backoff of "Too many versions" retries
        self._successors: dict[str, str] = {}
        self._backoff: dict[int, RetryBackoff] = {}
        self.on_change: list[Callable[[], None]] = []
        self.paused_count = 0
        """Times a job was paused (by a user or a failure) since this FE started: StarRocks'
        COUNTER_ROUTINE_LOAD_PAUSED, exported as starrocks_fe_routine_load_paused."""
        self._verbs = {
            "create": self._apply_create,
            "state": self._apply_state,
            "alter": self._apply_alter,
            "init_progress": self._apply_init_progress,
        }
        txns.register_hook(SourceType.ROUTINE_LOAD_TASK, CommitHook(self._check_commit, self._apply_commit,
                                                                     self._txn_final, self._apply_abort))
        catalog.on_table_dropped(self._table_dropped)

    # ------------------------------------------------------------------ queries
    def jobs(self) -> list[RoutineLoadJob]:
        return sorted(self._jobs.values(), key=lambda j: j.job_id)

    def job(self, db_name: str, name: str) -> RoutineLoadJob:
        db = self._catalog.db(db_name)
        found = [j for j in self._jobs.values() if j.db_id == db.db_id and j.name == name]
        if not found:
            raise NotFound(f"routine load job '{name}' does not exist in database '{db_name}'")
        return max(found, key=lambda j: (not j.state.is_final, j.job_id))

    def by_id(self, job_id: int) -> RoutineLoadJob | None:
        return self._jobs.get(job_id)

    def timeout_s(self, job: RoutineLoadJob) -> int:
        return job.props.task_timeout_second or self._config.routine_load_task_timeout_second

    def consume_s(self, job: RoutineLoadJob) -> int:
        return job.props.task_consume_second or self._config.routine_load_task_consume_second

    # ------------------------------------------------------------------ operator verbs
    def create(self, db_name: str, name: str, table_name: str, columns: str, where: str,
               properties: dict[str, str], source_properties: dict[str, str]) -> RoutineLoadJob:
        if not name:
            raise InvalidArgument("field 'name' is required: the routine load job's name")
        db, table = self._catalog.table(db_name, table_name)
        if any(j.db_id == db.db_id and j.name == name and not j.state.is_final for j in self._jobs.values()):
            raise AlreadyExists(f"routine load job '{name}' already exists in database '{db_name}'")
        try:
            props = parse_job_properties(properties)
            source = parse_kafka_source(source_properties)
        except PropertyError as exc:
            raise InvalidArgument(str(exc)) from None
        self._compile(props, columns, where, table)
        job = RoutineLoadJob(
            job_id=self._ids.next(), name=name, db_id=db.db_id, db_name=db.name, table_id=table.table_id,
            table_name=table.name, columns=columns, where=where, props=props, source=source,
            sm=JobStateMachine(name), create_time_ms=self._wall_ms(),
        )
        self._journal.log("routineload.create", job.to_dict())
        log.info("routine load job %s (%d) created on %s.%s from topic %s", name, job.job_id, db.name,
                 table.name, source.topic)
        self._changed()
        return self._jobs[job.job_id]

    def _compile(self, props, columns: str, where: str, table: Table) -> None:
        spec = load_spec(props, columns, where)
        try:
            compile_row_load(spec, table.columns)  # the checks of compile_load, without polars on the FE
        except LoadSpecError as exc:
            raise InvalidArgument(f"routine load on table '{table.name}': {exc}") from None

    def pause(self, db_name: str, name: str) -> RoutineLoadJob:
        job = self.job(db_name, name)
        _verb(check_pause, job)
        self.set_state(job, JobState.PAUSED, "paused by user", PauseReasonKind.USER)
        return job

    def resume(self, db_name: str, name: str) -> RoutineLoadJob:
        job = self.job(db_name, name)
        _verb(check_resume, job)
        job.auto_resume.reset()
        self._backoff.pop(job.job_id, None)
        self.set_state(job, JobState.NEED_SCHEDULE, "resumed by user")
        return job

    def stop(self, db_name: str, name: str) -> RoutineLoadJob:
        job = self.job(db_name, name)
        _verb(check_stop, job)
        self.set_state(job, JobState.STOPPED, "stopped by user")
        return job

    def alter(self, db_name: str, name: str, properties: dict[str, str], source_properties: dict[str, str],
              columns: str, where: str) -> RoutineLoadJob:
        job = self.job(db_name, name)
        _verb(check_alter, job)
        if not (properties or source_properties or columns or where):
            raise InvalidArgument("ALTER ROUTINE LOAD needs properties, data source properties, columns or where")
        try:
            props = alter_job_properties(job.props, properties) if properties else job.props
            source = alter_kafka_source(job.source, source_properties) if source_properties else job.source
            pinned = alter_offsets(job.source, source_properties) if source_properties else ()
        except PropertyError as exc:
            raise InvalidArgument(str(exc)) from None
        _, table = self._catalog.table(db_name, job.table_name)
        new_columns = columns or job.columns
        new_where = where or job.where
        self._compile(props, new_columns, new_where, table)
        progress_updates = {}
        for partition, offset in pinned:
            if isinstance(offset, int):
                progress_updates[partition] = offset
        partitions = list(source.partitions) if source.partitions else job.partitions
        self._journal.log("routineload.alter", {
            "job_id": job.job_id, "props": props.to_dict(), "source": source.to_dict(),
            "columns": new_columns, "where": new_where, "partitions": partitions,
            "progress": [[p, o] for p, o in progress_updates.items()],
            # pinned partitions whose start is OFFSET_BEGINNING / OFFSET_END / a time: resolved again
            "unresolved": [p for p, o in pinned if not isinstance(o, int)],
        })
        self._changed()
        return job

    # ------------------------------------------------------------------ state changes
    def set_state(self, job: RoutineLoadJob, target: JobState, reason: str,
                  kind: PauseReasonKind | None = None) -> None:
        """Journal a state change (the pure state machine checks it first)."""
        trial = JobStateMachine.from_dict(job.sm.to_dict())
        try:
            trial.transition_to(target, reason, self._wall_ms(), kind)
        except IllegalTransition as exc:
            raise FailedPrecondition(str(exc)) from None
        self._abort_tasks(job, f"routine load job {job.name} is now {target.value}: {reason}")
        previous = job.state
        self._journal.log("routineload.state", {"job_id": job.job_id, "sm": trial.to_dict()})
        if target is JobState.PAUSED:
            self.paused_count += 1
        log.info("routine load job %s: %s -> %s (%s)", job.name, previous.value, target.value, reason)
        self._changed()

    def divide(self, job: RoutineLoadJob, groups: list[list[int]]) -> None:
        """NEED_SCHEDULE -> RUNNING with fresh tasks over ``groups`` of partitions."""
        tasks = [RoutineLoadTask.new(g, self._wall_ms()) for g in groups if g]
        self.set_state(job, JobState.RUNNING, f"{len(tasks)} tasks scheduled")  # aborts the old tasks
        job.tasks = tasks

    def init_progress(self, job: RoutineLoadJob, partitions: list[int], progress: dict[int, int]) -> None:
        self._journal.log("routineload.init_progress", {
            "job_id": job.job_id, "partitions": partitions, "progress": [[p, o] for p, o in progress.items()]})

    def pause_for(self, job: RoutineLoadJob, kind: PauseReasonKind, reason: str) -> None:
        if job.state in (JobState.NEED_SCHEDULE, JobState.RUNNING):
            self.set_state(job, JobState.PAUSED, reason, kind)

    def _abort_tasks(self, job: RoutineLoadJob, reason: str) -> None:
        for task in job.tasks:
            if task.txn_id > 0:
                txn = self._txns.find(task.txn_id)
                if txn is not None and txn.status is TxnStatus.PREPARE:
                    self._txns.abort(task.txn_id, reason)
        job.tasks = []

    def renew(self, job: RoutineLoadJob, task: RoutineLoadTask, delay_ms: int, message: str = "") -> None:
        """Replace ``task`` by a new one over the same partitions (a new txn, new label)."""
        if task not in job.tasks or job.state is not JobState.RUNNING:
            return
        now = self._wall_ms()
        fresh = RoutineLoadTask.new(task.partitions, now, now + delay_ms, message)
        job.tasks[job.tasks.index(task)] = fresh
        job.replaced[task.task_id] = None
        if len(job.replaced) > MAX_REPLACED_TASKS:
            del job.replaced[next(iter(job.replaced))]
        self._successors[task.task_id] = fresh.task_id
        if len(self._successors) > MAX_SUCCESSORS:
            del self._successors[next(iter(self._successors))]

    def _successor(self, job: RoutineLoadJob, task_id: str) -> RoutineLoadTask | None:
        """The current task that replaced ``task_id`` (through one or more renewals), if any."""
        for _ in range(MAX_REPLACED_TASKS):
            task_id = self._successors.get(task_id, "")
            if not task_id:
                return None
            task = job.task(task_id)
            if task is not None:
                return task
        return None

    def _changed(self) -> None:
        for fn in self.on_change:
            fn()

    # ------------------------------------------------------------------ tasks talking back
    def check_task_label(self, label: str) -> tuple[RoutineLoadJob, RoutineLoadTask]:
        for job in self._jobs.values():
            prefix = f"{job.name}-"
            if label.startswith(prefix):
                task = job.task(label[len(prefix):])
                if task is not None and job.state is JobState.RUNNING:
                    return job, task
        raise FailedPrecondition(f"routine load task of label '{label}' is not a current task of a running job")

    def task_began(self, job: RoutineLoadJob, task: RoutineLoadTask, txn_id: int) -> None:
        task.txn_id = txn_id
        task.execute_start_ms = self._wall_ms()
        self._txn_tasks[txn_id] = (job.job_id, task.task_id)

    def report(self, job_id: int, task_id: str, outcome: str, error_kind: str, message: str,
               highwater: dict[int, int], samples: list[dict[str, str]]) -> None:
        """A task ended without a commit (no new data, or a failure)."""
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"unknown routine load job {job_id}")
        job.observe_highwater(highwater)
        task = job.task(task_id)
        if task is None and task_id not in job.replaced:
            return  # a task of an earlier run of the job (before a pause, a re-division): ignored
        if outcome == "NO_DATA":
            if task is not None:
                interval = job.props.max_batch_interval_s
                self.renew(job, task, interval * 1000, no_data_message(interval))
            return
        if samples:
            job.error_samples = (job.error_samples + samples)[-MAX_ERROR_SAMPLES:]
        action = on_task_failure(TaskErrorKind.parse(error_kind))
        if action.pause is not None:
            # the task may have been renewed already (its txn's abort came first): the job still pauses
            self.pause_for(job, action.pause, message)
            return
        job.other_msg = message
        now = self._wall_ms()
        if action.backoff:
            delay = self._backoff.setdefault(job.job_id, RetryBackoff()).on_failure(now)
            note = f"task failed: {message}; retrying in {delay / 1000:g} s (backoff while the failures repeat)"
            log.info("routine load job %s: task %s failed (%s), retried in %d ms", job.name, task_id,
                     error_kind, delay)
        else:
            delay, note = RETRY_AFTER_FAILURE_MS, f"task failed, retrying: {message}"
        if task is not None:
            self.renew(job, task, delay, note)
            return
        # its txn's abort came first and renewed it: the successor waits as long
        fresh = self._successor(job, task_id)
        if fresh is not None and not fresh.submitted:
            fresh.next_schedule_ms = max(fresh.next_schedule_ms, now + delay)
            fresh.message = note

    # ------------------------------------------------------------------ commit hook (exactly once)
    def _check_commit(self, txn: TransactionState, att: dict[str, Any]) -> None:
        job = self._jobs.get(int(att.get("job_id", -1)))
        if job is None:
            raise FailedPrecondition(f"txn {txn.txn_id}: routine load job {att.get('job_id')} does not exist")
        if job.state is not JobState.RUNNING:
            raise FailedPrecondition(f"routine load job {job.name} is {job.state.value}; task commits are refused")
        task = job.task(str(att.get("task_id")))
        if task is None or task.txn_id != txn.txn_id:
            raise FailedPrecondition(
                f"routine load task {att.get('task_id')} is no longer a current task of job {job.name}")
        for p_text, (start, _end) in att.get("offsets", {}).items():
            p = int(p_text)
            if p not in task.partitions:
                raise FailedPrecondition(f"task {task.task_id} does not own partition {p}")
            if job.progress.get(p) != start:
                raise FailedPrecondition(
                    f"task {task.task_id} read partition {p} from offset {start} but the job's progress is "
                    f"{job.progress.get(p)}: refused so that no row is loaded twice")

    def _apply_commit(self, txn: TransactionState) -> None:
        att = txn.attachment
        job = self._jobs.get(int(att.get("job_id", -1)))
        if job is None:
            return
        for p_text, (_start, end) in att.get("offsets", {}).items():
            job.progress[int(p_text)] = end
        s = job.stat
        s.total_rows += att.get("total_rows", 0)
        s.loaded_rows += att.get("loaded_rows", 0)
        s.error_rows += att.get("filtered_rows", 0)
        s.unselected_rows += att.get("unselected_rows", 0)
        s.received_bytes += att.get("received_bytes", 0)
        s.task_execute_time_ms += att.get("task_execute_time_ms", 0)
        s.committed_task_num += 1
        job.window_rows += att.get("total_rows", 0)
        job.window_error_rows += att.get("filtered_rows", 0)
        max_errors = job.props.max_error_number
        if job.window_error_rows > max_errors:
            job.error_pause = (
                f"current error rows {job.window_error_rows} is more than max_error_number {max_errors} "
                f"within the window of {10 * job.props.max_batch_rows} rows (10 x max_batch_rows); "
                "see ErrorLogUrls and error_samples")
        if job.error_pause or job.window_rows >= 10 * job.props.max_batch_rows:
            job.window_rows = job.window_error_rows = 0  # the window starts again
        samples = att.get("error_samples", [])
        if samples:
            job.error_samples = (job.error_samples + samples)[-MAX_ERROR_SAMPLES:]
        if att.get("error_log_url"):  # StarRocks' RLTaskTxnCommitAttachment.errorLogUrl
            job.error_log_urls = [*job.error_log_urls, att["error_log_url"]][-MAX_ERROR_LOG_URLS:]

    def _txn_final(self, txn: TransactionState) -> None:
        """Live only: renew the task of a finished txn; pause on too many error rows."""
        ref = self._txn_tasks.pop(txn.txn_id, None)
        job = self._jobs.get(ref[0]) if ref else None
        if job is None:
            return
        task = job.task(ref[1])
        if txn.status is TxnStatus.ABORTED:
            if task is not None:
                self.renew(job, task, RETRY_AFTER_FAILURE_MS, f"previous task aborted: {txn.reason}"[:300])
            return
        self._backoff.pop(job.job_id, None)  # a commit: the next failure waits the shortest again
        att = txn.attachment
        job.observe_highwater({int(p): int(h) for p, h in att.get("highwater", {}).items()})
        if task is not None:
            delay = job.props.max_batch_interval_s * 1000 if att.get("eos") else 0
            self.renew(job, task, delay)
        self._check_error_window(job)

    def _apply_abort(self, txn: TransactionState) -> None:
        """Count the aborted task (live and on replay): its label is '<job name>-<task uuid>'."""
        name = txn.label[:-(TASK_ID_LEN + 1)]
        for job in self._jobs.values():
            if job.db_id == txn.db_id and job.name == name and job.table_id == txn.table_id:
                job.stat.aborted_task_num += 1
                return

    def _check_error_window(self, job: RoutineLoadJob) -> None:
        """Live only: the commit just applied put the error rows of the window over the limit."""
        reason, job.error_pause = job.error_pause, ""
        if reason:
            self.pause_for(job, PauseReasonKind.ERROR_ROWS, reason)

    def _table_dropped(self, db: Database, table: Table, reason: str) -> None:
        if self._journal.replaying:
            return  # the CANCELLED record that followed the drop replays on its own
        for job in list(self._jobs.values()):
            if job.table_id == table.table_id and not job.state.is_final:
                self.set_state(job, JobState.CANCELLED, reason, PauseReasonKind.TABLE_DROPPED)

    # ------------------------------------------------------------------ journal domain
    def apply(self, verb: str, data: dict[str, Any]) -> Any:
        return self._verbs[verb](data)

    def _apply_create(self, d: dict[str, Any]) -> None:
        job = RoutineLoadJob.from_dict(d)
        self._ids.observe(job.job_id)
        self._jobs[job.job_id] = job

    def _apply_state(self, d: dict[str, Any]) -> None:
        job = self._jobs[d["job_id"]]
        new = JobStateMachine.from_dict(d["sm"])
        job.sm.history.append((job.sm.state, new.state, new.reason, self._wall_ms()))
        job.sm.state, job.sm.reason, job.sm.reason_kind = new.state, new.reason, new.reason_kind
        job.sm.pause_time_ms, job.sm.end_time_ms = new.pause_time_ms, new.end_time_ms
        if new.state is not JobState.RUNNING:
            job.tasks = []
        job.replaced.clear()
        if new.state is JobState.NEED_SCHEDULE:
            job.error_pause = ""  # resumed: a pause decided before is spent

    def _apply_alter(self, d: dict[str, Any]) -> None:
        job = self._jobs[d["job_id"]]
        job.props = JobProperties.from_dict(d["props"])
        job.source = KafkaSource.from_dict(d["source"])
        job.columns, job.where = d["columns"], d["where"]
        job.partitions = list(d["partitions"])
        for p, o in d["progress"]:
            job.progress[int(p)] = int(o)
        for p in d.get("unresolved", []):
            job.progress.pop(int(p), None)

    def _apply_init_progress(self, d: dict[str, Any]) -> None:
        job = self._jobs[d["job_id"]]
        job.partitions = list(d["partitions"])
        for p, o in d["progress"]:
            job.progress[int(p)] = int(o)

    def dump(self) -> dict[str, Any]:
        return {"jobs": [j.to_dict() for j in self.jobs()]}

    def load(self, state: dict[str, Any]) -> None:
        self._jobs.clear()
        for d in state.get("jobs", []):
            self._apply_create(d)


def load_spec(props, columns: str, where: str) -> LoadSpec:
    return LoadSpec(
        format=props.format, columns=columns or None, column_separator=props.column_separator,
        jsonpaths=_jsonpaths_text(props.jsonpaths), json_root=props.json_root or None,
        strip_outer_array=props.strip_outer_array, where=where or None, strict_mode=props.strict_mode,
        timezone=props.timezone,
    )


def _jsonpaths_text(paths: tuple[str, ...]) -> str | None:
    return json.dumps(list(paths)) if paths else None


def _verb(check: Callable, job: RoutineLoadJob) -> None:
    try:
        check(job.state, job.name)
    except IllegalTransition as exc:
        raise FailedPrecondition(str(exc)) from None
