"""Routine load job states, the transition table and the operator verbs that move between them.

Pure: no I/O, no clock reads. Callers pass ``now_ms`` in, so a unit test drives the machine in
microseconds and a replayed edit-log record yields the same state as the live path.

::

                     scheduled
        NEED_SCHEDULE ----------> RUNNING
           ^     |    <----------   |
           |     |     re-divide    |
    RESUME |     | PAUSE            | PAUSE
           |     v                  |
           PAUSED <-----------------+

    NEED_SCHEDULE | RUNNING | PAUSED --STOP--> STOPPED    (final)
    NEED_SCHEDULE | RUNNING | PAUSED --------> CANCELLED  (final: table or database dropped)

RUNNING -> NEED_SCHEDULE is the scheduler's own move when tasks must be divided again (a BE died,
the partition set or the properties changed). RESUME is PAUSED -> NEED_SCHEDULE; the job scheduler
then takes it to RUNNING. STOPPED and CANCELLED are final: nothing leaves them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


class JobState(enum.Enum):
    NEED_SCHEDULE = "NEED_SCHEDULE"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self in (JobState.STOPPED, JobState.CANCELLED)


# state -> the states it may move to (see the module docstring for the diagram)
TRANSITIONS: Mapping[JobState, frozenset[JobState]] = MappingProxyType(
    {
        JobState.NEED_SCHEDULE: frozenset(
            {JobState.RUNNING, JobState.PAUSED, JobState.STOPPED, JobState.CANCELLED}
        ),
        JobState.RUNNING: frozenset(
            {JobState.NEED_SCHEDULE, JobState.PAUSED, JobState.STOPPED, JobState.CANCELLED}
        ),
        JobState.PAUSED: frozenset({JobState.NEED_SCHEDULE, JobState.STOPPED, JobState.CANCELLED}),
        JobState.STOPPED: frozenset(),
        JobState.CANCELLED: frozenset(),
    }
)

_STATE_ORDER = list(JobState)


def allowed_targets(state: JobState) -> list[JobState]:
    """The states ``state`` may move to, in declaration order."""
    return [s for s in _STATE_ORDER if s in TRANSITIONS[state]]


class PauseReasonKind(enum.Enum):
    """Why a job left the running path. Only TOO_FEW_REPLICAS pauses are auto-resumed."""

    USER = "USER"
    ERROR_ROWS = "ERROR_ROWS"
    OFFSET_OUT_OF_RANGE = "OFFSET_OUT_OF_RANGE"
    TOO_FEW_REPLICAS = "TOO_FEW_REPLICAS"
    KAFKA_ERROR = "KAFKA_ERROR"
    TABLE_DROPPED = "TABLE_DROPPED"

    @property
    def auto_resumable(self) -> bool:
        return self is PauseReasonKind.TOO_FEW_REPLICAS


class IllegalTransition(Exception):
    """A state change the table (or an operator verb's rule) does not allow.

    ``code`` is the gRPC status the service layer answers with.
    """

    code = "FAILED_PRECONDITION"
    retriable = False

    def __init__(self, job_name: str, current: JobState, requested: str, why: str,
                 allowed: Iterable[JobState] = ()) -> None:
        self.job_name = job_name
        self.current = current
        self.requested = requested
        self.allowed = tuple(allowed)
        super().__init__(f"routine load job '{job_name}' is {current.value}; cannot {requested}: {why}")


def _refuse_move(job_name: str, current: JobState, target: JobState) -> IllegalTransition:
    if current.is_final:
        why = f"{current.value} is final"
    else:
        targets = allowed_targets(current)
        why = "allowed targets: " + ", ".join(s.value for s in targets)
    return IllegalTransition(job_name, current, f"move to {target.value}", why, allowed_targets(current))


def check_transition(job_name: str, current: JobState, target: JobState) -> None:
    """Raise IllegalTransition unless ``current -> target`` is in TRANSITIONS."""
    if target not in TRANSITIONS[current]:
        raise _refuse_move(job_name, current, target)


# ---- operator verbs (PAUSE / RESUME / STOP / ALTER ROUTINE LOAD) --------------------------------


def _refuse_final(job_name: str, state: JobState, verb: str) -> None:
    if state.is_final:
        raise IllegalTransition(job_name, state, verb, f"{state.value} is final")


def check_pause(state: JobState, job_name: str) -> JobState:
    """PAUSE is allowed from NEED_SCHEDULE and RUNNING; returns the target state."""
    _refuse_final(job_name, state, "PAUSE")
    if state is JobState.PAUSED:
        raise IllegalTransition(job_name, state, "PAUSE", "it is already PAUSED", allowed_targets(state))
    return JobState.PAUSED


def check_resume(state: JobState, job_name: str) -> JobState:
    """RESUME is allowed only from PAUSED (as in StarRocks); returns NEED_SCHEDULE."""
    _refuse_final(job_name, state, "RESUME")
    if state is not JobState.PAUSED:
        raise IllegalTransition(job_name, state, "RESUME", "only a PAUSED job can be resumed",
                                allowed_targets(state))
    return JobState.NEED_SCHEDULE


def check_stop(state: JobState, job_name: str) -> JobState:
    """STOP is allowed from every non-final state; returns STOPPED."""
    _refuse_final(job_name, state, "STOP")
    return JobState.STOPPED


def check_alter(state: JobState, job_name: str) -> None:
    """ALTER is allowed only while PAUSED."""
    _refuse_final(job_name, state, "ALTER")
    if state is not JobState.PAUSED:
        raise IllegalTransition(job_name, state, "ALTER",
                                "only a PAUSED job can be altered; PAUSE it first", allowed_targets(state))


# ---- the job's state record -----------------------------------------------------------------------


@dataclass
class JobStateMachine:
    """The state of one job plus what SHOW ROUTINE LOAD reports about its last change.

    ``reason`` is ReasonOfStateChanged of the last transition. ``reason_kind`` is set while the
    job is PAUSED or CANCELLED and cleared when it goes back to NEED_SCHEDULE or RUNNING.
    ``pause_time_ms`` keeps the time of the last pause (SHOW's PauseTime); ``end_time_ms`` is set
    when the job reaches a final state.
    """

    job_name: str
    state: JobState = JobState.NEED_SCHEDULE
    reason: str = ""
    reason_kind: PauseReasonKind | None = None
    pause_time_ms: int | None = None
    end_time_ms: int | None = None
    history: list[tuple[JobState, JobState, str, int]] = field(default_factory=list)

    def can_transition_to(self, target: JobState) -> bool:
        return target in TRANSITIONS[self.state]

    def transition_to(self, target: JobState, reason: str, now_ms: int,
                      kind: PauseReasonKind | None = None) -> JobState:
        """Move to ``target`` or raise IllegalTransition; returns the new state.

        A move to PAUSED needs ``kind`` (why it paused); CANCELLED may carry one.
        """
        check_transition(self.job_name, self.state, target)
        if target is JobState.PAUSED and kind is None:
            raise ValueError(f"routine load job '{self.job_name}': a pause needs a PauseReasonKind")
        previous = self.state
        self.state = target
        self.reason = reason
        if target is JobState.PAUSED:
            self.pause_time_ms = now_ms
            self.reason_kind = kind
        elif target.is_final:
            self.end_time_ms = now_ms
            self.reason_kind = kind
        else:
            self.reason_kind = None
        self.history.append((previous, target, reason, now_ms))
        return target

    def to_dict(self) -> dict[str, Any]:
        """JSON-able snapshot for the edit log (history is not persisted)."""
        return {
            "job_name": self.job_name,
            "state": self.state.value,
            "reason": self.reason,
            "reason_kind": self.reason_kind.value if self.reason_kind else None,
            "pause_time_ms": self.pause_time_ms,
            "end_time_ms": self.end_time_ms,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobStateMachine:
        kind = d.get("reason_kind")
        return cls(
            job_name=d["job_name"],
            state=JobState(d["state"]),
            reason=d.get("reason", ""),
            reason_kind=PauseReasonKind(kind) if kind else None,
            pause_time_ms=d.get("pause_time_ms"),
            end_time_ms=d.get("end_time_ms"),
        )


# ---- auto-resume of jobs paused for too few replicas ---------------------------------------------

AUTO_RESUME_MAX_TIMES = 3
AUTO_RESUME_WINDOW_MS = 5 * 60 * 1000


@dataclass
class AutoResumePolicy:
    """At most ``max_times`` auto-resumes within any ``window_ms`` (a sliding window).

    StarRocks counts from the first auto-resume and then locks the job until a manual RESUME;
    here the window slides, so auto-resume is allowed again once the oldest one leaves it.
    A manual RESUME calls ``reset()``. A timestamp exactly ``window_ms`` old is outside.
    """

    resumed_at_ms: list[int] = field(default_factory=list)
    max_times: int = AUTO_RESUME_MAX_TIMES
    window_ms: int = AUTO_RESUME_WINDOW_MS

    def _recent(self, now_ms: int) -> list[int]:
        return [t for t in self.resumed_at_ms if now_ms - t < self.window_ms]

    def may_auto_resume(self, now_ms: int) -> bool:
        return len(self._recent(now_ms)) < self.max_times

    def record(self, now_ms: int) -> None:
        """Note an auto-resume at ``now_ms``; timestamps that left the window are dropped."""
        self.resumed_at_ms = self._recent(now_ms) + [now_ms]

    def reset(self) -> None:
        self.resumed_at_ms = []


def should_auto_resume(state: JobState, kind: PauseReasonKind | None, policy: AutoResumePolicy,
                       now_ms: int) -> bool:
    """True when a PAUSED job's pause reason is auto-resumable and the policy allows it now."""
    return (state is JobState.PAUSED and kind is not None and kind.auto_resumable
            and policy.may_auto_resume(now_ms))


# ---- a failed task: pause the job, or renew the task (with a backoff for transient limits) -------


class TaskErrorKind(enum.Enum):
    """The ``error_kind`` a BE reports with a FAILED routine load task."""

    OFFSET_OUT_OF_RANGE = "OFFSET_OUT_OF_RANGE"
    KAFKA_ERROR = "KAFKA_ERROR"
    TOO_FEW_REPLICAS = "TOO_FEW_REPLICAS"
    ERROR_ROWS = "ERROR_ROWS"
    TOO_MANY_VERSIONS = "TOO_MANY_VERSIONS"
    """A replica refused the write at tablet_max_versions: compaction will lower the count."""
    OTHER = "OTHER"

    @classmethod
    def parse(cls, text: str) -> TaskErrorKind:
        """An unknown or empty kind (a newer BE, a bug) is OTHER: retried, never a pause."""
        try:
            return cls(text)
        except ValueError:
            return cls.OTHER


@dataclass(frozen=True)
class TaskFailureAction:
    """What a failed task does to its job: pause it (``pause`` is set) or renew the task, after
    the job's growing :class:`RetryBackoff` when ``backoff`` is set, else after a fixed delay."""

    pause: PauseReasonKind | None = None
    backoff: bool = False


_PAUSING = {
    TaskErrorKind.OFFSET_OUT_OF_RANGE: PauseReasonKind.OFFSET_OUT_OF_RANGE,
    TaskErrorKind.TOO_FEW_REPLICAS: PauseReasonKind.TOO_FEW_REPLICAS,
    TaskErrorKind.ERROR_ROWS: PauseReasonKind.ERROR_ROWS,
}


def on_task_failure(kind: TaskErrorKind) -> TaskFailureAction:
    """Offsets out of range, too few replicas and error rows pause the job (as in StarRocks);
    "Too many versions" and a BE's failure to reach the broker keep it RUNNING and retry with a
    backoff (StarRocks renews a task whose consume failed: one BE cut from the broker must not
    stop the job; the FE's own failure to read the topic pauses it, in the scheduler); anything
    else is retried after a fixed delay."""
    if kind in _PAUSING:
        return TaskFailureAction(pause=_PAUSING[kind])
    return TaskFailureAction(backoff=kind in (TaskErrorKind.TOO_MANY_VERSIONS, TaskErrorKind.KAFKA_ERROR))


RETRY_BACKOFF_INITIAL_MS = 1000
RETRY_BACKOFF_MAX_MS = 30_000


@dataclass
class RetryBackoff:
    """The delay before a job's task is retried after a transient failure ("Too many versions").

    It doubles from ``initial_ms`` up to ``max_ms`` while failures repeat, and ``reset()`` (a
    commit, a manual RESUME) starts it again. Failures within the delay just given (the job's
    other tasks failing in the same round) wait for the same moment and do not double it.
    """

    initial_ms: int = RETRY_BACKOFF_INITIAL_MS
    max_ms: int = RETRY_BACKOFF_MAX_MS
    failures: int = 0
    retry_at_ms: int = 0

    def on_failure(self, now_ms: int) -> int:
        """Note a failure at ``now_ms``; returns how long to wait before the retry."""
        if self.failures and now_ms < self.retry_at_ms:
            return self.retry_at_ms - now_ms
        delay = min(self.initial_ms << min(self.failures, 30), self.max_ms)
        self.failures += 1
        self.retry_at_ms = now_ms + delay
        return delay

    def reset(self) -> None:
        self.failures = 0
        self.retry_at_ms = 0
