"""Configuration faults, delivery timeouts and `dlq replay`, end to end over real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

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


def test_replay_of_a_record_already_delivered_is_deduplicated(scenario: Any) -> None:
    """A record without its own ID gets an ID derived from its *first* position, even replayed."""
    s = scenario(delivery={"delivery_timeout_s": 1.5})
    worker = s.worker().start()
    worker.wait_ready()
    event = {"userId": "u1", "anonymousId": "a1", "event": "view", "timestamp": time.time(),
             "properties": {"productId": "p1"}}
    s.lp.set_faults(error_rate=1.0)
    from tests.integration.worker_support import produce

    produce(s.bootstrap, s.topic, [(b"u1", json.dumps({**event, "timestamp": "2026-11-22T10:00:00Z"}).encode())])
    read_topic(s.bootstrap, f"{s.topic}.dlq", 1, timeout_s=60)
    s.lp.clear_faults()
    for _ in range(2):  # replaying twice must not create two training rows
        subprocess.run([sys.executable, "-m", "worker.cli", "dlq", "replay", "--topic", f"{s.topic}.dlq",
                        "--bootstrap", s.bootstrap, "--from-beginning"], check=True, timeout=120,
                       capture_output=True)
    wait_for(lambda: s.lp.stats()["duplicate_events"] >= 1, 60, message=str(s.lp.stats()))
    assert len(s.stored_ids()) == 1
    assert worker.terminate() == 0


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
