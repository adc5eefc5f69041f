"""Attributing poll() failures to partitions, their fixes, and the kafka-python internals used."""

from __future__ import annotations

import inspect
from collections import deque
from typing import Any

import kafka.cluster
import kafka.consumer.fetcher
import pytest
from kafka import TopicPartition
from kafka import errors as kerrors
from kafka.consumer.fetcher import RecordTooLargeError

from worker.ingest.fetch_faults import fix_for, is_client_error, named_partitions
from worker.ingest.kafka_internals import discard_buffered, fetcher_hint, release_parked, topic_id

ASSIGNED = [("clicks", 0), ("clicks", 1), ("items", 0)]


@pytest.mark.parametrize("exc", [
    kerrors.SaslAuthenticationFailedError(), kerrors.KafkaConfigurationError("bad"), kerrors.IllegalStateError(),
    kerrors.GroupAuthorizationFailedError(), kerrors.ClusterAuthorizationFailedError(),
])
def test_failures_of_the_whole_client_stay_fatal(exc: BaseException) -> None:
    assert is_client_error(exc)


@pytest.mark.parametrize("exc", [
    kerrors.UnsupportedCodecError("Libraries for zstd compression codec not found"),
    kerrors.CorruptRecordError("crc"), RecordTooLargeError("big"), kerrors.TopicAuthorizationFailedError({"x"}),
    kerrors.KafkaError("Failed to make progress"), RuntimeError("StopIteration raised unpacking messageset"),
])
def test_failures_of_one_partition_are_not_client_errors(exc: BaseException) -> None:
    assert not is_client_error(exc)


@pytest.mark.parametrize(("codec", "package"), [("zstd", "zstandard"), ("lz4", "lz4"), ("snappy", "python-snappy")])
def test_a_missing_codec_names_the_package_to_install(codec: str, package: str) -> None:
    fix = fix_for(kerrors.UnsupportedCodecError(f"Libraries for {codec} compression codec not found"))
    assert package in fix and "restart" in fix


@pytest.mark.parametrize(("exc", "words"), [
    (kerrors.CorruptRecordError("crc"), "--reset-offsets"),
    (RecordTooLargeError("big"), "kafka.max_partition_fetch_bytes"),
    (kerrors.TopicAuthorizationFailedError({"clicks"}), "grant"),
    (ValueError("odd"), "kafka.partition_retry_s"),
])
def test_every_failure_gets_a_fix(exc: BaseException, words: str) -> None:
    assert words in fix_for(exc)


def test_partitions_named_by_the_exception() -> None:
    too_large = RecordTooLargeError("msg", {TopicPartition("clicks", 1): 57})
    assert named_partitions(too_large, ASSIGNED) == [("clicks", 1)]
    denied = kerrors.TopicAuthorizationFailedError({"clicks"})
    assert named_partitions(denied, ASSIGNED) == [("clicks", 0), ("clicks", 1)]
    not_ours = RecordTooLargeError("msg", {TopicPartition("other", 0): 1})
    assert named_partitions(not_ours, ASSIGNED) == []
    assert named_partitions(kerrors.UnsupportedCodecError("x"), ASSIGNED) == []


# -- kafka-python internals, against the installed release -------------------------------------


def test_the_fetcher_internals_used_exist_in_the_installed_kafka_python() -> None:
    """kafka_internals reads these; an upgrade that renames them must fail here, not in production."""
    init = inspect.getsource(kafka.consumer.fetcher.Fetcher.__init__)
    for name in ("_next_partition_records", "_paused_partition_records", "_paused_completed_fetches"):
        assert f"self.{name} =" in init, name
    assert hasattr(kafka.consumer.fetcher.Fetcher.PartitionRecords, "drain")
    assert "topic_partition" in inspect.getsource(kafka.consumer.fetcher.Fetcher.PartitionRecords.__init__)
    assert callable(kafka.cluster.ClusterMetadata.topic_id)


class _Records:
    def __init__(self, tp: TopicPartition) -> None:
        self.topic_partition = tp
        self.drained = False

    def drain(self) -> None:
        self.drained = True


class _Fetcher:
    def __init__(self) -> None:
        self._next_partition_records: Any = None
        self._paused_partition_records: dict[TopicPartition, Any] = {}
        self._paused_completed_fetches: dict[TopicPartition, Any] = {}
        self._completed_fetches: deque[Any] = deque()


class _Consumer:
    def __init__(self) -> None:
        self._fetcher = _Fetcher()


def test_fetcher_hint_names_the_partition_being_unpacked() -> None:
    consumer = _Consumer()
    assert fetcher_hint(consumer) is None
    consumer._fetcher._next_partition_records = _Records(TopicPartition("clicks", 3))
    assert fetcher_hint(consumer) == ("clicks", 3)
    assert fetcher_hint(object()) is None  # internals gone: no hint, no crash


