"""The routine load scheduler: divides jobs into tasks and sends the tasks to BEs.

Each round (every ``interval_s``): a NEED_SCHEDULE job gets its partitions and start offsets
resolved from Kafka (once), then ``task_count`` tasks over ``divide_partitions`` and goes
RUNNING, its tasks submitted in the same round; a RUNNING job's due tasks (and those due before
the next round, on time) go to the least-loaded alive BE (at most
max_routine_load_task_num_per_be each); tasks on dead BEs, or that never began their txn within
the task timeout, are renewed; jobs paused for too few replicas are resumed when BEs are back.
Every LAG_REFRESH_S, ``refresh_lag`` takes in partitions added to a job's topic (when the job
does not pin kafka_partitions) and reads end offsets for Lag. Kafka is reached through an
injected KafkaMetadata, so a test can run the scheduler over a fake topic.

Lag is kept current for every job that may still consume (LAG_STATES), a PAUSED one included:
it is still behind Kafka, and its lag keeps growing while producers go on (StarRocks #18558,
"Add lag metrics for PAUSED Kafka jobs": before it, a job paused by a failure showed a frozen
lag and no alert fired). A STOPPED or CANCELLED job will never consume again: its lag is no
longer refreshed and :func:`max_lag_of_partition` gives none, so /metrics drops its series
(StarRocks #17104, "Clear kafka lag of stopped routine load job").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from common import quorum
from common.gen.tabletsim.v1 import backend_pb2, types_pb2
from fe.catalog.catalog import Catalog
from fe.routineload.division import choose_backend, divide_partitions, task_count
from fe.routineload.job import RoutineLoadJob, RoutineLoadTask
from fe.routineload.kafka_meta import KafkaMetadata
from fe.routineload.manager import RoutineLoadManager, load_spec
from fe.routineload.state import JobState, PauseReasonKind, should_auto_resume
from fe.system.backends import BackendRegistry
from fe.system.be_client import BackendClients
from fe.system.dynconfig import DynamicConfig
from fe.txn.manager import TransactionManager
from fe.txn.state import TxnStatus

log = logging.getLogger(__name__)

SUBMIT_TIMEOUT_S = 5.0
LAG_REFRESH_S = 5.0
LAG_STATES = frozenset({JobState.NEED_SCHEDULE, JobState.RUNNING, JobState.PAUSED})
"""The states whose lag is refreshed and exported: those of StarRocks' updateRoutineLoadProcessMetrics."""
DUE_SOON_MS = 200
"""A task due within this many ms of the end of a round is waited for and submitted in it (the
rounds run every 0.2 s: fe/node.py)."""


