"""The benchmark's local stack: one embedded broker, a fresh local Personalize per run, seeded data.

Every run gets its own local Personalize process (fresh data directory, fresh counters), so
its CPU, its request counts and its stored events belong to that run alone; the broker and
the pre-produced backlogs are shared, so every configuration drains exactly the same data.
Every process started here is stopped by PID.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clickstream_devkit import generator as generator_module
from clickstream_devkit.broker import EmbeddedBroker
from clickstream_devkit.generate_cmd import BACKFILL_EVENTS_PER_SECOND, run_generate
from clickstream_devkit.generator import ClickstreamGenerator, GeneratedRecord
from clickstream_devkit.personalize.process import LocalPersonalize
from kafka import KafkaProducer

from bench.avro_data import realistic_records
from bench.measure import ideal_fill
from worker.kafka_admin import ensure_topics

TRACKING_ID = "bench-0000-0000-0000-000000000001"
SEED = 20_260_601
USERS, ITEMS = 5_000, 2_000
PARTITIONS = 4
EVENTS_PAGE = 20_000
LONG_SESSION_STEPS = 25.0


@dataclass
class Dataset:
    """A topic holding a pre-produced, seeded backlog (or a live paced stream)."""

    topic: str
    count: int
    #: "realistic" (as generated), "dense" (each visitor's events contiguous), "long" (dense, long sessions)
    layout: str
    produce_s: float = 0.0
    good_ids: list[str] = field(default_factory=list)
    ideal_fill: float = 0.0  # events/call if each (user, session) group went out in full calls
    #: Several topics, each with its own tracker (= its own dataset group): the many-tenants runs.
    #: Empty: the one `topic`, with TRACKING_ID.
    tenants: tuple[tuple[str, str], ...] = ()

    def topic_trackers(self) -> list[tuple[str, str]]:
        """(topic, tracking ID) of every topic the worker consumes."""
        return list(self.tenants) or [(self.topic, TRACKING_ID)]


class Stack:
    """Broker + topics + local Personalize factory, all under `workdir`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.broker = EmbeddedBroker(log_file=str(workdir / "tansu.log"))
        self._servers: list[LocalPersonalize] = []
        self._topics = 0
        self._started = 0

    def __enter__(self) -> Stack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.broker.start(timeout_s=30.0)
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self._servers:
            server.stop()
        self.broker.stop()

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def new_topic(self, prefix: str, partitions: int = PARTITIONS) -> str:
        self._topics += 1
        name = f"{prefix}-{self._topics}-{int(time.time())}"
        ensure_topics(self.bootstrap, {name: partitions}, timeout_s=30.0)
        return name

    def personalize(self, name: str, trackers: Iterable[str] = (TRACKING_ID,)) -> LocalPersonalize:
        """A fresh local Personalize (own data directory) with the bench tracker(s) registered."""
        self._started += 1  # a new directory every time: a reused one would hold the last run's events
        data = self.workdir / f"lp-{name}-{self._started}"
        server = LocalPersonalize(data_dir=data / "data", trackers=list(trackers), log_path=data / "server.log")
        self._servers.append(server)
        return server.start(timeout_s=30.0)

    def stop_personalize(self, server: LocalPersonalize) -> None:
        server.stop()
        if server in self._servers:
            self._servers.remove(server)

    # -- data ------------------------------------------------------------------------------

    def backlog(self, count: int, layout: str = "realistic", seed: int = SEED) -> Dataset:
        """Produce `count` seeded events before any timing starts.

        ``realistic`` is `clickstream-worker generate` as shipped: concurrent sessions
        interleave, keyed by visitor. ``dense`` is the same events reordered so each visitor's
        events are contiguous (stable within the visitor), labelled as such wherever reported:
        it shows what batching reaches when sessions arrive unmixed. ``long`` is dense with
        sessions five times longer, labelled as synthetic: what events/s is at near-full batches.
        """
        topic = self.new_topic(f"bench-{layout}-{count}")
        began = time.monotonic()
        if layout == "realistic":
            report = run_generate(
                self.bootstrap, topic, rate=None, count=count, bad_fraction=0.0, seed=seed,
                items_topic=None, users_topic=None, users=USERS, items=ITEMS,
            )
            ids = report.good_event_ids
            records = dense_records(seed, count)  # same events (only their order differs): for the fill ceiling
        elif layout in ("dense", "long"):
            records = dense_records(seed, count, long_sessions=layout == "long")
            produce(self.bootstrap, topic, records)
            ids = [r.event_id for r in records if r.event_id is not None]
        else:
            raise ValueError(f"unknown layout {layout!r}")
        elapsed = time.monotonic() - began
        return Dataset(topic, count, layout, elapsed, ids, round(ideal_fill([_batch_key(r) for r in records]), 2))


    def backlog_skewed(self, count: int, hot_share: float, seed: int = SEED) -> Dataset:
        """The realistic stream with one partition carrying `hot_share` of it (by visitor, so sessions
        stay whole), the rest spread over the other partitions: "one partition carries half the traffic"."""
        records = realistic_records(seed, count, USERS, ITEMS)
        topic = self.new_topic(f"bench-skewed-{count}")
        began = time.monotonic()
        placed = [(_skewed_partition(r.key, hot_share), r.key, r.value) for r in records]
        produce_placed(self.bootstrap, topic, placed)
        ids = [r.event_id for r in records if r.event_id is not None]
        fill = round(ideal_fill([_batch_key(r) for r in records]), 2)
        return Dataset(topic, count, "skewed", time.monotonic() - began, ids, fill)

    def backlog_tenants(self, count: int, tenants: int, seed: int = SEED) -> tuple[Dataset, Dataset]:
        """The same realistic events twice: in `tenants` topics of one partition, each with its own tracker
        (its own dataset group), and in one topic of `tenants` partitions with one tracker. Visitors are
        split by key, so each tenant sees whole sessions and the data's batching ceiling is the same."""
        records = realistic_records(seed, count, USERS, ITEMS)
        ids = [r.event_id for r in records if r.event_id is not None]
        fill = round(ideal_fill([_batch_key(r) for r in records]), 2)
        began = time.monotonic()
        one = self.new_topic(f"bench-one-tenant-{count}", partitions=tenants)
        produce_placed(self.bootstrap, one, [(_bucket(r.key, tenants), r.key, r.value) for r in records])
        single = Dataset(one, count, "tenants-1", time.monotonic() - began, ids, fill)
        began = time.monotonic()
        names = [self.new_topic(f"bench-tenant{n}-{count}", partitions=1) for n in range(tenants)]
        by_tenant: dict[int, list[tuple[int, bytes, bytes]]] = {}
        for r in records:
            by_tenant.setdefault(_bucket(r.key, tenants), []).append((0, r.key, r.value))
        for n, placed in by_tenant.items():
            produce_placed(self.bootstrap, names[n], placed)
        trackers = tuple((name, f"bench-tenant-{n:04d}-0000-0000-000000000000") for n, name in enumerate(names))
        many = Dataset(names[0], count, f"tenants-{tenants}", time.monotonic() - began, ids, fill, tenants=trackers)
        return single, many

    def backlog_of(self, name: str, pairs: list[tuple[bytes, bytes]], good_ids: list[str], layout: str) -> Dataset:
        """A backlog of given (key, value) pairs (e.g. the same events in another encoding)."""
        topic = self.new_topic(f"bench-{name}-{len(pairs)}")
        began = time.monotonic()
        produce_pairs(self.bootstrap, topic, pairs)
        return Dataset(topic, len(pairs), layout, time.monotonic() - began, good_ids)


