"""The chaos fault schedule: generated only from a seed and a duration, printed before it runs.

A schedule is a list of :class:`Fault` s, each with a start time (seconds after the chaos clock
starts), a duration and a target. Kinds:

    be_kill    SIGKILL a BE, start it again after ``duration_s``
    be_wipe    SIGKILL a BE, wipe its storage dir, start it again (empty) after ``duration_s``
    be_stop    SIGSTOP a BE (a hung node), SIGCONT after ``duration_s``
    be_quick_restart       SIGKILL a BE and start it again after ``duration_s``, well before
                           heartbeat_timeout_second (3 s in chaos): the FE sees it restart,
                           never dead
    be_kill_in_compaction  SIGKILL a BE while one of its compactions runs (the runner polls the
                           BE for a running one), start it again after ``duration_s``
    fe_be_partition        the FE and one BE drop each other's RPCs (both ways) for
                           ``duration_s``; the BE keeps serving its peers
    be_be_partition        two BEs drop each other's RPCs for ``duration_s`` (target "be1|be3"):
                           replication between them fails
    slow_link              every RPC a BE makes or serves waits ``delay_ms`` (200-2000 ms, drawn
                           from the seed) for ``duration_s``
    broker_unreachable     one BE cannot reach the Kafka broker (its consume point drops) for
                           ``duration_s``
    fe_kill    SIGKILL the FE, start it again after ``duration_s`` (one FE only)
    job_pause  PauseRoutineLoad, ResumeRoutineLoad after ``duration_s``

With more than one FE (``make chaos FES=3``: the FEs elect a leader on etcd, fe/ha/) fe_kill
gives way to the four kinds of FE high availability (:data:`HA_KINDS`):

    fe_leader_kill     SIGKILL the FE that leads (found in etcd when the fault starts), start it
                       again after ``duration_s``: it comes back as a follower
    fe_leader_stop     SIGSTOP the leader for ``duration_s``, longer than fe_leader_lease_second
                       (3 s): a follower takes over; on SIGCONT the old leader finds its lease
                       gone, writes nothing more and steps down to follower
    fe_follower_kill   SIGKILL a follower (target "follower:k", the k-th by name when the fault
                       starts), start it again after ``duration_s``
    etcd_member_kill   SIGKILL one etcd member (target "etcd<i>"), start it again after
                       ``duration_s``: the other two keep the quorum

The four link kinds are debug-point rules on the live processes (deploy/chaos_runner.py adds
them when the fault starts and removes them when it ends); nothing is killed.

The max-down rule: a BE counts as down from its fault's start until ``settle_s`` after its
fault ends (a restarted BE's replicas lag until they are caught up by clone, so it is not yet a
write-quorum member), and never more than ``max_down`` BEs are down at once. With RF=3 and a
MAJORITY quorum that is 1 (see :func:`quorum_tolerance`). Which faults take a BE down
(:data:`BE_KINDS`):

- every process fault on a BE (kill, wipe, stop, quick restart, kill in compaction);
- ``fe_be_partition``: the FE hears no heartbeat from the BE, marks it dead after
  heartbeat_timeout_second and leaves its replicas out of loads; to the FE it is a dead BE;
- ``be_be_partition`` counts as ONE down, though it names two BEs: a write reaches every replica
  but the one its coordinator cannot talk to (a coordinator on either side loses the replica on
  the other side, a coordinator elsewhere loses none), so each tablet loses at most one replica
  per write, as with one dead BE. Both BEs are kept out of any fault that overlaps it;
- ``slow_link``: the BE heartbeats one after another, so a delay of D ms spaces its heartbeats
  about 1 s + D apart (and a heartbeat's own deadline is 2 s): near 2,000 ms the FE may mark it
  dead for a moment and leave it out of loads; and every write whose quorum needs it waits D per
  RPC. Counted as down, so it never overlaps another BE down.

``broker_unreachable`` takes no BE out of quorum (the BE still stores, replicates and
heartbeats; only its own routine load tasks fail and are renewed), so it is not counted. Like
the FE and job faults it never overlaps anything else: its target BE may be the one the renewed
tasks land on, and a BE down at the same time would leave fewer BEs to take them.
BE faults run concurrently only when ``max_down`` > 1, on distinct BEs; the FE, job and broker
faults never overlap anything else.

Pure: no I/O, no clock. Same (seed, duration, bes, max_down, kinds, fes) → same schedule and same text.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

# the kinds that take a BE down (see the max-down rule above)
BE_KINDS = ("be_kill", "be_wipe", "be_stop", "be_quick_restart", "be_kill_in_compaction",
            "fe_be_partition", "be_be_partition", "slow_link")
# the kinds made with debug-point rules on live processes
LINK_KINDS = ("fe_be_partition", "be_be_partition", "slow_link", "broker_unreachable")
# FE high availability (more than one FE); fe_kill is the single FE's own
HA_KINDS = ("fe_leader_kill", "fe_leader_stop", "fe_follower_kill", "etcd_member_kill")
SINGLE_FE_KINDS = ("fe_kill",)
KINDS = ("be_kill", "be_wipe", "be_stop", "be_quick_restart", "be_kill_in_compaction",
         "fe_be_partition", "be_be_partition", "slow_link", "broker_unreachable", "fe_kill", "job_pause",
         *HA_KINDS)

# (min, max) seconds a fault lasts; a SIGSTOP or an FE|BE partition longer than
# heartbeat_timeout_second makes the FE mark the BE dead, a shorter one is a stall it must ride out.
DURATION_RANGE_S = {
    "be_kill": (3.0, 12.0),
    "be_wipe": (2.0, 8.0),
    "be_stop": (2.0, 8.0),
    "be_quick_restart": (0.2, 0.8),  # + about 1 s to start: back within the 3 s heartbeat timeout
    "be_kill_in_compaction": (3.0, 8.0),  # counted from the kill, which waits for a compaction
    "fe_be_partition": (2.0, 10.0),
    "be_be_partition": (3.0, 12.0),
    "slow_link": (3.0, 10.0),
    "broker_unreachable": (3.0, 10.0),
    "fe_kill": (1.0, 5.0),
    "job_pause": (2.0, 6.0),
    "fe_leader_kill": (2.0, 8.0),
    "fe_leader_stop": (5.0, 10.0),  # longer than the 3 s lease: it is lost, a follower takes over
    "fe_follower_kill": (2.0, 8.0),
    "etcd_member_kill": (2.0, 10.0),
}
# quiet time after a fault ends before the next one may start (recovery: catch-up, clone)
SETTLE_S = {
    "be_kill": 8.0,
    "be_wipe": 12.0,
    "be_stop": 8.0,
    "be_quick_restart": 8.0,
    "be_kill_in_compaction": 10.0,
    "fe_be_partition": 10.0,  # dead to the FE: alive again, its tasks renewed, its replicas cloned
    "be_be_partition": 10.0,  # the replicas that missed writes are cloned (their clones failed meanwhile)
    "slow_link": 8.0,
    "broker_unreachable": 6.0,  # its failed tasks are renewed
    "fe_kill": 6.0,
    "job_pause": 3.0,
    "fe_leader_kill": 8.0,  # lease expiry, election, the BEs and tasks find the new leader
    "fe_leader_stop": 10.0,  # the same, and the woken leader steps down and replays as a follower
    "fe_follower_kill": 5.0,
    "etcd_member_kill": 8.0,  # /health answers before a restarted member caught up: let raft settle
}
WEIGHTS = {"be_kill": 3, "be_wipe": 2, "be_stop": 2, "be_quick_restart": 2, "be_kill_in_compaction": 2,
           "fe_be_partition": 2, "be_be_partition": 2, "slow_link": 2, "broker_unreachable": 2,
           "fe_kill": 2, "job_pause": 1,
           "fe_leader_kill": 3, "fe_leader_stop": 2, "fe_follower_kill": 2, "etcd_member_kill": 2}
# the delay a slow_link puts on every RPC of its BE, drawn per fault
SLOW_LINK_DELAY_MS = (200, 2000)
# how long the runner waits for a compaction to kill inside; the fault's window includes it
COMPACTION_WAIT_S = 8.0
WARMUP_S = 3.0
MIN_GAP_S, MAX_GAP_S = 0.0, 4.0


def quorum_tolerance(replication_num: int = 3, write_quorum: str = "MAJORITY") -> int:
    """How many replicas of a tablet may be down while loads still reach the write quorum."""
    need = {"ONE": 1, "MAJORITY": replication_num // 2 + 1, "ALL": replication_num}[write_quorum.upper()]
    return replication_num - need


@dataclass(frozen=True)
class Fault:
    index: int
    kind: str
    start_s: float
    duration_s: float
    target: str  # "be2", "be1|be3" (be_be_partition), "fe", "job", "leader", "follower:1" or "etcd0"
    delay_ms: int = 0  # slow_link: the delay on every RPC of the target

    @property
    def end_s(self) -> float:
        """When the fault is over at the latest (a kill inside a compaction may wait for one)."""
        wait = COMPACTION_WAIT_S if self.kind == "be_kill_in_compaction" else 0.0
        return round(self.start_s + wait + self.duration_s, 1)

    @property
    def settled_s(self) -> float:
        """When the fault's effects should be gone (end + settle time)."""
        return round(self.end_s + SETTLE_S[self.kind], 1)

    @property
    def takes_be_down(self) -> bool:
        return self.kind in BE_KINDS

    @property
    def is_link(self) -> bool:
        return self.kind in LINK_KINDS

    @property
    def bes(self) -> tuple[str, ...]:
        """The BEs the fault acts on (two for a be_be_partition, none for FE and job faults)."""
        return tuple(t for t in self.target.split("|") if t.startswith("be"))

    def describe(self) -> str:
        d = f"{self.duration_s:.1f} s"
        what = {
            "be_kill": f"SIGKILL {self.target}, restart after {d}",
            "be_wipe": f"SIGKILL {self.target}, wipe its storage dir, restart after {d}",
            "be_stop": f"SIGSTOP {self.target} (hung), SIGCONT after {d}",
            "be_quick_restart": f"SIGKILL {self.target}, restart after {d} (before the FE's heartbeat timeout)",
            "be_kill_in_compaction": f"SIGKILL {self.target} inside a compaction (waits up to "
                                     f"{COMPACTION_WAIT_S:g} s for one), restart {d} after the kill",
            "fe_be_partition": f"partition fe | {self.target} (both drop the other's RPCs), heal after {d}",
            "be_be_partition": f"partition {' | '.join(self.bes)} (both drop the other's RPCs), heal after {d}",
            "slow_link": f"delay every RPC of {self.target} by {self.delay_ms} ms, for {d}",
            "broker_unreachable": f"{self.target} cannot reach the broker (its Kafka consume drops), for {d}",
            "fe_kill": f"SIGKILL fe, restart after {d}",
            "job_pause": f"PAUSE ROUTINE LOAD, RESUME after {d}",
            "fe_leader_kill": f"SIGKILL the leader FE, restart it (as a follower) after {d}",
            "fe_leader_stop": f"SIGSTOP the leader FE (its lease expires), SIGCONT after {d}",
            "fe_follower_kill": f"SIGKILL follower FE #{self.target.split(':')[-1]} (by name), restart after {d}",
            "etcd_member_kill": f"SIGKILL {self.target}, restart after {d}",
        }[self.kind]
        return f"#{self.index:<2} t={self.start_s:6.1f}s..{self.end_s:6.1f}s  {self.kind:21} {what}"

    def to_json(self) -> dict:
        return {**asdict(self), "end_s": self.end_s, "settled_s": self.settled_s}