class RoutineLoadScheduler:
    def __init__(self, manager: RoutineLoadManager, catalog: Catalog, backends: BackendRegistry,
                 clients: BackendClients, txns: TransactionManager, config: DynamicConfig,
                 wall_ms: Callable[[], int], kafka: KafkaMetadata | None = None) -> None:
        self._manager = manager
        self._catalog = catalog
        self._backends = backends
        self._clients = clients
        self._txns = txns
        self._config = config
        self._wall_ms = wall_ms
        self._kafka = kafka or KafkaMetadata()
        backends.add_listener(self._backend_event)
        self._dead: set[int] = set()

    def _backend_event(self, be, event: str) -> None:
        if event in ("dead", "dropped", "alive"):
            self._dead.add(be.backend_id)  # the alive set changed: task counts may change
        elif event == "restarted":
            self._backend_restarted(be.backend_id)

    def _backend_restarted(self, backend_id: int) -> None:
        """A BE came back with a new start time, maybe before heartbeat_timeout_second passed (so
        it never looked dead): its tasks died with the old process. The transaction manager
        aborts the txns it coordinated (StarRocks' abortTxnWhenCoordinateBeRestart), whose abort
        renews their tasks; here its tasks that had not begun a txn are renewed now rather than
        after the task timeout."""
        renewed = []
        for job in self._manager.jobs():
            if job.state is not JobState.RUNNING:
                continue
            for task in list(job.tasks):
                if task.submitted and task.backend_id == backend_id and self._txns.find(task.txn_id) is None:
                    self._manager.renew(job, task, 0, f"backend {backend_id} restarted; task renewed")
                    renewed.append(task.task_id)
        log.warning("backend %d restarted: renewed its routine load tasks without a txn %s", backend_id, renewed)

    def _alive(self) -> list[int]:
        return [b.backend_id for b in self._backends.alive() if not b.decommissioned]

    async def run_once(self) -> None:
        dead, self._dead = self._dead, set()
        for job in self._manager.jobs():
            try:
                if job.state is JobState.NEED_SCHEDULE:
                    await self._schedule(job)
                    if job.state is JobState.RUNNING:
                        await self._run_tasks(job)  # the tasks just divided go out now, not a round later
                elif job.state is JobState.RUNNING:
                    if not job.tasks or (dead and (any(t.backend_id in dead for t in job.tasks)
                                                   or len(job.tasks) != self._task_count(job))):
                        # an FE restart (tasks are soft state) or a BE died: divide again
                        self._manager.set_state(job, JobState.NEED_SCHEDULE,
                                                "re-dividing tasks" + (" after a backend died" if job.tasks else ""))
                        continue
                    await self._run_tasks(job)
                elif job.state is JobState.PAUSED:
                    self._maybe_auto_resume(job)

            except Exception:
                log.exception("routine load job %s: scheduling round failed", job.name)
        await self._submit_due_soon()

    async def _submit_due_soon(self) -> None:
        """Submit on time the tasks that fall due within DUE_SOON_MS, instead of at a later round:
        a task renewed after a commit at the end of its partitions waits max_batch_interval, and
        a round late would add up to a round's length to the freshness of every batch."""
        now = self._wall_ms()
        soon = [t.next_schedule_ms for job in self._manager.jobs() if job.state is JobState.RUNNING
                for t in job.tasks if not t.submitted and now < t.next_schedule_ms <= now + DUE_SOON_MS]
        if not soon:
            return
        await asyncio.sleep((min(soon) - now) / 1000)
        for job in self._manager.jobs():
            if job.state is JobState.RUNNING:
                try:
                    await self._run_tasks(job)
                except Exception:
                    log.exception("routine load job %s: submitting due tasks failed", job.name)

    # ------------------------------------------------------------------ NEED_SCHEDULE
    async def _schedule(self, job: RoutineLoadJob) -> None:
        if not job.partitions or any(p not in job.progress for p in job.partitions):
            if not await self._resolve(job):
                return
        n = self._task_count(job)
        if n == 0:
            job.other_msg = "no alive backend to run tasks; waiting"
            return
        job.other_msg = ""
        self._manager.divide(job, divide_partitions(sorted(job.partitions), n))

    def _task_count(self, job: RoutineLoadJob) -> int:
        return task_count(len(self._alive()), len(job.partitions), job.props.desired_concurrent_number,
                          self._config.max_routine_load_task_concurrent_num)

    async def _resolve(self, job: RoutineLoadJob) -> bool:
        """Partitions (all of the topic unless pinned) and the start offset of each new one."""
        src = job.source
        try:
            partitions = list(src.partitions) or await self._kafka.partitions(src)
            pinned = dict(src.partition_offsets)
            todo = {p: pinned.get(p, src.default_offset) for p in partitions if p not in job.progress}
            progress = {}
            if todo:
                progress, ends = await self._kafka.start_offsets(src, todo, job.props.timezone)
                job.observe_highwater(ends)
        except ValueError as exc:
            self._manager.pause_for(job, PauseReasonKind.KAFKA_ERROR, f"failed to get partitions of topic: {exc}")
            return False
        except Exception as exc:  # noqa: BLE001 - any client failure pauses the job with its text
            self._manager.pause_for(
                job, PauseReasonKind.KAFKA_ERROR,
                f"failed to reach kafka brokers {','.join(src.broker_list)} for topic '{src.topic}': "
                f"{type(exc).__name__}: {exc}")
            return False
        self._manager.init_progress(job, partitions, progress)
        log.info("routine load job %s: partitions %s, start offsets %s", job.name, partitions, progress)
        return True

    # ------------------------------------------------------------------ RUNNING
    def _load_by_be(self) -> dict[int, int]:
        load = dict.fromkeys(self._alive(), 0)
        for job in self._manager.jobs():
            for t in job.tasks:
                if t.submitted and t.backend_id in load:
                    load[t.backend_id] += 1
        return load

    async def _run_tasks(self, job: RoutineLoadJob) -> None:
        now = self._wall_ms()
        timeout_ms = self._manager.timeout_s(job) * 1000
        for task in list(job.tasks):
            if not task.submitted:
                continue
            if task.txn_id > 0:
                txn = self._txns.find(task.txn_id)
                if txn is not None and txn.status is TxnStatus.PREPARE and self._backends.get(task.backend_id) \
                        and not self._backends.get(task.backend_id).alive:
                    self._txns.abort(task.txn_id, f"backend {task.backend_id} running the task is dead")
            elif now - task.last_scheduled_ms > timeout_ms:
                self._manager.renew(job, task, 0, f"task did not begin within {timeout_ms // 1000} s; renewed")
        due = [t for t in job.tasks if not t.submitted and t.next_schedule_ms <= now]
        if not due:
            return
        load = self._load_by_be()
        sends = []
        for task in due:
            be = choose_backend(load, set(load), self._config.max_routine_load_task_num_per_be, task.backend_id)
            if be is None:
                task.message = "every alive backend runs max_routine_load_task_num_per_be tasks; waiting"
                continue
            load[be] += 1
            task.backend_id = be
            task.submitted = True
            task.last_scheduled_ms = now
            sends.append(self._submit(job, task, be))
        await asyncio.gather(*sends)

    async def _submit(self, job: RoutineLoadJob, task: RoutineLoadTask, be_id: int) -> None:
        props = job.props
        spec = load_spec(props, job.columns, job.where)
        params = types_pb2.LoadParams(
            format=spec.format, columns=spec.columns or "", column_separator=spec.column_separator,
            jsonpaths=spec.jsonpaths or "", json_root=spec.json_root or "", strip_outer_array=spec.strip_outer_array,
            where=spec.where or "", max_filter_ratio=props.max_filter_ratio, strict_mode=spec.strict_mode,
            timezone=spec.timezone)
        request = backend_pb2.RoutineLoadTask(
            job_id=job.job_id, job_name=job.name, task_id=task.task_id, label=job.label_for(task),
            db=job.db_name, table=job.table_name, params=params, broker_list=list(job.source.broker_list),
            topic=job.source.topic, kafka_properties=job.source.custom,
            start_offsets={p: job.progress[p] for p in task.partitions},
            max_batch_interval_s=props.max_batch_interval_s, max_batch_rows=props.max_batch_rows,
            max_batch_size_bytes=min(props.max_batch_size_bytes, self._config.max_routine_load_batch_size),
            consume_second=self._manager.consume_s(job), timeout_s=self._manager.timeout_s(job),
        )
        try:
            await self._clients.stub(be_id).SubmitRoutineLoadTask(request, timeout=SUBMIT_TIMEOUT_S)
            task.message = ""
        except grpc.aio.AioRpcError as exc:
            log.warning("routine load job %s: task %s not accepted by backend %d: %s %s", job.name,
                        task.task_id, be_id, exc.code().name, exc.details())
            self._manager.renew(job, task, 1000, f"backend {be_id} did not take the task: {exc.code().name}")

    async def refresh_lag(self) -> None:
        """Run by its own daemon every LAG_REFRESH_S: take in the partitions added to the topic of
        each job that consumes all of its partitions, then read the end offsets of every job in
        LAG_STATES (PAUSED ones too) from Kafka so that Lag is current (tasks report them as
        well, but only when they end, and a paused job runs none)."""
        for job in self._manager.jobs():
            if job.state in (JobState.RUNNING, JobState.NEED_SCHEDULE) and job.partitions \
                    and not job.source.partitions:
                await self._refresh_partitions(job)
            if job.state in LAG_STATES and job.partitions:
                await self._refresh_end_offsets(job)

    async def _refresh_partitions(self, job: RoutineLoadJob) -> None:
        """StarRocks' KafkaRoutineLoadJob with no kafka_partitions: the topic's partition list is
        read again; new partitions start at kafka_default_offsets and the job is divided again.
        A failed lookup leaves the job as it is (its tasks report Kafka errors themselves)."""
        src = job.source
        try:
            found = await self._kafka.partitions(src)
            added = sorted(set(found) - set(job.partitions))
            if not added:
                return
            todo = {p: src.default_offset for p in added if p not in job.progress}
            starts, ends = await self._kafka.start_offsets(src, todo, job.props.timezone) if todo else ({}, {})
        except Exception as exc:  # noqa: BLE001 - the partition list stays as last known
            log.info("routine load job %s: partitions of topic '%s' not refreshed: %s", job.name, src.topic, exc)
            return
        if job.state not in (JobState.RUNNING, JobState.NEED_SCHEDULE) or job.source.partitions:
            return  # paused, stopped or altered to pinned partitions while Kafka answered
        partitions = sorted(set(job.partitions) | set(added))
        self._manager.init_progress(job, partitions, starts)
        job.observe_highwater(ends)
        shown = ",".join(map(str, added))
        log.info("routine load job %s: topic '%s' has new partitions %s, starting at %s", job.name, src.topic,
                 shown, starts)
        if job.state is JobState.RUNNING:  # NEED_SCHEDULE divides over the new list on its next round
            self._manager.set_state(job, JobState.NEED_SCHEDULE,
                                    f"re-dividing tasks: topic '{src.topic}' has new partitions {shown}")

    async def _refresh_end_offsets(self, job: RoutineLoadJob) -> None:
        try:
            ends = await self._kafka.end_offsets(job.source, list(job.partitions))
        except Exception as exc:  # noqa: BLE001 - lag stays as last known; tasks report Kafka errors
            log.info("routine load job %s: end offsets not refreshed: %s", job.name, exc)
            return
        if job.state in LAG_STATES:  # not stopped while Kafka answered: a stopped job's lag stays put
            job.observe_highwater(ends)

    # ------------------------------------------------------------------ PAUSED
    def _maybe_auto_resume(self, job: RoutineLoadJob) -> None:
        now = self._wall_ms()
        if not should_auto_resume(job.state, job.sm.reason_kind, job.auto_resume, now):
            return
        try:
            _, table = self._catalog.table(job.db_name, job.table_name)
        except Exception:  # noqa: BLE001 - the table went away: the drop cancels the job
            return
        # only BEs heard from since the pause: one killed a moment before it still looks alive
        # until heartbeat_timeout_second passes, and resuming onto it fails the same way at once
        paused_at = job.sm.pause_time_ms or 0
        alive = {b.backend_id for b in self._backends.alive()
                 if not b.decommissioned and b.last_heartbeat_ms > paused_at}
        for p in table.partitions:
            for t in p.tablets:
                # the replicas a load would write to (common/quorum.py), as the coordinator counts them
                if sum(1 for r in t.replicas if quorum.writable(r.state.value, r.bad, r.backend_id in alive)) \
                        < table.quorum:
                    return
        job.auto_resume.record(now)
        self._manager.set_state(job, JobState.NEED_SCHEDULE,
                                "auto-resumed: enough alive replicas for the write quorum again")


def max_lag_of_partition(job: RoutineLoadJob) -> int | None:
    """starrocks_fe_routine_load_max_lag_of_partition of a job: the largest lag (end offset -
    progress) over its partitions, as StarRocks' updateRoutineLoadProcessMetrics computes it;
    None, no series, for a job outside LAG_STATES (stopped or cancelled: cleared) or before any
    end offset is known."""
    if job.state not in LAG_STATES:
        return None
    lags = job.lag()
    return max(lags.values()) if lags else None
