"""Which partition a `poll()` failure belongs to, and how to retry it.

kafka-python raises a failure to fetch or decode one partition's records (a compression
codec this process lacks, a batch that fails its CRC check, an unexpected error code) out of
`poll()` without saying which partition it came from. Left alone, the exception kills the
consumer thread, every restart hits the same batch, and the whole group goes down with it.

Attribution, cheapest first:
1. what the exception itself names (RecordTooLargeError carries ``{tp: offset}``,
   TopicAuthorizationFailedError the topics);
2. a hint from the fetcher: the partition whose records were being unpacked when it
   raised (`kafka_internals.fetcher_hint`);
3. a **probe**: a separate group-less consumer with the same settings fetches candidate
   partitions one at a time from the main consumer's position; the one whose fetch raises
   the same exception class is the culprit. This needs no internals and confirms the hint.

Retrying a paused partition probes it first, so the main consumer never raises again
while the cause persists; once the probe decodes, the fetcher's buffered copy of the bad
fetch is discarded (`kafka_internals.discard_buffered`; otherwise the resumed partition
would replay it, or sit silently stuck on it) and the partition resumes from its position.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import structlog
from kafka import KafkaConsumer, TopicPartition
from kafka import errors as kerrors

from worker.ingest.partitions import TP

log = structlog.get_logger(__name__)

#: Failures that concern the whole client, not a partition: today's behaviour stays (fatal).
CLIENT_ERRORS: tuple[type[BaseException], ...] = (
    kerrors.SaslAuthenticationFailedError,
    kerrors.KafkaConfigurationError,
    kerrors.IllegalStateError,
    kerrors.GroupAuthorizationFailedError,
    kerrors.ClusterAuthorizationFailedError,
    kerrors.UnsupportedVersionError,
)

CODEC_PACKAGES = {"snappy": "python-snappy (and cramjam)", "lz4": "lz4", "zstd": "zstandard"}


def is_client_error(exc: BaseException) -> bool:
    return isinstance(exc, CLIENT_ERRORS)


def fix_for(exc: BaseException) -> str:
    """The operator's next step for a partition-level fetch failure."""
    name = type(exc).__name__
    text = str(exc)
    if name == "UnsupportedCodecError":
        codec = next((c for c in CODEC_PACKAGES if c in text), None)
        package = CODEC_PACKAGES.get(codec or "", "the codec's library")
        return (f"install {package} in this environment (`pip install clickstream-worker` brings every codec; "
                "the container image has them) and restart; the partition resumes where it stopped")
    if name == "CorruptRecordError":
        return ("the batch fails its CRC check on the broker: inspect it (kafka-dump-log), then move the group "
                "past it with kafka-consumer-groups --reset-offsets if it is unrecoverable; nothing was committed "
                "past it")
    if name == "RecordTooLargeError":
        return "raise kafka.max_partition_fetch_bytes above the largest record of the topic and restart"
    if name == "TopicAuthorizationFailedError":
        return "grant this principal Read on the topic (Kafka ACL / MSK IAM policy); the partition is retried"
    return ("see the exception; the partition is retried with backoff (kafka.partition_retry_s) and resumes by "
            "itself when the cause goes away, or after a restart with the fix")


def named_partitions(exc: BaseException, assigned: Iterable[TP]) -> list[TP]:
    """Partitions the exception itself names (see the module docstring, step 1)."""
    assigned = list(assigned)
    if isinstance(exc, kerrors.TopicAuthorizationFailedError):
        topics = {t for arg in exc.args if isinstance(arg, set | frozenset | list | tuple) for t in arg}
        return [tp for tp in assigned if tp[0] in topics]
    named: list[TP] = []
    for arg in exc.args:
        if isinstance(arg, dict):
            named.extend((tp[0], tp[1]) for tp in arg if isinstance(tp, tuple) and len(tp) == 2)
    return [tp for tp in named if tp in assigned]


class FetchProbe:
    """Fetch single partitions with a throwaway group-less consumer (same settings, same codecs)."""

    def __init__(self, consumer_config: dict[str, Any], *, per_partition_s: float = 1.5) -> None:
        drop = {"group_id", "enable_auto_commit", "session_timeout_ms", "heartbeat_interval_ms",
                "max_poll_interval_ms", "auto_offset_reset"}
        self._config = {k: v for k, v in consumer_config.items() if k not in drop}
        self._per_partition_s = per_partition_s

    def find(
        self, candidates: Sequence[tuple[TP, int]], error: type[BaseException], budget_s: float
    ) -> tuple[TP, BaseException] | None:
        """The first candidate whose fetch from its offset raises `error` (or a subclass)."""
        if not candidates:
            return None
        deadline = time.monotonic() + budget_s
        consumer = KafkaConsumer(**self._config, group_id=None, enable_auto_commit=False)
        try:
            for tp, offset in candidates:
                if time.monotonic() >= deadline:
                    break
                failure = self._fetch(consumer, tp, offset, min(deadline, time.monotonic() + self._per_partition_s))
                if failure is not None and isinstance(failure, error):
                    return tp, failure
        finally:
            consumer.close()
        return None

    def check(self, tp: TP, offset: int) -> BaseException | None:
        """None when `tp` fetches and decodes from `offset` (or has nothing there yet); else the error."""
        consumer = KafkaConsumer(**self._config, group_id=None, enable_auto_commit=False)
        try:
            return self._fetch(consumer, tp, offset, time.monotonic() + self._per_partition_s)
        finally:
            consumer.close()

    @staticmethod
    def _fetch(consumer: Any, tp: TP, offset: int, deadline: float) -> BaseException | None:
        key = TopicPartition(*tp)
        consumer.assign([key])
        consumer.seek(key, offset)
        while time.monotonic() < deadline:
            try:
                if consumer.poll(timeout_ms=200, max_records=1):
                    return None
            except Exception as exc:  # noqa: BLE001 - the failure is the answer
                return exc
        return None
