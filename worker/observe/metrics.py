"""Prometheus metrics of one worker.

Each `Metrics` owns its own `CollectorRegistry` instead of using the process-global
default: tests create many workers in one process, and a benchmark may run several
side by side; with the global registry the second one would fail on duplicate names
and all would share counters.

Names follow Prometheus conventions (`_total` on counters, base units, seconds). The
label sets are small and bounded: topic and partition come from configuration and
assignment, `api` is one of five Personalize calls, and outcome/reason/stage values
are fixed vocabularies - never user or event identifiers.
"""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "PUT_OUTCOMES", "Metrics"]

#: The content type that goes with `Metrics.render()`.
CONTENT_TYPE: str = CONTENT_TYPE_LATEST

#: The vocabulary of `clickstream_put_requests_total{outcome}`.
PUT_OUTCOMES: tuple[str, ...] = ("success", "throttled", "retryable_error", "invalid", "config_fault")

#: Put* round trips: a healthy call takes tens of milliseconds, a throttled or retried
#: one up to the client's overall deadline (tens of seconds).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
)

#: Every Put* call (PutEvents, PutItems, PutUsers, PutActions, PutActionInteractions) carries at most 10 records.
EVENTS_PER_CALL_BUCKETS: tuple[float, ...] = tuple(float(n) for n in range(1, 11))

#: How long a batch waited to fill before it was sent (linger is normally sub-second).
BATCH_AGE_BUCKETS: tuple[float, ...] = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class Metrics:
    """Every metric the worker exports, registered on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry

        self.events_consumed = Counter(
            "clickstream_events_consumed", "Records polled from Kafka.", ["topic"], registry=r
        )
        self.events_delivered = Counter(
            "clickstream_events_delivered",
            "Records acknowledged by Personalize (HTTP 200).",
            ["topic"],
            registry=r,
        )
        self.events_dead_lettered = Counter(
            "clickstream_events_dead_lettered",
            "Records written to the dead-letter topic, by the stage that rejected them.",
            ["topic", "stage"],
            registry=r,
        )
        self.put_requests = Counter(
            "clickstream_put_requests",
            "Put* calls by API and outcome (success|throttled|retryable_error|invalid|config_fault).",
            ["api", "outcome"],
            registry=r,
        )
        self.put_latency = Histogram(
            "clickstream_put_latency_seconds",
            "Duration of one Put* HTTP round trip.",
            ["api"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.events_per_call = Histogram(
            "clickstream_events_per_call",
            "Records carried by one Put* call (1..10).",
            ["api"],
            buckets=EVENTS_PER_CALL_BUCKETS,
            registry=r,
        )
        self.inflight_events = Gauge(
            "clickstream_inflight_events", "Records handed to the sender and not yet done.", registry=r
        )
        self.inflight_bytes = Gauge(
            "clickstream_inflight_bytes",
            "Bytes of records handed to the sender and not yet done.",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "clickstream_consumer_lag",
            "Records between the committed offset and the partition end (approximate).",
            ["topic", "partition"],
            registry=r,
        )
        self.partition_stalled = Gauge(
            "clickstream_partition_stalled",
            "1 while an assigned partition has lag and makes no progress (kafka.stall_after_s), or is paused "
            "on a fetch error.",
            ["topic", "partition"],
            registry=r,
        )
        self.partition_fetch_error = Gauge(
            "clickstream_partition_fetch_error",
            "1 while a partition is paused because fetching or decoding its records failed (e.g. a missing "
            "compression codec, a corrupt batch); the other partitions keep flowing.",
            ["topic", "partition"],
            registry=r,
        )
        self.partition_fetch_errors = Counter(
            "clickstream_partition_fetch_errors",
            "Fetch or batch-decoding failures attributed to one partition, by exception class.",
            ["topic", "exception"],
            registry=r,
        )
        self.offset_resets = Counter(
            "clickstream_offset_resets",
            "Positions found beyond the partition's end (topic re-created or truncated) and reset with "
            "kafka.auto_offset_reset.",
            ["topic"],
            registry=r,
        )
        self.origin_headers_ignored = Counter(
            "clickstream_origin_headers_ignored",
            "Records whose replay origin header was not honoured (unauthenticated: no MAC or no "
            "dlq.replay_origin_key; invalid: a MAC that does not verify).",
            ["topic", "reason"],
            registry=r,
        )
        self.partitions_assigned = Gauge(
            "clickstream_partitions_assigned", "Partitions currently assigned to this worker.", registry=r
        )
        self.paused_partitions = Gauge(
            "clickstream_paused_partitions", "Assigned partitions paused for backpressure.", registry=r
        )
        self.rebalances = Counter("clickstream_rebalances", "Consumer-group rebalances seen.", registry=r)
        self.commits = Counter("clickstream_commits", "Offset commits by outcome.", ["outcome"], registry=r)
        self.config_fault = Gauge(
            "clickstream_config_fault",
            "1 while a topic is stopped on a configuration fault (e.g. unknown tracking ID).",
            ["topic"],
            registry=r,
        )
        self.delivery_retries = Counter(
            "clickstream_delivery_retries",
            "Put* calls retried, by API and reason.",
            ["api", "reason"],
            registry=r,
        )
        self.batch_linger = Histogram(
            "clickstream_batch_age_seconds",
            "Time from a batch's first record to its send.",
            ["api"],
            buckets=BATCH_AGE_BUCKETS,
            registry=r,
        )

        # `labels()` takes a lock and re-validates the label values on every call (~2 µs);
        # the hot path calls it five or six times per Put* call. These label sets are never
        # removed, so the child each combination returns can be memoised safely. (Not
        # `consumer_lag`: its children are removed when a partition is revoked.)
        for metric in (self.events_consumed, self.events_delivered, self.events_dead_lettered, self.put_requests,
                       self.origin_headers_ignored,
                       self.put_latency, self.events_per_call, self.delivery_retries, self.batch_linger,
                       self.commits):
            metric.labels = functools.lru_cache(maxsize=1024)(metric.labels)  # type: ignore[method-assign,assignment]

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)
