"""ConsumerThread against a stand-in KafkaConsumer: settings, partition faults, resets.

The stand-in replaces kafka-python's KafkaConsumer (a broker is impossible in a unit test);
the same paths run against the real broker in tests/integration/test_partition_faults.py,
test_topic_recreation.py and test_stall_visibility.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import TopicPartition
from kafka import errors as kerrors
from kafka.consumer.fetcher import ConsumerRecord

from worker.config import load_settings
from worker.ingest import consumer as consumer_module
from worker.ingest.feedback import ConsumerFeedback
from worker.observe.metrics import Metrics
from worker.records import RawRecord

TRACKING_ID = "11111111-2222-3333-4444-555555555555"


class FakeConsumer:
    """What the consumer thread uses of KafkaConsumer, scripted per test."""

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.listener: Any = None
        self.assigned: list[TopicPartition] = []
        self._paused: set[TopicPartition] = set()
        self.positions: dict[TopicPartition, int] = {}
        self.highwaters: dict[TopicPartition, int] = {}
        self.script: list[Any] = []  # poll results: dict of records, or an exception to raise
        self.seeks: list[tuple[TopicPartition, int | str]] = []
        self.commits: list[dict[TopicPartition, Any]] = []
        self.topic_ids: dict[str, str] = {}
        self._client = self
        self.cluster = self
        self._fetcher = type("Fetcher", (), {"_next_partition_records": None, "_paused_partition_records": {},
                                             "_paused_completed_fetches": {}})()

    # subscription and rebalances
    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener

    def rebalance(self, assigned: list[TopicPartition]) -> None:
        if self.assigned:
            self.listener.on_partitions_revoked(self.assigned)
        self.assigned = assigned
        self.listener.on_partitions_assigned(assigned)

    # fetching
    def poll(self, timeout_ms: int = 0) -> dict[TopicPartition, list[Any]]:
        step = self.script.pop(0) if self.script else {}
        if isinstance(step, BaseException):
            raise step
        return step

    def pause(self, *tps: TopicPartition) -> None:
        self._paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._paused.difference_update(tps)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def position(self, tp: TopicPartition, timeout_ms: int | None = None) -> int | None:
        return self.positions.get(tp)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters.get(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))
        self.positions[tp] = offset

    def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.seeks.append((tp, "beginning"))
            self.positions[tp] = 0

    def seek_to_end(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.seeks.append((tp, "end"))

    def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        self.commits.append(offsets)

    def commit_async(self, offsets: dict[TopicPartition, Any]) -> None:
        self.commits.append(offsets)

    def topic_id(self, topic: str) -> str | None:
        return self.topic_ids.get(topic)

    def close(self) -> None:
        pass


class ListSink:
    """A `RecordSink` that keeps what the consumer thread handed over."""

    def __init__(self) -> None:
        self.records: list[RawRecord] = []

    def submit(self, records: list[RawRecord]) -> None:
        self.records.extend(records)


class FakeProbe:
    """Stands in for FetchProbe: `bad` partitions fail with `error` until healed."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.bad: dict[tuple[str, int], BaseException] = {}
        self.calls: list[tuple[str, int]] = []

    def find(self, candidates: Iterable[tuple[tuple[str, int], int]], error: type[BaseException],
             budget_s: float) -> tuple[tuple[str, int], BaseException] | None:
        for tp, _offset in candidates:
            self.calls.append(tp)
            if tp in self.bad and isinstance(self.bad[tp], error):
                return tp, self.bad[tp]
        return None

    def check(self, tp: tuple[str, int], offset: int) -> BaseException | None:
        self.calls.append(tp)
        return self.bad.get(tp)


def _settings(tmp_path: Path, kafka: dict[str, Any] | None = None) -> Any:
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": "127.0.0.1:9", **(kafka or {})},
        "topics": [{"name": "clicks", "dataset_type": "interactions", "tracking_id": TRACKING_ID}],
    }))
    return load_settings(path)


def _record(partition: int, offset: int) -> ConsumerRecord:
    return ConsumerRecord("clicks", partition, -1, offset, 1_700_000_000_000, 0, None, b"{}", [], None, -1, 2, -1)


