"""`make demo`: the main job, end to end, in a couple of minutes.

Starts the local cluster (broker, FE, 3 BEs) unless it is up, creates a topic and a bounded
producer of sample events, an RF=3 MAJORITY table and a routine load job; shows live progress;
half-way kills a BE, shows the FE detect it and the replicas being repaired after the BE is
back; ends with a verdict (produced N, loaded N, duplicates 0, missing 0, all tablets healthy)
and leaves the cluster running.

With ``--fes 3`` (``make demo FES=3``) the cluster has three FEs on etcd, every progress line
names the leader, and before the BE is killed the leader FE is SIGKILLed: the demo shows another
FE take over while rows keep loading, and the old leader come back as a follower.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import grpc

from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from common.rpc import CHANNEL_OPTIONS
from deploy import chaos_ha, workload
from deploy.cluster import ClusterSpec, LocalCluster
from deploy.fe_pool import FrontendPool

TOPIC_PARTITIONS = 8
FE_KILL_AT = 0.15  # FES > 1: the leader FE is killed at this share of the events, restarted FE_DOWN_S later
FE_DOWN_S = 6.0
DEMO_FE_CONFIG = {
    "heartbeat_timeout_second": "4",
    "tablet_sched_repair_delay_factor_second": "5",
    "tablet_sched_checker_interval_seconds": "1",
    "routine_load_task_consume_second": "1",
    "routine_load_task_timeout_second": "10",
}


class Demo:
    def __init__(self, cluster: LocalCluster, events: int, rate: float) -> None:
        self.cluster = cluster
        self.events = events
        self.rate = rate
        self.t0 = time.monotonic()
        self.last_loaded = 0
        self.last_t = self.t0
        self.pool: FrontendPool | None = None

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {text}", flush=True)

    async def run(self) -> int:
        spec = self.cluster.spec
        topic = f"demo_events_{int(time.time())}"
        async with FrontendPool(self.cluster.frontends(), CHANNEL_OPTIONS) as pool:
            self.pool = pool
            pool.prefer(await chaos_ha.leader_name(self.cluster))
            admin = pool.admin
            await self._fresh_schema(admin)
            await workload.create_topic(self.cluster.broker_address, topic, TOPIC_PARTITIONS)
            await workload.create_job(admin, self.cluster.broker_address, topic, desired=3, interval_s=1)
            self.say(f"topic {topic} ({TOPIC_PARTITIONS} partitions), table {workload.DB}.{workload.TABLE} "
                     f"(RF=3, MAJORITY), routine load job {workload.JOB} (3 tasks)")
            producer = workload.Producer(self.cluster.broker_address, topic, TOPIC_PARTITIONS, 0, self.events,
                                         self.rate)
            self.say(f"producing {self.events:,} events at ~{self.rate:,.0f}/s")
            produce = asyncio.create_task(producer.run())
            try:
                await self._watch(admin, producer, produce, spec)
            finally:
                producer.stop()
                await asyncio.gather(produce, return_exceptions=True)
            for name in self.cluster.spec.fe_names():
                pool.allow(name)
            return await self._verdict(admin, producer.produced)

    async def _fresh_schema(self, admin: admin_pb2_grpc.AdminServiceStub) -> None:
        try:
            await admin.DropDatabase(admin_pb2.DropDatabaseRequest(db=workload.DB, if_exists=True))
        except grpc.aio.AioRpcError as exc:
            self.say(f"could not drop the previous demo database: {exc.details()}")
        await workload.create_schema(admin)

    async def _status(self, admin) -> workload.Snapshot:
        leader = await chaos_ha.leader_name(self.cluster) if self.cluster.spec.ha else ""
        assert self.pool is not None
        self.pool.prefer(leader)
        snap = await workload.snapshot(admin)
        now = time.monotonic()
        rate = (snap.loaded - self.last_loaded) / max(now - self.last_t, 1e-6) if snap.loaded >= 0 else 0
        self.last_loaded, self.last_t = max(snap.loaded, self.last_loaded), now
        lag = sum(snap.lag.values())
        self.say(f"loaded {max(snap.loaded, 0):>9,} rows  {rate:>8,.0f} rows/s  lag {lag:>6,}  "
                 f"tablets unhealthy {snap.unhealthy:>3}  BEs alive {snap.alive_bes}/{snap.total_bes}  "
                 f"job {snap.job_state}" + (f"  leader FE {leader or 'none'}" if self.cluster.spec.ha else "")
                 + (f"  ({snap.error})" if snap.error else ""))
        return snap

    async def _kill_the_leader_fe(self) -> None:
        """FES > 1: SIGKILL the leader FE, show who takes over, and restart it FE_DOWN_S later."""
        old = await chaos_ha.leader_name(self.cluster)
        if not old:
            self.say(">>> no FE leads right now: the FE kill is skipped")
            return
        killed_at = time.monotonic()
        assert self.pool is not None
        self.pool.avoid(old)
        pid = self.cluster.kill_node(old)
        self.say(f">>> SIGKILL the leader FE {old} (pid {pid}); its lease (fe_leader_lease_second) runs out, "
                 "a follower takes over")
        found = await chaos_ha.watch_takeover(self.cluster, old, killed_at)
        self.say(f">>> {found[0]} leads {found[1]} s after the kill: it replayed the journal to its end; the BEs "
                 "and the routine load tasks follow it" if found else ">>> no FE took over (see make logs)")
        await asyncio.sleep(max(0.0, FE_DOWN_S - (time.monotonic() - killed_at)))
        await asyncio.to_thread(self.cluster.start_node, old)
        self.pool.allow(old)
        back = await chaos_ha.watch_rejoin(self.pool, old, time.monotonic())
        self.say(f">>> restarted {old}: it answers as {back[0]} after {back[1]} s, from its image and the journal "
                 "in etcd" if back else f">>> restarted {old}, but it does not answer yet (see make logs)")

    async def _watch(self, admin, producer: workload.Producer, produce: asyncio.Task, spec: ClusterSpec) -> None:
        victim = "be1"
        kill_at = 0.35 * self.events / self.rate
        fe_kill_at = FE_KILL_AT * self.events / self.rate if spec.ha else None
        fe_failover: asyncio.Task | None = None
        phase = "loading"
        killed_at = restarted_at = 0.0
        deadline = time.monotonic() + self.events / self.rate + 240
        while time.monotonic() < deadline:
            await asyncio.sleep(2)
            snap = await self._status(admin)
            elapsed = time.monotonic() - self.t0
            if fe_kill_at is not None and elapsed >= fe_kill_at:
                fe_kill_at = None  # progress lines go on while the FEs fail over
                fe_failover = asyncio.create_task(self._kill_the_leader_fe())
            elif phase == "loading" and elapsed >= kill_at and (fe_failover is None or fe_failover.done()):
                pid = self.cluster.kill_node(victim)
                killed_at = time.monotonic()
                phase = "killed"
                self.say(f">>> SIGKILL {victim} (pid {pid}); loads go on: MAJORITY needs 2 of 3 replicas")
            elif phase == "killed" and snap.alive_bes < snap.total_bes:
                phase = "detected"
                self.say(f">>> the FE marked {victim} dead after {time.monotonic() - killed_at:.1f} s "
                         f"(heartbeat_timeout_second={DEMO_FE_CONFIG['heartbeat_timeout_second']}); its replicas "
                         "miss new versions")
            elif phase == "detected" and time.monotonic() - killed_at > 10:
                self.cluster.start_node(victim)
                restarted_at = time.monotonic()
                phase = "restarted"
                self.say(f">>> restarted {victim}; the tablet scheduler clones the versions its replicas missed")
            elif phase == "restarted" and snap.alive_bes == snap.total_bes and snap.unhealthy == 0:
                phase = "repaired"
                self.say(f">>> every tablet healthy again {time.monotonic() - restarted_at:.1f} s after the "
                         "restart")
            if produce.done() and phase == "repaired" and snap.loaded >= producer.produced \
                    and sum(snap.lag.values()) == 0:
                self.say("producer done and the job has caught up")
                return
        self.say("time is up: checking what we have")

    async def _verdict(self, admin, produced: int) -> int:
        self.say("checking every id (exactly once), replica health and checksums ...")
        deadline = time.monotonic() + 60
        result = await workload.verdict(admin, produced)
        while not result.ok and time.monotonic() < deadline:
            await asyncio.sleep(2)
            result = await workload.verdict(admin, produced)
        print()
        print("=" * 72)
        print("VERDICT: " + ("PASS" if result.ok else "FAIL"))
        for line in result.lines():
            print("  " + line)
        print("=" * 72)
        fe = self.cluster.fe_address
        if self.cluster.spec.ha:
            print(f"\nThe leader FE is {fe}; any FE answers (followers forward writes):")
            print(f"  .venv/bin/grpcurl -plaintext {fe} tabletsim.v1.AdminService/ShowFrontends")
        g = f".venv/bin/grpcurl -plaintext -d '{{\"db\":\"{workload.DB}\",\"name\":\"{workload.JOB}\"}}' {fe}"
        print("\nLook further (the cluster is still running):")
        print(f"  {self.cluster.mysql_command()} -e 'SHOW ROUTINE LOAD FOR {workload.DB}.{workload.JOB}\\G'")
        print(f"  {g} tabletsim.v1.AdminService/ShowRoutineLoad")
        print(f"  {g} tabletsim.v1.AdminService/ShowRoutineLoadTask")
        print(f"  .venv/bin/grpcurl -plaintext -d '{{\"db\":\"{workload.DB}\",\"table\":\"{workload.TABLE}\"}}' "
              f"{fe} tabletsim.v1.AdminService/ShowTablets")
        print(f"  .venv/bin/grpcurl -plaintext -d '{{\"path\":\"/cluster_balance/history_tablets\"}}' {fe} "
              "tabletsim.v1.AdminService/ShowProc")
        print(f"  .venv/bin/grpcurl -plaintext {fe} tabletsim.v1.AdminService/ShowBackends")
        print("  make status      make logs      make stop   (stops the cluster by pid)")
        return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tabletsim-demo", description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", default=".run")
    p.add_argument("--events", type=int, default=120_000)
    p.add_argument("--rate", type=float, default=2_000.0, help="events per second")
    p.add_argument("--fe-port", type=int, default=9020)
    p.add_argument("--be-port", type=int, default=9060)
    p.add_argument("--broker-port", type=int, default=9092)
    p.add_argument("--http-port", type=int, default=8030, help="FE HTTP port: the web console, /metrics")
    p.add_argument("--be-http-port", type=int, default=8040)
    p.add_argument("--query-port", type=int, default=9030, help="FE MySQL-protocol port (StarRocks' query_port)")
    p.add_argument("--fes", type=int, default=1, help="FEs (odd); 3: on etcd, and the demo kills the leader FE")
    args = p.parse_args(argv)
    if args.fes < 1 or args.fes % 2 == 0:
        p.error(f"--fes {args.fes}: give an odd number of FEs (1, 3, 5, ...): etcd needs a majority")
    cluster = LocalCluster(args.run_dir)
    running = cluster.has_spec() and all(cluster.pid(n) for n in cluster.nodes())
    if running and (not cluster.spec.with_broker or cluster.spec.bes < 3 or cluster.spec.fes != args.fes):
        print(f"a cluster without the embedded broker, with fewer than 3 BEs or with {cluster.spec.fes} FE(s) "
              f"(not {args.fes}) is running; `make stop` first", file=sys.stderr)
        return 2
    spec = cluster.spec if running else ClusterSpec(
        bes=3, fe_port=args.fe_port, be_port=args.be_port, broker_port=args.broker_port,
        fe_config=DEMO_FE_CONFIG, fes=args.fes, fe_http_port=args.http_port, be_http_port=args.be_http_port,
        fe_query_port=args.query_port)
    fes = f"{args.fes} FEs on etcd" if args.fes > 1 else "FE"
    print("reusing the running cluster" if running else f"starting the cluster (broker, {fes}, 3 BEs) ...",
          flush=True)
    try:
        cluster.start(spec, timeout_s=90)
    except TimeoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if running:
        # the demo's timings need fast failure detection and repair, whatever the cluster was started with
        asyncio.run(_set_config(cluster.fe_address))
    fe = (", ".join(f"{n} {a}" for n, a in cluster.frontends().items()) + f" (leader {cluster.fe_address})"
          if cluster.spec.ha else cluster.fe_address)
    print(f"cluster up: broker {cluster.broker_address}, FE {fe}, "
          f"BEs {', '.join(cluster.be_address(i) for i in range(3))}; logs and data in {cluster.run_dir}")
    print(f"web console: {cluster.fe_http_url()}/  (watch the kill and the repair there)")
    print(f"SQL: {cluster.mysql_command()}  (or: make sql)\n")
    return asyncio.run(Demo(cluster, args.events, args.rate).run())


async def _set_config(address: str) -> None:
    async with workload.channel(address) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        for name, value in DEMO_FE_CONFIG.items():
            await admin.SetConfig(admin_pb2.SetConfigRequest(name=name, value=value))


if __name__ == "__main__":
    sys.exit(main())
