"""Offline ranking metrics exactly as Amazon Personalize documents them (GetSolutionMetrics).

One implementation shared by training (solution-version metrics), HPO and the offline
``evaluate`` command, so a number means the same thing wherever it is printed.

Definitions (developer guide, ``working-with-training-metrics.md``):

* *relevant*: a recommended item that is in the user's held-out (newest 10 %) interactions;
* *position*: 1-based rank in the recommendation list, 1 = top;
* ``precision_at_K``: relevant items in the top K divided by **K** (not by the list length,
  so a list shorter than K is penalised as if padded with misses);
* ``normalized_discounted_cumulative_gain_at_K``: sum of ``1/log(1 + position)`` over the
  relevant items in the top K, divided by the ideal DCG, i.e. the same sum for
  ``min(|relevant|, K)`` relevant items at positions 1, 2, …;
* ``mean_reciprocal_rank_at_25``: mean of ``1/position`` of the **first** relevant item in
  the top 25, 0 when there is none;
* ``coverage``: unique recommended items over unique items in the Interactions and Items
  datasets.

Duplicates in a recommendation list (the service never returns any, but hand-made lists may
contain them): positions are taken literally, and an item earns credit only at its first
occurrence, so a repeated hit cannot push precision or NDCG above what the distinct items
earn. The log base cancels in NDCG; the natural log is used.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence

#: The K values behind the metric names Personalize returns.
PRECISION_KS = (5, 10, 25)
NDCG_KS = (5, 10, 25)
MRR_K = 25
#: How many recommendations an offline query asks for (the largest K above).
QUERY_SIZE = 25

METRIC_KEYS = (
    "coverage",
    "mean_reciprocal_rank_at_25",
    "normalized_discounted_cumulative_gain_at_5",
    "normalized_discounted_cumulative_gain_at_10",
    "normalized_discounted_cumulative_gain_at_25",
    "precision_at_5",
    "precision_at_10",
    "precision_at_25",
)


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def _hit_positions(recommended: Sequence[str], relevant: Collection[str], k: int) -> list[int]:
    """1-based positions (within the top k) where a relevant item appears for the first time."""
    seen: set[str] = set()
    positions: list[int] = []
    for position, item in enumerate(recommended[:k], start=1):
        if item in seen:
            continue
        seen.add(item)
        if item in relevant:
            positions.append(position)
    return positions


def precision_at_k(recommended: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Relevant items among the first k recommendations, divided by k."""
    _check_k(k)
    return len(_hit_positions(recommended, relevant, k)) / k


def _discount(position: int) -> float:
    return 1.0 / math.log(1.0 + position)


def ndcg_at_k(recommended: Sequence[str], relevant: Collection[str], k: int) -> float:
    """DCG of the top k with weight 1/log(1+position), over the ideal DCG of min(|relevant|, k) hits."""
    _check_k(k)
    n_relevant = len(set(relevant))
    if n_relevant == 0:
        return 0.0
    dcg = sum(_discount(p) for p in _hit_positions(recommended, relevant, k))
    ideal = sum(_discount(p) for p in range(1, min(n_relevant, k) + 1))
    return dcg / ideal


def reciprocal_rank_at_k(recommended: Sequence[str], relevant: Collection[str], k: int) -> float:
    """1/position of the first relevant item in the top k; 0 when none is there."""
    _check_k(k)
    for position, item in enumerate(recommended[:k], start=1):
        if item in relevant:
            return 1.0 / position
    return 0.0


def coverage(recommended_lists: Iterable[Sequence[str]], catalog_items: Collection[str]) -> float:
    """Unique recommended items (that are in the catalog) over unique catalog items.

    Items outside the catalog are not counted, so the value stays within [0, 1] even when a
    caller's catalog is narrower than what the model can return.
    """
    catalog = set(catalog_items)
    if not catalog:
        return 0.0
    recommended: set[str] = set()
    for items in recommended_lists:
        recommended.update(items)
    return len(recommended & catalog) / len(catalog)


def evaluate(
    recommended: Sequence[Sequence[str]],
    relevant: Sequence[Collection[str]],
    catalog: Collection[str],
) -> dict[str, float]:
    """The GetSolutionMetrics map for one set of offline queries.

    `recommended[i]` is the ranked list for query i (only its first 25 entries are used) and
    `relevant[i]` the held-out items of that user. Every per-query metric is averaged over
    all queries; with no queries every value is 0.0. Values are not rounded (the service
    shows four decimals; round at the presentation edge).
    """
    if len(recommended) != len(relevant):
        raise ValueError(f"{len(recommended)} recommendation lists but {len(relevant)} relevant sets")
    n = len(recommended)
    lists = [list(r[:QUERY_SIZE]) for r in recommended]
    sets = [set(r) for r in relevant]

    def mean(values: Iterable[float]) -> float:
        return math.fsum(values) / n if n else 0.0

    result = {
        "coverage": coverage(lists, catalog) if n else 0.0,
        "mean_reciprocal_rank_at_25": mean(reciprocal_rank_at_k(r, s, MRR_K) for r, s in zip(lists, sets, strict=True)),
    }
    for k in NDCG_KS:
        result[f"normalized_discounted_cumulative_gain_at_{k}"] = mean(
            ndcg_at_k(r, s, k) for r, s in zip(lists, sets, strict=True)
        )
    for k in PRECISION_KS:
        result[f"precision_at_{k}"] = mean(precision_at_k(r, s, k) for r, s in zip(lists, sets, strict=True))
    return {key: result[key] for key in METRIC_KEYS}
