"""The running scheduler: lease thread + tick loop thread, built from settings.

Used two ways:

* inside ``clickstream-worker run`` (``scheduler.enabled: true``): ``Scheduler(...).start()``
  after the worker's metrics exist, ``stop()`` during shutdown — it runs on its own
  threads, so the asyncio pipeline is never blocked by a control-plane call;
* alone, ``clickstream-worker schedule``: ``run_until(stop_event)``.

The loop ticks every ``tick_interval_s``; right after a tick that acted it ticks again
at once (a promotion often follows a gate decision), at most `BURST` times in a row.

Every replica ticks, but only the leader calls Personalize: it publishes what it observed
on the control topic, and the others follow that (reconciler.py). When the leader stops
cleanly it marks its observations released before leaving the lease group, so readers
know nobody refreshes them until the next leader's first tick.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import boto3
import structlog
from botocore.config import Config
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from worker.archive.purge import ArchivePurger
from worker.archive.sink import s3_client
from worker.config import KafkaSettings
from worker.config.archive import ArchiveSettings
from worker.config.scheduler import SchedulerSettings
from worker.kafka_admin import ensure_topics
from worker.privacy.jobs import DeletionJobs
from worker.privacy.service import PrivacyState
from worker.schedule.lease import LeaderLease, ensure_control_topic
from worker.schedule.lifecycle import LifecyclePublisher, SchedulerMetrics
from worker.schedule.memory_store import KafkaMemoryStore
from worker.schedule.observer import InteractionCounter, VolumeCounter
from worker.schedule.reconciler import Reconciler, TickReport
from worker.schedule.snapshot_board import KafkaSnapshotBoard

log = structlog.get_logger(__name__)

#: Consecutive immediate re-ticks after acting.
BURST = 5


#: Deletion steps after which the leader ticks again at once (the next step may follow).
DELETION_ACTIONS = frozenset({"started", "completed", "failed", "purged", "forgotten"})


def deletion_jobs(privacy: PrivacyState | None, client: Any, publisher: LifecyclePublisher,
                  archive: ArchiveSettings | None) -> DeletionJobs | None:  # fmt: skip
    """The leader's data deletion work, when ``privacy.jobs`` is configured."""
    if privacy is None or privacy.settings.jobs is None:
        return None
    jobs = privacy.settings.jobs
    purger = None
    if archive is not None:
        purger = ArchivePurger(s3_client(archive), archive.bucket, archive.prefix, privacy.digest)
    return DeletionJobs(privacy.settings, personalize=client, s3=s3_client(jobs), write=privacy.writer.write,
                        publish=publisher.emit, archive=purger)  # fmt: skip


def personalize_client(settings: SchedulerSettings, region: str | None, *, allow_insecure_http: bool = False) -> Any:
    """boto3 ``personalize`` (control plane) with bounded timeouts and standard retries.

    Raises ConfigError for a plain-http endpoint off this machine (`personalize.allow_insecure_http`).
    """
    from worker.config import check_endpoint_security  # noqa: PLC0415 - worker.config imports this package

    client = boto3.client(
        "personalize",
        region_name=region,
        endpoint_url=settings.personalize_endpoint_url,
        config=Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3}),
    )
    check_endpoint_security(client.meta.endpoint_url, allow_insecure_http=allow_insecure_http,
                            what="the Personalize control-plane endpoint (scheduler)")
    return client


def replica_name() -> str:
    """How this process is named in published observations: host (the pod's name) and PID."""
    return f"{socket.gethostname()}/{os.getpid()}"


