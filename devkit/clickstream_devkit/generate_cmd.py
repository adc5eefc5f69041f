"""`clickstream-worker generate`: produce the synthetic clickstream to Kafka.

The catalogue and user profiles go first (when their topics are given) so the worker
can send items and users before the interactions that mention them. Interactions are
keyed by the visitor's ``anonymousId``, which is stable per user and kept through a
mid-session sign-in: one key carries both the anonymous and the signed-in part of a
session, so a partition keeps a visitor's events in order.

The report, and the optional JSON manifest, say what was acknowledged by the broker
(``acks=all``): counts of good events by type, malformed records by kind, and every good
event's ID. An audit compares those IDs with what Personalize received to prove that
each good event arrived exactly once and no malformed one did.

Timestamps: with a `rate`, events are stamped from now at that rate, so they track the
wall clock while the producer keeps up. Without one (as fast as possible), they are
back-dated at `BACKFILL_EVENTS_PER_SECOND` so the stream ends now and never lies in the
future, which the worker would reject.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError

from clickstream_devkit.generator import ClickstreamGenerator, GeneratedRecord

#: Timestamp spacing of an unpaced (as fast as possible) run.
BACKFILL_EVENTS_PER_SECOND = 1000.0
PROGRESS_EVERY = 1000
_MAX_SLEEP_S = 0.05  # pacing sleeps in steps this small so Ctrl-C stays responsive
#: Pacing never sleeps less than this: at 10,000 events/s a sleep per event (every 100 µs) cost
#: the generator 0.16 of a core in wake-ups (0.60 -> 0.44 cores). Events falling due during a sleep are
#: then sent together, up to this late; each keeps its due time as its timestamp, so a latency
#: measured from it includes the delay (it can only make the worker look slower).
_MIN_SLEEP_S = 0.002
_FLUSH_TIMEOUT_S = 60.0


class GenerateError(RuntimeError):
    """Some records were not acknowledged by the broker; `report` says which were."""

    def __init__(self, message: str, report: GenerateReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class GenerateReport:
    """What a run produced; every count is of broker-acknowledged records."""

    topic: str
    seed: int
    requested: int
    start_time: float
    events_per_second: float
    produced: int = 0
    good: int = 0
    bad: int = 0
    failed: int = 0
    items: int = 0
    users: int = 0
    elapsed_s: float = 0.0
    good_by_type: dict[str, int] = field(default_factory=dict)
    bad_by_kind: dict[str, int] = field(default_factory=dict)
    good_event_ids: list[str] = field(default_factory=list)
    first_error: str | None = None

    def as_dict(self, *, include_ids: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "topic": self.topic,
            "seed": self.seed,
            "requested": self.requested,
            "start_time": self.start_time,
            "events_per_second": self.events_per_second,
            "produced": self.produced,
            "good": self.good,
            "bad": self.bad,
            "failed": self.failed,
            "items": self.items,
            "users": self.users,
            "elapsed_s": round(self.elapsed_s, 3),
            "good_by_type": dict(sorted(self.good_by_type.items())),
            "bad_by_kind": dict(sorted(self.bad_by_kind.items())),
            "first_error": self.first_error,
        }
        if include_ids:
            out["good_event_ids"] = self.good_event_ids
        return out


class _Acks:
    """Broker acknowledgements, recorded from the producer's IO thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked = bytearray()  # per interaction index: 1 once acknowledged
        self.catalog_ok: Counter[str] = Counter()  # "items" / "users" -> acknowledged
        self.failed = 0
        self.first_error: str | None = None

    def event_ok(self, index: int, _metadata: object) -> None:
        self.acked[index] = 1  # one writer per index: no lock needed

    def catalog_acked(self, kind: str, _metadata: object) -> None:
        with self.lock:
            self.catalog_ok[kind] += 1

    def error(self, exc: BaseException) -> None:
        with self.lock:
            self.failed += 1
            if self.first_error is None:
                self.first_error = f"{type(exc).__name__}: {exc}"


