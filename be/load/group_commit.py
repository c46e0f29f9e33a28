"""Group commit (Doris 2.1) on the coordinating BE: small Stream Loads into one table share a txn.

The FE sends every group-commit load of a table to one BE (stable per table), with the mode and
the table's ``group_commit_interval_ms``. Here, per (db, table, mode), the loads that arrive
while a window is open join one group; the window closes ``group_commit_interval_ms`` after its
first member came, or at once when the group's bodies reach ``max_group_bytes``. The group then
runs as ONE txn:

1. BeginTxn under the group's own label (``group_commit_<hex>``): the load target.
2. Each member's body is parsed and mapped with its own params (members with different params
   are compiled apart; their rows are combined) and routed; each gets its own counts and
   filtered-row samples. A member over its max_filter_ratio, or with params or a body that
   cannot be loaded, fails alone, and its rows are not written.
3. AddTxnMembers registers the others' labels with the group txn at the FE, in arrival order:
   each label is then "used" by the group txn, as a load's own label is. A member whose label
   is used already (by another load, or by an earlier member of the group) gets its own
   "Label Already Exists" result naming that txn, and does not join.
4. One routed, replicated write of every member's rows (be/load/writer.py), one commit.

Any failure of the shared write or commit aborts the txn and fails every member left: nothing
is half-loaded, and the members' labels are free again.

sync_mode answers each member once the group txn is VISIBLE (or "Publish Timeout" as a plain
Stream Load does), txn id = the group's, and the group's times (BeginTxnTimeMs: the group's begin,
WriteDataTimeMs: parsing to the replicas' writes, CommitAndPublishTimeMs) are each member's. async_mode answers each member once the group's rows
are in this BE's WAL (be/load/group_commit_wal.py, a synced RocksDB write) - after 3, so the
labels are registered - and then writes and commits in the background.

Exactly-once of async_mode (the WAL rule). A WAL entry is keyed by the group's label and holds
the member labels and rows that were answered. It is deleted only once a txn of that label is
VISIBLE. Until then it is loaded again - after a failure in this process, and at every start of
the BE - by a BeginTxn with ``wal_replay``, which asks the FE about the label:

* held by a VISIBLE txn: the group is loaded; the entry goes. COMMITTED: it will be published;
  the entry stays until a later try sees VISIBLE.
* held by a PREPARE txn: its coordinator (this BE, before a kill or a failed write) gave it up.
  The FE aborts it - which frees the members' labels - and begins a new txn under the same
  label in the same call, so nobody can commit the old txn afterwards.
* free (never begun, aborted, e.g. by the PREPARE timeout or on the BE's restart): a new txn
  begins under it. If a commit may have been sent (the ``gcwalc/`` marker is written before
  every CommitTxn) and the FE knows no txn of the label at all, its txns were cleaned and the
  FE cannot tell whether that commit landed: it refuses, and the entry stays for an operator
  (logged) rather than risk loading the rows twice.

The new txn registers the member labels again. A member label that another load holds now
(a client reused it while the group's txn was aborted) belongs to that load: the member is
dropped from the entry for good (rewritten, synced) and not loaded. So each member's rows are
loaded by exactly one txn holding its label: never twice, and never lost while the label is
its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import pyarrow as pa

from be.load.coordinator import ANSWER_TIMES, LoadCoordinator, failure_reason, ms_since, spec_from_params
from be.load.group_commit_wal import GroupCommitWal, WalEntry, WalMember
from be.load.router import Router, columns_of
from be.load.writer import Chunk, TooManyVersions, replicate
from common import columnar
from common.errors import InvalidArgument, TabletsimError, Unavailable
from common.gen.tabletsim.v1 import frontend_pb2, frontend_pb2_grpc, types_pb2
from common.loadformat import BatchResult, FilteredRow, LoadSpecError
from common.rowcodec import encode_rows

log = logging.getLogger(__name__)

SYNC_MODE = "sync_mode"
ASYNC_MODE = "async_mode"
MODES = (SYNC_MODE, ASYNC_MODE)
DEFAULT_INTERVAL_MS = 10
MAX_GROUP_BYTES = 64 * 1024 * 1024  # Doris' group_commit_data_bytes
DEFAULT_TIMEOUT_S = 600
FE_RPC_TIMEOUT_S = 30.0
_CANNOT_TELL = "cannot be told"  # the FE's refusal of a replay whose commit may have landed


@dataclass
class _Member:
    req: types_pb2.StreamLoadRequest
    answer: asyncio.Future
    result: types_pb2.StreamLoadResult
    started: float
    rows: list[tuple] | None = None  # its parsed and mapped rows, from the row-at-a-time plan...
    table: pa.Table | None = None  # ...or the vectorized one (all of them go to the write)
    loaded: int = 0
    ok: bool = False  # parsed and within its max_filter_ratio: its rows go into the group
    error: TabletsimError | None = None  # it cannot be loaded at all (params, body)

    @property
    def label(self) -> str:
        return self.req.label

    def reply(self, status: str, message: str) -> None:
        if self.answer.done():  # the caller went away
            return
        r = self.result
        r.status, r.message = status, message
        r.load_time_ms = ms_since(self.started)
        for name in ANSWER_TIMES:  # set, so that a gRPC answer shows them, 0 included
            setattr(r, name, getattr(r, name))
        self.answer.set_result(r)

    def fail(self, exc: BaseException) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


@dataclass
class _Group:
    key: tuple[str, str, str]  # db, table, mode
    label: str
    members: list[_Member] = field(default_factory=list)
    bytes: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def mode(self) -> str:
        return self.key[2]


class GroupCommitter:
    """The group commit collectors of one BE and the replay of its WAL."""

    def __init__(self, coordinator: LoadCoordinator, fe: frontend_pb2_grpc.FrontendServiceStub,
                 wal: GroupCommitWal, backend_id: Callable[[], int], *, max_group_bytes: int = MAX_GROUP_BYTES,
                 retry_min_s: float = 0.5, retry_max_s: float = 10.0) -> None:
        self._coordinator = coordinator
        self._fe = fe
        self._wal = wal
        self._backend_id = backend_id
        self._max_group_bytes = max_group_bytes
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._open: dict[tuple[str, str, str], _Group] = {}
        self._tasks: set[asyncio.Task] = set()
        self._recovering: set[str] = set()  # labels of WAL entries being loaded again
        self.quarantined: set[str] = set()  # WAL entries the FE cannot judge: kept for an operator
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Load again the WAL entries a previous process left (call once the BE is registered)."""
        entries = await asyncio.to_thread(self._wal.entries)
        if entries:
            log.info("group commit WAL: %d groups (%d rows) not known to be VISIBLE; loading them again",
                     len(entries), sum(e.rows for e in entries))
        for entry in entries:
            self._recover_later(entry, at_once=True)

    async def close(self) -> None:
        """The BE stops: groups under way fail (async ones stay in the WAL for the next start)."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ the collector
    async def load(self, req: types_pb2.StreamLoadRequest) -> types_pb2.StreamLoadResult:
        """One member's load: it joins the table's open group and is answered with its own result."""
        mode = req.group_commit.lower()
        if mode not in MODES:
            raise InvalidArgument(f"invalid group_commit '{req.group_commit}': a group commit load is "
                                  f"{' or '.join(MODES)}")
        if not req.label:
            raise InvalidArgument("a group commit load needs its label (the FE gives one)")
        if self._closed:
            raise Unavailable(f"backend {self._backend_id()} is stopping; retry the load")
        key = (req.db, req.table, mode)
        group = self._open.get(key)
        if group is None:
            group = self._open[key] = _Group(key, f"group_commit_{uuid.uuid4().hex}")
            interval_s = (req.group_commit_interval_ms or DEFAULT_INTERVAL_MS) / 1000
            self._spawn(self._run(group, interval_s), name=f"group-commit-{group.label}")
        member = _Member(req, asyncio.get_running_loop().create_future(),
                         types_pb2.StreamLoadResult(label=req.label, coordinator=f"BE: {self._backend_id()}",
                                                    group_commit=mode, load_bytes=len(req.data)),
                         time.monotonic())
        group.members.append(member)
        group.bytes += len(req.data)
        if group.bytes >= self._max_group_bytes:
            self._close(group)
        return await member.answer

    def _close(self, group: _Group) -> None:
        """No member joins ``group`` any more; the next load of its table opens another."""
        if self._open.get(group.key) is group:
            del self._open[group.key]
        group.closed.set()

    async def _run(self, group: _Group, interval_s: float) -> None:
        try:
            try:
                await asyncio.wait_for(group.closed.wait(), interval_s)
            except TimeoutError:
                pass
            self._close(group)
            await self._commit(group)
        except asyncio.CancelledError:
            self._close(group)
            stopping = Unavailable(f"backend {self._backend_id()} stopped before group {group.label} was "
                                   "loaded; retry the load with the same label")
            for m in group.members:
                m.fail(stopping)
            raise
        except (TabletsimError, grpc.aio.AioRpcError) as exc:  # e.g. the begin: no txn, nothing loaded
            log.warning("group commit %s of %s.%s failed: %s", group.label, group.key[0], group.key[1],
                        _reason(exc))
            for m in group.members:
                m.fail(exc)
        except Exception as exc:  # noqa: BLE001 - every member gets the error, and the log the traceback
            log.exception("group commit %s of %s.%s failed", group.label, group.key[0], group.key[1])
            for m in group.members:
                m.fail(exc)

    # ------------------------------------------------------------------ one group, one txn
    async def _commit(self, group: _Group) -> None:
        members = group.members
        db, table = group.key[0], group.key[1]
        timeout_s = max(m.req.timeout_s if m.req.HasField("timeout_s") else DEFAULT_TIMEOUT_S for m in members)
        began = time.monotonic()
        begun = await self._fe.BeginTxn(frontend_pb2.BeginTxnRequest(
            db=db, table=table, label=group.label, timeout_s=timeout_s,
            coordinator_backend_id=self._backend_id(), source_type="BACKEND_STREAMING"), timeout=FE_RPC_TIMEOUT_S)
        txn_id = begun.txn_id
        begin_ms, writing = ms_since(began), time.monotonic()
        for m in members:  # the group's times are each member's (StarRocks' answer fields)
            m.result.txn_id, m.result.begin_txn_time_ms = txn_id, begin_ms
        entry: WalEntry | None = None
        try:
            router = await asyncio.to_thread(self._parse, members, begun.target)
            for m in members:
                m.result.write_data_time_ms = ms_since(writing)
            for m in members:  # the ones that fail alone
                if m.error is not None:
                    m.fail(m.error)
                elif not m.ok:
                    m.reply(m.result.status, m.result.message)
            joining = [m for m in members if m.ok]
            if joining:
                added = await self._fe.AddTxnMembers(frontend_pb2.AddTxnMembersRequest(
                    txn_id=txn_id, member_labels=[m.label for m in joining]), timeout=FE_RPC_TIMEOUT_S)
                joining = _without_conflicts(joining, txn_id, list(added.member_conflicts))
            if not joining:
                await self._coordinator.abort(txn_id, "group commit: no member of the group is left to load")
                return
            if group.mode == ASYNC_MODE:
                entry = WalEntry(group.label, db, table, timeout_s,
                                 await asyncio.to_thread(_wal_members, joining))
                await asyncio.to_thread(self._wal.put, entry)
                for m in joining:
                    m.result.number_loaded_rows, m.result.write_data_time_ms = m.loaded, ms_since(writing)
                    m.reply("Success", f"OK: group commit async_mode, the rows are in the WAL of backend "
                                       f"{self._backend_id()} and become visible once transaction {txn_id} "
                                       "(or the one replaying it) is VISIBLE")
            encoded = await asyncio.to_thread(_encode, router, joining)
            outcome = await replicate(txn_id, router, encoded, self._coordinator.send, quorum=begun.target.quorum)
            if entry is not None:
                await asyncio.to_thread(self._wal.mark_commit_sent, entry.label)
                entry.commit_sent = True
            committing = time.monotonic()
            if entry is None:
                for m in joining:
                    m.result.write_data_time_ms = ms_since(writing)
            commit = await self._coordinator.commit(txn_id, outcome.commit_infos, outcome.loaded_rows,
                                                    wait_visible_ms=timeout_s * 1000, timeout_s=timeout_s + 30)
            if entry is None:
                for m in joining:
                    m.result.commit_and_publish_time_ms = ms_since(committing)
        except TooManyVersions as exc:
            await self._coordinator.abort(txn_id, str(exc))
            message = (f"{exc}; nothing was loaded: compaction lowers the version count, retry later or load "
                       "less often in larger batches")
            for m in members:
                m.result.number_loaded_rows = 0
                m.reply("Fail", message)
            if entry is not None:
                self._recover_later(entry)
            return
        except BaseException as exc:  # every member left fails with it; nothing is half-loaded
            await self._coordinator.abort(txn_id, _reason(exc))
            if not isinstance(exc, asyncio.CancelledError):  # (cancelled: _run answers them)
                for m in members:
                    m.fail(exc)
            if entry is not None and not isinstance(exc, asyncio.CancelledError):
                log.warning("group commit %s (txn %d): %s; its WAL entry is loaded again", group.label, txn_id,
                            _reason(exc))
                self._recover_later(entry)
            if not isinstance(exc, (TabletsimError, grpc.aio.AioRpcError)):
                raise
            return
        if entry is not None:
            if commit.status == "VISIBLE":
                await asyncio.to_thread(self._wal.delete, entry.label)
            else:  # COMMITTED: the FE publishes it; the entry goes once a try sees it VISIBLE
                self._recover_later(entry)
            return
        for m in joining:
            m.result.number_loaded_rows = m.loaded
            if commit.status == "VISIBLE":
                m.reply("Success", "OK")
            else:
                m.reply("Publish Timeout",
                        f"transaction {txn_id} is {commit.status}; its rows become visible when published")

    def _parse(self, members: list[_Member], target: types_pb2.LoadTarget) -> Router:
        """Parse and map every member with its own params, with its own counts (a worker thread:
        no future is touched here); returns the group's router."""
        compiled: dict[bytes, tuple | TabletsimError] = {}
        router: Router | None = None
        for m in members:
            key = m.req.params.SerializeToString(deterministic=True)
            if key not in compiled:
                spec = spec_from_params(m.req.params)
                try:
                    plan, plan_router = self._coordinator.compile(spec, target)
                    compiled[key] = (spec, plan)
                    router = router or plan_router
                except TabletsimError as exc:
                    compiled[key] = exc
            found = compiled[key]
            if isinstance(found, TabletsimError):
                m.error = found
                continue
            spec, plan = found
            try:
                batch = plan.parse(m.req.data)  # a small body is mapped row at a time (plan.py)
            except LoadSpecError as exc:
                m.error = InvalidArgument(f"load of {target.db}.{target.table}, label {m.label}: {exc}")
                continue
            except TabletsimError as exc:
                m.error = exc
                continue
            errors = list(batch.errors)
            rejected = 0
            if target.partition_column:  # rows of no partition are this member's filtered rows
                _, out = router.route_table(_as_table(batch, router.schema),
                                            max(0, spec.max_error_samples - len(errors)))
                rejected = out.count
                errors.extend(FilteredRow(row=row, reason=reason) for row, reason in out.samples)
            filtered = batch.filtered_rows + rejected
            considered = batch.total_rows - batch.unselected_rows
            r = m.result
            r.number_total_rows, r.number_filtered_rows = batch.total_rows, filtered
            r.number_unselected_rows = batch.unselected_rows
            r.filtered_rows.extend(types_pb2.FilteredRow(row=e.row, reason=e.reason) for e in errors)
            max_ratio = m.req.params.max_filter_ratio if m.req.params.HasField("max_filter_ratio") else 0.0
            if considered and filtered / considered > max_ratio:
                r.number_loaded_rows = 0
                r.status, r.message = "Fail", (
                    f"too many filtered rows: {filtered} of {considered} rows were filtered, a ratio of "
                    f"{filtered / considered:.4f} > max_filter_ratio {max_ratio:g}; nothing of this load was "
                    "loaded (see filtered_rows for the reasons); the other loads of its group commit go on")
                continue
            if batch.table is not None:
                m.table = batch.table
            else:
                m.rows = batch.rows
            m.loaded, m.ok = considered - filtered, True
        return router or Router(target, columns_of(target))

    # ------------------------------------------------------------------ the WAL, loaded again
    def _recover_later(self, entry: WalEntry, *, at_once: bool = False) -> None:
        if entry.label in self._recovering or entry.label in self.quarantined or self._closed:
            return
        self._recovering.add(entry.label)
        self._spawn(self._recover(entry, at_once), name=f"group-commit-replay-{entry.label}")

    async def _recover(self, entry: WalEntry, at_once: bool) -> None:
        """Load ``entry`` again until a txn of its label is VISIBLE (see the module's WAL rule)."""
        delay = self._retry_min_s
        try:
            if not at_once:
                await asyncio.sleep(delay)
            while True:
                try:
                    current = await self.replay(entry)
                    if current is None:
                        return
                    entry = current
                except (grpc.aio.AioRpcError, TabletsimError) as exc:
                    if _CANNOT_TELL in _reason(exc):  # the FE's refusal: never load it blindly
                        self.quarantined.add(entry.label)
                        log.error("group commit WAL entry %s (%d rows of %s.%s) is kept and not loaded: %s",
                                  entry.label, entry.rows, entry.db, entry.table, _reason(exc))
                        return
                    log.warning("group commit WAL entry %s: %s; trying again in %g s", entry.label, _reason(exc),
                                delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_s)
        finally:
            self._recovering.discard(entry.label)

    async def replay(self, entry: WalEntry) -> WalEntry | None:
        """One try at loading a WAL entry under its group's label: None once it is VISIBLE (the
        entry is deleted), else the entry as it stands (try again later)."""
        begun = await self._fe.BeginTxn(frontend_pb2.BeginTxnRequest(
            db=entry.db, table=entry.table, label=entry.label, timeout_s=entry.timeout_s,
            coordinator_backend_id=self._backend_id(), source_type="BACKEND_STREAMING",
            member_labels=[m.label for m in entry.members], wal_replay=True,
            commit_may_have_been_sent=entry.commit_sent), timeout=FE_RPC_TIMEOUT_S)
        if begun.existing_status == "VISIBLE":
            log.info("group commit WAL entry %s: transaction %d is VISIBLE; entry deleted", entry.label,
                     begun.existing_txn_id)
            await asyncio.to_thread(self._wal.delete, entry.label)
            return None
        if begun.existing_status:
            log.info("group commit WAL entry %s: transaction %d is %s; waiting for it to be VISIBLE", entry.label,
                     begun.existing_txn_id, begun.existing_status)
            return entry
        if begun.member_conflicts:
            taken = {c.label for c in begun.member_conflicts}
            log.warning("group commit WAL entry %s: the labels of members %s are held by other loads (%s); those "
                        "loads are theirs, the members are dropped from the entry", entry.label, sorted(taken),
                        "; ".join(c.message for c in begun.member_conflicts))
            entry = entry.without(taken)
            await asyncio.to_thread(self._wal.put, entry)
        if not begun.txn_id:  # no member left
            await asyncio.to_thread(self._wal.delete, entry.label)
            return None
        txn_id = begun.txn_id
        log.info("group commit WAL entry %s: loading %d rows of %d members under transaction %d", entry.label,
                 entry.rows, len(entry.members), txn_id)
        try:
            router = Router(begun.target, columns_of(begun.target))
            encoded = await asyncio.to_thread(_encode_entry, router, entry)
            outcome = await replicate(txn_id, router, encoded, self._coordinator.send, quorum=begun.target.quorum)
            if not entry.commit_sent:
                await asyncio.to_thread(self._wal.mark_commit_sent, entry.label)
                entry.commit_sent = True
            commit = await self._coordinator.commit(txn_id, outcome.commit_infos, outcome.loaded_rows,
                                                    wait_visible_ms=entry.timeout_s * 1000,
                                                    timeout_s=entry.timeout_s + 30)
        except (TabletsimError, grpc.aio.AioRpcError, asyncio.CancelledError) as exc:
            await self._coordinator.abort(txn_id, _reason(exc))
            raise
        if commit.status == "VISIBLE":
            await asyncio.to_thread(self._wal.delete, entry.label)
            log.info("group commit WAL entry %s: transaction %d is VISIBLE; entry deleted", entry.label, txn_id)
            return None
        return entry


