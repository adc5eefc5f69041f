"""Helpers for end-to-end tests: deterministic test events, a worker process, audits."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from clickstream_devkit.processes import free_port  # noqa: F401 - re-exported for the fault tests
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from tests.helpers import SENTINEL_USER, WORKER_LOGS

TANSU_CONSUMER = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "max_poll_interval_ms": 10000}
NOW = time.time()


@dataclass
class Produced:
    good_ids: list[str] = field(default_factory=list)
    bad_count: int = 0
    bad_values: list[bytes] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.good_ids) + self.bad_count


def _user(n: int) -> str:
    """User IDs carry the sentinel: no worker log may show it (see tests/conftest.py)."""
    return f"{SENTINEL_USER}-{n}"


def _bad_value(rng: random.Random, i: int) -> bytes:
    good = {"type": "track", "messageId": f"bad-{i}", "userId": _user(i), "anonymousId": f"anon-{_user(i)}",
            "event": "view", "timestamp": _iso(NOW), "properties": {"productId": "p1"}}
    kinds: list[Any] = [
        f"not json, user {_user(i)}".encode(),
        json.dumps(good).encode()[:60],  # truncated JSON
        json.dumps([good]).encode(),  # a JSON array
        json.dumps({**good, "userId": {"id": _user(i)}}).encode(),  # a wrong-typed ID
        json.dumps({**good, "event": 4.5}).encode(),  # a wrong-typed event name
        b"not json at all",
        b"\xff\xfe\x00garbage",
        b"",
        b"[1,2,3]",
        json.dumps({"event": "view", "timestamp": "2026-11-01T00:00:00Z", "messageId": f"bad-{i}"}).encode(),
        json.dumps({"userId": "u" * 300, "anonymousId": "a1", "event": "view", "messageId": f"bad-{i}",
                    "timestamp": _iso(NOW), "properties": {"productId": "p1"}}).encode(),
        json.dumps({"userId": "u1", "anonymousId": "a1", "event": "view", "messageId": f"bad-{i}",
                    "timestamp": "1970-01-01T00:00:01Z", "properties": {"productId": "p1"}}).encode(),
        json.dumps({"userId": "u1", "anonymousId": "a1", "event": "view", "messageId": f"bad-{i}",
                    "timestamp": _iso(NOW), "properties": {"productId": "p1", "device": "x" * 1200}}).encode(),
        json.dumps({"userId": "u1", "anonymousId": "a1", "event": "view", "messageId": f"bad-{i}",
                    "timestamp": _iso(NOW), "properties": {"productId": {"nested": True}}}).encode(),
        json.dumps({"userId": "u1", "anonymousId": "a1", "event": "", "messageId": f"bad-{i}",
                    "timestamp": _iso(NOW), "properties": {"productId": "p1"}}).encode(),
    ]
    return kinds[i % len(kinds)]  # type: ignore[no-any-return]


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def make_events(n: int, bad_fraction: float, seed: int, run_id: str) -> tuple[list[tuple[bytes, bytes]], Produced]:
    """Segment `track` events for ~n/20 users; a deterministic subset is malformed."""
    rng = random.Random(seed)
    produced = Produced()
    out: list[tuple[bytes, bytes]] = []
    users = max(10, n // 20)
    for i in range(n):
        user = rng.randrange(users)
        key = _user(user).encode()
        if rng.random() < bad_fraction:
            value = _bad_value(rng, i)
            produced.bad_count += 1
            produced.bad_values.append(value)
        else:
            message_id = f"{run_id}-{i}"
            event = {
                "type": "track",
                "messageId": message_id,
                "userId": _user(user) if rng.random() < 0.8 else None,
                "anonymousId": f"anon-{_user(user)}",
                "event": rng.choice(["view", "click", "add-to-cart", "purchase"]),
                "timestamp": _iso(NOW - rng.uniform(0, 3600)),
                "context": {"sessionId": f"s-{user}-{i // 50}"},
                "properties": {"productId": f"item-{rng.randrange(500)}", "value": round(rng.uniform(0, 100), 2),
                               "device": rng.choice(["ios", "android", "web"])},
            }
            value = json.dumps(event).encode()
            produced.good_ids.append(message_id)
        out.append((key, value))
    return out, produced


def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    n = 0
    for key, value in records:
        producer.send(topic, key=key, value=value, headers=[("app", b"test")])
        n += 1
    producer.flush(timeout=60)
    producer.close()
    return n


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0, idle_s: float = 1.5) -> list[Any]:
    """Read a topic from the start: at least `expected` records, then until it stays idle.

    Reading on after `expected` matters: after a crash the DLQ legitimately holds duplicates.
    """
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=1000)
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    last = time.monotonic()
    try:
        while time.monotonic() < deadline and (len(records) < expected or time.monotonic() - last < idle_s):
            for batch in consumer.poll(timeout_ms=300).values():
                records.extend(batch)
                last = time.monotonic()
    finally:
        consumer.close()
    return records


def write_config(path: Path, bootstrap: str, endpoint_url: str, topics: list[dict[str, Any]],
                 *, group_id: str, http_port: int, delivery: dict[str, Any] | None = None,
                 kafka: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> Path:
    config = {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": group_id, "commit_interval_s": 0.5,
                  **TANSU_CONSUMER, **(kafka or {})},
        "personalize": {"region": "us-east-1", "events_endpoint_url": endpoint_url},
        "delivery": {"linger_ms": 20, "delivery_timeout_s": 120, "drain_timeout_s": 20,
                     "config_fault_retry_s": 1.0, **(delivery or {})},
        "observability": {"http_host": "127.0.0.1", "http_port": http_port, "log_format": "json"},
        "topics": topics,
        **(extra or {}),
    }
    path.write_text(yaml.safe_dump(config))
    return path


class WorkerProcess:
    """`clickstream-worker run` as a real subprocess; stopped by PID."""

    def __init__(self, config: Path, log_path: Path, *, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.extra_env = env or {}
        self.port = int(yaml.safe_load(config.read_text())["observability"]["http_port"])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_EC2_METADATA_DISABLED": "true", **self.extra_env}
        log = self.log_path.open("ab")
        if self.log_path not in WORKER_LOGS:
            WORKER_LOGS.append(self.log_path)
        self.proc = subprocess.Popen([sys.executable, "-m", "worker.cli", "run", "--config", str(self.config)],
                                     stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        return self

    def probe(self, path: str) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def wait_ready(self, timeout_s: float = 45.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.logs()
            try:
                status, _ = self.probe("/readyz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"worker not ready in {timeout_s}s:\n{self.logs()}")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as response:
            return str(response.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples matching `labels` (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        total = 0.0
        for family in text_string_to_metric_families(self.metrics()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def terminate(self, timeout_s: float = 40.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""


def commit_lag(bootstrap: str, group: str, topic: str) -> dict[int, tuple[int, int]]:
    """{partition: (committed, end)} for partitions whose group commit is behind the end.

    The end is the high watermark of a fetch response (see `high_watermark`); a partition
    ending in a transaction marker counts as caught up once the commit passes the marker."""
    from tests.integration.foreign_producers import high_watermark

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        count = len(admin.describe_topics([topic])[0]["partitions"])
        parts = [TopicPartition(topic, p) for p in range(count)]
        offsets = admin.list_group_offsets({group: parts}).get(group, {})
    finally:
        admin.close()
    committed = {tp.partition: max(0, meta.offset) for tp, meta in offsets.items()}
    ends = {p.partition: high_watermark(bootstrap, topic, p.partition) for p in parts}
    return {p: (committed.get(p, 0), end) for p, end in ends.items() if committed.get(p, 0) < end}


def wait_for(predicate: Any, timeout_s: float, interval_s: float = 0.25, message: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s: {message}")
