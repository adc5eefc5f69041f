"""The rate one replica sends one (dataset group, API) at: its share of the quota, then AIMD.

Personalize's quota belongs to the dataset group, and every replica of the fleet sends to
it without talking to the others. The starting point is the replica's **share**: the
group's quota times the fraction of the partitions feeding the group that this replica
owns (`quota_share`), recomputed on every rebalance. The shares of a fleet add up to the
quota, so a replica sending at its share never takes what another replica is owed.

From there the rate adapts, additive increase and multiplicative decrease as in TCP:

* **Throttled** (`on_throttled`): multiplied by `decrease_factor`; a rate above the share
  falls no lower than the share (the borrowed part is what the service refused; the share
  is still ours), a rate at or below it down to `floor`. Throttles within ``max(debounce_s,
  1/rate)`` of a decrease are ignored, and nothing grows meanwhile: calls already in flight
  were paced at the old rate, so their answers say nothing about the new one.
* **Below the share**, while work is waiting: a slow start, an additive slope of
  `recover_per_s` of the current rate per second that grows by `growth_per_s` every
  second without throttling. Gentle while a throttling storm lasts; back at the share
  within about two seconds once it ends.
* **Above the share**, borrowing what other replicas leave unused (one partition carries
  most of the traffic, another replica idles), while work is waiting and not within the
  hold after a throttle (``max(hold_s, hold_calls / share)``: a fixed number of own calls,
  so that at 2.5 requests/s the probes that fail cost about 1 % of the calls, not 5 %):
  additive probing at `probe_per_s` of the share per second. The slope grows only on
  **evidence** that quota is idle. The service lets a group burst by about one second of
  its quota; replicas that all probe at slopes proportional to their shares would have
  drained that together by the time each has borrowed its own share's worth, so one that
  has borrowed more than `evidence_s` times its share without a throttle knows the others
  leave quota unused, and probes faster. Until then probing stays slow: a fleet whose
  replicas all use their share pays a few throttled calls per probe, not a storm.
* **Not saturated** (no caller waited for a token within `saturated_s`): nothing is
  learnt (demand, not the quota, is the limit), and the rate drifts back to the share
  with time constant `idle_decay_s` from either side: quota borrowed for a burst is
  given back, a rate cut by an old storm is restored, to be tested by the next burst.

Bounds: never above the group's quota; never below `floor` (``min_fraction`` of the
quota, or the share if that is smaller), so a replica always makes progress, including
with records left from partitions a rebalance took away.

Pure: no I/O, time is passed in. `ratelimit.Limiter` applies the rate to a token bucket.
The constants were chosen on the fleet model in ``tests/unit/quota_fleet.py`` and checked
with real processes in the ``quota_shared_*`` benchmarks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ControlParams:
    """The controller's constants; see the module docstring for each one's role."""

    decrease_factor: float = 0.7  # botocore's adaptive retry mode cuts by 0.7 too (CUBIC's beta)
    debounce_s: float = 0.3
    hold_s: float = 2.0
    hold_calls: float = 200.0
    recover_per_s: float = 0.25
    recover_floor: float = 0.1
    probe_per_s: float = 0.3
    growth_per_s: float = 8.0
    max_slope_per_s: float = 2.0
    evidence_s: float = 1.0
    min_fraction: float = 0.01
    idle_decay_s: float = 2.0
    saturated_s: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.decrease_factor < 1:
            raise ValueError("decrease_factor must be in (0, 1)")
        if not 0 < self.min_fraction <= 1:
            raise ValueError("min_fraction must be in (0, 1]")
        if self.growth_per_s < 1:
            raise ValueError("growth_per_s must be >= 1")
        for name in ("debounce_s", "hold_s", "hold_calls", "evidence_s", "idle_decay_s", "saturated_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("recover_per_s", "recover_floor", "probe_per_s", "max_slope_per_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")


class RateController:
    """Requests/s for one (dataset group, API) on this replica (see the module docstring).

    `fraction` is the share of the group's partitions this replica owns (0..1).
    Not thread-safe: it belongs to the event loop.
    """

    __slots__ = ("_borrowed", "_decreased_at", "_fraction", "_hold_until", "_last", "_no_decrease_before", "_params",
                 "_quota", "_rate", "_saturated_until", "_slope", "throttles")

    def __init__(self, quota: float, fraction: float = 1.0, *, now: float = 0.0,
                 params: ControlParams | None = None) -> None:
        if not (quota > 0 and math.isfinite(quota)):
            raise ValueError(f"quota must be a positive finite number, got {quota!r}")
        self._params = params or ControlParams()
        self._quota = float(quota)
        self._fraction = _check_fraction(fraction)
        self._rate = self.share_rate if self._fraction > 0 else self.floor
        self._last = now
        self._saturated_until = -math.inf
        self._hold_until = -math.inf
        self._no_decrease_before = -math.inf
        self._decreased_at = -math.inf
        self._slope = self._initial_slope()
        self._borrowed = 0.0  # requests sent above the share since the last throttle (the evidence)
        self.throttles = 0  # decreases so far (for logs and tests)

    # -- read ------------------------------------------------------------------------------

    @property
    def quota(self) -> float:
        return self._quota

    @property
    def fraction(self) -> float:
        return self._fraction

    @property
    def share_rate(self) -> float:
        """The quota times this replica's fraction of the group's partitions."""
        return self._quota * self._fraction

    @property
    def floor(self) -> float:
        small = self._quota * self._params.min_fraction
        return min(small, self.share_rate) if self._fraction > 0 else small

    @property
    def rate(self) -> float:
        """The rate as of the last update (`rate_at` advances it to a given time)."""
        return self._rate

    # -- inputs ----------------------------------------------------------------------------

    def set_share(self, fraction: float, now: float) -> None:
        """A rebalance changed this replica's fraction of the group's partitions: start again
        from the new share (what was learnt about the others' use of theirs is stale)."""
        self._advance(now)
        self._fraction = _check_fraction(fraction)
        self._rate = max(self.share_rate, self.floor)
        self._slope = self._initial_slope()
        self._borrowed = 0.0

    def set_quota(self, quota: float, now: float) -> None:
        """The group's quota changed (configuration reload): keep the relative position."""
        if not (quota > 0 and math.isfinite(quota)):
            raise ValueError(f"quota must be a positive finite number, got {quota!r}")
        self._advance(now)
        scale = quota / self._quota
        self._quota = float(quota)
        self._rate = min(self._quota, max(self.floor, self._rate * scale))
        self._slope *= scale

    def on_saturated(self, now: float) -> None:
        """A caller had to wait for a token: there is more work than this rate sends."""
        self._advance(now)
        self._saturated_until = now + self._params.saturated_s

    def on_throttled(self, now: float, sent_at: float | None = None) -> bool:
        """The service refused a call for its rate. True when the rate was decreased.

        With `sent_at` (when the refused call went out), a call sent before the last decrease
        was paced at the old rate and is ignored; one sent after it is news, however soon it
        comes. Without it, throttles within ``max(debounce_s, 1/rate)`` of a decrease are ignored.
        """
        self._advance(now)
        if sent_at is not None:
            if sent_at < self._decreased_at:
                return False
        elif now < self._no_decrease_before:
            return False
        p = self._params
        share = self.share_rate
        lowered = self._rate * p.decrease_factor
        self._rate = max(share, lowered) if self._rate > share * 1.0001 else max(self.floor, lowered)
        self._slope = self._initial_slope()
        self._borrowed = 0.0
        self._hold_until = now + max(p.hold_s, p.hold_calls / max(share, self.floor))
        self._no_decrease_before = now + max(p.debounce_s, 1.0 / self._rate)
        self._decreased_at = now
        self.throttles += 1
        return True

    def rate_at(self, now: float) -> float:
        """The rate at `now`, after applying increase or decay for the time since the last update."""
        self._advance(now)
        return self._rate

    # -- the control law -------------------------------------------------------------------

    def _initial_slope(self) -> float:
        base = max(self.share_rate, self.floor)
        if self._rate < self.share_rate:  # recovering: relative to where throttling left the rate
            return max(self._rate, base * self._params.recover_floor) * self._params.recover_per_s
        return base * self._params.probe_per_s

    def _advance(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed <= 0:  # same instant, or a clock step backwards: nothing to credit
            return
        self._last = now
        start = now - elapsed
        busy = max(0.0, min(now, self._saturated_until) - start)
        if busy > 0:
            self._grow(busy, start)
        idle = elapsed - busy
        if idle > 0:
            self._relax(idle, now)

    def _grow(self, seconds: float, start: float) -> None:
        """Additive increase over `seconds` of saturation, piece by piece (the slope changes on
        the way: it grows by `growth_per_s` per second where growth is allowed)."""
        p = self._params
        share = self.share_rate
        while seconds > 1e-9 and self._rate < self._quota:
            if start < self._no_decrease_before:  # throttles are being ignored: so is growth
                wait = min(seconds, self._no_decrease_before - start)
            elif self._rate < share:  # regaining the share: a slow start that speeds up
                wait = self._ramp(min(seconds, self._time_to(share - self._rate)), accelerate=True)
                if self._rate >= share * 0.999999:
                    self._rate = share
                    self._slope = max(share, self.floor) * p.probe_per_s  # borrowing starts slow
            elif start < self._hold_until:  # just throttled: hold at the share
                wait = min(seconds, self._hold_until - start)
            else:  # borrowing: fast only once idle quota is proven (`evidence_s`)
                proven = self._borrowed > max(share, self.floor) * p.evidence_s
                before = self._rate
                wait = self._ramp(seconds, accelerate=proven)
                self._borrowed += (before + self._rate - 2 * share) / 2 * wait
            seconds -= wait
            start += wait

    def _time_to(self, gain: float) -> float:
        """Seconds of accelerating ramp needed to add `gain` to the rate."""
        g = math.log(self._params.growth_per_s)
        return gain / self._slope if g == 0 else math.log1p(gain * g / self._slope) / g

    def _ramp(self, seconds: float, *, accelerate: bool) -> float:
        """Raise the rate for `seconds` (the slope growing exponentially when `accelerate`); capped
        at the quota. Returns `seconds`."""
        g = math.log(self._params.growth_per_s) if accelerate else 0.0
        gain = self._slope * seconds if g == 0 else self._slope * math.expm1(g * seconds) / g
        self._rate = min(self._quota, self._rate + gain)
        if g:
            self._slope = min(self._quota * self._params.max_slope_per_s, self._slope * math.exp(g * seconds))
        return seconds

    def _relax(self, seconds: float, now: float) -> None:
        """Not saturated: nothing is learnt, and the rate drifts back to the share from either side
        (quota borrowed for a burst is given back at once; a rate cut by throttling that nobody
        needs is restored once the hold after the throttle is over, to be tested by the next burst)."""
        share = max(self.share_rate, self.floor)
        if self._rate < share:
            seconds = min(seconds, now - self._hold_until)
            if seconds <= 0:
                return
        if self._rate != share:
            self._rate = share + (self._rate - share) * math.exp(-seconds / self._params.idle_decay_s)
            self._slope = self._initial_slope()
            self._borrowed = 0.0


def _check_fraction(fraction: float) -> float:
    if not (0.0 <= fraction <= 1.0) or math.isnan(fraction):
        raise ValueError(f"fraction of partitions must be within [0, 1], got {fraction!r}")
    return float(fraction)
