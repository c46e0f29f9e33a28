"""The FE role state machine and the lease clock: pure, no etcd."""

from __future__ import annotations

import pytest

from fe.ha.role import FeRole
from fe.ha.state import HaPhase, IllegalTransition, LeaseClock, RoleMachine


def test_init_follower_promoting_leader_then_step_down():
    m = RoleMachine()
    assert m.phase is HaPhase.INIT and m.phase.role is FeRole.FOLLOWER
    m.caught_up()
    assert m.phase is HaPhase.FOLLOWER and not m.may_write and not m.holds_leader_key
    m.won_election()
    assert m.phase is HaPhase.PROMOTING and m.holds_leader_key and not m.may_write
    assert m.phase.role is FeRole.FOLLOWER  # not acting before the journal is read to its end
    m.replayed_to_end()
    assert m.phase is HaPhase.LEADER and m.may_write and m.phase.role is FeRole.LEADER
    assert m.step_down("fencing refused a write")
    assert m.phase is HaPhase.STEPPED_DOWN and m.phase.is_final and m.reason == "fencing refused a write"
    assert not m.step_down("again")  # once
    assert [p for p, _ in m.history] == [HaPhase.INIT, HaPhase.FOLLOWER, HaPhase.PROMOTING, HaPhase.LEADER,
                                         HaPhase.STEPPED_DOWN]


def test_promoting_can_lose_the_lease():
    m = RoleMachine()
    m.caught_up()
    m.won_election()
    assert m.step_down("lease ran out while replaying")
    assert m.phase is HaPhase.STEPPED_DOWN


@pytest.mark.parametrize("move", ["won_election", "replayed_to_end"])
def test_no_leadership_without_catching_up(move):
    m = RoleMachine()
    with pytest.raises(IllegalTransition, match="INIT -> "):
        getattr(m, move)()


def test_a_follower_cannot_skip_the_replay():
    m = RoleMachine()
    m.caught_up()
    with pytest.raises(IllegalTransition, match="FOLLOWER -> LEADER is not allowed"):
        m.replayed_to_end()


def test_stepped_down_is_final():
    m = RoleMachine()
    m.step_down("etcd unreachable at start")
    for move in ("caught_up", "won_election", "replayed_to_end"):
        with pytest.raises(IllegalTransition, match="allowed: none"):
            getattr(m, move)()


def test_lease_clock_deadline_from_the_send_time():
    clock = LeaseClock()
    assert not clock.holds(0.0)
    clock.granted(sent_at=10.0, ttl_s=3)
    assert clock.holds(12.9) and not clock.holds(13.0)
    assert clock.renewed(sent_at=12.0, ttl_s=3)  # answered late: still counted from the send
    assert clock.deadline == 15.0
    assert clock.renewed(sent_at=11.0, ttl_s=3)  # an older answer never shortens it
    assert clock.deadline == 15.0
    assert clock.remaining(14.0) == 1.0
    # a process stopped past its deadline finds the lease gone as soon as it runs
    assert not clock.holds(100.0)
    assert not clock.renewed(sent_at=100.0, ttl_s=0)  # etcd: the lease is gone
    assert not clock.holds(100.0)
