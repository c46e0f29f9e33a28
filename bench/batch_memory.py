"""Peak BE memory of one routine load task that takes a whole ~100 MB Kafka batch.

    .venv/bin/python -m bench.batch_memory [--mb 100] [--partitions 8] [--be-config write_buffer_size=4194304]

A fresh cluster (3 BEs, embedded broker, free loopback ports) and ~100 MB of the sample
workload's ~100-byte JSON events in one topic, produced before the job exists. One routine load
job with one task (desired_concurrent_number 1), max_batch_size 100 MB and max_batch_rows /
max_batch_interval / task_consume_second large enough that that task takes the whole topic in
one batch (it ends at the end of the partitions). While it runs, each BE's VmRSS is sampled
every 50 ms; VmHWM (the kernel's own peak) is read when the rows are visible, before any check
reads them back. Printed: the idle RSS of each BE (after start-up and CREATE TABLE), the peak of
the coordinator BE and of the others, the rows loaded and the number of transactions it took.
Then every id is checked to be in the table exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from bench.common import be_nodes, bench_cluster, format_table, rss_mb, write_json
from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from deploy import workload
from deploy.cluster import LocalCluster

MB = 1_000_000
MAX_BATCH_SIZE = 100 * 1024 * 1024  # 100 MiB: the default max_batch_size, a little above the 100 MB produced
# (with --mb above 100 the job's max_batch_size grows with it, so that one task still takes the whole topic)
FE_CONFIG = {"routine_load_task_consume_second": "300", "routine_load_task_timeout_second": "600"}


def vm_hwm_mb(pid: int | None) -> float | None:
    """Peak resident set size of ``pid`` in MB (VmHWM of /proc/<pid>/status); None if it is gone."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def rows_for(target_bytes: int) -> tuple[int, int]:
    """How many workload events make ``target_bytes`` of message values, and their exact size."""
    n = size = 0
    while size < target_bytes:
        size += len(workload.event(n))
        n += 1
    return n, size


async def produce(broker: str, topic: str, partitions: int, rows: int) -> float:
    started = time.monotonic()
    await workload.create_topic(broker, topic, partitions)
    await workload.Producer(broker, topic, partitions, 0, rows, rate=1e12).run()
    return time.monotonic() - started