@pytest.fixture
def thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(consumer_module, "KafkaConsumer", FakeConsumer)
    monkeypatch.setattr(consumer_module, "FetchProbe", FakeProbe)
    for name in ("WORKER_KAFKA__ISOLATION_LEVEL", "WORKER_KAFKA__METADATA_MAX_AGE_MS"):
        monkeypatch.delenv(name, raising=False)
    sink = ListSink()
    worker_thread = consumer_module.ConsumerThread(
        _settings(tmp_path, {"stall_after_s": 3.0, "partition_retry_s": 10.0}).kafka, ["clicks"],
        sink=sink, feedback=ConsumerFeedback(), metrics=Metrics(), max_inflight_events=100, max_inflight_bytes=1 << 20,
    )
    worker_thread._consumer = worker_thread._connect()
    worker_thread._consumer.subscribe(["clicks"], listener=consumer_module._Listener(worker_thread))
    worker_thread.submitted = sink.records
    return worker_thread


def test_the_consumer_gets_read_committed_and_a_30_s_metadata_refresh_by_default(thread: Any) -> None:
    """kafka-python's defaults are read_uncommitted and 5 minutes: dropping a setting fails here."""
    config = thread._consumer.config
    assert config["isolation_level"] == "read_committed"
    assert config["metadata_max_age_ms"] <= 30_000
    assert config["enable_auto_commit"] is False


def test_kafka_settings_reach_the_consumer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer_module, "KafkaConsumer", FakeConsumer)
    settings = _settings(tmp_path, {"isolation_level": "read_uncommitted", "metadata_max_age_ms": 5000,
                                    "max_partition_fetch_bytes": 4 << 20})
    consumer = consumer_module.ConsumerThread(settings.kafka, ["clicks"], sink=ListSink(), feedback=ConsumerFeedback(),
                                              metrics=Metrics(),
                                              max_inflight_events=10, max_inflight_bytes=1024)._connect()
    assert consumer.config["isolation_level"] == "read_uncommitted"
    assert consumer.config["metadata_max_age_ms"] == 5000
    assert consumer.config["max_partition_fetch_bytes"] == 4 << 20


def _assign(thread: Any, partitions: Iterable[int]) -> list[TopicPartition]:
    tps = [TopicPartition("clicks", p) for p in partitions]
    thread._consumer.rebalance(tps)
    return tps


def test_a_codec_failure_pauses_only_its_partition_and_is_reported(thread: Any) -> None:
    consumer = thread._consumer
    tp0, tp1 = _assign(thread, [0, 1])
    consumer.positions = {tp0: 7, tp1: 3}
    consumer.highwaters = {tp0: 20, tp1: 10}
    error = kerrors.UnsupportedCodecError("Libraries for zstd compression codec not found")
    thread._probe.bad[("clicks", 0)] = error
    consumer._fetcher._next_partition_records = type("R", (), {"topic_partition": tp0})()
    consumer.script = [error, {tp1: [_record(1, 3), _record(1, 4)]}]
    thread._poll(draining=False)  # raises inside: attributed, not fatal
    assert thread._probe.calls == [("clicks", 0)]  # the fetcher's hint was probed first, and confirmed
    assert tp0 in consumer.paused() and tp1 not in consumer.paused()
    errors, _stalled = thread.partition_report()
    assert list(errors) == ["clicks-0"] and "zstandard" in errors["clicks-0"] and "offset 7" in errors["clicks-0"]
    thread._poll(draining=False)  # the other partition keeps flowing
    assert [r.source.offset for r in thread.submitted] == [3, 4]
    thread._apply_backpressure(draining=False)
    assert tp0 in consumer.paused(), "backpressure must not resume a faulted partition"
    assert thread._metrics.partition_fetch_error.labels(topic="clicks", partition="0")._value.get() == 1


def test_a_faulted_partition_resumes_from_its_position_once_a_probe_decodes(thread: Any) -> None:
    consumer = thread._consumer
    tp0, _tp1 = _assign(thread, [0, 1])
    consumer.positions = {tp0: 7}
    consumer.highwaters = {tp0: 20}
    error = kerrors.CorruptRecordError("crc")
    thread._probe.bad[("clicks", 0)] = error
    consumer.script = [error]
    thread._poll(draining=False)
    fault = thread._parts.faults[("clicks", 0)]
    thread._retry_faulted(fault.retry_at)  # still bad: stays paused, backs off
    assert ("clicks", 0) in thread._parts.faults and thread._parts.faults[("clicks", 0)].attempts == 2
    del thread._probe.bad[("clicks", 0)]
    thread._retry_faulted(thread._parts.faults[("clicks", 0)].retry_at)
    assert ("clicks", 0) not in thread._parts.faults
    assert consumer.seeks == [(tp0, 7)]
    thread._apply_backpressure(draining=False)
    assert tp0 not in consumer.paused()


