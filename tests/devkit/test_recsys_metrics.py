"""Offline metrics: the developer guide's worked examples and hand-computed edge cases."""

from __future__ import annotations

import math

import pytest
from clickstream_devkit.recsys.metrics import (
    METRIC_KEYS,
    coverage,
    evaluate,
    ndcg_at_k,
    precision_at_k,
    reciprocal_rank_at_k,
)


def ranked(n: int, hits: dict[int, str]) -> list[str]:
    """A list of n filler items with `hits[position]` (1-based) placed at those positions."""
    return [hits.get(p, f"filler-{p}") for p in range(1, n + 1)]


# -- the developer guide's examples ----------------------------------------------------------


def test_mrr_worked_example_three_queries() -> None:
    # First relevant item at ranks 4, 2 and 6: (1/4 + 1/2 + 1/6) / 3 = 0.3056.
    lists = [ranked(25, {4: "a"}), ranked(25, {2: "b", 7: "b2"}), ranked(25, {6: "c"})]
    relevant = [{"a"}, {"b", "b2"}, {"c"}]
    result = evaluate(lists, relevant, catalog={"a", "b", "b2", "c"})
    assert round(result["mean_reciprocal_rank_at_25"], 4) == 0.3056
    assert [reciprocal_rank_at_k(r, s, 25) for r, s in zip(lists, relevant, strict=True)] == [0.25, 0.5, 1 / 6]


def test_ndcg_at_5_worked_example() -> None:
    # Relevant recommendations at positions 2 and 5, two relevant items: 0.6241.
    recs = ranked(5, {2: "x", 5: "y"})
    assert round(ndcg_at_k(recs, {"x", "y"}, 5), 4) == 0.6241
    assert precision_at_k(recs, {"x", "y"}, 5) == 0.4
    assert reciprocal_rank_at_k(recs, {"x", "y"}, 5) == 0.5
    result = evaluate([recs], [{"x", "y"}], catalog={"x", "y"})
    assert round(result["normalized_discounted_cumulative_gain_at_5"], 4) == 0.6241
    assert result["precision_at_5"] == pytest.approx(0.4)


def test_ndcg_log_base_cancels() -> None:
    recs = ranked(10, {1: "a", 3: "b"})
    expected_log2 = (1 / math.log2(2) + 1 / math.log2(4)) / (1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4))
    assert ndcg_at_k(recs, {"a", "b", "c"}, 10) == pytest.approx(expected_log2)


# -- hand-computed cases -----------------------------------------------------------------------


def test_all_relevant() -> None:
    recs = ["a", "b", "c", "d", "e"]
    assert precision_at_k(recs, set(recs), 5) == 1.0
    assert ndcg_at_k(recs, set(recs), 5) == pytest.approx(1.0)
    assert reciprocal_rank_at_k(recs, set(recs), 5) == 1.0


def test_none_relevant() -> None:
    recs = ["a", "b", "c"]
    assert precision_at_k(recs, {"z"}, 3) == 0.0
    assert ndcg_at_k(recs, {"z"}, 3) == 0.0
    assert reciprocal_rank_at_k(recs, {"z"}, 3) == 0.0
    assert ndcg_at_k(recs, set(), 3) == 0.0


def test_k_larger_than_the_list() -> None:
    recs = ["a", "b", "c"]
    # Precision divides by K, not by the list length.
    assert precision_at_k(recs, {"a", "b", "c"}, 5) == pytest.approx(3 / 5)
    # Ideal DCG uses min(|relevant|, K) = 3 items, so a perfect short list is still 1.0.
    assert ndcg_at_k(recs, {"a", "b", "c"}, 5) == pytest.approx(1.0)
    # Four relevant, three found: ideal has four positions.
    expected = sum(1 / math.log(1 + p) for p in (1, 2, 3)) / sum(1 / math.log(1 + p) for p in (1, 2, 3, 4))
    assert ndcg_at_k(recs, {"a", "b", "c", "d"}, 5) == pytest.approx(expected)


def test_more_relevant_than_k_caps_the_ideal_at_k() -> None:
    relevant = {f"r{i}" for i in range(10)}
    assert ndcg_at_k([f"r{i}" for i in range(5)], relevant, 5) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "r1", "r2", "r3", "r4"], relevant, 5) < 1.0


def test_only_the_top_k_count() -> None:
    recs = ranked(10, {6: "a"})
    assert precision_at_k(recs, {"a"}, 5) == 0.0
    assert ndcg_at_k(recs, {"a"}, 5) == 0.0
    assert reciprocal_rank_at_k(recs, {"a"}, 5) == 0.0
    assert reciprocal_rank_at_k(recs, {"a"}, 6) == pytest.approx(1 / 6)


def test_duplicates_earn_credit_once_at_their_first_position() -> None:
    recs = ["a", "a", "b"]
    assert precision_at_k(recs, {"a"}, 3) == pytest.approx(1 / 3)
    assert ndcg_at_k(recs, {"a"}, 3) == pytest.approx(1.0)
    # The duplicate still occupies position 2, so b is scored at position 3.
    expected = (1 / math.log(2) + 1 / math.log(4)) / (1 / math.log(2) + 1 / math.log(3))
    assert ndcg_at_k(recs, {"a", "b"}, 3) == pytest.approx(expected)
    assert ndcg_at_k(["a", "a", "a"], {"a", "b"}, 3) <= 1.0


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="k must be"):
        precision_at_k(["a"], {"a"}, 0)


def test_coverage() -> None:
    assert coverage([["a", "b"], ["b", "c"]], {"a", "b", "c", "d"}) == pytest.approx(0.75)
    # Items outside the catalog do not count; an empty catalog gives 0.
    assert coverage([["a", "zzz"]], {"a", "b"}) == pytest.approx(0.5)
    assert coverage([["a"]], set()) == 0.0


def test_evaluate_keys_and_averaging() -> None:
    lists = [["a", "b", "c"], ["x", "y", "z"]]
    relevant = [{"a"}, {"q"}]
    result = evaluate(lists, relevant, catalog={"a", "b", "c", "x", "y", "z", "q", "w"})
    assert tuple(result) == METRIC_KEYS
    assert set(result) == {
        "coverage",
        "mean_reciprocal_rank_at_25",
        "normalized_discounted_cumulative_gain_at_5",
        "normalized_discounted_cumulative_gain_at_10",
        "normalized_discounted_cumulative_gain_at_25",
        "precision_at_5",
        "precision_at_10",
        "precision_at_25",
    }
    assert result["mean_reciprocal_rank_at_25"] == pytest.approx(0.5)
    assert result["normalized_discounted_cumulative_gain_at_10"] == pytest.approx(0.5)
    assert result["precision_at_5"] == pytest.approx((1 / 5 + 0) / 2)
    assert result["precision_at_25"] == pytest.approx((1 / 25) / 2)
    assert result["coverage"] == pytest.approx(6 / 8)


def test_evaluate_uses_only_the_first_25() -> None:
    recs = ranked(30, {26: "late"})
    result = evaluate([recs], [{"late"}], catalog={"late"})
    assert result["mean_reciprocal_rank_at_25"] == 0.0
    assert result["coverage"] == 0.0


def test_evaluate_edge_cases() -> None:
    assert evaluate([], [], catalog={"a"}) == dict.fromkeys(METRIC_KEYS, 0.0)
    with pytest.raises(ValueError, match="relevant sets"):
        evaluate([["a"]], [], catalog={"a"})
