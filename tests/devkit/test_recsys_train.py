"""train(): the CreateSolutionVersion entry point -- metrics, failures, HPO, UPDATE."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import pytest
from clickstream_devkit.recsys.data import InteractionRow, prepare, split
from clickstream_devkit.recsys.hpo import search, tune
from clickstream_devkit.recsys.metrics import METRIC_KEYS
from clickstream_devkit.recsys.models.knn import KnnModel
from clickstream_devkit.recsys.recipes import RECIPES, load_model
from clickstream_devkit.recsys.train import TrainingResult, train

from tests.devkit.test_recsys_models import taste_rows
from tests.helpers import write_result

Rows = list[InteractionRow]
TasteRows = tuple[Rows, dict[str, dict[str, str]]]


@pytest.fixture(scope="module")
def taste() -> TasteRows:
    return taste_rows()  # 300 users, 400 items in 8 categories, ~20k interactions


def run(
    rows: Sequence[InteractionRow],
    recipe: str,
    *,
    hpo: bool = False,
    seed: int = 1,
    hyperparameters: Mapping[str, str] | None = None,
    items_metadata: Mapping[str, Mapping[str, str]] | None = None,
    event_type: str | None = None,
    event_value_threshold: float | None = None,
    training_mode: str = "FULL",
    previous: bytes | None = None,
) -> TrainingResult:
    return train(
        rows,
        recipe=recipe,
        event_type=event_type,
        event_value_threshold=event_value_threshold,
        hyperparameters=hyperparameters or {},
        perform_hpo=hpo,
        items_metadata=items_metadata,
        seed=seed,
        training_mode=training_mode,  # type: ignore[arg-type]
        previous=previous,
    )


def test_user_personalization_beats_popularity_count(taste: TasteRows) -> None:
    rows, _ = taste
    results = {recipe: run(rows, recipe) for recipe in ("aws-popularity-count", "aws-sims", "aws-user-personalization")}
    write_result("recsys_taste_metrics", {recipe: {**res.metrics, "training_seconds": res.training_seconds}
                                          for recipe, res in results.items()})  # fmt: skip
    up = results["aws-user-personalization"].metrics
    pop = results["aws-popularity-count"].metrics
    assert up["normalized_discounted_cumulative_gain_at_10"] > pop["normalized_discounted_cumulative_gain_at_10"]
    assert up["precision_at_10"] > pop["precision_at_10"]
    assert up["coverage"] > pop["coverage"]


def test_metrics_shape_and_determinism(taste: TasteRows) -> None:
    rows, _ = taste
    first = run(rows, "aws-user-personalization")
    again = run(rows, "aws-user-personalization")
    assert first.succeeded
    assert tuple(first.metrics) == METRIC_KEYS
    assert all(0.0 <= v <= 1.0 for v in first.metrics.values())
    assert first.metrics == again.metrics
    assert first.model_bytes == again.model_bytes
    assert first.num_interactions == len(rows)
    assert first.training_seconds > 0
    assert first.tuned_hyperparameters == {}
    assert first.hyperparameters["hidden_dimension"] == "149"
    # The metrics travel inside the model (an UPDATE carries them over).
    assert load_model("aws-user-personalization", first.model_bytes or b"").info["metrics"] == first.metrics


def test_served_model_knows_items_only_test_users_touched(taste: TasteRows) -> None:
    rows, _ = taste
    dataset = prepare(rows, event_type=None, event_value_threshold=None)
    test_user = split(dataset, seed=1).test_users[0]
    latest = max(r.timestamp for r in rows)
    extra = [*rows, InteractionRow(test_user, "only-a-test-user-had-this", latest + 1)]
    res = run(extra, "aws-user-personalization")
    model = load_model("aws-user-personalization", res.model_bytes or b"")
    assert "only-a-test-user-had-this" in model.known_items


def test_too_little_data_fails_with_the_documented_reason(taste: TasteRows) -> None:
    rows, _ = taste
    res = run(rows[:999], "aws-user-personalization")
    assert not res.succeeded
    assert res.failure_reason == "Create failed. Dataset has fewer than 1000 interactions."
    assert res.model_bytes is None
    assert res.metrics == {}
    # The solution's event type filter applies before the check.
    res = run(rows, "aws-sims", event_type="purchase")
    assert res.failure_reason == (
        "Create failed. Dataset has fewer than 1000 interactions after filtering by event type: purchase."
    )
    few_users = [InteractionRow(f"u{k % 20}", f"i{k}", float(k)) for k in range(1200)]
    res = run(few_users, "aws-popularity-count")
    assert res.failure_reason == "Create failed. Dataset has fewer than 25 users with at least 2 interactions each."


def test_event_value_threshold_is_applied(taste: TasteRows) -> None:
    rows, _ = taste
    valued = [InteractionRow(r.user_id, r.item_id, r.timestamp, r.event_type, float(k % 4)) for k, r in enumerate(rows)]
    res = run(valued, "aws-popularity-count", event_value_threshold=2.0)
    assert res.succeeded
    assert res.num_interactions == sum(1 for r in valued if (r.event_value or 0) >= 2.0)


def test_bad_configuration_fails_the_version(taste: TasteRows) -> None:
    rows, _ = taste
    res = run(rows, "aws-user-personalization", hyperparameters={"bptt": "100"})
    assert res.failure_reason is not None
    assert "bptt" in res.failure_reason
    res = run(rows, "aws-no-such-recipe")
    assert res.failure_reason is not None
    assert "aws-no-such-recipe" in res.failure_reason


# -- HPO ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", ["aws-user-personalization", "aws-sims"])
def test_hpo_tunes_every_tunable_hyperparameter_inside_its_range_deterministically(
    recipe: str, taste: TasteRows
) -> None:
    rows, _ = taste
    info = RECIPES[recipe]
    first = run(rows, recipe, hpo=True)
    again = run(rows, recipe, hpo=True)
    assert set(first.tuned_hyperparameters) == {spec.name for spec in info.tunable}
    for spec in info.tunable:
        assert spec.check_value(first.tuned_hyperparameters[spec.name]) == first.tuned_hyperparameters[spec.name]
        assert first.hyperparameters[spec.name] == first.tuned_hyperparameters[spec.name]
    assert first.tuned_hyperparameters == again.tuned_hyperparameters
    assert first.model_bytes == again.model_bytes
    assert len(first.hpo_trials) == 20  # the default maxNumberOfTrainingJobs


def test_hpo_keeps_the_best_trial(taste: TasteRows) -> None:
    rows, _ = taste
    train_users = split(prepare(rows, event_type=None, event_value_threshold=None), seed=1).train
    result = search("aws-sims", train_users, {}, items_metadata=None, seed=1)
    best = max(t.score for t in result.trials)
    assert next(t for t in result.trials if t.score == best).hyperparameters == result.tuned
    assert len({t.score for t in result.trials}) > 1  # the knobs matter on this data


def test_hpo_never_sees_the_test_users(taste: TasteRows) -> None:
    rows, _ = taste
    dataset = prepare(rows, event_type=None, event_value_threshold=None)
    test_users = set(split(dataset, seed=1).test_users)
    # Rewrite the test users' held-out behaviour completely: tuning must not change.
    scrambled = [
        InteractionRow(r.user_id, f"item-{(int(r.item_id.split('-')[1]) * 7 + 3) % 400}", r.timestamp)
        if r.user_id in test_users
        else r
        for r in rows
    ]
    base = run(rows, "aws-sims", hpo=True)
    other = run(scrambled, "aws-sims", hpo=True)
    assert base.tuned_hyperparameters == other.tuned_hyperparameters
    assert base.metrics != other.metrics


def test_recipes_without_a_knob_tune_nothing(taste: TasteRows) -> None:
    rows, _ = taste
    dataset = prepare(rows, event_type=None, event_value_threshold=None)
    assert tune("aws-popularity-count", dataset, {}) == {}
    assert run(rows, "aws-popularity-count", hpo=True).tuned_hyperparameters == {}


# -- UPDATE -------------------------------------------------------------------------------------


def test_update_surfaces_new_items_and_carries_metrics(taste: TasteRows) -> None:
    rows, metadata = taste
    full = run(rows, "aws-user-personalization", hpo=True, items_metadata=metadata)
    assert full.succeeded
    latest = max(r.timestamp for r in rows)
    new_items = [f"new-{k}" for k in range(3)]
    more = rows + [InteractionRow(f"user-{u}", new_items[u % 3], latest + u) for u in range(30)]
    catalog = {**metadata, **{item: {"CATEGORY": "cat-0"} for item in new_items}}
    update = run(
        more, "aws-user-personalization", items_metadata=catalog, training_mode="UPDATE", previous=full.model_bytes
    )
    assert update.succeeded
    assert update.metrics == full.metrics
    assert update.tuned_hyperparameters == full.tuned_hyperparameters
    before = load_model("aws-user-personalization", full.model_bytes or b"")
    after = load_model("aws-user-personalization", update.model_bytes or b"")
    assert isinstance(after, KnnModel)
    assert after.info["training_mode"] == "UPDATE"
    assert not set(new_items) & before.known_items
    history = [r.item_id for r in rows if r.user_id == "user-5"]
    assert set(new_items) <= {i for i, _ in after.recommend(history, 25)}
    assert not set(new_items) & {i for i, _ in before.recommend(history, 25)}


def test_update_is_refused_where_the_service_refuses_it(taste: TasteRows) -> None:
    rows, _ = taste
    sims = run(rows, "aws-sims")
    res = run(rows, "aws-sims", training_mode="UPDATE", previous=sims.model_bytes)
    assert res.failure_reason is not None
    assert "UPDATE" in res.failure_reason
    res = run(rows, "aws-user-personalization", training_mode="UPDATE", previous=None)
    assert res.failure_reason is not None
    assert "FULL" in res.failure_reason
    res = run(rows, "aws-user-personalization", training_mode="UPDATE", previous=sims.model_bytes)
    assert res.failure_reason is not None


def test_user_personalization_with_hpo_trains_on_20k_interactions(taste: TasteRows) -> None:
    """Its duration goes to build/test-results (measured, not asserted: benchmarks measure speed)."""
    rows, _ = taste
    started = time.perf_counter()
    res = run(rows, "aws-user-personalization", hpo=True)
    elapsed = time.perf_counter() - started
    write_result("recsys_training_time_20k", {"recipe": "aws-user-personalization", "hpo": True, "seconds": elapsed})
    assert res.succeeded
