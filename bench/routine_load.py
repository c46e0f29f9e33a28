"""Routine load throughput and freshness, each beside baselines measured in the same run.

    .venv/bin/python -m bench.routine_load [--rows 400000] [--rate R] [--seconds 20]

Figures (RF=3, MAJORITY, ~100-byte JSON rows, 8 partitions, 3 BEs):
- raw aiokafka consume rate of the topic (baseline 1: what reading Kafka costs);
- the row-at-a-time lean pipeline: consume -> parse -> route -> encode -> 3 RocksDB writes in one
  process, no FE, no RPC, one Python tuple per row (the row reference plan, crc32 routing, marshal
  rows) (baseline 2: what the load path did before it went columnar);
- routine load end to end: rows/s and MB/s from the job's creation to the last row VISIBLE, as a
  ratio of both baselines;
- freshness: produce-to-visible latency p50/p95/p99 at a steady produce rate of half the end to
  end rate just measured (or --rate), against the target p95 <= max_batch_interval + 0.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from rocksdict import Options, Rdict, WriteBatch, WriteOptions

from be.load.router import Router
from be.load.writer import encode_tablet_rows
from bench.common import Timer, bench_cluster, report
from common import loadformat
from common.coltypes import Column, parse_type
from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc, types_pb2
from common.loadformat import LoadSpec
from deploy import workload

# the row-at-a-time reference plan (the parser's row reference), as the lean baseline's parser
compile_row_load = getattr(loadformat, "compile_row_load", loadformat.compile_load)

PARTITIONS = 8
INTERVAL_S = 1
"""max_batch_interval of the benchmark's jobs."""
FRESHNESS_SLACK_S = 0.5
"""Freshness target: p95 produce-to-visible <= max_batch_interval + this."""
FAST = {"routine_load_task_consume_second": "3", "routine_load_task_timeout_second": "30"}


async def produce_all(broker: str, topic: str, rows: int) -> None:
    await workload.create_topic(broker, topic, PARTITIONS)
    await workload.Producer(broker, topic, PARTITIONS, 0, rows, rate=1e12).run()


