"""A BE coordinating one load: begin at the FE, parse and map, route, replicate, commit.

Stream Load uses it whole; Routine Load (a Kafka batch) reuses the same pieces with an
attachment on the commit. All CPU-heavy steps (parsing, routing, encoding) run off the event loop.

A Stream Load body larger than ``piece_bytes`` is cut at row delimiters into pieces of about that
size and loaded as routine load loads its chunks (be/load/pipeline.py): piece N+1 is parsed,
routed and encoded in a worker thread while piece N is written to the replicas. Each piece is
mapped after the rows of the pieces before it, so the counts, error samples (row numbers) and now()
are those of the body mapped whole; max_filter_ratio is checked on the whole body before the commit,
and a body over it is aborted (the abort clears the pieces written). CSV is cut at its row
delimiter; newline-delimited JSON at newlines, each line then mapped as one document; one JSON
document, strip_outer_array and json_root bodies are mapped whole (be/load/body.py: the same rules for
a body in memory, gRPC's, and one streamed over HTTP, which is read piece by piece as it arrives, so
that a body of any size holds a few pieces in memory). Measured on bench.stream_load
(200,000 CSV rows, 10 MB, RF=3, a shared 2-core machine): 4-17% more rows/s than the body in one
piece, in paired runs. Pieces of 4 MiB: mapping costs +4% over the whole body, 2 MiB +14%, 1 MiB
+29% (polars' fixed cost per call), and the writes hidden behind the mapping are about 100 ms.

An abort that no leader took (no FE answered, or none knew a leader: a failover under way) is
sent again in the background every ``abort_retry_s`` for up to ABORT_RETRY_FOR_S, until a leader
answers; otherwise the txn would stay PREPARE, and its label taken ("Label Already Exists"), until
the txn timeout (600 s for a stream load). The caller's answer does not wait for it.

The answer says where the time went, as StarRocks' does: BeginTxnTimeMs (the FE's BeginTxn),
StreamLoadPlanTimeMs (compiling the load for the table's columns, StarRocks' streamLoadPut),
ReadDataTimeMs (waiting for the client's body), WriteDataTimeMs (the rest of the pieces' loop:
parsing, mapping, routing, encoding and the replicas' writes not hidden behind them) and
CommitAndPublishTimeMs (CommitTxn until VISIBLE).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

import grpc

from be.agent.peers import PeerClients
from be.load.body import PIECE_BYTES, Body, MemoryBody, Parse, memory_pieces
from be.load.error_log import ErrorLogs
from be.load.pipeline import LoadPipeline, prepare
from be.load.router import Router, columns_of
from be.load.writer import Chunk, TabletSink, TooManyVersions, rows_request
from be.storage.rowsets import RowsetStore, StorageError
from common.errors import FailedPrecondition, InvalidArgument, TabletsimError
from common.gen.tabletsim.v1 import frontend_pb2, frontend_pb2_grpc, types_pb2
from common.loadformat import LoadPlan, LoadSpec, LoadSpecError, compile_load
from common.streamload import DEFAULT_TIMEOUT_S

log = logging.getLogger(__name__)

WRITE_RPC_TIMEOUT_S = 15.0
ABORT_TIMEOUT_S = 10.0
ABORT_RETRY_FOR_S = 120.0  # a leader is elected within seconds; a BE cut off longer lets the txn time out
# no leader took the call: sent again later. Anything else is the leader's answer (done, or refused)
_NOT_TAKEN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_EXISTING = re.compile(r"relate to txn \[(\d+)\], status \[(\w+)\]")


def spec_from_params(params: types_pb2.LoadParams) -> LoadSpec:
    fmt = (params.format or "csv").lower()
    return LoadSpec(
        format=fmt,
        columns=params.columns or None,
        column_separator=params.column_separator or ",",
        row_delimiter=params.row_delimiter or "\n",
        jsonpaths=params.jsonpaths or None,
        json_root=params.json_root or None,
        strip_outer_array=params.strip_outer_array,
        where=params.where or None,
        strict_mode=params.strict_mode,
        timezone=params.timezone or "Asia/Shanghai",
    )


class LoadCoordinator:
    def __init__(self, backend_id: Callable[[], int], fe: frontend_pb2_grpc.FrontendServiceStub,
                 rowsets: RowsetStore, peers: PeerClients, *, abort_retry_s: float = 1.0,
                 piece_bytes: int = PIECE_BYTES) -> None:
        self._backend_id = backend_id
        self._piece_bytes = piece_bytes
        self._fe = fe
        self._rowsets = rowsets
        self._peers = peers
        self._abort_retry_s = abort_retry_s
        self.pending_aborts: dict[int, asyncio.Task] = {}  # txn id -> its abort, retried in the background
        self.error_logs: ErrorLogs | None = None
        """Where the filtered rows of this BE's loads are written (StarRocks' _load_error_log), set
        when the BE serves them over HTTP (be/http/stream_load.py); None: no ErrorURL."""
        self._closed = False

    # ------------------------------------------------------------------ pieces
    async def begin(self, db: str, table: str, label: str, timeout_s: int,
                    source_type: str) -> frontend_pb2.BeginTxnResponse:
        return await self._fe.BeginTxn(frontend_pb2.BeginTxnRequest(
            db=db, table=table, label=label, timeout_s=timeout_s,
            coordinator_backend_id=self._backend_id(), source_type=source_type,
        ), timeout=30)

    def compile(self, spec: LoadSpec, target: types_pb2.LoadTarget) -> tuple[LoadPlan, Router]:
        columns = columns_of(target)
        try:
            plan = compile_load(spec, columns)
        except LoadSpecError as exc:
            raise InvalidArgument(f"load of {target.db}.{target.table}: {exc}") from None
        return plan, Router(target, columns)

    prepare = staticmethod(prepare)

    async def send(self, backend_id: int, address: str, txn_id: int, chunks: list[Chunk]) -> None:
        if backend_id == self._backend_id():
            try:
                await asyncio.to_thread(self._rowsets.write, txn_id, chunks)
            except StorageError as exc:  # as a peer's WriteRows answers it
                raise FailedPrecondition(f"backend {backend_id}: {exc}") from None
            return
        await self._peers.stub(address).WriteRows(rows_request(txn_id, chunks), timeout=WRITE_RPC_TIMEOUT_S)

    async def commit(self, txn_id: int, infos: list[types_pb2.TabletCommitInfo], loaded_rows: int, *,
                     attachment_json: str = "", wait_visible_ms: int = 0,
                     timeout_s: float = 30) -> frontend_pb2.CommitTxnResponse:
        return await self._fe.CommitTxn(frontend_pb2.CommitTxnRequest(
            txn_id=txn_id, tablet_commit_infos=infos, loaded_rows=loaded_rows, attachment_json=attachment_json,
            wait_visible_ms=wait_visible_ms), timeout=timeout_s)

    async def abort(self, txn_id: int, reason: str) -> None:
        """Abort ``txn_id`` at the leader; if no leader takes it now, again in the background."""
        if await self._send_abort(txn_id, reason) or self._closed or txn_id in self.pending_aborts:
            return
        log.info("abort of txn %d not taken by a leader yet; sending it again every %g s for up to %g s",
                 txn_id, self._abort_retry_s, ABORT_RETRY_FOR_S)
        task = asyncio.create_task(self._abort_later(txn_id, reason), name=f"abort-txn-{txn_id}")
        self.pending_aborts[txn_id] = task
        task.add_done_callback(lambda _t: self.pending_aborts.pop(txn_id, None))

    async def _send_abort(self, txn_id: int, reason: str) -> bool:
        """One attempt; False when no leader took it (to be sent again)."""
        try:
            await self._fe.AbortTxn(frontend_pb2.AbortTxnRequest(txn_id=txn_id, reason=reason),
                                    timeout=ABORT_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _NOT_TAKEN:
                return False
            log.info("abort of txn %d answered %s: %s", txn_id, exc.code().name, exc.details())
        return True

    async def _abort_later(self, txn_id: int, reason: str) -> None:
        deadline = time.monotonic() + ABORT_RETRY_FOR_S
        while time.monotonic() < deadline:
            await asyncio.sleep(self._abort_retry_s)
            if await self._send_abort(txn_id, reason):
                log.info("abort of txn %d delivered", txn_id)
                return
        log.warning("abort of txn %d not delivered within %g s; it will time out at the FE", txn_id,
                    ABORT_RETRY_FOR_S)

    async def close(self) -> None:
        """The BE stops: pending aborts stop being sent (their txns time out at the FE)."""
        self._closed = True
        tasks = list(self.pending_aborts.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ stream load
    async def stream_load(self, req: types_pb2.StreamLoadRequest, body: Body | None = None,
                          result: types_pb2.StreamLoadResult | None = None) -> types_pb2.StreamLoadResult:
        """Load ``body`` (default: ``req.data``) into one txn; fills and returns ``result`` (the
        caller's, which keeps the txn id and the times so far when this raises). Callers go through
        be/load/stream_load.py execute_stream_load, the one entry of both doors."""
        started = time.monotonic()
        body = body if body is not None else MemoryBody(req.data)  # each read of the field copies the body
        timeout_s = req.timeout_s if req.HasField("timeout_s") else DEFAULT_TIMEOUT_S
        if result is None:
            result = types_pb2.StreamLoadResult()
        result.label, result.coordinator = req.label, f"BE: {self._backend_id()}"
        try:
            begun = await self.begin(req.db, req.table, req.label, timeout_s, "BACKEND_STREAMING")
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.ALREADY_EXISTS:
                m = _EXISTING.search(exc.details() or "")
                result.status = "Label Already Exists"
                result.message = exc.details()
                if m:
                    result.txn_id, result.existing_job_status = int(m.group(1)), m.group(2)
                return self._finish(result, started)
            raise
        finally:
            result.begin_txn_time_ms = ms_since(started)
        txn_id = begun.txn_id
        result.txn_id = txn_id
        begun_at = time.monotonic()
        try:
            spec = spec_from_params(req.params)
            plan, router = self.compile(spec, begun.target)
            planned = time.monotonic()
            result.stream_load_plan_time_ms = ms_since(begun_at)
            pipeline = LoadPipeline(TabletSink(txn_id, router, self.send, quorum=begun.target.quorum), router,
                                    spec.max_error_samples)
            try:
                failure = await self._load_pieces(pipeline, body.pieces(plan, spec, self._piece_bytes))
            finally:
                await pipeline.close()
                result.load_bytes = body.size
                result.read_data_time_ms = int(body.read_ms)
                result.write_data_time_ms = max(0, ms_since(planned) - int(body.read_ms))
            written = time.monotonic()
            c = pipeline.counts
            considered = c.total_rows - c.unselected_rows
            result.number_total_rows = c.total_rows
            result.number_filtered_rows = c.filtered_rows
            result.number_unselected_rows = c.unselected_rows
            result.filtered_rows.extend(types_pb2.FilteredRow(row=e.row, reason=e.reason) for e in c.errors)
            max_ratio = req.params.max_filter_ratio if req.params.HasField("max_filter_ratio") else 0.0
            if considered and c.filtered_rows / considered > max_ratio:
                await self.abort(txn_id, "too many filtered rows")  # clears the pieces already written
                result.status = "Fail"
                result.message = (
                    f"too many filtered rows: {c.filtered_rows} of {considered} rows were filtered, a ratio "
                    f"of {c.filtered_rows / considered:.4f} > max_filter_ratio {max_ratio:g}; nothing was loaded "
                    "(see filtered_rows for the reasons)"
                )
                result.number_loaded_rows = 0
                return self._finish(result, started)
            if isinstance(failure, TooManyVersions):
                await self.abort(txn_id, str(failure))
                result.status = "Fail"
                result.message = (f"{failure}; nothing was loaded: compaction lowers the version count, retry "
                                  "later or load less often in larger batches")
                result.number_loaded_rows = 0
                return self._finish(result, started)
            if failure is not None:
                raise failure
            outcome = pipeline.sink.close()
            try:
                commit = await self.commit(txn_id, outcome.commit_infos, outcome.loaded_rows,
                                           wait_visible_ms=int(timeout_s * 1000), timeout_s=timeout_s + 30)
            finally:
                result.commit_and_publish_time_ms = ms_since(written)
            log.info("stream load %s: txn %d loaded %d rows of %d bytes in %d pieces (at most %d body bytes held): "
                     "begin %d ms, plan %d ms, body read %d ms, parse and encode %d ms, write %d ms (overlapping), "
                     "all pieces written after %d ms, commit and publish %d ms",
                     req.label, txn_id, outcome.loaded_rows, body.size, c.chunks, body.high_water,
                     result.begin_txn_time_ms, result.stream_load_plan_time_ms, result.read_data_time_ms,
                     c.prepare_ms, c.write_ms, (written - begun_at) * 1000, result.commit_and_publish_time_ms)
        except BaseException as exc:  # whatever ends the load (a bug included) frees its label and rows now
            await self.abort(txn_id, failure_reason(exc))
            raise
        result.number_loaded_rows = outcome.loaded_rows
        if commit.status == "VISIBLE":
            result.status, result.message = "Success", "OK"
        else:
            result.status = "Publish Timeout"
            result.message = f"transaction {txn_id} is {commit.status}; its rows become visible when published"
        return self._finish(result, started)

    @staticmethod
    async def _load_pieces(pipeline: LoadPipeline, pieces: AsyncGenerator[Parse, None]) -> TabletsimError | None:
        """Prepare each piece while the one before is written. A failed write stops the writing
        and is returned; the pieces after it are still prepared, so that the counts and
        max_filter_ratio (checked first) cover the whole body, as when it was one piece."""
        failure: TabletsimError | None = None
        async with aclosing(pieces):  # a failure stops the body's reading at once
            async for parse in pieces:
                encoded = await pipeline.prepare(parse)
                del parse  # a streamed piece's bytes: only its encoded rows are kept while they are written
                if failure is None:
                    try:
                        await pipeline.write(encoded)
                    except TabletsimError as exc:
                        failure = exc
                del encoded
        if failure is None:
            try:
                await pipeline.drain()
            except TabletsimError as exc:
                failure = exc
        return failure

    def _pieces(self, plan: LoadPlan, spec: LoadSpec, data: bytes) -> list[Parse]:
        """The pieces of a body in memory (be/load/body.py memory_pieces)."""
        return memory_pieces(plan, spec, data, self._piece_bytes)

    @staticmethod
    def _finish(result: types_pb2.StreamLoadResult, started: float) -> types_pb2.StreamLoadResult:
        for name in ANSWER_TIMES:  # set, so that a gRPC answer shows them, 0 included
            setattr(result, name, getattr(result, name))
        result.load_time_ms = ms_since(started)
        return result


ANSWER_TIMES = ("begin_txn_time_ms", "stream_load_plan_time_ms", "read_data_time_ms", "write_data_time_ms",
          "commit_and_publish_time_ms")
"""The times of a StreamLoadResult, always set (present) in an answer."""


def ms_since(t0: float) -> int:
    return int((time.monotonic() - t0) * 1000)


def failure_reason(exc: BaseException, cancelled: str = "the load was cancelled (the caller went away)") -> str:
    """One line for an abort reason or a log: a gRPC status and its details, ``cancelled`` for a
    cancellation, else the exception's message."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    if isinstance(exc, asyncio.CancelledError):
        return cancelled
    return str(exc)