class RssSampler:
    """VmRSS of every BE every ``interval_s``, keeping each one's peak (an asyncio task)."""

    def __init__(self, pids: dict[str, int | None], interval_s: float = 0.05) -> None:
        self._pids = pids
        self._interval_s = interval_s
        self.peak: dict[str, float] = {n: 0.0 for n in pids}
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rss-sampler")

    async def _run(self) -> None:
        while True:
            for node, pid in self._pids.items():
                rss = rss_mb(pid)
                if rss is not None and rss > self.peak[node]:
                    self.peak[node] = rss
            await asyncio.sleep(self._interval_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def job_stats(admin: admin_pb2_grpc.AdminServiceStub) -> tuple[str, dict, str]:
    jobs = (await admin.ShowRoutineLoad(admin_pb2.ShowRoutineLoadRequest(db=workload.DB, name=workload.JOB),
                                        timeout=10)).jobs
    if not jobs:
        return "?", {}, ""
    return jobs[0].state, json.loads(jobs[0].statistic or "{}"), jobs[0].reason_of_state_changed


async def wait_loaded(admin: admin_pb2_grpc.AdminServiceStub, rows: int, timeout_s: float) -> dict:
    """Wait (deadline-bound) until the job committed ``rows`` rows and they are visible."""
    deadline = time.monotonic() + timeout_s
    stats: dict = {}
    while time.monotonic() < deadline:
        state, stats, reason = await job_stats(admin)
        if state in ("PAUSED", "STOPPED", "CANCELLED"):
            raise RuntimeError(f"the job is {state}: {reason}")
        if stats.get("loadedRows", 0) >= rows:
            resp = await admin.Query(admin_pb2.QueryRequest(db=workload.DB, table=workload.TABLE, limit=0),
                                     timeout=120)
            if resp.count >= rows:
                return stats
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{stats.get('loadedRows', 0):,} of {rows:,} rows loaded after {timeout_s:.0f} s ({stats})")


async def run(cluster: LocalCluster, args) -> dict:
    broker, fe = cluster.broker_address, cluster.fe_address
    rows, size = rows_for(int(args.mb * MB))
    topic = "batch_memory"
    produce_s = await produce(broker, topic, args.partitions, rows)
    print(f"produced {rows:,} messages, {size / MB:.1f} MB, into {args.partitions} partitions "
          f"in {produce_s:.1f} s", flush=True)
    nodes = be_nodes(cluster)
    pids = {n: cluster.pid(n) for n in nodes}
    async with workload.channel(fe) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        await workload.create_schema(admin)
        idle = {n: rss_mb(pid) for n, pid in pids.items()}
        sampler = RssSampler(pids)
        sampler.start()
        started = time.monotonic()
        try:
            await admin.CreateRoutineLoad(admin_pb2.CreateRoutineLoadRequest(
                db=workload.DB, name=workload.JOB, table=workload.TABLE, columns=workload.MAPPING,
                properties={"format": "json", "jsonpaths": workload.JSONPATHS, "timezone": "UTC",
                            "desired_concurrent_number": "1", "max_batch_interval": "300",
                            "max_batch_rows": str(rows * 2),
                            "max_batch_size": str(max(MAX_BATCH_SIZE, size + size // 20)),
                            "task_consume_second": "300", "task_timeout_second": "600"},
                data_source_properties={"kafka_broker_list": broker, "kafka_topic": topic,
                                        "property.kafka_default_offsets": "OFFSET_BEGINNING"}))
            stats = await wait_loaded(admin, rows, args.timeout)
        finally:
            await sampler.close()
        load_s = time.monotonic() - started
        hwm = {n: vm_hwm_mb(pid) for n, pid in pids.items()}
        await admin.StopRoutineLoad(admin_pb2.RoutineLoadRequest(db=workload.DB, name=workload.JOB))
        verdict = await workload.verdict(admin, rows)
    coordinator = max(nodes, key=lambda n: hwm[n] or 0.0)
    per_be = [{"be": n + (" (task)" if n == coordinator else ""), "idle_rss_mib": idle[n],
               "peak_rss_mib (sampled)": sampler.peak[n], "VmHWM_mib": hwm[n]} for n in nodes]
    return {
        "batch_mb": round(size / MB, 1), "rows": rows, "partitions": args.partitions,
        "be_config": args.be_config, "load_s": round(load_s, 1),
        "loaded_rows": verdict.loaded, "missing": len(verdict.missing), "duplicated": len(verdict.duplicated),
        "inconsistent_tablets": verdict.inconsistent_tablets,
        "committed_tasks": stats.get("committedTaskNum"), "aborted_tasks": stats.get("abortedTaskNum"),
        "idle_be_rss_mib": round(min(v for v in idle.values() if v is not None), 1),
        "peak_be_rss_mib": round(max(hwm[n] or 0.0 for n in nodes), 1),
        "per_be": per_be,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=float, default=100, help="MB (10^6 bytes) of message values to produce")
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--timeout", type=float, default=600, help="seconds the load may take")
    p.add_argument("--be-config", nargs="*", default=[], help="name=value BE configs")
    args = p.parse_args()
    be_config = dict(item.split("=", 1) for item in args.be_config)
    with bench_cluster(3, with_broker=True, fe_config=FE_CONFIG, be_config=be_config) as cluster:
        result = asyncio.run(run(cluster, args))
    print()
    for line in format_table(result["per_be"]):
        print(line)
    print(f"\nbatch {result['batch_mb']} MB, {result['rows']:,} rows in {result['partitions']} partitions, "
          f"one task: loaded {result['loaded_rows']:,} in {result['load_s']} s "
          f"({result['committed_tasks']} committed, {result['aborted_tasks']} aborted tasks)")
    print(f"idle BE RSS {result['idle_be_rss_mib']} MiB; peak BE RSS {result['peak_be_rss_mib']} MiB")
    ok = (result["loaded_rows"] == result["rows"] and not result["missing"] and not result["duplicated"]
          and not result["inconsistent_tablets"])
    print("every row exactly once: " + ("yes" if ok else
          f"NO ({result['missing']} missing, {result['duplicated']} duplicated, "
          f"{result['inconsistent_tablets']} inconsistent tablets)"))
    print(f"written to {write_json('batch_memory', result)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