async def raw_consume(broker: str, topic: str, rows: int) -> tuple[float, list[list[bytes]]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    batches: list[list[bytes]] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        n = 0
        with Timer() as t:
            while n < rows:
                got = await consumer.getmany(timeout_ms=1000, max_records=50_000)
                for records in got.values():
                    batches.append([m.value for m in records])
                    n += len(records)
        return n / t.seconds, batches
    finally:
        await consumer.stop()


def lean_pipeline(batches: list[list[bytes]], rows: int) -> float:
    """consume (already done) -> parse -> route -> encode -> write 3 replicas to RocksDB, a row at a
    time: the row reference plan, Router.route (crc32 buckets) and marshal-row chunks."""
    columns = [Column(c.name, parse_type(c.type), not c.not_null) for c in workload.COLUMNS]
    plan = compile_row_load(LoadSpec(format="json", columns=workload.MAPPING, jsonpaths=workload.JSONPATHS,
                                 timezone="UTC"), columns)
    target = types_pb2.LoadTarget(
        columns_json=orjson.dumps([c.to_dict() for c in columns]).decode(), distribution_columns=["id"], buckets=6,
        partitions=[types_pb2.TargetPartition(partition_id=1, name="p", tablets=[
            types_pb2.TargetTablet(tablet_id=100 + i) for i in range(6)])])
    router = Router(target, columns)
    with tempfile.TemporaryDirectory() as tmp:
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        db = Rdict(os.path.join(tmp, "db"), opts)
        wal = WriteOptions()
        with Timer() as t:
            for n, values in enumerate(batches):
                result = plan.parse_messages(values)
                by_tablet, _ = router.route(result.rows)
                encoded = encode_tablet_rows(router, by_tablet)
                for replica in range(3):
                    batch = WriteBatch(raw_mode=True)
                    for chunks in encoded.values():
                        for i, c in enumerate(chunks):
                            batch.put(b"%d/%d/%d/%d" % (replica, c.tablet_id, n, i), c.rows)
                    db.write(batch, wal)
        db.close()
    return rows / t.seconds


async def end_to_end(fe: str, broker: str, topic: str, rows: int) -> float:
    async with workload.channel(fe) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        await workload.create_schema(admin)
        with Timer() as t:
            await workload.create_job(admin, broker, topic, desired=3, interval_s=INTERVAL_S)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                resp = await admin.Query(admin_pb2.QueryRequest(db=workload.DB, table=workload.TABLE, limit=0))
                if resp.count >= rows:
                    break
                await asyncio.sleep(0.05)
        assert resp.count == rows, f"loaded {resp.count} of {rows}"
        await admin.StopRoutineLoad(admin_pb2.RoutineLoadRequest(db=workload.DB, name=workload.JOB))
        await admin.DropDatabase(admin_pb2.DropDatabaseRequest(db=workload.DB))
        return rows / t.seconds


async def freshness(fe: str, broker: str, rate: float, seconds: float) -> tuple[float, float, float, int]:
    """Produce at ``rate`` for ``seconds``; latency of sampled ids from produce to visible."""
    topic = "bench_fresh"
    await workload.create_topic(broker, topic, PARTITIONS)
    total = int(rate * seconds)
    async with workload.channel(fe) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        await workload.create_schema(admin)
        await workload.create_job(admin, broker, topic, desired=3, interval_s=INTERVAL_S)
        await asyncio.sleep(3)  # the job is scheduled and waiting for data
        producer = workload.Producer(broker, topic, PARTITIONS, 0, total, rate)
        task = asyncio.create_task(producer.run())
        sent_at: dict[int, float] = {}
        latencies: list[float] = []
        step = max(int(rate // 10), 1)  # ten samples a second
        next_sample = 0
        deadline = time.monotonic() + seconds + 60
        while time.monotonic() < deadline and (not task.done() or sent_at):
            while next_sample < producer.produced:  # sample ids as soon as they are out
                sent_at[next_sample] = time.monotonic()
                next_sample += step
            if sent_at:
                resp = await admin.Query(admin_pb2.QueryRequest(
                    db=workload.DB, table=workload.TABLE, columns=["id"], limit=len(sent_at),
                    predicates=[types_pb2.Predicate(column="id", op="IN", values=[str(i) for i in sent_at])]))
                now = time.monotonic()
                for r in resp.rows:
                    latencies.append(now - sent_at.pop(int(r.values[0])))
            await asyncio.sleep(0.05)
        await task
        await admin.StopRoutineLoad(admin_pb2.RoutineLoadRequest(db=workload.DB, name=workload.JOB))
    qs = statistics.quantiles(latencies, n=100)
    return qs[49], qs[94], qs[98], len(latencies)


async def run(args) -> list[dict]:
    with bench_cluster(3, with_broker=True, fe_config=FAST) as cluster:
        broker, fe = cluster.broker_address, cluster.fe_address
        await produce_all(broker, "bench_events", args.rows)
        mb = sum(len(workload.event(i)) for i in range(args.rows)) / 1e6
        raw, batches = await raw_consume(broker, "bench_events", args.rows)
        lean = lean_pipeline(batches, args.rows)
        e2e = await end_to_end(fe, broker, "bench_events", args.rows)
        rate = args.rate if args.rate is not None else e2e / 2
        p50, p95, p99, samples = await freshness(fe, broker, rate, args.seconds)
    seconds_e2e = args.rows / e2e
    target = INTERVAL_S + FRESHNESS_SLACK_S
    how = "given rate" if args.rate is not None else "half the end-to-end rate"
    return [
        {"figure": "raw aiokafka consume (baseline 1)", "value": f"{raw:,.0f} rows/s", "ratio": "1.00"},
        {"figure": "row-at-a-time lean pipeline, consume->parse->route->3x RocksDB, 1 process (baseline 2)",
         "value": f"{lean:,.0f} rows/s", "ratio": f"{lean / raw:.3f} of raw consume"},
        {"figure": "routine load end to end, RF=3 MAJORITY", "value": f"{e2e:,.0f} rows/s, {mb / seconds_e2e:.1f} MB/s",
         "ratio": f"{e2e / raw:.3f} of raw consume (target >= 0.60), {e2e / lean:.2f}x lean (target >= 2)"},
        {"figure": f"freshness at {rate:,.0f} rows/s ({how}, {samples} samples), max_batch_interval {INTERVAL_S} s",
         "value": f"p50 {p50:.2f} s, p95 {p95:.2f} s, p99 {p99:.2f} s",
         "ratio": f"target p95 <= {target:.2f} s: {'met' if p95 <= target else 'MISSED'}"},
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=400_000)
    p.add_argument("--rate", type=float, default=None,
                   help="steady produce rate for freshness (default: half the end-to-end rate measured)")
    p.add_argument("--seconds", type=float, default=20, help="how long to produce for freshness")
    args = p.parse_args()
    report("routine_load", asyncio.run(run(args)))


if __name__ == "__main__":
    main()
