"""Stream Load rows/s into an RF=3 MAJORITY table, beside the raw RocksDB write rate of the same rows.

    .venv/bin/python -m bench.stream_load [--rows 200000] [--loads 3] [--keep]

Baseline: the same rows, encoded the way BEs store them (columnar segments of at most
CHUNK_ROWS rows, common/columnar.py), written three times (one per replica) to a fresh RocksDB in
this process, in one write batch per replica. The ratio
"stream load / raw RocksDB" is what the FE + BE machinery costs above the bare storage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile

from rocksdict import Options, Rdict, WriteBatch, WriteOptions

from be.load.writer import CHUNK_ROWS
from bench.common import Timer, bench_cluster, report
from common import columnar
from common.coltypes import Column, parse_type
from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc, types_pb2
from common.rpc import admin_channel

COLUMNS = [
    admin_pb2.ColumnDef(name="id", type="BIGINT", not_null=True),
    admin_pb2.ColumnDef(name="ts", type="DATETIME"),
    admin_pb2.ColumnDef(name="user", type="VARCHAR(32)"),
    admin_pb2.ColumnDef(name="event", type="VARCHAR(32)"),
    admin_pb2.ColumnDef(name="amount", type="DOUBLE"),
]


def csv_body(start: int, n: int) -> bytes:
    return "".join(
        f"{i},2024-05-01 12:{i % 60:02d}:{i % 60:02d},user{i % 1000},click{i % 7},{i * 0.25}\n"
        for i in range(start, start + n)
    ).encode()


def raw_rocksdb_rows_per_s(rows: int) -> float:
    data = [(i, "2024-05-01 12:00:00", f"user{i % 1000}", f"click{i % 7}", i * 0.25) for i in range(rows)]
    schema = columnar.arrow_schema([Column(c.name, parse_type(c.type), not c.not_null) for c in COLUMNS])
    table = columnar.table_from_rows(data, schema)
    chunks = [columnar.encode_segment(table.slice(i, CHUNK_ROWS)) for i in range(0, rows, CHUNK_ROWS)]
    with tempfile.TemporaryDirectory() as tmp:
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        db = Rdict(os.path.join(tmp, "db"), opts)
        wal = WriteOptions()
        with Timer() as t:
            for replica in range(3):
                batch = WriteBatch(raw_mode=True)
                for n, payload in enumerate(chunks):
                    batch.put(b"rs/%d/%d" % (replica, n), payload)
                db.write(batch, wal)
        db.close()
    return rows / t.seconds


async def stream_load_rows_per_s(address: str, rows: int, loads: int) -> tuple[float, float, float, int]:
    """The best load's rows/s, MB/s, client-side ms and the coordinator BE's load_time_ms."""
    async with admin_channel(address) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        await admin.CreateDatabase(admin_pb2.CreateDatabaseRequest(db="bench"))
        await admin.CreateTable(admin_pb2.CreateTableRequest(
            db="bench", table="events", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
            buckets=8, properties={"replication_num": "3", "write_quorum": "MAJORITY"}))
        bodies = [csv_body(i * rows, rows) for i in range(loads)]
        best = mb = best_ms = 0.0
        be_ms = 0
        for i, body in enumerate(bodies):
            with Timer() as t:
                res = await admin.StreamLoad(types_pb2.StreamLoadRequest(
                    db="bench", table="events", label=f"bench-{i}", data=body), timeout=600)
            assert res.status == "Success", res
            if rows / t.seconds > best:
                best, mb, best_ms, be_ms = rows / t.seconds, len(body) / t.seconds / 1e6, t.seconds * 1000, \
                    res.load_time_ms
        count = await admin.Query(admin_pb2.QueryRequest(db="bench", table="events", limit=0))
        assert count.count == rows * loads, count
        return best, mb, best_ms, be_ms


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200_000, help="rows per load")
    p.add_argument("--loads", type=int, default=3, help="loads (the best is reported)")
    p.add_argument("--keep", action="store_true", help="keep the cluster's run dir (its logs: each load's timings)")
    args = p.parse_args()
    baseline = raw_rocksdb_rows_per_s(args.rows)
    with bench_cluster(3, keep=args.keep) as cluster:
        rate, mb_s, ms, be_ms = asyncio.run(stream_load_rows_per_s(cluster.fe_address, args.rows, args.loads))
    report("stream_load", [
        {"figure": "raw RocksDB write, 3 replicas, columnar segments (baseline)", "rows/s": f"{baseline:,.0f}",
         "MB/s": "", "ms/load": f"{args.rows / baseline * 1000:.0f}", "ratio": "1.00"},
        {"figure": "StreamLoad RF=3 MAJORITY, CSV, 5 columns", "rows/s": f"{rate:,.0f}", "MB/s": f"{mb_s:.1f}",
         "ms/load": f"{ms:.0f} (coordinator BE {be_ms})", "ratio": f"{rate / baseline:.3f} (target >= 0.25)"},
    ])


if __name__ == "__main__":
    main()
