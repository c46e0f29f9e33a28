"""AdminService methods of loads and data: StreamLoad, ShowTransactions, Query, CheckConsistency.

StreamLoad is one of Stream Load's two doors on the FE; the other is HTTP (fe/http/stream_load.py,
StarRocks' ``PUT /api/{db}/{table}/_stream_load``), which answers 307 to the BE that
:meth:`LoadAdmin.stream_load_coordinators` picks, the same rule gRPC forwards by.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import grpc

from common.errors import InvalidArgument, NotFound, Unavailable
from common.gen.tabletsim.v1 import admin_pb2, backend_pb2, types_pb2
from common.streamload import check_request, new_label
from common.timefmt import fmt_ms
from fe.catalog.catalog import Catalog
from fe.catalog.model import GroupCommitMode, Partition, Replica, ReplicaState, Table
from fe.service.query import SCAN_TIMEOUT_S, run_query
from fe.system.backends import Backend, BackendRegistry
from fe.system.be_client import BackendClients
from fe.system.dynconfig import DynamicConfig
from fe.txn.manager import TransactionManager, label_exists_message
from fe.txn.state import TxnStatus

log = logging.getLogger(__name__)



def _require(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(f"field '{field}' is required")
    return value


def _group_commit_mode(requested: str, table: Table) -> GroupCommitMode:
    """The load's group_commit (Doris' header), or the table's property when it gives none."""
    if not requested:
        return table.group_commit
    try:
        return GroupCommitMode.parse(requested)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


def readable(r: Replica, partition: Partition, backends: BackendRegistry) -> bool:
    """A replica may serve a read at the visible version: alive, NORMAL, not bad, caught up."""
    be = backends.get(r.backend_id)
    return (be is not None and be.alive and not r.bad and r.state is ReplicaState.NORMAL
            and r.version >= partition.visible_version)