@dataclass(frozen=True)
class Schedule:
    seed: int
    duration_s: float
    bes: int
    max_down: int
    faults: tuple[Fault, ...]
    fes: int = 1

    def text(self) -> str:
        fes = f"{self.fes} FEs on etcd, " if self.fes > 1 else ""
        head = (f"chaos schedule: seed {self.seed}, duration {self.duration_s:g} s, {fes}{self.bes} BEs, "
                f"at most {self.max_down} BE(s) down at once, {len(self.faults)} faults")
        return "\n".join([head] + ["  " + f.describe() for f in self.faults])

    def kinds(self) -> set[str]:
        return {f.kind for f in self.faults}

    def max_concurrent_down(self) -> int:
        """The most BEs down at once, counting each BE fault from its start to its settled time
        (a be_be_partition counts as one)."""
        points = sorted({f.start_s for f in self.faults if f.takes_be_down})
        return max((sum(1 for f in self.faults if f.takes_be_down and f.start_s <= t < f.settled_s)
                    for t in points), default=0)

    def to_json(self) -> dict:
        return {"seed": self.seed, "duration_s": self.duration_s, "bes": self.bes, "max_down": self.max_down,
                "fes": self.fes, "faults": [f.to_json() for f in self.faults]}


def kinds_for(fes: int) -> tuple[str, ...]:
    """The kinds that apply to a cluster of ``fes`` FEs: fe_kill with one, the HA kinds with more."""
    left_out = HA_KINDS if fes <= 1 else SINGLE_FE_KINDS
    return tuple(k for k in KINDS if k not in left_out)


