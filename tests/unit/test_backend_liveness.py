"""BE liveness through the journal (fe/system/backends.py), with no processes: the leader journals
liveness transitions only, a follower applies them and shows the leader's view without acting on
it, a promoted follower gives every BE heartbeat_timeout_second to heartbeat to it, a restarted
single FE waits for heartbeats, and the image carries the journaled view."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fe.persist.editlog import EditLog, Loaded, Record
from fe.persist.ids import IdAllocator
from fe.persist.journal import Journal, JournalReadOnly
from fe.system.backends import BackendRegistry, DiskInfo, Heartbeat
from fe.system.dynconfig import DynamicConfig

TIMEOUT_S = 5  # heartbeat_timeout_second's default


class Clock:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_700_000_000_000

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += int(seconds * 1000)


class MemStore:
    """A LogStore in memory that replicates like the etcd store (``advance``): what the leader
    wrote is in ``records``; a follower built on another one applies them."""

    def __init__(self, records: list[Record] | None = None, image: tuple[int, dict] | None = None) -> None:
        self.records = list(records or [])
        self.image = image
        self._next = 1

    def load(self) -> Loaded:
        seq = self.image[0] if self.image else 0
        tail = [r for r in self.records if r.seq > seq]
        self._next = (tail[-1].seq if tail else seq) + 1
        return Loaded(self.image[1] if self.image else None, seq, tail)

    @property
    def last_seq(self) -> int:
        return self._next - 1

    def prepare(self, op: str, data: dict[str, Any]) -> tuple[int, bytes]:
        seq, self._next = self._next, self._next + 1
        return seq, orjson.dumps({"op": op, "data": data})

    def write(self, records: list[tuple[int, bytes]]) -> None:
        for seq, payload in records:
            rec = orjson.loads(payload)
            self.records.append(Record(seq, rec["op"], rec["data"]))

    def advance(self, seq: int) -> None:
        self._next = seq + 1

    def checkpoint(self, state: dict[str, Any], seq: int) -> int:
        self.image = (seq, orjson.loads(orjson.dumps(state)))
        return 0

    def close(self) -> None:
        pass


class Fe:
    """The journaled domains a BackendRegistry lives with, on a fake clock."""

    def __init__(self, store, clock: Clock, *, writable: bool = True) -> None:
        self.store = store
        self.clock = clock
        self.journal = Journal(store, lambda: 0, writable=writable)
        self.ids = IdAllocator(self.journal)
        self.config = DynamicConfig(self.journal)
        self.backends = BackendRegistry(self.journal, self.ids,
                                        heartbeat_timeout_s=lambda: self.config.heartbeat_timeout_second,
                                        wall_ms=lambda: clock.wall, mono=lambda: clock.mono)
        self.events: list[tuple[int, str]] = []
        self.backends.add_listener(lambda be, event: self.events.append((be.backend_id, event)))
        for name, domain in (("ids", self.ids), ("config", self.config), ("backend", self.backends)):
            self.journal.register(name, domain)
        self.journal.replay()

    def heartbeat(self, backend_id: int, start_ms: int = 1) -> bool:
        be = self.backends.get(backend_id)
        return self.backends.heartbeat(Heartbeat(backend_id, "127.0.0.1", be.be_port, 0, start_ms,
                                                 DiskInfo(1000 + backend_id, 10, 990 - backend_id), 3))

    def follow(self, leader: Fe) -> None:
        """Apply what the leader wrote since this FE's position (its journal tail)."""
        self.journal.apply_replicated([r for r in leader.store.records if r.seq > self.journal.last_seq])

    def liveness_records(self) -> list[dict]:
        return [r.data for r in self.store.records if r.op == "backend.liveness"]

    def view(self) -> dict[int, tuple]:
        return {b.backend_id: (b.alive, b.err_msg, b.last_heartbeat_ms, b.disk) for b in self.backends.all()}


def leader_with(clock: Clock, bes: int) -> tuple[Fe, list[int]]:
    leader = Fe(MemStore(), clock)
    ids = [leader.backends.register(0, "127.0.0.1", 9060 + i, 0, 1) for i in range(bes)]
    for bid in ids:
        assert leader.heartbeat(bid)
    return leader, ids


def test_the_leader_journals_liveness_transitions_only():
    clock = Clock()
    leader, [bid] = leader_with(clock, 1)
    [alive] = leader.liveness_records()
    assert alive == {"backend_id": bid, "alive": True, "heartbeat_ms": clock.wall, "err_msg": "",
                     "disk": {"total_capacity": 1000 + bid, "data_used": 10, "avail_capacity": 990 - bid}}
    for _ in range(10):  # steady heartbeats: nothing journaled
        clock.advance(1.0)
        leader.heartbeat(bid)
        assert leader.backends.check_liveness() == []
    assert len(leader.liveness_records()) == 1
    last_heartbeat_ms = clock.wall

    clock.advance(TIMEOUT_S + 0.5)
    assert [b.backend_id for b in leader.backends.check_liveness()] == [bid]
    assert leader.backends.check_liveness() == []  # dead once, journaled once
    dead = leader.liveness_records()[1:]
    assert len(dead) == 1 and dead[0]["alive"] is False and dead[0]["heartbeat_ms"] == last_heartbeat_ms
    assert "heartbeat_timeout_second" in dead[0]["err_msg"]
    assert leader.heartbeat(bid)
    assert [r["alive"] for r in leader.liveness_records()] == [True, False, True]
    assert leader.events == [(bid, "alive"), (bid, "dead"), (bid, "alive")]


