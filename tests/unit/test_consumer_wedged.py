"""A Kafka consumer wedged inside poll() fails liveness and stops the worker with exit code 3.

Observed with the embedded Tansu broker: a member leaving in the middle of a rebalance left the
other members' JoinGroup unanswered, and kafka-python's poll() blocked for good (minutes, until
the run was killed) - the worker stayed "alive", consumed nothing and said nothing. A wedged
client cannot be produced on demand, so `Stuck` below stands in for the consumer thread: it
reports how long its loop has not come round, which is all the worker reads.
"""

from __future__ import annotations

import asyncio
import time

from worker.app import EXIT_CONSUMER_WEDGED, Worker
from worker.config import WorkerSettings


class Stuck:
    fatal_error = None

    def __init__(self, blocked_s: float) -> None:
        self._since = time.monotonic() - blocked_s

    def blocked_s(self, now: float) -> float:
        return now - self._since

    def is_alive(self) -> bool:
        return True


def _worker() -> Worker:
    settings = WorkerSettings.model_validate({
        "topics": [{"name": "clicks", "dataset_type": "interactions", "tracking_id": "t"}],
        "kafka": {"max_poll_interval_ms": 10_000, "session_timeout_ms": 6_000},
    })
    return Worker(settings, handle_signals=False)


def test_the_limit_is_longer_than_any_legitimate_rebalance() -> None:
    assert _worker().consumer_blocked_limit_s() == 10 + 6 + 30


def test_a_long_but_legitimate_rebalance_stays_live() -> None:
    worker = _worker()
    worker._consumer = Stuck(40.0)  # type: ignore[assignment]
    alive, details = worker.liveness()
    assert alive and details["consumer_ok"] and details["consumer_blocked_s"] >= 40


def test_a_wedged_consumer_fails_liveness_and_stops_the_worker() -> None:
    worker = _worker()
    worker._consumer = Stuck(47.0)  # type: ignore[assignment]
    alive, details = worker.liveness()
    assert not alive and not details["consumer_ok"]

    async def wait() -> None:
        await asyncio.wait_for(worker._wait_for_stop(worker._consumer), timeout=5)  # type: ignore[arg-type]

    asyncio.run(wait())
    assert worker.exit_code == EXIT_CONSUMER_WEDGED == 3
