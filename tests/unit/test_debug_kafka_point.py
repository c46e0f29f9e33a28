"""``be.kafka.consume``: a DROP makes a routine load task fail as an unreachable broker does
(FAILED, KAFKA_ERROR, the broker named), before the consumer starts or before a fetch. No broker."""

from __future__ import annotations

import asyncio

import pytest

from be.load.routine_task import RoutineLoadRunner
from common.debug import BE_KAFKA_CONSUME, BE_POINTS, DebugPoints
from common.debug.rules import RuleSpec
from common.gen.tabletsim.v1 import backend_pb2

BROKER = "127.0.0.1:9092"


class FakeFe:
    """The FE stub: records the task reports."""

    def __init__(self) -> None:
        self.reports = []
        self.reported = asyncio.Event()

    async def ReportRoutineLoadTask(self, report, timeout=None):
        self.reports.append(report)
        self.reported.set()


class FakeConsumer:
    def __init__(self) -> None:
        self.stopped = False
        self.fetches = 0

    def assign(self, tps) -> None:
        pass

    def seek(self, tp, offset) -> None:
        pass

    async def getmany(self, *tps, timeout_ms, max_records):
        self.fetches += 1
        return {}

    async def stop(self) -> None:
        self.stopped = True


def task() -> backend_pb2.RoutineLoadTask:
    return backend_pb2.RoutineLoadTask(
        job_id=1, job_name="job", task_id="t1", label="job-t1", db="d", table="t", broker_list=[BROKER],
        topic="events", start_offsets={0: 0}, max_batch_interval_s=5, max_batch_rows=1000,
        max_batch_size_bytes=1 << 20, consume_second=5, timeout_s=30)


async def run_one(debug: DebugPoints) -> tuple[FakeFe, FakeConsumer]:
    consumer = FakeConsumer()

    async def start_consumer(brokers, props, group_id):
        return consumer

    fe = FakeFe()
    runner = RoutineLoadRunner(coordinator=None, fe=fe, debug=debug, start_consumer=start_consumer)
    runner.submit(task())
    await asyncio.wait_for(fe.reported.wait(), timeout=10)
    await runner.close()
    return fe, consumer


@pytest.mark.parametrize("dice, fetches", [((), 0), ((0.9, 0.1), 0)], ids=["before-start", "before-fetch"])
async def test_a_dropped_broker_fails_the_task_with_kafka_error(dice, fetches):
    values = list(dice)
    debug = DebugPoints("127.0.0.1:9060", BE_POINTS, random=lambda: values.pop(0))
    # before-fetch: probability 0.5 spares the check before the consumer starts (0.9), not the next (0.1)
    debug.rules.add(RuleSpec(point=BE_KAFKA_CONSUME, action="DROP", peer=BROKER,
                             probability=0.5 if dice else None))
    fe, consumer = await run_one(debug)
    [report] = fe.reports
    assert (report.outcome, report.error_kind) == ("FAILED", "KAFKA_ERROR")
    assert f"failed to reach kafka brokers {BROKER}" in report.message and "dropped" in report.message
    assert consumer.fetches == fetches
    assert consumer.stopped == bool(dice)  # a started consumer is stopped
