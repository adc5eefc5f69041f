"""Faults that must not lose data: a delivery timeout, and a wrong tracking ID.

A delivery timeout dead-letters with stage ``delivery``; after recovery `dlq replay`
re-publishes those records and they are delivered once (their eventIds are stable). A
wrong tracking ID is the operator's mistake, not the data's: the worker reports a
configuration fault and turns unready, and dead-letters nothing, so a corrected worker
delivers it all.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.faults.audit import MESSAGE_HEADER, RULE_HEADER, STAGE_HEADER, worker_healthy
from tests.faults.stack import FaultStack
from tests.integration.worker_support import read_topic, wait_for

pytestmark = pytest.mark.faults

DELIVERY_TIMEOUT_S = 2.0
WRONG_TRACKING_ID = "00000000-dead-beef-0000-000000000000"
FAULT_OBSERVED_S = 5.0


def test_delivery_timeout_dead_letters_then_replay_delivers_all(fault_stack: Callable[..., FaultStack]) -> None:
    stack = fault_stack(f"delivery timeout ({DELIVERY_TIMEOUT_S:g}s) -> DLQ -> dlq replay",
                        delivery={"delivery_timeout_s": DELIVERY_TIMEOUT_S})
    worker = stack.worker()
    worker.wait_ready()
    stack.lp.set_faults(error_rate=1.0)
    truth = stack.generate(1500, bad_fraction=0.1)
    dlq_topic = f"{stack.topic}.dlq"
    dlq = read_topic(stack.bootstrap, dlq_topic, truth.produced, timeout_s=90)
    timed_out = [r for r in dlq if dict(r.headers)[STAGE_HEADER] == b"delivery"]
    ids = Counter(json.loads(r.value)["messageId"] for r in timed_out)
    assert set(ids) == set(truth.valid_ids), "every valid event, and only those, timed out into the DLQ"
    assert {dict(r.headers)[RULE_HEADER] for r in timed_out} == {b"delivery_timeout"}
    assert all(dict(r.headers)[MESSAGE_HEADER] for r in timed_out)
    assert stack.stored_count() == 0
    assert worker_healthy(worker)

    stack.lp.clear_faults()
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "dlq", "replay", "--topic", dlq_topic, "--stage", "delivery",
         "--bootstrap", stack.bootstrap],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    replay = json.loads(result.stdout.strip().splitlines()[-1])
    assert replay["replayed"] == len(timed_out), replay
    assert replay["skipped"] == replay["read"] - len(timed_out), "mapping/validation records are not replayed"
    stack.wait_delivered(truth, timeout_s=90)
    stack.audit(truth, survivors=[worker], extra_stages=("delivery",),
                notes={"timed_out": len(timed_out), "replayed": replay["replayed"]})
    assert worker.terminate() == 0


def test_invalid_tracking_id_is_a_configuration_fault_and_nothing_is_dead_lettered(
    fault_stack: Callable[..., FaultStack],
) -> None:
    stack = fault_stack("invalid tracking ID -> config fault; fixed worker delivers",
                        delivery={"config_fault_retry_s": 0.5})
    # Parked records cannot finish, so its SIGTERM drain always runs to the deadline: keep it short.
    wrong = stack.worker(tracking_id=WRONG_TRACKING_ID, delivery={"drain_timeout_s": 3.0})
    truth = stack.generate(1000, bad_fraction=0.0)

    def faulted() -> bool:
        try:
            status, body = wrong.probe("/readyz")
        except OSError:
            return False
        return status == 503 and bool(body.get("configuration_faults"))

    wait_for(faulted, 60, message=f"readiness reports the fault:\n{wrong.logs()[-3000:]}")
    deadline = time.monotonic() + FAULT_OBSERVED_S
    while time.monotonic() < deadline:  # it stays so: unready, alive, nothing dead-lettered
        assert faulted(), wrong.logs()[-3000:]
        assert worker_healthy(wrong), "alive: it waits for the fix, it does not crash"
        time.sleep(0.5)
    assert wrong.metric("clickstream_config_fault", topic=stack.topic) == 1
    assert wrong.metric("clickstream_events_dead_lettered_total") == 0
    assert read_topic(stack.bootstrap, f"{stack.topic}.dlq", 0, timeout_s=5) == []
    assert stack.stored_count() == 0
    lines = [json.loads(line) for line in wrong.log_path.read_text().splitlines() if line.startswith("{")]
    reported = [e for e in lines if "configuration fault" in e.get("event", "") and e.get("level") == "error"]
    assert len(reported) == 1, "one clear error, not one per batch"
    assert "tracking_id" in reported[0]["setting"]
    assert wrong.terminate() == 0

    fixed = stack.worker()
    fixed.wait_ready()
    stack.wait_delivered(truth, timeout_s=60)
    stack.audit(truth, survivors=[fixed])
    assert fixed.terminate() == 0
