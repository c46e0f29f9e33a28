"""Group commit of Stream Loads (be/load/group_commit.py): the collector, per-member results,
label conflicts, shared failures, the async WAL and its exactly-once replay; the table
properties; the FE's member labels, live and replayed from the journal.

(tests/unit/test_group_commit.py is the FE journal's group commit, another thing.)
"""

from __future__ import annotations

import asyncio

import pyarrow as pa
import pytest

from be.load.coordinator import LoadCoordinator
from be.load.group_commit import GroupCommitter
from be.load.group_commit_wal import GroupCommitWal, WalEntry, WalMember
from be.load.router import columns_of
from be.storage.store import BeStore
from common import columnar
from common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, TabletsimError, Unavailable
from common.gen.tabletsim.v1 import frontend_pb2, types_pb2
from fe.catalog.ddl import parse_table_properties
from fe.catalog.model import GroupCommitMode
from fe.service.frontend import load_target
from fe.txn.manager import TransactionManager
from fe.txn.state import SourceType, TxnStatus
from tests.support import eventually
from tests.unit.test_catalog import FakeClients, build, spec
from tests.unit.test_txn import with_txns

NOW_MS = 1_700_000_000_000
STREAM = SourceType.BACKEND_STREAMING


# ---------------------------------------------------------------------- fakes: the FE and the replicas
class FakeFe:
    """FrontendService over a real TransactionManager; a commit publishes at once (VISIBLE)."""

    def __init__(self, txns: TransactionManager, catalog) -> None:
        self.txns, self.catalog = txns, catalog
        self.commit_gate: asyncio.Event | None = None  # set: commits wait for it
        self.commit_error: TabletsimError | None = None
        self.commits: list[int] = []

    def _target(self, db, table):
        return load_target(db, table, self.catalog._backends)

    async def BeginTxn(self, req, timeout=None):
        coordinator = f"BE: {req.coordinator_backend_id}"
        if req.member_labels or req.wal_replay:
            g = self.txns.begin_group(req.db, req.table, req.label, req.timeout_s, coordinator, STREAM,
                                      list(req.member_labels), wal_replay=req.wal_replay,
                                      commit_may_have_been_sent=req.commit_may_have_been_sent)
            return frontend_pb2.BeginTxnResponse(
                txn_id=g.txn.txn_id if g.txn else 0, target=self._target(g.db, g.table) if g.txn else None,
                member_conflicts=[frontend_pb2.MemberLabelConflict(label=c.label, txn_id=c.txn_id, status=c.status,
                                                                   message=c.message) for c in g.conflicts],
                existing_txn_id=g.existing.txn_id if g.existing else 0,
                existing_status=g.existing.status.value if g.existing else "")
        txn, db, table = self.txns.begin(req.db, req.table, req.label, req.timeout_s, coordinator, STREAM)
        return frontend_pb2.BeginTxnResponse(txn_id=txn.txn_id, target=self._target(db, table))

    async def AddTxnMembers(self, req, timeout=None):
        conflicts = self.txns.add_members(req.txn_id, list(req.member_labels))
        return frontend_pb2.AddTxnMembersResponse(member_conflicts=[
            frontend_pb2.MemberLabelConflict(label=c.label, txn_id=c.txn_id, status=c.status, message=c.message)
            for c in conflicts])

    async def CommitTxn(self, req, timeout=None):
        if self.commit_gate is not None:
            await self.commit_gate.wait()
        if self.commit_error is not None:
            raise self.commit_error
        txn = self.txns.commit(req.txn_id, {i.tablet_id: list(i.backend_ids) for i in req.tablet_commit_infos},
                               {}, req.loaded_rows)
        self.commits.append(txn.txn_id)
        published = []
        for tablet_id, backends in txn.tablet_backends.items():
            loc = self.catalog.find_location(tablet_id)
            version = txn.partition_versions[loc.partition.partition_id]
            published += [(tablet_id, be, version, 0, 0, version) for be in backends]
        self.txns.mark_visible(txn.txn_id, published, [])
        return frontend_pb2.CommitTxnResponse(status=txn.status.value)

    async def AbortTxn(self, req, timeout=None):
        if self.txns.get(req.txn_id).status is TxnStatus.PREPARE:
            self.txns.abort(req.txn_id, req.reason)
        return frontend_pb2.AbortTxnResponse()


