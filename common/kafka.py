"""Kafka helpers shared by the FE (partitions, start offsets) and the BEs (task consumers).

The default broker (Tansu) answers ListOffsets(latest) with the base offset of the last record
batch + 1, short of the log end whenever producers batch; a fetch's high watermark is right.
So the end of a partition is read from a fetch (:func:`true_end_offsets`), never from
ListOffsets alone, and a job is never paused as "offset out of range" on ListOffsets alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

log = logging.getLogger(__name__)

# property.* keys of CREATE ROUTINE LOAD and the aiokafka argument each one sets
PROPERTY_TO_AIOKAFKA = {
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "client.id": "client_id",
    "group.id": "group_id",
    "request.timeout.ms": "request_timeout_ms",
    "session.timeout.ms": "session_timeout_ms",
    "fetch.max.bytes": "fetch_max_bytes",
    "max.partition.fetch.bytes": "max_partition_fetch_bytes",
    "isolation.level": "isolation_level",
}
# kept by the FE for its own use, not passed to the client
FE_ONLY_PROPERTIES = frozenset({"kafka_default_offsets"})
INT_ARGS = frozenset({"request_timeout_ms", "session_timeout_ms", "fetch_max_bytes", "max_partition_fetch_bytes"})


def client_kwargs(brokers: list[str] | tuple[str, ...], properties: Mapping[str, str]) -> dict[str, Any]:
    """aiokafka keyword arguments for a job's broker list and property.* settings."""
    kwargs: dict[str, Any] = {"bootstrap_servers": ",".join(brokers)}
    for key, value in properties.items():
        if key in FE_ONLY_PROPERTIES:
            continue
        arg = PROPERTY_TO_AIOKAFKA.get(key)
        if arg is None:
            log.warning("kafka property '%s' has no aiokafka equivalent; ignored", key)
            continue
        kwargs[arg] = int(value) if arg in INT_ARGS else value
    return kwargs


async def topic_partitions(brokers: list[str], topic: str, properties: Mapping[str, str],
                           timeout_ms: int = 10_000) -> list[int]:
    """The topic's partitions; ValueError when the topic does not exist.

    Existence is checked with a metadata request for all topics, which (unlike asking for the
    topic by name) never makes a broker with auto-creation create it.
    """
    kwargs = client_kwargs(brokers, properties)
    kwargs.pop("group_id", None)
    kwargs.pop("isolation_level", None)
    kwargs.pop("session_timeout_ms", None)
    kwargs.pop("fetch_max_bytes", None)
    kwargs.pop("max_partition_fetch_bytes", None)
    admin = AIOKafkaAdminClient(request_timeout_ms=timeout_ms, **kwargs)
    await admin.start()
    try:
        topics = await admin.list_topics()
        if topic not in topics:
            raise ValueError(f"topic '{topic}' does not exist on {','.join(brokers)}")
        described = await admin.describe_topics([topic])
        parts = sorted(p["partition"] for p in described[0]["partitions"])
        if not parts:
            raise ValueError(f"topic '{topic}' has no partitions")
        return parts
    finally:
        await admin.close()


async def true_end_offsets(consumer: AIOKafkaConsumer, tps: list[TopicPartition],
                           poll_ms: int = 1000) -> dict[TopicPartition, int]:
    """Log end offsets taken from fetch high watermarks (ListOffsets can be short, see above).

    Positions of ``tps`` are moved; callers seek again afterwards.
    """
    listed = await consumer.end_offsets(tps)
    ends: dict[TopicPartition, int] = {}
    probe = []
    for tp in tps:
        if listed[tp] <= 0:
            ends[tp] = 0  # an empty partition: nothing to fetch
        else:
            consumer.seek(tp, listed[tp] - 1)  # an offset that exists: its fetch has a high watermark
            probe.append(tp)
    if probe:
        await consumer.getmany(*probe, timeout_ms=poll_ms, max_records=1)
        for tp in probe:
            hw = consumer.highwater(tp)
            ends[tp] = hw if hw is not None else listed[tp]
    return ends


async def start_consumer(brokers: list[str], properties: Mapping[str, str], group_id: str | None,
                         request_timeout_ms: int = 10_000) -> AIOKafkaConsumer:
    kwargs = client_kwargs(brokers, properties)
    kwargs.setdefault("group_id", group_id)
    kwargs.setdefault("request_timeout_ms", request_timeout_ms)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="none", **kwargs)
    await consumer.start()
    return consumer
