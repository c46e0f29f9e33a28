"""Runs a chaos schedule against a live cluster: executes faults on time and samples the cluster.

The runner owns no cluster lifecycle (deploy/chaos.py starts and stops it); it drives
LocalCluster by pid (kill_node, start_node, signal_node, wipe_data), the FE's AdminService, and
for the link faults the nodes' DebugService (the cluster runs with --enable-debug-points):

    fe_be_partition     {point "rpc", peer <BE>, DROP} on the FE + {point "rpc", peer <FE>, DROP}
                        on the BE: the two drop each other's calls both ways
    be_be_partition     the same pair of DROP rules on two BEs, each naming the other
    slow_link           {point "rpc", DELAY delay_ms} on the BE: every call it makes or serves waits
    broker_unreachable  {point "be.kafka.consume", peer <broker>, DROP} on the BE

With more than one FE, "fe" in a link fault is the FE that leads when the fault starts, and the
FE and etcd faults (fe_leader_kill, fe_leader_stop, fe_follower_kill, etcd_member_kill) act on
processes as the BE faults do; deploy/chaos_ha.py decides which FE a fault hits and watches the
takeover and the rejoin. The runner asks the FEs through a :class:`FrontendPool` that prefers
the leader (from etcd, every sample) and skips an FE a fault holds down.

A peer is named by the address the node answers in ListDebugRules (host:rpc_port for the FE,
host:be_port for a BE). Each rule expires RULE_EXPIRY_MARGIN_S after its fault should have ended
(a safety net should the runner die), but the fault ends when the runner removes its rules
(RemoveDebugRule by the id AddDebugRule gave); the recover event gives each rule's hit count.

It records two things for the report:

- events: each fault and recovery action, and what the cluster was seen to do about it
  (a BE marked dead or alive, unhealthy tablets appearing and clearing, the FE answering again,
  the job changing state), each with its time on the chaos clock;
- samples: every ~1 s, rows loaded, rows/s, lag, unhealthy tablets, job state, alive BEs.

A node that is gone while no fault holds it down has crashed: that is recorded as a violation and
the node is started again so that the run (and its checker) can go on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from dataclasses import asdict, dataclass, field

import grpc

from common.gen.tabletsim.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    backend_pb2,
    backend_pb2_grpc,
    debug_pb2,
    debug_pb2_grpc,
)
from common.rpc import cluster_channel
from deploy import chaos_ha, workload
from deploy.chaos_schedule import COMPACTION_WAIT_S, Fault, Schedule
from deploy.cluster import LocalCluster
from deploy.fe_pool import FrontendPool

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 1.0
RATE_WINDOW_S = 5.0
SNAPSHOT_TIMEOUT_S = 3.0
COMPACTION_POLL_S = 0.02
INTERRUPTED_LINE = "compactions interrupted before their swap"
INTERRUPTED_WAIT_S = 15.0
RULE_EXPIRY_MARGIN_S = 15.0
DEBUG_CALL_TIMEOUT_S = 10.0  # a slow_link's own delay (up to 2 s) applies to calls to its BE


@dataclass
class Sample:
    t: float
    loaded: int
    rows_per_s: float
    produced: int
    lag: int
    unhealthy: int
    job_state: str
    alive_bes: int
    total_bes: int
    error: str = ""
    leader: str = ""  # the FE holding the leader key in etcd ("fe" with one FE; "" when none)


@dataclass
class Event:
    t: float
    kind: str  # fault | recover | observed | crash | error
    text: str
    fault: int = 0


@dataclass
class Recorder:
    """The clock and the record of a run (shared by the runner, the checker and the report)."""

    t0: float = field(default_factory=time.monotonic)
    events: list[Event] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    echo: bool = True

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    def event(self, kind: str, text: str, fault: int = 0) -> Event:
        ev = Event(self.now(), kind, text, fault)
        self.events.append(ev)
        if self.echo:
            print(f"[{ev.t:7.1f}s] {'>>>' if kind in ('fault', 'recover') else '   '} {text}", flush=True)
        return ev

    def violation(self, text: str) -> None:
        self.violations.append(text)
        self.event("violation", f"VIOLATION: {text}")

    def to_json(self) -> dict:
        return {"events": [asdict(e) for e in self.events], "samples": [asdict(s) for s in self.samples],
                "violations": list(self.violations)}


async def _retry_unavailable(call, what: str, attempts: int = 10):
    """``await call()``, again on UNAVAILABLE (a node restarting) up to ``attempts`` times, 1 s apart."""
    for attempt in range(attempts):
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == attempts - 1:
                raise RuntimeError(f"{what}: {exc.code().name}: {exc.details()}") from None
            await asyncio.sleep(1.0)
    raise RuntimeError(f"{what}: no attempt made (attempts={attempts})")


class DebugRuleClient:
    """Debug-point rules on the nodes of a LocalCluster, over each node's DebugService.

    A channel per call: rules change a few times a minute, and a node may have been restarted
    in between."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self._names: dict[str, str] = {}  # node -> its address as its peers name it

    def _address(self, node: str) -> str:
        if node.startswith("fe"):
            return self.cluster.fe_address_of(node)
        return self.cluster.be_address(int(node[2:]))

    async def _call(self, node: str, method: str, request):
        async with cluster_channel(self._address(node), self.cluster.spec.cluster_token) as channel:
            stub = debug_pb2_grpc.DebugServiceStub(channel)
            return await _retry_unavailable(lambda: getattr(stub, method)(request, timeout=DEBUG_CALL_TIMEOUT_S),
                                            f"{method} on {node}")

    async def name(self, node: str) -> str:
        """The address ``node``'s peers know it by (ListDebugRules' node; the spec's otherwise)."""
        if node not in self._names:
            resp = await self._call(node, "ListDebugRules", debug_pb2.ListDebugRulesRequest())
            self._names[node] = resp.node or self._address(node)
        return self._names[node]

    async def add(self, node: str, rule: debug_pb2.DebugRule) -> str:
        """Add ``rule`` on ``node``; returns the id the node gave it."""
        resp = await self._call(node, "AddDebugRule", debug_pb2.AddDebugRuleRequest(rule=rule))
        return resp.rule.id

    async def remove(self, node: str, rule_id: str) -> str:
        """Remove a rule; says what became of it (removed after N hits, or why it was gone)."""
        rules = (await self._call(node, "ListDebugRules", debug_pb2.ListDebugRulesRequest())).rules
        hits = next((r.hits for r in rules if r.id == rule_id), None)
        removed = (await self._call(node, "RemoveDebugRule", debug_pb2.RemoveDebugRuleRequest(id=rule_id))).removed
        if removed:
            return f"rule {rule_id} on {node} removed after {hits if hits is not None else '?'} hits"
        return f"rule {rule_id} on {node} was already gone (expired, or {node} restarted)"


