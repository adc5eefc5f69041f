"""Local recommenders: every recipe trains and serves, and each behaves like its recipe."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from clickstream_devkit.recsys.data import Dataset, InteractionRow, prepare
from clickstream_devkit.recsys.models.base import HyperparameterError, ModelFormatError, top_n
from clickstream_devkit.recsys.models.cooccurrence import cooccurrence, distinct_pairs
from clickstream_devkit.recsys.models.knn import KnnModel
from clickstream_devkit.recsys.models.popularity import PopularityModel
from clickstream_devkit.recsys.models.sims import SimsModel
from clickstream_devkit.recsys.recipes import (
    RECIPES,
    UnknownRecipeError,
    effective_hyperparameters,
    fit,
    load_model,
    recipe_info,
)

N_CATEGORIES = 8
Metadata = dict[str, dict[str, str]]
Taste = tuple[Dataset, Metadata]


def taste_rows(
    n_users: int = 300,
    n_items: int = 400,
    n_interactions: int = 20_000,
    *,
    seed: int = 7,
    noise: float = 0.1,
) -> tuple[list[InteractionRow], dict[str, dict[str, str]]]:
    """Users with taste: 1-2 preferred categories each, Zipf popularity inside a category.

    Items ``item-<n>`` belong to category ``n // (n_items / 8)``; 10 % of events are random
    items (noise). Returns the rows and the Items-dataset metadata (CATEGORY per item).
    """
    rng = np.random.default_rng(seed)
    per_cat = n_items // N_CATEGORIES
    zipf = 1.0 / np.arange(1, per_cat + 1) ** 1.1
    zipf /= zipf.sum()
    lengths = rng.multinomial(n_interactions, np.full(n_users, 1.0 / n_users))
    rows: list[InteractionRow] = []
    for u in range(n_users):
        n = int(lengths[u])
        cats = rng.choice(N_CATEGORIES, size=int(rng.integers(1, 3)), replace=False)
        items = rng.choice(cats, size=n) * per_cat + rng.choice(per_cat, size=n, p=zipf)
        noisy = rng.random(n) < noise
        items[noisy] = rng.integers(n_items, size=int(noisy.sum()))
        times = 1_600_000_000.0 + rng.uniform(0, 1e6) + np.cumsum(rng.exponential(600.0, size=n))
        rows.extend(
            InteractionRow(f"user-{u}", f"item-{int(i)}", float(t), "click", None)
            for i, t in zip(items, times, strict=True)
        )
    metadata = {f"item-{i}": {"CATEGORY": f"cat-{i // per_cat}"} for i in range(n_items)}
    return rows, metadata


def category(item: str, n_items: int = 400) -> int:
    return int(item.split("-")[1]) // (n_items // N_CATEGORIES)


@pytest.fixture(scope="module")
def taste() -> Taste:
    rows, metadata = taste_rows(n_users=200, n_interactions=12_000)
    return prepare(rows, event_type=None, event_value_threshold=None), metadata


def items_of_category(dataset: Dataset, cat: int, k: int) -> list[str]:
    counts = dataset.item_counts()
    ranked = sorted(range(dataset.n_items), key=lambda i: -counts[i])
    return [dataset.item_ids[i] for i in ranked if category(dataset.item_ids[i]) == cat][:k]


# -- every recipe ------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_recipe_trains_recommends_and_round_trips(recipe: str, taste: Taste) -> None:
    dataset, metadata = taste
    model = fit(recipe, dataset, RECIPES[recipe].default_hyperparameters, items_metadata=metadata)
    history = items_of_category(dataset, 2, 6)
    recs = model.recommend(history, 25)
    assert len(recs) == 25
    items = [i for i, _ in recs]
    assert len(set(items)) == 25
    assert set(items) <= model.known_items
    scores = [s for _, s in recs]
    assert scores == sorted(scores, reverse=True)
    excluded = set(items[:5])
    assert excluded.isdisjoint(i for i, _ in model.recommend(history, 25, exclude=excluded))

    blob = model.to_bytes()
    again = load_model(recipe, blob)
    assert type(again) is type(model)
    assert again.recommend(history, 25) == recs
    assert again.recommend([], 10) == model.recommend([], 10)
    assert again.known_items == model.known_items
    assert again.to_bytes() == blob
    if isinstance(model, SimsModel):
        assert isinstance(again, SimsModel)
        assert again.related(history[0], 20) == model.related(history[0], 20)
    if isinstance(model, KnnModel):
        assert isinstance(again, KnnModel)
        inputs = [*items[::-1], "never-seen"]
        assert again.rank(history, inputs) == model.rank(history, inputs)


def test_recipe_table() -> None:
    for name, info in RECIPES.items():
        assert info.name == name
        assert info.arn == f"arn:aws:personalize:::recipe/{name}"
        assert info.recipe_type in {"USER_PERSONALIZATION", "RELATED_ITEMS", "PERSONALIZED_RANKING"}
        assert "Local stand-in" in info.description
        for spec in info.hyperparameters:  # the documented table and the models agree on every bound
            if spec.kind == "categorical":
                for value in spec.values:
                    effective_hyperparameters(name, {spec.name: value})
                continue
            for bound in (spec.lo, spec.hi):
                if not (spec.lo_exclusive and bound == spec.lo):
                    effective_hyperparameters(name, {spec.name: str(int(bound) if spec.kind == "integer" else bound)})
            with pytest.raises(HyperparameterError):
                effective_hyperparameters(name, {spec.name: str(spec.hi + 1)})
    assert RECIPES["aws-sims"].recipe_type == "RELATED_ITEMS"
    assert RECIPES["aws-personalized-ranking"].recipe_type == "PERSONALIZED_RANKING"
    assert {n for n, i in RECIPES.items() if i.supports_update} == {"aws-user-personalization", "aws-hrnn-coldstart"}
    assert recipe_info("arn:aws:personalize:::recipe/aws-sims").name == "aws-sims"
    with pytest.raises(UnknownRecipeError):
        recipe_info("aws-does-not-exist")


def test_hyperparameter_validation() -> None:
    merged = effective_hyperparameters("aws-user-personalization", {"bptt": "8", "recency_mask": "False", "x": "y"})
    assert merged["bptt"] == "8"
    assert merged["recency_mask"] == "false"
    assert merged["hidden_dimension"] == "149"  # recipe default
    assert merged["x"] == "y"  # unknown names are carried, not used
    for bad in ({"hidden_dimension": "12"}, {"bptt": "abc"}, {"recency_mask": "maybe"}, {"exploration_weight": "2"}):
        with pytest.raises(HyperparameterError):
            effective_hyperparameters("aws-user-personalization", bad)
    with pytest.raises(HyperparameterError):
        effective_hyperparameters("aws-sims", {"popularity_discount_factor": "1.5"})
    assert effective_hyperparameters("aws-popularity-count", {}) == {}


def test_load_model_rejects_foreign_bytes(taste: Taste) -> None:
    dataset, _ = taste
    blob = fit("aws-sims", dataset, {}).to_bytes()
    with pytest.raises(ModelFormatError):
        load_model("aws-user-personalization", blob)
    with pytest.raises(ModelFormatError):
        load_model("aws-sims", b"not a model")
    with pytest.raises(ModelFormatError):
        KnnModel.from_bytes(blob)


# -- building blocks ---------------------------------------------------------------------------


def test_cooccurrence_matches_brute_force() -> None:
    rows = [
        InteractionRow(u, i, float(t))
        for t, (u, i) in enumerate(
            [("a", "x"), ("a", "y"), ("a", "x"), ("b", "x"), ("b", "y"), ("b", "z"), ("c", "z"), ("c", "y"), ("d", "w")]
        )
    ]
    ds = prepare(rows, event_type=None, event_value_threshold=None)
    co = cooccurrence(ds)
    got = {(ds.item_ids[r], ds.item_ids[c]): n for r, c, n in zip(co.rows, co.cols, co.counts, strict=True)}
    per_user: dict[str, set[str]] = {}
    for r in rows:
        per_user.setdefault(r.user_id, set()).add(r.item_id)
    expected = Counter((i, j) for items in per_user.values() for i in items for j in items if i != j)
    assert got == dict(expected)
    assert dict(zip(ds.item_ids, co.item_users, strict=True)) == {"w": 1, "x": 2, "y": 3, "z": 2}


def test_history_cap_keeps_the_most_recent_items() -> None:
    rows = [InteractionRow("a", f"i{k}", float(k)) for k in range(10)] + [InteractionRow("a", "i0", 99.0)]
    ds = prepare(rows, event_type=None, event_value_threshold=None)
    users, items = distinct_pairs(ds, max_history=3)
    assert sorted(ds.item_ids[i] for i in items) == ["i0", "i8", "i9"]
    assert set(users.tolist()) == {0}


def test_top_n_is_deterministic_on_ties() -> None:
    scores = np.array([0.5, 1.0, 0.5, 0.5, -np.inf])
    ids = ["a", "b", "c", "d", "e"]
    assert top_n(scores, ids, 3) == [("b", 1.0), ("a", 0.5), ("c", 0.5)]
    assert top_n(scores, ids, 10, exclude={"a"}) == [("b", 1.0), ("c", 0.5), ("d", 0.5)]
    assert top_n(scores, ids, 0) == []


# -- popularity ----------------------------------------------------------------------------------


def test_popularity_ignores_history(taste: Taste) -> None:
    dataset, _ = taste
    model = PopularityModel.fit(dataset, {})
    counts = dataset.item_counts()
    top = model.recommend([], 5)
    assert [i for i, _ in top] == [dataset.item_ids[i] for i in np.argsort(-counts, kind="stable")[:5]]
    assert top[0][1] == 1.0
    assert model.recommend(items_of_category(dataset, 3, 5), 5) == top


# -- SIMS ------------------------------------------------------------------------------------------


def test_sims_related_items_share_the_category(taste: Taste) -> None:
    dataset, _ = taste
    model = SimsModel.fit(dataset, {})
    shares = []
    for cat in range(N_CATEGORIES):
        for item in items_of_category(dataset, cat, 5):
            related = [i for i, _ in model.related(item, 10)]
            assert item not in related
            shares.append(sum(category(i) == cat for i in related) / len(related))
    assert float(np.mean(shares)) >= 0.8, shares


def test_sims_unknown_item_gets_popular_items(taste: Taste) -> None:
    dataset, _ = taste
    model = SimsModel.fit(dataset, {})
    popular = [i for i, _ in PopularityModel.fit(dataset, {}).recommend([], 10)]
    assert [i for i, _ in model.related("no-such-item", 10)] == popular
    # A long request is padded with popular items rather than cut short.
    assert len(model.related(items_of_category(dataset, 0, 1)[0], 300)) == 300


def test_sims_popularity_discount_factor(taste: Taste) -> None:
    dataset, _ = taste
    counts = dict(zip(dataset.item_ids, dataset.item_counts(), strict=True))
    seeds = [items_of_category(dataset, c, 3)[-1] for c in range(N_CATEGORIES)]

    def mean_popularity(factor: str) -> float:
        model = SimsModel.fit(dataset, {"popularity_discount_factor": factor, "min_cointeraction_count": "1"})
        return float(np.mean([counts[i] for s in seeds for i, _ in model.related(s, 10)]))

    assert mean_popularity("0") > mean_popularity("0.5") > mean_popularity("1")


# -- user personalisation ------------------------------------------------------------------------


def test_current_history_drives_recommendations(taste: Taste) -> None:
    dataset, _ = taste
    model = fit("aws-user-personalization", dataset, {})
    history = items_of_category(dataset, 1, 8)
    before = [category(i) for i, _ in model.recommend(history, 10)]
    assert Counter(before).most_common(1)[0][0] == 1
    # Events received after training: the same user now browses category 6.
    history += items_of_category(dataset, 6, 20)
    after = [category(i) for i, _ in model.recommend(history, 10)]
    assert Counter(after).most_common(1)[0][0] == 6


def test_cold_user_gets_popular_items(taste: Taste) -> None:
    dataset, _ = taste
    model = fit("aws-user-personalization-v2", dataset, {})
    popular = PopularityModel.fit(dataset, {}).recommend([], 10)
    assert [i for i, _ in model.recommend([], 10)] == [i for i, _ in popular]
    assert [i for i, _ in model.recommend(["unknown-item"], 10)] == [i for i, _ in popular]


def test_personalized_ranking_puts_unknown_items_last(taste: Taste) -> None:
    dataset, _ = taste
    model = fit("aws-personalized-ranking", dataset, {})
    assert isinstance(model, KnnModel)
    history = items_of_category(dataset, 4, 6)
    inputs = ["mystery-1", *items_of_category(dataset, 0, 3), "mystery-2", *items_of_category(dataset, 4, 3)]
    inputs.append(inputs[1])  # a duplicate is ranked once
    ranking = model.rank(history, inputs)
    names = [i for i, _ in ranking]
    assert names[-2:] == ["mystery-1", "mystery-2"]
    assert [s for _, s in ranking[-2:]] == [0.0, 0.0]
    assert sorted(names) == sorted(set(inputs))
    known_scores = [s for _, s in ranking[:-2]]
    assert known_scores == sorted(known_scores, reverse=True)
    assert {category(i) for i in names[:3]} == {4}


def with_cold_items(metadata: dict[str, dict[str, str]], created: float | None = None) -> dict[str, dict[str, str]]:
    """The catalog plus three never-interacted items in category 0 and three in category 5."""
    extra = {f"cold-{c}-{k}": {"CATEGORY": f"cat-{c}"} for c in (0, 5) for k in range(3)}
    if created is not None:
        for meta in extra.values():
            meta["CREATION_TIMESTAMP"] = str(created)
    return {**metadata, **extra}


def test_hrnn_metadata_scores_cold_items_by_category(taste: Taste) -> None:
    dataset, metadata = taste
    catalog = with_cold_items(metadata)
    model = fit("aws-hrnn-metadata", dataset, {}, items_metadata=catalog)
    assert isinstance(model, KnnModel)
    history = items_of_category(dataset, 0, 10)
    ranking = dict(model.rank(history, [f"cold-{c}-{k}" for c in (0, 5) for k in range(3)]))
    assert min(ranking[f"cold-0-{k}"] for k in range(3)) > 0.0
    assert max(ranking[f"cold-5-{k}"] for k in range(3)) == 0.0
    recommended = {i for i, _ in model.recommend(history, 60)}
    assert {f"cold-0-{k}" for k in range(3)} <= recommended
    assert not {f"cold-5-{k}" for k in range(3)} & recommended
    # The non-metadata HRNN cannot recommend items it never saw.
    plain = fit("aws-hrnn", dataset, {}, items_metadata=catalog)
    assert "cold-0-0" not in plain.known_items


def test_user_personalization_explores_cold_items(taste: Taste) -> None:
    dataset, metadata = taste
    model = fit("aws-user-personalization", dataset, {}, items_metadata=with_cold_items(metadata))
    assert isinstance(model, KnnModel)
    history = items_of_category(dataset, 2, 10)
    cold = {i for i in model.known_items if i.startswith("cold-")}
    assert len(cold) == 6
    # exploration_weight is the share of the list given to exploration candidates.
    assert cold <= {i for i, _ in model.recommend(history, 25)}  # round(0.3 * 25) = 8 slots >= 6 candidates
    top10 = [i for i, _ in model.recommend(history, 10)]
    assert len(cold & set(top10)) == 3
    assert top10[0] not in cold  # slots are spread down the list, the best trained item stays first
    assert cold <= {i for i, _ in model.recommend(history, 10, exploration_weight=1.0)}
    # Excluding explored and trained items alike.
    some = {"cold-0-0", top10[0]}
    assert some.isdisjoint(i for i, _ in model.recommend(history, 25, exclude=some))
    scores = [s for _, s in model.recommend(history, 25)]
    assert scores == sorted(scores, reverse=True)
    assert not cold & {i for i, _ in model.recommend(history, 400, exploration_weight=0.0)}
    # Items created long before the latest interaction are outside the age cut-off.
    old = fit("aws-user-personalization", dataset, {}, items_metadata=with_cold_items(metadata, created=0.0))
    assert not cold & {i for i, _ in old.recommend(history, 400)}


def test_update_surfaces_new_items(taste: Taste) -> None:
    dataset, _ = taste
    model = fit("aws-user-personalization", dataset, {})
    assert isinstance(model, KnnModel)
    latest = float(dataset.timestamps.max())
    new_rows = prepare(
        [InteractionRow(f"user-{u}", "brand-new", latest + u) for u in range(5)]
        + [InteractionRow("user-1", "also-new", latest + 10)],
        event_type=None,
        event_value_threshold=None,
    )
    updated = model.update(new_rows, {"catalog-only": {"CATEGORY": "cat-1"}})
    history = items_of_category(dataset, 3, 5)
    assert "brand-new" not in model.known_items
    assert {"brand-new", "also-new", "catalog-only"} <= updated.known_items
    recs = [i for i, _ in updated.recommend(history, 25)]
    # More interactions since FULL training -> explored first; the catalog-only item last.
    assert recs.index("brand-new") < recs.index("also-new") < recs.index("catalog-only")
    # Warm scores are untouched by UPDATE.
    warm_before = list(model.recommend(history, 60))
    warm_after = [r for r in updated.recommend(history, 60) if r[0] in model.known_items]
    assert warm_after == warm_before[: len(warm_after)]
    # Round trip keeps the explored items.
    assert load_model("aws-user-personalization", updated.to_bytes()).recommend(history, 60) == updated.recommend(
        history, 60
    )
    with pytest.raises(ValueError, match="UPDATE"):
        fit("aws-hrnn", dataset, {}).update(new_rows)  # type: ignore[union-attr]