def _producer(bootstrap: str, client_config: Mapping[str, Any] | None) -> Any:
    config: dict[str, Any] = {"linger_ms": 5, "batch_size": 256 * 1024, **(client_config or {})}
    config.update(bootstrap_servers=bootstrap.split(","), acks="all")
    return KafkaProducer(**config)


def _send(
    producer: Any, topic: str, record: GeneratedRecord, acks: _Acks, on_ok: Callable[..., None], *args: Any
) -> None:
    """Send one record; a record the producer refuses by itself counts as failed, the run goes on.

    Anything else the producer raises (no broker, buffer full past `max_block_ms`) would
    fail every following record too, so it propagates.
    """
    try:
        future = producer.send(topic, key=record.key, value=record.value)
    except MessageSizeTooLargeError as exc:
        acks.error(exc)
    else:
        future.add_callback(on_ok, *args).add_errback(acks.error)


def _send_catalog(producer: Any, topic: str, kind: str, records: Iterable[GeneratedRecord], acks: _Acks) -> int:
    sent = 0
    for record in records:
        _send(producer, topic, record, acks, acks.catalog_acked, kind)
        sent += 1
    return sent


def run_generate(
    bootstrap: str,
    topic: str,
    *,
    rate: float | None,
    count: int,
    bad_fraction: float,
    seed: int,
    items_topic: str | None,
    users_topic: str | None,
    users: int,
    items: int,
    categories: int = 10,
    client_config: Mapping[str, Any] | None = None,
    manifest_path: str | None = None,
    progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    user_prefix: str = "u-",
) -> GenerateReport:
    """Produce the catalogue, the profiles, then `count` interactions; return what was acknowledged.

    `rate` is in records per second (None: as fast as possible). Raises `GenerateError`
    when some records were not acknowledged (its `report` says what was). Setting `stop`
    ends the run early; the report then counts what was sent and acknowledged.
    """
    if count < 0:
        raise ValueError(f"count must be at least 0, not {count}")
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be positive, not {rate}")
    now = time.time()
    eps = rate or BACKFILL_EVENTS_PER_SECOND
    start_time = now if rate else now - count / eps
    generator = ClickstreamGenerator(
        seed=seed,
        users=users,
        items=items,
        categories=categories,
        bad_fraction=bad_fraction,
        start_time=start_time,
        events_per_second=eps,
        user_prefix=user_prefix,
    )
    report = GenerateReport(topic, seed, count, start_time, eps)
    acks = _Acks()
    acks.acked = bytearray(count)
    kinds: list[str] = []
    ids: list[str | None] = []
    sent_catalog = 0
    began = time.monotonic()
    producer = _producer(bootstrap, client_config)
    try:
        if items_topic:
            sent_catalog += _send_catalog(producer, items_topic, "items", generator.catalog(), acks)
        if users_topic:
            sent_catalog += _send_catalog(producer, users_topic, "users", generator.user_profiles(), acks)
        if items_topic or users_topic:
            producer.flush(timeout=_FLUSH_TIMEOUT_S)
        paced_from = time.monotonic()
        for index, record in enumerate(generator.events(count)):
            if stop is not None and stop.is_set():
                break
            if rate:
                while (delay := paced_from + index / rate - time.monotonic()) > 0:
                    time.sleep(min(max(delay, _MIN_SLEEP_S), _MAX_SLEEP_S))
            _send(producer, topic, record, acks, acks.event_ok, index)
            kinds.append(record.kind)
            ids.append(record.event_id)
            if progress is not None and (index + 1) % PROGRESS_EVERY == 0:
                progress(index + 1)
        producer.flush(timeout=_FLUSH_TIMEOUT_S)
    finally:
        producer.close(timeout=10)
    report.elapsed_s = time.monotonic() - began
    if progress is not None and count % PROGRESS_EVERY:
        progress(count)
    _tally(report, acks, kinds, ids)
    if manifest_path:
        write_manifest(manifest_path, report)
    missing = len(kinds) - report.produced + sent_catalog - report.items - report.users
    if missing:
        raise GenerateError(f"{missing} records were not acknowledged (first error: {report.first_error})", report)
    return report