def test_discard_buffered_drops_parked_and_current_data_of_one_partition_only() -> None:
    consumer = _Consumer()
    fetcher = consumer._fetcher
    mine, other, current = (_Records(TopicPartition("clicks", 0)), _Records(TopicPartition("clicks", 1)),
                            _Records(TopicPartition("clicks", 0)))
    fetcher._paused_partition_records = {TopicPartition("clicks", 0): mine, TopicPartition("clicks", 1): other}
    fetcher._paused_completed_fetches = {TopicPartition("clicks", 0): "raw", TopicPartition("clicks", 1): "raw"}
    fetcher._next_partition_records = current
    assert discard_buffered(consumer, ("clicks", 0))
    assert mine.drained and current.drained and not other.drained
    assert list(fetcher._paused_partition_records) == [TopicPartition("clicks", 1)]
    assert list(fetcher._paused_completed_fetches) == [TopicPartition("clicks", 1)]
    assert fetcher._next_partition_records is None
    assert not discard_buffered(object(), ("clicks", 0))


def test_topic_id_reads_the_consumer_metadata() -> None:
    class Cluster:
        def topic_id(self, name: str) -> object:
            return {"clicks": "01a2-uuid"}.get(name)

    class Client:
        cluster = Cluster()

    class Consumer:
        _client = Client()

    assert topic_id(Consumer(), "clicks") == "01a2-uuid"
    assert topic_id(Consumer(), "other") is None
    assert topic_id(object(), "clicks") is None


class _Subscriptions:
    def __init__(self, paused: set[TopicPartition]) -> None:
        self.paused = paused

    def is_paused(self, tp: TopicPartition) -> bool:
        return tp in self.paused


class _Exhausted(_Records):
    """A fully read batch: kafka-python's PartitionRecords is falsy once its iterator is gone."""

    def __bool__(self) -> bool:
        return False


def _real_fetcher(exhausted: Any, parked: dict[TopicPartition, Any]) -> Any:
    """kafka-python's own Fetcher, its state set as after: p1 paused with records parked, p0's
    batch fully read, p1 resumed. `fetched_records` is the real method."""
    fetcher = kafka.consumer.fetcher.Fetcher.__new__(kafka.consumer.fetcher.Fetcher)
    fetcher.config = {"max_poll_records": 100}
    fetcher._subscriptions = _Subscriptions(set())
    fetcher._next_in_line_exception_metadata = None
    fetcher._completed_fetches = deque()
    fetcher._paused_completed_fetches = {}
    fetcher._paused_partition_records = parked
    fetcher._next_partition_records = exhausted
    return fetcher


def test_kafka_python_keeps_resumed_records_parked_behind_an_exhausted_batch() -> None:
    """The bug `release_parked` works around, shown on the installed kafka-python: the parked
    records of a resumed partition are not given back while an exhausted batch holds the slot,
    so that partition is never fetched again."""
    p1 = TopicPartition("clicks", 1)
    fetcher = _real_fetcher(_Exhausted(TopicPartition("clicks", 0)), {p1: _Exhausted(p1)})
    fetcher.fetched_records()
    assert p1 in fetcher._paused_partition_records, "fixed upstream? then release_parked can go"
    assert p1 not in fetcher._fetchable_partitions.__func__(_FetchableView(fetcher, [p1]))


class _FetchableView:
    """Just enough of a Fetcher for its real `_fetchable_partitions`."""

    def __init__(self, fetcher: Any, fetchable: list[TopicPartition]) -> None:
        self._subscriptions = type("S", (), {"fetchable_partitions": staticmethod(lambda: fetchable)})()
        self._completed_fetches = fetcher._completed_fetches
        self._next_partition_records = fetcher._next_partition_records
        self._paused_completed_fetches = fetcher._paused_completed_fetches
        self._paused_partition_records = fetcher._paused_partition_records


def test_release_parked_lets_the_resumed_partitions_records_come_back() -> None:
    p1 = TopicPartition("clicks", 1)
    fetcher = _real_fetcher(_Exhausted(TopicPartition("clicks", 0)), {p1: _Exhausted(p1)})
    consumer = _Consumer()
    consumer._fetcher = fetcher
    assert release_parked(consumer)
    fetcher.fetched_records()
    assert fetcher._paused_partition_records == {}, "given back to the in-line slot"
    assert p1 in fetcher._fetchable_partitions.__func__(_FetchableView(fetcher, [p1]))


def test_release_parked_leaves_a_batch_being_read_and_an_empty_park_alone() -> None:
    consumer = _Consumer()
    live = _Records(TopicPartition("clicks", 0))  # truthy: records left to read
    consumer._fetcher._next_partition_records = live
    consumer._fetcher._paused_partition_records = {TopicPartition("clicks", 1): _Records(TopicPartition("clicks", 1))}
    assert not release_parked(consumer) and consumer._fetcher._next_partition_records is live
    consumer._fetcher._next_partition_records = _Exhausted(TopicPartition("clicks", 0))
    consumer._fetcher._paused_partition_records = {}
    assert not release_parked(consumer)
    assert not release_parked(object())
