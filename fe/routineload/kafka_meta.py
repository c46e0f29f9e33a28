"""What the routine load scheduler asks Kafka: a topic's partitions, where partitions start, and
their end offsets.

The scheduler takes a KafkaMetadata as a constructor argument (this one, over aiokafka, by
default), so that a test can pass a fake topic: the embedded broker cannot add partitions to a
topic, and a unit test runs with no broker at all.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from aiokafka import TopicPartition

from common import kafka
from fe.routineload.properties import (
    OFFSET_BEGINNING,
    OFFSET_END,
    KafkaSource,
    OffsetSpec,
    resolve_start_offset,
)

END_OFFSETS_TIMEOUT_MS = 5000


class KafkaMetadata:
    async def partitions(self, src: KafkaSource) -> list[int]:
        """The topic's partitions; ValueError when the topic does not exist."""
        return await kafka.topic_partitions(list(src.broker_list), src.topic, src.custom)

    async def start_offsets(self, src: KafkaSource, specs: dict[int, OffsetSpec],
                            timezone: str) -> tuple[dict[int, int], dict[int, int]]:
        """(start offset, end offset) of each partition of ``specs``: its spec (an offset,
        OFFSET_BEGINNING, OFFSET_END or a datetime in ``timezone``) resolved against its log."""
        consumer = await kafka.start_consumer(list(src.broker_list), src.custom, group_id=None)
        try:
            tps = [TopicPartition(src.topic, p) for p in specs]
            consumer.assign(tps)
            begin = await consumer.beginning_offsets(tps)
            ends = await kafka.true_end_offsets(consumer, tps)
            starts = {}
            for tp in tps:
                spec = specs[tp.partition]
                if spec in (OFFSET_BEGINNING, OFFSET_END) or isinstance(spec, int):
                    starts[tp.partition] = resolve_start_offset(spec, begin[tp], ends[tp], lambda ms: None)
                else:
                    starts[tp.partition] = await _offset_for_time(consumer, tp, str(spec), timezone, ends[tp])
            return starts, {tp.partition: ends[tp] for tp in tps}
        finally:
            await consumer.stop()

    async def end_offsets(self, src: KafkaSource, partitions: list[int]) -> dict[int, int]:
        """Each partition's end offset (from a fetch's high watermark: see common.kafka)."""
        consumer = await kafka.start_consumer(list(src.broker_list), src.custom, group_id=None,
                                              request_timeout_ms=END_OFFSETS_TIMEOUT_MS)
        try:
            tps = [TopicPartition(src.topic, p) for p in partitions]
            consumer.assign(tps)
            ends = await kafka.true_end_offsets(consumer, tps, poll_ms=500)
            return {tp.partition: end for tp, end in ends.items()}
        finally:
            await consumer.stop()


async def _offset_for_time(consumer, tp: TopicPartition, when: str, timezone: str, end: int) -> int:
    """The first offset whose timestamp is at or after ``when`` (in the job's timezone), else the end."""
    stamp = datetime.strptime(when, "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo(timezone))
    found = await consumer.offsets_for_times({tp: int(stamp.timestamp() * 1000)})
    hit = found.get(tp)
    if hit is None or hit.timestamp < 0:
        return end
    return hit.offset
