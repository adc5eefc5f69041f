"""`clickstream-worker dlq replay`: re-publish dead-lettered records to their source topic.

Used after an outage (stage ``delivery``) or a mapping fix (stages ``mapping``/``validation``).
The replayed record carries its original key, value, timestamp and headers, minus the error
headers, plus `clickstream.origin` = the *first* source position and, when the
`dlq.replay_origin_key` is configured, its HMAC (`worker.ingest.origin`). The worker derives an
event's ID from an authenticated origin (when the event has no ID of its own), so a record
replayed after a delivery that in fact reached Personalize is still deduplicated there.

Records go only to a source topic of this dead-letter topic: the configured topics whose
`dlq_topic` it is (``--config``), else the one named by ``--source-topic``, else, for the
default naming ``<topic>.dlq``, ``<topic>``. A record whose error headers name another topic
is refused and counted, never published there.

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
from worker.ingest.origin import ORIGIN_HEADER, ORIGIN_MAC_HEADER, OriginCheck, check_origin, origin_mac
from worker.records import Header


@dataclass
class ReplayReport:
    read: int = 0
    replayed: int = 0
    skipped: int = 0
    malformed: int = 0
    refused: int = 0
    signed: bool = False
    by_stage: Counter[str] = field(default_factory=Counter)
    by_target: Counter[str] = field(default_factory=Counter)
    refused_targets: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read, "replayed": self.replayed, "skipped": self.skipped,
            "malformed": self.malformed, "refused": self.refused, "origin_signed": self.signed,
            "by_stage": dict(self.by_stage), "by_target": dict(self.by_target),
            "refused_targets": dict(self.refused_targets),
        }


def replay_headers(
    headers: Sequence[Header], *, secret: bytes | None = None, key: bytes | None = None, value: bytes | None = None
) -> tuple[str | None, list[Header]]:
    """(source topic, headers to publish): error headers removed, the first origin kept or added.

    An origin the record already carries (it was replayed and dead-lettered again) is kept
    only when its MAC verifies; otherwise the origin is this dead letter's own position.
    With `secret`, the origin is signed for the worker to trust it.
    """
    source_topic = header_value(headers, HEADER_PREFIX + "topic")
    check, first = check_origin(headers, secret, key, value)
    kept = [(k, v) for k, v in headers if k not in ERROR_HEADER_NAMES and k not in (ORIGIN_HEADER, ORIGIN_MAC_HEADER)]
    origin = header_value(headers, ORIGIN_HEADER) if check is OriginCheck.VERIFIED and first is not None else None
    if origin is None and source_topic is not None:
        partition = header_value(headers, HEADER_PREFIX + "partition")
        offset = header_value(headers, HEADER_PREFIX + "offset")
        origin = f"{source_topic}:{partition}:{offset}"
    if origin is not None:
        kept.append((ORIGIN_HEADER, origin.encode()))
        if secret:
            kept.append((ORIGIN_MAC_HEADER, origin_mac(secret, origin, key, value).encode()))
    return source_topic, kept


def allowed_sources(dlq_topic: str, configured: dict[str, str], source_topic: str | None) -> set[str]:
    """The topics records of `dlq_topic` may go back to (see the module docstring).

    `configured` maps each configured input topic to its dead-letter topic.
    Raises ValueError when nothing says what the source of `dlq_topic` is.
    """
    if source_topic:
        return {source_topic}
    sources = {topic for topic, dlq in configured.items() if dlq == dlq_topic}
    if sources:
        return sources
    if not configured and dlq_topic.endswith(".dlq") and len(dlq_topic) > 4:
        return {dlq_topic.removesuffix(".dlq")}
    raise ValueError(f"{dlq_topic} is not the dead-letter topic of a configured topic: pass --config with the "
                     "worker's configuration, or --source-topic TOPIC")


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
    targets: set[str],
    origin_key: bytes | None = None,
) -> ReplayReport:
    """Replay `dlq_topic` up to its current end, only to `targets`; returns counts."""
    report = ReplayReport(signed=bool(origin_key))
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
                    _replay_one(producer, record, stages, report, targets=targets, origin_key=origin_key)
            producer.flush(timeout=30)
            consumer.commit()
        producer.flush(timeout=30)
        consumer.commit()
    finally:
        producer.close(timeout=10)
        consumer.close()
    return report


def _replay_one(producer: Any, record: Any, stages: set[str] | None, report: ReplayReport, *, targets: set[str],
                origin_key: bytes | None) -> None:
    report.read += 1
    headers = list(record.headers or ())
    stage = header_value(headers, HEADER_PREFIX + "stage") or "unknown"
    report.by_stage[stage] += 1
    if stages is not None and stage not in stages:
        report.skipped += 1
        return
    source_topic, new_headers = replay_headers(headers, secret=origin_key, key=record.key, value=record.value)
    if not source_topic:
        report.malformed += 1
        return
    if source_topic not in targets:
        report.refused += 1
        report.refused_targets[source_topic] += 1
        return
    producer.send(source_topic, key=record.key, value=record.value, headers=new_headers,
                  timestamp_ms=record.timestamp)
    report.replayed += 1
    report.by_target[source_topic] += 1