class Scheduler:
    """Owns the lease, the reconciler and the tick loop of one replica."""

    def __init__(
        self,
        settings: SchedulerSettings,
        kafka: KafkaSettings,
        *,
        region: str | None = None,
        registry: CollectorRegistry | None = None,
        default_input_topics: Sequence[str] = (),
        client: Any = None,
        lease_overrides: Mapping[str, int] | None = None,
        allow_insecure_http: bool = False,
        volume: InteractionCounter | None = None,
        privacy: PrivacyState | None = None,
        archive: ArchiveSettings | None = None,
    ) -> None:
        self.settings = settings
        self.privacy = privacy
        self._kafka_config = kafka.client_config()
        timeout = settings.kafka_timeout_s
        self.metrics = SchedulerMetrics(registry)
        self._producer: Any = None
        if settings.lifecycle_topic:
            self._producer = KafkaProducer(**self._kafka_config, acks="all", enable_idempotence=True, linger_ms=10)
        self.publisher = LifecyclePublisher(self._producer, settings.lifecycle_topic, settings.event_source)
        self.store = KafkaMemoryStore(self._kafka_config, settings.control_topic, timeout_s=timeout)
        topics = settings.input_topics or list(default_input_topics)
        self.volume: InteractionCounter = (
            volume if volume is not None else VolumeCounter(self._kafka_config, timeout_s=timeout)
        )
        self.board = KafkaSnapshotBoard(self._kafka_config, settings.control_topic, timeout_s=timeout)
        if client is None:
            client = personalize_client(settings, region, allow_insecure_http=allow_insecure_http)
        self.metrics.count_calls(client)
        self.reconciler = Reconciler(
            client,
            settings.solutions,
            store=self.store,
            publisher=self.publisher,
            metrics=self.metrics,
            volume=self.volume,
            input_topics=topics,
            board=self.board,
            replica=replica_name(),
            tick_interval_s=settings.tick_interval_s,
            deletions=(functools.partial(privacy.deletion_view, archive=archive is not None)
                       if privacy is not None else None),
        )
        self.deletion_jobs = deletion_jobs(privacy, client, self.publisher, archive)
        lease = {**settings.lease.model_dump(), **(lease_overrides or {})}
        self.lease = LeaderLease(
            self._kafka_config,
            settings.control_topic,
            settings.group_id,
            on_change=self._on_lease_change,
            **lease,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self.last_reports: list[TickReport] = []
        self.error: BaseException | None = None

    @property
    def is_leader(self) -> bool:
        return self.lease.is_leader

    def _on_lease_change(self, leader: bool) -> None:  # IO thread: flags and gauges only
        self.metrics.leader.set(1 if leader else 0)

    def prepare(self) -> None:
        """Create the control (compacted, 1 partition) and lifecycle topics when missing."""
        if ensure_control_topic(self._kafka_config, self.settings.control_topic, self.settings.kafka_timeout_s):
            log.info("created scheduler control topic", topic=self.settings.control_topic)
        if self.settings.lifecycle_topic:
            try:
                ensure_topics(
                    ",".join(self._kafka_config["bootstrap_servers"]), {self.settings.lifecycle_topic: 1},
                    client_config=self._kafka_config, timeout_s=self.settings.kafka_timeout_s,
                )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - no admin rights: the topic must exist already
                log.warning("could not create the lifecycle topic", topic=self.settings.lifecycle_topic, error=str(exc))

    def start(self) -> Scheduler:
        """Prepare topics, join the lease group and start ticking (background threads)."""
        self.prepare()
        self.lease.start()
        self._thread = threading.Thread(target=self._run_loop, name="scheduler-loop", daemon=True)
        self._thread.start()
        log.info("scheduler started", solutions=[s.solution_arn for s in self.settings.solutions],
                 control_topic=self.settings.control_topic, group_id=self.settings.group_id)  # fmt: skip
        return self

    def run_until(self, stop: threading.Event) -> int:
        """Foreground mode (``clickstream-worker schedule``): run until `stop` is set."""
        self.start()
        while not stop.wait(0.5):
            if self._thread is not None and not self._thread.is_alive():
                break
        self.stop()
        return 0 if self.error is None else 1

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop ticking, leave the lease group (fast failover), close clients. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self.lease.is_leader and not (self._thread is not None and self._thread.is_alive()):
            with contextlib.suppress(Exception):  # best effort: readers also notice silence
                self.reconciler.release()
        self.lease.stop(timeout_s)
        self.volume.close()
        self.board.close()
        self.store.close()
        self.publisher.flush()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                self._producer.close(timeout=5)
            self._producer = None

    def _run_loop(self) -> None:
        interval = self.settings.tick_interval_s
        burst = 0
        while not self._stop.is_set():
            try:
                acted = self.tick_once()
            except Exception as exc:  # a tick failing must not kill the scheduler
                log.exception("scheduler tick failed", error=str(exc))
                acted = False
            burst = burst + 1 if acted else 0
            if acted and burst < BURST:
                continue
            burst = 0
            self._stop.wait(interval)

    def tick_once(self) -> bool:
        """One pass; True when the leader acted (so another pass may follow at once)."""
        lease = self.lease
        leader = lease.is_leader
        self.metrics.leader.set(1 if leader else 0)
        if leader and self.reconciler.loaded_generation != lease.generation:
            try:
                self.reconciler.load(lease.generation)
            except Exception as exc:  # noqa: BLE001 - cannot know the memory: observe only this tick
                log.warning("cannot load the scheduler memory; not acting this tick", error=str(exc))
                leader = False

        def may_act() -> bool:
            return leader and lease.is_leader and self.reconciler.loaded_generation == lease.generation

        started = time.monotonic()
        reports = self.reconciler.tick(may_act=may_act)
        acted = any(r.acted for r in reports)
        jobs, privacy = self.deletion_jobs, self.privacy
        # Read our own writes first (caught_up): never plan on a ledger older than our last step.
        if jobs is not None and privacy is not None and may_act() and privacy.caught_up():
            done = jobs.tick(privacy.ledger)
            acted = acted or any(d.outcome in DELETION_ACTIONS for d in done)
        self.ticks += 1
        self.last_reports = reports
        log.debug("scheduler tick done", leader=leader, seconds=round(time.monotonic() - started, 3))
        return acted
