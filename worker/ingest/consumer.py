"""The consumer thread: the only thread that touches the KafkaConsumer.

kafka-python's consumer is not thread-safe, so one dedicated thread creates it, polls,
pauses/resumes, commits and closes it. Records go to the asyncio side through `submit`;
finished records come back through a thread-safe queue (`complete`).

Each loop iteration runs these steps in this order, because correctness depends on it:
  1. apply completions to the offset tracker;
  2. commit positions that advanced (every `commit_interval_s`, and always when draining);
  3. apply backpressure (pause when too much is in flight, resume when drained; partitions
     of a topic stopped on a configuration fault stay paused);
  4. poll (paused partitions still poll, so the member is never evicted) and submit.
Rebalance callbacks run on kafka-python's I/O thread: they only forget revoked partitions
and fire a non-blocking commit_async of what was finished (a blocking commit there raises).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from worker.config import KafkaSettings
from worker.ingest.deadletter import RawRecord
from worker.ingest.offsets import TP, OffsetTracker
from worker.observe.metrics import Metrics
from worker.records import SourceRef

log = structlog.get_logger(__name__)

Submit = Callable[[list[RawRecord]], object]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: ConsumerThread) -> None:
        self._owner = owner

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._owner._on_revoked(list(revoked))

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._owner._on_assigned(list(assigned))


class ConsumerThread(threading.Thread):
    """Owns the group membership, offsets and backpressure for one worker process."""

    def __init__(
        self,
        settings: KafkaSettings,
        topics: list[str],
        submit: Submit,
        metrics: Metrics,
        *,
        max_inflight_events: int,
        max_inflight_bytes: int,
        consumer_overrides: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name="kafka-consumer", daemon=True)
        self._settings = settings
        self._topics = topics
        self._submit = submit
        self._metrics = metrics
        self._max_events = max_inflight_events
        self._max_bytes = max_inflight_bytes
        self._overrides = consumer_overrides or {}
        self._tracker = OffsetTracker()
        self._lock = threading.Lock()  # the tracker is touched by this thread and the I/O thread
        self._completions: queue.SimpleQueue[list[SourceRef]] = queue.SimpleQueue()
        self._consumer: Any = None
        self._stop_fetching = threading.Event()
        self._drained = threading.Event()
        self._closed = threading.Event()
        self._drain_deadline = 0.0
        self._paused_topics: set[str] = set()
        self._backpressured = False
        self._assignment: set[TP] = set()
        # Where revoked partitions still had unfinished records, and the seeks owed when a
        # partition comes straight back (see `_on_assigned`); both under `_lock`.
        self._rewind: dict[TP, int] = {}
        self._seeks: dict[TP, int] = {}
        self._last_commit = 0.0
        self._last_lag = 0.0
        self.fatal_error: BaseException | None = None

    # -- called from other threads -------------------------------------------------------------

    def complete(self, sources: list[SourceRef]) -> None:
        """Thread-safe: these records are done (delivered, or their DLQ write acknowledged)."""
        self._completions.put(sources)

    def stop_topic(self, topic: str) -> None:
        """Thread-safe: stop fetching a topic (configuration fault) until `resume_topic`."""
        self._paused_topics.add(topic)

    def resume_topic(self, topic: str) -> None:
        self._paused_topics.discard(topic)

    def begin_drain(self, timeout_s: float) -> None:
        """Thread-safe: stop fetching, finish in-flight work within `timeout_s`, commit, leave."""
        self._drain_deadline = time.monotonic() + timeout_s
        self._stop_fetching.set()

    def wait_closed(self, timeout_s: float) -> bool:
        return self._closed.wait(timeout_s)

    @property
    def assigned_partitions(self) -> int:
        return len(self._assignment)

    @property
    def inflight(self) -> int:
        return self._tracker.inflight_count()

    # -- the thread ------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._consumer = self._connect()
            if self._consumer is None:
                return
            self._consumer.subscribe(self._topics, listener=_Listener(self))
            while True:
                self._apply_completions()
                draining = self._stop_fetching.is_set()
                if draining and (self._tracker.inflight_count() == 0 or time.monotonic() > self._drain_deadline):
                    break
                self._commit(force=draining)
                self._apply_backpressure(draining)
                self._poll(draining)
                self._report_lag()
            self._finish()
        except BaseException as exc:
            self.fatal_error = exc
            log.exception("consumer thread failed")
        finally:
            if self._consumer is not None:
                try:
                    self._consumer.close()
                except Exception:
                    log.warning("consumer close failed", exc_info=True)
            self._closed.set()

    def _connect(self) -> Any:
        """Create the consumer, retrying with a clear message while the brokers are unreachable."""
        config = {
            **self._settings.client_config(),
            "group_id": self._settings.group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": self._settings.auto_offset_reset,
            "session_timeout_ms": self._settings.session_timeout_ms,
            "heartbeat_interval_ms": self._settings.heartbeat_interval_ms,
            "max_poll_interval_ms": self._settings.max_poll_interval_ms,
            "max_poll_records": self._settings.max_poll_records,
            "fetch_max_wait_ms": self._settings.fetch_max_wait_ms,
            "fetch_min_bytes": self._settings.fetch_min_bytes,
            **self._overrides,
        }
        delay = 1.0
        while not self._stop_fetching.is_set():
            try:
                return KafkaConsumer(**config)
            except KafkaError as exc:
                log.warning(
                    "kafka not reachable yet; retrying",
                    bootstrap_servers=self._settings.bootstrap_servers, error=str(exc), retry_in_s=delay,
                )
                self._stop_fetching.wait(delay)
                delay = min(delay * 2, 30.0)
        return None

    def _apply_completions(self) -> None:
        done = 0
        with self._lock:
            while True:
                try:
                    sources = self._completions.get_nowait()
                except queue.Empty:
                    break
                for source in sources:
                    if self._tracker.complete((source.topic, source.partition), source.offset):
                        done += 1
            self._metrics.inflight_events.set(self._tracker.inflight_count())
            self._metrics.inflight_bytes.set(self._tracker.inflight_bytes())

    def _commit(self, *, force: bool = False) -> bool:
        """Commit advanced positions; False if a commit was needed and failed."""
        now = time.monotonic()
        if not force and now - self._last_commit < self._settings.commit_interval_s:
            return True
        self._last_commit = now
        with self._lock:
            positions = self._tracker.committable()
        if not positions:
            return True
        offsets = {TopicPartition(t, p): OffsetAndMetadata(pos, "", -1) for (t, p), pos in positions.items()}
        try:
            self._consumer.commit(offsets)
        except KafkaError as exc:  # e.g. CommitFailedError during a rebalance: redelivery is harmless
            self._metrics.commits.labels(outcome="failed").inc()
            log.warning("commit failed; will retry", error=str(exc))
            return False
        with self._lock:
            self._tracker.mark_committed(positions)
        self._metrics.commits.labels(outcome="ok").inc()
        return True

    def _apply_backpressure(self, draining: bool) -> None:
        assignment = [TopicPartition(t, p) for t, p in self._assignment]
        if not assignment:
            return
        events, size = self._tracker.inflight_count(), self._tracker.inflight_bytes()
        if self._backpressured:
            if events <= self._max_events // 2 and size <= self._max_bytes // 2:
                self._backpressured = False
        elif events >= self._max_events or size >= self._max_bytes:
            self._backpressured = True
            log.info("backpressure: pausing fetch", inflight_events=events, inflight_bytes=size)
        blocked = draining or self._backpressured
        want_paused = {tp for tp in assignment if blocked or tp.topic in self._paused_topics}
        currently = set(self._consumer.paused())
        if want_paused - currently:
            self._consumer.pause(*(want_paused - currently))
        if (currently & set(assignment)) - want_paused:
            self._consumer.resume(*((currently & set(assignment)) - want_paused))
        self._metrics.paused_partitions.set(len(want_paused))

    def _poll(self, draining: bool) -> None:
        polled = self._consumer.poll(timeout_ms=50 if draining else 100)
        with self._lock:
            seeks, self._seeks = self._seeks, {}
        for (topic, partition), offset in seeks.items():
            log.info("rewinding a partition kept across the rebalance to its first unfinished record",
                     topic=topic, partition=partition, offset=offset)
            self._consumer.seek(TopicPartition(topic, partition), offset)
        if not polled:
            return
        raws: list[RawRecord] = []
        with self._lock:
            for tp, records in polled.items():
                key = (tp.topic, tp.partition)
                if key not in self._assignment or key in seeks:
                    continue  # not ours any more, or fetched past the rewind: fetched again from there
                for r in records:
                    raw = RawRecord(
                        source=SourceRef(tp.topic, tp.partition, r.offset),
                        key=r.key,
                        value=r.value,
                        headers=tuple(r.headers or ()),
                        timestamp_ms=r.timestamp,
                    )
                    self._tracker.add(key, r.offset, raw.size)
                    raws.append(raw)
                self._metrics.events_consumed.labels(topic=tp.topic).inc(len(records))
        if raws:
            self._submit(raws)

    def _report_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < 5.0:
            return
        self._last_lag = now
        for topic, partition in list(self._assignment):
            tp = TopicPartition(topic, partition)
            high = self._consumer.highwater(tp)
            with self._lock:
                pos = self._tracker.position((topic, partition))
            if high is not None and pos is not None:
                self._metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(max(0, high - pos))

    def _finish(self) -> None:
        self._apply_completions()
        # A commit racing a rebalance fails; polling (everything paused) lets the member rejoin,
        # after which the positions of partitions we still own can be committed.
        for _attempt in range(5):
            if self._commit(force=True):
                break
            self._consumer.poll(timeout_ms=200)
            self._apply_completions()
        left = self._tracker.inflight_count()
        if left:
            log.warning("drain deadline reached; unfinished records stay uncommitted and will be redelivered",
                        inflight_events=left)
        else:
            log.info("drained: all in-flight records finished and committed")
        self._drained.set()

    # -- rebalance callbacks (kafka-python I/O thread) -------------------------------------------

    def _on_revoked(self, revoked: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in revoked]
        with self._lock:
            self._rewind = {
                key: position for key in keys
                if self._tracker.inflight_count(key) and (position := self._tracker.position(key)) is not None
            }
            positions = self._tracker.revoke(keys)
            self._assignment.difference_update(keys)
        for topic, partition in keys:
            with contextlib.suppress(KeyError):  # no lag reported yet for this partition
                self._metrics.consumer_lag.remove(topic, str(partition))
        offsets = {TopicPartition(t, p): OffsetAndMetadata(pos, "", -1) for (t, p), pos in positions.items()}
        if offsets and self._consumer is not None:
            try:
                self._consumer.commit_async(offsets)
            except Exception as exc:  # noqa: BLE001 - best effort; redelivery is deduplicated downstream
                log.warning("commit on revoke failed", error=str(exc))
        self._metrics.rebalances.inc()
        self._metrics.partitions_assigned.set(len(self._assignment))
        log.info("partitions revoked", partitions=sorted(f"{t}-{p}" for t, p in keys))

    def _on_assigned(self, assigned: list[TopicPartition]) -> None:
        """Record the assignment; rewind partitions that came straight back with unfinished records.

        kafka-python keeps the fetch position of a partition that stays assigned across a
        rebalance, but its unfinished records were forgotten at revocation (their completions
        no longer count). Left alone, the partition's commits would resume past them while
        they might still fail or be lost with the process. Seeking back to the first
        unfinished offset redelivers them instead (deterministic event IDs make that harmless).
        The seek happens on this consumer's thread, after the poll that ran this callback.
        """
        with self._lock:
            back = {(tp.topic, tp.partition) for tp in assigned} & set(self._rewind)
            self._seeks.update({key: self._rewind[key] for key in back})
            self._rewind = {}
            self._assignment.update((tp.topic, tp.partition) for tp in assigned)
        self._metrics.partitions_assigned.set(len(self._assignment))
        log.info("partitions assigned", partitions=sorted(f"{tp.topic}-{tp.partition}" for tp in assigned))
