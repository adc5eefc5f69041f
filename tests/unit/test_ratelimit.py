"""TokenBucket and RateLimiterRegistry with a fake clock (plus one real-time acquire)."""

from __future__ import annotations

import asyncio
import bisect
import random
import time

import pytest

from worker.ingest.ratelimit import RateLimiterRegistry, TokenBucket, default_burst


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The largest number of send times in any closed window of `window` seconds."""
    times = sorted(times)
    return max(bisect.bisect_right(times, t + window) - i for i, t in enumerate(times))


def test_default_burst_is_a_tenth_of_the_rate_but_at_least_one() -> None:
    assert default_burst(1000) == 100
    assert default_burst(10) == 1
    assert default_burst(0.5) == 1
    assert TokenBucket(1000).burst == 100
    assert TokenBucket(10).burst == 1


def test_burst_then_paced_in_call_order() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=3, clock=clock)
    waits = [bucket.reserve() for _ in range(8)]
    # Three immediate, then one every 1/rate, queued fairly behind each other.
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


def test_explicit_now_overrides_the_clock() -> None:
    bucket = TokenBucket(10, burst=1, clock=lambda: pytest.fail("clock must not be read"))
    assert bucket.reserve(5.0) == 0.0
    assert bucket.reserve(5.0) == pytest.approx(0.1)
    # By 5.15 the debt (-1 token) is repaid and half a token saved: half the spacing left.
    assert bucket.reserve(5.15) == pytest.approx(0.05)
    assert bucket.reserve(9.0) == 0.0  # refilled, but only up to burst = 1
    assert bucket.reserve(9.0) == pytest.approx(0.1)


def test_tokens_refill_up_to_burst_only() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, burst=5, clock=clock)
    bucket.reserve()
    clock.advance(3600)  # an hour idle saves no more than `burst`
    waits = [bucket.reserve() for _ in range(7)]
    assert waits[:5] == [0.0] * 5
    assert waits[5:] == pytest.approx([0.01, 0.02])


def test_clock_going_backwards_credits_nothing() -> None:
    bucket = TokenBucket(10, burst=1)
    assert bucket.reserve(50.0) == 0.0
    assert bucket.reserve(40.0) > 0.0  # no refill for negative time
    assert bucket.reserve(50.0) > 0.0


@pytest.mark.parametrize(("rate", "seed"), [(1000, 1), (1000, 2), (10, 3), (10, 4), (3.5, 5)])
def test_long_run_never_exceeds_rate_plus_burst_per_second(rate: float, seed: int) -> None:
    """Greedy random callers for 10 s: any 1 s window holds at most rate + burst sends,
    and the limiter does not starve them either (the test fails both ways)."""
    rng = random.Random(seed)
    clock = FakeClock(0.0)
    bucket = TokenBucket(rate, clock=clock)
    sends: list[float] = []
    horizon = 10.0
    while clock.now < horizon:
        # Bursty arrivals at about 3x the rate.
        for _ in range(rng.choice((0, 1, 1, 2, 10))):
            sends.append(clock.now + bucket.reserve())
        clock.advance(rng.expovariate(rate * 3 / 2.8))
    in_horizon = [s for s in sends if s <= horizon]
    assert max_in_window(sends) <= rate + bucket.burst + 1e-9
    assert len(in_horizon) >= rate * horizon * 0.98  # demand exceeded supply: near full use
    assert len(in_horizon) <= rate * horizon + bucket.burst + 1
    assert sends == sorted(sends)  # first come, first served


def test_throttle_halves_and_a_burst_of_throttles_counts_once() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, clock=clock)
    for _ in range(50):  # 50 concurrent requests all throttled within 0.2 s
        bucket.on_throttled()
        clock.advance(0.004)
    assert bucket.effective_rate == 500
    clock.advance(1.0)  # throttling persists beyond the debounce window
    bucket.on_throttled()
    assert bucket.effective_rate == 250
    assert bucket.rate == 1000


def test_throttle_decreases_to_the_floor_and_no_further() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, min_rate_fraction=0.05)
    rates = []
    for _ in range(12):
        bucket.on_throttled()
        rates.append(bucket.effective_rate)
        clock.advance(30.0)
    assert rates[:5] == pytest.approx([5, 2.5, 1.25, 0.625, 0.5])
    assert rates[4:] == pytest.approx([0.5] * 8)
    assert bucket.floor_rate == pytest.approx(0.5)


def test_debounce_is_longer_at_low_rates() -> None:
    """At 0.5/s the next paced request is 2 s away; a throttle before then is stale news."""
    clock = FakeClock()
    bucket = TokenBucket(1, burst=1, clock=clock, min_rate_fraction=0.1)
    bucket.on_throttled()
    assert bucket.effective_rate == 0.5
    clock.advance(1.5)
    bucket.on_throttled()
    assert bucket.effective_rate == 0.5
    clock.advance(0.5)
    bucket.on_throttled()
    assert bucket.effective_rate == 0.25


def test_throttle_slows_the_pacing_and_drops_saved_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, burst=10, clock=clock)
    bucket.reserve()
    clock.advance(1.0)  # bucket full again
    bucket.on_throttled()
    waits = [bucket.reserve() for _ in range(3)]
    assert waits == pytest.approx([0.02, 0.04, 0.06])  # 50/s, no burst


def test_recovery_is_additive_time_based_and_capped_at_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, clock=clock)
    for _ in range(10):
        clock.advance(5.0)
        bucket.on_throttled()
    assert bucket.effective_rate == pytest.approx(5.0)  # floor
    history = []
    for _ in range(120):  # 12 s of steady successes, 10 per 0.1 s
        for _ in range(10):
            bucket.on_success()
        history.append(bucket.effective_rate)
        clock.advance(0.1)
    # +10/s per second (rate/10): floor to full in 9.5 s, concurrency does not speed it up.
    assert history[10] == pytest.approx(5.0 + 10.0 * 1.0)
    assert history[50] == pytest.approx(5.0 + 10.0 * 5.0)
    assert history == sorted(history)
    assert history[94] == pytest.approx(99.0)
    assert history[95] == pytest.approx(100.0)
    assert history[96:] == [100.0] * 24  # never above the configured rate


def test_recovery_starts_at_the_throttle_not_before() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, clock=clock, recovery_per_s=20)
    bucket.on_success()
    clock.advance(0.9)
    bucket.on_throttled()
    assert bucket.effective_rate == 50
    bucket.on_success()  # no time of success has passed since the throttle
    assert bucket.effective_rate == 50
    clock.advance(0.5)
    bucket.on_success()
    assert bucket.effective_rate == pytest.approx(60)


def test_one_success_after_an_idle_gap_counts_for_at_most_one_second() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, clock=clock)
    bucket.on_throttled()
    assert bucket.effective_rate == 50
    clock.advance(600.0)
    bucket.on_success()
    assert bucket.effective_rate == pytest.approx(60)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0},
        {"rate": -1},
        {"rate": float("inf")},
        {"rate": 10, "burst": 0.5},
        {"rate": 10, "burst": 11},
        {"rate": 10, "min_rate_fraction": 0},
        {"rate": 10, "min_rate_fraction": 1.5},
        {"rate": 10, "decrease_factor": 1},
        {"rate": 10, "decrease_factor": 0},
        {"rate": 10, "recovery_per_s": 0},
        {"rate": 10, "decrease_window_s": -1},
    ],
)
def test_invalid_configuration(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TokenBucket(**kwargs)  # type: ignore[arg-type]


def test_acquire_sleeps_for_the_reserved_time() -> None:
    """Real event loop, real clock: 21 acquires at 200/s with burst 1 take >= 0.1 s."""
    bucket = TokenBucket(200, burst=1)

    async def run() -> float:
        started = time.monotonic()
        await asyncio.gather(*(bucket.acquire() for _ in range(21)))
        return time.monotonic() - started

    elapsed = asyncio.run(run())
    assert 0.095 <= elapsed < 1.0


def test_acquire_serves_waiters_in_call_order() -> None:
    bucket = TokenBucket(500, burst=1)
    finished: list[int] = []

    async def one(i: int) -> None:
        await bucket.acquire()
        finished.append(i)

    async def run() -> None:
        await asyncio.gather(*(one(i) for i in range(20)))

    asyncio.run(run())
    assert finished == list(range(20))


def test_registry_one_bucket_per_scope_and_api() -> None:
    clock = FakeClock()
    reg = RateLimiterRegistry({"PutEvents": 1000, "PutItems": 10, "PutUsers": 10}, clock=clock)
    events_a = reg.get("dsg-a", "PutEvents")
    assert reg.get("dsg-a", "PutEvents") is events_a
    items_a = reg.get("dsg-a", "PutItems")
    events_b = reg.get("dsg-b", "PutEvents")
    assert len({id(events_a), id(items_a), id(events_b)}) == 3
    assert (events_a.rate, items_a.rate, reg.get("dsg-a", "PutUsers").rate) == (1000, 10, 10)
    assert set(reg.buckets()) == {
        ("dsg-a", "PutEvents"),
        ("dsg-a", "PutItems"),
        ("dsg-b", "PutEvents"),
        ("dsg-a", "PutUsers"),
    }


def test_registry_buckets_are_isolated() -> None:
    clock = FakeClock()
    reg = RateLimiterRegistry({"PutItems": 10}, clock=clock)
    a, b = reg.get("a", "PutItems"), reg.get("b", "PutItems")
    a.on_throttled()
    assert a.effective_rate == 5
    assert b.effective_rate == 10
    assert a.reserve() > 0.0  # a's saved burst was dropped by the throttle
    assert b.reserve() == 0.0  # b's untouched
    assert clock() == 100.0  # buckets share the registry's clock


def test_registry_rejects_unknown_api_and_bad_rates() -> None:
    reg = RateLimiterRegistry({"PutEvents": 1000})
    with pytest.raises(KeyError, match="PutActions"):
        reg.get("a", "PutActions")
    with pytest.raises(ValueError):
        RateLimiterRegistry({"PutEvents": 0})