def parse_kinds(text: str | None, fes: int = 1) -> tuple[str, ...]:
    """``"be_kill,fe_kill"`` -> the kinds; None or "" -> every kind for ``fes`` FEs. Unknown names,
    and kinds that need another number of FEs, are refused."""
    allowed = kinds_for(fes)
    if not text:
        return allowed
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown fault kind(s) {unknown or [text]}; kinds: {', '.join(allowed)}")
    wrong = [k for k in kinds if k not in allowed]
    if wrong:
        need = "more than one FE (FES=3)" if fes <= 1 else "a single FE (with FES>1 use fe_leader_kill)"
        raise ValueError(f"fault kind(s) {wrong} need {need}; with {fes} FE(s) the kinds are: {', '.join(allowed)}")
    return tuple(dict.fromkeys(kinds))


def _on_bes(rng: random.Random, kind: str, t: float, length: float, free: list[int]) -> Fault | None:
    """A fault of ``kind`` at ``t`` on BEs drawn from ``free`` (taken out of it); None if too few are free."""
    need = 2 if kind == "be_be_partition" else 1
    if len(free) < need:
        return None
    picked = sorted(rng.sample(free, need))
    for i in picked:
        free.remove(i)
    delay_ms = rng.randint(*SLOW_LINK_DELAY_MS) if kind == "slow_link" else 0
    return Fault(0, kind, t, length, "|".join(f"be{i}" for i in picked), delay_ms)


