"""Repair after a BE dies: time to all tablets healthy and clone MB/s, beside the raw RocksDB copy rate.

    .venv/bin/python -m bench.repair [--rows 1000000]

An RF=3 table on 4 BEs holds ``rows`` rows (loaded by Stream Load). One BE is SIGKILLed; the
figure is the time from the FE marking it dead to UnhealthyTabletNum = 0 (repair delay 0, so
the clones start at once), and the bytes its replicas held divided by that time. The baseline
copies the same amount of rowset data from one RocksDB to another in 4 MB batches.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
import time
from datetime import datetime

from rocksdict import Options, Rdict, WriteBatch, WriteOptions

from bench.common import Timer, bench_cluster, report
from bench.stream_load import COLUMNS, csv_body
from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc, types_pb2
from common.rpc import admin_channel

FE_CONFIG = {
    "heartbeat_timeout_second": "2",
    "tablet_sched_repair_delay_factor_second": "0",
    "tablet_sched_checker_interval_seconds": "1",
    "tablet_sched_slot_num_per_path": "4",
    "tablet_sched_disable_balance": "true",
}


def raw_copy_mb_s(total_bytes: int) -> float:
    chunk = os.urandom(1 << 20)
    with tempfile.TemporaryDirectory() as tmp:
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        src = Rdict(os.path.join(tmp, "src"), opts)
        dst = Rdict(os.path.join(tmp, "dst"), opts)
        n = max(total_bytes >> 20, 1)
        batch = WriteBatch(raw_mode=True)
        for i in range(n):
            batch.put(b"rs/%08d" % i, chunk)
        src.write(batch)
        wal = WriteOptions()
        with Timer() as t:
            batch, size = WriteBatch(raw_mode=True), 0
            for key, value in src.items():
                batch.put(key, value)
                size += len(value)
                if size >= 4 << 20:
                    dst.write(batch, wal)
                    batch, size = WriteBatch(raw_mode=True), 0
            dst.write(batch, wal)
        src.close()
        dst.close()
    return n * len(chunk) / t.seconds / 1e6


async def repair(cluster, rows: int) -> tuple[float, int, int]:
    async with admin_channel(cluster.fe_address) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        await admin.CreateDatabase(admin_pb2.CreateDatabaseRequest(db="bench"))
        await admin.CreateTable(admin_pb2.CreateTableRequest(
            db="bench", table="t", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"], buckets=8,
            properties={"replication_num": "3"}))
        step = 250_000
        for start in range(0, rows, step):
            res = await admin.StreamLoad(types_pb2.StreamLoadRequest(
                db="bench", table="t", label=f"l{start}", data=csv_body(start, min(step, rows - start))), timeout=600)
            assert res.status == "Success", res
        backends = (await admin.ShowBackends(admin_pb2.ShowBackendsRequest())).backends
        victim = backends[0]
        tablets = (await admin.ShowTablets(admin_pb2.ShowTabletsRequest(db="bench", table="t"))).tablets
        lost = [r for r in tablets if r.backend_id == victim.backend_id]
        lost_bytes = sum(r.data_size for r in lost)
        node = next(f"be{i}" for i in range(cluster.spec.bes) if cluster.spec.be_port_of(i) == victim.be_port)
        cluster.kill_node(node)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            bes = (await admin.ShowBackends(admin_pb2.ShowBackendsRequest())).backends
            if not next(b for b in bes if b.backend_id == victim.backend_id).alive:
                break
            await asyncio.sleep(0.05)
        with Timer() as t:
            while time.monotonic() < deadline:
                if await _repaired(admin, victim.backend_id):
                    break
                await asyncio.sleep(0.1)
        history = await admin.ShowProc(admin_pb2.ShowProcRequest(path="/cluster_balance/history_tablets"))
        err = list(history.column_names).index("ErrMsg")
        copied = sum(int(m.group(1)) for row in history.rows
                     for m in [re.search(r"\((?:\d+) rowsets, (\d+) bytes\)", row.values[err])] if m)
        count = await admin.Query(admin_pb2.QueryRequest(db="bench", table="t", limit=0))
        assert count.count == rows
        return t.seconds, lost_bytes, copied or lost_bytes, clone_window(cluster)


_CLONE_LINE = re.compile(r"^(\S+ \S+) .*clone from \S+ copied \d+ rowsets \((\d+) bytes\) in ([0-9.]+) s")


def clone_window(cluster) -> tuple[int, float]:
    """(bytes, seconds) over every clone the BEs logged: from the first start to the last end."""
    spans = []
    for i in range(cluster.spec.bes):
        with open(cluster.log_path(f"be{i}"), errors="replace") as f:
            for line in f:
                m = _CLONE_LINE.search(line)
                if m:
                    end = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
                    spans.append((end - float(m.group(3)), end, int(m.group(2))))
    if not spans:
        return 0, 0.0
    return sum(b for _, _, b in spans), max(e for _, e, _ in spans) - min(s for s, _, _ in spans)


async def _repaired(admin: admin_pb2_grpc.AdminServiceStub, dead: int) -> bool:
    """Every tablet has 3 NORMAL replicas at the top version, none on the dead BE."""
    rows = (await admin.ShowTablets(admin_pb2.ShowTabletsRequest(db="bench", table="t"))).tablets
    by_tablet: dict[int, list] = {}
    for r in rows:
        by_tablet.setdefault(r.tablet_id, []).append(r)
    top = max(r.version for r in rows)
    return all(
        len(good) == 3
        for replicas in by_tablet.values()
        for good in [[r for r in replicas if r.backend_id != dead and r.state == "NORMAL" and r.version == top]]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    args = p.parse_args()
    with bench_cluster(4, fe_config=FE_CONFIG) as cluster:
        seconds, lost, copied, (cloned, clone_s) = asyncio.run(repair(cluster, args.rows))
    baseline = raw_copy_mb_s(copied)
    clone = cloned / max(clone_s, 1e-6) / 1e6
    report("repair", [
        {"figure": "raw RocksDB copy, 4 MB batches (baseline)", "value": f"{baseline:,.0f} MB/s", "ratio": "1.00"},
        {"figure": f"repair of a dead BE's replicas ({lost / 1e6:.1f} MB, {args.rows:,} rows on RF=3)",
         "value": f"{seconds:.2f} s from detection to all healthy", "ratio": ""},
        {"figure": f"clone throughput: {cloned / 1e6:.1f} MB in {clone_s:.2f} s from the first clone's start "
                   "to the last one's end", "value": f"{clone:,.1f} MB/s", "ratio": f"{clone / baseline:.3f}"},
    ])


if __name__ == "__main__":
    main()
