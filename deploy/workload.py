"""The sample workload shared by `make demo`, `make chaos` and the benchmarks.

An `events` topic of JSON messages with unique ids, an RF=3 MAJORITY table, a routine load job,
a bounded producer, and the checks that say whether every produced id is in the table exactly
once, whether the replicas are healthy and consistent, and whether the job has caught up.
All talk goes to loopback addresses of a local cluster.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from common.rpc import admin_channel

DB = "demo"
TABLE = "events"
JOB = "events_job"
COLUMNS = [
    admin_pb2.ColumnDef(name="id", type="BIGINT", not_null=True),
    admin_pb2.ColumnDef(name="ts", type="DATETIME"),
    admin_pb2.ColumnDef(name="user_id", type="INT"),
    admin_pb2.ColumnDef(name="event", type="VARCHAR(16)"),
    admin_pb2.ColumnDef(name="amount", type="DECIMAL(10,2)"),
]
MAPPING = "id, tmp_ts, user_id, event, amount, ts = from_unixtime(tmp_ts)"
JSONPATHS = '["$.id", "$.ts", "$.user", "$.event", "$.amount"]'
EVENT_KINDS = ("view", "click", "cart", "buy", "refund")


def event(i: int) -> bytes:
    """About 100 bytes of JSON, id unique and deterministic."""
    return json.dumps({"id": i, "ts": 1_700_000_000 + i // 10, "user": i % 997,
                       "event": EVENT_KINDS[i % 5], "amount": round((i % 10_000) * 0.37, 2),
                       "src": "tabletsim-demo"}).encode()


async def create_topic(broker: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


@dataclass
class Producer:
    """Produces ids [start, end) at about ``rate`` messages/s in batches (linger + lz4), one round of
    sends every ``tick_s``. A record batch closes ``linger_ms`` after its first record, so a round
    is one batch per partition only while ``linger_ms`` outlasts the round's sends (a round of
    500 sends takes about 50 ms here)."""

    broker: str
    topic: str
    partitions: int
    start: int
    end: int
    rate: float
    tick_s: float = 0.02
    linger_ms: int = 20
    produced: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self) -> None:
        self._stop.set()

    @property
    def next_id(self) -> int:
        return self.start + self.produced

    async def run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.broker, linger_ms=self.linger_ms, compression_type="lz4",
                                    max_batch_size=256 * 1024)
        await producer.start()
        began = time.monotonic()
        try:
            while self.next_id < self.end and not self._stop.is_set():
                # stay on the rate: how many should be out by now
                due = int((time.monotonic() - began) * self.rate) - self.produced
                if due <= 0:
                    try:
                        await asyncio.wait_for(self._stop.wait(), self.tick_s)
                    except TimeoutError:
                        pass
                    continue
                hi = min(self.next_id + min(due, 5000), self.end)
                futures = [await producer.send(self.topic, event(i), partition=i % self.partitions)
                           for i in range(self.next_id, hi)]
                await asyncio.gather(*futures)
                self.produced += hi - self.next_id
        finally:
            await producer.stop()


async def wait_first_rows(admin: admin_pb2_grpc.AdminServiceStub, produce: asyncio.Task, timeout_s: float) -> None:
    """Wait (deadline-bound) until the job has loaded a row; RuntimeError says why it did not."""
    deadline = time.monotonic() + timeout_s
    while True:
        snap = await snapshot(admin)
        if snap.loaded > 0:
            return
        if produce.done():
            raise RuntimeError(f"the producer stopped before the first rows were loaded: {produce.exception()!r}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no row loaded within {timeout_s:.0f} s (job {snap.job_state}, "
                               f"{snap.error or 'no error'})")
        await asyncio.sleep(0.5)


async def create_schema(admin: admin_pb2_grpc.AdminServiceStub, buckets: int = 6) -> None:
    await admin.CreateDatabase(admin_pb2.CreateDatabaseRequest(db=DB, if_not_exists=True))
    await admin.CreateTable(admin_pb2.CreateTableRequest(
        db=DB, table=TABLE, columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"], buckets=buckets,
        properties={"replication_num": "3", "write_quorum": "MAJORITY"}, if_not_exists=True))


async def create_job(admin: admin_pb2_grpc.AdminServiceStub, broker: str, topic: str,
                     desired: int = 3, interval_s: int = 1) -> None:
    await admin.CreateRoutineLoad(admin_pb2.CreateRoutineLoadRequest(
        db=DB, name=JOB, table=TABLE, columns=MAPPING,
        properties={"format": "json", "jsonpaths": JSONPATHS, "desired_concurrent_number": str(desired),
                    "max_batch_interval": str(interval_s), "timezone": "UTC"},
        data_source_properties={"kafka_broker_list": broker, "kafka_topic": topic,
                                "property.kafka_default_offsets": "OFFSET_BEGINNING"}))


@dataclass
class Snapshot:
    """What the cluster says right now (for progress lines and the verdict)."""

    loaded: int = -1
    job_state: str = "?"
    lag: dict[str, int] = field(default_factory=dict)
    progress: dict[str, str] = field(default_factory=dict)
    unhealthy: int = -1
    alive_bes: int = 0
    total_bes: int = 0
    error: str = ""


async def snapshot(admin: admin_pb2_grpc.AdminServiceStub) -> Snapshot:
    snap = Snapshot()
    try:
        bes = (await admin.ShowBackends(admin_pb2.ShowBackendsRequest(), timeout=5)).backends
        snap.total_bes, snap.alive_bes = len(bes), sum(1 for b in bes if b.alive)
        snap.loaded = (await admin.Query(admin_pb2.QueryRequest(db=DB, table=TABLE, limit=0), timeout=10)).count
        jobs = (await admin.ShowRoutineLoad(admin_pb2.ShowRoutineLoadRequest(db=DB, name=JOB), timeout=5)).jobs
        if jobs:
            snap.job_state = jobs[0].state
            snap.lag = json.loads(jobs[0].lag or "{}")
            snap.progress = json.loads(jobs[0].progress or "{}")
        stat = await admin.ShowProc(admin_pb2.ShowProcRequest(path="/statistic"), timeout=5)
        snap.unhealthy = int(stat.rows[-1].values[7])
    except grpc.aio.AioRpcError as exc:
        snap.error = f"{exc.code().name}: {exc.details()}"
    return snap


@dataclass
class Verdict:
    produced: int
    loaded: int
    missing: list[int]
    duplicated: list[int]
    unhealthy_tablets: int
    inconsistent_tablets: int
    open_txns: list[str]
    job_state: str
    lag: dict[str, int]

    @property
    def ok(self) -> bool:
        return (not self.missing and not self.duplicated and self.loaded == self.produced
                and self.unhealthy_tablets == 0 and self.inconsistent_tablets == 0 and not self.open_txns
                and self.job_state == "RUNNING" and all(v == 0 for v in self.lag.values()))

    def lines(self) -> list[str]:
        return [
            f"produced {self.produced:,}, loaded {self.loaded:,}",
            f"duplicates {len(self.duplicated)}" + (f" (e.g. {self.duplicated[:10]})" if self.duplicated else ""),
            f"missing {len(self.missing)}" + (f" (e.g. {self.missing[:10]})" if self.missing else ""),
            f"unhealthy tablets {self.unhealthy_tablets}, inconsistent tablets {self.inconsistent_tablets}",
            f"transactions left in PREPARE or COMMITTED: {len(self.open_txns)}",
            f"job {self.job_state}, lag {sum(self.lag.values())}",
        ]


async def verdict(admin: admin_pb2_grpc.AdminServiceStub, produced: int) -> Verdict:
    rows = (await admin.Query(admin_pb2.QueryRequest(db=DB, table=TABLE, columns=["id"], limit=10_000_000),
                              timeout=300)).rows
    seen = Counter(int(r.values[0]) for r in rows)
    missing = [i for i in range(produced) if seen[i] == 0]
    duplicated = sorted(i for i, n in seen.items() if n > 1 or i >= produced)
    check = await admin.CheckConsistency(admin_pb2.CheckConsistencyRequest(db=DB, table=TABLE), timeout=300)
    stat = await admin.ShowProc(admin_pb2.ShowProcRequest(path="/statistic"), timeout=10)
    txns = (await admin.ShowTransactions(admin_pb2.ShowTransactionsRequest(db=DB, limit=100_000))).transactions
    open_txns = [f"{t.transaction_id} {t.label} {t.transaction_status}" for t in txns
                 if t.transaction_status in ("PREPARE", "COMMITTED")]
    job = (await admin.ShowRoutineLoad(admin_pb2.ShowRoutineLoadRequest(db=DB, name=JOB))).jobs[0]
    return Verdict(produced=produced, loaded=sum(seen.values()), missing=missing, duplicated=duplicated,
                   unhealthy_tablets=int(stat.rows[-1].values[7]), inconsistent_tablets=check.inconsistent_tablets,
                   open_txns=open_txns, job_state=job.state, lag=json.loads(job.lag or "{}"))


def channel(address: str) -> grpc.aio.Channel:
    return admin_channel(address)