class Replicas:
    """Every BE's pending rows per txn; the local one through ``write``, peers through WriteRows."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[int, list[tuple]]] = {}  # txn -> tablet -> rows (one replica's view)
        self.down = False

    def _take(self, txn_id: int, chunks) -> None:
        if self.down:
            raise Unavailable("backend is down")
        for c in chunks:
            tablet_id, payload = c[0], c[2]
            self.rows.setdefault(txn_id, {})[tablet_id] = columnar.segment_to_rows(payload)

    # RowsetStore.write (the coordinator BE itself)
    def write(self, txn_id, chunks):
        self._take(txn_id, chunks)
        return sum(c[3] for c in chunks)

    # PeerClients.stub(address).WriteRows
    def stub(self, address):
        return self

    async def WriteRows(self, req, timeout=None):
        self._take(req.txn_id, [(c.tablet_id, c.partition_id, c.rows, c.row_count) for c in req.chunks])

    def loaded(self, txn_ids) -> list[int]:
        return sorted(r[0] for t in txn_ids for rows in self.rows.get(t, {}).values() for r in rows)


class Env:
    def __init__(self, tmp_path, catalog, txns, journal) -> None:
        self.catalog, self.txns, self.journal = catalog, txns, journal
        self.fe = FakeFe(txns, catalog)
        self.replicas = Replicas()
        self.be_id = catalog._backends.all()[0].backend_id
        self.coordinator = LoadCoordinator(lambda: self.be_id, self.fe, self.replicas, self.replicas,
                                           abort_retry_s=0.01)
        self.store = BeStore(str(tmp_path / "be"))
        self.wal = GroupCommitWal(self.store)
        self.committer = self.new_committer()

    def new_committer(self) -> GroupCommitter:
        return GroupCommitter(self.coordinator, self.fe, self.wal, lambda: self.be_id, retry_min_s=0.01,
                              retry_max_s=0.05)

    async def load(self, label: str, body: bytes, mode: str = "sync_mode", interval_ms: int = 20,
                   **params) -> types_pb2.StreamLoadResult:
        return await self.committer.load(types_pb2.StreamLoadRequest(
            db="d", table="t", label=label, data=body, params=types_pb2.LoadParams(**params), timeout_s=60,
            group_commit=mode, group_commit_interval_ms=interval_ms))

    async def load_all(self, bodies: dict[str, bytes], **kw) -> dict[str, object]:
        answers = await asyncio.gather(*(self.load(label, body, **kw) for label, body in bodies.items()),
                                       return_exceptions=True)
        return dict(zip(bodies, answers, strict=True))

    def db_id(self) -> int:
        return self.catalog.db("d").db_id

    def visible_rows(self) -> list[int]:
        return self.replicas.loaded([t.txn_id for t in self.txns.with_status(TxnStatus.VISIBLE)])


@pytest.fixture
async def env(tmp_path):
    journal, catalog, txns = build(tmp_path / "fe", FakeClients(), more=with_txns(lambda: NOW_MS))
    catalog.create_database("d")
    await catalog.create_table("d", spec("t", buckets=2, properties={"group_commit": "sync_mode"}))
    e = Env(tmp_path, catalog, txns, journal)
    try:
        yield e
    finally:
        await e.committer.close()
        await e.coordinator.close()
        e.store.close()
        journal.close()


def rows(*ids: int) -> bytes:
    return b"".join(b"%d,2024-01-01,v%d\n" % (i, i) for i in ids)


# ---------------------------------------------------------------------- the collector
async def test_members_of_one_window_share_one_txn_and_each_gets_its_own_counts(env):
    answers = await env.load_all({"a": rows(1, 2), "b": rows(3), "c": rows(4) + b"x,not-a-date,v\n"},
                                 max_filter_ratio=0.5)
    a, b, c = answers["a"], answers["b"], answers["c"]
    assert {r.status for r in (a, b, c)} == {"Success"}
    assert a.txn_id == b.txn_id == c.txn_id
    assert (a.number_total_rows, a.number_loaded_rows, a.number_filtered_rows) == (2, 2, 0)
    assert (b.number_total_rows, b.number_loaded_rows, b.number_filtered_rows) == (1, 1, 0)
    assert (c.number_total_rows, c.number_loaded_rows, c.number_filtered_rows) == (2, 1, 1)
    assert c.filtered_rows and a.group_commit == "sync_mode" and a.label == "a"
    txn = env.txns.get(a.txn_id)
    assert txn.status is TxnStatus.VISIBLE and txn.label.startswith("group_commit_")
    assert txn.member_labels == ["a", "b", "c"]
    assert all(env.txns.by_label(env.db_id(), label) is txn for label in ("a", "b", "c"))
    assert env.visible_rows() == [1, 2, 3, 4]
    assert env.fe.commits == [a.txn_id]  # one commit for the three loads


async def test_a_load_after_the_window_closed_goes_into_the_next_group(env):
    first = await env.load("w1", rows(1), interval_ms=5)
    second = await env.load("w2", rows(2), interval_ms=5)
    assert first.status == second.status == "Success" and first.txn_id != second.txn_id
    assert env.visible_rows() == [1, 2]


async def test_a_group_closes_early_at_its_size_bound(env):
    env.committer._max_group_bytes = 1  # every member fills a group
    answers = await env.load_all({"s1": rows(1), "s2": rows(2)}, interval_ms=60_000)
    assert answers["s1"].txn_id != answers["s2"].txn_id  # not held for the minute-long window
    assert env.visible_rows() == [1, 2]


async def test_a_used_label_answers_label_already_exists_and_does_not_join(env):
    used, _, _ = env.txns.begin("d", "t", "taken", 60, "BE: 1", STREAM)
    answers = await env.load_all({"taken": rows(1), "fresh": rows(2), "twice": rows(3)})
    repeat = await env.load_all({"twice": rows(4), "fresh2": rows(5)})
    taken, fresh = answers["taken"], answers["fresh"]
    assert taken.status == "Label Already Exists" and taken.txn_id == used.txn_id
    assert taken.existing_job_status == "PREPARE"
    assert f"label [taken] has already been used, relate to txn [{used.txn_id}], status [PREPARE]" in taken.message
    assert fresh.status == "Success" and answers["twice"].status == "Success"
    assert repeat["twice"].status == "Label Already Exists" and repeat["twice"].txn_id == fresh.txn_id
    assert repeat["twice"].existing_job_status == "VISIBLE"
    assert env.visible_rows() == [2, 3, 5]  # neither the taken label's nor the repeat's rows


async def test_the_same_label_twice_in_one_group_loads_once(env):
    answers = await asyncio.gather(env.load("dup", rows(1)), env.load("dup", rows(2)))
    assert sorted(r.status for r in answers) == ["Label Already Exists", "Success"]
    loser = next(r for r in answers if r.status != "Success")
    assert loser.txn_id == answers[0].txn_id and "relate to txn" in loser.message
    assert len(env.visible_rows()) == 1


async def test_a_member_over_its_max_filter_ratio_fails_alone_and_its_label_stays_free(env):
    answers = await env.load_all({"good": rows(1), "bad": rows(2) + b"x,y,z\n", "good2": rows(3)})
    bad = answers["bad"]
    assert bad.status == "Fail" and "max_filter_ratio" in bad.message and bad.number_loaded_rows == 0
    assert (bad.number_total_rows, bad.number_filtered_rows) == (2, 1) and bad.filtered_rows
    assert answers["good"].status == answers["good2"].status == "Success"
    assert env.visible_rows() == [1, 3]  # the bad member's good row is not written either
    assert env.txns.by_label(env.db_id(), "bad") is None
    retry = await env.load("bad", rows(2))
    assert retry.status == "Success" and env.visible_rows() == [1, 2, 3]


async def test_bad_params_fail_only_their_member(env):
    answers = await env.load_all({"ok": rows(1), "odd": rows(2)}, columns="zz = id")
    assert all(isinstance(a, InvalidArgument) for a in answers.values())  # both share the bad params
    mixed = await asyncio.gather(env.load("ok2", rows(3)), env.load("odd2", rows(4), columns="zz = id"),
                                 return_exceptions=True)
    assert mixed[0].status == "Success" and isinstance(mixed[1], InvalidArgument)
    assert env.visible_rows() == [3]


async def test_a_shared_write_failure_fails_every_member_and_loads_nothing(env):
    env.replicas.down = True
    answers = await env.load_all({"f1": rows(1), "f2": rows(2), "f3": rows(3)})
    assert all(isinstance(a, Unavailable) and "write quorum" in str(a) for a in answers.values()), answers
    aborted = env.txns.with_status(TxnStatus.ABORTED)
    assert len(aborted) == 1 and aborted[0].member_labels == ["f1", "f2", "f3"]
    assert env.visible_rows() == []
    env.replicas.down = False  # the labels are free again: a retry loads
    retry = await env.load_all({"f1": rows(1), "f2": rows(2), "f3": rows(3)})
    assert {r.status for r in retry.values()} == {"Success"} and env.visible_rows() == [1, 2, 3]


async def test_a_refused_commit_fails_every_member(env):
    env.fe.commit_error = FailedPrecondition("the table of transaction was dropped")
    answers = await env.load_all({"c1": rows(1), "c2": rows(2)})
    assert all(isinstance(a, FailedPrecondition) for a in answers.values())
    assert env.txns.with_status(TxnStatus.ABORTED)[0].member_labels == ["c1", "c2"]


async def test_off_mode_and_unknown_modes_are_refused_here(env):
    with pytest.raises(InvalidArgument, match="sync_mode or async_mode"):
        await env.load("x", rows(1), mode="off_mode")


# ---------------------------------------------------------------------- async_mode and the WAL
async def test_async_mode_answers_once_in_the_wal_and_deletes_the_entry_when_visible(env):
    env.fe.commit_gate = asyncio.Event()
    answers = await env.load_all({"a1": rows(1), "a2": rows(2, 3)}, mode="async_mode")
    assert {r.status for r in answers.values()} == {"Success"}
    assert answers["a2"].number_loaded_rows == 2 and answers["a1"].group_commit == "async_mode"
    entries = env.wal.entries()  # answered: durable in the WAL, not visible yet
    assert [(m.label, m.row_count) for m in entries[0].members] == [("a1", 1), ("a2", 2)]
    # written to the replicas, and the commit (held) marked as sent before it goes
    await eventually(lambda: env.wal.entries()[0].commit_sent, timeout_s=10, what="the commit under way")
    assert env.visible_rows() == []
    env.fe.commit_gate.set()
    await eventually(lambda: not env.wal.entries(), timeout_s=10, what="the WAL entry deleted")
    assert env.visible_rows() == [1, 2, 3]


async def test_async_group_whose_commit_fails_is_loaded_again_from_the_wal_once(env):
    env.fe.commit_error = Unavailable("no leader")
    answers = await env.load_all({"r1": rows(1), "r2": rows(2)}, mode="async_mode")
    assert {r.status for r in answers.values()} == {"Success"}  # answered before the commit
    first = env.txns.get(answers["r1"].txn_id)
    await eventually(lambda: first.status is TxnStatus.ABORTED, timeout_s=10, what="the refused group aborted")
    env.fe.commit_error = None
    await eventually(lambda: not env.wal.entries(), timeout_s=10, what="the WAL entry loaded again and deleted")
    assert env.visible_rows() == [1, 2]
    replayed = env.txns.by_label(env.db_id(), "r1")
    assert replayed.label == first.label and replayed.txn_id != first.txn_id  # the group's label, a new txn
    assert replayed.status is TxnStatus.VISIBLE and replayed.member_labels == ["r1", "r2"]


def _entry(schema, label: str, members: dict[str, list[int]], *, commit_sent: bool = False) -> WalEntry:
    """A WAL entry as a group of ``members`` (label -> ids) would have written it."""
    return WalEntry(label, "d", "t", 60, [
        WalMember(lb, columnar.encode_segment(columnar.table_from_rows(
            [(i, "2024-01-01", f"v{i}") for i in ids], schema)))
        for lb, ids in members.items()], commit_sent)


@pytest.fixture
def schema(env):
    target = load_target(env.catalog.db("d"), env.catalog.db("d").tables["t"], env.catalog._backends)
    return columnar.arrow_schema(columns_of(target))


async def test_replay_after_a_kill_aborts_the_old_prepare_txn_and_loads_under_the_same_label(env, schema):
    # a killed process: the group's txn began, members registered, the entry written, no commit
    g = env.txns.begin_group("d", "t", "group_commit_k", 60, f"BE: {env.be_id}", STREAM, ["k1", "k2"])
    env.wal.put(_entry(schema, "group_commit_k", {"k1": [1], "k2": [2, 3]}))
    restarted = env.new_committer()
    await restarted.start()
    await eventually(lambda: not env.wal.entries(), timeout_s=10, what="the WAL replayed")
    await restarted.close()
    assert g.txn.status is TxnStatus.ABORTED and "replays the group from its WAL" in g.txn.reason
    assert env.visible_rows() == [1, 2, 3] and env.wal.entries() == []
    assert env.txns.by_label(env.db_id(), "k2").status is TxnStatus.VISIBLE


async def test_replay_of_a_visible_group_only_deletes_its_entry(env, schema):
    done = await env.load_all({"v1": rows(1)}, mode="async_mode")
    txn = env.txns.get(done["v1"].txn_id)
    await eventually(lambda: txn.status is TxnStatus.VISIBLE and not env.wal.entries(), timeout_s=10,
                     what="the async group visible")
    # a kill between the VISIBLE answer and the entry's deletion leaves the entry behind
    entry = _entry(schema, txn.label, {"v1": [1]}, commit_sent=True)
    env.wal.put(entry)
    assert await env.committer.replay(entry) is None
    assert env.wal.entries() == [] and env.visible_rows() == [1]  # not loaded twice


async def test_replay_drops_a_member_whose_label_another_load_took(env, schema):
    g = env.txns.begin_group("d", "t", "group_commit_m", 60, f"BE: {env.be_id}", STREAM, ["m1", "m2"])
    env.txns.abort(g.txn.txn_id, "timeout by txn manager")  # the labels are free meanwhile...
    other = await env.load("m2", rows(20))  # ...and a client loads m2 again
    entry = _entry(schema, "group_commit_m", {"m1": [1], "m2": [2]})
    env.wal.put(entry)
    assert await env.committer.replay(entry) is None
    assert env.visible_rows() == [1, 20]  # m2's rows are its own load's, once
    assert env.txns.by_label(env.db_id(), "m2").txn_id == other.txn_id


async def test_replay_refuses_when_a_commit_may_have_landed_and_the_fe_forgot_the_label(env, schema):
    entry = _entry(schema, "group_commit_gone", {"z1": [1]}, commit_sent=True)
    with pytest.raises(FailedPrecondition, match="cannot be told"):
        await env.committer.replay(entry)
    assert env.visible_rows() == []
    # without a commit sent, a label the FE does not know was never committed: it loads
    entry.commit_sent = False
    assert await env.committer.replay(entry) is None and env.visible_rows() == [1]


def test_wal_entries_survive_a_reopen(tmp_path):
    store = BeStore(str(tmp_path / "be"))
    wal = GroupCommitWal(store)
    payload = columnar.encode_segment(columnar.table_from_rows([(1,)], _one_column_schema()))
    wal.put(WalEntry("group_commit_b", "d", "t", 60, [WalMember("x", payload)]))
    wal.put(WalEntry("group_commit_a", "d", "t", 60, []))
    wal.mark_commit_sent("group_commit_b")
    store.close()
    store = BeStore(str(tmp_path / "be"))
    wal = GroupCommitWal(store)
    entries = wal.entries()
    assert [(e.label, e.commit_sent, e.rows) for e in entries] == [("group_commit_a", False, 0),
                                                                    ("group_commit_b", True, 1)]
    wal.delete("group_commit_b")
    assert [e.label for e in wal.entries()] == ["group_commit_a"]
    store.close()


def _one_column_schema() -> pa.Schema:
    return pa.schema([pa.field("id", pa.int64())])


# ---------------------------------------------------------------------- table properties
def test_group_commit_properties_parse_in_any_case_and_name_the_allowed_values():
    parsed = parse_table_properties({"group_commit": "ASYNC_MODE", "Group_Commit_Interval_MS": " 25 "})
    assert parsed == {"group_commit": GroupCommitMode.ASYNC, "group_commit_interval_ms": 25}
    with pytest.raises(InvalidArgument, match="allowed values are off_mode, sync_mode, async_mode"):
        parse_table_properties({"group_commit": "on"})
    for bad in ("0", "-5", "ten", "3600001"):
        with pytest.raises(InvalidArgument, match="'group_commit_interval_ms' = .*must be an integer"):
            parse_table_properties({"group_commit_interval_ms": bad})
    with pytest.raises(InvalidArgument, match="allowed: write_quorum, group_commit, group_commit_interval_ms"):
        parse_table_properties({"replication_num": "3"}, alter=True)


async def test_table_properties_default_show_alter_and_replay(tmp_path):
    journal, catalog = build(tmp_path, FakeClients())
    catalog.create_database("d")
    plain = await catalog.create_table("d", spec("p"))
    assert plain.group_commit is GroupCommitMode.OFF and plain.group_commit_interval_ms == 10
    table = await catalog.create_table("d", spec("t", properties={"group_commit": "Sync_Mode"}))
    assert table.properties()["group_commit"] == "sync_mode"
    catalog.alter_table("d", "t", {"group_commit_interval_ms": "50"})
    assert table.group_commit is GroupCommitMode.SYNC and table.group_commit_interval_ms == 50
    catalog.alter_table("d", "t", {"group_commit": "async_mode", "write_quorum": "ONE"})
    assert table.properties() == {"replication_num": "3", "write_quorum": "ONE", "group_commit": "async_mode",
                                  "group_commit_interval_ms": "50"}
    live = journal.dump()
    journal.close()
    journal2, catalog2 = build(tmp_path, FakeClients())
    assert journal2.dump() == live
    assert catalog2.db("d").tables["t"].properties()["group_commit"] == "async_mode"
    journal2.close()


# ---------------------------------------------------------------------- the FE: member labels
async def test_member_labels_are_used_by_the_group_txn_live_and_after_replay(tmp_path):
    journal, catalog, txns = build(tmp_path, FakeClients(), more=with_txns(lambda: NOW_MS))
    catalog.create_database("d")
    await catalog.create_table("d", spec("t"))
    db_id = catalog.db("d").db_id
    plain, _, _ = txns.begin("d", "t", "plain", 60, "BE: 1", STREAM)
    g = txns.begin_group("d", "t", "group_commit_1", 60, "BE: 1", STREAM, ["m1", "plain", "m2", "m1"])
    assert g.txn.member_labels == ["m1", "m2"]
    assert [(c.label, c.txn_id, c.status) for c in g.conflicts] == [
        ("plain", plain.txn_id, "PREPARE"), ("m1", g.txn.txn_id, "PREPARE")]
    assert "Label Already Exists: label [plain]" in g.conflicts[0].message
    conflicts = txns.add_members(g.txn.txn_id, ["m3", "m2"])
    assert [c.label for c in conflicts] == ["m2"] and g.txn.member_labels == ["m1", "m2", "m3"]
    with pytest.raises(AlreadyExists, match=rf"label \[m3\] has already been used, relate to txn \[{g.txn.txn_id}\]"):
        txns.begin("d", "t", "m3", 60, "BE: 1", STREAM)
    assert txns.begin_group("d", "t", "group_commit_2", 60, "BE: 1", STREAM, ["m1"]).txn is None  # nobody left
    # aborting the group frees every member label; another group holds m1 afterwards
    txns.abort(g.txn.txn_id, "a shared failure")
    assert txns.by_label(db_id, "m2").status is TxnStatus.ABORTED
    g2 = txns.begin_group("d", "t", "group_commit_3", 60, "BE: 1", STREAM, ["m1"])
    assert g2.txn is not None and txns.by_label(db_id, "m1") is g2.txn
    with pytest.raises(FailedPrecondition, match="members join only a PREPARE transaction"):
        txns.add_members(g.txn.txn_id, ["m9"])
    with pytest.raises(InvalidArgument, match="invalid label"):
        txns.add_members(g2.txn.txn_id, ["x" * 129])

    live = journal.dump()
    journal.close()
    journal2, catalog2, txns2 = build(tmp_path, FakeClients(), more=with_txns(lambda: NOW_MS))
    assert journal2.dump() == live
    assert txns2.by_label(db_id, "m1").txn_id == g2.txn.txn_id
    assert txns2.by_label(db_id, "m3").status is TxnStatus.ABORTED
    assert txns2.get(g.txn.txn_id).member_labels == ["m1", "m2", "m3"]
    journal2.close()


async def test_wal_replay_begin_takes_the_label_over(tmp_path):
    journal, catalog, txns = build(tmp_path, FakeClients(), more=with_txns(lambda: NOW_MS))
    catalog.create_database("d")
    await catalog.create_table("d", spec("t"))
    old = txns.begin_group("d", "t", "group_commit_w", 60, "BE: 1", STREAM, ["w1"]).txn
    with pytest.raises(AlreadyExists):  # without wal_replay the label is simply used
        txns.begin_group("d", "t", "group_commit_w", 60, "BE: 1", STREAM, ["w1"])
    new = txns.begin_group("d", "t", "group_commit_w", 60, "BE: 1", STREAM, ["w1"], wal_replay=True)
    assert old.status is TxnStatus.ABORTED and new.txn.member_labels == ["w1"] and not new.conflicts
    txns.commit(new.txn.txn_id, {}, {}, 0)
    again = txns.begin_group("d", "t", "group_commit_w", 60, "BE: 1", STREAM, ["w1"], wal_replay=True,
                             commit_may_have_been_sent=True)
    assert again.txn is None and again.existing is new.txn and again.existing.status is TxnStatus.COMMITTED
    journal.close()
