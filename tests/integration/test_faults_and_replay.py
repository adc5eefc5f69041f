"""Configuration faults, delivery timeouts and `dlq replay`, end to end over real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from tests.integration.worker_support import Produced, WorkerProcess, free_port, read_topic, wait_for, write_config

pytestmark = pytest.mark.integration


def test_unknown_tracking_id_is_a_configuration_fault_not_dead_letters(scenario: Any, tmp_path: Path) -> None:
    s = scenario()
    config = write_config(
        tmp_path / "wrong.yaml", s.bootstrap, s.lp.endpoint_url,
        [{"name": s.topic, "dataset_type": "interactions", "tracking_id": "not-a-registered-tracker"}],
        group_id=s.group, http_port=free_port(), delivery={"config_fault_retry_s": 0.5},
    )
    worker = WorkerProcess(config, tmp_path / "wrong.log").start()
    s.workers.append(worker)
    produced = s.produce(500, bad_fraction=0.0)

    def faulted() -> bool:
        try:
            status, body = worker.probe("/readyz")
        except OSError:
            return False
        return status == 503 and bool(body.get("configuration_faults"))

    wait_for(faulted, 60, message=f"readiness reports the fault: {worker.logs()[-2000:]}")
    assert worker.metric("clickstream_config_fault", topic=s.topic) == 1
    assert worker.metric("clickstream_events_dead_lettered_total") == 0
    assert read_topic(s.bootstrap, f"{s.topic}.dlq", 0, timeout_s=3) == []
    errors = [json.loads(line) for line in worker.logs().splitlines() if line.startswith("{")]
    fault_lines = [e for e in errors if "configuration fault" in e.get("event", "")]
    assert len(fault_lines) == 1, "one clear error, not one per batch"
    assert "tracking_id" in fault_lines[0]["setting"]
    assert worker.probe("/healthz")[0] == 200, "alive: it waits for the fix, it does not crash"
    assert worker.terminate() == 0
    # Nothing was committed past the fault: a worker with the right tracker delivers it all.
    fixed = s.worker().start()
    s.wait_delivered(produced)
    s.audit(produced)
    assert fixed.terminate() == 0


def test_delivery_timeout_dead_letters_then_replay_delivers(scenario: Any) -> None:
    s = scenario(delivery={"delivery_timeout_s": 2.0})
    worker = s.worker().start()
    worker.wait_ready()
    s.lp.set_faults(error_rate=1.0)
    produced = s.produce(300, bad_fraction=0.0)
    dlq = read_topic(s.bootstrap, f"{s.topic}.dlq", len(produced.good_ids), timeout_s=90)
    assert len(dlq) >= len(produced.good_ids)
    stages = {dict(r.headers)["__connect.errors.stage"] for r in dlq}
    assert stages == {b"delivery"}
    assert s.stored_ids() == []
    s.lp.clear_faults()
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "dlq", "replay", "--topic", f"{s.topic}.dlq",
         "--stage", "delivery", "--bootstrap", s.bootstrap],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replayed"] == len(dlq) and report["by_stage"] == {"delivery": len(dlq)}
    s.wait_delivered(produced)
    s.audit(Produced(good_ids=produced.good_ids), stages=("delivery",))
    assert worker.terminate() == 0


REPLAY_KEY = "replay-key-for-tests"


def _replay(s: Any, *args: str, key: str | None = REPLAY_KEY) -> dict[str, Any]:
    env = {**os.environ, **({"WORKER_DLQ__REPLAY_ORIGIN_KEY": key} if key else {})}
    result = subprocess.run([sys.executable, "-m", "worker.cli", "dlq", "replay", "--topic", f"{s.topic}.dlq",
                             "--bootstrap", s.bootstrap, *args], check=False, timeout=120,
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def _dead_letter_one_event(s: Any, worker: Any, event: dict[str, Any]) -> None:
    from tests.integration.worker_support import produce

    s.lp.set_faults(error_rate=1.0)
    produce(s.bootstrap, s.topic, [(b"u1", json.dumps(event).encode())])
    read_topic(s.bootstrap, f"{s.topic}.dlq", 1, timeout_s=60)
    s.lp.clear_faults()


EVENT = {"userId": "u1", "anonymousId": "a1", "event": "view", "timestamp": "2026-11-22T10:00:00Z",
         "properties": {"productId": "p1"}}


def test_replay_of_a_record_already_delivered_is_deduplicated(scenario: Any) -> None:
    """A record without its own ID keeps the ID of its *first* position when replayed with the shared key."""
    s = scenario(delivery={"delivery_timeout_s": 1.5})
    worker = s.worker(extra={"dlq": {"replay_origin_key": REPLAY_KEY}}).start()
    worker.wait_ready()
    _dead_letter_one_event(s, worker, EVENT)
    for _ in range(2):  # replaying twice must not create two training rows
        report = _replay(s, "--from-beginning")
        assert report["origin_signed"] is True and report["replayed"] >= 1
    wait_for(lambda: s.lp.stats()["duplicate_events"] >= 1, 60, message=str(s.lp.stats()))
    assert len(s.stored_ids()) == 1
    assert worker.metric("clickstream_origin_headers_ignored_total") == 0
    assert worker.terminate() == 0


def test_unauthenticated_origin_headers_are_ignored_and_counted(scenario: Any) -> None:
    """A producer cannot borrow another record's position (and so its event ID) with a bare header,
    and a replay without the key gives up deduplication instead of trusting one."""
    from tests.integration.worker_support import produce

    s = scenario(delivery={"delivery_timeout_s": 1.5})
    worker = s.worker(extra={"dlq": {"replay_origin_key": REPLAY_KEY}}).start()
    worker.wait_ready()
    produce(s.bootstrap, s.topic, [(b"u1", json.dumps(EVENT).encode())])
    wait_for(lambda: len(s.stored_ids()) == 1, 60, message="first event stored")
    victim = s.stored_ids()[0]
    producer = KafkaProducer(bootstrap_servers=s.bootstrap)
    for event_type, mac in (("purchase", None), ("add-to-cart", b"0" * 64)):  # no MAC, then a wrong one
        headers = [("clickstream.origin", f"{s.topic}:0:0".encode())]
        headers += [("clickstream.origin.mac", mac)] if mac else []
        forged = {**EVENT, "event": event_type}
        producer.send(s.topic, key=b"u1", value=json.dumps(forged).encode(), headers=headers)
    producer.flush(10)
    producer.close()
    wait_for(lambda: len(s.stored_ids()) == 3, 60, message=f"forged events stored under their own IDs {s.lp.stats()}")
    assert victim in s.stored_ids()
    assert worker.metric("clickstream_origin_headers_ignored_total", reason="unauthenticated") == 1
    assert worker.metric("clickstream_origin_headers_ignored_total", reason="invalid") == 1

    # A replay without the key: the event is delivered, with a new ID (a documented trade-off).
    _dead_letter_one_event(s, worker, {**EVENT, "event": "click"})
    report = _replay(s, "--stage", "delivery", key=None)
    assert report["origin_signed"] is False and report["replayed"] == 1
    wait_for(lambda: len(s.stored_ids()) == 4, 60, message="replayed event stored")
    assert worker.metric("clickstream_origin_headers_ignored_total", reason="unauthenticated") == 2
    assert worker.terminate() == 0


def test_replay_publishes_only_to_the_dead_letter_topics_source(scenario: Any, kafka_topic: Any) -> None:
    s = scenario()
    other = kafka_topic(partitions=1, prefix="elsewhere")
    producer = KafkaProducer(bootstrap_servers=s.bootstrap)
    for target in (s.topic, other):
        headers = [("__connect.errors.topic", target.encode()), ("__connect.errors.partition", b"0"),
                   ("__connect.errors.offset", b"1"), ("__connect.errors.stage", b"delivery")]
        producer.send(f"{s.topic}.dlq", value=json.dumps(EVENT).encode(), headers=headers)
    producer.flush(10)
    producer.close()
    report = _replay(s)
    assert report["replayed"] == 1 and report["by_target"] == {s.topic: 1}
    assert report["refused"] == 1 and report["refused_targets"] == {other: 1}
    assert read_topic(s.bootstrap, other, 0, timeout_s=5, idle_s=1.0) == []


def test_validate_command_reports_invalid_lines(tmp_path: Path) -> None:
    good = {"messageId": "m1", "userId": "u1", "anonymousId": "a1", "event": "view",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "properties": {"productId": "p1"}}
    lines = [json.dumps(good), "not json", json.dumps({**good, "userId": "u" * 300})]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = subprocess.run([sys.executable, "-m", "worker.cli", "validate", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    invalid = [o for o in out if "line" in o]
    assert [o["line"] for o in invalid] == [2, 3]
    assert invalid[1]["field"] == "userId" and invalid[1]["rule"] == "max_length"
    ok = subprocess.run([sys.executable, "-m", "worker.cli", "validate", "-"], input=lines[0] + "\n",
                        capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_invalid_config_fails_at_start_naming_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("topics:\n  - name: clicks\n    dataset_type: interactions\ndelivery:\n  linger_ms: -5\n")
    result = subprocess.run([sys.executable, "-m", "worker.cli", "run", "--config", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "tracking_id" in result.stderr and "delivery.linger_ms" in result.stderr
    assert "fix:" in result.stderr


def test_config_example_is_printed() -> None:
    result = subprocess.run([sys.executable, "-m", "worker.cli", "config", "example"],
                            capture_output=True, text=True, timeout=60, check=True)
    assert "topics:" in result.stdout and "linger_ms" in result.stdout
