"""Stream Load over HTTP, as curl users load: PUT to the FE, its 307, the body to a BE.

    .venv/bin/python -m bench.http_load [--loads 2000] [--clients 8] [--gc-loads 6000] [--gc-clients 64]

Each load follows the FE's redirect the way ``curl --location-trusted`` does (a PUT to the FE's
HTTP port, the 307, the same PUT with the body and the Basic credentials to the BE it names),
over one keep-alive aiohttp session per client. Figures, each beside its same-run baseline:

- one-row loads to VISIBLE into an RF=3 MAJORITY table, ``--clients`` at a time, and one client's
  latency (baseline: synced edit-log appends, bench/txn_rate.py);
- the same with the table's group_commit sync_mode, ``--gc-clients`` at a time (Doris' group
  commit: many loads share a txn);
- a CSV body of 200k rows (~10 MB) into 8 buckets (baseline: the raw RocksDB write of the same
  rows as columnar segments, bench/stream_load.py).

The gRPC forms of the same figures are bench/txn_rate.py, bench/group_commit.py and
bench/stream_load.py.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp

from bench.common import Timer, bench_cluster, cpu_seconds, create_one_row_table, percentile, report
from bench.stream_load import COLUMNS, csv_body, raw_rocksdb_rows_per_s
from bench.txn_rate import editlog_appends_per_s
from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from common.rpc import admin_channel
from deploy.cluster import LocalCluster

AUTHORIZATION = aiohttp.BasicAuth("root", "").encode()  # -u root:


async def put(session: aiohttp.ClientSession, fe_url: str, db: str, table: str, body: bytes,
              headers: dict[str, str]) -> dict:
    """One Stream Load: the FE's 307, then the body to the BE it names (curl --location-trusted)."""
    url = f"{fe_url}/api/{db}/{table}/_stream_load"
    headers = {**headers, "Authorization": AUTHORIZATION}
    async with session.put(url, headers=headers, allow_redirects=False) as resp:
        if resp.status != 307:
            raise AssertionError(f"the FE answered {resp.status}: {await resp.text()}")
        location = resp.headers["Location"]
    async with session.put(location, data=body, headers=headers) as resp:
        return await resp.json(content_type=None)


async def one_row_loads(fe_url: str, table: str, ids: range, clients: int) -> tuple[float, list[float]]:
    """One-row loads of ``ids`` into b.<table>, ``clients`` at a time: (seconds, latencies in ms)."""
    queue = list(ids)
    latencies: list[float] = []

    async def client() -> None:
        async with aiohttp.ClientSession() as session:
            while queue:
                i = queue.pop()
                started = time.perf_counter()
                answer = await put(session, fe_url, "b", table, b"%d\n" % i, {"label": f"{table}-{i}"})
                assert answer["Status"] == "Success", answer
                latencies.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - began, latencies


async def count(cluster: LocalCluster, db: str, table: str) -> int:
    async with admin_channel(cluster.fe_address) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        return (await admin.Query(admin_pb2.QueryRequest(db=db, table=table, limit=0), timeout=60)).count


async def small_loads(cluster: LocalCluster, table: str, loads: int, clients: int,
                      group_commit: str = "") -> dict:
    async with admin_channel(cluster.fe_address) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        await create_one_row_table(admin, "b", table)
        if group_commit:
            await admin.AlterTable(admin_pb2.AlterTableRequest(db="b", table=table,
                                                               properties={"group_commit": group_commit}))
    fe_url = cluster.fe_http_url()
    warm = clients * 2
    await one_row_loads(fe_url, table, range(warm), clients)  # warm-up: connections, the first groups
    pids = {n: cluster.pid(n) for n in cluster.nodes() if n == "fe" or n.startswith("be")}
    before = {n: cpu_seconds(p) or 0.0 for n, p in pids.items()}
    client_before = time.process_time()
    seconds, latencies = await one_row_loads(fe_url, table, range(warm, warm + loads), clients)
    cpu = {n: (cpu_seconds(p) or 0.0) - before[n] for n, p in pids.items()}
    cpu["client"] = time.process_time() - client_before
    assert await count(cluster, "b", table) == warm + loads
    return {"rate": loads / seconds, "p50": statistics.median(latencies), "p90": percentile(latencies, 90),
            "cpu": ", ".join(f"{n} {c:.1f}s" for n, c in sorted(cpu.items(), key=lambda kv: -kv[1]))}


