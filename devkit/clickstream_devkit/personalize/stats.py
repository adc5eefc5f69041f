"""In-memory counters of the local Personalize (a development/test stand-in).

Tests and benchmarks read them through ``GET /_local/stats`` to check what the
server saw (how many duplicates, which rejections, how many throttles) without
parsing logs. They count since process start; stored totals come from the store.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Stats:
    """`accepted_events` counts every event of an accepted PutEvents request;
    `duplicate_events` is the part of those that was not stored (eventId seen before
    or an exact duplicate); `same_content_events` is the part of those with a new eventId
    (the exact-duplicate rule), so an audit by eventId can tell them from losses.
    `actions` counts PutActions records, `action_interactions` every interaction of an
    accepted PutActionInteractions request and `duplicate_action_interactions` the part of
    those not stored (eventId seen before). `rejected` is keyed ``"<ErrorCode>/<rule>"``."""

    accepted_events: int = 0
    duplicate_events: int = 0
    same_content_events: int = 0
    items: int = 0
    users: int = 0
    actions: int = 0
    action_interactions: int = 0
    duplicate_action_interactions: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)

    def reject(self, code: str, rule: str) -> None:
        self.rejected[f"{code}/{rule}"] += 1

    def to_dict(self, *, throttled: int, injected_errors: int, stored: dict[str, int]) -> dict[str, Any]:
        return {
            "accepted_events": self.accepted_events,
            "duplicate_events": self.duplicate_events,
            "same_content_events": self.same_content_events,
            "rejected": dict(self.rejected),
            "throttled": throttled,
            "injected_errors": injected_errors,
            "items": self.items,
            "users": self.users,
            "actions": self.actions,
            "action_interactions": self.action_interactions,
            "duplicate_action_interactions": self.duplicate_action_interactions,
            "requests": dict(self.requests),
            "stored": stored,
        }