def _without_conflicts(joining: list[_Member], txn_id: int,
                       conflicts: list[frontend_pb2.MemberLabelConflict]) -> list[_Member]:
    """Answer the members whose label the FE did not register ("Label Already Exists", naming the
    txn that holds it) and return the others. A label held by another txn conflicts for every
    member carrying it; one repeated within the group, for every member after the first."""
    elsewhere = {c.label: c for c in conflicts if c.txn_id != txn_id}
    seen: set[str] = set()
    kept = []
    for m in joining:
        held = elsewhere.get(m.label)
        if held is None and m.label not in seen:
            seen.add(m.label)
            kept.append(m)
            continue
        holder, status = (held.txn_id, held.status) if held else (txn_id, "PREPARE")
        m.result.txn_id, m.result.existing_job_status = holder, status
        m.result.number_loaded_rows = 0
        m.reply("Label Already Exists", held.message if held else
                f"Label Already Exists: label [{m.label}] has already been used, relate to txn [{txn_id}], "
                "status [PREPARE]")
    return kept


def _as_table(batch: BatchResult, schema: pa.Schema) -> pa.Table:
    """A parsed batch's rows as a table of the load's schema (the row-at-a-time plan gives rows)."""
    table = batch.table if batch.table is not None else columnar.table_from_rows(batch.rows, schema)
    return table if table.schema.equals(schema) else table.cast(schema)


