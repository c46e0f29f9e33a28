"""Query rows scanned per second on an RF=3 table: count(*) with one predicate, and an aggregate
grouped by a column, beside the same work done by pyarrow.compute in this process.

    .venv/bin/python -m bench.query [--rows 10000000] [--pieces 10] [--buckets 8] [--repeat 3]

The table has the stream_load bench's 5 columns (BIGINT id, DATETIME ts, VARCHAR user, VARCHAR
event, DOUBLE amount) and is loaded by StreamLoad in ``--pieces`` CSV pieces. Queries read one
replica per tablet at the visible version, as every Query does: ``--rows`` rows in all.

Baseline: the same rows as one in-memory Arrow table in this process, and the same work on it
with pyarrow.compute (pc.greater + sum for the count; Table.group_by for the aggregate). The
ratio "Query / in-memory pyarrow" is what reading RocksDB, the RPCs, the FE and the BEs cost
above the bare kernels. Target: Query count(*) with one predicate >= 10M rows/s scanned.
"""

from __future__ import annotations

import argparse
import asyncio

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from bench.common import Timer, be_nodes, bench_cluster, report
from bench.stream_load import COLUMNS, csv_body
from common.coltypes import Column, parse_type
from common.columnar import arrow_schema
from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc, backend_pb2, backend_pb2_grpc, types_pb2
from common.rpc import admin_channel, cluster_channel
from deploy.cluster import LocalCluster

TARGET_ROWS_PER_S = 10_000_000


def threshold(rows: int) -> float:
    """amount = id * 0.25 (bench.stream_load.csv_body): ``amount > threshold`` matches half the rows."""
    return rows * 0.25 / 2


def in_memory_table(rows: int) -> pa.Table:
    """The rows csv_body loads, as one Arrow table of the segments' schema (common/columnar.py),
    built by polars: no Python loop per row."""
    i = pl.col("id")
    df = pl.DataFrame({"id": pl.int_range(0, rows, eager=True, dtype=pl.Int64)}).with_columns(
        ts=pl.datetime(2024, 5, 1, 12, i % 60, i % 60),
        user=pl.format("user{}", i % 1000),
        event=pl.format("click{}", i % 7),
        amount=i.cast(pl.Float64) * 0.25,
    )
    columns = [Column(c.name, parse_type(c.type), nullable=not c.not_null) for c in COLUMNS]
    return df.to_arrow().cast(arrow_schema(columns))


def best_of(repeat: int, fn) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        with Timer() as t:
            out = fn()
        best = min(best, t.seconds)
    return best, out


def baseline(rows: int, repeat: int) -> tuple[float, float]:
    """Seconds of count(amount > X) and of count(*), sum(amount) group by event, in memory."""
    table = in_memory_table(rows)
    x = pa.scalar(threshold(rows))
    count_s, count = best_of(repeat, lambda: pc.sum(pc.greater(table["amount"], x)).as_py())
    assert count == rows - rows // 2 - 1, count
    agg_s, groups = best_of(repeat, lambda: table.group_by("event").aggregate([([], "count_all"), ("amount", "sum")]))
    assert groups.num_rows == min(rows, 7)
    return count_s, agg_s


async def compactions_settled(cluster: LocalCluster, timeout_s: float = 300.0) -> float:
    """Wait until no BE runs a compaction (the loads leave some behind); the seconds waited."""
    channels = [cluster_channel(cluster.be_address(int(n[2:])), cluster.spec.cluster_token) for n in be_nodes(cluster)]
    stubs = [backend_pb2_grpc.BackendServiceStub(c) for c in channels]
    idle_rounds = 0
    try:
        with Timer() as t:
            deadline = asyncio.get_running_loop().time() + timeout_s
            while idle_rounds < 3 and asyncio.get_running_loop().time() < deadline:
                infos = await asyncio.gather(*(s.GetBackendInfo(backend_pb2.GetBackendInfoRequest(), timeout=10)
                                               for s in stubs))
                idle_rounds = idle_rounds + 1 if all(i.compaction_running == 0 for i in infos) else 0
                await asyncio.sleep(1.0)
    finally:
        await asyncio.gather(*(c.close() for c in channels), return_exceptions=True)
    return t.seconds


