"""Training data: the solution's filters, the documented minimums, the offline split."""

from __future__ import annotations

import numpy as np
import pytest
from clickstream_devkit.recsys.data import (
    InteractionRow,
    check_minimums,
    held_out_count,
    prepare,
    split,
)

USERS_MESSAGE = "Create failed. Dataset has fewer than 25 users with at least 2 interactions each."


def row(user: str, item: str, ts: float, event_type: str = "click", value: float | None = None) -> InteractionRow:
    return InteractionRow(user, item, ts, event_type, value)


def many_rows(n_users: int, per_user: int, *, seed: int = 0) -> list[InteractionRow]:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for k in range(per_user):
            rows.append(row(f"u{u:04d}", f"i{int(rng.integers(50))}", 1000.0 * u + k))
    rng.shuffle(rows)  # arrival order must not matter
    return rows


# -- prepare ---------------------------------------------------------------------------------


def test_prepare_encodes_and_sorts_each_history_chronologically() -> None:
    rows = [row("b", "x", 3.0), row("a", "y", 2.0), row("a", "x", 1.0), row("b", "z", 1.0), row("a", "z", 2.0)]
    ds = prepare(rows, event_type=None, event_value_threshold=None)
    assert ds.user_ids == ("a", "b")
    assert ds.item_ids == ("x", "y", "z")
    assert ds.n_interactions == 5
    # Equal timestamps keep arrival order (y arrived before z for user a).
    assert ds.history(0) == ["x", "y", "z"]
    assert ds.history(1) == ["z", "x"]
    assert ds.users.dtype == np.int64
    assert list(ds.user_offsets) == [0, 3, 5]
    assert list(ds.item_counts()) == [2, 1, 2]


def test_event_type_filter_is_exact() -> None:
    rows = [row("a", "x", 1, "click"), row("a", "y", 2, "purchase"), row("a", "z", 3, "Click")]
    ds = prepare(rows, event_type="click", event_value_threshold=None)
    assert ds.history(0) == ["x"]
    # Filtered-out items still belong to the Interactions dataset (used for coverage).
    assert ds.all_item_ids == {"x", "y", "z"}
    assert prepare(rows, event_type=None, event_value_threshold=None).n_interactions == 3


def test_event_value_threshold_keeps_greater_or_equal_and_drops_missing_values() -> None:
    rows = [
        row("a", "low", 1, value=0.5),
        row("a", "equal", 2, value=0.7),
        row("a", "high", 3, value=0.9),
        row("a", "none", 4, value=None),
    ]
    ds = prepare(rows, event_type=None, event_value_threshold=0.7)
    assert ds.history(0) == ["equal", "high"]
    # Without a threshold a missing value is irrelevant.
    assert prepare(rows, event_type=None, event_value_threshold=None).n_interactions == 4


def test_both_filters_combine() -> None:
    rows = [row("a", "x", 1, "watch", 80), row("a", "y", 2, "watch", 10), row("a", "z", 3, "click", 99)]
    ds = prepare(rows, event_type="watch", event_value_threshold=70)
    assert ds.history(0) == ["x"]


# -- minimums --------------------------------------------------------------------------------


def test_too_few_interactions() -> None:
    ds = prepare(many_rows(333, 3)[:999], event_type=None, event_value_threshold=None)
    reason = check_minimums(ds)
    assert reason is not None
    assert reason == "Create failed. Dataset has fewer than 1000 interactions."


def test_too_few_interactions_names_the_filter() -> None:
    rows = many_rows(100, 20)
    rows[:5] = [row(r.user_id, r.item_id, r.timestamp, "purchase") for r in rows[:5]]
    ds = prepare(rows, event_type="purchase", event_value_threshold=None)
    assert check_minimums(ds) == (
        "Create failed. Dataset has fewer than 1000 interactions after filtering by event type: purchase."
    )
    ds = prepare(rows, event_type=None, event_value_threshold=0.5)
    assert check_minimums(ds) == (
        "Create failed. Dataset has fewer than 1000 interactions after filtering by event value threshold: 0.5."
    )


def test_too_few_users_with_two_interactions() -> None:
    # 24 users with plenty of interactions, plus many users with exactly one.
    rows = many_rows(24, 40) + [row(f"single{u}", "i1", float(u)) for u in range(100)]
    ds = prepare(rows, event_type=None, event_value_threshold=None)
    assert ds.n_interactions >= 1000
    assert check_minimums(ds) == USERS_MESSAGE
    rows += [row("u-extra", "i1", 1.0), row("u-extra", "i2", 2.0)]
    assert check_minimums(prepare(rows, event_type=None, event_value_threshold=None)) is None


def test_exactly_the_minimums_pass() -> None:
    ds = prepare(many_rows(25, 40), event_type=None, event_value_threshold=None)
    assert ds.n_interactions == 1000
    assert check_minimums(ds) is None


# -- split -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "held_out"), [(1, 1), (2, 1), (10, 1), (14, 1), (15, 2), (20, 2), (25, 3), (100, 10)])
def test_held_out_count(n: int, held_out: int) -> None:
    assert held_out_count(n) == held_out


def test_split_proportions_and_time_order() -> None:
    ds = prepare(many_rows(200, 20), event_type=None, event_value_threshold=None)
    sp = split(ds, seed=42)
    assert len(sp.test_users) == 20
    assert sp.train.n_users == 180
    assert set(sp.train.user_ids).isdisjoint(sp.test_users)
    # Train users keep all their interactions.
    assert sp.train.n_interactions == 180 * 20
    for user, inputs, relevant in zip(sp.test_users, sp.test_inputs, sp.test_relevant, strict=True):
        history = ds.history(ds.user_ids.index(user))
        assert len(inputs) == 18  # oldest 90 %
        assert list(inputs) == history[:18]
        assert relevant == frozenset(history[18:])  # newest 10 %


def test_split_is_deterministic_for_a_seed() -> None:
    ds = prepare(many_rows(120, 12), event_type=None, event_value_threshold=None)
    first, again = split(ds, seed=7), split(ds, seed=7)
    assert first.test_users == again.test_users
    assert first.test_inputs == again.test_inputs
    assert np.array_equal(first.train.items, again.train.items)
    others = {split(ds, seed=s).test_users for s in range(8, 13)}
    assert any(o != first.test_users for o in others)


def test_split_short_histories() -> None:
    rows = [row(f"u{u}", f"i{u % 7}", float(u)) for u in range(30)]  # one interaction each
    rows += [row("u0", "i9", 100.0)]
    sp = split(prepare(rows, event_type=None, event_value_threshold=None), seed=3)
    assert len(sp.test_users) == 3
    for inputs, relevant in zip(sp.test_inputs, sp.test_relevant, strict=True):
        assert len(relevant) == 1  # at least one interaction is always scored
        assert len(inputs) <= 1


def test_split_needs_two_users() -> None:
    with pytest.raises(ValueError, match="two users"):
        split(prepare([row("a", "x", 1.0)], event_type=None, event_value_threshold=None), seed=0)
