"""A discrete-event model of a fleet of replicas sharing one dataset group's quota.

Used by the rate-controller tests: each replica runs the real `Limiter` (token bucket +
`RateController`) on a simulated clock; the service is a token bucket holding one
second of the quota, as the local Personalize's is (the real service's burst allowance
is not documented). Requests take `latency_s` to come back; a throttled request is
retried after a jittered backoff and takes a token again, as the sender does.

It is a model, not a measurement: the benchmarks (bench/, `quota_shared_*`) measure real
processes against the real local Personalize. The model lets the controller's
convergence be checked exactly and quickly: share, probing, skew, rebalances, storms.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.ingest.quota_control import ControlParams, RateController
from worker.ingest.ratelimit import Limiter

#: Work that never runs out.
BACKLOG = math.inf


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Service:
    """The group's quota as the service enforces it: a bucket of `burst_s` seconds of `rps`."""

    rps: float
    burst_s: float = 1.0
    tokens: float = field(init=False)
    updated: float = 0.0

    def __post_init__(self) -> None:
        self.tokens = self.rps * self.burst_s

    def set_rps(self, rps: float, now: float) -> None:
        self.take_time(now)
        self.rps = rps
        self.tokens = min(self.tokens, max(1.0, rps * self.burst_s))

    def take_time(self, now: float) -> None:
        self.tokens = min(max(1.0, self.rps * self.burst_s), self.tokens + (now - self.updated) * self.rps)
        self.updated = now

    def admit(self, now: float) -> bool:
        self.take_time(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class Replica:
    name: int
    limiter: Limiter
    #: Requests ready to send (BACKLOG: never runs out).
    ready: float = 0.0
    #: New work per second when not backlogged (Poisson arrivals).
    demand_rps: float = 0.0
    reserved: bool = False
    alive: bool = True
    accepted: int = 0
    throttled: int = 0


@dataclass
class Outcome:
    """What the service saw, per whole second and in total."""

    accepted_per_s: list[int]
    throttled_per_s: list[int]
    by_replica: dict[int, int]
    rates: dict[int, list[float]]  # each replica's paced rate sampled every second

    def utilisation(self, quota: float, start: int, end: int) -> float:
        window = self.accepted_per_s[start:end]
        return sum(window) / (quota * len(window))

    def throttled_share(self, start: int = 0, end: int | None = None) -> float:
        accepted = sum(self.accepted_per_s[start:end])
        throttled = sum(self.throttled_per_s[start:end])
        return throttled / (accepted + throttled) if accepted + throttled else 0.0


class Fleet:
    """Replicas sharing one group's quota; `run` plays it for a number of seconds."""

    def __init__(self, quota: float, *, latency_s: float = 0.02, jitter_s: float = 0.005, seed: int = 1,
                 params: ControlParams | None = None, service_rps: float | None = None) -> None:
        self.quota = quota
        self.clock = Clock()
        self.service = Service(service_rps if service_rps is not None else quota)
        self.latency_s = latency_s
        self.jitter_s = jitter_s
        self.rng = random.Random(seed)
        self.params = params
        self.replicas: list[Replica] = []
        self._events: list[tuple[float, int, str, int, bool, float]] = []
        self._seq = 0
        self._accepted: dict[int, int] = {}
        self._throttled: dict[int, int] = {}
        self._rates: dict[int, list[float]] = {}
        self._actions: list[tuple[float, Callable[[], None]]] = []

    # -- set-up ------------------------------------------------------------------------

    def add(self, fraction: float, *, ready: float = BACKLOG, demand_rps: float = 0.0,
            own_quota: float | None = None) -> Replica:
        """A replica owning `fraction` of the group's partitions. `own_quota`: the static split instead
        (this replica's own ceiling, e.g. quota / replicas, and no share)."""
        quota = self.quota if own_quota is None else own_quota
        controller = RateController(quota, fraction, now=self.clock.now, params=self.params)
        replica = Replica(len(self.replicas), Limiter(("g", "PutEvents"), controller, clock=self.clock),
                          ready=ready, demand_rps=demand_rps)
        self.replicas.append(replica)
        self._rates[replica.name] = []
        if demand_rps > 0:
            self._push(self.clock.now + self.rng.expovariate(demand_rps), "work", replica.name)
        self._pump(replica)
        return replica

    def at(self, when: float, action: Callable[[], None]) -> None:
        """Run `action` at simulated time `when` (a rebalance, a storm, a change of demand)."""
        self._actions.append((when, action))
        self._actions.sort(key=lambda a: a[0])

    def rebalance(self, fractions: dict[int, float]) -> None:
        """Every live replica gets its new fraction (absent: the replica left the group)."""
        for replica in self.replicas:
            if replica.name in fractions:
                replica.limiter.set_share(fractions[replica.name], self.clock.now)
                replica.alive = True
                self._pump(replica)
            else:
                replica.alive = False

    def set_demand(self, replica: Replica, *, ready: float, demand_rps: float) -> None:
        replica.ready = ready
        was = replica.demand_rps
        replica.demand_rps = demand_rps
        if demand_rps > 0 and was <= 0:
            self._push(self.clock.now + self.rng.expovariate(demand_rps), "work", replica.name)
        self._pump(replica)

    # -- the model ---------------------------------------------------------------------

    def _push(self, when: float, kind: str, name: int, ok: bool = False, sent_at: float = 0.0) -> None:
        self._seq += 1
        heapq.heappush(self._events, (when, self._seq, kind, name, ok, sent_at))

    def _pump(self, replica: Replica) -> None:
        if replica.reserved or replica.ready < 1 or not replica.alive:
            return
        delay = replica.limiter.reserve(self.clock.now)
        replica.reserved = True
        self._push(self.clock.now + delay, "wake", replica.name)

    def run(self, seconds: float) -> Outcome:
        end = self.clock.now + seconds
        next_sample = math.floor(self.clock.now) + 1.0
        while self._events or self._actions:
            when = self._events[0][0] if self._events else math.inf
            if self._actions and self._actions[0][0] <= when:
                when, action = self._actions.pop(0)
                if when > end:
                    self._actions.insert(0, (when, action))
                    break
                self._advance(when, next_sample)
                next_sample = max(next_sample, math.floor(when) + 1.0)
                action()
                continue
            if when > end:
                break
            when, _seq, kind, name, ok, sent_at = heapq.heappop(self._events)
            while next_sample <= when:
                self._sample(next_sample)
                next_sample += 1.0
            self.clock.now = when
            self._handle(kind, self.replicas[name], ok, sent_at)
        while next_sample <= end:
            self._sample(next_sample)
            next_sample += 1.0
        self.clock.now = end
        seconds_run = int(end)
        return Outcome(
            accepted_per_s=[self._accepted.get(s, 0) for s in range(seconds_run)],
            throttled_per_s=[self._throttled.get(s, 0) for s in range(seconds_run)],
            by_replica={r.name: r.accepted for r in self.replicas},
            rates=self._rates,
        )

    def _advance(self, when: float, next_sample: float) -> None:
        while next_sample <= when:
            self._sample(next_sample)
            next_sample += 1.0
        self.clock.now = when

    def _sample(self, at: float) -> None:
        for replica in self.replicas:
            self._rates[replica.name].append(replica.limiter.controller.rate_at(at))

    def _handle(self, kind: str, replica: Replica, ok: bool, sent_at: float) -> None:
        now = self.clock.now
        if kind == "wake":
            replica.reserved = False
            if replica.ready >= 1 and replica.alive:
                replica.ready -= 1
                self._push(now + self.latency_s / 2 + self.rng.uniform(0, self.jitter_s), "arrive", replica.name,
                           sent_at=now)
            else:
                replica.limiter.refund(now)
            self._pump(replica)
        elif kind == "arrive":
            admitted = self.service.admit(now)
            second = int(now)
            if admitted:
                self._accepted[second] = self._accepted.get(second, 0) + 1
            else:
                self._throttled[second] = self._throttled.get(second, 0) + 1
            self._push(now + self.latency_s / 2, "response", replica.name, admitted, sent_at)
        elif kind == "response":
            if ok:
                replica.accepted += 1
                return
            replica.throttled += 1
            replica.limiter.on_throttled(now, sent_at=sent_at)
            self._push(now + self.rng.uniform(0.0, 0.2), "retry", replica.name)
        elif kind == "retry":
            replica.ready += 1
            self._pump(replica)
        elif kind == "work":
            replica.ready += 1
            self._pump(replica)
            if replica.demand_rps > 0:
                self._push(now + self.rng.expovariate(replica.demand_rps), "work", replica.name)