async def load_and_query(cluster: LocalCluster, rows: int, pieces: int, buckets: int,
                         repeat: int) -> dict[str, float]:
    async with admin_channel(cluster.fe_address) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        await admin.CreateDatabase(admin_pb2.CreateDatabaseRequest(db="bench"))
        await admin.CreateTable(admin_pb2.CreateTableRequest(
            db="bench", table="events", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
            buckets=buckets, properties={"replication_num": "3", "write_quorum": "MAJORITY"}))
        per_piece = -(-rows // pieces)
        load_s = 0.0
        for n, start in enumerate(range(0, rows, per_piece)):
            body = csv_body(start, min(per_piece, rows - start))
            with Timer() as t:
                res = await admin.StreamLoad(types_pb2.StreamLoadRequest(
                    db="bench", table="events", label=f"bench-query-{n}", data=body), timeout=3600)
            assert res.status == "Success", res
            load_s += t.seconds
            print(f"loaded piece {n + 1}: {res.number_loaded_rows:,} rows in {t.seconds:.1f} s", flush=True)
        # the scans are timed alone, not beside the compactions the loads started
        print(f"compactions settled after {await compactions_settled(cluster):.1f} s", flush=True)

        async def timed(req: admin_pb2.QueryRequest) -> tuple[float, admin_pb2.QueryResponse]:
            best, out = float("inf"), None
            for _ in range(repeat):
                with Timer() as t:
                    out = await admin.Query(req, timeout=600)
                best = min(best, t.seconds)
            return best, out

        pred = types_pb2.Predicate(column="amount", op=">", value=repr(threshold(rows)))
        count_s, res = await timed(admin_pb2.QueryRequest(db="bench", table="events", predicates=[pred], limit=0))
        assert res.count == rows - rows // 2 - 1, res.count
        agg_s, res = await timed(admin_pb2.QueryRequest(
            db="bench", table="events", group_by="event",
            aggregates=[types_pb2.Aggregate(func="count", column="*"), types_pb2.Aggregate(func="sum", column="amount")]))
        assert res.count == rows and sum(int(r.values[1]) for r in res.rows) == rows, res
        print("\n".join("  ".join(r.values) for r in [admin_pb2.QueryRow(values=res.column_names), *res.rows]))
        return {"load_s": load_s, "count_s": count_s, "agg_s": agg_s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000, help="rows in the table")
    p.add_argument("--pieces", type=int, default=10, help="StreamLoad calls the rows are loaded in")
    p.add_argument("--buckets", type=int, default=8, help="buckets (tablets) of the table")
    p.add_argument("--repeat", type=int, default=3, help="runs of each query (the best is reported)")
    args = p.parse_args()
    base_count_s, base_agg_s = baseline(args.rows, args.repeat)
    with bench_cluster(3) as cluster:
        got = asyncio.run(load_and_query(cluster, args.rows, args.pieces, args.buckets, args.repeat))
    rows = args.rows

    def line(figure: str, seconds: float, base_s: float, target: str = "") -> dict:
        return {"figure": figure, "rows scanned/s": f"{rows / seconds:,.0f}", "seconds": f"{seconds:.3f}",
                "ratio": f"{base_s / seconds:.3f}", "target": target}

    report("query", [
        line("in-memory pyarrow: count(amount > X) (baseline)", base_count_s, base_count_s),
        line("Query count(*) where amount > X, RF=3", got["count_s"], base_count_s,
             f">= {TARGET_ROWS_PER_S:,}: {'PASS' if rows / got['count_s'] >= TARGET_ROWS_PER_S else 'FAIL'}"),
        line("in-memory pyarrow: count(*), sum(amount) group by event (baseline)", base_agg_s, base_agg_s),
        line("Query count(*), sum(amount) group by event, RF=3", got["agg_s"], base_agg_s),
        {"figure": f"(StreamLoad of the {rows:,} rows in {args.pieces} pieces)", "rows scanned/s": "",
         "seconds": f"{got['load_s']:.1f}", "ratio": "", "target": f"{rows / got['load_s']:,.0f} rows/s loaded"},
    ])


if __name__ == "__main__":
    main()
