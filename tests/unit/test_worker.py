"""`Worker.run` end to end in one process, with stand-ins for Kafka and Personalize.

No broker or server can run in a unit test, so kafka-python's KafkaConsumer/KafkaProducer,
the admin helpers and the Personalize client are replaced (module attributes of
worker.app and worker.ingest.consumer). The same run against the real embedded broker and
the local Personalize is tests/integration/test_pipeline.py; this test checks the wiring:
records flow consumer -> pipeline -> sender, rejections to the DLQ writer, completions back
to the consumer, commits, readiness, and the orderly shutdown on request.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from tests.unit.test_consumer_thread import FakeConsumer, FakeProbe
from worker import app as app_module
from worker.config import load_settings
from worker.ingest import consumer as consumer_module

TRACKING_ID = "11111111-2222-3333-4444-555555555555"


def _event(i: int) -> bytes:
    return json.dumps({"type": "track", "messageId": f"m-{i}", "userId": f"u{i % 3}", "anonymousId": f"a{i % 3}",
                       "event": "view", "timestamp": "2026-12-01T10:00:00Z",
                       "properties": {"productId": f"p{i}"}}).encode()


class FakeFuture:
    def __init__(self) -> None:
        self.callbacks: list[Any] = []

    def add_callback(self, fn: Any) -> None:
        fn(None)  # the broker acknowledged at once

    def add_errback(self, fn: Any) -> None:
        pass


class FakeProducer:
    sent: list[tuple[str, bytes | None, dict[str, bytes]]] = []

    def __init__(self, **config: Any) -> None:
        self.config = config

    def send(self, topic: str, *, key: Any, value: bytes | None, headers: list[tuple[str, bytes]],
             timestamp_ms: Any) -> FakeFuture:
        FakeProducer.sent.append((topic, value, dict(headers)))
        return FakeFuture()

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


class FakeEvents:
    """Stands in for the Personalize Events client (an async context manager)."""

    meta = SimpleNamespace(endpoint_url="http://127.0.0.1:9")  # like aiobotocore's client; nothing listens

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __aenter__(self) -> FakeEvents:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def put_events(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        return {"ResponseMetadata": {"HTTPStatusCode": 200}}


def test_the_worker_delivers_dead_letters_commits_and_stops_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tp = TopicPartition("clicks", 0)
    values = [_event(i) for i in range(12)] + [b"not json"]
    consumers: list[FakeConsumer] = []

    class Consumer(FakeConsumer):
        def __init__(self, **config: Any) -> None:
            super().__init__(**config)
            consumers.append(self)

        def subscribe(self, topics: list[str], listener: Any) -> None:
            super().subscribe(topics, listener)
            self.rebalance([tp])
            self.script = [{tp: [ConsumerRecord("clicks", 0, -1, offset, 1_700_000_000_000, 0, None, value, [],
                                                None, -1, len(value), -1) for offset, value in enumerate(values)]}]

    events = FakeEvents()
    FakeProducer.sent = []
    monkeypatch.setattr(consumer_module, "KafkaConsumer", Consumer)
    monkeypatch.setattr(consumer_module, "FetchProbe", FakeProbe)
    monkeypatch.setattr(app_module, "KafkaProducer", FakeProducer)
    monkeypatch.setattr(app_module, "partition_count", lambda *a, **k: 1)
    monkeypatch.setattr(app_module, "ensure_topics", lambda *a, **k: [])
    monkeypatch.setattr(app_module, "events_client", lambda settings: events)
    monkeypatch.setattr(app_module, "check_events_endpoint", lambda settings: None)
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": "127.0.0.1:9", "commit_interval_s": 0.1},
        "delivery": {"linger_ms": 5, "drain_timeout_s": 5},
        "observability": {"http_host": "127.0.0.1", "http_port": 0},
        "topics": [{"name": "clicks", "dataset_type": "interactions", "tracking_id": TRACKING_ID}],
    }))
    worker = app_module.Worker(load_settings(path), handle_signals=False)

    async def scenario() -> int:
        run = asyncio.get_running_loop().create_task(worker.run())
        for _ in range(500):
            delivered = sum(len(call["eventList"]) for call in events.calls)
            if delivered == 12 and FakeProducer.sent and consumers and consumers[0].commits:
                break
            await asyncio.sleep(0.01)
        _ready, details = worker.readiness()
        assert details["partitions_assigned"] == 1 and details["partition_errors"] == {}
        for _ in range(500):  # the reachability probe GETs /ping on a closed loopback port
            if worker.readiness()[1]["personalize_reachable"] is False:
                break
            await asyncio.sleep(0.01)
        assert worker.readiness()[0] is False, "Personalize unreachable: not ready, and the details say why"
        worker.request_stop()
        return await asyncio.wait_for(run, 15)

    assert asyncio.run(scenario()) == 0
    delivered = [e["eventId"] for call in events.calls for e in call["eventList"]]
    assert sorted(delivered) == sorted(f"m-{i}" for i in range(12))
    ((topic, value, headers),) = FakeProducer.sent
    assert topic == "clicks.dlq" and value == b"not json"
    assert headers["__connect.errors.stage"] == b"mapping" and headers["__connect.errors.offset"] == b"12"
    (consumer,) = consumers
    assert consumer.commits[-1][tp].offset == 13, "everything, the dead letter included, committed"
