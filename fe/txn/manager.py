"""The transaction manager (journal domain ``txn``): begin, commit with quorum, publish, abort.

Every change is one edit-log record; its ``apply`` also updates the catalog (partition versions,
replica versions and lastFailedVersion), so the live path and replay agree. A commit may carry an
attachment (a routine load task's offsets): commit hooks registered per source type check it
before the commit and apply it inside the same record, which makes the txn state and the job's
progress move together.

Running and finished transactions are indexed apart, as in StarRocks' DatabaseTransactionMgr
(idToRunningTransactionState beside finalStatusTransactionStateDeque): the publish daemon and
the PREPARE timeout look at running ones only, so their cost does not grow with history. The
finished ones of each database sit in finish order and are cleaned oldest first, past
``label_keep_max_second`` or beyond ``label_keep_max_num`` (one ``txn.clean`` record); a cleaned
label may be used again. ``max_running_txn_num_per_db`` bounds the running non-routine-load
transactions of a database, as StarRocks' checkRunningTxnExceedLimit does.

Group commit (Doris 2.1): one txn carries the loads of a group, and each member's own label is
registered with it (:meth:`begin_group`, :meth:`add_members`), so the label index maps every
member label to the group txn: a member label is "used" exactly as a load's own label is, and
is freed with the txn's when it aborts. A coordinator replaying its group commit WAL takes the
group's label over (``wal_replay``): see :meth:`begin_group`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from common.quorum import counts
from fe.catalog.catalog import Catalog
from fe.catalog.model import Database, Table
from fe.persist.ids import IdAllocator
from fe.persist.journal import Journal
from fe.system.backends import BackendRegistry
from fe.system.dynconfig import DynamicConfig
from fe.txn.state import SourceType, TransactionState, TxnStatus

log = logging.getLogger(__name__)

MAX_LABEL_LEN = 128


def label_exists_message(label: str, txn_id: int, status: str) -> str:
    return (f"Label Already Exists: label [{label}] has already been used, relate to txn [{txn_id}], "
            f"status [{status}]")


@dataclass(frozen=True)
class LabelConflict:
    """A group member whose label is used already: by ``txn_id`` (in ``status``)."""

    label: str
    txn_id: int
    status: str

    @property
    def message(self) -> str:
        return label_exists_message(self.label, self.txn_id, self.status)


@dataclass
class GroupBegin:
    """What :meth:`TransactionManager.begin_group` did: the txn it began (None: none), the members
    left out, and with ``wal_replay`` the label's txn that is COMMITTED or VISIBLE already."""

    txn: TransactionState | None
    db: Database
    table: Table
    conflicts: list[LabelConflict]
    existing: TransactionState | None = None


@dataclass
class TxnCounters:
    """What StarRocks' MetricRepo counts of transactions (COUNTER_TXN_BEGIN, _SUCCESS, _FAILED,
    _REJECT), on the live path of this FE since it started: ``/metrics`` exports them as
    starrocks_fe_txn_begin, starrocks_fe_txn_success, starrocks_fe_txn_failed and
    starrocks_fe_txn_reject."""

    begin: int = 0
    committed: int = 0
    """Txns committed (the web console's committed/s; StarRocks counts begin/success/failed only)."""
    success: int = 0
    """Txns that became VISIBLE."""
    failed: int = 0
    """Txns that were ABORTED."""
    reject: int = 0
    """Begins refused: label in use, or max_running_txn_num_per_db reached."""


@dataclass
class CommitHook:
    """What a load source (routine load) does with a commit's attachment.

    ``check(txn, attachment)`` runs before the commit and raises to refuse it (the txn is then
    aborted); ``apply(txn)`` runs inside the commit record's apply, live and on replay.
    ``apply_abort(txn)`` runs inside the abort record's apply, live and on replay.
    ``on_final(txn)`` runs (live only) after the txn is VISIBLE or ABORTED.
    """

    check: Callable[[TransactionState, dict[str, Any]], None]
    apply: Callable[[TransactionState], None]
    on_final: Callable[[TransactionState], None]
    apply_abort: Callable[[TransactionState], None] = lambda txn: None


