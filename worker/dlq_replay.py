"""`clickstream-worker dlq replay`: re-publish dead-lettered records to their source topic.

Used after an outage (stage ``delivery``) or a mapping fix (stages ``mapping``/``validation``).
The replayed record carries its original key, value, timestamp and headers, minus the error
headers, plus `clickstream.origin` = the *first* source position. The worker derives an
event's ID from that origin (when the event has no ID of its own), so a record replayed
after a delivery that in fact reached Personalize is still deduplicated there.

Progress is committed in a dedicated consumer group, so a second run only replays what
arrived since; `--from-beginning` re-reads the whole topic.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from worker.ingest.deadletter import ERROR_HEADER_NAMES, HEADER_PREFIX, header_value
from worker.records import Header

ORIGIN_HEADER = "clickstream.origin"


@dataclass
class ReplayReport:
    read: int = 0
    replayed: int = 0
    skipped: int = 0
    malformed: int = 0
    by_stage: Counter[str] = field(default_factory=Counter)
    by_target: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read, "replayed": self.replayed, "skipped": self.skipped,
            "malformed": self.malformed, "by_stage": dict(self.by_stage), "by_target": dict(self.by_target),
        }


def replay_headers(headers: Sequence[Header]) -> tuple[str | None, list[Header]]:
    """(source topic, headers to publish): error headers removed, origin kept or added."""
    source_topic = header_value(headers, HEADER_PREFIX + "topic")
    origin = header_value(headers, ORIGIN_HEADER)
    kept = [(k, v) for k, v in headers if k not in ERROR_HEADER_NAMES and k != ORIGIN_HEADER]
    if origin is None and source_topic is not None:
        partition = header_value(headers, HEADER_PREFIX + "partition")
        offset = header_value(headers, HEADER_PREFIX + "offset")
        origin = f"{source_topic}:{partition}:{offset}"
    if origin is not None:
        kept.append((ORIGIN_HEADER, origin.encode()))
    return source_topic, kept


def replay(
    client_config: dict[str, Any],
    dlq_topic: str,
    *,
    stages: set[str] | None = None,
    group_id: str | None = None,
    from_beginning: bool = False,
    idle_timeout_s: float = 3.0,
    max_records: int | None = None,
    join_timeout_s: float = 60.0,
) -> ReplayReport:
    """Replay `dlq_topic` up to its current end; returns counts."""
    report = ReplayReport()
    group = group_id or f"clickstream-worker.dlq-replay.{dlq_topic}"
    consumer = KafkaConsumer(
        **client_config,
        group_id=f"{group}.{uuid.uuid4().hex[:8]}" if from_beginning else group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        max_poll_interval_ms=60_000,
    )
    producer = KafkaProducer(**client_config, acks="all", enable_idempotence=True, linger_ms=10)
    try:
        consumer.subscribe([dlq_topic])
        join_deadline = time.monotonic() + join_timeout_s
        last_data: float | None = None  # idle time counts only once we own the partitions
        while last_data is None or time.monotonic() - last_data < idle_timeout_s:
            if max_records is not None and report.read >= max_records:
                break
            polled = consumer.poll(timeout_ms=200)
            if last_data is None and consumer.assignment():
                last_data = time.monotonic()
            elif last_data is None and time.monotonic() > join_deadline:
                raise TimeoutError(f"no partitions of {dlq_topic} assigned within {join_timeout_s:g}s")
            if not polled:
                continue
            last_data = time.monotonic()
            for records in polled.values():
                for record in records:
                    _replay_one(producer, record, stages, report)
            producer.flush(timeout=30)
            consumer.commit()
        producer.flush(timeout=30)
        consumer.commit()
    finally:
        producer.close(timeout=10)
        consumer.close()
    return report


def _replay_one(producer: Any, record: Any, stages: set[str] | None, report: ReplayReport) -> None:
    report.read += 1
    headers = list(record.headers or ())
    stage = header_value(headers, HEADER_PREFIX + "stage") or "unknown"
    report.by_stage[stage] += 1
    if stages is not None and stage not in stages:
        report.skipped += 1
        return
    source_topic, new_headers = replay_headers(headers)
    if not source_topic:
        report.malformed += 1
        return
    producer.send(source_topic, key=record.key, value=record.value, headers=new_headers,
                  timestamp_ms=record.timestamp)
    report.replayed += 1
    report.by_target[source_topic] += 1


def parse_origin(value: str) -> tuple[str, int, int] | None:
    """Parse `topic:partition:offset` (Kafka topic names cannot contain ':')."""
    parts = value.rsplit(":", 2)
    if len(parts) != 3:
        return None
    try:
        return parts[0], int(parts[1]), int(parts[2])
    except ValueError:
        return None