def dense_records(seed: int, count: int, *, long_sessions: bool = False) -> list[GeneratedRecord]:
    """The realistic stream (same seed, same timestamps), regrouped so each visitor's events are adjacent.

    With `long_sessions`, sessions average `LONG_SESSION_STEPS` browse steps instead of the
    generator's 5 (set on the generator module for the duration: it has no parameter for
    it), so most (user, session) runs hold 10 or more events: an upper bound for batch fill.
    """
    start = time.time() - count / BACKFILL_EVENTS_PER_SECOND
    saved = generator_module.MEAN_SESSION_STEPS
    if long_sessions:
        generator_module.MEAN_SESSION_STEPS = LONG_SESSION_STEPS
    try:
        generator = ClickstreamGenerator(
            seed=seed, users=USERS, items=ITEMS, bad_fraction=0.0, start_time=start,
            events_per_second=BACKFILL_EVENTS_PER_SECOND,
        )
        by_key: dict[bytes, list[GeneratedRecord]] = {}
        for record in generator.events(count):
            by_key.setdefault(record.key, []).append(record)
    finally:
        generator_module.MEAN_SESSION_STEPS = saved
    return [record for group in by_key.values() for record in group]


def _batch_key(record: GeneratedRecord) -> tuple[str | None, str]:
    doc = json.loads(record.value)
    return doc.get("userId"), doc["context"]["sessionId"]


