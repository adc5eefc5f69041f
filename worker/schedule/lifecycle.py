"""Lifecycle events (CloudEvents 1.0, JSON) and the scheduler's Prometheus metrics.

Every decision the leader acts on and every outcome it observes (training started,
succeeded, failed, stopped; gate passed/refused with the metric values; campaign
updated/rolled back; conflicts; alerts) becomes one event: logged through structlog and
published as one JSON message on the lifecycle topic, in the CloudEvents structured
format (``specversion``, ``id``, ``source``, ``type``, ``time``, ``datacontenttype``,
``subject``, ``data``). The message key is the subject (the solution ARN), so one
solution's events stay in order on one partition.

Publishing never blocks a tick for long and never fails it: a broker outage loses
events from the topic (they are still in the logs), it does not stop reconciliation.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

log = structlog.get_logger(__name__)

#: ``type`` = this prefix + the event kind, e.g. ``com.clickstream.scheduler.training.started``.
TYPE_PREFIX = "com.clickstream.scheduler."
SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"

#: Kinds logged at warning level (a human should look).
WARNING_KINDS = frozenset(
    {
        "training.failed",
        "privacy.job.failed",
        "training.stopped",
        "training.stop_requested",
        "gate.refused",
        "campaign.update_failed",
        "campaign.rolled_back",
        "import.failed",
        "conflict.detected",
        "alert",
        "action.failed",
        "action.retry_later",
        "leader.lost",
    }
)


def rfc3339(epoch_s: float) -> str:
    """UTC RFC 3339 with milliseconds and a ``Z``: ``2026-11-22T21:40:00.123Z``."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cloud_event(
    kind: str,
    data: Mapping[str, Any],
    *,
    source: str,
    now: float,
    subject: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """One CloudEvent in the structured JSON format (pure apart from the default id)."""
    event: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": TYPE_PREFIX + kind,
        "time": rfc3339(now),
        "datacontenttype": CONTENT_TYPE,
    }
    if subject is not None:
        event["subject"] = subject
    event["data"] = dict(data)
    return event


class LifecyclePublisher:
    """Logs and publishes lifecycle events; keeps the last few for the CLI and tests.

    `producer` is a kafka-python ``KafkaProducer`` (thread-safe) or None for logs only.
    """

    def __init__(
        self,
        producer: Any | None,
        topic: str | None,
        source: str,
        *,
        clock: Callable[[], float] = time.time,
        keep: int = 500,
    ) -> None:
        self._producer = producer if topic else None
        self._topic = topic
        self.source = source
        self._clock = clock
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self.publish_failures = 0

    def emit(self, kind: str, data: Mapping[str, Any], *, subject: str | None = None) -> dict[str, Any]:
        """Log and publish one event; returns it."""
        event = cloud_event(kind, data, source=self.source, now=self._clock(), subject=subject)
        self.recent.append(event)
        level = log.warning if kind in WARNING_KINDS else log.info
        level("scheduler lifecycle event", event_type=event["type"], subject=subject, **_loggable(data))
        if self._producer is not None:
            try:
                self._producer.send(
                    self._topic,
                    key=subject.encode() if subject else None,
                    value=json.dumps(event, sort_keys=True, default=str).encode(),
                )
            except Exception as exc:  # noqa: BLE001 - events are best effort; reconciliation goes on
                self.publish_failures += 1
                log.warning("could not publish lifecycle event", event_type=event["type"], error=str(exc))
        return event

    def flush(self, timeout_s: float = 5.0) -> None:
        if self._producer is None:
            return
        try:
            self._producer.flush(timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 - see emit
            self.publish_failures += 1
            log.warning("lifecycle events not acknowledged in time", error=str(exc))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.recent if e["type"] == TYPE_PREFIX + kind]


def _loggable(data: Mapping[str, Any]) -> dict[str, Any]:
    """structlog reserves ``event``; rename clashing keys rather than lose them."""
    return {("data_" + k if k in {"event", "level", "timestamp", "logger"} else k): v for k, v in data.items()}


class SchedulerMetrics:
    """The scheduler's gauges and counters, on the registry passed in (the worker's).

    Label values are solution and campaign names from configuration: bounded.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.last_success = Gauge(
            "clickstream_scheduler_last_successful_training_timestamp_seconds",
            "Creation time of the newest ACTIVE solution version.",
            ["solution"],
            registry=r,
        )
        self.serving_age = Gauge(
            "clickstream_scheduler_serving_version_age_seconds",
            "Age of the version a campaign serves (now - its creation time).",
            ["campaign"],
            registry=r,
        )
        self.gate_refusals = Counter(
            "clickstream_scheduler_gate_refusals", "Versions the promotion gate refused.", ["solution"], registry=r
        )
        self.trainings_today = Gauge(
            "clickstream_scheduler_trainings_today",
            "Trainings started in the rolling 24 h window the daily cap counts.",
            ["solution"],
            registry=r,
        )
        self.decisions = Counter(
            "clickstream_scheduler_decisions", "Decisions acted on by the leader.", ["solution", "action"], registry=r
        )
        self.errors = Counter(
            "clickstream_scheduler_errors", "Failed Personalize calls by error code.", ["solution", "code"], registry=r
        )
        self.leader = Gauge("clickstream_scheduler_leader", "1 while this replica holds the lease.", registry=r)
        self.last_tick = Gauge(
            "clickstream_scheduler_last_tick_timestamp_seconds", "When the last reconciliation pass ended.", registry=r
        )
        self.observation_age = Gauge(
            "clickstream_scheduler_observation_age_seconds",
            "Age of the observation behind this replica's solution gauges at its last tick: about 0 on the "
            "leader, the age of the leader's published observation elsewhere; absent when there is none.",
            ["solution"],
            registry=r,
        )
        self.personalize_calls = Counter(
            "clickstream_scheduler_personalize_calls",
            "HTTP requests this replica's scheduler sent to the Personalize control plane (retries included).",
            ["operation"],
            registry=r,
        )

    def count_calls(self, client: Any) -> None:
        """Count every request a botocore `client` sends (its ``before-send`` event; a no-op for fakes)."""
        events = getattr(getattr(client, "meta", None), "events", None)
        if events is None:
            return
        counter = self.personalize_calls

        def count(event_name: str = "", **_: Any) -> None:
            counter.labels(operation=event_name.rsplit(".", 1)[-1]).inc()

        events.register("before-send.personalize", count, unique_id=f"clickstream-scheduler-calls-{id(self)}")
