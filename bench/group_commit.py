"""Group commit (Doris 2.1) of one-row Stream Loads, beside the synced edit-log append rate.

    .venv/bin/python -m bench.group_commit [--loads 6000] [--clients 64]

Each load is a one-row StreamLoad (client -> FE -> the table's group commit BE) into an RF=3
MAJORITY table, ``--clients`` loads in flight at a time. Figures: off_mode (a txn per load, the
plain path), sync_mode (answered once the shared txn is VISIBLE) and async_mode (answered once
the group is in the BE's WAL; the time until every row is visible is given too). The baseline is
how fast this machine appends synced records to a RocksDB edit log (bench/txn_rate.py). CPU
seconds per process during each run say where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import bench_cluster, cpu_seconds, create_one_row_table, one_row_load, report
from bench.txn_rate import editlog_appends_per_s
from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from common.rpc import admin_channel
from deploy.cluster import LocalCluster


async def run_loads(admin: admin_pb2_grpc.AdminServiceStub, table: str, ids: range, clients: int) -> float:
    """One-row loads of ``ids`` into g.<table>, ``clients`` at a time; the seconds they took."""
    queue = list(ids)

    async def client() -> None:
        while queue:
            i = queue.pop()
            res = await one_row_load(admin, "g", table, i, f"{table}-{i}")
            assert res.ok, res.error

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - began


async def count(admin: admin_pb2_grpc.AdminServiceStub, table: str) -> int:
    return (await admin.Query(admin_pb2.QueryRequest(db="g", table=table, limit=0), timeout=60)).count


async def measure(cluster: LocalCluster, mode: str, loads: int, clients: int) -> dict:
    pids = {n: cluster.pid(n) for n in cluster.nodes() if n == "fe" or n.startswith("be")}
    async with admin_channel(cluster.fe_address) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        table = mode.removesuffix("_mode")
        await create_one_row_table(admin, "g", table)
        await admin.AlterTable(admin_pb2.AlterTableRequest(db="g", table=table, properties={"group_commit": mode}))
        warm = clients * 4
        await run_loads(admin, table, range(warm), clients)  # warm-up: channels, the table's first groups
        before = {n: cpu_seconds(p) or 0.0 for n, p in pids.items()}
        client_before = time.process_time()
        started = time.perf_counter()
        seconds = await run_loads(admin, table, range(warm, warm + loads), clients)
        client_cpu = time.process_time() - client_before
        cpu = {n: (cpu_seconds(p) or 0.0) - before[n] for n, p in pids.items()}
        while await count(admin, table) < loads + warm:  # async_mode: answered before visible
            await asyncio.sleep(0.02)
        visible_s = time.perf_counter() - started
        txns = await admin.ShowTransactions(admin_pb2.ShowTransactionsRequest(db="g", limit=100_000))
        used = {t.transaction_id for t in txns.transactions if t.table == table}
    busiest = sorted(cpu.items(), key=lambda kv: -kv[1])
    return {"rate": loads / seconds, "seconds": seconds, "txns": len(used), "visible_s": visible_s,
            "cpu": ", ".join(f"{n} {c:.1f}s" for n, c in busiest) + f", client {client_cpu:.1f}s"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loads", type=int, default=6000)
    p.add_argument("--off-loads", type=int, default=1000, help="loads of the off_mode run (slow)")
    p.add_argument("--clients", type=int, default=64)
    args = p.parse_args()
    baseline = editlog_appends_per_s()
    rows = [{"figure": "synced edit-log appends (baseline)", "per second": f"{baseline:,.0f}", "ratio": "1.00",
             "txns": "-", "CPU during the run": "-"}]
    with bench_cluster(3) as cluster:
        for mode, loads in (("off_mode", args.off_loads), ("sync_mode", args.loads), ("async_mode", args.loads)):
            m = asyncio.run(measure(cluster, mode, loads, args.clients))
            rows.append({"figure": f"1-row stream loads, group_commit {mode}, {args.clients} clients",
                         "per second": f"{m['rate']:,.0f}", "ratio": f"{m['rate'] / baseline:.3f}",
                         "txns": f"{m['txns']} for {loads + args.clients * 4} loads",
                         "CPU during the run": f"{m['seconds']:.1f} s wall (all visible at {m['visible_s']:.1f} s): "
                                               f"{m['cpu']}"})
    report("group_commit", rows)


if __name__ == "__main__":
    main()