async def one_client(cluster: LocalCluster, loads: int) -> tuple[float, float]:
    """p50 and p90 (ms) of one-row loads one after another by one client (b.one exists)."""
    _, latencies = await one_row_loads(cluster.fe_http_url(), "one", range(10_000_000, 10_000_000 + loads), 1)
    return statistics.median(latencies), percentile(latencies, 90) or 0.0


async def big_loads(cluster: LocalCluster, rows: int, loads: int) -> tuple[float, float, int]:
    """The best load's rows/s, its ms, and the BE's LoadTimeMs."""
    async with admin_channel(cluster.fe_address) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        await admin.CreateDatabase(admin_pb2.CreateDatabaseRequest(db="bench"))
        await admin.CreateTable(admin_pb2.CreateTableRequest(
            db="bench", table="events", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
            buckets=8, properties={"replication_num": "3", "write_quorum": "MAJORITY"}))
    best = best_ms = 0.0
    be_ms = 0
    async with aiohttp.ClientSession() as session:
        for i in range(loads):
            body = csv_body(i * rows, rows)
            with Timer() as t:
                answer = await put(session, cluster.fe_http_url(), "bench", "events", body,
                                   {"label": f"big-{i}", "column_separator": ","})
            assert answer["Status"] == "Success", answer
            if rows / t.seconds > best:
                best, best_ms, be_ms = rows / t.seconds, t.seconds * 1000, answer["LoadTimeMs"]
    assert await count(cluster, "bench", "events") == rows * loads
    return best, best_ms, be_ms


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loads", type=int, default=2000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--gc-loads", type=int, default=6000)
    p.add_argument("--gc-clients", type=int, default=64)
    p.add_argument("--latency-loads", type=int, default=300)
    p.add_argument("--rows", type=int, default=200_000, help="rows per CSV load")
    p.add_argument("--big-loads", type=int, default=3)
    args = p.parse_args()
    appends = editlog_appends_per_s()
    raw = raw_rocksdb_rows_per_s(args.rows)
    with bench_cluster(3) as cluster:
        off = asyncio.run(small_loads(cluster, "off", args.loads, args.clients))
        asyncio.run(small_loads(cluster, "one", 10, 1))
        p50, p90 = asyncio.run(one_client(cluster, args.latency_loads))
        gc = asyncio.run(small_loads(cluster, "gc", args.gc_loads, args.gc_clients, group_commit="sync_mode"))
        big, big_ms, be_ms = asyncio.run(big_loads(cluster, args.rows, args.big_loads))
    report("http_load", [
        {"figure": "synced edit-log appends (baseline)", "value": f"{appends:,.0f} /s", "ratio": "1.00",
         "CPU during the run": ""},
        {"figure": f"HTTP 1-row stream loads to VISIBLE, RF=3, {args.clients} clients", "value": f"{off['rate']:,.0f} /s",
         "ratio": f"{off['rate'] / appends:.3f} (target 500 /s)", "CPU during the run": off["cpu"]},
        {"figure": "HTTP 1-row stream load to VISIBLE, RF=3, one client", "value": f"p50 {p50:.1f} ms, p90 {p90:.1f} ms",
         "ratio": "target p50 <= 10 ms", "CPU during the run": ""},
        {"figure": f"HTTP 1-row stream loads, group_commit sync_mode, {args.gc_clients} clients",
         "value": f"{gc['rate']:,.0f} /s", "ratio": f"{gc['rate'] / appends:.3f} (target 5,000 /s)",
         "CPU during the run": gc["cpu"]},
        {"figure": "raw RocksDB write, 3 replicas, columnar segments (baseline)", "value": f"{raw:,.0f} rows/s",
         "ratio": "1.00", "CPU during the run": ""},
        {"figure": f"HTTP StreamLoad RF=3 MAJORITY, CSV, {args.rows:,} rows a load",
         "value": f"{big:,.0f} rows/s ({big_ms:.0f} ms a load, BE {be_ms} ms)",
         "ratio": f"{big / raw:.3f} (target >= 0.25)", "CPU during the run": ""},
    ])


if __name__ == "__main__":
    main()
