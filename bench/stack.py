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

    def personalize(self, name: str) -> LocalPersonalize:
        """A fresh local Personalize (own data directory) with the bench tracker registered."""
        self._started += 1  # a new directory every time: a reused one would hold the last run's events
        data = self.workdir / f"lp-{name}-{self._started}"
        server = LocalPersonalize(data_dir=data / "data", trackers=[TRACKING_ID], log_path=data / "server.log")
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


def delivered_events(server: LocalPersonalize) -> list[tuple[str, float, float]]:
    """(eventId, sentAt, receivedAt) of every stored event, in arrival order."""
    out: list[tuple[str, float, float]] = []
    offset = 0
    while True:
        query = urllib.parse.urlencode({"trackingId": TRACKING_ID, "limit": EVENTS_PAGE, "offset": offset})
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