class ChaosRunner:
    def __init__(self, cluster: LocalCluster, pool: FrontendPool, schedule: Schedule,
                 producer: workload.Producer, rec: Recorder, print_every_s: float = 5.0) -> None:
        self.cluster = cluster
        self.pool = pool
        self.admin: admin_pb2_grpc.AdminServiceStub = pool.admin  # type: ignore[assignment]
        self.schedule = schedule
        self.producer = producer
        self.rec = rec
        self.print_every_s = print_every_s
        self.held_down: set[str] = set()  # nodes a fault keeps down on purpose (killed or stopped)
        self.stopped: set[str] = set()  # nodes under SIGSTOP (cleanup must SIGCONT them)
        self.debug = DebugRuleClient(cluster)
        self.rules: dict[int, list[tuple[str, str]]] = {}  # fault index -> the (node, rule id) it added
        self.acted_on: dict[int, str] = {}  # fault index -> the FE it hit ("leader" / "follower:k" resolved)
        self.watchers: set[asyncio.Task] = set()  # takeover and rejoin observations under way
        self._last_printed = -1e9

    # ------------------------------------------------------------------ faults
    async def run_faults(self) -> None:
        """Every fault on time (relative to the recorder's clock); returns when all are over."""
        await asyncio.gather(*(self._fault(f) for f in self.schedule.faults))

    async def _sleep_until(self, t: float) -> None:
        delay = t - self.rec.now()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _fault(self, f: Fault) -> None:
        await self._sleep_until(f.start_s)
        try:
            await self._inject(f)
        except Exception as exc:  # a fault that could not be injected is reported, never hidden
            self.rec.violation(f"fault #{f.index} {f.kind} {f.target} could not be injected: "
                               f"{type(exc).__name__}: {exc}")
        if f.kind == "be_kill_in_compaction":
            await asyncio.sleep(f.duration_s)  # counted from the kill, which waited for a compaction
        else:
            await self._sleep_until(f.end_s)
        try:
            await self._recover(f)
        except Exception as exc:
            self.rec.violation(f"fault #{f.index} {f.kind} {f.target}: recovery failed: "
                               f"{type(exc).__name__}: {exc}")

    async def _inject(self, f: Fault) -> None:
        node = f.target
        if f.kind == "be_kill_in_compaction":
            running = await self._wait_for_compaction(node)
            self.held_down.add(node)
            pid = await asyncio.to_thread(self.cluster.kill_node, node)
            self.rec.event("fault", f"#{f.index} SIGKILL {node} (pid {pid}) "
                           + (f"while {running} compaction(s) ran" if running else
                              f"with no compaction running: none started within {COMPACTION_WAIT_S:g} s"), f.index)
        elif f.kind in ("be_kill", "be_wipe", "fe_kill", "be_quick_restart"):
            self.held_down.add(node)
            pid = await asyncio.to_thread(self.cluster.kill_node, node)
            self.rec.event("fault", f"#{f.index} SIGKILL {node} (pid {pid})", f.index)
            if f.kind == "be_wipe":
                await asyncio.to_thread(self.cluster.wipe_data, node)
                self.rec.event("fault", f"#{f.index} wiped the storage dir of {node}", f.index)
        elif f.kind == "be_stop":
            self.held_down.add(node)
            pid = self.cluster.signal_node(node, signal.SIGSTOP)
            if pid is not None:
                self.stopped.add(node)
            self.rec.event("fault", f"#{f.index} SIGSTOP {node} (pid {pid}): hung", f.index)
        elif f.kind in ("fe_leader_kill", "fe_leader_stop", "fe_follower_kill"):
            await self._inject_fe(f)
        elif f.kind == "etcd_member_kill":
            self.held_down.add(node)
            pid = await asyncio.to_thread(self.cluster.kill_node, node)
            self.rec.event("fault", f"#{f.index} SIGKILL {node} (pid {pid}): "
                           f"{len(self.cluster.spec.etcd_names()) - 1} etcd members left", f.index)
        elif f.is_link:
            await self._add_link_rules(f)
        elif f.kind == "job_pause":
            try:
                await _retry_unavailable(lambda: self.admin.PauseRoutineLoad(
                    admin_pb2.RoutineLoadRequest(db=workload.DB, name=workload.JOB), timeout=10),
                    "PauseRoutineLoad")
            except RuntimeError as exc:
                if "already PAUSED" not in str(exc):
                    raise
                # the FE paused it itself a moment ago (too few replicas after the last fault,
                # not yet auto-resumed): the user's PAUSE finds it paused, and RESUME ends both
                self.rec.event("fault", f"#{f.index} PAUSE ROUTINE LOAD {workload.JOB}: it was already "
                                        f"PAUSED ({exc})", f.index)
                return
            self.rec.event("fault", f"#{f.index} PAUSE ROUTINE LOAD {workload.JOB}", f.index)

    async def _recover(self, f: Fault) -> None:
        node = f.target
        if f.kind in ("be_kill", "be_wipe", "fe_kill", "be_quick_restart", "be_kill_in_compaction"):
            log_from = self._log_size(node)
            pid = await asyncio.to_thread(self.cluster.start_node, node)
            self.held_down.discard(node)
            self.rec.event("recover", f"#{f.index} restarted {node} (pid {pid})"
                           + (" with an empty storage dir" if f.kind == "be_wipe" else ""), f.index)
            if f.kind == "be_kill_in_compaction":
                await self._observe_interrupted(f, node, log_from)
        elif f.kind == "be_stop":
            pid = self.cluster.signal_node(node, signal.SIGCONT)
            self.stopped.discard(node)
            self.held_down.discard(node)
            self.rec.event("recover", f"#{f.index} SIGCONT {node} (pid {pid})", f.index)
        elif f.kind in ("fe_leader_kill", "fe_leader_stop", "fe_follower_kill"):
            await self._recover_fe(f)
        elif f.kind == "etcd_member_kill":
            pid = await asyncio.to_thread(self.cluster.start_node, node)
            self.held_down.discard(node)
            self.rec.event("recover", f"#{f.index} restarted {node} (pid {pid})", f.index)
        elif f.is_link:
            await self._remove_link_rules(f)
        elif f.kind == "job_pause":
            await _retry_unavailable(lambda: self.admin.ResumeRoutineLoad(
                admin_pb2.RoutineLoadRequest(db=workload.DB, name=workload.JOB), timeout=10), "ResumeRoutineLoad")
            self.rec.event("recover", f"#{f.index} RESUME ROUTINE LOAD {workload.JOB}", f.index)

    async def _inject_fe(self, f: Fault) -> None:
        node = await chaos_ha.resolve_fe(self.cluster, f.target)
        self.acted_on[f.index] = node
        role = "follower" if f.kind == "fe_follower_kill" else "leader"
        self.held_down.add(node)
        self.pool.avoid(node)
        since = time.monotonic()
        if f.kind == "fe_leader_stop":
            pid = self.cluster.signal_node(node, signal.SIGSTOP)
            if pid is not None:
                self.stopped.add(node)
            self.rec.event("fault", f"#{f.index} SIGSTOP the leader {node} (pid {pid}): its lease will expire",
                           f.index)
        else:
            pid = await asyncio.to_thread(self.cluster.kill_node, node)
            self.rec.event("fault", f"#{f.index} SIGKILL the {role} {node} (pid {pid})", f.index)
        if role == "leader":
            self._watch(self._observe_takeover(f, node, since))

    async def _recover_fe(self, f: Fault) -> None:
        node = self.acted_on.get(f.index)
        if node is None:
            return  # never injected (reported then)
        since = time.monotonic()
        if f.kind == "fe_leader_stop":
            pid = self.cluster.signal_node(node, signal.SIGCONT)
            self.stopped.discard(node)
            self.rec.event("recover", f"#{f.index} SIGCONT {node} (pid {pid}): it must find its lease gone, "
                                      "write nothing and step down", f.index)
        else:
            pid = await asyncio.to_thread(self.cluster.start_node, node)
            self.rec.event("recover", f"#{f.index} restarted {node} (pid {pid})", f.index)
        self.held_down.discard(node)
        self.pool.allow(node)
        self._watch(self._observe_rejoin(f, node, since))

    def _watch(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self.watchers.add(task)
        task.add_done_callback(self.watchers.discard)

    async def _observe_takeover(self, f: Fault, old: str, since: float) -> None:
        found = await chaos_ha.watch_takeover(self.cluster, old, since)
        if found is None:
            self.rec.event("observed", f"#{f.index} no other FE took over from {old} within "
                                       f"{chaos_ha.TAKEOVER_WAIT_S:g} s", f.index)
        else:
            self.rec.event("observed", f"#{f.index} {found[0]} took over the leadership from {old} "
                                       f"{found[1]} s after the fault", f.index)

    async def _observe_rejoin(self, f: Fault, node: str, since: float) -> None:
        found = await chaos_ha.watch_rejoin(self.pool, node, since)
        if found is None:
            self.rec.event("observed", f"#{f.index} {node} did not answer as a FOLLOWER within "
                                       f"{chaos_ha.REJOIN_WAIT_S:g} s", f.index)
        else:
            self.rec.event("observed", f"#{f.index} {node} answers as {found[0]} {found[1]} s after its "
                                       + ("SIGCONT" if f.kind == "fe_leader_stop" else "restart"), f.index)
            leader = await chaos_ha.leader_name(self.cluster)
            if found[0] == "LEADER" and leader != node:
                self.rec.violation(f"fault #{f.index}: {node} says it is the LEADER while etcd's leader key names "
                                   f"{leader or 'no FE'}: two FEs claim to lead")

    def _link_rules(self, f: Fault, names: dict[str, str]) -> list[tuple[str, debug_pb2.DebugRule]]:
        """The (node, rule) pairs that make link fault ``f``; ``names``: node -> the address its peers use."""
        expiry = round((f.end_s - f.start_s + RULE_EXPIRY_MARGIN_S) * 1000)

        def drop(point: str, peer: str) -> debug_pb2.DebugRule:
            return debug_pb2.DebugRule(point=point, peer=peer, action=debug_pb2.DROP, expire_after_ms=expiry)

        if f.kind in ("fe_be_partition", "be_be_partition"):
            a, b = (self.acted_on[f.index], f.target) if f.kind == "fe_be_partition" else f.bes
            return [(a, drop("rpc", names[b])), (b, drop("rpc", names[a]))]
        if f.kind == "slow_link":
            return [(f.target, debug_pb2.DebugRule(point="rpc", action=debug_pb2.DELAY, delay_ms=f.delay_ms,
                                                   expire_after_ms=expiry))]
        return [(f.target, drop("be.kafka.consume", self.cluster.broker_address))]

    async def _add_link_rules(self, f: Fault) -> None:
        if f.kind == "fe_be_partition":  # the leader, with more than one FE
            self.acted_on[f.index] = await chaos_ha.resolve_fe(self.cluster, "leader")
        nodes = [self.acted_on[f.index], f.target] if f.kind == "fe_be_partition" else list(f.bes)
        names = {node: await self.debug.name(node) for node in nodes}
        rules = self._link_rules(f, names)
        # both sides of a partition at once; what was added is removed at recovery even if the other side failed
        added = await asyncio.gather(*(self.debug.add(node, rule) for node, rule in rules), return_exceptions=True)
        self.rules[f.index] = [(node, rid) for (node, _), rid in zip(rules, added, strict=True)
                               if isinstance(rid, str)]
        failed = [r for r in added if isinstance(r, BaseException)]
        if failed:
            raise failed[0]
        what = "; ".join(f"{node}: {debug_pb2.DebugAction.Name(rule.action)} {rule.point}"
                         + (f" {rule.delay_ms} ms" if rule.delay_ms else "")
                         + (f" with {rule.peer}" if rule.peer else "") + f" (rule {rid})"
                         for (node, rule), rid in zip(rules, added, strict=True))
        self.rec.event("fault", f"#{f.index} {f.kind}: {what}; expiry {rules[0][1].expire_after_ms / 1000:g} s",
                       f.index)

    async def _remove_link_rules(self, f: Fault) -> None:
        done = await asyncio.gather(*(self.debug.remove(node, rid) for node, rid in self.rules.pop(f.index, [])))
        healed = {"fe_be_partition": f"healed {self.acted_on.get(f.index, 'fe')} | {f.target}", "be_be_partition": f"healed {' | '.join(f.bes)}",
                  "slow_link": f"{f.target} fast again", "broker_unreachable": f"{f.target} reaches the broker again"}
        self.rec.event("recover", f"#{f.index} {healed[f.kind]}: " + ("; ".join(done) or "no rule to remove"), f.index)

    async def _wait_for_compaction(self, node: str) -> int:
        """Poll the BE (GetBackendInfo) until a compaction runs on it, at most COMPACTION_WAIT_S;
        returns how many ran at that moment (0: none started in time)."""
        address = self.cluster.be_address(int(node[2:]))
        channel = cluster_channel(address, self.cluster.spec.cluster_token)
        stub = backend_pb2_grpc.BackendServiceStub(channel)
        deadline = self.rec.now() + COMPACTION_WAIT_S
        try:
            while self.rec.now() < deadline:
                try:
                    info = await stub.GetBackendInfo(backend_pb2.GetBackendInfoRequest(), timeout=1.0)
                    if info.compaction_running > 0:
                        return info.compaction_running
                except grpc.aio.AioRpcError:
                    pass  # a BE that does not answer now may next poll
                await asyncio.sleep(COMPACTION_POLL_S)
            return 0
        finally:
            await channel.close()

    def _log_size(self, node: str) -> int:
        try:
            with open(self.cluster.log_path(node), "rb") as f:
                return f.seek(0, 2)
        except OSError:
            return 0

    async def _observe_interrupted(self, f: Fault, node: str, log_from: int) -> None:
        """Report whether the restarted BE found the killed compaction's output and deleted it
        (it does so while starting, before it serves)."""
        deadline = self.rec.now() + INTERRUPTED_WAIT_S
        while self.rec.now() < deadline:
            try:
                with open(self.cluster.log_path(node), "rb") as log_file:
                    log_file.seek(log_from)
                    for line in log_file.read().decode(errors="replace").splitlines():
                        if INTERRUPTED_LINE in line:
                            self.rec.event("observed", f"#{f.index} {node}: {line.split(': ', 1)[-1]}", f.index)
                            return
                        if "BE serving on" in line:
                            self.rec.event("observed", f"#{f.index} {node} restarted with no unswapped "
                                                       "compaction output (the kill came before or after the swap)",
                                           f.index)
                            return
            except OSError:
                pass
            await asyncio.sleep(0.2)

    def resume_all(self) -> None:
        """SIGCONT whatever is still stopped (cleanup path)."""
        for node in list(self.stopped):
            self.cluster.signal_node(node, signal.SIGCONT)
            self.stopped.discard(node)

    # ------------------------------------------------------------------ crashes
    def check_processes(self) -> None:
        """A node that is gone while no fault holds it down crashed: record it and start it again."""
        for node in self.cluster.nodes():
            if node in self.held_down or self.cluster.pid(node) is not None:
                continue
            self.rec.violation(f"{node} exited unexpectedly (not by a fault); see {self.cluster.log_path(node)}")
            if node != "broker":  # the broker keeps its log in memory: restarting it would lose the topic
                pid = self.cluster.start_node(node)
                self.rec.event("recover", f"started {node} again after its crash (pid {pid})")

    # ------------------------------------------------------------------ sampling
    async def _snapshot(self) -> workload.Snapshot:
        """workload.snapshot, bounded: a Query waiting on a hung BE must not stall the timeline.

        Past SNAPSHOT_TIMEOUT_S the row count is given up (loaded -1) and the cheap metadata calls
        are made on their own, so the timeline still shows BEs, job state and tablet health.
        """
        full = asyncio.ensure_future(workload.snapshot(self.admin))
        done, _ = await asyncio.wait({full}, timeout=SNAPSHOT_TIMEOUT_S)
        if done:
            return full.result()
        full.cancel()
        await asyncio.gather(full, return_exceptions=True)
        snap = workload.Snapshot(error="")
        try:
            bes = (await self.admin.ShowBackends(admin_pb2.ShowBackendsRequest(), timeout=2)).backends
            snap.total_bes, snap.alive_bes = len(bes), sum(1 for b in bes if b.alive)
            jobs = (await self.admin.ShowRoutineLoad(
                admin_pb2.ShowRoutineLoadRequest(db=workload.DB, name=workload.JOB), timeout=2)).jobs
            if jobs:
                snap.job_state = jobs[0].state
                snap.lag = json.loads(jobs[0].lag or "{}")
            stat = await self.admin.ShowProc(admin_pb2.ShowProcRequest(path="/statistic"), timeout=2)
            snap.unhealthy = int(stat.rows[-1].values[7])
        except grpc.aio.AioRpcError as exc:
            snap.error = f"{exc.code().name}: {exc.details()}"
        return snap

    async def sample(self) -> Sample:
        leader = await chaos_ha.leader_name(self.cluster)
        self.pool.prefer(leader)
        snap = await self._snapshot()
        now = self.rec.now()
        loaded = snap.loaded
        rate = 0.0
        # rows/s over the last RATE_WINDOW_S (loads land in ~1 s batches: one interval is too jumpy)
        ref = next((p for p in self.rec.samples if p.loaded >= 0 and now - p.t <= RATE_WINDOW_S), None)
        if ref is not None and loaded >= 0 and now > ref.t:
            rate = max(0.0, (loaded - ref.loaded) / (now - ref.t))
        s = Sample(t=now, loaded=loaded, rows_per_s=round(rate, 1), produced=self.producer.produced,
                   lag=sum(snap.lag.values()) if snap.lag else (-1 if snap.error else 0),
                   unhealthy=snap.unhealthy, job_state=snap.job_state, alive_bes=snap.alive_bes,
                   total_bes=snap.total_bes, error=snap.error, leader=leader)
        self._observe(s)
        self.rec.samples.append(s)
        if self.rec.echo and now - self._last_printed >= self.print_every_s:
            self._last_printed = now
            print(f"[{now:7.1f}s]     produced {s.produced:>9,}  loaded {max(loaded, 0):>9,}  "
                  f"{rate:>7,.0f} rows/s  lag {s.lag:>6,}  unhealthy {s.unhealthy:>3}  "
                  f"BEs {s.alive_bes}/{s.total_bes}  job {s.job_state}"
                  + (f"  leader {s.leader or 'none'}" if self.cluster.spec.ha else "")
                  + (f"  ({s.error[:60]})" if s.error else ""), flush=True)
        return s

    def _observe(self, s: Sample) -> None:
        """Recovery and detection events from the change between two samples."""
        prev = self.rec.samples[-1] if self.rec.samples else None
        if prev is None:
            return
        if prev.leader != s.leader and self.cluster.spec.ha:
            self.rec.event("observed", f"{s.leader} leads (was {prev.leader or 'none'})" if s.leader
                           else f"no FE leads (was {prev.leader})")
        if bool(prev.error) != bool(s.error):
            self.rec.event("observed", "the FE answers again" if not s.error else f"FE unreachable: {s.error[:80]}")
        if s.error:
            return
        ref = next((p for p in reversed(self.rec.samples) if not p.error), None)
        if ref is None:
            return
        if s.alive_bes != ref.alive_bes and s.total_bes:
            self.rec.event("observed", f"FE reports {s.alive_bes}/{s.total_bes} BEs alive (was {ref.alive_bes})")
        if (ref.unhealthy == 0) != (s.unhealthy == 0):
            self.rec.event("observed", f"{s.unhealthy} unhealthy tablets" if s.unhealthy
                           else "all tablets healthy again")
        if s.job_state != ref.job_state:
            self.rec.event("observed", f"job {ref.job_state} -> {s.job_state}")

    async def sample_until(self, stop: asyncio.Event) -> None:
        """Sample every SAMPLE_INTERVAL_S (and check for crashed processes) until ``stop`` is set."""
        tick = self.rec.now()
        while not stop.is_set():
            await self.sample()
            await asyncio.to_thread(self.check_processes)
            tick += SAMPLE_INTERVAL_S
            delay = max(0.05, tick - self.rec.now())
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
