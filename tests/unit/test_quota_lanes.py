"""Lane: a send queue driven by its limiter on a real event loop (timers, tokens, ordered keys)."""

from __future__ import annotations

import asyncio
import io
import itertools
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


class Dispatcher:
    """Records each dispatched batch; its delivery ends when `release` is set (or at once)."""

    def __init__(self, hold: bool = False, expect: int = 0) -> None:
        self.batches: list[Batch[Any, Any]] = []
        self.release = asyncio.Event()
        self.all_sent = asyncio.Event()  # `expect` batches were dispatched
        self._expect = expect
        if not hold:
            self.release.set()

    def __call__(self, batch: Batch[Any, Any]) -> asyncio.Task[None]:
        self.batches.append(batch)
        if len(self.batches) == self._expect:
            self.all_sent.set()
        return asyncio.get_running_loop().create_task(self.release.wait())  # type: ignore[arg-type]

    def sizes(self) -> list[tuple[Any, int]]:
        return [(b.key, len(b.entries)) for b in self.batches]


def src(n: int) -> SourceRef:
    return SourceRef("t", 0, n)


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_records_of_one_loop_turn_reach_their_batch_before_anything_is_sent() -> None:
    async def scenario() -> Dispatcher:
        sent = Dispatcher()
        lane = Lane(("g", "PutEvents"), SendQueue(linger_s=0.0, max_wait_s=1.0), None, sent)
        now = time.monotonic()
        for n in range(12):  # ten fill a batch; two more open the next; linger 0
            lane.add("s", n, src(n), now)
        assert sent.batches == [], "never dispatched inside add"
        await turns()
        return sent

    assert asyncio.run(scenario()).sizes() == [("s", 10), ("s", 2)]


def test_a_batch_waiting_for_its_token_keeps_filling() -> None:
    """20 requests/s, burst 2: the third batch waits ~50 ms for a token and takes what arrived meanwhile."""
    async def scenario() -> Dispatcher:
        sent = Dispatcher()
        limiter = Limiter(("g", "PutEvents"), RateController(20.0, 1.0, now=time.monotonic()))
        lane = Lane(("g", "PutEvents"), SendQueue(linger_s=0.0, max_wait_s=1.0), limiter, sent)
        now = time.monotonic()
        for n, key in enumerate(("a", "b", "c")):
            lane.add(key, n, src(n), now)
        await turns()
        assert sent.sizes() == [("a", 1), ("b", 1)], "the burst: two tokens at once"
        for n in range(3, 7):
            lane.add("c", n, src(n), time.monotonic())
        await asyncio.sleep(0.12)
        return sent

    assert asyncio.run(scenario()).sizes() == [("a", 1), ("b", 1), ("c", 5)]


def test_the_pace_is_the_limiters() -> None:
    async def scenario() -> tuple[Dispatcher, float]:
        sent = Dispatcher(expect=10)
        limiter = Limiter(("g", "PutEvents"), RateController(50.0, 1.0, now=time.monotonic()))
        lane = Lane(("g", "PutEvents"), SendQueue(linger_s=0.0, max_wait_s=1.0), limiter, sent)
        started = time.monotonic()
        for n in range(100):  # ten full batches at once
            lane.add("s", n, src(n), started)
        await asyncio.wait_for(sent.all_sent.wait(), timeout=5.0)
        return sent, time.monotonic() - started

    sent, elapsed = asyncio.run(scenario())
    assert sent.sizes() == [("s", 10)] * 10
    assert elapsed >= (10 - 5) / 50 * 0.95, "a burst of 5, then one every 20 ms"


def test_an_ordered_lane_sends_a_keys_next_batch_only_after_the_last_one_ended() -> None:
    async def scenario() -> tuple[list[tuple[Any, int]], list[tuple[Any, int]]]:
        sent = Dispatcher(hold=True)
        lane = Lane(("g", "PutItems"), SendQueue(linger_s=0.0, max_wait_s=1.0, ordered=True), None, sent)
        now = time.monotonic()
        for n in range(15):
            lane.add("items", n, src(n), now, coalesce_id=str(n))
        await turns()
        during = sent.sizes()
        sent.release.set()
        await turns(20)
        return during, sent.sizes()

    during, after = asyncio.run(scenario())
    assert during == [("items", 10)]
    assert after == [("items", 10), ("items", 5)]


def test_flush_sends_what_lingers_and_close_stops_the_timer() -> None:
    async def scenario() -> tuple[int, int]:
        sent = Dispatcher()
        lane = Lane(("g", "PutEvents"), SendQueue(linger_s=30.0, max_wait_s=60.0), None, sent)
        lane.add("a", 0, src(0), time.monotonic())
        await turns()
        assert sent.batches == [] and len(lane) == 1
        lane.flush()
        await turns()
        flushed = len(sent.batches)
        other = Lane(("g2", "PutEvents"), SendQueue(linger_s=0.02, max_wait_s=1.0), None, sent)
        other.add("b", 1, src(1), time.monotonic())
        other.close()
        await asyncio.sleep(0.05)
        return flushed, len(sent.batches)

    assert asyncio.run(scenario()) == (1, 1)


def test_retries_take_their_turn_from_the_lane_before_new_batches_at_the_rate_of_the_moment() -> None:
    """Retries do not keep reservations made before a decrease: each turn is paced when handed out."""
    async def scenario() -> tuple[list[str], list[float]]:
        sent = Dispatcher()
        limiter = Limiter(("g", "PutEvents"), RateController(40.0, 1.0, now=time.monotonic()))
        window = CallWindow(64)
        lane = Lane(("g", "PutEvents"), SendQueue(linger_s=0.0, max_wait_s=1.0), limiter, sent, window=window)
        order: list[str] = []
        granted: list[float] = []

        async def retry(n: int) -> None:
            assert await limiter.turn(), "a lane is attached: it hands over token and slot"
            granted.append(time.monotonic())
            order.append(f"retry{n}")
            window.give_back()

        for _ in range(4):  # the burst (4 tokens at 40/s) is used up first
            limiter.reserve()
        lane.add("new", 0, src(0), time.monotonic())
        retries = [asyncio.create_task(retry(n)) for n in range(6)]
        await asyncio.sleep(0.06)
        limiter.on_throttled(sent_at=time.monotonic())  # 40/s -> 28/s while they wait
        await asyncio.gather(*retries)
        await asyncio.sleep(0.1)  # the new batch's token: one spacing after the last retry
        order.extend(f"batch:{b.key}" for b in sent.batches)
        return order, granted

    order, granted = asyncio.run(scenario())
    assert order == [f"retry{n}" for n in range(6)] + ["batch:new"], "retries first, in order"
    gaps = [b - a for a, b in itertools.pairwise(granted[2:])]
    assert min(gaps) >= 1 / 28 * 0.9, "after the decrease every turn is spaced at the new rate"
