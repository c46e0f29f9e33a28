"""A routine load job and its tasks (the FE's view).

The job's definition, state and committed progress are persistent (journal domain
``routineload``); its tasks are soft state, re-divided after an FE restart, exactly like
StarRocks, where a restarted FE schedules new tasks from the stored progress.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from fe.routineload.properties import JobProperties, KafkaSource
from fe.routineload.state import AutoResumePolicy, JobState, JobStateMachine

MAX_ERROR_SAMPLES = 50
MAX_ERROR_LOG_URLS = 3
"""SHOW ROUTINE LOAD's ErrorLogUrls lists the last 3 (StarRocks' EvictingQueue.create(3))."""


@dataclass
class Statistic:
    """SHOW ROUTINE LOAD's Statistic, with StarRocks' ten counters."""

    received_bytes: int = 0
    error_rows: int = 0
    committed_task_num: int = 0
    loaded_rows: int = 0
    aborted_task_num: int = 0
    total_rows: int = 0
    unselected_rows: int = 0
    task_execute_time_ms: int = 0

    def display(self) -> dict[str, int]:
        seconds = max(self.task_execute_time_ms / 1000, 1e-9)
        return {
            "receivedBytes": self.received_bytes,
            "errorRows": self.error_rows,
            "committedTaskNum": self.committed_task_num,
            "loadedRows": self.loaded_rows,
            "loadRowsRate": int(self.loaded_rows / seconds) if self.task_execute_time_ms else 0,
            "abortedTaskNum": self.aborted_task_num,
            "totalRows": self.total_rows,
            "unselectedRows": self.unselected_rows,
            "receivedBytesRate": int(self.received_bytes / seconds) if self.task_execute_time_ms else 0,
            "taskExecuteTimeMs": self.task_execute_time_ms,
        }


@dataclass
class RoutineLoadTask:
    """One task = one transaction over a fixed set of partitions."""

    task_id: str
    partitions: list[int]
    create_time_ms: int
    backend_id: int = -1
    txn_id: int = -1
    last_scheduled_ms: int = 0
    execute_start_ms: int = 0
    next_schedule_ms: int = 0  # not before this (no new data: wait max_batch_interval)
    submitted: bool = False
    message: str = ""

    @staticmethod
    def new(partitions: list[int], now_ms: int, not_before_ms: int = 0, message: str = "") -> RoutineLoadTask:
        return RoutineLoadTask(str(uuid.uuid4()), partitions, now_ms, next_schedule_ms=not_before_ms,
                               message=message)


@dataclass
class RoutineLoadJob:
    job_id: int
    name: str
    db_id: int
    db_name: str
    table_id: int
    table_name: str
    columns: str
    where: str
    props: JobProperties
    source: KafkaSource
    sm: JobStateMachine
    create_time_ms: int
    # partition -> next offset to consume (committed progress); filled at the first schedule
    progress: dict[int, int] = field(default_factory=dict)
    partitions: list[int] = field(default_factory=list)
    stat: Statistic = field(default_factory=Statistic)
    error_samples: list[dict[str, str]] = field(default_factory=list)
    # ErrorLogUrls: the error logs of the last tasks that filtered rows (a task's BE writes its own
    # and serves it at /api/_load_error_log, be/load/error_log.py), oldest first
    error_log_urls: list[str] = field(default_factory=list)
    # error-row window: rows and error rows since the window opened (10 x max_batch_rows)
    window_rows: int = 0
    window_error_rows: int = 0
    other_msg: str = ""
    # soft state
    error_pause: str = ""  # set by a commit that crossed max_error_number; the live path pauses
    # the last tasks renewed since the job last changed state (their late reports still count)
    replaced: dict[str, None] = field(default_factory=dict)
    tasks: list[RoutineLoadTask] = field(default_factory=list)
    highwater: dict[int, int] = field(default_factory=dict)
    auto_resume: AutoResumePolicy = field(default_factory=AutoResumePolicy)

    @property
    def state(self) -> JobState:
        return self.sm.state

    def label_for(self, task: RoutineLoadTask) -> str:
        return f"{self.name}-{task.task_id}"

    def task(self, task_id: str) -> RoutineLoadTask | None:
        return next((t for t in self.tasks if t.task_id == task_id), None)

    def observe_highwater(self, ends: dict[int, int]) -> None:
        """End offsets only move forward (reports of old tasks may arrive late)."""
        for p, end in ends.items():
            if end > self.highwater.get(p, -1):
                self.highwater[p] = end

    def lag(self) -> dict[int, int]:
        return {p: max(self.highwater[p] - off, 0) for p, off in sorted(self.progress.items())
                if p in self.highwater}

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id, "name": self.name, "db_id": self.db_id, "db_name": self.db_name,
            "table_id": self.table_id, "table_name": self.table_name, "columns": self.columns,
            "where": self.where, "props": self.props.to_dict(), "source": self.source.to_dict(),
            "sm": self.sm.to_dict(), "create_time_ms": self.create_time_ms,
            "progress": [[p, o] for p, o in self.progress.items()], "partitions": self.partitions,
            "stat": asdict(self.stat), "error_samples": self.error_samples, "error_log_urls": self.error_log_urls,
            "window_rows": self.window_rows, "window_error_rows": self.window_error_rows,
            "other_msg": self.other_msg,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoutineLoadJob:
        return cls(
            job_id=d["job_id"], name=d["name"], db_id=d["db_id"], db_name=d["db_name"],
            table_id=d["table_id"], table_name=d["table_name"], columns=d["columns"], where=d["where"],
            props=JobProperties.from_dict(d["props"]), source=KafkaSource.from_dict(d["source"]),
            sm=JobStateMachine.from_dict(d["sm"]), create_time_ms=d["create_time_ms"],
            progress={int(p): int(o) for p, o in d.get("progress", [])}, partitions=list(d.get("partitions", [])),
            stat=Statistic(**d.get("stat", {})), error_samples=list(d.get("error_samples", [])),
            error_log_urls=list(d.get("error_log_urls", [])),
            window_rows=d.get("window_rows", 0), window_error_rows=d.get("window_error_rows", 0),
            other_msg=d.get("other_msg", ""),
        )