class LoadAdmin:
    _backends: BackendRegistry
    _catalog: Catalog
    _clients: BackendClients
    _dynconfig: DynamicConfig
    _txns: TransactionManager
    _inconsistent: set[int]
    _rr = itertools.count()

    # ------------------------------------------------------------------ stream load
    def stream_load_coordinators(self, table: Table, group_commit: str, *,
                                 http: bool = False) -> tuple[GroupCommitMode, list[Backend]]:
        """Which BEs may coordinate a Stream Load into ``table``, in the order to ask them (up to 3):
        the one rule of both doors, gRPC StreamLoad (which forwards to the first that answers) and
        HTTP (fe/http/stream_load.py redirects to the first). Alive, not decommissioned BEs
        (``http``: serving HTTP), taken round robin (StarRocks' seqChooseBackendIds); a group
        commit load goes to its table's BE, so that the table's loads meet in groups there.
        ``group_commit`` is the load's request (Doris' header), empty: the table's property."""
        mode = _group_commit_mode(group_commit, table)
        alive = [b for b in self._backends.alive() if not b.decommissioned and (b.http_port or not http)]
        if not alive:
            raise Unavailable("no alive backend can coordinate the load; see ShowBackends" +
                              (" (only backends serving HTTP can take an HTTP Stream Load)" if http else ""))
        if mode is GroupCommitMode.OFF:
            start = next(self._rr) % len(alive)
        else:
            alive.sort(key=lambda b: b.backend_id)
            start = table.table_id % len(alive)
        return mode, (alive[start:] + alive[:start])[:3]

    async def StreamLoad(self, request, context):
        db, table = self._catalog.table(_require(request.db, "db"), _require(request.table, "table"))
        req = request  # forwarded as received, completed in place: a copy costs ~10 ms per 10 MB of body
        req.label = request.label or new_label()
        if not request.HasField("timeout_s"):
            req.timeout_s = self._dynconfig.stream_load_default_timeout_second
        check_request(req)  # the BE checks again with the same function (its HTTP door has no FE before it)
        used = self._txns.by_label(db.db_id, req.label)
        if used is not None and used.status is not TxnStatus.ABORTED:
            # answered here, as the BE's BeginTxn would: and a forward that fails later must not
            # take this older txn for the one it began (see below)
            return types_pb2.StreamLoadResult(
                txn_id=used.txn_id, label=req.label, status="Label Already Exists",
                message=label_exists_message(req.label, used.txn_id, used.status.value),
                existing_job_status=used.status.value)
        mode, backends = self.stream_load_coordinators(table, request.group_commit)
        if mode is GroupCommitMode.OFF:
            req.group_commit = ""
        else:
            req.group_commit, req.group_commit_interval_ms = mode.value, table.group_commit_interval_ms
        last_error = ""
        for be_id in (b.backend_id for b in backends):
            try:
                return await self._clients.stub(be_id).ExecuteStreamLoad(req, timeout=req.timeout_s + 60)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                      grpc.StatusCode.CANCELLED):
                    raise
                txn = self._txns.by_label(db.db_id, req.label)
                if txn is None:  # the coordinator never began: another BE may
                    last_error = f"backend {be_id}: {exc.code().name} {exc.details()}"
                    log.warning("stream load %s: coordinator %s", req.label, last_error)
                    continue
                if txn.status is TxnStatus.PREPARE and txn.coordinator == f"BE: {be_id}":
                    self._txns.abort(txn.txn_id, f"coordinator backend {be_id} failed: {exc.details()}")
                    loaded = ("nothing was loaded" if mode is not GroupCommitMode.ASYNC else "the rows may still "
                              "be loaded from the coordinator's group commit WAL (the label keeps it exactly-once)")
                    raise Unavailable(
                        f"coordinator backend {be_id} failed during the load ({exc.code().name}: {exc.details()}); "
                        f"transaction {txn.txn_id} was aborted and {loaded}; retry with label '{req.label}'"
                    ) from None
                if txn.status in (TxnStatus.COMMITTED, TxnStatus.VISIBLE):
                    return types_pb2.StreamLoadResult(
                        txn_id=txn.txn_id, label=req.label, status="Success",
                        message=f"the coordinator was lost after the commit; transaction is {txn.status.value}",
                        number_loaded_rows=txn.loaded_rows, coordinator=txn.coordinator)
                raise
        raise Unavailable(f"no backend could coordinate the load; last error: {last_error}")

    # ------------------------------------------------------------------ transactions
    async def ShowTransactions(self, request, context):
        db = self._catalog.db(_require(request.db, "db"))
        status = None
        if request.status:
            try:
                status = TxnStatus(request.status.upper())
            except ValueError:
                raise InvalidArgument(
                    f"invalid status '{request.status}'; allowed: {', '.join(s.value for s in TxnStatus)}") from None
        txns = self._txns.of_db(db.db_id)  # its running txns and the finished ones still kept
        if request.txn_id:
            txns = [t for t in txns if t.txn_id == request.txn_id]
            if not txns:
                raise NotFound(f"unknown transaction {request.txn_id} in database '{db.name}'")
        if request.label:
            txns = [t for t in txns if t.label == request.label]
            if not txns:
                raise NotFound(f"no transaction with label '{request.label}' in database '{db.name}'")
        if status is not None:
            txns = [t for t in txns if t.status is status]
        limit = request.limit or 100
        tables = {t.table_id: t.name for t in db.tables.values()}
        rows = []
        for t in sorted(txns, key=lambda t: -t.txn_id)[:limit]:
            rows.append(admin_pb2.TransactionRow(
                transaction_id=t.txn_id, label=t.label, coordinator=t.coordinator,
                transaction_status=t.status.value, load_job_source_type=t.source_type.value,
                prepare_time=fmt_ms(t.prepare_time_ms), commit_time=fmt_ms(t.commit_time_ms),
                publish_time=fmt_ms(t.publish_time_ms), finish_time=fmt_ms(t.finish_time_ms),
                reason=t.reason, error_replicas_count=len(t.error_replicas),
                table=tables.get(t.table_id, f"<dropped table {t.table_id}>"),
                partition_versions=", ".join(f"{p}: {v}" for p, v in sorted(t.partition_versions.items())),
                loaded_rows=t.loaded_rows,
            ))
        return admin_pb2.ShowTransactionsResponse(transactions=rows)

    # ------------------------------------------------------------------ reads
    def _read_plan(self, table: Table, partitions: list[Partition],
                   excluded: set[int]) -> dict[int, list[tuple[int, int]]]:
        """backend -> [(tablet, version)], one readable replica per tablet, spread over BEs."""
        plan: dict[int, list[tuple[int, int]]] = {}
        for p in partitions:
            for t in p.tablets:
                candidates = [r for r in t.replicas
                              if r.backend_id not in excluded and readable(r, p, self._backends)]
                if not candidates:
                    raise Unavailable(
                        f"tablet {t.tablet_id} of {table.name}.{p.name} has no alive replica at the visible "
                        f"version {p.visible_version}; it cannot be read until a replica is repaired"
                    )
                r = min(candidates, key=lambda r: (len(plan.get(r.backend_id, ())), r.backend_id))
                plan.setdefault(r.backend_id, []).append((t.tablet_id, p.visible_version))
        return plan

    async def Query(self, request, context):
        _, table = self._catalog.table(_require(request.db, "db"), _require(request.table, "table"))
        partitions = self._catalog.partitions(table, list(request.partitions))

        async def scan(be_id: int, req: backend_pb2.ScanTabletsRequest) -> backend_pb2.ScanTabletsResponse:
            return await self._clients.stub(be_id).ScanTablets(req, timeout=SCAN_TIMEOUT_S)

        return await run_query(request, table, lambda excluded: self._read_plan(table, partitions, excluded), scan)

    async def CheckConsistency(self, request, context):
        _, table = self._catalog.table(_require(request.db, "db"), _require(request.table, "table"))

        async def checksum(tablet_id: int, r: Replica, version: int) -> admin_pb2.ReplicaChecksum:
            row = admin_pb2.ReplicaChecksum(tablet_id=tablet_id, backend_id=r.backend_id, version=version)
            try:
                resp = await self._clients.stub(r.backend_id).TabletChecksum(
                    backend_pb2.TabletChecksumRequest(tablet_id=tablet_id, version=version), timeout=SCAN_TIMEOUT_S)
                row.checksum, row.row_count = resp.checksum, resp.row_count
            except grpc.aio.AioRpcError as exc:
                row.error = f"{exc.code().name}: {exc.details()}"
            return row

        jobs = []
        for p in table.partitions:
            for t in p.tablets:
                for r in t.replicas:
                    if readable(r, p, self._backends):
                        jobs.append(checksum(t.tablet_id, r, p.visible_version))
        rows = await asyncio.gather(*jobs)
        by_tablet: dict[int, set[str]] = {}
        for row in rows:
            if not row.error:
                by_tablet.setdefault(row.tablet_id, set()).add(row.checksum)
        bad = {t for t, sums in by_tablet.items() if len(sums) > 1}
        for p in table.partitions:
            for t in p.tablets:
                self._inconsistent.discard(t.tablet_id)
        self._inconsistent.update(bad)
        return admin_pb2.CheckConsistencyResponse(
            checked_tablets=len(by_tablet), inconsistent_tablets=len(bad), replicas=rows)