def test_failures_of_the_whole_client_still_stop_the_thread(thread: Any) -> None:
    _assign(thread, [0])
    thread._consumer.script = [kerrors.SaslAuthenticationFailedError("bad password")]
    with pytest.raises(kerrors.SaslAuthenticationFailedError):
        thread._poll(draining=False)


def test_an_unattributable_failure_is_retried_then_fatal(thread: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer_module.time, "sleep", lambda _s: None)
    tp0, = _assign(thread, [0])
    thread._consumer.positions = {tp0: 0}
    thread._consumer.highwaters = {tp0: 5}
    thread._consumer.script = [kerrors.KafkaError("odd")] * 5
    for _ in range(4):
        thread._poll(draining=False)
    assert not thread._parts.faults
    with pytest.raises(kerrors.KafkaError):
        thread._poll(draining=False)


def test_a_recreated_topic_is_held_until_in_flight_records_finish_then_restarts(thread: Any) -> None:
    consumer = thread._consumer
    tp0, = _assign(thread, [0])
    consumer.topic_ids = {"clicks": "id-1"}
    consumer.positions = {tp0: 50}
    consumer.highwaters = {tp0: 50}
    consumer.script = [{tp0: [_record(0, 48), _record(0, 49)]}]
    thread._poll(draining=False)
    thread._observe_partitions()
    consumer.topic_ids = {"clicks": "id-2"}  # deleted and re-created under the same name
    thread._last_observe = 0.0
    thread._observe_partitions()
    assert thread._parts.recreated(("clicks", 0)) and consumer.seeks == []
    thread._apply_backpressure(draining=False)
    assert tp0 in consumer.paused()
    thread._feedback.complete([r.source for r in thread.submitted])
    thread._apply_completions()
    thread._last_observe = 0.0
    thread._observe_partitions()
    assert consumer.seeks == [(tp0, "beginning")]
    assert thread._parts.position(("clicks", 0)) is None  # committed mark forgotten: may go back to 0
    thread._apply_backpressure(draining=False)
    assert tp0 not in consumer.paused()
    assert thread._metrics.offset_resets.labels(topic="clicks")._value.get() == 1


def test_a_fetch_position_past_a_transaction_marker_is_committed(thread: Any) -> None:
    consumer = thread._consumer
    tp0, = _assign(thread, [0])
    consumer.script = [{tp0: [_record(0, 0), _record(0, 1)]}]
    thread._poll(draining=False)
    thread._feedback.complete([r.source for r in thread.submitted])
    thread._apply_completions()
    consumer.positions = {tp0: 3}  # offset 2 is a commit marker: never handed out
    consumer.highwaters = {tp0: 3}
    thread._observe_partitions()
    assert thread._commit(force=True)
    assert consumer.commits[-1][tp0].offset == 3
    assert thread._metrics.consumer_lag.labels(topic="clicks", partition="0")._value.get() == 0


def test_revocation_clears_the_partition_gauges(thread: Any) -> None:
    consumer = thread._consumer
    tp0, tp1 = _assign(thread, [0, 1])
    consumer.positions, consumer.highwaters = {tp0: 0}, {tp0: 9}
    consumer.script = [kerrors.CorruptRecordError("crc")]
    thread._probe.bad[("clicks", 0)] = kerrors.CorruptRecordError("crc")
    thread._poll(draining=False)
    consumer.rebalance([tp1])
    assert thread.partition_report() == ({}, {})
    samples = [s for f in thread._metrics.registry.collect() for s in f.samples
               if s.name in ("clickstream_partition_fetch_error", "clickstream_partition_stalled")]
    assert samples == [], "a revoked partition keeps reporting (the new owner's alert would double)"


