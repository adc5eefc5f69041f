"""Client-side pacing at this replica's share of each dataset group's Personalize quota.

Personalize counts requests per second per dataset group and operation (PutEvents 1000/s,
PutItems and PutUsers 10/s; PutActions and PutActionInteractions publish none and are paced
like PutItems). Sending faster only buys ThrottlingExceptions, retries and latency, so
every call first takes a token from the `Limiter` of its (scope, API): a token bucket
(`TokenBucket`, the pacing) whose rate a `RateController` sets (the policy: this replica's
share of the quota, then AIMD; see `quota_control`).

The bucket hands out reservations: the balance may go negative and each caller is told
how long to wait for *its* token. Callers are therefore served in arrival order (no
thundering herd of sleepers re-checking the bucket) and the send times form a
conforming schedule: in any window of T seconds at most ``burst + rate * T`` requests go
out. A caller that has to wait is the controller's signal that there is more work than
the rate lets through (the only time probing upward is worth it).

`RateLimiterRegistry` holds one limiter per (scope, API) and applies the partition shares
a rebalance produces (`quota_share`) to them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Literal

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from worker.ingest.quota_control import ControlParams, RateController
from worker.ingest.quota_share import LaneKey

log = structlog.get_logger(__name__)

#: Default burst as a fraction of the rate. Small so that a full bucket plus one second
#: of refill stays close to the per-second quota (at most 10% over within one second).
DEFAULT_BURST_FRACTION = 0.1

#: At most one "rate lowered" log line per limiter in this many seconds (a storm would
#: otherwise log every second for every dataset group).
THROTTLE_LOG_EVERY_S = 10.0

Sharing = Literal["partitions", "static"]


def default_burst(rate: float) -> float:
    """``max(1, rate * 0.1)``: one token is needed to send at all; 10% smooths jitter
    without a burst anywhere near a whole second's quota."""
    return max(1.0, rate * DEFAULT_BURST_FRACTION)


class TokenBucket:
    """Token bucket with reservations and a rate that can change (see the module docstring).

    `now` arguments default to `clock()`; tests pass a fake clock or explicit times.
    With `burst` None the burst follows the rate (`default_burst`). Not thread-safe: it
    belongs to the event loop.
    """

    def __init__(self, rate: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        _check_rate(rate)
        self._auto_burst = burst is None
        self._rate = float(rate)
        self._burst = default_burst(rate) if burst is None else float(burst)
        if not 1.0 <= self._burst <= max(1.0, rate):
            # A bucket that cannot hold one token never sends without waiting; one
            # larger than a second's quota would be throttled by design.
            raise ValueError(f"burst must be within [1, max(1, rate)], got {burst!r}")
        self._clock = clock
        self._tokens = self._burst  # starts full
        self._updated: float | None = None  # refill time; set by the first call

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def _refill(self, now: float) -> None:
        """Credit tokens at the current rate up to `now` (before any rate change, so each
        interval is credited at the rate that applied to it)."""
        if self._updated is None:
            self._updated = now
            return
        elapsed = now - self._updated
        if elapsed > 0:  # a clock that steps back credits nothing
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
            self._updated = now

    def set_rate(self, rate: float, now: float | None = None) -> None:
        """Pace at `rate` from `now` on (tokens up to `now` are credited at the old rate)."""
        if rate == self._rate:
            return
        _check_rate(rate)
        self._refill(self._now(now))
        self._rate = float(rate)
        if self._auto_burst:
            self._burst = default_burst(rate)
            self._tokens = min(self._tokens, self._burst)

    def reserve(self, now: float | None = None) -> float:
        """Take one token and return how long to wait before sending (0.0 = now).

        The balance may go negative: later callers queue behind earlier ones, in order.
        """
        self._refill(self._now(now))
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate

    def refund(self, now: float | None = None) -> None:
        """Give back a reserved token that was not used (nothing was left to send)."""
        self._refill(self._now(now))
        self._tokens = min(self._burst, self._tokens + 1.0)

    def drop_saved(self, now: float | None = None) -> None:
        """Forget saved-up burst: the service just said we are over its quota."""
        self._refill(self._now(now))
        self._tokens = min(self._tokens, 0.0)

    async def acquire(self) -> None:
        """Wait for a token (fair: reservations are served in call order).

        No wait, no yield: `asyncio.sleep(0)` per call costs a loop round trip for nothing.
        """
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)


