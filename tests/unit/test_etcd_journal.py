"""The journal in etcd against a real single etcd: group commit into fenced transactions, fencing
refusals, the follower tail, compaction, and leader election between two in-process FEs."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import grpc
import pytest
from aetcd import rpc

from fe.ha.etcd import EtcdFrontend
from fe.ha.role import FeRole, FrontendInfo
from fe.ha.state import HaPhase
from fe.ha.tail import JournalBehindCompaction, JournalTail
from fe.persist.editlog import Record
from fe.persist.etcdclient import EtcdLayout, EtcdSession, compare_create, is_transient, op_put, prefix_end
from fe.persist.etcdlog import EtcdEditLog, Fence, LeadershipLost
from fe.persist.groupcommit import JournalWriteFailed
from fe.persist.journal import Journal, JournalReadOnly
from tests.etcd_support import etcd_fixture
from tests.support import eventually, pause

_ids = itertools.count()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    yield from etcd_fixture(tmp_path_factory)


class Counter:
    """A journal domain: the values logged, in order."""

    def __init__(self) -> None:
        self.values: list[int] = []

    def apply(self, verb: str, data: dict[str, Any]) -> int:
        assert verb == "add"
        self.values.append(data["v"])
        return len(self.values)

    def dump(self) -> dict[str, Any]:
        return {"values": list(self.values)}

    def load(self, state: dict[str, Any]) -> None:
        self.values = list(state["values"])


class Fe:
    """A journal on etcd for one test FE (no gRPC, no domains but a counter)."""

    def __init__(self, etcd, meta_dir, layout: EtcdLayout, *, writable: bool, checkpoint_every: int = 0) -> None:
        self.session = EtcdSession((etcd.endpoint,))
        self.store = EtcdEditLog(str(meta_dir), self.session, layout)
        self.fatals: list[BaseException] = []
        self.journal = Journal(self.store, lambda: checkpoint_every, self.fatals.append, writable=writable,
                               max_group_records=1000)
        self.counter = Counter()
        self.journal.register("c", self.counter)
        self.journal.replay()
        self.store.bind(asyncio.get_running_loop())

    async def lead(self, ttl_s: int = 10) -> tuple[int, int]:
        """Create the leader key on a fresh lease; fence the store on it."""
        lay = self.store.layout
        lease = await self.session.grant(ttl_s)
        resp = await self.session.txn(rpc.TxnRequest(compare=[compare_create(lay.leader_key, 0)],
                                                     success=[op_put(lay.leader_key, b"test", lease=lease)]))
        assert resp.succeeded
        self.store.fence(Fence(resp.header.revision, lambda: time.monotonic() + 60))
        return lease, resp.header.revision

    async def keys(self) -> list[int]:
        lay = self.store.layout
        resp = await self.session.range(lay.journal_prefix, prefix_end(lay.journal_prefix))
        return [lay.journal_seq(kv.key) for kv in resp.kvs]

    async def close(self) -> None:
        self.journal.close()
        await self.session.close()


def layout() -> EtcdLayout:
    return EtcdLayout(f"t{next(_ids)}-{time.monotonic_ns()}")


async def test_group_commit_writes_fenced_transactions(etcd, tmp_path):
    lay = layout()
    leader = Fe(etcd, tmp_path / "a", lay, writable=True)
    await leader.lead()
    for v in range(500):
        leader.journal.log("c.add", {"v": v})
    await leader.journal.durable()
    assert await leader.keys() == list(range(1, 501))
    assert leader.journal.durable_seq == 500
    assert leader.store.txns < 500  # grouped: far fewer transactions than records
    assert leader.journal.write_groups < 500
    assert not leader.fatals
    await leader.close()


async def test_a_writer_whose_lease_expired_is_refused_and_writes_nothing(etcd, tmp_path):
    lay = layout()
    leader = Fe(etcd, tmp_path / "a", lay, writable=True)
    lease, _ = await leader.lead(ttl_s=5)
    leader.journal.log("c.add", {"v": 1})
    await leader.journal.durable()
    await leader.session.revoke(lease)  # what etcd does when the lease expires: the key goes
    leader.journal.log("c.add", {"v": 2})
    with pytest.raises(JournalWriteFailed):
        await leader.journal.durable()
    await eventually(lambda: leader.fatals, timeout_s=5, what="on_fatal")  # runs after the waiters wake
    assert isinstance(leader.fatals[0], LeadershipLost)
    assert "refused by fencing" in str(leader.fatals[0])
    assert await leader.keys() == [1]
    await leader.close()


async def test_an_old_leader_is_refused_once_another_leads(etcd, tmp_path):
    lay = layout()
    old = Fe(etcd, tmp_path / "a", lay, writable=True)
    lease, _ = await old.lead(ttl_s=5)
    await old.session.revoke(lease)
    new = Fe(etcd, tmp_path / "b", lay, writable=True)
    await new.lead()
    new.journal.log("c.add", {"v": 10})
    await new.journal.durable()
    old.journal.log("c.add", {"v": 99})  # still thinks it leads: seq 1 too
    with pytest.raises(JournalWriteFailed):
        await old.journal.durable()
    await eventually(lambda: old.fatals, timeout_s=5, what="on_fatal")
    assert isinstance(old.fatals[0], LeadershipLost)
    resp = await new.session.range(lay.journal_key(1))
    assert b'"v":10' in resp.kvs[0].value  # the new leader's record, untouched
    await old.close()
    await new.close()


async def test_a_lease_run_out_on_the_local_clock_writes_nothing(etcd, tmp_path):
    """A leader SIGSTOPped past its lease: its deadline is behind it when it wakes, so the
    record is refused without even asking etcd (which may not have expired the lease yet)."""
    lay = layout()
    leader = Fe(etcd, tmp_path / "a", lay, writable=True)
    _, revision = await leader.lead()
    leader.store.fence(Fence(revision, lambda: time.monotonic() - 0.001))
    leader.journal.log("c.add", {"v": 1})
    with pytest.raises(JournalWriteFailed):
        await leader.journal.durable()
    await eventually(lambda: leader.fatals, timeout_s=5, what="on_fatal")
    assert "ran out on this FE's clock" in str(leader.fatals[0])
    assert await leader.keys() == []
    await leader.close()


async def test_a_follower_never_journals(etcd, tmp_path):
    follower = Fe(etcd, tmp_path / "f", layout(), writable=False)
    with pytest.raises(JournalReadOnly, match="not the leader"):
        follower.journal.log("c.add", {"v": 1})
    assert follower.journal.last_seq == 0
    await follower.close()


async def test_follower_tail_applies_the_same_records_in_order(etcd, tmp_path):
    lay = layout()
    leader = Fe(etcd, tmp_path / "a", lay, writable=True)
    await leader.lead()
    for v in range(50):  # before the follower starts: range reads
        leader.journal.log("c.add", {"v": v})
    await leader.journal.durable()
    follower = Fe(etcd, tmp_path / "f", lay, writable=False, checkpoint_every=40)
    tail = JournalTail(follower.store, follower.session, follower.journal.apply_replicated,
                       lambda: follower.journal.last_seq)
    task = asyncio.create_task(tail.run())
    try:
        await eventually(lambda: follower.journal.last_seq == 50, timeout_s=10, what="the catch-up")
        for v in range(50, 300):  # while it follows: the watch
            leader.journal.log("c.add", {"v": v})
            if v % 50 == 0:
                await leader.journal.durable()
        await leader.journal.durable()
        await eventually(lambda: follower.journal.last_seq == 300, timeout_s=10, what="the watch")
        assert follower.counter.values == leader.counter.values == list(range(300))
        assert follower.journal.durable_seq == 300
        assert tail.watch_records > 0
        await eventually(lambda: follower.store.image_seq > 0, timeout_s=10, what="a follower checkpoint")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await follower.journal.drain()
    await follower.close()
    # restarted: its own image, then the records after it from etcd
    restarted = Fe(etcd, tmp_path / "f", lay, writable=False)
    assert restarted.journal.last_seq == restarted.store.image_seq > 0
    await JournalTail(restarted.store, restarted.session, restarted.journal.apply_replicated,
                      lambda: restarted.journal.last_seq).catch_up()
    assert restarted.counter.values == list(range(300))
    await leader.close()
    await restarted.close()


async def test_compaction_below_every_image_and_an_fe_behind_it(etcd, tmp_path):
    lay = layout()
    leader = Fe(etcd, tmp_path / "a", lay, writable=True)
    await leader.lead()
    for v in range(20):
        leader.journal.log("c.add", {"v": v})
    await leader.journal.durable()
    assert await leader.store.compact_through(12) == 12
    assert await leader.keys() == list(range(13, 21))
    assert await leader.store.compacted_through() == 12
    # an FE whose image is older than what is left cannot catch up alone: a clear error
    stale = Fe(etcd, tmp_path / "s", lay, writable=False)
    tail = JournalTail(stale.store, stale.session, stale.journal.apply_replicated, lambda: stale.journal.last_seq)
    with pytest.raises(JournalBehindCompaction, match="copy the newest image"):
        await tail.catch_up()
    await stale.close()
    await leader.close()


def frontend(etcd, meta_dir, lay: EtcdLayout, name: str, steps: list[str],
             lease_s: int = 2, rpc_timeout_s: float = 2.0) -> tuple[EtcdFrontend, Counter, Journal]:
    session = EtcdSession((etcd.endpoint,), timeout_s=rpc_timeout_s)
    store = EtcdEditLog(str(meta_dir), session, lay)
    holder: dict[str, EtcdFrontend] = {}
    journal = Journal(store, lambda: 0, lambda exc: holder["ha"].fatal(exc), writable=False)
    counter = Counter()
    journal.register("c", counter)
    journal.replay()
    ha = EtcdFrontend(info=FrontendInfo(name=name, host="127.0.0.1", rpc_port=1000 + int(name[2:])),
                      frontends=(("fe0", "127.0.0.1:1000"), ("fe1", "127.0.0.1:1001")), session=session,
                      store=store, journal=journal, lease_s=lambda: lease_s, step_down=steps.append)
    holder["ha"] = ha
    return ha, counter, journal


async def test_election_failover_and_fencing_between_two_fes(etcd, tmp_path):
    lay = layout()
    steps0: list[str] = []
    steps1: list[str] = []
    fe0, c0, j0 = frontend(etcd, tmp_path / "fe0", lay, "fe0", steps0)
    roles: list[FeRole] = []
    fe0.add_listener(roles.append)
    await fe0.start()
    await eventually(lambda: fe0.phase is HaPhase.LEADER, timeout_s=10, what="fe0 to lead")
    assert roles == [FeRole.LEADER]
    fe1, c1, j1 = frontend(etcd, tmp_path / "fe1", lay, "fe1", steps1)
    await fe1.start()
    assert fe1.role is FeRole.FOLLOWER
    await eventually(lambda: fe1.leader_address == "127.0.0.1:1000", timeout_s=10, what="fe1 to know the leader")
    for v in range(30):
        j0.log("c.add", {"v": v})
    await j0.durable()
    assert await fe1.wait_replayed(30, timeout_s=10)
    assert c1.values == c0.values
    with pytest.raises(JournalReadOnly):
        j1.log("c.add", {"v": -1})
    await eventually(lambda: {f.name: f.alive for f in fe1.frontends()} == {"fe0": True, "fe1": True},
                     timeout_s=10, what="both FEs registered")
    assert [f.name for f in fe1.frontends() if f.is_leader] == ["fe0"]

    # fe0 freezes (its checks and keepalives stop); its lease expires and fe1 takes over
    frozen_at = time.monotonic()
    freeze(fe0)
    await eventually(lambda: fe1.phase is HaPhase.LEADER, timeout_s=10, what="fe1 to take over")
    assert time.monotonic() - frozen_at < 6
    assert c1.values == list(range(30))
    j1.log("c.add", {"v": 30})
    await j1.durable()

    # fe0 wakes: before any check of its own runs, it no longer claims to lead (its lease ran out on
    # its own clock): not to its callers, not in SHOW FRONTENDS, and it names no leader it cannot vouch for
    assert fe0.phase is HaPhase.LEADER and fe0.role is FeRole.FOLLOWER
    assert fe0.leader_address is None
    assert [f.name for f in fe0.frontends() if f.is_leader] == []
    # ... and it writes: refused (its lease ran out), it steps down, nothing written
    j0.log("c.add", {"v": 666})
    with pytest.raises(JournalWriteFailed):
        await j0.durable()
    await eventually(lambda: steps0, timeout_s=5, what="fe0 to step down")
    assert fe0.phase is HaPhase.STEPPED_DOWN
    # until it has re-executed itself it names no leader, least of all itself
    assert fe0.role is FeRole.FOLLOWER and fe0.leader_address is None
    assert [f.name for f in fe0.frontends() if f.is_leader] == []
    resp = await fe1._session.range(lay.journal_key(31))
    assert b'"v":30' in resp.kvs[0].value
    assert not steps1
    fe0.closing = True
    await fe0.close()
    await fe1.close()
    j0.close()
    j1.close()


async def test_a_restarted_leader_does_not_wait_for_its_previous_lease(etcd, tmp_path):
    """SIGKILL, restart at once: the new run finds the leader key of its previous run, whose lease
    nobody renews any more, revokes it and the election goes on without waiting a lease."""
    lay = layout()
    steps: list[str] = []
    first, _, j1 = frontend(etcd, tmp_path / "fe0", lay, "fe0", steps, lease_s=30)
    await first.start()
    await eventually(lambda: first.phase is HaPhase.LEADER, timeout_s=10, what="fe0 to lead")
    j1.log("c.add", {"v": 1})
    await j1.durable()
    freeze(first)  # killed: no keepalive, no revoke
    await first._session.close()
    again, counter, j2 = frontend(etcd, tmp_path / "fe0", lay, "fe0", steps, lease_s=30)
    restarted_at = time.monotonic()
    await again.start()
    await eventually(lambda: again.phase is HaPhase.LEADER, timeout_s=10, what="the new run to lead")
    assert time.monotonic() - restarted_at < 5  # not the 30 s lease of the previous run
    assert counter.values == [1]
    assert not steps
    await again.close()
    j2.close()


def freeze(fe: EtcdFrontend) -> None:
    """The FE stops talking to etcd (as if SIGSTOPped): no check, no keepalive."""
    for task in (fe._check_task, getattr(fe, "_lease_task", None)):
        if task is not None:
            task.cancel()


async def test_an_fe_behind_a_compaction_that_left_no_record_is_told_so(etcd, tmp_path):
    """Every FE's image covered the last record, so compaction emptied the journal: an FE with an
    older image (or none) finds no record after its position, and must not take that for "caught
    up" (it would serve, and could lead from, a state that misses the compacted records)."""
    lay = layout()
    leader = Fe(etcd, tmp_path / "a", lay, writable=True)
    await leader.lead()
    for v in range(20):
        leader.journal.log("c.add", {"v": v})
    await leader.journal.durable()
    await leader.store.compact_through(20)
    assert await leader.keys() == []
    stale = Fe(etcd, tmp_path / "s", lay, writable=False)
    tail = JournalTail(stale.store, stale.session, stale.journal.apply_replicated, lambda: stale.journal.last_seq)
    with pytest.raises(JournalBehindCompaction, match="compacted through seq 20"):
        await tail.catch_up()
    assert stale.counter.values == []
    await stale.close()
    await leader.close()


