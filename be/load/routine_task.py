"""Routine load tasks on a BE: a Kafka consumer group per task, one batch, one transaction.

A task seeks its partitions to the job's committed progress and consumes until
max_batch_interval / routine_load_task_consume_second, max_batch_rows or max_batch_size, or the
end of every partition. With no data it reports NO_DATA and begins no transaction. Otherwise it
begins the txn (label ``<job>-<task>``) with the first chunk of messages, parses, maps and writes
the batch in chunks of ``write_buffer_size`` bytes while it consumes (be/load/chunked_load.py),
and commits with an attachment of the offsets it read and its row counts: the FE accepts it only
if the task is still current and its start offsets equal the progress. A batch with filtered rows
writes them to an error log of this BE (be/load/error_log.py), and the attachment's
``error_log_url`` takes its URL to the FE, whose SHOW ROUTINE LOAD lists the last ones as
ErrorLogUrls (a task that fails over max_filter_ratio names it in its failure message).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import grpc
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError

from be.load.chunked_load import ChunkedLoad, TaskFailed
from be.load.coordinator import LoadCoordinator
from be.load.stats import LoadStats
from common import kafka
from common.config import StorageConfig
from common.debug import BE_KAFKA_CONSUME, DebugPoints
from common.errors import TabletsimError
from common.gen.tabletsim.v1 import backend_pb2, frontend_pb2, frontend_pb2_grpc, types_pb2

log = logging.getLogger(__name__)

POLL_MS = 500
# the message size assumed until a task has seen some: it sizes the first fetch of records
FIRST_MESSAGE_BYTES_GUESS = 1024
# bounds of a task consumer's max.partition.fetch.bytes: write_buffer_size shared by its partitions
# (Kafka's and aiokafka's default is the upper one)
MIN_PARTITION_FETCH_BYTES = 64 * 1024
MAX_PARTITION_FETCH_BYTES = 1024 * 1024

StartConsumer = Callable[[list[str], Mapping[str, str], str | None], Awaitable[AIOKafkaConsumer]]


@dataclass
class Consumed:
    received_rows: int = 0
    received_bytes: int = 0
    next_offsets: dict[int, int] = field(default_factory=dict)
    highwater: dict[int, int] = field(default_factory=dict)
    eos: bool = False
    consume_ms: int = 0
    blocking_get_us: int = 0
    blocking_put_us: int = 0
    """Time the consumer waited for the chunk before to be written."""
    out_of_range: str = ""


class RoutineLoadRunner:
    """Runs the tasks the FE submits; each is an asyncio task tracked until it ends."""

    def __init__(self, coordinator: LoadCoordinator, fe: frontend_pb2_grpc.FrontendServiceStub, *,
                 debug: DebugPoints | None = None, stats: LoadStats | None = None,
                 write_buffer_size: int = StorageConfig.write_buffer_size,
                 start_consumer: StartConsumer = kafka.start_consumer) -> None:
        """``write_buffer_size``: bytes of message values parsed and written at a time;
        ``start_consumer``: how a task reaches Kafka (tests pass a fake broker)."""
        self._debug = debug or DebugPoints.disabled()
        self._stats = stats or LoadStats()
        self._coordinator = coordinator
        self._fe = fe
        self._write_buffer_size = max(1, write_buffer_size)
        self._start_consumer = start_consumer
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
        load = ChunkedLoad(self._coordinator, req)
        try:
            try:
                consumed = await self._consume(req, load)
                if consumed.out_of_range:
                    raise TaskFailed("OFFSET_OUT_OF_RANGE", consumed.out_of_range)
                if not consumed.received_rows:
                    await self._report(req, 0, "NO_DATA", "", "no new data", consumed.highwater)
                    return
                await self._commit(req, load, consumed, started)
            finally:
                await load.close()  # a chunk still being written stops before its txn is aborted
        except TaskFailed as exc:
            if load.txn_id:
                await self._coordinator.abort(load.txn_id, str(exc))
            message = str(exc)
            if exc.samples:  # over max_filter_ratio: the rows and why, in an error log too
                url = await self._error_log(load)
                message += f"; error log: {url}" if url else ""
            await self._report(req, load.txn_id, "FAILED", exc.kind, message, {}, exc.samples)
        except grpc.aio.AioRpcError as exc:
            if load.txn_id:
                await self._coordinator.abort(load.txn_id, f"{exc.code().name}: {exc.details()}")
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                log.info("routine load task %s of job %s ended: %s", req.task_id, req.job_name, exc.details())
                return  # the FE moved on (task no longer current, job paused): nothing to report
            await self._report(req, load.txn_id, "FAILED", "OTHER", f"{exc.code().name}: {exc.details()}", {})
        except asyncio.CancelledError:
            if load.txn_id:
                await self._coordinator.abort(load.txn_id, "the backend is stopping")
            raise
        except Exception as exc:  # noqa: BLE001 - a task must end with a report, never silently
            log.exception("routine load task %s of job %s failed", req.task_id, req.job_name)
            if load.txn_id:
                await self._coordinator.abort(load.txn_id, f"{type(exc).__name__}: {exc}")
            await self._report(req, load.txn_id, "FAILED", "OTHER", f"{type(exc).__name__}: {exc}", {})

    async def _consume(self, req: backend_pb2.RoutineLoadTask, load: ChunkedLoad) -> Consumed:
        """Consume the batch, handing it to ``load`` in chunks of about write_buffer_size bytes."""
        out = Consumed()
        props = dict(req.kafka_properties)
        # the client prefetches about one chunk, not aiokafka's 50 MB (a job's own property.* wins;
        # Tansu returns more than asked anyway, so _records_wanted bounds what becomes objects)
        props.setdefault("fetch.max.bytes", str(self._write_buffer_size))
        share = self._write_buffer_size // max(1, len(req.start_offsets))
        props.setdefault("max.partition.fetch.bytes",
                         str(min(MAX_PARTITION_FETCH_BYTES, max(MIN_PARTITION_FETCH_BYTES, share))))
        try:
            await self._debug.point_each(BE_KAFKA_CONSUME, req.broker_list)  # DROP: a broker unreachable
            consumer = await self._start_consumer(list(req.broker_list), props, f"{req.job_name}_{req.task_id}")
        except (KafkaError, TabletsimError) as exc:
            raise TaskFailed("KAFKA_ERROR", f"failed to reach kafka brokers {','.join(req.broker_list)}: "
                                            f"{type(exc).__name__}: {exc}") from None
        started = time.monotonic()
        chunk: list[bytes] = []  # the values not handed to ``load`` yet
        chunk_bytes = 0
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
                load.check()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                t0 = time.perf_counter()
                try:
                    await self._debug.point_each(BE_KAFKA_CONSUME, req.broker_list)
                    batch = await consumer.getmany(
                        *tps.values(), timeout_ms=int(min(remaining * 1000, POLL_MS)),
                        max_records=self._records_wanted(req, out, chunk_bytes))
                except OffsetOutOfRangeError as exc:
                    out.out_of_range = f"offset out of range: {exc}"
                    break
                except TabletsimError as exc:  # a debug rule made a broker unreachable mid-batch
                    raise TaskFailed("KAFKA_ERROR", f"failed to reach kafka brokers {','.join(req.broker_list)}: "
                                                    f"{type(exc).__name__}: {exc}") from None
                out.blocking_get_us += int((time.perf_counter() - t0) * 1e6)
                for tp, records in batch.items():
                    if not records:
                        continue
                    values = [m.value or b"" for m in records]
                    size = sum(map(len, values))
                    chunk += values
                    chunk_bytes += size
                    out.received_bytes += size
                    out.received_rows += len(records)
                    out.next_offsets[tp.partition] = records[-1].offset + 1
                empty = not batch
                del batch  # its records: the values are in the chunk
                if chunk_bytes >= self._write_buffer_size:
                    await self._hand_over(load, chunk, out)
                    chunk, chunk_bytes = [], 0
                for p, tp in tps.items():
                    hw = consumer.highwater(tp)
                    if hw is not None:
                        out.highwater[p] = hw
                left_bytes = req.max_batch_size_bytes - out.received_bytes
                if out.received_rows >= req.max_batch_rows or left_bytes <= 0:
                    break
                if all(out.highwater.get(p, -1) >= 0 and out.next_offsets[p] >= out.highwater[p] for p in tps):
                    out.eos = True
                    break
                if empty:
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
            out.consume_ms = int((time.monotonic() - started) * 1000)
            if chunk and not out.out_of_range:
                await self._hand_over(load, chunk, out)  # the last chunk is parsed while the consumer stops
                chunk = []
        finally:
            out.consume_ms = out.consume_ms or int((time.monotonic() - started) * 1000)
            await consumer.stop()
        log.info(
            "consumer group done: %s_%s. consume time(ms)=%d, received rows=%d, received bytes=%d, eos: %d, "
            "left_time: %d, left_bytes: %d, blocking get time(us): %d, blocking put time(us): %d",
            req.job_name, req.task_id, out.consume_ms, out.received_rows, out.received_bytes, int(out.eos),
            int(max(min(req.max_batch_interval_s, req.consume_second), 1) * 1000 - out.consume_ms),
            req.max_batch_size_bytes - out.received_bytes, out.blocking_get_us, out.blocking_put_us)
        return out

    def _records_wanted(self, req: backend_pb2.RoutineLoadTask, out: Consumed, chunk_bytes: int) -> int:
        """How many records the next fetch may turn into Python objects: enough to fill the chunk
        at the messages' mean size so far, never past max_batch_rows. (A broker may answer a fetch
        with far more than max.partition.fetch.bytes of records, as Tansu does: unbounded, one
        getmany would make objects of the whole batch at once.)"""
        mean = out.received_bytes / out.received_rows if out.received_rows else FIRST_MESSAGE_BYTES_GUESS
        room = -(-(self._write_buffer_size - chunk_bytes) // max(1, int(mean)))
        return max(1, min(req.max_batch_rows - out.received_rows, room))

    @staticmethod
    async def _hand_over(load: ChunkedLoad, chunk: list[bytes], out: Consumed) -> None:
        """Give ``load`` the next chunk; waiting for the one before to be written is the blocking put."""
        t0 = time.perf_counter()
        await load.add(chunk)
        out.blocking_put_us += int((time.perf_counter() - t0) * 1e6)

    async def _commit(self, req: backend_pb2.RoutineLoadTask, load: ChunkedLoad, consumed: Consumed,
                      started: float) -> None:
        outcome = await load.finish()
        counts = load.counts
        attachment = {
            "job_id": req.job_id, "task_id": req.task_id,
            "offsets": {str(p): [req.start_offsets[p], consumed.next_offsets[p]] for p in req.start_offsets},
            "total_rows": counts.total_rows, "loaded_rows": outcome.loaded_rows,
            "filtered_rows": counts.filtered_rows, "unselected_rows": counts.unselected_rows,
            "received_bytes": consumed.received_bytes,
            "task_execute_time_ms": int((time.monotonic() - started) * 1000),
            "eos": consumed.eos, "highwater": {str(p): h for p, h in consumed.highwater.items()},
            "error_samples": [{"row": e.row, "reason": e.reason} for e in counts.errors],
        }
        if counts.filtered_rows:
            url = await self._error_log(load)
            if url:  # StarRocks' errorLogUrl of the task's commit attachment: SHOW ROUTINE LOAD's ErrorLogUrls
                attachment["error_log_url"] = url
        log.info("routine load task %s of job %s: txn %d wrote %d rows in %d chunks (parse and encode %d ms, "
                 "write %d ms)", req.task_id, req.job_name, load.txn_id, outcome.loaded_rows, counts.chunks,
                 counts.prepare_ms, counts.write_ms)
        await self._coordinator.commit(load.txn_id, outcome.commit_infos, outcome.loaded_rows,
                                       attachment_json=orjson.dumps(attachment).decode())
        self._stats.routine_task_done(outcome.loaded_rows, consumed.received_bytes)

    async def _error_log(self, load: ChunkedLoad) -> str | None:
        """Write the batch's filtered rows to an error log of this BE (be/load/error_log.py); its URL,
        or None when the BE serves no HTTP (or the disk refused)."""
        logs = self._coordinator.error_logs
        if logs is None:
            return None
        counts = load.counts
        return await logs.write_async(counts.errors, counts.filtered_rows)

    async def _report(self, req: backend_pb2.RoutineLoadTask, txn_id: int, outcome: str, kind: str, message: str,
                      highwater: dict[int, int], samples: list[types_pb2.FilteredRow] | None = None) -> None:
        try:
            await self._fe.ReportRoutineLoadTask(frontend_pb2.RoutineLoadTaskReport(
                job_id=req.job_id, task_id=req.task_id, txn_id=txn_id, outcome=outcome, error_kind=kind,
                message=message, highwater=highwater, error_samples=samples or []), timeout=10)
        except grpc.aio.AioRpcError as exc:
            log.warning("routine load task %s: report to FE failed (%s); the FE renews it on timeout",
                        req.task_id, exc.code().name)
