"""Workers dying, draining and churning in a consumer group while load flows.

SIGKILL gives a worker no chance to commit or flush: whatever it had consumed but not
finished must be redelivered to the survivor and deduplicated by eventId. SIGTERM must
drain (finish, dead-letter, commit) within `delivery.drain_timeout_s` and exit 0. A third
worker joining and leaving forces rebalances that revoke partitions with work in flight.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from tests.faults.audit import worker_healthy
from tests.faults.stack import FaultStack
from tests.integration.worker_support import WorkerProcess, wait_for

pytestmark = pytest.mark.faults

PARTITIONS = 6
LOAD_RATE = 400.0
DRAIN_TIMEOUT_S = 20.0  # write_config's delivery.drain_timeout_s
KILLS = 3
CHURN_CYCLES = 3


def consumed(worker: WorkerProcess) -> float:
    return worker.metric("clickstream_events_consumed_total")


def wait_working(worker: WorkerProcess, at_least: float = 200) -> None:
    """Until the worker has consumed records (so what happens to it next happens mid-work)."""
    wait_for(lambda: consumed(worker) >= at_least, 45, message=f"worker consumed nothing:\n{worker.logs()[-2000:]}")


def log_events(worker: WorkerProcess) -> list[str]:
    """The `event` of every JSON log line (the whole file: `logs()` keeps only its tail)."""
    lines = worker.log_path.read_text(errors="replace").splitlines()
    return [json.loads(line).get("event", "") for line in lines if line.startswith("{")]


def test_sigkill_one_of_two_workers_three_times_then_sigterm_drain(fault_stack: Callable[..., FaultStack]) -> None:
    stack = fault_stack(f"SIGKILL 1 of 2 workers x{KILLS}, then SIGTERM drain", partitions=PARTITIONS)
    survivor, victim = stack.worker(), stack.worker()
    survivor.wait_ready()
    victim.wait_ready()
    load = stack.background_load(rate=LOAD_RATE, seconds=180)
    for _ in range(KILLS):
        wait_working(victim)
        victim.kill()  # SIGKILL by PID
        assert worker_healthy(survivor), survivor.logs()[-3000:]
        victim = stack.worker()
        victim.wait_ready(timeout_s=60)
    wait_working(victim)
    started = time.monotonic()
    code = victim.terminate(timeout_s=DRAIN_TIMEOUT_S + 20)
    took = time.monotonic() - started
    events = log_events(victim)
    assert code == 0, victim.logs()[-3000:]
    assert took < DRAIN_TIMEOUT_S + 5, f"SIGTERM took {took:.1f}s"
    assert "drained: all in-flight records finished and committed" in events, victim.logs()[-3000:]
    time.sleep(2.0)  # load goes on; the survivor takes the drained worker's partitions
    truth = load.finish()
    stack.wait_delivered(truth, timeout_s=120)
    stack.audit(truth, survivors=[survivor], notes={"sigkills": KILLS, "sigterm_seconds": round(took, 2)})
    assert survivor.terminate() == 0


def test_rebalance_churn_third_worker_joins_and_leaves(fault_stack: Callable[..., FaultStack]) -> None:
    stack = fault_stack(f"rebalance churn: 3rd worker joins+leaves x{CHURN_CYCLES}", partitions=PARTITIONS)
    a, b = stack.worker(), stack.worker()
    a.wait_ready()
    b.wait_ready()
    load = stack.background_load(rate=LOAD_RATE, seconds=180)
    rebalances = a.metric("clickstream_rebalances_total")

    def held() -> float:
        return a.metric("clickstream_partitions_assigned") + b.metric("clickstream_partitions_assigned")

    for _ in range(CHURN_CYCLES):
        c = stack.worker()
        c.wait_ready(timeout_s=60)  # joined: it owns partitions now
        wait_working(c, at_least=50)
        assert c.terminate() == 0, c.logs()[-3000:]
        wait_for(lambda: held() == PARTITIONS, 45, message="the two remaining workers own every partition")
    truth = load.finish()
    stack.wait_delivered(truth, timeout_s=120)
    churn = a.metric("clickstream_rebalances_total") - rebalances
    stack.audit(truth, survivors=[a, b], notes={"cycles": CHURN_CYCLES, "rebalances_seen_by_a": churn})
    assert churn >= CHURN_CYCLES, f"worker a saw only {churn} rebalances"
    assert a.terminate() == 0
    assert b.terminate() == 0
