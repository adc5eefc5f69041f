"""The consumer thread's assignments, applied to the rate limiters on the event loop.

The consumer thread learns of each rebalance (`ConsumerThread`, step 4); the rate limiters
belong to the event loop. `LoopAssignments` is the channel between them, built before the
consumer thread (wiring runs one way): it hands each `Assignment` to the loop, where the
shares are computed (`quota_share`) and every limiter restarts from its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import structlog

from worker.ingest.quota_share import Assignment, LaneKey, shares
from worker.ingest.ratelimit import RateLimiterRegistry

log = structlog.get_logger(__name__)


class LoopAssignments:
    """An `AssignmentSink` (thread-safe): each assignment is applied on `loop`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limiters: RateLimiterRegistry,
                 lane_of_topic: Mapping[str, LaneKey]) -> None:
        self._loop = loop
        self._limiters = limiters
        self._lane_of_topic = dict(lane_of_topic)

    def assigned(self, assignment: Assignment) -> None:
        self._loop.call_soon_threadsafe(self.apply, assignment)

    def apply(self, assignment: Assignment) -> None:
        """On the loop: compute the shares and hand them to the limiters (and say so)."""
        computed = shares(self._lane_of_topic, assignment)
        self._limiters.apply_shares({lane: share.fraction for lane, share in computed.items()})
        if self._limiters.sharing == "static":
            return
        for (scope, api), share in sorted(computed.items()):
            limiter = self._limiters.get(scope, api)
            log.info("quota share after rebalance", group=scope, api=api, partitions_assigned=share.assigned,
                     partitions_total=share.total, fraction=round(share.fraction, 4),
                     quota_rps=limiter.controller.quota, rate_rps=round(limiter.rate, 3))
