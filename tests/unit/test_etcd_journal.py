"""The journal in etcd against a real single etcd: group commit into fenced transactions, fencing
refusals, the follower tail, compaction, and leader election between two in-process FEs."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from aetcd import rpc

from fe.ha.etcd import EtcdFrontend
from fe.ha.role import FeRole, FrontendInfo
from fe.ha.state import HaPhase
from fe.ha.tail import JournalBehindCompaction, JournalTail
from fe.persist.etcdclient import EtcdLayout, EtcdSession, compare_create, op_put, prefix_end
from fe.persist.etcdlog import EtcdEditLog, Fence, LeadershipLost
from fe.persist.groupcommit import JournalWriteFailed
from fe.persist.journal import Journal, JournalReadOnly
from tests.etcd_support import etcd_fixture
from tests.support import eventually

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
             lease_s: int = 2) -> tuple[EtcdFrontend, Counter, Journal]:
    session = EtcdSession((etcd.endpoint,))
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

    # fe0 freezes (its checks stop: no keepalive); its lease expires and fe1 takes over
    frozen_at = time.monotonic()
    fe0._check_task.cancel()
    await eventually(lambda: fe1.phase is HaPhase.LEADER, timeout_s=10, what="fe1 to take over")
    assert time.monotonic() - frozen_at < 6
    assert c1.values == list(range(30))
    j1.log("c.add", {"v": 30})
    await j1.durable()

    # fe0 wakes and writes: refused (its lease ran out), it steps down, nothing written
    j0.log("c.add", {"v": 666})
    with pytest.raises(JournalWriteFailed):
        await j0.durable()
    await eventually(lambda: steps0, timeout_s=5, what="fe0 to step down")
    assert fe0.phase is HaPhase.STEPPED_DOWN
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
    first._check_task.cancel()  # killed: no keepalive, no revoke
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
