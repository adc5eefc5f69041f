"""Personalize misbehaving under load: a throttling storm, a 5xx burst, slow answers.

Each fault is switched on through the local Personalize's ``POST /_local/faults`` while
paced generator load (with malformed records) flows, held for the issue's duration, then
cleared. The worker must stay alive throughout, retry rather than dead-letter (the
delivery budget is far longer than the fault), and end with the full audit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.audit import Truth, worker_healthy
from tests.faults.stack import FaultStack
from tests.integration.worker_support import WorkerProcess

pytestmark = pytest.mark.faults

#: Events/s. The storm's quota carries at most 2 x 10 events/s, so both rates are far above it;
#: the storm's is lower because every event produced during it is backlog to drain afterwards.
LOAD_RATE = 300.0
STORM_LOAD_RATE = 150.0
THROTTLE_STORM_S = 30.0
THROTTLE_RPS = 2
ERROR_BURST_S = 20.0
LATENCY_MS = 500
LATENCY_S = 12.0
AFTER_FAULT_S = 3.0  # load keeps flowing this long after the fault clears


def run_fault(stack: FaultStack, worker: WorkerProcess, faults: dict[str, Any], seconds: float,
              rate: float = LOAD_RATE) -> tuple[Truth, int]:
    """Load, then `faults` for `seconds` (worker probed every second), then load again.

    Returns what was produced and how many liveness probes failed during the fault.
    """
    load = stack.background_load(rate=rate, seconds=seconds + 60)
    stack.wait_stored(50, 30, "delivery before the fault")
    stack.lp.set_faults(**faults)
    unhealthy = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        unhealthy += not worker_healthy(worker)
        time.sleep(1.0)
    stack.lp.clear_faults()
    time.sleep(AFTER_FAULT_S)
    return load.finish(), unhealthy


def test_throttling_storm(fault_stack: Callable[..., FaultStack]) -> None:
    stack = fault_stack(f"throttling storm ({THROTTLE_RPS} rps for {THROTTLE_STORM_S:g}s)")
    worker = stack.worker()
    worker.wait_ready()
    truth, unhealthy = run_fault(stack, worker, {"throttle_rps": THROTTLE_RPS}, THROTTLE_STORM_S,
                                 rate=STORM_LOAD_RATE)
    throttled = worker.metric("clickstream_put_requests_total", api="PutEvents", outcome="throttled")
    stack.wait_delivered(truth, timeout_s=150)
    stack.audit(truth, survivors=[worker], notes={"worker_throttled_calls": throttled})
    assert unhealthy == 0, f"{unhealthy} failed liveness probes during the storm"
    assert stack.lp.stats()["throttled"] > THROTTLE_STORM_S, "the storm throttled (almost) nothing"
    assert throttled > 0, "the worker never saw a throttled call"
    assert worker.terminate() == 0


def test_server_error_burst(fault_stack: Callable[..., FaultStack]) -> None:
    stack = fault_stack(f"5xx burst (error_rate 1.0 for {ERROR_BURST_S:g}s)")
    worker = stack.worker()
    worker.wait_ready()
    truth, unhealthy = run_fault(stack, worker, {"error_rate": 1.0}, ERROR_BURST_S)
    retried = worker.metric("clickstream_put_requests_total", api="PutEvents", outcome="retryable_error")
    stack.wait_delivered(truth, timeout_s=150)
    stack.audit(truth, survivors=[worker], notes={"worker_5xx_calls": retried})
    assert unhealthy == 0, f"{unhealthy} failed liveness probes during the burst"
    assert stack.lp.stats()["injected_errors"] > ERROR_BURST_S
    assert retried > 0, "the worker never saw a 5xx"
    assert worker.terminate() == 0


def test_latency_500ms(fault_stack: Callable[..., FaultStack]) -> None:
    stack = fault_stack(f"latency {LATENCY_MS} ms ({LATENCY_S:g}s)")
    worker = stack.worker()
    worker.wait_ready()
    truth, unhealthy = run_fault(stack, worker, {"latency_ms": LATENCY_MS}, LATENCY_S)
    stack.wait_delivered(truth, timeout_s=120)
    calls = worker.metric("clickstream_put_latency_seconds_count", api="PutEvents")
    fast = worker.metric("clickstream_put_latency_seconds_bucket", api="PutEvents", le="0.5")
    stack.audit(truth, survivors=[worker], notes={"calls": calls, "calls_over_500ms": calls - fast})
    assert unhealthy == 0, f"{unhealthy} failed liveness probes while Personalize was slow"
    assert calls - fast > 0, "no call took 500 ms: the latency fault was not in effect"
    assert worker.terminate() == 0