async def test_the_compaction_mark_never_goes_back(etcd, tmp_path):
    """A new leader (its own count of what it compacted starts at 0) whose floor is lower than what
    was compacted (an FE came back with an older image) must not lower ``journal_compacted``:
    an FE between the two would then be told of a hole instead of JournalBehindCompaction."""
    lay = layout()
    leader = Fe(etcd, tmp_path / "a", lay, writable=True)
    await leader.lead()
    for v in range(20):
        leader.journal.log("c.add", {"v": v})
    await leader.journal.durable()
    assert await leader.store.compact_through(12) == 12
    assert await leader.store.compact_through(5) == 0
    assert await leader.store.compacted_through() == 12
    stale = Fe(etcd, tmp_path / "s", lay, writable=False)
    stale.journal.apply_replicated([Record(seq, "c.add", {"v": seq - 1}) for seq in range(1, 9)])
    tail = JournalTail(stale.store, stale.session, stale.journal.apply_replicated, lambda: stale.journal.last_seq)
    with pytest.raises(JournalBehindCompaction, match="compacted through seq 12"):
        await tail.catch_up()
    await stale.close()
    await leader.close()


async def test_the_image_published_is_the_one_that_was_sent(etcd, tmp_path):
    """A checkpoint that finishes while the member key is being written: the FE must remember the
    image seq it sent, not the newer one, or the newer one is never published (and compaction
    waits for this FE's next checkpoint)."""
    lay = layout()
    fe0, _, j0 = frontend(etcd, tmp_path / "fe0", lay, "fe0", [])
    await fe0._session.connect()
    await fe0._grant()
    fe0._store.image_seq = 30
    real_txn = fe0._session.txn

    async def txn_during_a_checkpoint(request, timeout_s=None):
        resp = await real_txn(request, timeout_s)
        fe0._store.image_seq = 40  # the checkpoint thread, meanwhile
        return resp

    fe0._session.txn = txn_during_a_checkpoint
    await fe0._put_member()
    fe0._session.txn = real_txn
    await fe0._put_member()
    resp = await fe0._session.range(lay.image_key("fe0"))
    assert resp.kvs[0].value == b"40"
    fe0.closing = True
    await fe0.close()
    j0.close()


