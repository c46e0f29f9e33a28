"""A BE coordinating one load: begin at the FE, parse and map, route, replicate, commit.

Stream Load uses it whole; Routine Load (a Kafka batch) reuses the same pieces with an
attachment on the commit. All CPU-heavy steps (parsing, routing, encoding) run off the event loop.

An abort that no leader took (no FE answered, or none knew a leader: a failover under way) is
sent again in the background every ``abort_retry_s`` for up to ABORT_RETRY_FOR_S, until a leader
answers; otherwise the txn would stay PREPARE, and its label taken ("Label Already Exists"), until
the txn timeout (600 s for a stream load). The caller's answer does not wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from be.agent.peers import PeerClients
from be.load.router import Router, columns_of
from be.load.writer import Chunk, TooManyVersions, encode_tablet_tables, replicate, rows_request
from be.storage.rowsets import RowsetStore, StorageError
from common import columnar
from common.errors import FailedPrecondition, InvalidArgument, TabletsimError
from common.gen.tabletsim.v1 import frontend_pb2, frontend_pb2_grpc, types_pb2
from common.loadformat import BatchResult, FilteredRow, LoadPlan, LoadSpec, LoadSpecError, compile_load

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


@dataclass
class Prepared:
    """A batch parsed, mapped and routed, ready to replicate."""

    batch: BatchResult
    encoded: dict[int, list[Chunk]]
    filtered: int
    errors: list[FilteredRow]


class LoadCoordinator:
    def __init__(self, backend_id: Callable[[], int], fe: frontend_pb2_grpc.FrontendServiceStub,
                 rowsets: RowsetStore, peers: PeerClients, *, abort_retry_s: float = 1.0) -> None:
        self._backend_id = backend_id
        self._fe = fe
        self._rowsets = rowsets
        self._peers = peers
        self._abort_retry_s = abort_retry_s
        self.pending_aborts: dict[int, asyncio.Task] = {}  # txn id -> its abort, retried in the background
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

    @staticmethod
    def prepare(batch: BatchResult, router: Router, max_samples: int = 20) -> Prepared:
        """Route the batch's table and encode each tablet's rows as columnar segments (no row
        tuples: a batch parsed into rows only is made a table first)."""
        table = batch.table if getattr(batch, "table", None) is not None else \
            columnar.table_from_rows(batch.rows, router.schema)
        errors = list(batch.errors)
        by_tablet, rejected = router.route_table(table, max(0, max_samples - len(errors)))
        del table
        errors.extend(FilteredRow(row=row, reason=reason) for row, reason in rejected.samples)
        encoded = encode_tablet_tables(router, by_tablet)
        return Prepared(batch, encoded, batch.filtered_rows + rejected.count, errors)

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
    async def stream_load(self, req: types_pb2.StreamLoadRequest) -> types_pb2.StreamLoadResult:
        started = time.monotonic()
        timeout_s = req.timeout_s if req.HasField("timeout_s") else 600
        result = types_pb2.StreamLoadResult(label=req.label, coordinator=f"BE: {self._backend_id()}")
        try:
            begun = await self.begin(req.db, req.table, req.label, timeout_s, "BACKEND_STREAMING")
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.ALREADY_EXISTS:
                m = _EXISTING.search(exc.details() or "")
                result.status = "Label Already Exists"
                result.message = exc.details()
                if m:
                    result.txn_id, result.existing_job_status = int(m.group(1)), m.group(2)
                return result
            raise
        txn_id = begun.txn_id
        result.txn_id = txn_id
        begun_at = time.monotonic()
        try:
            spec = spec_from_params(req.params)
            plan, router = self.compile(spec, begun.target)
            batch = await asyncio.to_thread(plan.parse, req.data)
            prepared = await asyncio.to_thread(self.prepare, batch, router, spec.max_error_samples)
            parsed = time.monotonic()
            considered = batch.total_rows - batch.unselected_rows
            result.number_total_rows = batch.total_rows
            result.number_filtered_rows = prepared.filtered
            result.number_unselected_rows = batch.unselected_rows
            result.load_bytes = len(req.data)
            result.filtered_rows.extend(
                types_pb2.FilteredRow(row=e.row, reason=e.reason) for e in prepared.errors)
            max_ratio = req.params.max_filter_ratio if req.params.HasField("max_filter_ratio") else 0.0
            if considered and prepared.filtered / considered > max_ratio:
                await self.abort(txn_id, "too many filtered rows")
                result.status = "Fail"
                result.message = (
                    f"too many filtered rows: {prepared.filtered} of {considered} rows were filtered, a ratio "
                    f"of {prepared.filtered / considered:.4f} > max_filter_ratio {max_ratio:g}; nothing was loaded "
                    "(see filtered_rows for the reasons)"
                )
                result.number_loaded_rows = 0
                return self._finish(result, started)
            try:
                outcome = await replicate(txn_id, router, prepared.encoded, self.send, quorum=begun.target.quorum)
            except TooManyVersions as exc:
                await self.abort(txn_id, str(exc))
                result.status = "Fail"
                result.message = (f"{exc}; nothing was loaded: compaction lowers the version count, retry "
                                  "later or load less often in larger batches")
                result.number_loaded_rows = 0
                return self._finish(result, started)
            written = time.monotonic()
            commit = await self.commit(txn_id, outcome.commit_infos, outcome.loaded_rows,
                                       wait_visible_ms=int(timeout_s * 1000), timeout_s=timeout_s + 30)
            log.info("stream load %s: txn %d loaded %d rows: begin %d ms, parse and encode %d ms, write %d ms, "
                     "commit and publish %d ms", req.label, txn_id, outcome.loaded_rows,
                     (begun_at - started) * 1000, (parsed - begun_at) * 1000, (written - parsed) * 1000,
                     (time.monotonic() - written) * 1000)
        except (TabletsimError, grpc.aio.AioRpcError, asyncio.CancelledError) as exc:
            await self.abort(txn_id, _reason(exc))
            raise
        result.number_loaded_rows = outcome.loaded_rows
        if commit.status == "VISIBLE":
            result.status, result.message = "Success", "OK"
        else:
            result.status = "Publish Timeout"
            result.message = f"transaction {txn_id} is {commit.status}; its rows become visible when published"
        return self._finish(result, started)

    @staticmethod
    def _finish(result: types_pb2.StreamLoadResult, started: float) -> types_pb2.StreamLoadResult:
        result.load_time_ms = int((time.monotonic() - started) * 1000)
        return result


def _reason(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    if isinstance(exc, asyncio.CancelledError):
        return "the load was cancelled (the caller went away)"
    return str(exc)

