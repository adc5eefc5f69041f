"""End to end: actions and action interactions through a worker process into the local Personalize.

Real Tansu broker, a real worker process (lean client), the local Personalize's PutActions and
PutActionInteractions. Audit: every valid action is stored (last write wins per actionId),
every valid action interaction is stored exactly once by eventId (a record produced twice with
the same messageId included; records without one get derived IDs), and every invalid record
is in its topic's DLQ with its original bytes and a reason.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration.worker_support import (
    WorkerProcess,
    free_port,
    produce,
    read_topic,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration

ACTIONS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/nba/ACTIONS"
AI_TRACKER = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _actions(now: int) -> tuple[list[tuple[bytes, bytes]], list[bytes], dict[str, int]]:
    """45 valid records for 15 actions (value = record index) and 5 invalid ones."""
    good = [(f"a{i % 15}".encode(), json.dumps({
        "actionId": f"a{i % 15}",
        "properties": {"value": i, "membershipLevel": ["gold", "silver"][i % 2], "creationTimestamp": _iso(now - 60),
                       "expirationTimestamp": now + 90 * 86_400, "repeatFrequency": 7},
    }).encode()) for i in range(45)]
    last = {f"a{i % 15}": i for i in range(45)}
    bad = [
        json.dumps({"properties": {"value": 1, "creationTimestamp": now}}).encode(),  # no actionId
        json.dumps({"actionId": "x" * 257, "properties": {"creationTimestamp": now}}).encode(),  # too long
        json.dumps({"actionId": "b1", "properties": {"value": 2.5, "creationTimestamp": now}}).encode(),  # VALUE long
        json.dumps({"actionId": "b2", "properties": {"creationTimestamp": now * 1000}}).encode(),  # milliseconds
        b"not json",
    ]
    return good + [(b"bad", v) for v in bad], bad, last


def _interactions(now: int, run: str) -> tuple[list[tuple[bytes, bytes]], list[bytes], set[str], int]:
    """60 valid interactions (10 without messageId, 5 produced twice) and 6 invalid ones."""
    records: list[tuple[bytes, bytes]] = []
    ids: set[str] = set()
    for i in range(60):
        event: dict[str, Any] = {
            "type": "track", "userId": f"u{i % 6}", "anonymousId": f"anon-{i % 6}",
            "event": ["Taken", "Not Taken", "Viewed"][i % 3], "timestamp": _iso(now - 600 + i),
            "context": {"sessionId": f"s{i % 6}-{i // 30}"},
            "properties": {"actionId": f"a{i % 15}", "recommendationId": f"rid-{i % 4}"},
        }
        if i >= 10:
            event["messageId"] = f"{run}-{i}"
            ids.add(event["messageId"])
        records.append((f"u{i % 6}".encode(), json.dumps(event).encode()))
    records += records[20:25]  # redelivered copies: same messageId, stored once
    base = {"type": "track", "userId": "u1", "anonymousId": "anon-1", "timestamp": _iso(now),
            "context": {"sessionId": "s-bad"}, "properties": {"actionId": "a1"}}
    bad = [
        json.dumps({**base, "messageId": f"{run}-bad-0", "event": "click"}).encode(),  # not Taken/Not Taken/Viewed
        json.dumps({**base, "messageId": f"{run}-bad-1", "event": "Taken", "properties": {}}).encode(),  # no action
        json.dumps({**base, "messageId": f"{run}-bad-2", "event": "Viewed",
                    "properties": {"actionId": "a1", "recommendationId": "r" * 41}}).encode(),
        json.dumps({**base, "messageId": f"{run}-bad-3", "event": "Taken",
                    "timestamp": "1970-01-02T00:00:00Z"}).encode(),  # seconds read as a date in 1970
        json.dumps({**base, "messageId": f"{run}-bad-4", "event": "Taken", "context": {},
                    "anonymousId": None}).encode(),  # no session
        b"[1, 2, 3]",
    ]
    return records + [(b"bad", v) for v in bad], bad, ids, 60


def _check_dlq(bootstrap: str, topic: str, bad: list[bytes]) -> Counter[str]:
    dlq = read_topic(bootstrap, f"{topic}.dlq", len(bad), timeout_s=60)
    values = Counter(r.value for r in dlq)
    for value in bad:
        assert values[value] >= 1, f"bad record missing from {topic}.dlq: {value[:80]!r}"
    assert set(values) == set(bad), "only the invalid records are dead-lettered"
    rules: Counter[str] = Counter()
    for record in dlq:
        headers = dict(record.headers)
        assert headers["__connect.errors.topic"].decode() == topic
        assert headers["__connect.errors.stage"].decode() in ("mapping", "validation")
        message = headers["__connect.errors.exception.message"].decode()
        assert message.startswith("[")
        rules[message[1:message.index("]")]] += 1
        assert headers["app"] == b"test", "original headers are kept"
    return rules


def test_actions_and_action_interactions_end_to_end(tmp_path: Path, broker: Any, kafka_topic: Any,
                                                    local_personalize: Any) -> None:
    lp = local_personalize(datasets=[ACTIONS_ARN], extra_args=["--action-tracker", AI_TRACKER])
    actions_topic, ai_topic = kafka_topic(partitions=2, prefix="actions"), kafka_topic(partitions=3, prefix="nba")
    config = write_config(
        tmp_path / "worker.yaml", broker.bootstrap, lp.endpoint_url,
        [{"name": actions_topic, "dataset_type": "actions", "dataset_arn": ACTIONS_ARN},
         {"name": ai_topic, "dataset_type": "action_interactions", "tracking_id": AI_TRACKER,
          "dataset_group": "nba"}],
        group_id=f"g-{uuid.uuid4().hex[:8]}", http_port=free_port(),
    )
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    worker.wait_ready()
    now, run = int(time.time()), uuid.uuid4().hex[:8]
    action_records, bad_actions, last_value = _actions(now)
    ai_records, bad_ai, message_ids, valid_ai = _interactions(now, run)
    produce(broker.bootstrap, actions_topic, action_records)
    produce(broker.bootstrap, ai_topic, ai_records)

    def finished() -> bool:
        delivered = {t: worker.metric("clickstream_events_delivered_total", topic=t) for t in (actions_topic, ai_topic)}
        dead = {t: worker.metric("clickstream_events_dead_lettered_total", topic=t) for t in (actions_topic, ai_topic)}
        return (delivered[actions_topic] == 45 and delivered[ai_topic] == valid_ai + 5
                and dead[actions_topic] == len(bad_actions) and dead[ai_topic] == len(bad_ai))

    wait_for(finished, 120, interval_s=0.5, message=f"actions delivered: {worker.logs()[-3000:]}")

    stored_actions = {a["actionId"]: a for a in lp.actions(ACTIONS_ARN)}
    assert set(stored_actions) == set(last_value)
    for action_id, index in last_value.items():  # last write wins per actionId
        props = json.loads(stored_actions[action_id]["properties"])
        assert props["value"] == index and props["repeatFrequency"] == 7
        assert props["creationTimestamp"] == now - 60 and props["expirationTimestamp"] == now + 90 * 86_400

    stored = lp.action_interactions(AI_TRACKER)
    counts = Counter(i["eventId"] for i in stored)
    assert not [e for e, n in counts.items() if n > 1], "an eventId was stored twice"
    assert len(stored) == valid_ai, "every valid interaction once; the redelivered copies are not stored again"
    assert message_ids <= set(counts)
    derived = set(counts) - message_ids
    assert len(derived) == 10 and all(len(e) == 64 for e in derived), "derived IDs for records without messageId"
    assert {i["eventType"] for i in stored} == {"Taken", "Not Taken", "Viewed"}
    assert {i["sessionId"] for i in stored} == {f"s{u}-{h}" for u in range(6) for h in range(2)}

    assert _check_dlq(broker.bootstrap, actions_topic, bad_actions) == Counter(
        {"mapping/missing": 1, "validation/max_length": 1, "validation/not_integral": 1,
         "validation/timestamp_window": 1, "mapping/not_json": 1})
    assert _check_dlq(broker.bootstrap, ai_topic, bad_ai) == Counter(
        {"validation/event_type_not_allowed": 1, "mapping/missing": 2, "validation/max_length": 1,
         "validation/timestamp_window": 1, "mapping/not_object": 1})

    assert worker.metric("clickstream_put_requests_total", api="PutActions", outcome="success") >= 2
    calls = worker.metric("clickstream_put_requests_total", api="PutActionInteractions", outcome="success")
    assert 12 <= calls <= valid_ai + 5, "grouped per session: at least one call per (user, session)"
    assert worker.metric("clickstream_put_requests_total", api="PutActionInteractions", outcome="invalid") == 0
    assert worker.terminate() == 0