async def test_a_slow_etcd_call_does_not_cost_the_leader_its_lease(etcd, tmp_path):
    """etcd members without a raft leader hold writes and reads until their own timeout while a
    lease keepalive goes through as soon as a leader is back (seen when the etcd leader was
    SIGKILLed): the FE renews its lease on its own, not behind the other calls of its check."""
    lay = layout()
    steps: list[str] = []
    fe0, _, j0 = frontend(etcd, tmp_path / "fe0", lay, "fe0", steps, lease_s=2)
    await fe0.start()
    await eventually(lambda: fe0.phase is HaPhase.LEADER, timeout_s=10, what="fe0 to lead")
    real_txn = fe0._session.txn
    slow = {"until": 0.0}

    async def txn(request, timeout_s=None):
        if not request.compare and time.monotonic() < slow["until"]:  # member key and view reads
            await pause(slow["until"] - time.monotonic())
        return await real_txn(request, timeout_s)

    fe0._session.txn = txn
    slow["until"] = time.monotonic() + 5  # two and a half leases
    await pause(5.5)
    assert fe0.phase is HaPhase.LEADER and not steps, fe0.machine.history
    j0.log("c.add", {"v": 1})
    await j0.durable()
    fe0.closing = True
    await fe0.close()
    j0.close()