def _bucket(key: bytes, buckets: int) -> int:
    """A stable bucket of a record key (Python's hash() is salted per process)."""
    return zlib.crc32(key) % buckets


def _skewed_partition(key: bytes, hot_share: float, partitions: int = PARTITIONS) -> int:
    """Partition 0 for `hot_share` of the visitors, the others spread evenly over the rest."""
    point = zlib.crc32(key) / 2**32
    if point < hot_share:
        return 0
    return 1 + int((point - hot_share) / (1 - hot_share) * (partitions - 1))


def produce_placed(bootstrap: str, topic: str, placed: Iterable[tuple[int, bytes, bytes]]) -> int:
    """Produce (partition, key, value) triples to the given partitions."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=256 * 1024, acks="all")
    sent = 0
    try:
        for partition, key, value in placed:
            producer.send(topic, key=key, value=value, partition=partition)
            sent += 1
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=10)
    return sent


def produce(bootstrap: str, topic: str, records: Iterable[GeneratedRecord]) -> int:
    return produce_pairs(bootstrap, topic, ((record.key, record.value) for record in records))


def produce_pairs(bootstrap: str, topic: str, pairs: Iterable[tuple[bytes, bytes]]) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=256 * 1024, acks="all")
    sent = 0
    try:
        for key, value in pairs:
            producer.send(topic, key=key, value=value)
            sent += 1
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=10)
    return sent


# -- the local Personalize's inspection API -----------------------------------------------


def lp_get(server: LocalPersonalize, path: str, timeout_s: float = 60.0) -> Any:
    with urllib.request.urlopen(server.endpoint_url + path, timeout=timeout_s) as response:  # loopback only
        return json.loads(response.read())


def accepted(server: LocalPersonalize) -> int:
    """Events in accepted PutEvents requests so far (duplicates included)."""
    return int(lp_get(server, "/_local/stats", timeout_s=10.0)["accepted_events"])


def distinct_accepted(server: LocalPersonalize) -> int:
    """Distinct event IDs accepted so far: redeliveries of one event (a rebalance, a replica leaving
    mid-flight) count once, so a run is not over before every event arrived at least once."""
    stats = lp_get(server, "/_local/stats", timeout_s=10.0)
    return int(stats["accepted_events"]) - int(stats["duplicate_events"]) + int(stats.get("same_content_events", 0))


def delivered_events(server: LocalPersonalize, tracking_id: str | None = TRACKING_ID) -> list[tuple[str, float, float]]:
    """(eventId, sentAt, receivedAt) of every stored event (of one tracker, or all), in arrival order."""
    out: list[tuple[str, float, float]] = []
    offset = 0
    while True:
        params: dict[str, str | int] = {"limit": EVENTS_PAGE, "offset": offset}
        if tracking_id is not None:
            params["trackingId"] = tracking_id
        query = urllib.parse.urlencode(params)
        page = lp_get(server, f"/_local/events?{query}")
        out.extend((e["eventId"], float(e["sentAt"]), float(e["receivedAt"])) for e in page)
        if len(page) < EVENTS_PAGE:
            return out
        offset += len(page)


def wait_accepted(server: LocalPersonalize, expected: int, timeout_s: float, alive: Any = None) -> tuple[bool, float]:
    """Poll until `expected` events were accepted; (reached, wall time when seen)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if accepted(server) >= expected:
            return True, time.time()
        if alive is not None and not alive():
            return False, time.time()
        time.sleep(0.1)
    return False, time.time()
