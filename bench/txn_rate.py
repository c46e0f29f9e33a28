"""Small-transaction commit-and-publish rate, beside the raw synced edit-log append rate.

    .venv/bin/python -m bench.txn_rate [--loads 300] [--concurrency 8]

Each load is a one-row Stream Load into an RF=3 MAJORITY table: begin, write 3 replicas,
commit (quorum check, one synced edit-log record), publish to 3 replicas (another record),
VISIBLE. The baseline is how fast this machine appends synced records to a RocksDB edit log.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile

from bench.common import Timer, bench_cluster, one_row_load, report, timed_loads
from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from common.rpc import admin_channel
from fe.persist.editlog import EditLog


def editlog_appends_per_s(n: int = 2000) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        log = EditLog(tmp)
        log.load()
        record = {"txn_id": 1, "partition_versions": [[1, 2]], "tablet_backends": [[1, [1, 2, 3]]]}
        with Timer() as t:
            for _ in range(n):
                log.append("txn.commit", record)
        log.close()
    return n / t.seconds


async def small_loads(fe: str, loads: int, concurrency: int) -> float:
    async with admin_channel(fe) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        await admin.CreateDatabase(admin_pb2.CreateDatabaseRequest(db="b"))
        await admin.CreateTable(admin_pb2.CreateTableRequest(
            db="b", table="t", columns=[admin_pb2.ColumnDef(name="id", type="BIGINT")], distributed_by=["id"],
            buckets=1, properties={"replication_num": "3"}))
        seconds = await timed_loads(admin, range(loads), concurrency)
        count = await admin.Query(admin_pb2.QueryRequest(db="b", table="t", limit=0))
        assert count.count == loads
        return loads / seconds


async def one_client_latency(fe: str, loads: int) -> tuple[float, float]:
    """p50 and p90 (ms) of one-row loads to VISIBLE sent one after another by one client (b.t exists)."""
    async with admin_channel(fe) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        latencies = []
        for i in range(loads):
            res = await one_row_load(admin, "b", "t", i, f"seq{i}")
            assert res.ok, res.error
            latencies.append(res.latency_ms)
    qs = statistics.quantiles(latencies, n=10)
    return statistics.median(latencies), qs[8]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loads", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=8)
    args = p.parse_args()
    baseline = editlog_appends_per_s()
    with bench_cluster(3) as cluster:
        rate = asyncio.run(small_loads(cluster.fe_address, args.loads, args.concurrency))
        p50, p90 = asyncio.run(one_client_latency(cluster.fe_address, args.loads))
    report("txn_rate", [
        {"figure": "synced edit-log appends (baseline)", "per second": f"{baseline:,.0f}", "ratio": "1.00"},
        {"figure": f"1-row stream loads to VISIBLE, RF=3, {args.concurrency} at a time", "per second": f"{rate:,.1f}",
         "ratio": f"{rate / baseline:.3f}"},
        {"figure": "1-row stream load to VISIBLE, RF=3, one client, latency", "per second": "",
         "ratio": f"p50 {p50:.1f} ms, p90 {p90:.1f} ms (target p50 <= 10 ms)"},
    ])


if __name__ == "__main__":
    main()
