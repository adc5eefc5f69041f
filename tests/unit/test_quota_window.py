"""CallWindow: the calls in flight of one process, shared by lanes (no waiting) and retries (waiting)."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import pytest

from worker.ingest.grouping import Batch
from worker.ingest.lanes import Lane
from worker.ingest.quota_control import RateController
from worker.ingest.ratelimit import Limiter
from worker.ingest.send_queue import SendQueue
from worker.ingest.window import CallWindow
from worker.observe.logging import configure_logging
from worker.records import SourceRef


@pytest.fixture(autouse=True)
def _quiet_logs() -> None:
    configure_logging(json=True, stream=io.StringIO())


def test_slots_are_taken_and_given_back() -> None:
    window = CallWindow(2)
    assert window.try_take() and window.try_take()
    assert not window.try_take() and not window.free() and window.in_flight == 2
    window.give_back()
    assert window.free() and window.in_flight == 1
    window.give_back()
    window.give_back()  # never above the size
    assert window.in_flight == 0
    with pytest.raises(ValueError):
        CallWindow(0)


def test_a_returned_slot_goes_to_a_waiting_retry_before_the_lanes() -> None:
    async def scenario() -> list[str]:
        window = CallWindow(1)
        order: list[str] = []
        assert window.try_take()
        window.notify_when_free(lambda: order.append("lane"))

        async def retry() -> None:
            await window.take()
            order.append("retry")

        task = asyncio.create_task(retry())
        await asyncio.sleep(0)
        window.give_back()  # to the retry: the lane is not told
        await task
        window.give_back()  # now free: the lane is told
        return order

    assert asyncio.run(scenario()) == ["retry", "lane"]


def test_waiting_lanes_are_told_in_turn_while_a_slot_is_free() -> None:
    window = CallWindow(2)
    assert window.try_take() and window.try_take()
    told: list[str] = []
    window.notify_when_free(lambda: told.append("idle"))  # has nothing to send: leaves the slot
    window.notify_when_free(lambda: (told.append("busy"), window.try_take()))
    window.notify_when_free(lambda: told.append("late"))
    window.give_back()
    assert told == ["idle", "busy"], "the slot went on to the next lane; the third waits for the next one"
    window.give_back()
    assert told == ["idle", "busy", "late"]


def test_a_cancelled_retry_does_not_lose_a_slot() -> None:
    async def scenario() -> int:
        window = CallWindow(1)
        window.try_take()
        task = asyncio.create_task(window.take())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        window.give_back()
        return window.in_flight

    assert asyncio.run(scenario()) == 0


def test_a_lane_held_up_by_the_window_takes_no_token_and_keeps_filling() -> None:
    """All slots busy: the lane waits for one without reserving tokens (no false backlog for the
    rate controller), and the batch it sends when a slot frees holds what arrived meanwhile."""
    class CountingLimiter(Limiter):
        reserved = 0

        def reserve(self, now: float | None = None) -> float:
            self.reserved += 1
            return super().reserve(now)

    async def scenario() -> tuple[list[int], int]:
        window = CallWindow(1)
        limiter = CountingLimiter(("g", "PutEvents"), RateController(1000.0, 1.0, now=time.monotonic()))
        sent: list[Batch[Any, Any]] = []
        release = asyncio.Event()

        def dispatch(batch: Batch[Any, Any]) -> asyncio.Task[None]:
            sent.append(batch)

            async def call() -> None:
                await release.wait()
                window.give_back()

            return asyncio.get_running_loop().create_task(call())

        lane = Lane(("g", "PutEvents"), SendQueue(linger_s=0.0, max_wait_s=1.0), limiter, dispatch, window=window)
        now = time.monotonic()
        lane.add("a", 0, SourceRef("t", 0, 0), now)
        await asyncio.sleep(0.01)
        for n in range(1, 6):
            lane.add("b", n, SourceRef("t", 0, n), time.monotonic())
            await asyncio.sleep(0.01)
        reserved_while_held = limiter.reserved
        release.set()
        await asyncio.sleep(0.02)
        return [len(b.entries) for b in sent], reserved_while_held

    sizes, reserved_while_held = asyncio.run(scenario())
    assert sizes == [1, 5]
    assert reserved_while_held == 1, "one token (for the first batch); none while the window was the limit"
