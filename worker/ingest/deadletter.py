"""Dead-letter records: the original bytes plus Kafka Connect's error headers.

The header names are Kafka Connect's (`errors.deadletterqueue.context.headers.enable`), so
existing tooling that inspects Connect DLQs reads ours unchanged. A record only counts as
done once its dead-letter write is acknowledged by the broker; until then its offset is not
committed, so a crash between "rejected" and "written" redelivers it rather than losing it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from kafka.errors import MessageSizeTooLargeError

from worker.observe.logging import mask_access_keys
from worker.records import Header, RawRecord, Rejection, SourceRef

log = structlog.get_logger(__name__)

HEADER_PREFIX = "__connect.errors."
ERROR_HEADER_NAMES = frozenset(
    HEADER_PREFIX + name
    for name in (
        "topic",
        "partition",
        "offset",
        "stage",
        "exception.class.name",
        "exception.message",
        "rule",
        "field",
    )
)

def error_headers(record: RawRecord, rejection: Rejection) -> list[Header]:
    """Original headers (minus stale error headers from an earlier round) + the error context."""
    kept = [(k, v) for k, v in record.headers if k not in ERROR_HEADER_NAMES]
    context = {
        "topic": record.source.topic,
        "partition": str(record.source.partition),
        "offset": str(record.source.offset),
        "stage": rejection.stage.value,
        "exception.class.name": rejection.exception_class,
        "exception.message": mask_access_keys(rejection.describe()),
        "rule": rejection.rule,
        "field": rejection.field or "",
    }
    return kept + [(HEADER_PREFIX + k, v.encode("utf-8", "replace")) for k, v in context.items()]


def header_value(headers: Sequence[Header], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("utf-8", "replace")
    return None


TRUNCATED_KEEP_BYTES = 512 * 1024


def truncated_for_dlq(record: RawRecord, headers: list[Header]) -> tuple[bytes, list[Header]]:
    """A DLQ copy that fits: the first 512 KiB plus the original's size and SHA-256."""
    original = record.value or b""
    extra: list[Header] = [
        ("clickstream.truncated", b"true"),
        ("clickstream.original.bytes", str(len(original)).encode()),
        ("clickstream.original.sha256", hashlib.sha256(original).hexdigest().encode()),
    ]
    return original[:TRUNCATED_KEEP_BYTES], headers + extra


DoneCallback = Callable[[SourceRef, Rejection], None]


class DeadLetterWriter:
    """Writes rejected records with an idempotent producer and reports acknowledgements.

    `on_done(source, rejection)`, given with each write, runs (on the producer's I/O thread)
    once the broker has the record. A failed write is retried forever with backoff: dropping
    it would lose the record, and not completing it keeps its offset uncommitted, which is
    the safe state.
    """

    def __init__(self, producer: Any, *, retry_backoff_s: float = 1.0) -> None:
        self._producer = producer
        self._retry_backoff_s = retry_backoff_s
        self._closed = threading.Event()

    def write(self, dlq_topic: str, record: RawRecord, rejection: Rejection, on_done: DoneCallback) -> None:
        headers = error_headers(record, rejection)
        value = record.value
        try:
            future = self._producer.send(
                dlq_topic, key=record.key, value=value, headers=headers, timestamp_ms=record.timestamp_ms
            )
        except MessageSizeTooLargeError:
            # The original fitted its topic but not with our headers added. Keep what fits and
            # say so (size and digest of the original) rather than retry forever.
            value, headers = truncated_for_dlq(record, headers)
            log.error("dlq record too large; writing a truncated copy", topic=dlq_topic,
                      source_topic=record.source.topic, partition=record.source.partition,
                      offset=record.source.offset, original_bytes=len(record.value or b""))
            future = self._producer.send(
                dlq_topic, key=record.key, value=value, headers=headers, timestamp_ms=record.timestamp_ms
            )
        future.add_callback(lambda _meta: on_done(record.source, rejection))
        future.add_errback(lambda exc: self._retry(dlq_topic, record, rejection, on_done, exc))

    def _retry(self, dlq_topic: str, record: RawRecord, rejection: Rejection, on_done: DoneCallback,
               exc: BaseException) -> None:
        if self._closed.is_set():
            log.error("dlq write abandoned at shutdown; offset stays uncommitted", topic=dlq_topic,
                      source_topic=record.source.topic, partition=record.source.partition,
                      offset=record.source.offset, error=str(exc))
            return
        log.warning("dlq write failed; retrying", topic=dlq_topic, source_topic=record.source.topic,
                    partition=record.source.partition, offset=record.source.offset, error=str(exc))
        # Never call send() on the producer's own I/O thread (it may block on buffer space).
        timer = threading.Timer(self._retry_backoff_s, self.write, args=(dlq_topic, record, rejection, on_done))
        timer.daemon = True
        timer.start()

    def flush(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        self._producer.flush(timeout=max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self._closed.set()