def test_a_follower_shows_the_leaders_view_and_never_acts_on_it():
    clock = Clock()
    leader, [a, b] = leader_with(clock, 2)
    follower = Fe(MemStore(), clock, writable=False)
    follower.follow(leader)
    assert follower.view() == leader.view()
    assert all(be.alive for be in follower.backends.all())

    clock.advance(TIMEOUT_S + 1)  # b stops heartbeating; the leader marks it dead
    leader.heartbeat(a)
    leader.backends.check_liveness()
    follower.follow(leader)
    assert follower.backends.get(a).alive and not follower.backends.get(b).alive
    assert follower.backends.get(b).err_msg == leader.backends.get(b).err_msg != ""
    assert follower.backends.get(b).last_heartbeat_ms == leader.backends.get(b).last_heartbeat_ms
    assert follower.backends.get(a).disk == leader.backends.get(a).disk

    # the follower hears no heartbeat: its liveness check neither marks nor journals anything
    written = follower.journal.last_seq
    clock.advance(10 * TIMEOUT_S)
    assert follower.backends.check_liveness() == []
    assert follower.backends.get(a).alive
    assert follower.journal.last_seq == written and follower.store.records == []
    with pytest.raises(JournalReadOnly):
        follower.heartbeat(a)
    # replayed transitions start no leader work: the listeners hear nothing on a follower
    assert follower.events == []
    assert leader.events[-1] == (b, "dead")


def test_a_promoted_follower_gives_every_be_the_timeout_to_heartbeat_to_it():
    clock = Clock()
    leader, [a, b, c] = leader_with(clock, 3)
    clock.advance(TIMEOUT_S + 1)
    leader.heartbeat(a)
    leader.heartbeat(b)
    leader.backends.check_liveness()  # c dead
    follower = Fe(MemStore(), clock, writable=False)
    follower.follow(leader)
    clock.advance(600)  # a quiet cluster: the last liveness record is long past when the leader dies

    follower.journal.set_writable(True)  # won the election, replayed to the end
    follower.backends.lead(inherit=True)
    assert follower.backends.check_liveness() == []
    assert [be.alive for be in follower.backends.all()] == [True, True, False]  # no all-dead gap
    assert "heartbeat_timeout_second" in follower.backends.get(c).err_msg
    assert follower.events == []

    clock.advance(TIMEOUT_S - 0.5)
    follower.heartbeat(a)  # a found the new leader: alive already, nothing to journal
    assert follower.store.records == []
    clock.advance(1.0)
    assert [be.backend_id for be in follower.backends.check_liveness()] == [b]  # b never came
    [dead] = follower.liveness_records()
    assert dead["backend_id"] == b and dead["alive"] is False
    assert follower.events == [(b, "dead")]
    follower.heartbeat(c)
    assert follower.backends.get(c).alive and follower.events[-1] == (c, "alive")


def test_a_restarted_single_fe_waits_for_heartbeats(tmp_path):
    clock = Clock()
    fe = Fe(EditLog(str(tmp_path)), clock)
    bid = fe.backends.register(0, "127.0.0.1", 9060, 0, 1)
    fe.heartbeat(bid)
    fe.journal.close()

    clock.advance(3600)  # down for an hour: the BE may be gone
    again = Fe(EditLog(str(tmp_path)), clock)
    assert again.backends.get(bid).alive  # replay restores the journaled view ...
    again.backends.lead(inherit=False)  # ... which an FE leading from its own start does not trust
    be = again.backends.get(bid)
    assert not be.alive and "since this FE started" in be.err_msg
    assert again.backends.alive() == []
    seq = again.journal.last_seq
    clock.advance(TIMEOUT_S + 1)
    assert again.backends.check_liveness() == [] and again.journal.last_seq == seq
    assert again.heartbeat(bid)
    assert again.backends.get(bid).alive and again.backends.get(bid).err_msg == ""
    assert again.journal.last_seq == seq + 1  # the BE is alive again: one record
    assert again.events == [(bid, "alive")]
    again.journal.close()


def test_the_image_carries_the_journaled_view():
    clock = Clock()
    leader, [a, b, c] = leader_with(clock, 3)
    clock.advance(TIMEOUT_S + 1)
    leader.heartbeat(a)
    leader.heartbeat(c)
    leader.backends.check_liveness()  # b dead
    leader.journal.checkpoint()
    image = leader.store.image
    assert image is not None
    clock.advance(TIMEOUT_S + 1)
    leader.heartbeat(a)
    leader.heartbeat(b)
    leader.backends.check_liveness()  # b alive again, c dead: after the image
    for _ in range(3):
        clock.advance(1)
        leader.heartbeat(a)  # the leader's own LastHeartbeat moves on; the journal's does not

    from_image = Fe(MemStore(leader.store.records, image), Clock(), writable=False)
    from_journal = Fe(MemStore(leader.store.records), Clock(), writable=False)
    assert from_image.journal.replayed < from_journal.journal.replayed
    assert from_image.view() == from_journal.view()
    assert from_image.journal.dump()["backend"] == from_journal.journal.dump()["backend"]
    assert {k: v[:2] for k, v in from_image.view().items()} == {k: v[:2] for k, v in leader.view().items()}
    assert [be.alive for be in from_image.backends.all()] == [True, True, False]
    # the image holds the journaled view (each BE's last transition), not the per-heartbeat soft state
    assert from_image.backends.get(a).last_heartbeat_ms < leader.backends.get(a).last_heartbeat_ms