class Limiter:
    """The pacing of one (scope, API) on this replica: a bucket at the controller's rate."""

    def __init__(self, key: LaneKey, controller: RateController, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.key = key
        self.controller = controller
        self._clock = clock
        self.bucket = TokenBucket(controller.rate, clock=clock)
        self.decreases = 0
        self._logged_at = -math.inf
        self._unlogged = 0
        self._turns: deque[asyncio.Future[None]] = deque()
        self._lane: Callable[[], None] | None = None

    @property
    def rate(self) -> float:
        """The rate paced at, as of the last call (the scrape thread reads this)."""
        return self.bucket.rate

    def _sync(self, now: float) -> None:
        self.bucket.set_rate(self.controller.rate_at(now), now)

    def reserve(self, now: float | None = None) -> float:
        """Take one token; how long to wait for it. A wait tells the controller that there
        is more work than the rate lets through."""
        now = self._clock() if now is None else now
        self._sync(now)
        delay = self.bucket.reserve(now)
        if delay > 0:
            self.controller.on_saturated(now)
        return delay

    def refund(self, now: float | None = None) -> None:
        self.bucket.refund(self._clock() if now is None else now)

    async def acquire(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)

    # -- retries take their turn from the lane ----------------------------------------------

    def attach(self, kick: Callable[[], None]) -> None:
        """The lane of this scope hands out its tokens from now on; `kick` tells it a retry waits.

        One token at a time, at the rate of the moment: a retry that reserved its token on its
        own would keep a schedule made at the rate before a decrease, and a storm's first second
        of retries would go out at the old rate all over again."""
        self._lane = kick

    async def turn(self) -> bool:
        """A retry's next call. With a lane attached, wait until it hands over a token and a window
        slot (True). Without, take a token here (False: the caller takes its own slot)."""
        if self._lane is None:
            await self.acquire()
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._turns.append(future)
        self._lane()
        await future
        return True

    def waiting(self) -> bool:
        """Whether a retry waits for its turn."""
        while self._turns and self._turns[0].done():  # cancelled while waiting (shutdown)
            self._turns.popleft()
        return bool(self._turns)

    def grant(self) -> bool:
        """Hand the token and slot the lane holds to the oldest waiting retry; False if none waits."""
        if not self.waiting():
            return False
        self._turns.popleft().set_result(None)
        return True

    def on_throttled(self, now: float | None = None, sent_at: float | None = None) -> None:
        """The service throttled (or failed: a failing service is slowed down like a throttling
        one) a call of this scope, sent at `sent_at`: multiplicative decrease, unless the call
        went out before the last one (see `RateController.on_throttled`)."""
        now = self._clock() if now is None else now
        before = self.controller.rate_at(now)
        if not self.controller.on_throttled(now, sent_at):
            return
        self.decreases += 1
        self._sync(now)
        self.bucket.drop_saved(now)
        self._unlogged += 1
        if now - self._logged_at >= THROTTLE_LOG_EVERY_S:
            log.info("throttled by Personalize: rate lowered", group=self.key[0], api=self.key[1],
                     rate_before=round(before, 3), rate=round(self.bucket.rate, 3),
                     share_rate=round(self.controller.share_rate, 3), decreases=self._unlogged)
            self._logged_at, self._unlogged = now, 0

    def set_share(self, fraction: float, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        self.controller.set_share(fraction, now)
        self._sync(now)


class RateLimiterRegistry:
    """One `Limiter` per (scope, API), created on first use.

    `rates` are the quotas per API of every dataset group; `groups` overrides them for
    named groups (scope -> API -> quota). With ``sharing="partitions"`` each limiter starts
    at its share of the group's quota as soon as `apply_shares` says what it is (the whole
    quota before any assignment is known, e.g. a tool that sends without consuming); with
    ``"static"`` the quota is this replica's own rate and shares are ignored (the old
    "quota ÷ replicas by hand" setting, kept as a baseline and an escape hatch).
    """

    def __init__(
        self,
        rates: Mapping[str, float],
        *,
        groups: Mapping[str, Mapping[str, float]] | None = None,
        sharing: Sharing = "partitions",
        params: ControlParams | None = None,
        clock: Callable[[], float] = time.monotonic,
        registry: CollectorRegistry | None = None,
    ) -> None:
        for api, rate in rates.items():
            if not rate > 0:
                raise ValueError(f"rate for {api} must be > 0, got {rate!r}")
        self._rates = dict(rates)
        self._groups = {group: dict(quotas) for group, quotas in (groups or {}).items()}
        self._sharing = sharing
        self._params = params or ControlParams()
        self._clock = clock
        self._limiters: dict[LaneKey, Limiter] = {}
        self._fractions: dict[LaneKey, float] | None = None  # None until the first assignment
        if registry is not None:
            registry.register(_QuotaCollector(self))

    @property
    def sharing(self) -> Sharing:
        return self._sharing

    def quota(self, scope: str, api: str) -> float:
        """The group's quota for `api` (KeyError for an API without one)."""
        group = self._groups.get(scope, {})
        if api in group:
            return group[api]
        if api not in self._rates:
            raise KeyError(f"no rate configured for API {api!r}")
        return self._rates[api]

    def _fraction(self, key: LaneKey) -> float:
        if self._sharing == "static" or self._fractions is None:
            return 1.0
        return self._fractions.get(key, 0.0)

    def get(self, scope: str, api: str) -> Limiter:
        """The limiter for (scope, api). KeyError for an API without a configured rate."""
        key = (scope, api)
        limiter = self._limiters.get(key)
        if limiter is None:
            now = self._clock()
            controller = RateController(self.quota(scope, api), self._fraction(key), now=now, params=self._params)
            limiter = self._limiters[key] = Limiter(key, controller, clock=self._clock)
        return limiter

    def apply_shares(self, fractions: Mapping[LaneKey, float]) -> None:
        """A rebalance: each (scope, API) now owns `fractions[key]` of the partitions feeding it
        (absent = none). Every limiter restarts from its new share (static sharing: ignored)."""
        if self._sharing == "static":
            return
        self._fractions = dict(fractions)
        now = self._clock()
        for key in sorted(set(self._limiters) | set(fractions)):
            self.get(*key).set_share(self._fraction(key), now)

    def limiters(self) -> dict[LaneKey, Limiter]:
        """A snapshot of the limiters created so far (for metrics and tests)."""
        return dict(self._limiters)


class _QuotaCollector(Collector):
    """Each limiter's quota, share and current rate, read at scrape time (on the HTTP thread:
    plain float reads of loop-owned objects, never a call that changes them)."""

    def __init__(self, owner: RateLimiterRegistry) -> None:
        self._owner = owner

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["group", "api"]
        quota = GaugeMetricFamily("clickstream_quota_rps", "The dataset group's quota for the API "
                                  "(requests/s, the whole fleet's).", labels=labels)
        share = GaugeMetricFamily("clickstream_quota_partition_share", "This replica's fraction of the partitions "
                                  "feeding the group (its starting share of the quota).", labels=labels)
        rate = GaugeMetricFamily("clickstream_quota_rate_rps", "The rate this replica paces the group's calls at now "
                                 "(its share, adapted: probing up with a backlog, down on throttling).", labels=labels)
        decreases = CounterMetricFamily("clickstream_quota_decreases", "Rate decreases on throttling (debounced: "
                                        "one per burst of throttled calls).", labels=labels)
        for (scope, api), limiter in list(self._owner.limiters().items()):
            values = [scope, api]
            quota.add_metric(values, limiter.controller.quota)
            share.add_metric(values, limiter.controller.fraction)
            rate.add_metric(values, limiter.rate)
            decreases.add_metric(values, limiter.decreases)
        yield from (quota, share, rate, decreases)


def _check_rate(rate: float) -> None:
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive finite number, got {rate!r}")