async def test_a_keepalive_without_an_answer_is_tried_again_within_the_lease(etcd, tmp_path):
    """A keepalive sent to an etcd member that forwards it to its dead raft leader gets no answer
    at all, even after a new etcd leader is elected (seen with etcd 3.4 when its leader member was
    SIGKILLed: the first try hangs until its deadline, the next one answers at once). A try must
    be given up and sent again well within the lease, whatever the RPC timeout."""
    lay = layout()
    steps: list[str] = []
    fe0, _, j0 = frontend(etcd, tmp_path / "fe0", lay, "fe0", steps, lease_s=3, rpc_timeout_s=6)
    await fe0.start()
    await eventually(lambda: fe0.phase is HaPhase.LEADER, timeout_s=10, what="fe0 to lead")
    real_keepalive = fe0._session.keepalive
    election = {"until": 0.0}

    async def keepalive(lease_id, timeout_s=None):
        if time.monotonic() < election["until"]:  # sent while etcd elects: no answer, ever
            await pause(timeout_s or fe0._session.timeout_s)
            raise TimeoutError("no answer")
        return await real_keepalive(lease_id, timeout_s)

    fe0._session.keepalive = keepalive
    election["until"] = time.monotonic() + 1.5
    await pause(4)
    assert fe0.phase is HaPhase.LEADER and not steps, fe0.machine.history
    fe0.closing = True
    await fe0.close()
    j0.close()


