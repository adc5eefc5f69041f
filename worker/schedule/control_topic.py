"""Reading the scheduler's control topic (I/O): every record from the beginning, then what is new.

The one-partition, compacted control topic holds two kinds of keyed records: the
scheduler's memory (``memory/<solution ARN>``, memory_store.py) and the leader's published
observations (``observation/<solution ARN>``, snapshot.py). Readers keep the last value
per key; this module only fetches records.

"Up to the end" is the end reported by ``end_offsets`` when the read starts, confirmed by an
empty poll or by reading past it, because the embedded Tansu broker under-reports end
offsets by the last batch. Records a leader appends meanwhile may or may not be included;
they are never waited for (the leader publishes every tick). A reader that is kept (a
non-leader following the leader's observations) goes on from where it stopped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from kafka import KafkaConsumer, TopicPartition


class Record(NamedTuple):
    """One control-topic record; a None value is a tombstone."""

    key: bytes | None
    value: bytes | None
    offset: int = -1


class ControlTopicReader:
    """A consumer without a group, assigned to the control topic's one partition."""

    def __init__(self, client_config: Mapping[str, Any], topic: str, *, timeout_s: float = 10.0) -> None:
        self._config = dict(client_config)
        self.topic = topic
        self.timeout_s = timeout_s
        self._tp = TopicPartition(topic, 0)
        self._consumer: Any = None

    @property
    def starts_over(self) -> bool:
        """Whether the next `read` returns everything from the beginning (first read, or after an error)."""
        return self._consumer is None

    def read(self, confirm_ms: int = 300) -> list[Record]:
        """Records appended since the last call (the first call: all the topic retains).

        Returns [] when the topic does not exist (it is never auto-created here). Raises
        TimeoutError when the end is not reached within ``timeout_s``; Kafka errors propagate.
        After an error the next read starts over from the beginning, so no record is ever
        skipped: fold records per key, last one wins, and a re-read changes nothing.
        `confirm_ms` is how long the final, empty poll waits.
        """
        try:
            return self._read(confirm_ms)
        except BaseException:
            self.close()
            raise

    def _read(self, confirm_ms: int) -> list[Record]:
        consumer = self._consumer
        if consumer is None:
            consumer = KafkaConsumer(
                **self._config, enable_auto_commit=False, group_id=None, allow_auto_create_topics=False
            )
            if not consumer.partitions_for_topic(self.topic):
                consumer.close(autocommit=False, timeout_ms=2000)
                return []
            consumer.assign([self._tp])
            consumer.seek_to_beginning(self._tp)
            self._consumer = consumer
        timeout_ms = int(self.timeout_s * 1000)
        end = consumer.end_offsets([self._tp], timeout_ms=timeout_ms).get(self._tp, 0)
        records: list[Record] = []
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=confirm_ms)
            fetched = [Record(r.key, r.value, r.offset) for rs in batch.values() for r in rs]
            records.extend(fetched)
            position = consumer.position(self._tp, timeout_ms=timeout_ms)
            # Past the reported end: the batch it hid is read (fetches return whole batches). At it:
            # only an empty poll confirms. Not waiting for silence: a leader may be writing right now.
            if position > end or (not fetched and position >= end):
                return records
        raise TimeoutError(f"could not read the scheduler control topic {self.topic!r} in {self.timeout_s:g}s")

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                consumer.close(autocommit=False, timeout_ms=2000)


def read_control_topic(client_config: Mapping[str, Any], topic: str, *, timeout_s: float = 10.0) -> list[Record]:
    """Every record the control topic retains, oldest first (one short-lived consumer)."""
    reader = ControlTopicReader(client_config, topic, timeout_s=timeout_s)
    try:
        return reader.read()
    finally:
        reader.close()
