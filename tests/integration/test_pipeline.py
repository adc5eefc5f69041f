"""End to end: real Tansu broker, real worker processes, local Personalize over HTTP.

Every scenario ends with the same audit: each valid event is stored exactly once (by
eventId) in the local Personalize, each invalid one is in the DLQ with its original bytes and
Kafka Connect error headers, and the consumer group's committed offsets cover everything.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from tests.integration.worker_support import (
    Produced,
    WorkerProcess,
    free_port,
    make_events,
    produce,
    read_topic,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration

TRACKING_ID = "11111111-2222-3333-4444-555555555555"
ITEMS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/demo/ITEMS"
USERS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/demo/USERS"


class Scenario:
    """One topic, one local Personalize, N workers sharing a group."""

    def __init__(self, tmp_path: Path, broker: Any, kafka_topic: Any, local_personalize: Any,
                 *, partitions: int = 4, delivery: dict[str, Any] | None = None) -> None:
        self.tmp = tmp_path
        self.bootstrap = broker.bootstrap
        self.topic = kafka_topic(partitions=partitions, prefix="clicks")
        self.lp = local_personalize(trackers=[TRACKING_ID], datasets=[ITEMS_ARN, USERS_ARN])
        self.group = f"g-{uuid.uuid4().hex[:8]}"
        self.delivery = delivery
        self.workers: list[WorkerProcess] = []
        self.run_id = uuid.uuid4().hex[:8]

    def worker(self, extra_topics: list[dict[str, Any]] | None = None) -> WorkerProcess:
        n = len(self.workers)
        config = write_config(
            self.tmp / f"worker{n}.yaml", self.bootstrap, self.lp.endpoint_url,
            [{"name": self.topic, "dataset_type": "interactions", "tracking_id": TRACKING_ID},
             *(extra_topics or [])],
            group_id=self.group, http_port=free_port(), delivery=self.delivery,
        )
        process = WorkerProcess(config, self.tmp / f"worker{n}.log")
        self.workers.append(process)
        return process

    def produce(self, n: int, bad_fraction: float = 0.05, seed: int = 7) -> Produced:
        records, produced = make_events(n, bad_fraction, seed, self.run_id)
        produce(self.bootstrap, self.topic, records)
        return produced

    def stored_ids(self) -> list[str]:
        return [e["eventId"] for e in self.lp.events(TRACKING_ID)]

    def wait_delivered(self, produced: Produced, timeout_s: float = 120.0) -> None:
        want = set(produced.good_ids)

        def done() -> bool:
            return want.issubset(self.stored_ids())

        try:
            wait_for(done, timeout_s, interval_s=0.5, message="good events delivered")
        except AssertionError as exc:
            missing = len(want - set(self.stored_ids()))
            logs = "\n".join(w.logs()[-3000:] for w in self.workers)
            raise AssertionError(f"{missing} of {len(want)} events missing; stats={self.lp.stats()}\n{logs}") from exc

    def audit(self, produced: Produced, stages: tuple[str, ...] = ("mapping", "validation")) -> dict[str, Any]:
        """Exactly-once by eventId in Personalize; every bad record in the DLQ with headers."""
        ids = self.stored_ids()
        counts = Counter(ids)
        assert not [i for i, c in counts.items() if c > 1], "an eventId was stored twice"
        assert set(ids) == set(produced.good_ids)
        dlq = read_topic(self.bootstrap, f"{self.topic}.dlq", produced.bad_count, timeout_s=60)
        # At-least-once: a DLQ record may appear twice after a crash, never zero times.
        dlq_values = Counter(r.value for r in dlq)
        for value, n in Counter(produced.bad_values).items():
            assert dlq_values[value] >= n, f"bad record missing from DLQ: {value[:80]!r}"
        for record in dlq:
            headers = dict(record.headers)
            assert headers["__connect.errors.topic"].decode() == self.topic
            assert int(headers["__connect.errors.partition"]) >= 0
            assert int(headers["__connect.errors.offset"]) >= 0
            assert headers["__connect.errors.stage"].decode() in stages
            assert headers["__connect.errors.exception.class.name"]
            assert headers["__connect.errors.exception.message"]
            assert headers["app"] == b"test", "original headers are kept"
        return {"stored": len(ids), "dlq": len(dlq), "stats": self.lp.stats()}

    def committed_everything(self) -> bool:
        lagging = self.commit_lag()
        assert not lagging, f"committed offsets behind the end: {lagging}"
        return True

    def commit_lag(self) -> dict[int, tuple[int, int]]:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False)
        try:
            parts = [TopicPartition(self.topic, p) for p in consumer.partitions_for_topic(self.topic) or ()]
            ends = consumer.end_offsets(parts)
            committed = {tp: consumer.committed(tp) or 0 for tp in parts}
        finally:
            consumer.close()
        return {tp.partition: (committed[tp], ends[tp]) for tp in parts if committed[tp] < ends[tp]}

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.kill()


@pytest.fixture
def scenario(tmp_path: Path, broker: Any, kafka_topic: Any, local_personalize: Any) -> Any:
    created: list[Scenario] = []

    def make(**kwargs: Any) -> Scenario:
        s = Scenario(tmp_path, broker, kafka_topic, local_personalize, **kwargs)
        created.append(s)
        return s

    yield make
    for s in created:
        s.stop_all()


def test_mixed_events_exactly_once_and_bad_ones_dead_lettered(scenario: Any) -> None:
    s = scenario()
    worker = s.worker().start()
    produced = s.produce(20_000, bad_fraction=0.05)
    worker.wait_ready()
    s.wait_delivered(produced)
    result = s.audit(produced)
    assert result["dlq"] >= produced.bad_count
    metrics = worker.metrics()
    assert "clickstream_events_delivered_total" in metrics
    assert 'clickstream_put_requests_total{api="PutEvents",outcome="success"}' in metrics
    assert worker.terminate() == 0
    assert s.committed_everything()


def test_throttling_and_server_errors_mid_run_lose_nothing(scenario: Any) -> None:
    s = scenario(delivery={"put_events_rps": 5000})
    worker = s.worker().start()
    worker.wait_ready()
    first = s.produce(4000, bad_fraction=0.0, seed=1)
    s.lp.set_faults(throttle_rps=40)
    time.sleep(2)
    s.lp.set_faults(error_rate=0.5)
    second = s.produce(4000, bad_fraction=0.0, seed=2)
    time.sleep(2)
    s.lp.clear_faults()
    both = Produced(good_ids=first.good_ids + second.good_ids)
    s.wait_delivered(both)
    s.audit(both)
    stats = s.lp.stats()
    assert stats["throttled"] > 0 and stats["injected_errors"] > 0, stats
    assert worker.terminate() == 0


def test_sigkill_mid_run_then_restart_loses_nothing(scenario: Any) -> None:
    s = scenario()
    worker = s.worker().start()
    worker.wait_ready()
    produced = s.produce(20_000, bad_fraction=0.02)
    wait_for(lambda: len(s.stored_ids()) > 2000, 60, message="some events delivered before the kill")
    worker.kill()
    assert len(s.stored_ids()) < len(produced.good_ids), "killed too late to test anything"
    restarted = s.worker().start()
    s.wait_delivered(produced)
    s.audit(produced)
    assert restarted.terminate() == 0
    assert s.committed_everything()


def test_two_workers_one_stopped_loses_nothing(scenario: Any) -> None:
    s = scenario(partitions=4)
    a, b = s.worker().start(), s.worker().start()
    a.wait_ready()
    b.wait_ready()
    produced = s.produce(20_000, bad_fraction=0.02)
    wait_for(lambda: len(s.stored_ids()) > 3000, 60, message="progress before stopping one worker")
    assert b.terminate() == 0
    s.wait_delivered(produced)
    s.audit(produced)
    assert a.terminate() == 0
    assert s.committed_everything()


def test_sigterm_drains_and_commits(scenario: Any) -> None:
    # A long linger keeps batches open, so SIGTERM must flush them rather than wait.
    s = scenario(delivery={"linger_ms": 5000})
    worker = s.worker().start()
    worker.wait_ready()
    produced = s.produce(3000, bad_fraction=0.03)
    wait_for(lambda: len(s.stored_ids()) > 0 or "consumed" in worker.metrics(), 30)
    time.sleep(1.0)
    started = time.monotonic()
    assert worker.terminate() == 0
    assert time.monotonic() - started < 25
    log_lines = [json.loads(line) for line in worker.logs().splitlines() if line.startswith("{")]
    assert any("drained" in line.get("event", "") for line in log_lines), worker.logs()
    # Whatever was consumed is either delivered or dead-lettered, and committed.
    restart = s.worker().start()
    s.wait_delivered(produced)
    s.audit(produced)
    assert restart.terminate() == 0
    assert s.committed_everything()


def test_catalog_topics_upsert_items_and_users(scenario: Any, kafka_topic: Any) -> None:
    s = scenario()
    items_topic, users_topic = kafka_topic(partitions=2, prefix="items"), kafka_topic(partitions=2, prefix="users")
    worker = s.worker([
        {"name": items_topic, "dataset_type": "items", "dataset_arn": ITEMS_ARN},
        {"name": users_topic, "dataset_type": "users", "dataset_arn": USERS_ARN},
    ]).start()
    worker.wait_ready()
    now = int(time.time())
    items = [(f"item-{i % 30}".encode(), json.dumps({
        "itemId": f"item-{i % 30}",
        "properties": {"category": f"cat-{i % 5}", "price": float(i), "creationTimestamp": now - 100},
    }).encode()) for i in range(90)]
    users = [(f"u{i % 20}".encode(), json.dumps({
        "type": "identify", "userId": f"u{i % 20}", "traits": {"membership": ["gold", "silver"][i % 2]},
    }).encode()) for i in range(40)]
    produce(s.bootstrap, items_topic, items)
    produce(s.bootstrap, users_topic, users)
    wait_for(lambda: worker.metric("clickstream_events_delivered_total", topic=items_topic) == 90
             and worker.metric("clickstream_events_delivered_total", topic=users_topic) == 40, 90,
             message=f"items/users delivered: {worker.logs()[-2000:]}")
    assert len(s.lp.items()) == 30 and len(s.lp.users()) == 20
    # Coalescing: 90 item records in one linger window at most 10 per call.
    assert worker.metric("clickstream_put_requests_total", api="PutItems", outcome="success") >= 9
    stored = {i["itemId"]: json.loads(i["properties"]) for i in s.lp.items()}
    # Last write wins per item: item-0's last record is i=60.
    assert stored["item-0"]["price"] == 60.0
    assert worker.terminate() == 0


def test_archive_sink_writes_every_delivered_interaction_to_s3(scenario: Any, moto_s3: str) -> None:
    import boto3
    import yaml

    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    bucket = f"archive-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s = scenario()
    worker = s.worker()
    config = yaml.safe_load(worker.config.read_text())
    config["scheduler"] = {"archive": {"bucket": bucket, "prefix": "interactions/", "s3_endpoint_url": moto_s3,
                                       "flush_rows": 1000, "flush_seconds": 2}}
    worker.config.write_text(yaml.safe_dump(config))
    worker.start()
    worker.wait_ready()
    produced = s.produce(3000, bad_fraction=0.02)
    s.wait_delivered(produced)
    assert worker.terminate() == 0, "close() flushes the rest at shutdown"
    rows: list[str] = []
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix="interactions/").get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
        lines = body.splitlines()
        assert lines[0].startswith("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE"), lines[0]
        rows.extend(lines[1:])
    assert len(rows) == len(produced.good_ids), "one CSV row per delivered interaction"