def test_a_rebalance_mid_flight_commits_what_is_done_and_rewinds_a_partition_that_comes_back(thread: Any) -> None:
    consumer = thread._consumer
    tp0, tp1 = _assign(thread, [0, 1])
    consumer.script = [{tp0: [_record(0, o) for o in range(5)], tp1: [_record(1, o) for o in range(3)]}]
    thread._poll(draining=False)
    done = [r.source for r in thread.submitted if r.source.partition == 1 or r.source.offset < 2]
    thread._feedback.complete(done)
    thread._apply_completions()
    consumer.commits.clear()
    consumer.rebalance([tp0])  # revokes both, hands partition 0 straight back
    assert {tp: meta.offset for tp, meta in consumer.commits[-1].items()} == {tp0: 2, tp1: 3}
    # The poll after the rebalance rewinds partition 0 to its first unfinished record and drops
    # what it fetched past the rewind (it is fetched again from there).
    consumer.script = [{tp0: [_record(0, 5), _record(0, 6)]}]
    before = len(thread.submitted)
    thread._poll(draining=False)
    assert consumer.seeks == [(tp0, 2)]
    assert len(thread.submitted) == before
    late = [r.source for r in thread.submitted if r.source.partition == 0 and r.source.offset >= 2]
    thread._feedback.complete(late)  # completions of the revoked copies do not count
    thread._apply_completions()
    assert thread._parts.committable() == {}


def test_a_failed_commit_is_retried_and_nothing_is_lost(thread: Any) -> None:
    consumer = thread._consumer
    tp0, = _assign(thread, [0])
    consumer.script = [{tp0: [_record(0, 0), _record(0, 1)]}]
    thread._poll(draining=False)
    thread._feedback.complete([r.source for r in thread.submitted])
    thread._apply_completions()
    real_commit = consumer.commit
    consumer.commit = lambda offsets: (_ for _ in ()).throw(kerrors.CommitFailedError("rebalancing"))
    assert not thread._commit(force=True)
    assert thread._metrics.commits.labels(outcome="failed")._value.get() == 1
    consumer.commit = real_commit
    assert thread._commit(force=True)
    assert consumer.commits[-1][tp0].offset == 2
    assert thread._parts.committable() == {}, "acknowledged: not committed again"


def test_backpressure_pauses_at_the_limit_and_resumes_at_half_of_it(thread: Any) -> None:
    consumer = thread._consumer
    tp0, tp1 = _assign(thread, [0, 1])
    consumer.script = [{tp0: [_record(0, o) for o in range(100)]}]
    thread._poll(draining=False)
    thread._apply_backpressure(draining=False)
    assert consumer.paused() == {tp0, tp1}, "100 in flight: every partition pauses"
    sources = [r.source for r in thread.submitted]
    thread._feedback.complete(sources[:40])
    thread._apply_completions()
    thread._apply_backpressure(draining=False)
    assert consumer.paused() == {tp0, tp1}, "60 in flight: above half, still paused (no flapping)"
    thread._feedback.complete(sources[40:60])
    thread._apply_completions()
    thread._apply_backpressure(draining=False)
    assert consumer.paused() == set(), "40 in flight: at most half, resumed"


def test_drain_finishes_in_flight_work_commits_and_closes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    monkeypatch.setattr(consumer_module, "KafkaConsumer", FakeConsumer)
    monkeypatch.setattr(consumer_module, "FetchProbe", FakeProbe)
    sink, feedback = ListSink(), ConsumerFeedback()
    created: list[FakeConsumer] = []

    class Recording(FakeConsumer):
        def __init__(self, **config: Any) -> None:
            super().__init__(**config)
            created.append(self)
            self.closed = False

        def subscribe(self, topics: list[str], listener: Any) -> None:
            super().subscribe(topics, listener)
            tp = TopicPartition("clicks", 0)
            self.rebalance([tp])
            self.script = [{tp: [_record(0, o) for o in range(4)]}]

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(consumer_module, "KafkaConsumer", Recording)
    worker_thread = consumer_module.ConsumerThread(
        _settings(tmp_path).kafka, ["clicks"], sink=sink, feedback=feedback, metrics=Metrics(),
        max_inflight_events=100, max_inflight_bytes=1 << 20,
    )
    worker_thread.start()
    deadline = threading.Event()
    while len(sink.records) < 4 and not deadline.wait(0.01):
        pass
    worker_thread.begin_drain(timeout_s=5.0)
    feedback.complete([r.source for r in sink.records[:3]])  # the 4th finishes late
    assert not worker_thread.wait_closed(0.5), "draining waits for in-flight records"
    feedback.complete([sink.records[3].source])
    assert worker_thread.wait_closed(5.0)
    (consumer,) = created
    assert consumer.closed and consumer.commits[-1][TopicPartition("clicks", 0)].offset == 4
    assert worker_thread.fatal_error is None
