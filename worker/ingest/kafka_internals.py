"""Every use of kafka-python internals, in one place.

kafka-python's public API has no way to ask which partition a `poll()` failure came from,
to drop the buffered copy of a failed fetch, or to read a topic's ID (KIP-516) from the
metadata the consumer already holds. These helpers read its internals, pinned to the
3.0 series (`kafka-python>=3.0.11,<3.1`), defensively: each returns None/False when an
attribute is missing instead of raising, and tests/unit/test_kafka_internals.py checks
them against the installed release, so an upgrade that moves them fails there first.
"""

from __future__ import annotations

from typing import Any

from kafka import TopicPartition

from worker.ingest.partitions import TP


def fetcher_hint(consumer: Any) -> TP | None:
    """The partition whose records kafka-python was unpacking when `poll()` raised, if known."""
    try:
        current = consumer._fetcher._next_partition_records
        tp = current.topic_partition if current is not None else None
    except AttributeError:
        return None
    return (tp.topic, tp.partition) if tp is not None else None


def discard_buffered(consumer: Any, tp: TP) -> bool:
    """Drop the fetcher's buffered (parked or current) data of `tp`; False if internals changed."""
    key = TopicPartition(*tp)
    try:
        fetcher = consumer._fetcher
        parked = fetcher._paused_partition_records.pop(key, None)
        if parked is not None:
            parked.drain()
        fetcher._paused_completed_fetches.pop(key, None)
        current = fetcher._next_partition_records
        if current is not None and current.topic_partition == key:
            current.drain()
            fetcher._next_partition_records = None
    except AttributeError:
        return False
    return True


def topic_id(consumer: Any, topic: str) -> str | None:
    """The topic's ID from the consumer's metadata (None before it is known, or on old brokers).

    A new ID under the same name means the topic was deleted and re-created: its offsets
    restarted at 0 while the consumer's positions still point into the old log."""
    try:
        value = consumer._client.cluster.topic_id(topic)
    except AttributeError:
        return None
    return None if value is None else str(value)


def known_partition_count(consumer: Any, topic: str) -> int | None:
    """How many partitions the consumer's metadata lists for `topic` (None when unknown).

    `KafkaConsumer.partitions_for_topic` would block without a deadline to fetch metadata for
    a topic it does not know; a quota share needs only what the group join already fetched."""
    try:
        partitions = consumer._client.cluster.partitions_for_topic(topic)
    except AttributeError:
        return None
    return None if partitions is None else len(partitions)


def release_parked(consumer: Any) -> bool:
    """Work around a kafka-python 3.0 fetcher stall; True when it had to act.

    Records fetched for a partition that is then paused (our backpressure) are parked, and
    given back after `resume()` only once the fetcher's in-line slot is None. But a fully read
    batch stays in that slot as an exhausted (falsy, not None) object until the next fetch
    replaces it, and a partition with parked records is never fetched: once the other
    partitions have nothing more to fetch, the resumed partition stalls for good (seen in the
    scale-event benchmark: 26,090 records of one partition stuck for minutes after a
    rebalance). Clearing the exhausted slot lets the parked records come back."""
    try:
        fetcher = consumer._fetcher
        current = fetcher._next_partition_records
        if current is None or current or not fetcher._paused_partition_records:
            return False
        fetcher._next_partition_records = None
    except AttributeError:
        return False
    return True