def _control_target(rng: random.Random, kind: str, bes: int, fes: int) -> str:
    """The target of a fault that takes no BE down."""
    if kind == "broker_unreachable":
        return f"be{rng.randrange(bes)}"
    if kind in ("fe_leader_kill", "fe_leader_stop"):
        return "leader"
    if kind == "fe_follower_kill":
        return f"follower:{rng.randrange(fes - 1)}"
    if kind == "etcd_member_kill":
        return f"etcd{rng.randrange(fes)}"
    return "fe" if kind == "fe_kill" else "job"


def generate(seed: int, duration_s: float, bes: int = 4, max_down: int = 1,
             kinds: tuple[str, ...] | None = None, fes: int = 1) -> Schedule:
    """The faults for ``duration_s`` seconds of chaos; every fault ends by ``duration_s``.

    The first faults are a shuffled round of every kind (so a long enough run has them all),
    the rest are drawn by weight. Draws that would not fit in the time left are skipped.
    ``kinds`` narrows the kinds drawn (``make chaos KINDS=a,b``; default :func:`kinds_for`
    ``fes``). A be_be_partition needs two BEs; the HA kinds need ``fes`` > 1, fe_kill one FE.
    """
    if bes < 1:
        raise ValueError(f"bes must be at least 1, got {bes}")
    if max_down < 0:
        raise ValueError(f"max_down must be >= 0, got {max_down}")
    if fes < 1 or fes % 2 == 0:
        raise ValueError(f"fes must be an odd number (1, 3, 5, ...), got {fes}")
    rng = random.Random(seed)
    allowed = kinds_for(fes)
    kinds = [k for k in KINDS if k in (allowed if kinds is None else kinds) and k in allowed
             and (max_down > 0 or k not in BE_KINDS) and (bes >= 2 or k != "be_be_partition")]
    if not kinds:
        return Schedule(seed=seed, duration_s=duration_s, bes=bes, max_down=max_down, faults=(), fes=fes)
    first_round = list(kinds)
    rng.shuffle(first_round)
    weighted = [k for k in kinds for _ in range(WEIGHTS[k])]
    faults: list[Fault] = []
    t = WARMUP_S
    misses = 0
    while misses < 8:
        kind = first_round.pop(0) if first_round else rng.choice(weighted)
        lo, hi = DURATION_RANGE_S[kind]
        length = round(rng.uniform(lo, hi), 1)
        if Fault(0, kind, t, length, "").end_s > duration_s:
            misses += 1
            continue
        if kind in BE_KINDS:
            group = min(max_down, bes, 1 + (rng.random() < 0.3) * (max_down - 1))
            free = list(range(bes))
            first = _on_bes(rng, kind, t, length, free)
            assert first is not None  # a be_be_partition is only drawn with two BEs or more
            batch = [first]
            others = [k for k in BE_KINDS if k in kinds]
            for _ in range(group - 1):  # a concurrent BE fault: its own kind, BEs and length, if it fits
                other = rng.choice(others)
                f = _on_bes(rng, other, t, round(rng.uniform(*DURATION_RANGE_S[other]), 1), free)
                if f is not None and f.end_s <= duration_s:
                    batch.append(f)
        else:
            batch = [Fault(0, kind, t, length, _control_target(rng, kind, bes, fes))]
        for f in batch:
            faults.append(Fault(len(faults) + 1, f.kind, f.start_s, f.duration_s, f.target, f.delay_ms))
        settled = max(f.settled_s for f in batch)
        t = round(settled + rng.uniform(MIN_GAP_S, MAX_GAP_S), 1)
    return Schedule(seed=seed, duration_s=duration_s, bes=bes, max_down=max_down, faults=tuple(faults), fes=fes)
