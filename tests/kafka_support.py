"""Kafka helpers for tests and the demo: topics and batching producers (as real ones are)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def create_topic(broker: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def produce(broker: str, topic: str, messages: Iterable[tuple[int, bytes]], *,
                  compression: str | None = "lz4", linger_ms: int = 20) -> int:
    """Send (partition, value) messages in batches (linger + compression); returns the count."""
    producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=linger_ms, compression_type=compression,
                                max_batch_size=256 * 1024)
    await producer.start()
    n = 0
    try:
        futures = []
        for partition, value in messages:
            futures.append(await producer.send(topic, value, partition=partition))
            n += 1
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n


def run(coro):
    return asyncio.run(coro)
