"""TokenBucket, Limiter and RateLimiterRegistry with a fake clock (plus real-time acquires)."""

from __future__ import annotations

import asyncio
import bisect
import io
import json
import random
import time

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from worker.ingest.quota_control import RateController
from worker.ingest.ratelimit import THROTTLE_LOG_EVERY_S, Limiter, RateLimiterRegistry, TokenBucket, default_burst
from worker.observe.logging import configure_logging


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


@pytest.fixture(autouse=True)
def _quiet_logs() -> None:
    """Limiter log lines go to a buffer: tests keep stdout clean."""
    configure_logging(json=True, stream=io.StringIO())


# -- TokenBucket: pacing -----------------------------------------------------------------------


def test_default_burst_is_a_tenth_of_the_rate_but_at_least_one() -> None:
    assert default_burst(1000) == 100
    assert default_burst(10) == 1
    assert default_burst(0.5) == 1
    assert TokenBucket(1000).burst == 100
    assert TokenBucket(2.5).burst == 1


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


@pytest.mark.parametrize(("rate", "seed"), [(1000, 1), (1000, 2), (10, 3), (2.5, 4), (3.5, 5)])
def test_long_run_never_exceeds_rate_plus_burst_per_second(rate: float, seed: int) -> None:
    """Greedy random callers for 10 s: any 1 s window holds at most rate + burst sends,
    and the limiter does not starve them either (the test fails both ways). 2.5/s is
    10 requests/s shared by 4 replicas: fractional rates pace exactly too."""
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
    assert len(in_horizon) >= rate * horizon * 0.98 - 1  # demand exceeded supply: near full use
    assert len(in_horizon) <= rate * horizon + bucket.burst + 1
    assert sends == sorted(sends)  # first come, first served


def test_a_rate_change_credits_the_past_at_the_old_rate() -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(10, clock=clock)  # burst: 1
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(0.1)  # balance -1
    clock.advance(0.05)  # half a token earned at 10/s: balance -0.5
    bucket.set_rate(100)
    assert bucket.rate == 100 and bucket.burst == 10  # the burst follows the rate
    assert bucket.reserve() == pytest.approx(1.5 / 100)  # the debt is repaid at the new rate


def test_a_lower_rate_caps_the_saved_burst() -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(1000, clock=clock)  # 100 tokens saved
    bucket.set_rate(20)  # burst 2
    waits = [bucket.reserve() for _ in range(3)]
    assert waits == pytest.approx([0.0, 0.0, 0.05])


def test_a_fixed_burst_stays_fixed() -> None:
    bucket = TokenBucket(100, burst=5)
    bucket.set_rate(1000, now=0.0)
    assert bucket.burst == 5


def test_refund_gives_a_reserved_token_back_and_drop_saved_forgets_the_burst() -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(10, burst=2, clock=clock)
    assert bucket.reserve() == 0.0
    bucket.refund()
    assert [bucket.reserve(), bucket.reserve()] == [0.0, 0.0]  # still two
    bucket.refund()
    bucket.refund()  # never above the burst
    assert [bucket.reserve(), bucket.reserve(), bucket.reserve()] == pytest.approx([0.0, 0.0, 0.1])
    clock.advance(5.0)
    bucket.drop_saved()
    assert bucket.reserve() == pytest.approx(0.1)


@pytest.mark.parametrize("kwargs", [{"rate": 0}, {"rate": -1}, {"rate": float("inf")}, {"rate": float("nan")},
                                    {"rate": 10, "burst": 0.5}, {"rate": 10, "burst": 11}])