def _encode(router: Router, members: list[_Member]) -> dict[int, list[Chunk]]:
    """The members' rows as one batch, routed and encoded once (a segment per tablet, not one
    per member), by the coordinator's own prepare."""
    rows = [row for m in members if m.rows is not None for row in m.rows]
    tables = [m.table.cast(router.schema) for m in members if m.table is not None]
    return _encode_tables(router, rows, tables)


def _encode_tables(router: Router, rows: list[tuple], tables: list[pa.Table]) -> dict[int, list[Chunk]]:
    if rows or not tables:
        tables = [columnar.table_from_rows(rows, router.schema), *tables]
    batch = BatchResult(table=pa.concat_tables(tables) if len(tables) > 1 else tables[0])
    return LoadCoordinator.prepare(batch, router, max_samples=0).encoded


def _wal_members(members: list[_Member]) -> list[WalMember]:
    """Each member's rows as the WAL keeps them: marshal rows or a columnar segment, as parsed."""
    return [WalMember(m.label, encode_rows(m.rows) if m.rows is not None else columnar.encode_segment(m.table))
            for m in members]


def _encode_entry(router: Router, entry: WalEntry) -> dict[int, list[Chunk]]:
    return _encode_tables(router, [], [columnar.read_table(m.rows, router.schema) for m in entry.members])


def _reason(exc: BaseException) -> str:
    return failure_reason(exc, "the group commit was cancelled (the BE is stopping)")