def _tally(report: GenerateReport, acks: _Acks, kinds: list[str], ids: list[str | None]) -> None:
    good_by_type: Counter[str] = Counter()
    bad_by_kind: Counter[str] = Counter()
    good_ids = report.good_event_ids
    for index, ok in enumerate(acks.acked):
        if not ok:
            continue
        event_id = ids[index]
        if event_id is None:
            bad_by_kind[kinds[index]] += 1
        else:
            good_by_type[kinds[index]] += 1
            good_ids.append(event_id)
    report.good, report.bad = len(good_ids), bad_by_kind.total()
    report.produced = report.good + report.bad
    report.good_by_type, report.bad_by_kind = dict(good_by_type), dict(bad_by_kind)
    report.items, report.users = acks.catalog_ok["items"], acks.catalog_ok["users"]
    report.failed, report.first_error = acks.failed, acks.first_error


def write_manifest(path: str, report: GenerateReport) -> None:
    """Write the report as JSON atomically, so an audit never reads half a manifest."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report.as_dict(), indent=1) + "\n", encoding="utf-8")
    tmp.replace(target)


# -- command line -----------------------------------------------------------------------


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `clickstream-worker generate` (the lead wires the subparser)."""
    parser.add_argument("--bootstrap", default="localhost:9092", help="Kafka bootstrap servers (host:port,...)")
    parser.add_argument("--topic", required=True, help="interactions topic (Segment track events)")
    parser.add_argument("--rate", type=float, default=None, help="events per second (default: as fast as possible)")
    parser.add_argument("--count", type=int, default=10_000, help="interaction records to produce")
    parser.add_argument("--bad-fraction", type=float, default=0.0, help="fraction of malformed records, 0..1")
    parser.add_argument("--seed", type=int, default=None, help="default: a fresh random seed, printed in the report")
    parser.add_argument("--items-topic", help="also produce the item catalogue here first")
    parser.add_argument("--users-topic", help="also produce user profiles (Segment identify) here first")
    parser.add_argument("--users", type=int, default=1000, help="number of users")
    parser.add_argument("--items", type=int, default=500, help="number of catalogue items")
    parser.add_argument("--categories", type=int, default=10, help="number of item categories")
    parser.add_argument("--manifest", help="write the report with every good event ID to this JSON file")


def main_generate(args: argparse.Namespace, client_config: Mapping[str, Any] | None = None) -> int:
    """Run from parsed arguments; print the report (without IDs) as JSON on stdout.

    Exit codes: 0 every record acknowledged, 1 Kafka failure or unacknowledged records,
    2 invalid arguments, 130 interrupted. `client_config` carries security settings
    (e.g. `KafkaSettings.client_config()`); `--bootstrap` overrides its servers.
    """
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    last = [0.0]

    def progress(sent: int) -> None:
        if time.monotonic() - last[0] >= 1.0 or sent == args.count:
            last[0] = time.monotonic()
            print(f"generate: sent {sent}/{args.count}", file=sys.stderr)

    try:
        report = run_generate(
            args.bootstrap,
            args.topic,
            rate=args.rate,
            count=args.count,
            bad_fraction=args.bad_fraction,
            seed=seed,
            items_topic=args.items_topic,
            users_topic=args.users_topic,
            users=args.users,
            items=args.items,
            categories=args.categories,
            client_config=client_config,
            manifest_path=args.manifest,
            progress=progress,
        )
    except ValueError as exc:
        print(f"clickstream-worker generate: {exc}", file=sys.stderr)
        return 2
    except GenerateError as exc:
        print(f"clickstream-worker generate: {exc}", file=sys.stderr)
        print(json.dumps(exc.report.as_dict(include_ids=False), sort_keys=True))
        return 1
    except KafkaError as exc:
        print(f"clickstream-worker generate: Kafka error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("clickstream-worker generate: interrupted", file=sys.stderr)
        return 130
    print(json.dumps(report.as_dict(include_ids=False), sort_keys=True))
    return 0
