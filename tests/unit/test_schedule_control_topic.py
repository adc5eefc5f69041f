"""The control-topic reader against an in-process stand-in for kafka-python's consumer.

The stand-in keeps a log, answers ``end_offsets`` like the embedded Tansu broker (one batch
short) when told to, returns whole batches from ``poll`` and can have a writer append
between polls, like a leader publishing while a follower reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kafka.structs import TopicPartition

from worker.schedule import control_topic
from worker.schedule.control_topic import ControlTopicReader, Record, read_control_topic

TOPIC = "ctl"
TP = TopicPartition(TOPIC, 0)


class FakeRecord:
    def __init__(self, offset: int, key: bytes, value: bytes | None) -> None:
        self.offset, self.key, self.value = offset, key, value


class FakeLog:
    def __init__(self) -> None:
        self.batches: list[list[FakeRecord]] = []
        self.exists = True
        self.under_report = False
        self.on_poll: Callable[[], None] | None = None
        self.fail_polls = 0
        self.consumers = 0

    def append(self, *pairs: tuple[bytes, bytes | None]) -> None:
        start = self.end
        self.batches.append([FakeRecord(start + n, k, v) for n, (k, v) in enumerate(pairs)])

    @property
    def end(self) -> int:
        return sum(len(b) for b in self.batches)


class FakeConsumer:
    def __init__(self, log: FakeLog, **config: Any) -> None:
        assert config["group_id"] is None and config["enable_auto_commit"] is False
        self.log = log
        self.position_ = 0
        log.consumers += 1

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0} if self.log.exists else set()

    def assign(self, tps: list[TopicPartition]) -> None:
        assert tps == [TP]

    def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.position_ = 0

    def end_offsets(self, tps: list[TopicPartition], timeout_ms: int) -> dict[TopicPartition, int]:
        last = len(self.log.batches[-1]) if self.log.batches else 0
        return {TP: self.log.end - (last if self.log.under_report else 0)}

    def poll(self, timeout_ms: int) -> dict[TopicPartition, list[FakeRecord]]:
        if self.log.fail_polls:
            self.log.fail_polls -= 1
            raise OSError("connection reset")
        batch = next((b for b in self.log.batches if b[0].offset == self.position_), None)
        if self.log.on_poll is not None:
            self.log.on_poll()
        if batch is None:
            return {}
        self.position_ += len(batch)
        return {TP: list(batch)}

    def position(self, tp: TopicPartition, timeout_ms: int) -> int:
        return self.position_

    def close(self, autocommit: bool, timeout_ms: int) -> None:
        return None


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> FakeLog:
    fake = FakeLog()
    monkeypatch.setattr(control_topic, "KafkaConsumer", lambda **config: FakeConsumer(fake, **config))
    return fake


def keys(records: list[Record]) -> list[bytes | None]:
    return [r.key for r in records]


def test_reads_everything_then_only_what_is_new(log: FakeLog) -> None:
    log.append((b"a", b"1"), (b"b", b"2"))
    log.append((b"a", None))
    reader = ControlTopicReader({}, TOPIC, timeout_s=1)
    assert reader.starts_over
    assert reader.read() == [Record(b"a", b"1", 0), Record(b"b", b"2", 1), Record(b"a", None, 2)]
    assert not reader.starts_over and reader.read() == []
    log.append((b"c", b"3"))
    assert reader.read(confirm_ms=10) == [Record(b"c", b"3", 3)]
    assert log.consumers == 1


def test_the_batch_an_under_reported_end_hides_is_read(log: FakeLog) -> None:
    log.under_report = True  # Tansu: end_offsets is one batch short
    log.append((b"a", b"1"))
    log.append((b"b", b"2"), (b"c", b"3"))
    assert keys(read_control_topic({}, TOPIC)) == [b"a", b"b", b"c"]


def test_a_writer_appending_during_the_read_does_not_hold_it(log: FakeLog) -> None:
    log.append((b"a", b"1"))
    n = iter(range(1000))
    log.on_poll = lambda: log.append((f"w{next(n)}".encode(), b"x"))  # a record arrives at every poll
    records = ControlTopicReader({}, TOPIC, timeout_s=1).read()
    assert records[0].key == b"a" and len(records) < 5  # stops past the end it saw, never waits for silence


def test_a_missing_topic_reads_empty_and_is_never_created(log: FakeLog) -> None:
    log.exists = False
    reader = ControlTopicReader({}, TOPIC, timeout_s=1)
    assert reader.read() == [] and reader.starts_over


def test_after_an_error_the_next_read_starts_over(log: FakeLog) -> None:
    log.append((b"a", b"1"))
    reader = ControlTopicReader({}, TOPIC, timeout_s=1)
    assert keys(reader.read()) == [b"a"]
    log.append((b"b", b"2"))
    log.fail_polls = 1
    with pytest.raises(OSError, match="reset"):
        reader.read()
    assert reader.starts_over
    assert keys(reader.read()) == [b"a", b"b"]  # nothing skipped
