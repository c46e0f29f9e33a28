"""`make demo`: the main job, end to end, in a couple of minutes.

Starts the local cluster (broker, FE, 3 BEs) unless it is up, creates a topic and a bounded
producer of sample events, an RF=3 MAJORITY table and a routine load job; shows live progress;
half-way kills a BE, shows the FE detect it and the replicas being repaired after the BE is
back; ends with a verdict (produced N, loaded N, duplicates 0, missing 0, all tablets healthy)
and leaves the cluster running.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import grpc

from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from deploy import workload
from deploy.cluster import ClusterSpec, LocalCluster

TOPIC_PARTITIONS = 8
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

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {text}", flush=True)

    async def run(self) -> int:
        spec = self.cluster.spec
        topic = f"demo_events_{int(time.time())}"
        async with workload.channel(self.cluster.fe_address) as channel:
            admin = admin_pb2_grpc.AdminServiceStub(channel)
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
            return await self._verdict(admin, producer.produced)

    async def _fresh_schema(self, admin: admin_pb2_grpc.AdminServiceStub) -> None:
        try:
            await admin.DropDatabase(admin_pb2.DropDatabaseRequest(db=workload.DB, if_exists=True))
        except grpc.aio.AioRpcError as exc:
            self.say(f"could not drop the previous demo database: {exc.details()}")
        await workload.create_schema(admin)

    async def _status(self, admin) -> workload.Snapshot:
        snap = await workload.snapshot(admin)
        now = time.monotonic()
        rate = (snap.loaded - self.last_loaded) / max(now - self.last_t, 1e-6) if snap.loaded >= 0 else 0
        self.last_loaded, self.last_t = max(snap.loaded, self.last_loaded), now
        lag = sum(snap.lag.values())
        self.say(f"loaded {max(snap.loaded, 0):>9,} rows  {rate:>8,.0f} rows/s  lag {lag:>6,}  "
                 f"tablets unhealthy {snap.unhealthy:>3}  BEs alive {snap.alive_bes}/{snap.total_bes}  "
                 f"job {snap.job_state}" + (f"  ({snap.error})" if snap.error else ""))
        return snap

    async def _watch(self, admin, producer: workload.Producer, produce: asyncio.Task, spec: ClusterSpec) -> None:
        victim = "be1"
        kill_at = 0.35 * self.events / self.rate
        phase = "loading"
        killed_at = restarted_at = 0.0
        deadline = time.monotonic() + self.events / self.rate + 240
        while time.monotonic() < deadline:
            await asyncio.sleep(2)
            snap = await self._status(admin)
            elapsed = time.monotonic() - self.t0
            if phase == "loading" and elapsed >= kill_at:
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
        g = f".venv/bin/grpcurl -plaintext -d '{{\"db\":\"{workload.DB}\",\"name\":\"{workload.JOB}\"}}' {fe}"
        print("\nLook further (the cluster is still running):")
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
    args = p.parse_args(argv)
    cluster = LocalCluster(args.run_dir)
    running = cluster.has_spec() and all(cluster.pid(n) for n in cluster.nodes())
    if running and (not cluster.spec.with_broker or cluster.spec.bes < 3):
        print("a cluster without the embedded broker or with fewer than 3 BEs is running; `make stop` first",
              file=sys.stderr)
        return 2
    spec = cluster.spec if running else ClusterSpec(
        bes=3, fe_port=args.fe_port, be_port=args.be_port, broker_port=args.broker_port,
        fe_config=DEMO_FE_CONFIG)
    print("reusing the running cluster" if running else "starting the cluster (broker, FE, 3 BEs) ...", flush=True)
    try:
        cluster.start(spec, timeout_s=90)
    except TimeoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if running:
        # the demo's timings need fast failure detection and repair, whatever the cluster was started with
        asyncio.run(_set_config(cluster.fe_address))
    print(f"cluster up: broker {cluster.broker_address}, FE {cluster.fe_address}, "
          f"BEs {', '.join(cluster.be_address(i) for i in range(3))}; logs and data in {cluster.run_dir}\n")
    return asyncio.run(Demo(cluster, args.events, args.rate).run())


async def _set_config(address: str) -> None:
    async with workload.channel(address) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        for name, value in DEMO_FE_CONFIG.items():
            await admin.SetConfig(admin_pb2.SetConfigRequest(name=name, value=value))


if __name__ == "__main__":
    sys.exit(main())