async def test_a_leader_cut_off_from_etcd_stops_leading_at_its_lease_deadline(etcd, tmp_path):
    """etcd hangs (SIGSTOP): the leader's keepalive gets no answer. It must stop acting as the
    leader when its lease runs out on its own clock (another FE may lead once etcd expires the
    lease), not when a hung call times out."""
    lay = layout()
    steps: list[str] = []
    fe0, _, j0 = frontend(etcd, tmp_path / "fe0", lay, "fe0", steps, lease_s=2, rpc_timeout_s=6)
    await fe0.start()
    await eventually(lambda: fe0.phase is HaPhase.LEADER, timeout_s=10, what="fe0 to lead")
    etcd.pause()
    try:
        paused_at = time.monotonic()
        await eventually(lambda: fe0.phase is not HaPhase.LEADER, timeout_s=10, what="fe0 to stop leading")
        stopped_at = time.monotonic()
        deadline = fe0._lease.deadline
    finally:
        etcd.resume()
    assert deadline <= paused_at + 2
    assert stopped_at - deadline < 0.5, f"led {stopped_at - deadline:.1f} s past its lease"
    assert fe0.role is FeRole.FOLLOWER
    await eventually(lambda: steps, timeout_s=10, what="fe0 to step down")
    fe0.closing = True
    await fe0.close()
    j0.close()


