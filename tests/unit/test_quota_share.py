"""Partition shares: what fraction of each (dataset group, API) quota a replica starts from."""

from __future__ import annotations

import random

import pytest

from worker.ingest.quota_share import Assignment, Share, fractions, shares

CLICKS = ("shop", "PutEvents")
ITEMS = ("shop", "PutItems")


def test_the_share_is_assigned_partitions_over_all_partitions_feeding_the_group() -> None:
    lanes = {"clicks": CLICKS, "items": ITEMS}
    mine = Assignment(frozenset({("clicks", 0), ("clicks", 3), ("items", 1)}), {"clicks": 8, "items": 3})
    assert shares(lanes, mine) == {CLICKS: Share(2, 8), ITEMS: Share(1, 3)}
    assert fractions(lanes, mine) == {CLICKS: 0.25, ITEMS: pytest.approx(1 / 3)}


def test_topics_feeding_one_group_are_pooled() -> None:
    lanes = {"clicks-eu": CLICKS, "clicks-us": CLICKS}
    mine = Assignment(frozenset({("clicks-eu", 0), ("clicks-us", 5)}), {"clicks-eu": 2, "clicks-us": 6})
    assert shares(lanes, mine) == {CLICKS: Share(2, 8)}


def test_a_group_this_replica_holds_nothing_of_has_a_share_of_zero() -> None:
    lanes = {"clicks": CLICKS, "other": ("other-group", "PutEvents")}
    mine = Assignment(frozenset({("clicks", 0)}), {"clicks": 1, "other": 4})
    assert shares(lanes, mine)[("other-group", "PutEvents")] == Share(0, 4)
    assert Share(0, 0).fraction == 0.0, "a topic that does not exist yet: nothing to send"


def test_an_unknown_partition_count_counts_what_is_held() -> None:
    lanes = {"clicks": CLICKS}
    assert shares(lanes, Assignment(frozenset({("clicks", 0), ("clicks", 1)}), {})) == {CLICKS: Share(2, 2)}
    stale = Assignment(frozenset({("clicks", 0), ("clicks", 1), ("clicks", 2)}), {"clicks": 2})
    assert shares(lanes, stale) == {CLICKS: Share(3, 3)}, "never more assigned than in total"


def test_partitions_of_topics_not_configured_are_ignored() -> None:
    mine = Assignment(frozenset({("clicks", 0), ("stray", 0)}), {"clicks": 4, "stray": 1})
    assert shares({"clicks": CLICKS}, mine) == {CLICKS: Share(1, 4)}


@pytest.mark.parametrize("seed", range(5))
def test_the_shares_of_a_consumer_group_add_up_to_one(seed: int) -> None:
    """Any split of the partitions among any number of replicas: the fleet's shares sum to the quota."""
    rng = random.Random(seed)
    counts = {"clicks": rng.randint(1, 12), "clicks-2": rng.randint(1, 12), "items": rng.randint(1, 5)}
    lanes = {"clicks": CLICKS, "clicks-2": CLICKS, "items": ITEMS}
    replicas = rng.randint(1, 7)
    owned: list[set[tuple[str, int]]] = [set() for _ in range(replicas)]
    for topic, count in counts.items():
        for partition in range(count):
            owned[rng.randrange(replicas)].add((topic, partition))
    per_replica = [fractions(lanes, Assignment(frozenset(o), counts)) for o in owned]
    for lane in (CLICKS, ITEMS):
        assert sum(f[lane] for f in per_replica) == pytest.approx(1.0)
