"""Derived event IDs cannot collide: a re-created topic and a restart mid-stream lose nothing.

Events without a `messageId` get an ID derived from the record (topic, partition, offset,
timestamp, key and value digests). Before, it was the position alone: after a topic was
deleted and re-created (offsets restart at 0) every new event reused an old ID and
Personalize kept only the old event. A running consumer also kept its old positions: the
new log's first records were skipped, or nothing at all was fetched when the new log was
shorter. Both are checked here with a real broker: every event of both incarnations is
stored exactly once, and after a SIGKILL the redelivered events are deduplicated by ID.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient

from tests.integration.scenario import TRACKING_ID, Scenario
from tests.integration.worker_support import produce, wait_for
from worker.kafka_admin import ensure_topics

pytestmark = pytest.mark.integration


def _events(tag: str, n: int) -> list[tuple[bytes, bytes]]:
    """Segment track events without messageId; the itemId tells them apart in the audit."""
    now = time.time()
    out = []
    for i in range(n):
        user = f"u{i % 17}"
        event = {"type": "track", "userId": user, "anonymousId": f"a-{user}", "event": "view",
                 "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now - 60 + i * 0.001)),
                 "context": {"sessionId": f"s-{user}"}, "properties": {"productId": f"{tag}-{i}"}}
        out.append((user.encode(), json.dumps(event).encode()))
    return out


def _stored_items(scenario: Scenario) -> Counter[str]:
    return Counter(e["itemId"] for e in scenario.lp.events(TRACKING_ID))


def _wait_stored(scenario: Scenario, tags: dict[str, int], timeout_s: float = 90.0) -> None:
    want = {f"{tag}-{i}" for tag, n in tags.items() for i in range(n)}

    def done() -> bool:
        return want <= set(_stored_items(scenario))

    try:
        wait_for(done, timeout_s, interval_s=0.5)
    except AssertionError as exc:
        missing = sorted(want - set(_stored_items(scenario)))
        logs = "\n".join(w.logs()[-3000:] for w in scenario.workers)
        stats = scenario.lp.stats()
        raise AssertionError(f"{len(missing)} missing, e.g. {missing[:5]}; stats={stats}\n{logs}") from exc


def _consumed(worker: Any) -> float:
    try:
        return float(worker.metric("clickstream_events_consumed_total"))
    except OSError:  # not listening yet
        return 0.0


def _recreate(bootstrap: str, topic: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([topic])
        wait_for(lambda: topic not in admin.list_topics(), 15, message="topic deleted")
    finally:
        admin.close()
    ensure_topics(bootstrap, {topic: partitions}, timeout_s=15.0)


def test_recreated_topic_and_restart_store_every_event_exactly_once(
    tmp_path: Path, broker: Any, kafka_topic: Any, local_personalize: Any
) -> None:
    scenario = Scenario(tmp_path, broker, kafka_topic, local_personalize, partitions=2)
    kafka = {"metadata_max_age_ms": 2000, "stall_after_s": 5.0}
    worker = scenario.worker(kafka=kafka).start()
    try:
        produce(scenario.bootstrap, scenario.topic, _events("old", 100))
        _wait_stored(scenario, {"old": 100})
        wait_for(lambda: not scenario.commit_lag(), 20, message="old log committed")

        # Same name, new topic: offsets restart at 0. The new log is longer than the old
        # position in both partitions, the case where a kept position silently skips records.
        _recreate(scenario.bootstrap, scenario.topic, 2)
        produce(scenario.bootstrap, scenario.topic, _events("new", 160))
        _wait_stored(scenario, {"old": 100, "new": 160})
        wait_for(lambda: not scenario.commit_lag(), 30, message="new log committed")
        stored = _stored_items(scenario)
        assert max(stored.values()) == 1, [k for k, c in stored.items() if c > 1][:5]
        assert "topic re-created" in worker.logs() or "beyond the end" in worker.logs()

        # Restart mid-stream: nothing committed (long commit interval), SIGKILL after deliveries,
        # a new worker redelivers from the last commit and Personalize drops the repeated IDs.
        worker.kill()
        config = scenario.worker(kafka={**kafka, "commit_interval_s": 600})
        second = config.start()
        produce(scenario.bootstrap, scenario.topic, _events("late", 300))
        wait_for(lambda: sum(1 for k in _stored_items(scenario) if k.startswith("late-")) >= 100, 60,
                 message="part of the late events delivered before the kill")
        duplicates_before = scenario.lp.stats()["duplicate_events"]
        second.kill()
        third = scenario.worker(kafka=kafka).start()
        _wait_stored(scenario, {"old": 100, "new": 160, "late": 300})
        # The killed worker committed nothing of the late events: the third one reads them again.
        wait_for(lambda: _consumed(third) >= 300, 60,
                 message="the late events redelivered to the next worker")
        wait_for(lambda: not scenario.commit_lag(), 30, message="redeliveries committed")
        stored = _stored_items(scenario)
        assert sum(stored.values()) == 560 and max(stored.values()) == 1
        events = scenario.lp.events(TRACKING_ID)
        assert len({e["eventId"] for e in events}) == len(events) == 560
        assert scenario.lp.stats()["duplicate_events"] > duplicates_before, "no redelivery was deduplicated"
        assert third.terminate() == 0
    finally:
        scenario.stop_all()