async def test_a_follower_whose_tail_falls_behind_compaction_steps_down(etcd, tmp_path):
    """The records a follower still needs were compacted away under it (its image key said
    otherwise): its tail cannot go on. The FE must not keep serving a state that stopped moving:
    it restarts (and then fails with the JournalBehindCompaction message)."""
    lay = layout()
    steps0: list[str] = []
    steps1: list[str] = []
    fe0, _, j0 = frontend(etcd, tmp_path / "fe0", lay, "fe0", steps0)
    await fe0.start()
    await eventually(lambda: fe0.phase is HaPhase.LEADER, timeout_s=10, what="fe0 to lead")
    fe1, _, j1 = frontend(etcd, tmp_path / "fe1", lay, "fe1", steps1)
    await fe1.start()
    for v in range(5):
        j0.log("c.add", {"v": v})
    await j0.durable()
    assert await fe1.wait_replayed(5, timeout_s=10)
    freeze(fe1)  # away for a moment
    fe1._tail_task.cancel()
    await asyncio.gather(fe1._tail_task, return_exceptions=True)
    for v in range(5, 10):
        j0.log("c.add", {"v": v})
    await j0.durable()
    await fe0._store.compact_through(10)  # not what fe0 would do: fe1's image key is older
    fe1._tail_task = asyncio.create_task(fe1._run_tail())
    await eventually(lambda: steps1, timeout_s=10, what="fe1 to step down")
    assert "copy the newest image" in steps1[0]
    for fe, j in ((fe0, j0), (fe1, j1)):
        fe.closing = True
        await fe.close()
        j.close()


