"""Which fraction of a dataset group's quota this replica starts from: its share of the partitions.

Without a central server, the only fleet-wide fact every replica agrees on is the consumer
group's assignment: each partition belongs to exactly one member. A replica's share of a
(dataset group, API) is therefore

    partitions assigned to it, of the topics feeding that group through that API
    ÷ all partitions of those topics

so the shares of all members add up to one whatever the number of replicas, and change
with every rebalance (an autoscaler adding or removing a replica, a crash). Several topics
may feed one group (two interaction topics with the same tracker): their partitions are
pooled. A topic whose partition count is not known yet counts with the partitions this
replica holds of it (never fewer than assigned).

Pure: the consumer thread supplies the assignment and the partition counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

LaneKey = tuple[str, str]
"""(scope, API): the dataset group (or what stands for it) and the Personalize operation."""


@dataclass(frozen=True, slots=True)
class Share:
    """Partitions of one (group, API) held here, and in all."""

    assigned: int
    total: int

    @property
    def fraction(self) -> float:
        return self.assigned / self.total if self.total else 0.0


@dataclass(frozen=True, slots=True)
class Assignment:
    """What one rebalance left this replica with, as the consumer thread saw it."""

    partitions: frozenset[tuple[str, int]]
    #: Partition count of every subscribed topic the client has metadata for.
    partition_counts: Mapping[str, int]


def shares(lane_of_topic: Mapping[str, LaneKey], assignment: Assignment) -> dict[LaneKey, Share]:
    """The share of every lane fed by the configured topics (0 of N when none is assigned here)."""
    held: dict[str, int] = {}
    for topic, _partition in assignment.partitions:
        held[topic] = held.get(topic, 0) + 1
    assigned: dict[LaneKey, int] = {}
    total: dict[LaneKey, int] = {}
    for topic, lane in lane_of_topic.items():
        mine = held.get(topic, 0)
        assigned[lane] = assigned.get(lane, 0) + mine
        total[lane] = total.get(lane, 0) + max(assignment.partition_counts.get(topic, 0), mine)
    return {lane: Share(assigned[lane], total[lane]) for lane in total}


def fractions(lane_of_topic: Mapping[str, LaneKey], assignment: Assignment) -> dict[LaneKey, float]:
    """`shares` as fractions (what the rate limiters take)."""
    return {lane: share.fraction for lane, share in shares(lane_of_topic, assignment).items()}


class AssignmentSink(Protocol):
    """Where the consumer thread reports each assignment; must be safe to call from that thread."""

    def assigned(self, assignment: Assignment) -> None: ...
