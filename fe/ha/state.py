"""The role of one FE process under etcd leader election: a pure state machine, no I/O.

    INIT ──caught up──> FOLLOWER ──won the election──> PROMOTING ──replayed to the end──> LEADER
                           ^  │                            │                                │
                           └──┘ lost / regained etcd       └──────lost the lease────────────┤
                                                                                            v
                                                                                      STEPPED_DOWN (final)

- INIT: the local image is loaded; the records after it are being read from etcd.
- FOLLOWER: tails the journal; acts on nothing (no daemons, no journal writes). While its lease
  does not hold on its own clock (out of contact with etcd) it knows no leader
  (``EtcdFrontend.leader_address`` is None).
- PROMOTING: it holds the leader key; it replays the journal to its end before it writes or acts.
- LEADER: writes the journal (fenced on the leader key's create revision) and runs the daemons.
- STEPPED_DOWN: the leadership is lost (lease expired, fencing refused a write, the key changed
  hands). Memory may be ahead of the journal, so this process never acts again: the FE re-executes
  itself and comes back in INIT as a follower, from its image and etcd (StarRocks' FE exits when it
  loses mastership, for the same reason).

:class:`LeaseClock` decides, from the times of keepalives, until when a lease surely holds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from fe.ha.role import FeRole


class HaPhase(enum.Enum):
    INIT = "INIT"
    FOLLOWER = "FOLLOWER"
    PROMOTING = "PROMOTING"
    LEADER = "LEADER"
    STEPPED_DOWN = "STEPPED_DOWN"

    @property
    def is_final(self) -> bool:
        return self is HaPhase.STEPPED_DOWN

    @property
    def role(self) -> FeRole:
        """What the rest of the FE sees: only a LEADER leads."""
        return FeRole.LEADER if self is HaPhase.LEADER else FeRole.FOLLOWER


_TRANSITIONS: dict[HaPhase, frozenset[HaPhase]] = {
    HaPhase.INIT: frozenset({HaPhase.FOLLOWER, HaPhase.STEPPED_DOWN}),
    HaPhase.FOLLOWER: frozenset({HaPhase.PROMOTING, HaPhase.STEPPED_DOWN}),
    HaPhase.PROMOTING: frozenset({HaPhase.LEADER, HaPhase.STEPPED_DOWN}),
    HaPhase.LEADER: frozenset({HaPhase.STEPPED_DOWN}),
    HaPhase.STEPPED_DOWN: frozenset(),
}


class IllegalTransition(RuntimeError):
    pass


class RoleMachine:
    """The phase of this FE process and why it got there."""

    def __init__(self) -> None:
        self.phase = HaPhase.INIT
        self.reason = ""
        self.history: list[tuple[HaPhase, str]] = [(HaPhase.INIT, "started")]

    def _transition_to(self, phase: HaPhase, reason: str) -> None:
        if phase not in _TRANSITIONS[self.phase]:
            raise IllegalTransition(f"FE role {self.phase.value} -> {phase.value} is not allowed "
                                    f"(allowed: {', '.join(p.value for p in _TRANSITIONS[self.phase]) or 'none'})")
        self.phase = phase
        self.reason = reason
        self.history.append((phase, reason))

    def caught_up(self) -> None:
        self._transition_to(HaPhase.FOLLOWER, "replayed the journal in etcd")

    def won_election(self) -> None:
        self._transition_to(HaPhase.PROMOTING, "created the leader key")

    def replayed_to_end(self) -> None:
        self._transition_to(HaPhase.LEADER, "replayed the journal to its end")

    def step_down(self, reason: str) -> bool:
        """Leave for good; False when already stepped down (nothing to do twice)."""
        if self.phase is HaPhase.STEPPED_DOWN:
            return False
        self._transition_to(HaPhase.STEPPED_DOWN, reason)
        return True

    @property
    def may_write(self) -> bool:
        return self.phase is HaPhase.LEADER

    @property
    def holds_leader_key(self) -> bool:
        return self.phase in (HaPhase.PROMOTING, HaPhase.LEADER)


@dataclass
class LeaseClock:
    """Until when (monotonic seconds) a lease surely holds on this FE's own clock.

    A keepalive sent at ``t`` and answered with TTL ``ttl`` keeps the lease until ``t + ttl`` at
    the earliest on etcd's side (etcd restarts the TTL when it receives the keepalive, after ``t``),
    so ``t + ttl`` is a safe local deadline whatever the answer's delay. A process stopped past it
    (SIGSTOP) finds it expired as soon as it runs again.
    """

    deadline: float = 0.0

    def granted(self, sent_at: float, ttl_s: float) -> None:
        self.deadline = sent_at + ttl_s

    def renewed(self, sent_at: float, ttl_s: float) -> bool:
        """A keepalive answer; False when etcd says the lease is gone (TTL <= 0)."""
        if ttl_s <= 0:
            self.deadline = 0.0
            return False
        self.deadline = max(self.deadline, sent_at + ttl_s)
        return True

    def holds(self, now: float) -> bool:
        return now < self.deadline

    def remaining(self, now: float) -> float:
        return max(0.0, self.deadline - now)