async def test_a_step_down_while_promoting_never_makes_the_journal_writable(etcd, tmp_path):
    lay = layout()
    steps: list[str] = []
    fe0, _, j0 = frontend(etcd, tmp_path / "fe0", lay, "fe0", steps)
    real_catch_up = fe0._tail.catch_up

    async def catch_up():
        revision = await real_catch_up()
        if fe0.phase is HaPhase.PROMOTING:
            fe0.step_down("the lease ran out during the replay")
        return revision

    fe0._tail.catch_up = catch_up
    await fe0.start()
    await eventually(lambda: steps, timeout_s=10, what="fe0 to step down")
    assert fe0.phase is HaPhase.STEPPED_DOWN
    assert not j0.writable and fe0._store._fence is None
    assert [p for p, _ in fe0.machine.history] == [HaPhase.INIT, HaPhase.FOLLOWER, HaPhase.PROMOTING,
                                                   HaPhase.STEPPED_DOWN]
    fe0.closing = True
    await fe0.close()
    j0.close()


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.mark.parametrize(("code", "details", "transient"), [
    (grpc.StatusCode.UNAVAILABLE, "etcdserver: leader changed", True),
    (grpc.StatusCode.UNAVAILABLE, "etcdserver: request timed out", True),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", True),
    # the client's deadline reached etcd first: etcd answers with its context's error
    (grpc.StatusCode.UNKNOWN, "context deadline exceeded", True),
    (grpc.StatusCode.UNKNOWN, "context canceled", True),
    # etcd 3.4 returns raft's ErrProposalDropped as is (no leader, or a leadership transfer)
    (grpc.StatusCode.UNKNOWN, "raft proposal dropped", True),
    (grpc.StatusCode.UNKNOWN, "something else", False),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: too many requests", True),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded", False),
    (grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found", False),
    (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: request is too large", False),
])
def test_etcd_errors_that_are_worth_another_try(code, details, transient):
    assert is_transient(_rpc_error(code, details)) is transient


class FreezableProxy:
    """A TCP proxy to etcd that can stop forwarding, its connections left open: what an etcd
    member looks like to its clients once SIGSTOPped (the kernel accepts, nothing answers)."""

    def __init__(self, target: str) -> None:
        self._host, _, port = target.rpartition(":")
        self._port = int(port)
        self.thawed = asyncio.Event()
        self.thawed.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self._host, self._port)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self.thawed.wait()
                dst.write(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            dst.close()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def test_a_session_leaves_an_etcd_member_that_hangs(etcd):
    """An etcd member SIGSTOPped (or cut off one way) keeps its connection open: nothing answers,
    and gRPC's pick_first stays on that connection (a new channel in the same order even reuses
    it: gRPC shares subchannels between channels). After calls that got no answer the session
    dials the members again, another one first."""
    proxy = FreezableProxy(etcd.endpoint)
    session = EtcdSession((await proxy.start(), etcd.endpoint), timeout_s=0.5)
    try:
        await session.put(b"/hung-member-test", b"through the proxy")
        proxy.thawed.clear()  # the member the session talks to hangs

        async def put() -> bool:
            try:
                await session.put(b"/hung-member-test", b"x")
            except Exception as exc:  # noqa: BLE001 - the probe: what failed is in the message below
                assert is_transient(exc), exc
                return False
            return True

        started = time.monotonic()
        while not await put():
            assert time.monotonic() - started < 5, "every call still goes to the member that hangs"
        assert session.redials >= 1
    finally:
        proxy.thawed.set()
        await session.close()
        await proxy.close()


async def test_calls_in_flight_when_the_session_redials_fail_transient(etcd):
    """Closing a gRPC channel makes its calls in flight raise CancelledError in whoever awaits them:
    a journal write would look like its FE stopping, a follower's tail would end. They must fail
    with an error that is tried again, while a task that is itself cancelled still is."""
    proxy = FreezableProxy(etcd.endpoint)
    session = EtcdSession((await proxy.start(), etcd.endpoint), timeout_s=5)
    lay = layout()
    try:
        await session.put(b"/redial-test", b"through the proxy")
        proxy.thawed.clear()

        async def watch() -> None:
            request = rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
                key=lay.journal_prefix, range_end=prefix_end(lay.journal_prefix)))
            async for _ in session.watch(iter([request])):
                pass

        calls = [asyncio.create_task(session.put(b"/redial-test", b"x")), asyncio.create_task(watch()),
                 asyncio.create_task(session.keepalive(1))]
        cancelled = asyncio.create_task(session.put(b"/redial-test", b"y"))
        await pause(0.2)
        cancelled.cancel()
        assert await session.redial("a test")
        for call in calls:
            exc = (await asyncio.gather(call, return_exceptions=True))[0]
            assert isinstance(exc, Exception) and is_transient(exc), repr(exc)
        assert cancelled.cancelled()
        await session.put(b"/redial-test", b"on the new channel")
    finally:
        proxy.thawed.set()
        await session.close()
        await proxy.close()


