"""The consumer thread: the only thread that touches the KafkaConsumer.

kafka-python's consumer is not thread-safe, so one dedicated thread creates it, polls,
pauses/resumes, commits and closes it. Records go to the asyncio side through `submit`;
finished records come back through a thread-safe queue (`complete`).

It talks to the asyncio side only through `feedback` (records handed over go to a
`RecordSink`; completions and topic stops come back through `ConsumerFeedback`).
Each loop iteration runs these steps in this order, because correctness depends on it:
  1. apply completions to the offset tracker;
  2. commit positions that advanced (every `commit_interval_s`, and always when draining);
  3. apply backpressure (pause when too much is in flight, resume when drained; partitions
     of a topic stopped on a configuration fault, and partitions paused on a fetch fault,
     stay paused);
  4. poll (paused partitions still poll, so the member is never evicted) and submit; a
     failure that concerns one partition pauses that partition only (`fetch_faults`);
  5. every few seconds, observe each partition (lag, stalls, a position beyond the log end,
     fetch positions past transaction markers) and retry faulted partitions that are due.
Rebalance callbacks run on kafka-python's I/O thread: they only forget revoked partitions
and fire a non-blocking commit_async of what was finished (a blocking commit there raises).
After an assignment, step 4 tells the quota shares (`assignments`) which partitions this
replica now holds, before the records of that poll are handed over.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable
from typing import Any

import structlog
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from worker.config import KafkaSettings
from worker.ingest.feedback import ConsumerFeedback, RecordSink
from worker.ingest.fetch_faults import FetchProbe, fix_for, is_client_error, named_partitions
from worker.ingest.kafka_internals import (
    discard_buffered,
    fetcher_hint,
    known_partition_count,
    release_parked,
    topic_id,
)
from worker.ingest.partitions import TP, Change, Observation, Partitions, lag_of
from worker.ingest.quota_share import Assignment, AssignmentSink
from worker.observe.metrics import Metrics
from worker.records import RawRecord, SourceRef

log = structlog.get_logger(__name__)



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
        sink: RecordSink,
        feedback: ConsumerFeedback,
        metrics: Metrics,
        *,
        max_inflight_events: int,
        max_inflight_bytes: int,
        consumer_overrides: dict[str, Any] | None = None,
        assignments: AssignmentSink | None = None,
    ) -> None:
        super().__init__(name="kafka-consumer", daemon=True)
        self._settings = settings
        self._topics = topics
        self._sink = sink
        self._feedback = feedback
        self._metrics = metrics
        self._max_events = max_inflight_events
        self._max_bytes = max_inflight_bytes
        self._overrides = consumer_overrides or {}
        self._assignments = assignments
        self._assignment_changed = False  # set by the rebalance callback, published by this thread
        self._lock = threading.Lock()  # the tracker is touched by this thread and the I/O thread
        self._consumer: Any = None
        self._stop_fetching = threading.Event()
        self._closed = threading.Event()
        self._drain_deadline = 0.0
        self._backpressured = False
        self._last_commit = 0.0
        self._last_observe = 0.0
        self._observe_every_s = min(5.0, settings.stall_after_s / 3)
        # Fetch faults and stalls; written on this thread, read by probes under `_lock`.
        # Every partition's state (offsets, rebalance leftovers, holds, faults, progress), under `_lock`.
        self._parts = Partitions(
            stall_after_s=settings.stall_after_s, retry_s=settings.partition_retry_s,
            confirm_s=self._observe_every_s, reset_to_earliest=settings.auto_offset_reset == "earliest",
        )
        self._unattributed = 0
        self._probe: FetchProbe | None = None
        # Topic IDs seen so far (a new one means the topic was re-created).
        self._topic_ids: dict[str, str] = {}
        self.fatal_error: BaseException | None = None
        #: When the loop last came round (monotonic; None before it starts): a poll that never
        #: returns (a client wedged in a rebalance) shows as a growing `blocked_s`.
        self._turned_at: float | None = None

    # -- called from other threads -------------------------------------------------------------

    def begin_drain(self, timeout_s: float) -> None:
        """Thread-safe: stop fetching, finish in-flight work within `timeout_s`, commit, leave."""
        self._drain_deadline = time.monotonic() + timeout_s
        self._stop_fetching.set()

    def blocked_s(self, now: float) -> float:
        """Seconds since the consumer loop last came round (0 before it started or after it ended)."""
        turned = self._turned_at
        return 0.0 if turned is None or self._closed.is_set() else max(0.0, now - turned)

    def wait_closed(self, timeout_s: float) -> bool:
        return self._closed.wait(timeout_s)

    @property
    def assigned_partitions(self) -> int:
        with self._lock:
            return len(self._parts.assigned())

    def partition_report(self) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
        """Thread-safe: (partitions paused on a fetch fault -> why, stalled partitions -> lag and age)."""
        now = time.monotonic()
        with self._lock:
            faults = {f"{t}-{p}": fault.describe() for (t, p), fault in self._parts.faults.items()}
            stalled = {f"{t}-{p}": {"lag": lag, "no_progress_s": round(now - since, 1)}
                       for (t, p), (lag, since) in self._parts.stalled().items()}
        return faults, stalled

    @property
    def inflight(self) -> int:
        return self._parts.inflight_count()

    # -- the thread ------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._consumer = self._connect()
            if self._consumer is None:
                return
            self._consumer.subscribe(self._topics, listener=_Listener(self))
            while True:
                self._turned_at = time.monotonic()
                self._apply_completions()
                draining = self._stop_fetching.is_set()
                if draining and (self._parts.inflight_count() == 0 or time.monotonic() > self._drain_deadline):
                    break
                self._commit(force=draining)
                self._apply_backpressure(draining)
                self._poll(draining)
                if not draining:
                    self._observe_partitions()
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
            "isolation_level": self._settings.isolation_level,
            "metadata_max_age_ms": self._settings.metadata_max_age_ms,
            "max_partition_fetch_bytes": self._settings.max_partition_fetch_bytes,
            **self._overrides,
        }
        self._probe = FetchProbe(config)
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
        completions = self._feedback.take_completions()
        with self._lock:
            for sources in completions:
                for source in sources:
                    self._parts.complete((source.topic, source.partition), source.offset)
            self._metrics.inflight_events.set(self._parts.inflight_count())
            self._metrics.inflight_bytes.set(self._parts.inflight_bytes())

    def _commit(self, *, force: bool = False) -> bool:
        """Commit advanced positions; False if a commit was needed and failed."""
        now = time.monotonic()
        if not force and now - self._last_commit < self._settings.commit_interval_s:
            return True
        self._last_commit = now
        with self._lock:
            positions = self._parts.committable()
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
            self._parts.mark_committed(positions)
        self._metrics.commits.labels(outcome="ok").inc()
        return True

    def _apply_backpressure(self, draining: bool) -> None:
        """Pause every partition that has a reason (`Partitions.pause_reasons`), resume the rest.

        Backpressure has hysteresis: it starts at the in-flight limits and ends at half of them,
        so the fetch does not flap around the threshold.
        """
        with self._lock:
            events, size = self._parts.inflight_count(), self._parts.inflight_bytes()
            if self._backpressured:
                if events <= self._max_events // 2 and size <= self._max_bytes // 2:
                    self._backpressured = False
            elif events >= self._max_events or size >= self._max_bytes:
                self._backpressured = True
                log.info("backpressure: pausing fetch", inflight_events=events, inflight_bytes=size)
            stopped, held = self._feedback.stopped_topics, self._feedback.held_topics
            reasons = {key: self._parts.pause_reasons(key, draining=draining, backpressure=self._backpressured,
                                                      stopped_topics=stopped, held_topics=held)
                       for key in self._parts.assigned()}
        if not reasons:
            return
        assignment = [TopicPartition(*key) for key in reasons]
        want_paused = {TopicPartition(*key) for key, why in reasons.items() if why}
        currently = set(self._consumer.paused())
        if want_paused - currently:
            self._consumer.pause(*(want_paused - currently))
        if (currently & set(assignment)) - want_paused:
            self._consumer.resume(*((currently & set(assignment)) - want_paused))
        self._metrics.paused_partitions.set(len(want_paused))

    def _poll(self, draining: bool) -> None:
        release_parked(self._consumer)  # see kafka_internals.release_parked
        try:
            polled = self._consumer.poll(timeout_ms=50 if draining else 100)
        except Exception as exc:  # noqa: BLE001 - attributed to one partition, or re-raised
            self._on_poll_error(exc)
            return
        self._unattributed = 0
        with self._lock:
            seeks = self._parts.take_seeks()
            assigned = self._parts.assigned()
        for (topic, partition), offset in seeks.items():
            log.info("rewinding a partition kept across the rebalance to its first unfinished record",
                     topic=topic, partition=partition, offset=offset)
            self._consumer.seek(TopicPartition(topic, partition), offset)
        if self._assignment_changed:  # before this poll's records: they are paced at the new share
            self._publish_assignment(assigned)
        if not polled:
            return
        raws: list[RawRecord] = []
        with self._lock:
            for tp, records in polled.items():
                key = (tp.topic, tp.partition)
                if key not in assigned or key in seeks:
                    continue  # not ours any more, or fetched past the rewind: fetched again from there
                last = self._parts.last_seen(key)
                if records and last is not None and records[0].offset <= last:
                    # Not a seek of ours (those were skipped above): the client reset the position,
                    # e.g. after OFFSET_OUT_OF_RANGE on a truncated or re-created log.
                    log.warning("partition position moved back; records from there are consumed again",
                                topic=tp.topic, partition=tp.partition, offset=records[0].offset, last_seen=last)
                    self._metrics.offset_resets.labels(topic=tp.topic).inc()
                for r in records:
                    raw = RawRecord(
                        source=SourceRef(tp.topic, tp.partition, r.offset),
                        key=r.key,
                        value=r.value,
                        headers=tuple(r.headers or ()),
                        timestamp_ms=r.timestamp,
                    )
                    self._parts.add(key, r.offset, raw.size)
                    raws.append(raw)
                self._metrics.events_consumed.labels(topic=tp.topic).inc(len(records))
        if raws:
            self._sink.submit(raws)

    def _publish_assignment(self, assigned: set[TP]) -> None:
        """Tell the quota shares what this rebalance left us (`quota_share`), with the partition
        counts the group join fetched (a topic not in the metadata counts as unknown)."""
        self._assignment_changed = False
        if self._assignments is None:
            return
        counts = {topic: count for topic in self._topics
                  if (count := known_partition_count(self._consumer, topic)) is not None}
        self._assignments.assigned(Assignment(frozenset(assigned), counts))

    # -- per-partition failures (step 4) ------------------------------------------------------------

    def _on_poll_error(self, exc: Exception) -> None:
        """Pause the partition a poll failure belongs to; failures of the whole client stay fatal."""
        if is_client_error(exc):
            raise exc
        with self._lock:
            assigned = sorted(self._parts.assigned())
        culprits = named_partitions(exc, assigned)
        if not culprits:
            found = self._attribute(exc, assigned)
            culprits = [found] if found is not None else []
        if not culprits:
            self._unattributed += 1
            log.warning("poll failed and no single partition reproduces it; retrying",
                        error_class=type(exc).__name__, error=str(exc)[:500], attempt=self._unattributed)
            if self._unattributed >= 5:
                raise exc
            time.sleep(min(2.0 ** self._unattributed / 4, 5.0))
            return
        now = time.monotonic()
        for key in culprits:
            self._fault(key, exc, now)

    def _attribute(self, exc: Exception, assigned: list[TP]) -> TP | None:
        """Find the partition by probing candidates in isolation, the fetcher's hint first."""
        assert self._probe is not None
        hint = fetcher_hint(self._consumer)
        paused = {(tp.topic, tp.partition) for tp in self._consumer.paused()}
        order = ([hint] if hint in assigned else []) + [k for k in assigned if k != hint and k not in paused]
        candidates = []
        for key in order:
            offset = self._fetch_position(key)
            high = self._consumer.highwater(TopicPartition(*key))
            if offset is not None and (key == hint or high is None or offset < high):
                candidates.append((key, offset))
        # Stay well inside max_poll_interval: the group evicts a member that stops polling.
        budget = min(30.0, self._settings.max_poll_interval_ms / 1000 / 3)
        found = self._probe.find(candidates, type(exc), budget)
        return found[0] if found is not None else None

    def _fault(self, key: TP, exc: BaseException, now: float) -> None:
        topic, partition = key
        offset = self._fetch_position(key)
        with self._lock:
            new = self._parts.fault(key, error=type(exc).__name__, message=str(exc)[:500], fix=fix_for(exc),
                                    offset=offset, now=now)
        self._consumer.pause(TopicPartition(topic, partition))
        self._metrics.partition_fetch_errors.labels(topic=topic, exception=type(exc).__name__).inc()
        self._metrics.partition_fetch_error.labels(topic=topic, partition=str(partition)).set(1)
        self._metrics.partition_stalled.labels(topic=topic, partition=str(partition)).set(1)
        if new:
            log.error("partition paused: its records cannot be fetched; the other partitions keep flowing",
                      topic=topic, partition=partition, offset=offset, error_class=type(exc).__name__,
                      error=str(exc)[:500], fix=fix_for(exc), retry_in_s=self._settings.partition_retry_s)

    def _retry_faulted(self, now: float) -> None:
        """Probe due partitions in isolation; resume those that fetch again."""
        assert self._probe is not None
        for key in self._parts.due_retries(now):
            if key not in self._parts.assigned():
                continue
            offset = self._fetch_position(key)
            error = self._probe.check(key, offset) if offset is not None else None
            if error is not None:
                with self._lock:
                    self._parts.fault(key, error=type(error).__name__, message=str(error)[:500],
                                      fix=fix_for(error), offset=offset, now=now)
                log.info("partition still cannot be fetched; staying paused", topic=key[0], partition=key[1],
                         offset=offset, error_class=type(error).__name__)
                continue
            tp = TopicPartition(*key)
            if not discard_buffered(self._consumer, key):
                log.warning("cannot clear the client's buffered copy of the failed fetch (kafka-python internals "
                            "changed); restart the worker to resume this partition", topic=key[0], partition=key[1])
                continue
            if offset is not None:
                self._consumer.seek(tp, offset)
            with self._lock:
                self._parts.recovered(key)
            self._metrics.partition_fetch_error.labels(topic=key[0], partition=str(key[1])).set(0)
            log.info("partition fetches again; resuming", topic=key[0], partition=key[1], offset=offset)

    def _fetch_position(self, key: TP) -> int | None:
        try:
            position = self._consumer.position(TopicPartition(*key), timeout_ms=0)
        except (KafkaError, AssertionError, ValueError):  # revoked meanwhile, or not yet known
            return None
        return int(position) if position is not None else None

    # -- observation (step 5) ------------------------------------------------------------------------

    def _observe_partitions(self) -> None:
        """Lag, stalls, positions beyond the end, commits past markers; faulted-partition retries."""
        now = time.monotonic()
        if now - self._last_observe < self._observe_every_s:
            return
        self._last_observe = now
        self._retry_faulted(now)
        self._check_topic_ids()
        reset_earliest = self._settings.auto_offset_reset == "earliest"
        with self._lock:
            assigned = sorted(self._parts.assigned())
        for key in assigned:
            topic, partition = key
            fetch_position = self._fetch_position(key)
            high = self._consumer.highwater(TopicPartition(topic, partition))
            with self._lock:
                inflight = self._parts.inflight_count(key)
                recreated = self._parts.recreated(key)
            if recreated:
                if not inflight:  # the old log's records are finished: start the new log over
                    self._reset(key, "the topic was re-created")
                continue
            with self._lock:
                if not inflight and fetch_position is not None and not self._parts.seek_pending(key) \
                        and (high is None or fetch_position <= high):
                    self._parts.advance(key, fetch_position)
                obs = Observation(self._parts.position(key), fetch_position, high, inflight)
                changes = self._parts.observe(key, obs, now)
            lag = lag_of(obs, reset_to_earliest=reset_earliest)
            if lag is not None:
                self._metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)
            self._report_changes(key, obs, lag, changes)

    def _report_changes(self, key: TP, obs: Observation, lag: int | None, changes: list[Change]) -> None:
        topic, partition = key
        for change in changes:
            if change is Change.STALLED and topic in self._feedback.held_topics:
                log.info("partition held: its dataset group is paused while a data deletion job runs", topic=topic,
                         partition=partition, lag=lag)  # intended, not a stall (clickstream_privacy_ingestion_paused)
            elif change is Change.STALLED:
                self._metrics.partition_stalled.labels(topic=topic, partition=str(partition)).set(1)
                if key not in self._parts.faults:
                    log.warning("partition stalled: it has lag and made no progress", topic=topic,
                                partition=partition, lag=lag, position=obs.position,
                                stall_after_s=self._settings.stall_after_s,
                                paused=TopicPartition(topic, partition) in self._consumer.paused())
            elif change is Change.UNSTALLED:
                self._metrics.partition_stalled.labels(topic=topic, partition=str(partition)).set(0)
                log.info("partition progressing again", topic=topic, partition=partition, lag=lag)
            elif change is Change.BEYOND_END:
                self._reset_beyond_end(key, obs)

    def _check_topic_ids(self) -> None:
        """A topic whose ID changed was deleted and re-created under the same name.

        Its offsets restarted at 0 while this consumer's positions still point into the old
        log: records below the old position would be skipped silently (and, past the new end,
        nothing would ever be fetched). Its partitions are held until their in-flight records
        finish, then restarted with `auto_offset_reset` (see `_observe_partitions`).
        """
        for topic in self._topics:
            current = topic_id(self._consumer, topic)
            if current is None:
                continue
            previous = self._topic_ids.setdefault(topic, current)
            if previous == current:
                continue
            self._topic_ids[topic] = current
            with self._lock:
                held = self._parts.mark_recreated(topic)
            log.warning("topic re-created (its topic ID changed): its partitions restart from "
                        "kafka.auto_offset_reset once their in-flight records finish", topic=topic,
                        old_topic_id=previous, new_topic_id=current, partitions=[p for _t, p in held],
                        auto_offset_reset=self._settings.auto_offset_reset)

    def _reset_beyond_end(self, key: TP, obs: Observation) -> None:
        """The position lies past the log end (truncated, or re-created where no topic ID tells)."""
        log.warning("partition position is beyond the end of its log (topic re-created or truncated?); "
                    "resetting it with kafka.auto_offset_reset", topic=key[0], partition=key[1],
                    position=obs.fetch_position, log_end=obs.highwater,
                    auto_offset_reset=self._settings.auto_offset_reset)
        self._reset(key, "its position was beyond the end of its log")

    def _reset(self, key: TP, why: str) -> None:
        """Restart a partition from `auto_offset_reset`; its committed mark may go backwards."""
        topic, partition = key
        tp = TopicPartition(topic, partition)
        policy = self._settings.auto_offset_reset
        log.info("partition reset", topic=topic, partition=partition, why=why, auto_offset_reset=policy)
        if policy == "earliest":
            self._consumer.seek_to_beginning(tp)
        else:
            self._consumer.seek_to_end(tp)
        with self._lock:
            self._parts.reset(key)
            self._parts.finish_recreated(key)
        self._metrics.offset_resets.labels(topic=topic).inc()

    def _finish(self) -> None:
        self._apply_completions()
        # A commit racing a rebalance fails; polling (everything paused) lets the member rejoin,
        # after which the positions of partitions we still own can be committed.
        for _attempt in range(5):
            if self._commit(force=True):
                break
            self._consumer.poll(timeout_ms=200)
            self._apply_completions()
        left = self._parts.inflight_count()
        if left:
            log.warning("drain deadline reached; unfinished records stay uncommitted and will be redelivered",
                        inflight_events=left)
        else:
            log.info("drained: all in-flight records finished and committed")

    # -- rebalance callbacks (kafka-python I/O thread) -------------------------------------------

    def _on_revoked(self, revoked: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in revoked]
        with self._lock:
            positions = self._parts.revoke(keys)
            assigned = len(self._parts.assigned())
        for topic, partition in keys:
            for gauge in (self._metrics.consumer_lag, self._metrics.partition_stalled,
                          self._metrics.partition_fetch_error):
                with contextlib.suppress(KeyError):  # nothing reported yet for this partition
                    gauge.remove(topic, str(partition))
        offsets = {TopicPartition(t, p): OffsetAndMetadata(pos, "", -1) for (t, p), pos in positions.items()}
        if offsets and self._consumer is not None:
            try:
                self._consumer.commit_async(offsets)
            except Exception as exc:  # noqa: BLE001 - best effort; redelivery is deduplicated downstream
                log.warning("commit on revoke failed", error=str(exc))
        self._metrics.rebalances.inc()
        self._metrics.partitions_assigned.set(assigned)
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
            self._parts.assign((tp.topic, tp.partition) for tp in assigned)
            count = len(self._parts.assigned())
        self._assignment_changed = True
        self._metrics.partitions_assigned.set(count)
        log.info("partitions assigned", partitions=sorted(f"{tp.topic}-{tp.partition}" for tp in assigned))
