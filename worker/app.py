"""Wiring of one worker process: settings -> consumer thread + asyncio pipeline + probes.

Start-up order: logging, metrics and probes first (so a slow broker is visible), then
schemas and decoders (a bad schema fails fast, before joining the group), then the
Personalize client, the DLQ producer and the consumer thread.

Shutdown (SIGTERM/SIGINT), in this order:
  1. the consumer thread stops fetching (partitions paused, still polling to stay in the group);
  2. the pipeline sends every open batch at once and waits for in-flight deliveries;
  3. the DLQ producer is flushed, so dead-letter acknowledgements arrive;
  4. the consumer thread commits every finished offset and leaves the group;
all within `delivery.drain_timeout_s`; what is unfinished then stays uncommitted and is
redelivered to the next owner (deterministic event IDs make that harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from typing import Any

import aiohttp
import botocore.session
import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from kafka import KafkaProducer
from kafka.errors import KafkaError

from worker.archive.sink import ArchiveSink
from worker.config import WorkerSettings, check_endpoint_security
from worker.decoding.wiring import Registries
from worker.ingest.consumer import ConsumerThread
from worker.ingest.deadletter import DeadLetterWriter
from worker.ingest.feedback import ConsumerFeedback, LoopSink
from worker.ingest.lean_client import LeanEventsClient
from worker.ingest.pipeline import Pipeline, TopicRoute
from worker.ingest.quota_feed import LoopAssignments
from worker.ingest.ratelimit import RateLimiterRegistry
from worker.ingest.sender import Sender, Target
from worker.ingest.window import CallWindow
from worker.kafka_admin import ensure_topics, partition_count
from worker.mapping import EventDecoder
from worker.observe.health import HealthServer, LoopHeartbeat
from worker.observe.logging import configure_logging
from worker.observe.metrics import Metrics
from worker.privacy.intake import PrivacyGate
from worker.privacy.planner import group_name
from worker.privacy.service import PrivacyState
from worker.records import DatasetType
from worker.schedule.service import Scheduler
from worker.schemas import load_schema
from worker.validation import ValidationLimits

log = structlog.get_logger(__name__)

#: Added to the longest legitimate rebalance before a blocked consumer poll counts as wedged.
CONSUMER_BLOCKED_MARGIN_S = 30.0
#: Exit code when the worker stops because its Kafka consumer is wedged (restart it).
EXIT_CONSUMER_WEDGED = 3

#: How long a starting worker waits for the privacy state topic to be read once.
PRIVACY_READ_WAIT_S = 30.0


def build_routes(settings: WorkerSettings) -> dict[str, TopicRoute]:
    """Schemas and decoders for every topic; raises SchemaError/ConfigError before any I/O."""
    limits = ValidationLimits(
        max_past_seconds=settings.validation.max_past_days * 86_400,
        max_future_seconds=settings.validation.max_future_seconds,
    )
    routes: dict[str, TopicRoute] = {}
    registries = Registries()  # topics naming the same schema registry share its client and cache
    for topic in settings.topics:
        schema = load_schema(topic.schema_path)
        target = Target(
            topic=topic.name,
            dataset_type=topic.dataset_type,
            scope=topic.rate_scope,
            tracking_id=topic.tracking_id,
            dataset_arn=topic.dataset_arn,
        )
        decoder = EventDecoder(
            topic.dataset_type, topic.effective_mapping, schema, limits,
            max_record_bytes=settings.validation.max_record_bytes,
            payload=registries.payload(topic, target),
        )
        routes[topic.name] = TopicRoute(target=target, decoder=decoder, dlq_topic=topic.dead_letter_topic,
                                        schema=schema)
    return routes


def resolved_endpoint(service: str, region: str | None, endpoint_url: str | None) -> str:
    """The endpoint botocore would use (AWS_ENDPOINT_URL_*, config files, the partition's default)."""
    client = botocore.session.get_session().create_client(service, region_name=region, endpoint_url=endpoint_url)
    return str(client.meta.endpoint_url)


def check_events_endpoint(settings: WorkerSettings) -> None:
    """ConfigError for a plain-http endpoint off this machine (`personalize.allow_insecure_http`)."""
    personalize = settings.personalize
    endpoint = resolved_endpoint("personalize-events", personalize.region, personalize.events_endpoint_url)
    check_endpoint_security(endpoint, allow_insecure_http=personalize.allow_insecure_http,
                            what="the Personalize Events endpoint")


def events_client(settings: WorkerSettings) -> Any:
    """The Personalize Events client: lean (default) or aiobotocore's; both are async contexts."""
    personalize = settings.personalize
    if personalize.client == "lean":
        return LeanEventsClient(
            region=personalize.region,
            endpoint_url=personalize.events_endpoint_url,
            max_connections=settings.delivery.max_concurrency,
            connect_timeout_s=personalize.connect_timeout_s,
            read_timeout_s=personalize.read_timeout_s,
        )
    return get_session().create_client(
        "personalize-events",
        region_name=personalize.region,
        endpoint_url=personalize.events_endpoint_url,
        config=AioConfig(
            connect_timeout=personalize.connect_timeout_s,
            read_timeout=personalize.read_timeout_s,
            max_pool_connections=settings.delivery.max_concurrency,
            parameter_validation=personalize.parameter_validation,
            retries={"total_max_attempts": 1, "mode": "standard"},  # the sender owns retries
        ),
    )


class Worker:
    """One worker process. `run()` returns the exit code."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        consumer_overrides: dict[str, Any] | None = None,
        early_stop: threading.Event | None = None,
        handle_signals: bool = True,
    ) -> None:
        self.settings = settings
        self._handle_signals = handle_signals
        self._early_stop = early_stop
        self.metrics = Metrics()
        self._consumer_overrides = consumer_overrides or {}
        self._stop = asyncio.Event()
        self._heartbeat = LoopHeartbeat()
        self._reachable: bool | None = None
        self._consumer: ConsumerThread | None = None
        self._pipeline: Pipeline | None = None
        self._privacy: PrivacyState | None = None
        self.health: HealthServer | None = None
        self.exit_code = 0

    # -- probes ----------------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready: partitions assigned, Personalize reachable, no configuration fault, no partition
        paused on a fetch error. Stalled partitions are listed but do not fail readiness: a slow
        or throttled Personalize stalls them too, and readiness must not flap with load."""
        assigned = self._consumer.assigned_partitions if self._consumer else 0
        faults = dict(self._pipeline.faults) if self._pipeline else {}
        partition_errors, stalled = self._consumer.partition_report() if self._consumer else ({}, {})
        ready = assigned > 0 and not faults and not partition_errors and self._reachable is not False
        details: dict[str, Any] = {}
        if self._privacy is not None:  # suppression needs the ledger: not ready before it was read once
            ready = ready and self._privacy.ready
            details["privacy_ledger_read"] = self._privacy.ready
            details["privacy_paused_groups"] = sorted(self._privacy.paused_groups())
        return ready, {
            **details,
            "partitions_assigned": assigned,
            "personalize_reachable": self._reachable,
            "configuration_faults": faults,
            "partition_errors": partition_errors,
            "stalled_partitions": stalled,
        }

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        age = self._heartbeat.age(now)
        blocked = self._consumer.blocked_s(now) if self._consumer is not None else 0.0
        consumer_ok = (self._consumer is None or self._consumer.fatal_error is None) and not self._wedged(blocked)
        return age < 30.0 and consumer_ok, {"loop_heartbeat_age_s": round(age, 3), "consumer_ok": consumer_ok,
                                            "consumer_blocked_s": round(blocked, 1)}

    def consumer_blocked_limit_s(self) -> float:
        """How long one consumer poll may block before the worker counts its Kafka client as wedged:
        longer than any rebalance may legitimately take (`max_poll_interval_ms`, the rebalance
        timeout, plus a session timeout), with a margin."""
        kafka = self.settings.kafka
        return (kafka.max_poll_interval_ms + kafka.session_timeout_ms) / 1000.0 + CONSUMER_BLOCKED_MARGIN_S

    def _wedged(self, blocked_s: float) -> bool:
        return blocked_s > self.consumer_blocked_limit_s()

    def request_stop(self) -> None:
        self._stop.set()

    # -- run -------------------------------------------------------------------------------------

    async def run(self) -> int:
        settings = self.settings
        routes = build_routes(settings)
        check_events_endpoint(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT) if self._handle_signals else ():
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
                loop.add_signal_handler(sig, self.request_stop)
        if self._early_stop is not None and self._early_stop.is_set():
            self.request_stop()  # stopped while starting: still go through the orderly shutdown
        self.health = HealthServer(
            settings.observability.http_host, settings.observability.http_port, self.metrics,
            readiness=self.readiness, liveness=self.liveness,
        )
        self.health.start()
        # Beat from the start: waiting for Kafka is alive, not hung (liveness must stay green).
        beat = loop.create_task(self._beat())
        log.info("worker starting", topics=[t.name for t in settings.topics],
                 bootstrap_servers=settings.kafka.bootstrap_servers, http_port=self.health.port,
                 isolation_level=settings.kafka.isolation_level, group_id=settings.kafka.group_id)
        producer = await self._connect_producer()
        if producer is None:  # stopped while waiting for Kafka
            beat.cancel()
            self.health.stop()
            return 0
        await loop.run_in_executor(None, self._ensure_dead_letter_topics)
        async with events_client(settings) as client:
            # Built in dependency order; the two threads talk only through `feedback`, `sink` and the
            # assignments channel (rebalances -> each dataset group's quota share, on the loop).
            feedback = ConsumerFeedback()
            dlq = DeadLetterWriter(producer)
            quotas = settings.quotas
            limiters = RateLimiterRegistry(
                quotas.default.rates(), groups={group: quota.rates() for group, quota in quotas.groups.items()},
                sharing=quotas.sharing, registry=self.metrics.registry,
            )
            window = CallWindow(settings.delivery.max_concurrency)
            sender = Sender(
                client, limiters, self.metrics, window=window,
                max_concurrency=settings.delivery.max_concurrency,
                delivery_timeout_s=settings.delivery.delivery_timeout_s,
                config_fault_retry_s=settings.delivery.config_fault_retry_s,
            )
            archive = self._archive(routes)
            privacy = await self._start_privacy()
            pipeline = Pipeline(
                routes, sender, dead_letters=dlq, metrics=self.metrics, feedback=feedback,
                linger_s=settings.delivery.linger_ms / 1000.0,
                max_batch_wait_s=settings.delivery.max_batch_wait_ms / 1000.0,
                limiters=limiters, window=window,
                archive=archive, privacy=PrivacyGate(privacy) if privacy is not None else None,
                origin_key=(key.get_secret_value().encode()
                            if (key := settings.dlq.replay_origin_key) is not None else None),
            )
            input_topics = [*routes, *([privacy.settings.deletion_topic] if privacy is not None else [])]
            consumer = ConsumerThread(
                settings.kafka, input_topics, sink=LoopSink(loop, pipeline.submit), feedback=feedback,
                metrics=self.metrics, max_inflight_events=settings.delivery.max_inflight_events,
                max_inflight_bytes=settings.delivery.max_inflight_bytes,
                consumer_overrides=self._consumer_overrides,
                assignments=LoopAssignments(loop, limiters, {
                    topic: (route.target.scope, route.target.api) for topic, route in routes.items()}),
            )
            self._consumer, self._pipeline = consumer, pipeline
            pipeline.start()
            consumer.start()
            endpoint = client.endpoint_url if isinstance(client, LeanEventsClient) else client.meta.endpoint_url
            probe = loop.create_task(self._probe_personalize(endpoint))
            if privacy is not None:
                self._hold_paused_groups(privacy, routes, feedback)
            scheduler = await self._start_scheduler(routes, privacy)
            try:
                await self._wait_for_stop(consumer)
            finally:
                if scheduler is not None:
                    await loop.run_in_executor(None, scheduler.stop)
                code = await self._shutdown(consumer, pipeline, dlq, producer)
                if archive is not None:
                    await archive.close()  # after the drain: every delivered interaction is archived
                if privacy is not None:
                    await loop.run_in_executor(None, privacy.stop)
                probe.cancel()
                beat.cancel()
                self.health.stop()
        return code

    def _archive(self, routes: dict[str, TopicRoute]) -> ArchiveSink | None:
        """The optional S3 archive of delivered interactions (the scheduler's bulk path)."""
        archive = self.settings.archive
        if archive is None:
            return None
        interactions = [r for r in routes.values() if r.target.dataset_type is DatasetType.INTERACTIONS]
        schema = interactions[0].schema if interactions else None
        return ArchiveSink(archive, schema=schema, registry=self.metrics.registry)

    async def _start_privacy(self) -> PrivacyState | None:
        """The privacy ledger, followed from the state topic (created if missing), read once before
        any record is consumed: a forgotten user's records must not slip through at start."""
        if self.settings.privacy is None:
            return None
        state = PrivacyState(self.settings.privacy, self.settings.kafka.client_config(),
                             registry=self.metrics.registry)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, state.prepare)
        except Exception as exc:  # noqa: BLE001 - no admin rights: the topic must exist (read fails loudly)
            log.warning("could not create the privacy state topic; it must exist", topic=state.settings.state_topic,
                        error=str(exc))
        self._privacy = state
        await loop.run_in_executor(None, lambda: state.start(wait_s=PRIVACY_READ_WAIT_S))
        while not state.ready and not self._stop.is_set():  # never consume before suppression can work
            log.warning("still waiting for the privacy state topic to be read; nothing is consumed meanwhile",
                        topic=state.settings.state_topic)
            await loop.run_in_executor(None, state.follower.ready.wait, PRIVACY_READ_WAIT_S)
        return state

    @staticmethod
    def _hold_paused_groups(privacy: PrivacyState, routes: dict[str, TopicRoute], feedback: ConsumerFeedback) -> None:
        """With `privacy.pause_ingestion_during_jobs`: stop fetching the topics of a dataset group
        from the moment its deletion job is recorded until it ends; Kafka lag absorbs the traffic,
        readiness stays healthy. Driven by the ledger's changes (the follower's thread)."""
        held: list[frozenset[str]] = [frozenset()]

        def apply(paused: frozenset[str]) -> None:
            groups = {group_name(arn) for arn in paused}
            topics = frozenset(t for t, r in routes.items() if r.target.scope in groups)
            if topics != held[0]:
                log.info("dataset groups paused for data deletion jobs" if topics else "deletion jobs done; resuming",
                         dataset_groups=sorted(groups), topics=sorted(topics))
                feedback.hold_topics(topics)
                held[0] = topics

        privacy.on_paused_groups(apply)

    async def _start_scheduler(self, routes: dict[str, TopicRoute],
                               privacy: PrivacyState | None = None) -> Scheduler | None:
        """The retraining scheduler, when enabled: it acts only while this replica holds the lease."""
        if not self.settings.scheduler.enabled:
            return None
        scheduler = Scheduler(
            self.settings.scheduler, self.settings.kafka, region=self.settings.personalize.region,
            registry=self.metrics.registry,
            default_input_topics=[t for t, r in routes.items() if r.target.dataset_type is DatasetType.INTERACTIONS],
            allow_insecure_http=self.settings.personalize.allow_insecure_http,
            privacy=privacy, archive=self.settings.archive,
        )
        await asyncio.get_running_loop().run_in_executor(None, scheduler.start)
        return scheduler

    async def _wait_for_stop(self, consumer: ConsumerThread) -> None:
        while not self._stop.is_set():
            if not consumer.is_alive() and consumer.fatal_error is not None:
                log.error("consumer thread died; shutting down", error=repr(consumer.fatal_error))
                return
            blocked = consumer.blocked_s(time.monotonic())
            if self._wedged(blocked):
                # Seen with the embedded Tansu broker: a member leaving mid-rebalance left the others'
                # JoinGroup unanswered and kafka-python's poll() blocked for good. A restart re-joins;
                # what is uncommitted is consumed again (event IDs are deterministic).
                log.error("the Kafka consumer is blocked inside poll() (a rebalance that never completes); "
                          "exiting so that the orchestrator restarts the worker", blocked_s=round(blocked, 1),
                          limit_s=self.consumer_blocked_limit_s(), group_id=self.settings.kafka.group_id)
                self.exit_code = EXIT_CONSUMER_WEDGED
                return
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=1.0)
            except TimeoutError:
                continue

    async def _shutdown(
        self, consumer: ConsumerThread, pipeline: Pipeline, dlq: DeadLetterWriter, producer: KafkaProducer
    ) -> int:
        timeout = self.settings.delivery.drain_timeout_s
        started = time.monotonic()
        log.info("shutting down: draining in-flight work", timeout_s=timeout, inflight=consumer.inflight)
        consumer.begin_drain(timeout)
        finished = await pipeline.drain(timeout)
        loop = asyncio.get_running_loop()
        remaining = max(0.5, timeout - (time.monotonic() - started))
        await loop.run_in_executor(None, dlq.flush, remaining)
        await loop.run_in_executor(None, consumer.wait_closed, remaining + 5.0)
        dlq.close()
        await pipeline.close()
        await loop.run_in_executor(None, producer.close, 5.0)
        log.info("worker stopped", drained=finished, seconds=round(time.monotonic() - started, 3))
        if self.exit_code:
            return self.exit_code
        return 1 if consumer.fatal_error is not None else 0

    async def _connect_producer(self) -> KafkaProducer | None:
        """The DLQ producer; while Kafka is unreachable, say so clearly and keep retrying."""
        loop = asyncio.get_running_loop()
        kafka = self.settings.kafka
        delay = 1.0
        while not self._stop.is_set():
            try:
                return await loop.run_in_executor(None, lambda: KafkaProducer(
                    **kafka.client_config(), acks="all", enable_idempotence=True, linger_ms=20,
                    bootstrap_timeout_ms=10_000,
                ))
            except KafkaError as exc:
                log.warning("kafka not reachable yet; retrying", bootstrap_servers=kafka.bootstrap_servers,
                            error=str(exc), retry_in_s=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
                delay = min(delay * 2, 30.0)
        return None

    def _ensure_dead_letter_topics(self) -> None:
        """Create missing DLQ topics with the source topic's partition count (best effort)."""
        config = self.settings.kafka.client_config()
        bootstrap = self.settings.kafka.bootstrap_servers
        wanted: dict[str, int] = {}
        pairs = [(topic.name, topic.dead_letter_topic) for topic in self.settings.topics]
        if (privacy := self.settings.privacy) is not None:
            pairs.append((privacy.deletion_topic, f"{privacy.deletion_topic}.dlq"))
        for name, dead_letters in pairs:
            try:
                wanted[dead_letters] = partition_count(bootstrap, name, client_config=config) or 1
            except Exception as exc:  # noqa: BLE001 - the producer reports a missing topic later
                log.warning("cannot inspect topic", topic=name, error=str(exc))
                wanted[dead_letters] = 1
        try:
            created = ensure_topics(bootstrap, wanted, client_config=config)
        except Exception as exc:  # noqa: BLE001 - no admin rights is a normal production setup
            log.warning("could not create dead-letter topics; they must exist", topics=sorted(wanted),
                        error=str(exc))
            return
        if created:
            log.info("created dead-letter topics", topics=created)

    async def _probe_personalize(self, endpoint_url: str) -> None:
        """Personalize is reachable when any HTTP answer comes back from its endpoint."""
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                try:
                    async with http.get(endpoint_url.rstrip("/") + "/ping") as response:
                        await response.read()
                    reachable = True
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    reachable = False
                    if self._reachable is not False:
                        log.warning("personalize endpoint unreachable", endpoint=endpoint_url, error=str(exc))
                self._reachable = reachable
                await asyncio.sleep(10.0 if reachable else 2.0)

    async def _beat(self) -> None:
        while True:
            self._heartbeat.beat(time.monotonic())
            await asyncio.sleep(1.0)


def run_worker(settings: WorkerSettings, **kwargs: Any) -> int:
    obs = settings.observability
    configure_logging(
        json=None if obs.log_format == "auto" else obs.log_format == "json",
        level=obs.log_level,
        redact_user_ids=obs.redact_user_ids,
        redaction_salt=obs.redaction_salt.get_secret_value(),
    )
    return asyncio.run(Worker(settings, **kwargs).run())