def _no_answer() -> grpc.aio.AioRpcError:
    return _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")


async def test_a_campaign_that_won_without_an_answer_still_leads(etcd, tmp_path):
    """The transaction that created the leader key went through, its answer did not (a timeout,
    a member that died or hung): the FE then finds the key with its own name and its own lease.
    It won: it must lead, not wait for a leader that is itself (nobody would ever lead: it keeps
    that lease alive)."""
    lay = layout()
    steps: list[str] = []
    fe0, _, j0 = frontend(etcd, tmp_path / "fe0", lay, "fe0", steps)
    real_txn = fe0._session.txn
    lost = []

    async def txn(request, timeout_s=None):
        resp = await real_txn(request, timeout_s)
        if request.compare and request.compare[0].key == lay.leader_key and request.compare[0].create_revision == 0 \
                and not lost:
            lost.append(resp.succeeded)
            raise _no_answer()
        return resp

    fe0._session.txn = txn
    await fe0.start()
    await eventually(lambda: lost, timeout_s=10, what="the campaign")
    assert lost == [True]
    await eventually(lambda: fe0.phase is HaPhase.LEADER, timeout_s=10, what="fe0 to lead")
    j0.log("c.add", {"v": 1})
    await j0.durable()
    assert not steps
    fe0.closing = True
    await fe0.close()
    j0.close()


async def test_a_compaction_applied_late_never_lowers_the_mark(etcd, tmp_path):
    """A compaction whose answer was lost may still be applied later (a hung member wakes and
    runs what it had received), after a newer compaction: it must not lower the mark."""
    lay = layout()
    leader = Fe(etcd, tmp_path / "a", lay, writable=True)
    await leader.lead()
    for v in range(20):
        leader.journal.log("c.add", {"v": v})
    await leader.journal.durable()
    real_txn = leader.session.txn
    held: list[rpc.TxnRequest] = []

    async def txn(request, timeout_s=None):
        if not held and any(op.HasField("request_delete_range") for op in request.success):
            held.append(request)  # sent, not answered: applied later
            raise _no_answer()
        return await real_txn(request, timeout_s)

    leader.session.txn = txn
    assert await leader.store.compact_through(12) == 12  # the retry went through
    assert await leader.store.compact_through(18) == 6
    await real_txn(held[0])  # the first try, at last
    assert await leader.store.compacted_through() == 18
    await leader.close()
