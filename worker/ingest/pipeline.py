"""The asyncio side of a worker: decode, batch, dispatch, and report completions.

Runs entirely on the event loop thread. Records arrive from the consumer thread via
`submit` (scheduled with ``call_soon_threadsafe``); finished records go back through the
`complete` callback. Raw records are retained (keyed by source) until their outcome is known,
because a delivery failure must dead-letter the *original* bytes.

Decoded records go to the lane of their (dataset group, API) (`lanes`), which sends them
in batches at its share of the group's quota, choosing each batch when its token is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from worker.archive.sink import ArchiveSink
from worker.decoding.fanout import FanoutTracker
from worker.decoding.outcomes import AwaitSchema, Fanout
from worker.ingest.deadletter import DeadLetterWriter
from worker.ingest.feedback import ConsumerFeedback
from worker.ingest.grouping import Batch
from worker.ingest.lanes import Lane
from worker.ingest.origin import OriginCheck, check_origin
from worker.ingest.ratelimit import RateLimiterRegistry
from worker.ingest.send_queue import SendQueue
from worker.ingest.sender import Sender, Target
from worker.ingest.window import CallWindow
from worker.mapping import EventDecoder
from worker.observe.logging import RAW_EXCERPT_KEY, rejection_log_fields
from worker.observe.metrics import Metrics
from worker.privacy.intake import SUPPRESSED, PrivacyGate
from worker.records import DatasetType, Interaction, RawRecord, Rejection, SourceRef, Stage
from worker.schemas import DatasetSchema

log = structlog.get_logger(__name__)

BatchKey = tuple[str, str | None, str]  # (topic, userId or entity id group, sessionId or "")


@dataclass(frozen=True, slots=True)
class TopicRoute:
    """Everything the pipeline needs to handle one input topic."""

    target: Target
    decoder: EventDecoder
    dlq_topic: str
    schema: DatasetSchema | None = None


#: Records decoded per event-loop turn (about 1 ms of work); see `Pipeline.submit`.
DECODE_SLICE = 32

#: How often `drain` looks again while batches still wait for their tokens.
DRAIN_POLL_S = 0.01


class Pipeline:
    """Map -> validate -> group -> send, with dead letters for every rejection."""

    def __init__(
        self,
        routes: dict[str, TopicRoute],
        sender: Sender,
        dead_letters: DeadLetterWriter,
        metrics: Metrics,
        feedback: ConsumerFeedback,
        *,
        linger_s: float,
        max_batch_wait_s: float = 1.0,
        limiters: RateLimiterRegistry | None = None,
        window: CallWindow | None = None,
        archive: ArchiveSink | None = None,
        privacy: PrivacyGate | None = None,
        origin_key: bytes | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._routes = routes
        self._sender = sender
        self._dlq = dead_letters
        self._metrics = metrics
        self._feedback = feedback
        self._archive = archive
        self._origin_key = origin_key
        self._origin_warned: set[tuple[str, OriginCheck]] = set()
        self._clock = clock
        self._wall_clock = wall_clock
        if (limiters is None) != (window is None):
            raise ValueError("limiters and window go together: the lanes take a slot and a token for each batch")
        self._paced = limiters is not None
        self._lane_list, self._lanes = self._build_lanes(routes, limiters, window, linger_s,
                                                         max(linger_s, max_batch_wait_s))
        self._raw: dict[SourceRef, RawRecord] = {}
        self._pending: deque[RawRecord] = deque()
        self._decode_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._draining = False
        self._fanout = FanoutTracker()  # records that became several interactions (GA4 items)
        self._privacy = privacy
        self.faults: dict[str, str] = {}

    def _build_lanes(self, routes: dict[str, TopicRoute], limiters: RateLimiterRegistry | None,
                     window: CallWindow | None, linger_s: float,
                     max_wait_s: float) -> tuple[list[Lane], dict[str, Lane]]:
        """One lane per (dataset group, API), shared by the topics feeding it; topic -> its lane.

        Catalog upserts are last-write-wins, so their lanes are ordered: one call at a time per
        topic keeps Kafka order (the 10 requests/s quota makes the lost parallelism irrelevant).
        Events carry their own timestamps: order between their calls does not matter.
        """
        lanes: dict[tuple[str, str], Lane] = {}
        by_topic: dict[str, Lane] = {}
        for topic, route in routes.items():
            key = (route.target.scope, route.target.api)
            if key not in lanes:
                ordered = not route.target.dataset_type.is_event_stream
                queue: SendQueue[BatchKey, Any] = SendQueue(linger_s=linger_s, max_wait_s=max_wait_s, ordered=ordered)
                limiter = limiters.get(*key) if limiters is not None else None
                lanes[key] = Lane(key, queue, limiter, self._dispatch, window=window, clock=self._clock)
            by_topic[topic] = lanes[key]
        return list(lanes.values()), by_topic

    def start(self) -> None:
        """Nothing runs before records arrive: each lane arms its own timer on first use. Kept so
        the lifecycle reads start -> submit -> drain -> close wherever a pipeline is used."""

    # -- intake ----------------------------------------------------------------------------------

    def submit(self, records: list[RawRecord]) -> None:
        """Queue a polled chunk (on the loop thread) and decode its first slice now.

        Decoding goes `DECODE_SLICE` records per loop turn, in Kafka order: a whole chunk
        (up to ``max_poll_records``) decoded in one callback blocks the loop for tens of
        milliseconds, during which finished calls wait unanswered and the concurrency
        window sits idle (measured: 22 ms average PutEvents latency, mostly this).
        """
        self._pending.extend(records)
        if not self._decode_scheduled:
            self._decode_slice()

    def _decode_slice(self) -> None:
        self._decode_scheduled = False
        self._decode(DECODE_SLICE)
        if self._pending:
            self._decode_scheduled = True
            asyncio.get_running_loop().call_soon(self._decode_slice)

    def _decode(self, limit: int) -> None:
        pending = self._pending
        now_wall = self._wall_clock()
        now = self._clock()
        for _ in range(min(limit, len(pending))):
            raw = pending.popleft()
            if self._privacy is not None and raw.source.topic == self._privacy.topic:
                self._deletion_request(self._privacy, raw)
                continue
            route = self._routes[raw.source.topic]
            try:
                self._route_one(route, raw, now_wall, now)
            except Exception as exc:  # noqa: BLE001 - one record must never strand the rest of the chunk
                self._internal_error(route, raw, exc)
        if self._draining:
            self._flush_all()

    def _route_one(self, route: TopicRoute, raw: RawRecord, now_wall: float, now: float) -> None:
        identity = self._identity(raw) if raw.headers else raw.source
        decoded = route.decoder.decode(raw.value, identity, now_wall, key=raw.key, timestamp_ms=raw.timestamp_ms,
                                       headers=raw.headers)
        if isinstance(decoded, Rejection):
            self._dead_letter_one(route, raw, decoded)
            return
        if isinstance(decoded, AwaitSchema):  # the topic's gate holds it until the registry answers; see requeue
            decoded.gate.hold(raw, decoded.ref, self)
            return
        if self._privacy is not None and self._suppress(self._privacy, route, raw, decoded):
            return
        self._raw[raw.source] = raw
        lane = self._lanes[raw.source.topic]
        if isinstance(decoded, Fanout):  # done when every part is delivered, or dead-lettered once as a whole
            parts = self._fanout.open(raw.source, len(decoded.interactions))
            for part, interaction in zip(parts, decoded.interactions, strict=True):
                key: BatchKey = (raw.source.topic, interaction.user_id, interaction.session_id)
                lane.add(key, interaction, part, now, size=raw.size // len(parts))
            return
        if isinstance(decoded, Interaction):
            lane.add((raw.source.topic, decoded.user_id, decoded.session_id), decoded, raw.source, now, size=raw.size)
        else:
            lane.add((raw.source.topic, None, ""), decoded, raw.source, now, coalesce_id=decoded.entity_id,
                     size=raw.size)

    def _suppress(self, gate: PrivacyGate, route: TopicRoute, raw: RawRecord, decoded: Any) -> bool:
        """A forgotten user's record is not sent: dead-lettered (stage suppressed) or dropped; done either way."""
        first = decoded.interactions[0] if isinstance(decoded, Fanout) and decoded.interactions else decoded
        if not gate.suppressed(first):
            return False
        gate.count(raw.source.topic)
        if gate.drop:
            self._feedback.complete([raw.source])
        else:
            self._write_dlq(route, raw, SUPPRESSED)
        return True

    def _deletion_request(self, gate: PrivacyGate, raw: RawRecord) -> None:
        """A record of the deletion topic: recorded in the state topic (done once acknowledged) or dead-lettered."""
        try:
            request = gate.parse(raw)
        except Exception as exc:  # noqa: BLE001 - a bug must not strand the request: dead-letter it
            request = Rejection(Stage.MAPPING, "internal_error", f"{type(exc).__name__} while parsing the request")
        if isinstance(request, Rejection):
            self._dlq.write(gate.dead_letter_topic, raw, request, self.on_dead_letter_acked)
            with contextlib.suppress(Exception):
                log.info("deletion request rejected", topic=raw.source.topic, partition=raw.source.partition,
                         offset=raw.source.offset, **rejection_log_fields(request))
            return
        source = raw.source
        gate.record(request, lambda: self._feedback.complete([source]))

    def requeue(self, records: list[RawRecord]) -> None:
        """Records a schema gate held go back to the front of the queue, in order, and are decoded again."""
        self._pending.extendleft(reversed(records))
        if not self._decode_scheduled:
            self._decode_slice()

    def _identity(self, raw: RawRecord) -> SourceRef:
        """A replayed record keeps the event ID of its first position, if `dlq replay` signed it."""
        check, origin = check_origin(raw.headers, self._origin_key, raw.key, raw.value)
        if check is OriginCheck.VERIFIED and origin is not None:
            return origin
        if check is not OriginCheck.NONE:
            self._metrics.origin_headers_ignored.labels(topic=raw.source.topic, reason=check.value).inc()
            if (raw.source.topic, check) not in self._origin_warned:
                self._origin_warned.add((raw.source.topic, check))
                log.warning("ignoring a replay origin header that is not authenticated; the record is identified "
                            "by its own position (dlq.replay_origin_key)", topic=raw.source.topic,
                            partition=raw.source.partition, offset=raw.source.offset, reason=check.value)
        return raw.source

    def _internal_error(self, route: TopicRoute, raw: RawRecord, exc: Exception) -> None:
        """A bug while routing a record: dead-letter it (replayable once fixed) instead of stalling."""
        self._raw.pop(raw.source, None)
        rejection = Rejection(Stage.MAPPING, "internal_error", f"{type(exc).__name__} while routing the record",
                              exception_class=f"{type(exc).__module__}.{type(exc).__name__}")
        with contextlib.suppress(Exception):  # logging must not prevent the dead letter
            log.error("internal error routing a record; dead-lettering it", topic=raw.source.topic,
                      partition=raw.source.partition, offset=raw.source.offset, error_class=type(exc).__name__,
                      **{RAW_EXCERPT_KEY: repr(exc)[:500]})
        self._write_dlq(route, raw, rejection)

    # -- dispatch --------------------------------------------------------------------------------

    def _dispatch(self, batch: Batch[BatchKey, Any]) -> asyncio.Task[None]:
        """A lane chose `batch` for the slot and token it holds: deliver it (retries take their own)."""
        route = self._routes[batch.key[0]]
        delivery = (self._sender.deliver(route.target, batch, self, prepaid=True) if self._paced
                    else self._sender.deliver(route.target, batch, self))
        task = asyncio.get_running_loop().create_task(delivery)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # A bug, not a delivery outcome: the records stay uncommitted and are redelivered.
            error = task.exception()
            log.error("delivery task crashed", error_class=type(error).__name__, **{RAW_EXCERPT_KEY: repr(error)})

    def _flush_all(self) -> None:
        """Every open batch is due now (shutdown); the lanes still send at their pace."""
        for lane in self._lane_list:
            lane.flush()

    # -- outcomes (DeliveryListener) -------------------------------------------------------------

    def delivered(self, target: Target, batch: Batch[BatchKey, Any]) -> None:
        sources = self._fanout.delivered(batch.sources())
        if self._archive is not None and target.dataset_type is DatasetType.INTERACTIONS:
            payloads = batch.payloads()
            if self._privacy is not None:  # requested while in flight: Personalize's copy goes with the job
                payloads = [p for p in payloads if not self._privacy.suppressed(p)]
            self._archive.add_nowait(payloads)
        for source in sources:
            self._raw.pop(source, None)
        self._metrics.events_delivered.labels(topic=target.topic).inc(len(sources))
        self._feedback.complete(sources)

    def dead_letter(self, target: Target, sources: list[SourceRef], rejection: Rejection) -> None:
        route = self._routes[target.topic]
        for source in self._fanout.failed(sources):
            raw = self._raw.pop(source, None)
            if raw is not None:
                self._write_dlq(route, raw, rejection)

    def config_fault(self, target: Target, message: str) -> None:
        self.faults[target.topic] = message
        self._metrics.config_fault.labels(topic=target.topic).set(1)
        self._feedback.stop_topic(target.topic)

    def config_recovered(self, target: Target) -> None:
        self.faults.pop(target.topic, None)
        self._metrics.config_fault.labels(topic=target.topic).set(0)
        log.info("configuration fault cleared; resuming topic", topic=target.topic)
        self._feedback.resume_topic(target.topic)

    # -- dead letters ----------------------------------------------------------------------------

    def _dead_letter_one(self, route: TopicRoute, raw: RawRecord, rejection: Rejection) -> None:
        self._write_dlq(route, raw, rejection)  # first: a logging failure must not cost the record
        with contextlib.suppress(Exception):  # the record is already on its way to the DLQ
            log.info("record rejected", topic=raw.source.topic, partition=raw.source.partition,
                     offset=raw.source.offset, **rejection_log_fields(rejection))

    def _write_dlq(self, route: TopicRoute, raw: RawRecord, rejection: Rejection) -> None:
        self._dlq.write(route.dlq_topic, raw, rejection, self.on_dead_letter_acked)

    def on_dead_letter_acked(self, source: SourceRef, rejection: Rejection) -> None:
        """Called (any thread) when the DLQ write is acknowledged: now the record is done."""
        self._metrics.events_dead_lettered.labels(topic=source.topic, stage=rejection.stage.value).inc()
        self._feedback.complete([source])

    # -- shutdown --------------------------------------------------------------------------------

    async def drain(self, timeout_s: float) -> bool:
        """Send every open batch now and wait for in-flight deliveries; True if all finished."""
        self._draining = True
        deadline = self._clock() + timeout_s
        while True:
            # Records already polled (even a chunk that arrives now) are part of what drains.
            self._decode(len(self._pending))
            self._flush_all()
            left = self._clock() - deadline
            if (not self._tasks and not self.pending_batches) or left >= 0:
                break
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=min(-left, DRAIN_POLL_S * 10),
                                   return_when=asyncio.FIRST_COMPLETED)
            else:  # batches wait in their lanes for tokens
                await asyncio.sleep(min(-left, DRAIN_POLL_S))
        return not self._tasks and not self._pending and not self.pending_batches

    async def close(self) -> None:
        for lane in self._lane_list:
            lane.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def pending_batches(self) -> int:
        """Entries waiting in the lanes, not yet sent (coalesced updates count once)."""
        return sum(len(lane) for lane in self._lane_list)