def test_invalid_bucket(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TokenBucket(**kwargs)  # type: ignore[arg-type]


def test_set_rate_refuses_a_rate_that_cannot_pace() -> None:
    bucket = TokenBucket(10)
    for bad in (0.0, -3.0, float("inf")):
        with pytest.raises(ValueError):
            bucket.set_rate(bad)


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


# -- Limiter: the bucket at the controller's rate --------------------------------------------------


def _limiter(quota: float = 100.0, fraction: float = 1.0, clock: FakeClock | None = None) -> Limiter:
    clock = clock or FakeClock(0.0)
    return Limiter(("g", "PutEvents"), RateController(quota, fraction, now=clock.now), clock=clock)


def test_a_wait_tells_the_controller_there_is_a_backlog() -> None:
    clock = FakeClock(0.0)
    limiter = _limiter(100.0, 0.5, clock)
    assert limiter.rate == 50
    for _ in range(10):  # the burst (5) is used up, then callers wait: saturated
        limiter.reserve()
    limiter.on_throttled()  # at the share: 35/s
    assert limiter.rate == pytest.approx(35.0)
    seen = {}
    for step in range(1, 61):  # 100 calls/s against ~50/s for 6 s
        clock.advance(0.1)
        for _ in range(10):
            limiter.reserve()
        seen[step] = limiter.rate
    assert seen[15] == 50.0, "back at the share within 1.5 s"
    assert seen[39] == 50.0, "held at the share for 200 calls' worth (4 s at 50/s) after the throttle"
    assert seen[60] > 50.0, "then probing for quota others leave unused"


def test_without_a_backlog_the_rate_does_not_climb() -> None:
    clock = FakeClock(0.0)
    limiter = _limiter(100.0, 0.5, clock)
    for _ in range(100):  # one call every 0.1 s at 50/s: never a wait
        clock.advance(0.1)
        assert limiter.reserve() == 0.0
    assert limiter.rate == 50.0


def test_throttling_lowers_the_pacing_and_drops_the_saved_burst() -> None:
    clock = FakeClock(0.0)
    limiter = _limiter(100.0, 1.0, clock)
    clock.advance(1.0)  # 10 tokens saved
    limiter.on_throttled()
    assert limiter.rate == pytest.approx(70.0) and limiter.decreases == 1
    assert limiter.reserve() == pytest.approx(1 / 70)
    limiter.on_throttled()  # within the debounce: no second decrease
    assert limiter.decreases == 1


def test_throttle_logs_are_rate_limited(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    clock = FakeClock(0.0)
    limiter = _limiter(1000.0, 1.0, clock)
    for _ in range(25):  # a storm: a decrease every 0.5 s for 12 s
        limiter.on_throttled()
        clock.advance(0.5)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    lowered = [line for line in lines if line["event"] == "throttled by Personalize: rate lowered"]
    assert THROTTLE_LOG_EVERY_S == 10.0 and limiter.decreases == 25
    assert [line["decreases"] for line in lowered] == [1, 20]  # at 0 s, then at 10 s: the 20 since
    assert lowered[0]["group"] == "g" and lowered[0]["api"] == "PutEvents" and lowered[0]["rate"] == 700.0
    assert capsys.readouterr().out == ""


# -- RateLimiterRegistry ---------------------------------------------------------------------------


def test_registry_one_limiter_per_scope_and_api() -> None:
    clock = FakeClock()
    reg = RateLimiterRegistry({"PutEvents": 1000, "PutItems": 10, "PutUsers": 10}, clock=clock)
    events_a = reg.get("dsg-a", "PutEvents")
    assert reg.get("dsg-a", "PutEvents") is events_a
    items_a = reg.get("dsg-a", "PutItems")
    events_b = reg.get("dsg-b", "PutEvents")
    assert len({id(events_a), id(items_a), id(events_b)}) == 3
    assert (events_a.rate, items_a.rate, reg.get("dsg-a", "PutUsers").rate) == (1000, 10, 10)
    assert set(reg.limiters()) == {("dsg-a", "PutEvents"), ("dsg-a", "PutItems"), ("dsg-b", "PutEvents"),
                                   ("dsg-a", "PutUsers")}


def test_registry_group_quotas_override_the_default() -> None:
    reg = RateLimiterRegistry({"PutEvents": 1000, "PutItems": 10}, groups={"big": {"PutEvents": 2500}})
    assert reg.quota("big", "PutEvents") == 2500 and reg.quota("big", "PutItems") == 10
    assert reg.quota("other", "PutEvents") == 1000
    assert reg.get("big", "PutEvents").rate == 2500


def test_registry_limiters_are_isolated() -> None:
    clock = FakeClock()
    reg = RateLimiterRegistry({"PutItems": 10}, clock=clock)
    a, b = reg.get("a", "PutItems"), reg.get("b", "PutItems")
    a.on_throttled()
    assert a.rate == 7
    assert b.rate == 10
    assert a.reserve() > 0.0  # a's saved burst was dropped by the throttle
    assert b.reserve() == 0.0  # b's untouched


def test_shares_apply_to_existing_and_later_limiters() -> None:
    reg = RateLimiterRegistry({"PutEvents": 1000, "PutItems": 10}, clock=FakeClock())
    early = reg.get("g1", "PutEvents")
    assert early.rate == 1000, "before any assignment: the whole quota (a tool that sends without consuming)"
    reg.apply_shares({("g1", "PutEvents"): 0.25, ("g2", "PutItems"): 0.25})
    assert early.rate == 250 and early.controller.fraction == 0.25
    assert reg.get("g2", "PutItems").rate == 2.5  # created after the assignment: starts at its share
    unassigned = reg.get("g3", "PutEvents")
    assert unassigned.controller.fraction == 0.0 and unassigned.rate == 10.0  # no partitions: the floor
    reg.apply_shares({("g1", "PutEvents"): 1.0})
    assert early.rate == 1000 and reg.get("g2", "PutItems").controller.fraction == 0.0


def test_static_sharing_ignores_assignments() -> None:
    reg = RateLimiterRegistry({"PutEvents": 250}, sharing="static", clock=FakeClock())
    reg.apply_shares({("g", "PutEvents"): 0.5})
    limiter = reg.get("g", "PutEvents")
    assert limiter.rate == 250 and limiter.controller.fraction == 1.0
    assert limiter.controller.quota == 250, "static: the configured value is this replica's own ceiling"


def test_registry_rejects_unknown_api_and_bad_rates() -> None:
    reg = RateLimiterRegistry({"PutEvents": 1000})
    with pytest.raises(KeyError, match="PutActions"):
        reg.get("a", "PutActions")
    with pytest.raises(ValueError):
        RateLimiterRegistry({"PutEvents": 0})


def test_registry_exports_quota_share_and_rate_per_group() -> None:
    registry = CollectorRegistry()
    reg = RateLimiterRegistry({"PutEvents": 1000, "PutItems": 10}, clock=FakeClock(), registry=registry)
    reg.apply_shares({("shop", "PutEvents"): 0.5, ("shop", "PutItems"): 1 / 3})
    reg.get("shop", "PutEvents").on_throttled()
    samples = {(s.name, s.labels["group"], s.labels["api"]): s.value
               for family in text_string_to_metric_families(generate_latest(registry).decode())
               for s in family.samples}
    assert samples[("clickstream_quota_rps", "shop", "PutEvents")] == 1000
    assert samples[("clickstream_quota_partition_share", "shop", "PutItems")] == pytest.approx(1 / 3)
    assert samples[("clickstream_quota_rate_rps", "shop", "PutEvents")] == pytest.approx(350)
    assert samples[("clickstream_quota_rate_rps", "shop", "PutItems")] == pytest.approx(10 / 3)
    assert samples[("clickstream_quota_decreases_total", "shop", "PutEvents")] == 1
