"""The FE high-availability side of chaos (``make chaos FES=3``): who leads, faults on FEs and etcd
members, and the two checks of the end.

- :func:`resolve_fe` turns a fault's target into an FE when the fault starts: "leader" is the FE
  holding the leader key in etcd then (it waits up to LEADER_WAIT_S for one), "follower:k" the
  k-th of the others by name.
- :func:`watch_takeover` records when another FE holds the leader key after the leader was killed
  or stopped, and :func:`watch_rejoin` when an FE answers ShowFrontends as a FOLLOWER again
  (a restarted leader, or a SIGSTOPped one that woke to find its lease gone and stepped down).
- :func:`check_frontends` is the checker's HA verdict: exactly one leader at the end (every FE
  names the same one, and it holds the leader key in etcd), and every FE's replayed journal id
  reaches the leader's within REPLAY_EQUAL_S.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import grpc

from common.gen.tabletsim.v1 import admin_pb2
from deploy.cluster import LocalCluster
from deploy.fe_pool import FrontendPool

LEADER_WAIT_S = 20.0  # a fault on "the leader" waits this long for one (an election may be under way)
TAKEOVER_WAIT_S = 30.0
REJOIN_WAIT_S = 40.0
REPLAY_EQUAL_S = 5.0  # issue 13: every FE's replayed journal id equal within 5 s of the end
POLL_S = 0.1


async def leader_name(cluster: LocalCluster) -> str:
    """The FE holding the leader key in etcd now ("" when none); the only FE with one FE."""
    found = await asyncio.to_thread(cluster.leader)
    return found[0] if found else ""


async def resolve_fe(cluster: LocalCluster, target: str) -> str:
    """The FE a fault on ``target`` ("leader" or "follower:k") acts on, decided now."""
    deadline = time.monotonic() + LEADER_WAIT_S
    while not (leader := await leader_name(cluster)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no FE held the leader key in etcd for {LEADER_WAIT_S:g} s")
        await asyncio.sleep(0.2)
    if target == "leader":
        return leader
    followers = sorted(n for n in cluster.spec.fe_names() if n != leader)
    return followers[int(target.split(":", 1)[1]) % len(followers)]


async def watch_takeover(cluster: LocalCluster, old: str, since: float) -> tuple[str, float] | None:
    """(new leader, seconds since ``since``) once an FE other than ``old`` holds the leader key;
    None if none does within TAKEOVER_WAIT_S."""
    deadline = time.monotonic() + TAKEOVER_WAIT_S
    while time.monotonic() < deadline:
        leader = await leader_name(cluster)
        if leader and leader != old:
            return leader, round(time.monotonic() - since, 1)
        await asyncio.sleep(POLL_S)
    return None


async def own_row(pool: FrontendPool, name: str, timeout_s: float = 2.0) -> admin_pb2.FrontendRow | None:
    """FE ``name``'s row about itself in its own ShowFrontends; None when it does not answer."""
    try:
        rows = (await pool.stub(name).ShowFrontends(admin_pb2.ShowFrontendsRequest(), timeout=timeout_s)).frontends
    except grpc.aio.AioRpcError:
        return None
    return next((r for r in rows if r.name == name), None)


async def watch_rejoin(pool: FrontendPool, name: str, since: float) -> tuple[str, float] | None:
    """(role, seconds since ``since``) once ``name`` answers as an alive FOLLOWER (or LEADER: it may
    have won a later election); None if it does not within REJOIN_WAIT_S."""
    deadline = time.monotonic() + REJOIN_WAIT_S
    while time.monotonic() < deadline:
        row = await own_row(pool, name)
        if row is not None and row.alive and row.role in ("FOLLOWER", "LEADER"):
            return row.role, round(time.monotonic() - since, 1)
        await asyncio.sleep(0.2)
    return None


@dataclass
class FrontendsVerdict:
    leader: str = ""
    leaders_seen: dict[str, list[str]] = field(default_factory=dict)  # FE -> the leaders it names
    replayed: dict[str, int] = field(default_factory=dict)  # FE -> its replayed journal id at the end
    replay_equal_after_s: float | None = None
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"leader": self.leader, "leaders_seen": self.leaders_seen, "replayed": self.replayed,
                "replay_equal_after_s": self.replay_equal_after_s, "problems": list(self.problems)}

    def lines(self) -> list[str]:
        ids = ", ".join(f"{n} {i}" for n, i in sorted(self.replayed.items()))
        return [f"leader FE: {self.leader or 'none'}; replayed journal ids: {ids}"
                + (f" (equal after {self.replay_equal_after_s} s)" if self.replay_equal_after_s is not None else "")]


async def check_frontends(cluster: LocalCluster, pool: FrontendPool) -> FrontendsVerdict:
    """Exactly one leader, and every FE's replayed journal id at the leader's within REPLAY_EQUAL_S."""
    v = FrontendsVerdict()
    names = cluster.spec.fe_names()
    v.leader = await leader_name(cluster)
    for name in names:
        try:
            rows = (await pool.stub(name).ShowFrontends(admin_pb2.ShowFrontendsRequest(), timeout=5)).frontends
        except grpc.aio.AioRpcError as exc:
            v.problems.append(f"{name} did not answer ShowFrontends: {exc.code().name}: {exc.details()}")
            continue
        v.leaders_seen[name] = sorted(r.name for r in rows if r.is_master)
    if not v.leader:
        v.problems.append("no FE holds the leader key in etcd at the end")
    for name, leaders in v.leaders_seen.items():
        if leaders != [v.leader]:
            v.problems.append(f"{name} names {leaders or 'no'} leader(s) in ShowFrontends, etcd names "
                              f"{v.leader or 'none'}: there must be exactly one")
    if v.problems:
        return v
    # the leader's journal id now, then every FE must have replayed up to it within REPLAY_EQUAL_S
    started = time.monotonic()
    lead = await own_row(pool, v.leader, timeout_s=5)
    if lead is None:
        v.problems.append(f"the leader {v.leader} did not answer ShowFrontends")
        return v
    target = lead.replayed_journal_id
    while True:
        rows = {name: await own_row(pool, name) for name in names}
        v.replayed = {name: (r.replayed_journal_id if r else -1) for name, r in rows.items()}
        if all(i >= target for i in v.replayed.values()):
            v.replay_equal_after_s = round(time.monotonic() - started, 1)
            return v
        if time.monotonic() - started > REPLAY_EQUAL_S:
            behind = {n: i for n, i in v.replayed.items() if i < target}
            v.problems.append(f"FEs not at the leader's journal id {target} within {REPLAY_EQUAL_S:g} s: {behind}")
            return v
        await asyncio.sleep(POLL_S)
