"""Routine load tasks on a BE: a Kafka consumer group per task, one batch, one transaction.

A task seeks its partitions to the job's committed progress and consumes until
max_batch_interval / routine_load_task_consume_second, max_batch_rows or max_batch_size, or the
end of every partition. With no data it reports NO_DATA and begins no transaction. Otherwise it
begins the txn (label ``<job>-<task>``), parses and maps the messages with the Stream Load code,
writes the replicas, and commits with an attachment of the offsets it read and its row counts:
the FE accepts it only if the task is still current and its start offsets equal the progress.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import grpc
import orjson
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError

from be.load.coordinator import LoadCoordinator, spec_from_params
from be.load.writer import TooManyVersions, replicate
from common import kafka
from common.errors import TabletsimError, Unavailable
from common.gen.tabletsim.v1 import backend_pb2, frontend_pb2, frontend_pb2_grpc, types_pb2

log = logging.getLogger(__name__)

POLL_MS = 500


@dataclass
class Consumed:
    values: list[bytes] = field(default_factory=list)
    received_bytes: int = 0
    next_offsets: dict[int, int] = field(default_factory=dict)
    highwater: dict[int, int] = field(default_factory=dict)
    eos: bool = False
    consume_ms: int = 0
    blocking_get_us: int = 0
    out_of_range: str = ""


class TaskFailed(Exception):
    def __init__(self, kind: str, message: str, samples: list[types_pb2.FilteredRow] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.samples = samples or []


class RoutineLoadRunner:
    """Runs the tasks the FE submits; each is an asyncio task tracked until it ends."""

    def __init__(self, coordinator: LoadCoordinator, fe: frontend_pb2_grpc.FrontendServiceStub) -> None:
        self._coordinator = coordinator
        self._fe = fe
        self._tasks: dict[str, asyncio.Task] = {}

    def submit(self, req: backend_pb2.RoutineLoadTask) -> None:
        if req.task_id in self._tasks:
            return
        task = asyncio.create_task(self._run(req), name=f"routine-load-{req.task_id}")
        self._tasks[req.task_id] = task
        task.add_done_callback(lambda _t, tid=req.task_id: self._tasks.pop(tid, None))

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # ------------------------------------------------------------------ one task
    async def _run(self, req: backend_pb2.RoutineLoadTask) -> None:
        started = time.monotonic()
        txn_id = 0
        try:
            consumed = await self._consume(req)
            if consumed.out_of_range:
                raise TaskFailed("OFFSET_OUT_OF_RANGE", consumed.out_of_range)
            if not consumed.values:
                await self._report(req, 0, "NO_DATA", "", "no new data", consumed.highwater)
                return
            begun = await self._coordinator.begin(req.db, req.table, req.label, req.timeout_s, "ROUTINE_LOAD_TASK")
            txn_id = begun.txn_id
            await self._load(req, begun, consumed, started)
        except TaskFailed as exc:
            if txn_id:
                await self._coordinator.abort(txn_id, str(exc))
            await self._report(req, txn_id, "FAILED", exc.kind, str(exc), {}, exc.samples)
        except grpc.aio.AioRpcError as exc:
            if txn_id:
                await self._coordinator.abort(txn_id, f"{exc.code().name}: {exc.details()}")
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                log.info("routine load task %s of job %s ended: %s", req.task_id, req.job_name, exc.details())
                return  # the FE moved on (task no longer current, job paused): nothing to report
            await self._report(req, txn_id, "FAILED", "OTHER", f"{exc.code().name}: {exc.details()}", {})
        except asyncio.CancelledError:
            if txn_id:
                await self._coordinator.abort(txn_id, "the backend is stopping")
            raise
        except Exception as exc:  # noqa: BLE001 - a task must end with a report, never silently
            log.exception("routine load task %s of job %s failed", req.task_id, req.job_name)
            if txn_id:
                await self._coordinator.abort(txn_id, f"{type(exc).__name__}: {exc}")
            await self._report(req, txn_id, "FAILED", "OTHER", f"{type(exc).__name__}: {exc}", {})

    async def _consume(self, req: backend_pb2.RoutineLoadTask) -> Consumed:
        out = Consumed()
        props = dict(req.kafka_properties)
        try:
            consumer = await kafka.start_consumer(list(req.broker_list), props, group_id=f"{req.job_name}_{req.task_id}")
        except KafkaError as exc:
            raise TaskFailed("KAFKA_ERROR", f"failed to reach kafka brokers {','.join(req.broker_list)}: "
                                            f"{type(exc).__name__}: {exc}") from None
        started = time.monotonic()
        try:
            tps = {p: TopicPartition(req.topic, p) for p in req.start_offsets}
            consumer.assign(list(tps.values()))
            for p, offset in req.start_offsets.items():
                consumer.seek(tps[p], offset)
                out.next_offsets[p] = offset
            limit_s = max(min(req.max_batch_interval_s, req.consume_second), 1)
            deadline = started + limit_s
            left_bytes = req.max_batch_size_bytes
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                t0 = time.perf_counter()
                try:
                    batch = await consumer.getmany(
                        *tps.values(), timeout_ms=int(min(remaining * 1000, POLL_MS)),
                        max_records=max(1, req.max_batch_rows - len(out.values)))
                except OffsetOutOfRangeError as exc:
                    out.out_of_range = f"offset out of range: {exc}"
                    break
                out.blocking_get_us += int((time.perf_counter() - t0) * 1e6)
                for tp, records in batch.items():
                    for m in records:
                        value = m.value or b""
                        out.values.append(value)
                        out.received_bytes += len(value)
                    if records:
                        out.next_offsets[tp.partition] = records[-1].offset + 1
                for p, tp in tps.items():
                    hw = consumer.highwater(tp)
                    if hw is not None:
                        out.highwater[p] = hw
                left_bytes = req.max_batch_size_bytes - out.received_bytes
                if len(out.values) >= req.max_batch_rows or left_bytes <= 0:
                    break
                if all(out.highwater.get(p, -1) >= 0 and out.next_offsets[p] >= out.highwater[p] for p in tps):
                    out.eos = True
                    break
                if not batch:
                    # nothing came within a poll: at the end, or out of range (some brokers say nothing)
                    ends = await kafka.true_end_offsets(consumer, list(tps.values()))
                    begins = await consumer.beginning_offsets(list(tps.values()))
                    for p, tp in tps.items():
                        out.highwater[p] = ends[tp]
                        consumer.seek(tp, out.next_offsets[p])
                        if not begins[tp] <= out.next_offsets[p] <= ends[tp]:
                            out.out_of_range = (f"offset out of range: partition {p} offset {out.next_offsets[p]} "
                                                f"is outside [{begins[tp]}, {ends[tp]}] of topic '{req.topic}'")
                    if out.out_of_range or all(out.next_offsets[p] >= ends[tps[p]] for p in tps):
                        out.eos = not out.out_of_range
                        break
        finally:
            out.consume_ms = int((time.monotonic() - started) * 1000)
            await consumer.stop()
        log.info(
            "consumer group done: %s_%s. consume time(ms)=%d, received rows=%d, received bytes=%d, eos: %d, "
            "left_time: %d, left_bytes: %d, blocking get time(us): %d, blocking put time(us): %d",
            req.job_name, req.task_id, out.consume_ms, len(out.values), out.received_bytes, int(out.eos),
            int(max(min(req.max_batch_interval_s, req.consume_second), 1) * 1000 - out.consume_ms),
            req.max_batch_size_bytes - out.received_bytes, out.blocking_get_us, 0)
        return out

    async def _load(self, req: backend_pb2.RoutineLoadTask, begun: frontend_pb2.BeginTxnResponse,
                    consumed: Consumed, started: float) -> None:
        coordinator = self._coordinator
        spec = spec_from_params(req.params)
        try:
            plan, router = coordinator.compile(spec, begun.target)
        except TabletsimError as exc:
            raise TaskFailed("OTHER", str(exc)) from None
        batch = await asyncio.to_thread(plan.parse_messages, consumed.values)
        prepared = await asyncio.to_thread(coordinator.prepare, batch, router, spec.max_error_samples)
        samples = [types_pb2.FilteredRow(row=e.row, reason=e.reason) for e in prepared.errors]
        considered = batch.total_rows - batch.unselected_rows
        max_ratio = req.params.max_filter_ratio if req.params.HasField("max_filter_ratio") else 1.0
        if considered and prepared.filtered / considered > max_ratio:
            raise TaskFailed(
                "ERROR_ROWS",
                f"too many filtered rows in a batch: {prepared.filtered} of {considered} "
                f"({prepared.filtered / considered:.4f}) > max_filter_ratio {max_ratio:g}; see error_samples",
                samples)
        try:
            outcome = await replicate(begun.txn_id, router, prepared.encoded, coordinator.send,
                                      quorum=begun.target.quorum)
        except TooManyVersions as exc:
            # transient (compaction catches up): the FE retries with a backoff, the job keeps RUNNING
            raise TaskFailed("TOO_MANY_VERSIONS", str(exc)) from None
        except Unavailable as exc:
            raise TaskFailed("TOO_FEW_REPLICAS", f"too few alive replicas for the write quorum: {exc}") from None
        attachment = {
            "job_id": req.job_id, "task_id": req.task_id,
            "offsets": {str(p): [req.start_offsets[p], consumed.next_offsets[p]] for p in req.start_offsets},
            "total_rows": batch.total_rows, "loaded_rows": outcome.loaded_rows,
            "filtered_rows": prepared.filtered, "unselected_rows": batch.unselected_rows,
            "received_bytes": consumed.received_bytes,
            "task_execute_time_ms": int((time.monotonic() - started) * 1000),
            "eos": consumed.eos, "highwater": {str(p): h for p, h in consumed.highwater.items()},
            "error_samples": [{"row": e.row, "reason": e.reason} for e in prepared.errors],
        }
        await coordinator.commit(begun.txn_id, outcome.commit_infos, outcome.loaded_rows,
                                 attachment_json=orjson.dumps(attachment).decode())

    async def _report(self, req: backend_pb2.RoutineLoadTask, txn_id: int, outcome: str, kind: str, message: str,
                      highwater: dict[int, int], samples: list[types_pb2.FilteredRow] | None = None) -> None:
        try:
            await self._fe.ReportRoutineLoadTask(frontend_pb2.RoutineLoadTaskReport(
                job_id=req.job_id, task_id=req.task_id, txn_id=txn_id, outcome=outcome, error_kind=kind,
                message=message, highwater=highwater, error_samples=samples or []), timeout=10)
        except grpc.aio.AioRpcError as exc:
            log.warning("routine load task %s: report to FE failed (%s); the FE renews it on timeout",
                        req.task_id, exc.code().name)
