"""Client-side pacing at the Personalize request quota, slowing down when throttled.

Personalize counts requests per second per dataset group (PutEvents 1000/s, PutItems
and PutUsers 10/s). Sending faster only buys ThrottlingExceptions, retries and latency,
so every call first takes a token from the bucket of its (scope, API).

The bucket hands out reservations: the balance may go negative and each caller is told
how long to wait for *its* token. Callers are therefore served in arrival order (no
thundering herd of sleepers re-checking the bucket) and the send times form a
conforming schedule: in any window of T seconds at most ``burst + rate * T`` requests go
out.

The quota can be lower than configured (shared dataset group, a limit not yet raised),
so the effective rate adapts, AIMD-style as in TCP: halve on throttling, creep back
linearly on success, never above the configured rate, never below a floor.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping

#: Default burst as a fraction of the rate. Small so that a full bucket plus one second
#: of refill stays close to the per-second quota (at most 10% over within one second).
DEFAULT_BURST_FRACTION = 0.1

#: One success after an idle gap counts as at most this much "time of successes", so a
#: lone request after a long pause cannot jump the rate back to full.
MAX_SUCCESS_CREDIT_S = 1.0


def default_burst(rate: float) -> float:
    """``max(1, rate * 0.1)``: one token is needed to send at all; 10% smooths jitter
    without a burst anywhere near a whole second's quota."""
    return max(1.0, rate * DEFAULT_BURST_FRACTION)


class TokenBucket:
    """Token bucket with reservations and an adaptive (AIMD) effective rate.

    `now` arguments default to `clock()`; tests pass a fake clock or explicit times.
    Not thread-safe: it belongs to the event loop.

    Throttling debounce: after a decrease, further throttles are ignored for
    ``max(decrease_window_s, 1 / new_effective_rate)``. Requests already in flight were
    paced at the old rate and their throttles arrive within about one round trip; they
    say nothing about the new rate. One second is the service's accounting window, so a
    burst of 50 concurrent throttles costs one halving, while throttling that persists
    past a window halves again (1000/s reaches the 5% floor after ~5 s of it).
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        min_rate_fraction: float = 0.05,
        decrease_factor: float = 0.5,
        recovery_per_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        decrease_window_s: float = 1.0,
    ) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive finite number, got {rate!r}")
        burst = default_burst(rate) if burst is None else float(burst)
        if not 1.0 <= burst <= max(1.0, rate):
            # A bucket that cannot hold one token never sends without waiting; one
            # larger than a second's quota would be throttled by design.
            raise ValueError(f"burst must be within [1, max(1, rate)], got {burst!r}")
        if not 0 < min_rate_fraction <= 1:
            raise ValueError("min_rate_fraction must be in (0, 1]")
        if not 0 < decrease_factor < 1:
            raise ValueError("decrease_factor must be in (0, 1)")
        recovery = rate / 10 if recovery_per_s is None else recovery_per_s
        if recovery <= 0:
            raise ValueError("recovery_per_s must be > 0")
        if decrease_window_s < 0:
            raise ValueError("decrease_window_s must be >= 0")
        self._rate = float(rate)
        self._burst = burst
        self._floor = self._rate * min_rate_fraction
        self._factor = decrease_factor
        self._recovery = float(recovery)
        self._window = decrease_window_s
        self._clock = clock
        self._effective = self._rate
        self._tokens = burst  # starts full
        self._updated: float | None = None  # refill time; set by the first call
        self._no_decrease_before = -math.inf
        self._recover_from: float | None = None

    @property
    def rate(self) -> float:
        """The configured rate (requests/s): the ceiling of `effective_rate`."""
        return self._rate

    @property
    def effective_rate(self) -> float:
        """The rate currently paced at, lowered by throttling."""
        return self._effective

    @property
    def burst(self) -> float:
        return self._burst

    @property
    def floor_rate(self) -> float:
        return self._floor

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def _refill(self, now: float) -> None:
        """Credit tokens at the current effective rate up to `now` (before any rate change,
        so each interval is credited at the rate that applied to it)."""
        if self._updated is None:
            self._updated = now
            return
        elapsed = now - self._updated
        if elapsed > 0:  # a clock that steps back credits nothing
            self._tokens = min(self._burst, self._tokens + elapsed * self._effective)
            self._updated = now

    def reserve(self, now: float | None = None) -> float:
        """Take one token and return how long to wait before sending (0.0 = now).

        The balance may go negative: later callers queue behind earlier ones, in order.
        """
        now = self._now(now)
        self._refill(now)
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._effective

    async def acquire(self) -> None:
        """Wait for a token (fair: reservations are served in call order).

        No wait, no yield: `asyncio.sleep(0)` per call costs a loop round trip for nothing.
        """
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)

    def on_throttled(self, now: float | None = None) -> None:
        """Multiplicative decrease (debounced, see the class doc), down to the floor.

        Saved-up burst is also dropped: the service just said we are over quota.
        """
        now = self._now(now)
        self._refill(now)
        if now < self._no_decrease_before:
            return
        self._effective = max(self._floor, self._effective * self._factor)
        self._tokens = min(self._tokens, 0.0)
        self._no_decrease_before = now + max(self._window, 1.0 / self._effective)
        self._recover_from = now

    def on_success(self, now: float | None = None) -> None:
        """Additive increase: `recovery_per_s` per second of successes, up to `rate`.

        Credit is by elapsed time, not per call, so 50 concurrent successes recover no
        faster than one; a single success after an idle gap counts for at most
        `MAX_SUCCESS_CREDIT_S`.
        """
        now = self._now(now)
        self._refill(now)
        if self._recover_from is None or self._effective >= self._rate:
            self._recover_from = now
            return
        elapsed = min(now - self._recover_from, MAX_SUCCESS_CREDIT_S)
        if elapsed > 0:
            self._effective = min(self._rate, self._effective + self._recovery * elapsed)
            self._recover_from = now


class RateLimiterRegistry:
    """One bucket per (scope, api) — scope is the dataset group (or tracking ID / dataset
    ARN when the group is unknown), because Personalize's quotas are per dataset group
    and per operation. Buckets are created on first use."""

    def __init__(self, rates: Mapping[str, float], clock: Callable[[], float] = time.monotonic) -> None:
        for api, rate in rates.items():
            if not rate > 0:
                raise ValueError(f"rate for {api} must be > 0, got {rate!r}")
        self._rates = dict(rates)
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def get(self, scope: str, api: str) -> TokenBucket:
        """The bucket for (scope, api). KeyError for an API without a configured rate."""
        key = (scope, api)
        bucket = self._buckets.get(key)
        if bucket is None:
            if api not in self._rates:
                raise KeyError(f"no rate configured for API {api!r}")
            bucket = self._buckets[key] = TokenBucket(self._rates[api], clock=self._clock)
        return bucket

    def buckets(self) -> dict[tuple[str, str], TokenBucket]:
        """A snapshot of the buckets created so far (for metrics: effective rates)."""
        return dict(self._buckets)