class TransactionManager:
    def __init__(self, journal: Journal, ids: IdAllocator, catalog: Catalog, backends: BackendRegistry,
                 config: DynamicConfig, wall_ms: Callable[[], int]) -> None:
        self._journal = journal
        self._ids = ids
        self._catalog = catalog
        self._backends = backends
        self._config = config
        self._wall_ms = wall_ms
        self._txns: dict[int, TransactionState] = {}  # every kept txn by id (lookups only, never scanned)
        self._running: dict[int, TransactionState] = {}  # PREPARE and COMMITTED
        # per database, VISIBLE and ABORTED in the order they finished (oldest first)
        self._final: dict[int, OrderedDict[int, TransactionState]] = {}
        self._running_num: dict[int, int] = {}  # per database, running txns that count against the limit
        self._labels: dict[tuple[int, str], int] = {}  # the label's non-aborted txn
        self._aborted_labels: dict[tuple[int, str], int] = {}  # the label's newest aborted txn
        self._waiters: dict[int, asyncio.Event] = {}
        self._hooks: dict[SourceType, CommitHook] = {}
        self.on_aborted: list[Callable[[TransactionState], None]] = []
        self.on_committed: list[Callable[[TransactionState], None]] = []
        self._finals: list[TransactionState] = []  # finished in an apply; hooks run after the record
        self.counters = TxnCounters()
        self._verbs = {
            "begin": self._apply_begin,
            "commit": self._apply_commit,
            "visible": self._apply_visible,
            "abort": self._apply_abort,
            "clean": self._apply_clean,
            "members": self._apply_members,
        }
        backends.add_listener(self._backend_event)

    def register_hook(self, source: SourceType, hook: CommitHook) -> None:
        self._hooks[source] = hook

    # ------------------------------------------------------------------ queries
    def get(self, txn_id: int) -> TransactionState:
        txn = self._txns.get(txn_id)
        if txn is None:
            raise NotFound(f"unknown transaction {txn_id}")
        return txn

    def find(self, txn_id: int) -> TransactionState | None:
        return self._txns.get(txn_id)

    def by_label(self, db_id: int, label: str) -> TransactionState | None:
        """The non-aborted txn of a label, or the newest aborted one."""
        txn_id = self._labels.get((db_id, label))
        if txn_id is None:
            txn_id = self._aborted_labels.get((db_id, label))
        return self._txns[txn_id] if txn_id is not None else None

    def running(self) -> list[TransactionState]:
        """PREPARE and COMMITTED txns (never the finished ones), in the order they began."""
        return list(self._running.values())

    def with_status(self, status: TxnStatus) -> list[TransactionState]:
        """Txns in ``status`` by id. A running status reads the running index only."""
        if status.is_final:
            pool = [t for final in self._final.values() for t in final.values() if t.status is status]
        else:
            pool = [t for t in self._running.values() if t.status is status]
        return sorted(pool, key=lambda t: t.txn_id)

    def of_db(self, db_id: int) -> list[TransactionState]:
        """A database's running txns and its kept finished ones, by id."""
        running = [t for t in self._running.values() if t.db_id == db_id]
        return sorted(running + list(self._final.get(db_id, {}).values()), key=lambda t: t.txn_id)

    def counts(self, db_id: int) -> tuple[int, int]:
        """(running txns counted against max_running_txn_num_per_db, kept finished txns) of a database."""
        return self._running_num.get(db_id, 0), len(self._final.get(db_id, ()))

    # ------------------------------------------------------------------ live path
    def begin(self, db_name: str, table_name: str, label: str, timeout_s: int, coordinator: str,
              source_type: SourceType) -> tuple[TransactionState, Database, Table]:
        _check_label(label)
        if timeout_s <= 0:
            raise InvalidArgument(f"invalid timeout {timeout_s}: must be a positive number of seconds")
        db, table = self._catalog.table(db_name, table_name)
        existing = self._labels.get((db.db_id, label))
        if existing is not None:
            other = self._txns[existing]
            self.counters.reject += 1
            raise AlreadyExists(label_exists_message(label, other.txn_id, other.status.value))
        self._check_running_limit(db.db_id, source_type)
        txn = TransactionState(
            txn_id=self._ids.next(), db_id=db.db_id, table_id=table.table_id, label=label,
            coordinator=coordinator, source_type=source_type, timeout_ms=timeout_s * 1000,
            prepare_time_ms=self._wall_ms(),
        )
        self._journal.log("txn.begin", txn.to_dict())
        self.counters.begin += 1
        return self._txns[txn.txn_id], db, table

    def begin_group(self, db_name: str, table_name: str, label: str, timeout_s: int, coordinator: str,
                    source_type: SourceType, member_labels: list[str], *, wal_replay: bool = False,
                    commit_may_have_been_sent: bool = False) -> GroupBegin:
        """Begin a group commit txn under ``label`` holding ``member_labels`` too. A member label
        used already (or twice in the list) is left out and named in the conflicts; with members
        given and none left, nothing begins.

        ``wal_replay``: the coordinator replays a group from its WAL and takes ``label`` over. A
        PREPARE txn holding it is aborted first (its coordinator died, or gave up on it), which
        frees the members' labels for the new txn; a COMMITTED or VISIBLE one means the group is
        loaded: nothing begins and ``existing`` names it. When no txn of the label is known at
        all and ``commit_may_have_been_sent``, it cannot be told whether the rows were loaded
        (the txns were cleaned): refused, so that the rows are never loaded twice.
        """
        _check_label(label)
        for member in member_labels:
            _check_label(member)
        if timeout_s <= 0:
            raise InvalidArgument(f"invalid timeout {timeout_s}: must be a positive number of seconds")
        db, table = self._catalog.table(db_name, table_name)
        key = (db.db_id, label)
        holder = self._labels.get(key)
        if holder is not None:
            other = self._txns[holder]
            if not wal_replay:
                self.counters.reject += 1
                raise AlreadyExists(label_exists_message(label, other.txn_id, other.status.value))
            if other.status is not TxnStatus.PREPARE:
                return GroupBegin(None, db, table, [], existing=other)
            self.abort(other.txn_id, f"its coordinator ({coordinator}) replays the group from its WAL under a "
                                     "new transaction")
        elif wal_replay and commit_may_have_been_sent and key not in self._aborted_labels:
            raise FailedPrecondition(
                f"group commit label [{label}]: a commit of its transaction may have been sent and this FE keeps "
                "no transaction with that label any more (cleaned past label_keep_max_second or "
                "label_keep_max_num), so whether its rows were loaded cannot be told; they stay in the "
                "coordinator's WAL for an operator"
            )
        self._check_running_limit(db.db_id, source_type)
        txn_id = self._ids.next()
        conflicts, free = self._split_members(db.db_id, txn_id, member_labels)
        if member_labels and not free:
            return GroupBegin(None, db, table, conflicts)
        txn = TransactionState(
            txn_id=txn_id, db_id=db.db_id, table_id=table.table_id, label=label, coordinator=coordinator,
            source_type=source_type, timeout_ms=timeout_s * 1000, prepare_time_ms=self._wall_ms(),
            member_labels=free,
        )
        self._journal.log("txn.begin", txn.to_dict())
        self.counters.begin += 1
        return GroupBegin(self._txns[txn_id], db, table, conflicts)

    def add_members(self, txn_id: int, member_labels: list[str]) -> list[LabelConflict]:
        """Register the labels of a group's members with its PREPARE txn, in order; the ones used
        already (or twice) are not registered and come back as conflicts."""
        txn = self.get(txn_id)
        if txn.status is not TxnStatus.PREPARE:
            raise FailedPrecondition(
                f"transaction {txn_id} (label '{txn.label}') is {txn.status.value}; members join only a PREPARE "
                "transaction" + (f" (reason: {txn.reason})" if txn.reason else "")
            )
        for member in member_labels:
            _check_label(member)
        conflicts, free = self._split_members(txn.db_id, txn_id, member_labels)
        if free:
            self._journal.log("txn.members", {"txn_id": txn_id, "labels": free})
        return conflicts

    def _split_members(self, db_id: int, txn_id: int,
                       labels: list[str]) -> tuple[list[LabelConflict], list[str]]:
        """(members whose label is used, the free labels) for a group txn ``txn_id``."""
        conflicts: list[LabelConflict] = []
        free: list[str] = []
        seen: set[str] = set()
        for label in labels:
            holder = self._labels.get((db_id, label))
            if holder is not None:
                other = self._txns[holder]
                conflicts.append(LabelConflict(label, other.txn_id, other.status.value))
            elif label in seen:
                conflicts.append(LabelConflict(label, txn_id, TxnStatus.PREPARE.value))
            else:
                seen.add(label)
                free.append(label)
        return conflicts, free

    def commit(self, txn_id: int, tablet_backends: dict[int, list[int]], attachment: dict[str, Any],
               loaded_rows: int = 0) -> TransactionState:
        txn = self.get(txn_id)
        if txn.status is not TxnStatus.PREPARE:
            raise FailedPrecondition(
                f"transaction {txn_id} (label '{txn.label}') is {txn.status.value}; only a PREPARE "
                f"transaction can be committed" + (f" (reason: {txn.reason})" if txn.reason else "")
            )
        try:
            versions, error_replicas, quorum = self._check_commit(txn, tablet_backends)
            hook = self._hooks.get(txn.source_type)
            if hook is not None:
                hook.check(txn, attachment)
        except (Unavailable, FailedPrecondition, InvalidArgument, NotFound) as exc:
            self.abort(txn_id, f"commit refused: {exc}")
            raise
        self._journal.log("txn.commit", {
            "txn_id": txn_id, "time_ms": self._wall_ms(),
            "partition_versions": [[p, v] for p, v in versions.items()],
            "tablet_backends": [[t, b] for t, b in tablet_backends.items()],
            "error_replicas": error_replicas, "attachment": attachment, "loaded_rows": loaded_rows,
            "quorum": quorum,
        })
        log.info("txn %d (label %s) COMMITTED: versions %s, %d error replicas",
                 txn_id, txn.label, versions, len(error_replicas))
        self.counters.committed += 1
        for fn in self.on_committed:
            fn(txn)
        return txn

    def _check_running_limit(self, db_id: int, source_type: SourceType) -> None:
        """StarRocks' checkRunningTxnExceedLimit. Routine load txns are neither counted nor refused:
        max_routine_load_task_num_per_be bounds them, and counting them would let routine load
        take every slot from the other loads."""
        if source_type is SourceType.ROUTINE_LOAD_TASK:
            return
        running = self._running_num.get(db_id, 0)
        limit = self._config.max_running_txn_num_per_db
        if running >= limit:
            self.counters.reject += 1
            raise FailedPrecondition(
                f"current running txns on db {db_id} is {running}, larger than limit {limit} "
                "(max_running_txn_num_per_db): retry once some of them finish"
            )

    def _check_commit(self, txn: TransactionState,
                      tablet_backends: dict[int, list[int]]) -> tuple[dict[int, int], list[int], int]:
        """(version per partition, replicas that missed the write, the quorum counted) or raise."""
        db = self._catalog.db_by_id(txn.db_id)
        table = next((t for t in db.tables.values() if t.table_id == txn.table_id), None) if db else None
        if table is None:
            raise NotFound(f"the table of transaction {txn.txn_id} was dropped")
        touched = {}
        for tablet_id in tablet_backends:
            loc = self._catalog.find_location(tablet_id)
            if loc is None or loc.table.table_id != table.table_id:
                raise InvalidArgument(f"tablet {tablet_id} is not a tablet of table '{table.name}'")
            touched[loc.partition.partition_id] = loc.partition
        versions: dict[int, int] = {}
        error_replicas: list[int] = []
        quorum = table.quorum
        for partition in touched.values():
            versions[partition.partition_id] = partition.next_version
            for tablet in partition.tablets:
                if tablet.tablet_id not in tablet_backends:
                    raise InvalidArgument(
                        f"tablet {tablet.tablet_id} of partition '{partition.name}' has no commit info: "
                        "every tablet of a loaded partition takes part"
                    )
                took = set(tablet_backends[tablet.tablet_id])
                good = [r for r in tablet.replicas if r.backend_id in took and counts(r.state.value, r.bad)]
                if len(good) < quorum:
                    raise Unavailable(
                        f"tablet {tablet.tablet_id} reached {len(good)} of the {quorum} replicas its "
                        f"write quorum ({table.write_quorum.value}) needs"
                    )
                error_replicas += [r.replica_id for r in tablet.replicas if r.backend_id not in took]
        return versions, error_replicas, quorum

    def abort(self, txn_id: int, reason: str) -> TransactionState:
        txn = self.get(txn_id)
        if txn.status is TxnStatus.ABORTED:
            return txn
        if txn.status is not TxnStatus.PREPARE:
            raise FailedPrecondition(
                f"transaction {txn_id} (label '{txn.label}') is {txn.status.value}; only a PREPARE "
                "transaction can be aborted"
            )
        self._journal.log("txn.abort", {"txn_id": txn_id, "time_ms": self._wall_ms(), "reason": reason})
        self.counters.failed += 1
        log.info("txn %d (label %s) ABORTED: %s", txn_id, txn.label, reason)
        for fn in self.on_aborted:
            fn(txn)
        self._run_final_hooks()
        return txn

    def mark_visible(self, txn_id: int, published: list[tuple[int, int, int, int, int, int]],
                     lagging: list[tuple[int, int]]) -> None:
        """``published``: (tablet, backend, version, rows, bytes, version count); ``lagging``: (tablet, backend)."""
        self._journal.log("txn.visible", {
            "txn_id": txn_id, "time_ms": self._wall_ms(),
            "published": [list(p) for p in published], "lagging": [list(x) for x in lagging],
        })
        self.counters.success += 1
        self._run_final_hooks()

    def abort_expired(self) -> list[int]:
        """Abort the PREPARE txns past their timeout (running ones only are looked at)."""
        now = self._wall_ms()
        expired = [t for t in self._running.values() if t.expired(now)]
        for txn in expired:
            self.abort(txn.txn_id, f"timeout by txn manager: PREPARE for more than {txn.timeout_ms // 1000} s")
        return [t.txn_id for t in expired]

    def clean_finished(self) -> int:
        """StarRocks' removeExpiredTxns, per database: drop finished txns oldest first while the
        oldest is past label_keep_max_second or the database keeps more than label_keep_max_num
        txns (running ones included in the count, as StarRocks does). One record for them all."""
        keep_ms = self._config.label_keep_max_second * 1000
        keep_num = self._config.label_keep_max_num
        now = self._wall_ms()
        running: dict[int, int] = {}
        for t in self._running.values():
            running[t.db_id] = running.get(t.db_id, 0) + 1
        old: list[int] = []
        for db_id, final in self._final.items():
            over = len(final) + running.get(db_id, 0) - keep_num
            for txn in final.values():
                if over <= 0 and now - txn.finish_time_ms <= keep_ms:
                    break
                old.append(txn.txn_id)
                over -= 1
        if old:
            self._journal.log("txn.clean", {"txn_ids": old})
            log.info("cleaned %d finished transactions (label_keep_max_second %d, label_keep_max_num %d)",
                     len(old), keep_ms // 1000, keep_num)
        return len(old)

    async def wait_finished(self, txn_id: int, timeout_s: float) -> TransactionState:
        """The txn once VISIBLE or ABORTED, or as it is when ``timeout_s`` passes."""
        txn = self.get(txn_id)
        if not txn.status.is_final:
            event = self._waiters.setdefault(txn_id, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), timeout_s)
            except TimeoutError:
                pass
        return txn  # the same object the applies update, even if cleaned meanwhile

    # ------------------------------------------------------------------ journal domain
    def apply(self, verb: str, data: dict[str, Any]) -> Any:
        return self._verbs[verb](data)

    def _apply_begin(self, d: dict[str, Any]) -> None:
        txn = TransactionState.from_dict(d)
        self._ids.observe(txn.txn_id)
        self._add(txn)

    def _apply_commit(self, d: dict[str, Any]) -> None:
        txn = self._txns[d["txn_id"]]
        txn.transition_to(TxnStatus.COMMITTED)
        txn.commit_time_ms = d["time_ms"]
        txn.partition_versions = {p: v for p, v in d["partition_versions"]}
        txn.tablet_backends = {t: b for t, b in d["tablet_backends"]}
        txn.error_replicas = d["error_replicas"]
        txn.attachment = d["attachment"]
        txn.loaded_rows = d.get("loaded_rows", 0)
        txn.quorum = d.get("quorum", 0)  # absent in records of older FEs: publish uses the table's
        failed = set(txn.error_replicas)
        for partition_id, version in txn.partition_versions.items():
            partition = self._partition(txn, partition_id)
            if partition is None:
                continue
            partition.next_version = max(partition.next_version, version + 1)
            for tablet in partition.tablets:
                for r in tablet.replicas:
                    if r.replica_id in failed:
                        r.last_failed_version = max(r.last_failed_version, version)
                        r.last_failed_time_ms = d["time_ms"]
        hook = self._hooks.get(txn.source_type)
        if hook is not None:
            hook.apply(txn)

    def _apply_visible(self, d: dict[str, Any]) -> None:
        txn = self._txns[d["txn_id"]]
        txn.transition_to(TxnStatus.VISIBLE)
        txn.publish_time_ms = txn.finish_time_ms = d["time_ms"]
        self._to_final(txn)
        for tablet_id, backend_id, version, rows, size, *count in d["published"]:
            loc = self._catalog.find_location(tablet_id)
            replica = loc.tablet.replica_on(backend_id) if loc else None
            if replica is not None and version > replica.version:
                replica.version = version
                replica.last_success_version = version
                replica.row_count, replica.data_size = rows, size
                # the BE's own count (its compactions lower it); records written before it said, +1
                replica.version_count = count[0] if count and count[0] else replica.version_count + 1
                if replica.last_failed_version >= 0 and replica.version >= replica.last_failed_version:
                    replica.last_failed_version = -1
        for tablet_id, backend_id in d["lagging"]:
            loc = self._catalog.find_location(tablet_id)
            replica = loc.tablet.replica_on(backend_id) if loc else None
            version = txn.partition_versions.get(loc.partition.partition_id, 0) if loc else 0
            if replica is not None and replica.version < version:
                replica.last_failed_version = max(replica.last_failed_version, version)
                replica.last_failed_time_ms = d["time_ms"]
        for partition_id, version in txn.partition_versions.items():
            partition = self._partition(txn, partition_id)
            if partition is not None and version > partition.visible_version:
                partition.visible_version = version
                partition.visible_version_time_ms = d["time_ms"]
        self._finish(txn)

    def _apply_abort(self, d: dict[str, Any]) -> None:
        txn = self._txns[d["txn_id"]]
        txn.transition_to(TxnStatus.ABORTED)
        txn.finish_time_ms = d["time_ms"]
        txn.reason = d["reason"]
        self._to_final(txn)
        hook = self._hooks.get(txn.source_type)
        if hook is not None:
            hook.apply_abort(txn)
        self._finish(txn)

    def _apply_members(self, d: dict[str, Any]) -> None:
        txn = self._txns[d["txn_id"]]
        txn.member_labels.extend(d["labels"])
        for label in d["labels"]:
            self._labels[(txn.db_id, label)] = txn.txn_id

    def _apply_clean(self, d: dict[str, Any]) -> None:
        for txn_id in d["txn_ids"]:
            txn = self._txns.get(txn_id)
            if txn is None or not txn.status.is_final:
                continue  # already gone, or (a record of an older FE) not finished: kept
            del self._txns[txn_id]
            final = self._final[txn.db_id]
            del final[txn_id]
            if not final:
                del self._final[txn.db_id]
            for label in txn.labels:
                key = (txn.db_id, label)
                if self._labels.get(key) == txn_id:
                    del self._labels[key]
                if self._aborted_labels.get(key) == txn_id:
                    del self._aborted_labels[key]

    # ------------------------------------------------------------------ indexes (apply and load only)
    def _add(self, txn: TransactionState) -> None:
        """Index a txn in its current state (a begin, or a txn of the image)."""
        self._txns[txn.txn_id] = txn
        if txn.status.is_final:
            self._final.setdefault(txn.db_id, OrderedDict())[txn.txn_id] = txn
        else:
            self._running[txn.txn_id] = txn
            if txn.source_type is not SourceType.ROUTINE_LOAD_TASK:
                self._running_num[txn.db_id] = self._running_num.get(txn.db_id, 0) + 1
        for label in txn.labels:
            key = (txn.db_id, label)
            if txn.status is TxnStatus.ABORTED:
                if txn.txn_id > self._aborted_labels.get(key, 0):
                    self._aborted_labels[key] = txn.txn_id
            else:
                self._labels[key] = txn.txn_id

    def _to_final(self, txn: TransactionState) -> None:
        """Move a txn that just became VISIBLE or ABORTED from the running index to its database's
        finished ones (newest last)."""
        del self._running[txn.txn_id]
        if txn.source_type is not SourceType.ROUTINE_LOAD_TASK:
            left = self._running_num[txn.db_id] - 1
            if left:
                self._running_num[txn.db_id] = left
            else:
                del self._running_num[txn.db_id]
        self._final.setdefault(txn.db_id, OrderedDict())[txn.txn_id] = txn
        if txn.status is TxnStatus.ABORTED:
            for label in txn.labels:
                key = (txn.db_id, label)
                if self._labels.get(key) == txn.txn_id:
                    del self._labels[key]
                self._aborted_labels[key] = txn.txn_id

    def _finish(self, txn: TransactionState) -> None:
        event = self._waiters.pop(txn.txn_id, None)
        if event is not None:
            event.set()
        if not self._journal.replaying:
            self._finals.append(txn)

    def _run_final_hooks(self) -> None:
        """Live-only follow-ups of finished txns, run once their record is fully applied."""
        while self._finals:
            txn = self._finals.pop(0)
            hook = self._hooks.get(txn.source_type)
            if hook is not None:
                hook.on_final(txn)

    def partition_of(self, txn: TransactionState, partition_id: int):
        """The catalog partition a txn loads into, or None once its table or database is dropped."""
        return self._partition(txn, partition_id)

    def _partition(self, txn: TransactionState, partition_id: int):
        db = self._catalog.db_by_id(txn.db_id)
        if db is None:
            return None
        table = next((t for t in db.tables.values() if t.table_id == txn.table_id), None)
        if table is None:
            return None
        return next((p for p in table.partitions if p.partition_id == partition_id), None)

    def dump(self) -> dict[str, Any]:
        """Running txns by id, then each database's finished ones in finish order (which ``load``
        keeps, so that cleaning after a restart drops the same txns as before it)."""
        running = sorted(self._running.values(), key=lambda t: t.txn_id)
        final = [t for db_id in sorted(self._final) for t in self._final[db_id].values()]
        return {"txns": [t.to_dict() for t in running + final]}

    def load(self, state: dict[str, Any]) -> None:
        for index in (self._txns, self._running, self._final, self._running_num, self._labels,
                      self._aborted_labels):
            index.clear()
        for d in state.get("txns", []):
            txn = TransactionState.from_dict(d)
            self._ids.observe(txn.txn_id)
            self._add(txn)

    def _backend_event(self, be, event: str) -> None:
        """A BE that restarted (even within heartbeat_timeout_second, never looking dead) lost
        the loads it coordinated: abort them (their abort hooks renew routine load tasks)."""
        if event == "restarted":
            aborted = self.abort_coordinated_by(
                be.backend_id, f"coordinator backend {be.backend_id} restarted: its loads ended with the old process",
                prepared_before_ms=be.last_start_time_ms)
            if aborted:
                log.warning("backend %d restarted: aborted the txns it coordinated %s", be.backend_id, aborted)

    def abort_coordinated_by(self, backend_id: int, reason: str,
                             prepared_before_ms: int | None = None) -> list[int]:
        """Abort the PREPARE txns that backend ``backend_id`` coordinates, those prepared before
        ``prepared_before_ms`` only when given: StarRocks' abortTxnWhenCoordinateBeRestart, for a
        BE that restarted at that time (the old process's loads died with it; a load the new
        process began before it registered lives on). COMMITTED txns are kept: they publish.
        Returns the aborted txn ids."""
        coordinator = f"BE: {backend_id}"
        doomed = [t.txn_id for t in self._running.values()
                  if t.status is TxnStatus.PREPARE and t.coordinator == coordinator
                  and (prepared_before_ms is None or t.prepare_time_ms < prepared_before_ms)]
        for txn_id in doomed:
            self.abort(txn_id, reason)
        return doomed


def _check_label(label: str) -> None:
    if not label or len(label) > MAX_LABEL_LEN:
        raise InvalidArgument(f"invalid label '{label}': must be 1..{MAX_LABEL_LEN} characters")
