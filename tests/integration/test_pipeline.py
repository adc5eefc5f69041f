"""End to end: real Tansu broker, real worker processes, local Personalize over HTTP.

Every scenario ends with the same audit: each valid event is stored exactly once (by
eventId) in the local Personalize, each invalid one is in the DLQ with its original bytes and
Kafka Connect error headers, and the consumer group's committed offsets cover everything.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.integration.scenario import ITEMS_ARN, USERS_ARN
from tests.integration.worker_support import (
    Produced,
    produce,
    wait_for,
)

pytestmark = pytest.mark.integration

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
    # The survivor must own every partition before it stops, or nobody commits the last ones
    # (they would be redelivered and deduplicated: at-least-once still holds, but the check is stricter).
    wait_for(lambda: a.metric("clickstream_partitions_assigned") == 4, 60, message="survivor owns all partitions")
    # Owning them is not enough: if the stopped worker delivered its last records but could not
    # commit them, the survivor starts before them and must re-consume them (deduplicated
    # downstream) before its commits reach the end. Terminating it earlier leaves them for the
    # next owner, which is at-least-once working, not a loss - but this test checks the end state.
    wait_for(lambda: not s.commit_lag(), 60, message="the survivor committed every partition to its end")
    assert a.terminate() == 0
    assert s.committed_everything()


def test_partition_kept_across_a_rebalance_redelivers_its_unfinished_records(scenario: Any) -> None:
    """Regression: kafka-python keeps the fetch position of a partition that stays assigned
    across a rebalance, but its in-flight records were forgotten at revocation. Without a
    rewind its commits stalled there (and could later move past records still failing);
    now the worker seeks back and redelivers them, so commits reach the end with no new data."""
    s = scenario(partitions=4)
    s.lp.set_faults(latency_ms=1500)  # keep calls in flight across the rebalance
    a = s.worker().start()
    a.wait_ready()
    produced = s.produce(2000, bad_fraction=0.0)
    wait_for(lambda: a.metric("clickstream_inflight_events") > 100, 30, message="records in flight")
    b = s.worker().start()  # eager rebalance: a is revoked everything and keeps two partitions
    b.wait_ready()
    wait_for(lambda: a.metric("clickstream_rebalances_total") >= 1, 30, message="a saw the rebalance")
    s.lp.set_faults(latency_ms=0)
    s.wait_delivered(produced)
    s.audit(produced)
    wait_for(lambda: not s.commit_lag(), 60, message="every partition committed to its end without new records")
    assert a.terminate() == 0
    assert b.terminate() == 0
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
    config["archive"] = {"bucket": bucket, "prefix": "interactions/", "s3_endpoint_url": moto_s3,
                         "flush_rows": 1000, "flush_seconds": 2}
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
