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
    fe_kill    SIGKILL the FE, start it again after ``duration_s``
    job_pause  PauseRoutineLoad, ResumeRoutineLoad after ``duration_s``

The max-down rule: a BE counts as down from its fault's start until ``settle_s`` after its
fault ends (a restarted BE's replicas lag until they are caught up by clone, so it is not yet a
write-quorum member), and never more than ``max_down`` BEs are down at once. With RF=3 and a
MAJORITY quorum that is 1 (see :func:`quorum_tolerance`). BE faults run concurrently only when
``max_down`` > 1, on distinct BEs; FE and job faults never overlap anything else.

Pure: no I/O, no clock. Same (seed, duration, bes, max_down) → same schedule and same text.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

BE_KINDS = ("be_kill", "be_wipe", "be_stop", "be_quick_restart", "be_kill_in_compaction")
KINDS = ("be_kill", "be_wipe", "be_stop", "be_quick_restart", "be_kill_in_compaction", "fe_kill", "job_pause")

# (min, max) seconds a fault lasts; a SIGSTOP longer than heartbeat_timeout_second makes the FE
# mark the BE dead, a shorter one is a stall it must ride out.
DURATION_RANGE_S = {
    "be_kill": (3.0, 12.0),
    "be_wipe": (2.0, 8.0),
    "be_stop": (2.0, 8.0),
    "be_quick_restart": (0.2, 0.8),  # + about 1 s to start: back within the 3 s heartbeat timeout
    "be_kill_in_compaction": (3.0, 8.0),  # counted from the kill, which waits for a compaction
    "fe_kill": (1.0, 5.0),
    "job_pause": (2.0, 6.0),
}
# quiet time after a fault ends before the next one may start (recovery: catch-up, clone)
SETTLE_S = {
    "be_kill": 8.0,
    "be_wipe": 12.0,
    "be_stop": 8.0,
    "be_quick_restart": 8.0,
    "be_kill_in_compaction": 10.0,
    "fe_kill": 6.0,
    "job_pause": 3.0,
}
WEIGHTS = {"be_kill": 3, "be_wipe": 2, "be_stop": 2, "be_quick_restart": 2, "be_kill_in_compaction": 2,
           "fe_kill": 2, "job_pause": 1}
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
    target: str  # "be2", "fe" or "job"

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

    def describe(self) -> str:
        what = {
            "be_kill": f"SIGKILL {self.target}, restart after {self.duration_s:.1f} s",
            "be_wipe": f"SIGKILL {self.target}, wipe its storage dir, restart after {self.duration_s:.1f} s",
            "be_stop": f"SIGSTOP {self.target} (hung), SIGCONT after {self.duration_s:.1f} s",
            "be_quick_restart": f"SIGKILL {self.target}, restart after {self.duration_s:.1f} s "
                                "(before the FE's heartbeat timeout)",
            "be_kill_in_compaction": f"SIGKILL {self.target} inside a compaction (waits up to "
                                     f"{COMPACTION_WAIT_S:g} s for one), restart {self.duration_s:.1f} s after the kill",
            "fe_kill": f"SIGKILL fe, restart after {self.duration_s:.1f} s",
            "job_pause": f"PAUSE ROUTINE LOAD, RESUME after {self.duration_s:.1f} s",
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

    def text(self) -> str:
        head = (f"chaos schedule: seed {self.seed}, duration {self.duration_s:g} s, {self.bes} BEs, "
                f"at most {self.max_down} BE(s) down at once, {len(self.faults)} faults")
        return "\n".join([head] + ["  " + f.describe() for f in self.faults])

    def kinds(self) -> set[str]:
        return {f.kind for f in self.faults}

    def max_concurrent_down(self) -> int:
        """The most BEs down at once, counting each BE fault from its start to its settled time."""
        points = sorted({f.start_s for f in self.faults if f.takes_be_down})
        return max((sum(1 for f in self.faults if f.takes_be_down and f.start_s <= t < f.settled_s)
                    for t in points), default=0)

    def to_json(self) -> dict:
        return {"seed": self.seed, "duration_s": self.duration_s, "bes": self.bes, "max_down": self.max_down,
                "faults": [f.to_json() for f in self.faults]}


def parse_kinds(text: str | None) -> tuple[str, ...]:
    """``"be_kill,fe_kill"`` -> the kinds; None or "" -> every kind. Unknown names are refused."""
    if not text:
        return KINDS
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown fault kind(s) {unknown or [text]}; kinds: {', '.join(KINDS)}")
    return tuple(dict.fromkeys(kinds))


def generate(seed: int, duration_s: float, bes: int = 4, max_down: int = 1,
             kinds: tuple[str, ...] = KINDS) -> Schedule:
    """The faults for ``duration_s`` seconds of chaos; every fault ends by ``duration_s``.

    The first faults are a shuffled round of every kind (so a long enough run has them all),
    the rest are drawn by weight. Draws that would not fit in the time left are skipped.
    ``kinds`` narrows the kinds drawn (``make chaos KINDS=a,b``).
    """
    if bes < 1:
        raise ValueError(f"bes must be at least 1, got {bes}")
    if max_down < 0:
        raise ValueError(f"max_down must be >= 0, got {max_down}")
    rng = random.Random(seed)
    kinds = [k for k in KINDS if k in kinds and (max_down > 0 or k not in BE_KINDS)]
    if not kinds:
        return Schedule(seed=seed, duration_s=duration_s, bes=bes, max_down=max_down, faults=())
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
            targets = rng.sample(range(bes), group)
            others = [k for k in BE_KINDS if k in kinds]
            batch = [Fault(0, kind, t, length, f"be{targets[0]}")]
            for be in targets[1:]:  # a concurrent BE fault: its own kind and length, if it fits
                other = rng.choice(others)
                f = Fault(0, other, t, round(rng.uniform(*DURATION_RANGE_S[other]), 1), f"be{be}")
                if f.end_s <= duration_s:
                    batch.append(f)
        else:
            batch = [Fault(0, kind, t, length, "fe" if kind == "fe_kill" else "job")]
        for f in batch:
            faults.append(Fault(len(faults) + 1, f.kind, f.start_s, f.duration_s, f.target))
        settled = max(f.settled_s for f in batch)
        t = round(settled + rng.uniform(MIN_GAP_S, MAX_GAP_S), 1)
    return Schedule(seed=seed, duration_s=duration_s, bes=bes, max_down=max_down, faults=tuple(faults))
