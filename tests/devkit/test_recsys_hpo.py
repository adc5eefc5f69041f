"""HPO as documented: the recipes' hyperparameter tables, hpoConfig checking, the seeded search (no processes)."""

from __future__ import annotations

from typing import Any

import pytest
from clickstream_devkit.recsys.data import prepare, split
from clickstream_devkit.recsys.hpo import Proposer, best_trial, run_trials, search
from clickstream_devkit.recsys.hpo_config import DEFAULT_OBJECTIVE, HpoPlan, SearchRange, plan
from clickstream_devkit.recsys.hyperparameters import default_ranges
from clickstream_devkit.recsys.metrics import METRIC_KEYS
from clickstream_devkit.recsys.models.base import HyperparameterError
from clickstream_devkit.recsys.recipes import RECIPES
from clickstream_devkit.recsys.train import train

from tests.devkit.test_recsys_models import taste_rows

UP = "aws-user-personalization"


def ranges(**lists: list[dict[str, Any]]) -> dict[str, Any]:
    return {"algorithmHyperParameterRanges": {f"{kind}HyperParameterRanges": value for kind, value in lists.items()}}


# -- the documented tables ------------------------------------------------------------------------


def test_recipes_carry_the_developer_guide_hyperparameters() -> None:
    up = {spec.name: spec for spec in RECIPES[UP].hyperparameters}
    assert set(up) == {
        "hidden_dimension", "bptt", "recency_mask", "min_user_history_length_percentile",
        "max_user_history_length_percentile", "exploration_weight", "exploration_item_age_cut_off",
    }  # fmt: skip
    assert (up["hidden_dimension"].lo, up["hidden_dimension"].hi, up["hidden_dimension"].default) == (32, 256, "149")
    assert (up["bptt"].lo, up["bptt"].hi, up["bptt"].default) == (2, 32, "32")
    assert up["recency_mask"].values == ("true", "false")
    assert {s.name for s in RECIPES[UP].tunable} == {"hidden_dimension", "bptt", "recency_mask"}
    sims = {spec.name: spec for spec in RECIPES["aws-sims"].hyperparameters}
    assert set(sims) == {
        "popularity_discount_factor", "min_cointeraction_count", "min_user_history_length_percentile",
        "max_user_history_length_percentile", "min_item_interaction_count_percentile",
        "max_item_interaction_count_percentile",
    }  # fmt: skip
    assert {s.name for s in RECIPES["aws-sims"].tunable} == {"popularity_discount_factor", "min_cointeraction_count"}
    assert sims["max_item_interaction_count_percentile"].default == "0.9"
    ranking = {spec.name for spec in RECIPES["aws-personalized-ranking"].hyperparameters}
    assert ranking == {"hidden_dimension", "bptt", "recency_mask", "min_user_history_length_percentile",
                       "max_user_history_length_percentile"}  # fmt: skip
    assert RECIPES["aws-popularity-count"].hyperparameters == ()


def test_default_ranges_have_the_describe_algorithm_shape() -> None:
    described = default_ranges(RECIPES[UP].hyperparameters)
    assert {"name": "hidden_dimension", "minValue": 32, "maxValue": 256, "isTunable": True} in described[
        "integerHyperParameterRanges"
    ]
    assert {"name": "recency_mask", "values": ["true", "false"], "isTunable": True} in described[
        "categoricalHyperParameterRanges"
    ]
    weights = [r for r in described["continuousHyperParameterRanges"] if r["name"] == "exploration_weight"]
    assert weights == [{"name": "exploration_weight", "minValue": 0.0, "maxValue": 1.0, "isTunable": False}]


def test_featurization_hyperparameters_are_range_checked_though_unused() -> None:
    spec = next(s for s in RECIPES["aws-sims"].hyperparameters if s.name == "min_item_interaction_count_percentile")
    assert not spec.used and spec.check_value("0.25") == "0.25"
    for bad in ("1.5", "-0.1", "x", "nan"):
        with pytest.raises(HyperparameterError):
            spec.check_value(bad)


# -- hpoConfig ------------------------------------------------------------------------------------


def test_plan_defaults_search_every_tunable_hyperparameter_not_fixed() -> None:
    full = plan(UP, None, {})
    assert [r.name for r in full.ranges] == ["hidden_dimension", "bptt", "recency_mask"]
    assert (full.objective, full.maximize, full.max_training_jobs, full.max_parallel_jobs) == (
        DEFAULT_OBJECTIVE, True, 20, 5,
    )  # fmt: skip
    assert [r.name for r in plan(UP, {}, {"bptt": "8"}).ranges] == ["hidden_dimension", "recency_mask"]
    assert plan("aws-popularity-count", None, {}).ranges == ()


def test_plan_reads_ranges_budget_and_objective() -> None:
    config = {
        **ranges(
            integer=[{"name": "hidden_dimension", "minValue": 32, "maxValue": 64}],
            categorical=[{"name": "recency_mask", "values": ["True", "false", "true"]}],
        ),
        "hpoResourceConfig": {"maxNumberOfTrainingJobs": "8", "maxParallelTrainingJobs": "2"},
        "hpoObjective": {"type": "Minimize", "metricName": "precision_at_5", "metricRegex": "ignored"},
    }
    got = plan(UP, config, {"hidden_dimension": "100"})  # a range wins over a fixed value
    assert got == HpoPlan(
        (SearchRange("hidden_dimension", "integer", 32, 64), SearchRange("recency_mask", "categorical",
                                                                         values=("true", "false"))),
        "precision_at_5", False, 8, 2,
    )  # fmt: skip
    sims = plan("aws-sims", ranges(continuous=[{"name": "popularity_discount_factor", "minValue": 0.1,
                                                "maxValue": 0.9}]), {})  # fmt: skip
    assert sims.ranges == (SearchRange("popularity_discount_factor", "continuous", 0.1, 0.9),)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (ranges(integer=[{"name": "model.id_embedding_dim", "minValue": 30, "maxValue": 200}]),
         "Provide a hyperparameter that is used in the algorithm: "
         "arn:aws:personalize:::algorithm/aws-user-personalization"),
        (ranges(continuous=[{"name": "exploration_weight", "minValue": 0.1, "maxValue": 0.2}]), "is not tunable"),
        (ranges(continuous=[{"name": "hidden_dimension", "minValue": 32, "maxValue": 64}]),
         "give its range in integerHyperParameterRanges"),
        (ranges(integer=[{"name": "hidden_dimension", "minValue": 16, "maxValue": 64}]),
         "outside its allowed range [32, 256]"),
        (ranges(integer=[{"name": "bptt", "minValue": 20, "maxValue": 40}]), "outside its allowed range [2, 32]"),
        (ranges(integer=[{"name": "bptt", "minValue": 9, "maxValue": 3}]), "above maxValue"),
        (ranges(integer=[{"name": "bptt", "minValue": 3}]), "needs minValue and maxValue"),
        (ranges(categorical=[{"name": "recency_mask", "values": ["maybe"]}]), "must be one of true, false"),
        (ranges(categorical=[{"name": "recency_mask", "values": []}]), "at least one value"),
        (ranges(integer=[{"name": "bptt", "minValue": 2, "maxValue": 3}, {"name": "bptt", "minValue": 4,
                                                                        "maxValue": 5}]), "more than one range"),
        ({"hpoResourceConfig": {"maxNumberOfTrainingJobs": "41"}}, "from 1 to 40"),
        ({"hpoResourceConfig": {"maxNumberOfTrainingJobs": "0"}}, "from 1 to 40"),
        ({"hpoResourceConfig": {"maxParallelTrainingJobs": "11"}}, "from 1 to 10"),
        ({"hpoResourceConfig": {"maxParallelTrainingJobs": "two"}}, "from 1 to 10"),
        ({"hpoObjective": {"metricName": "accuracy"}}, "is not a solution metric"),
        ({"hpoObjective": {"type": "Best"}}, "Maximize or Minimize"),
    ],
)  # fmt: skip
def test_plan_refuses_what_the_documentation_does_not_allow(config: dict[str, Any], message: str) -> None:
    with pytest.raises(HyperparameterError) as caught:
        plan(UP, config, {})
    assert message in str(caught.value)


def test_every_metric_is_a_valid_objective() -> None:
    for key in METRIC_KEYS:
        assert plan(UP, {"hpoObjective": {"metricName": key, "type": "maximize"}}, {}).objective == key


# -- the search -----------------------------------------------------------------------------------


def test_a_space_within_the_budget_is_searched_as_a_grid() -> None:
    small = HpoPlan((SearchRange("bptt", "integer", 2, 4), SearchRange("recency_mask", "categorical",
                                                                       values=("true", "false"))),
                    max_training_jobs=6)  # fmt: skip
    seen: list[dict[str, str]] = []
    trials = run_trials(small, {}, lambda c: seen.append(c) or float(c["bptt"]), seed=3)
    assert [t.hyperparameters for t in trials] == [
        {"bptt": b, "recency_mask": m} for b in ("2", "3", "4") for m in ("true", "false")
    ]
    best = best_trial(trials, maximize=True)
    assert best is not None and best.hyperparameters == {"bptt": "4", "recency_mask": "true"}  # ties keep the first
    worst = best_trial(trials, maximize=False)
    assert worst is not None and worst.hyperparameters["bptt"] == "2"


def test_rounds_respect_budget_parallelism_and_ranges() -> None:
    space = HpoPlan((SearchRange("hidden_dimension", "integer", 32, 64),
                     SearchRange("popularity_discount_factor", "continuous", 0.1, 0.9)),
                    max_training_jobs=13, max_parallel_jobs=4)  # fmt: skip
    def score(candidate: dict[str, str]) -> float:
        return -abs(int(candidate["hidden_dimension"]) - 40) - abs(float(candidate["popularity_discount_factor"]) - 0.3)

    trials = run_trials(space, {"hidden_dimension": "149", "popularity_discount_factor": "0.5"}, score, seed=7)
    assert len(trials) == 13
    assert len({tuple(t.hyperparameters.values()) for t in trials}) == 13  # never the same trial twice
    for t in trials:
        assert 32 <= int(t.hyperparameters["hidden_dimension"]) <= 64
        assert 0.1 <= float(t.hyperparameters["popularity_discount_factor"]) <= 0.9
    # The first trial is the solution's own values, moved into the range when outside it.
    assert trials[0].hyperparameters == {"hidden_dimension": "48", "popularity_discount_factor": "0.5"}
    again = run_trials(space, {"hidden_dimension": "149", "popularity_discount_factor": "0.5"}, score, seed=7)
    assert [t.hyperparameters for t in again] == [t.hyperparameters for t in trials]
    proposer = Proposer(space, {}, seed=1)
    first = proposer.next_round(4, None)
    later = proposer.next_round(4, {"hidden_dimension": "40", "popularity_discount_factor": "0.3"})
    assert len(first) == len(later) == 4 and not {tuple(c.values()) for c in first} & {tuple(c.values()) for c in later}


def test_later_rounds_learn_from_the_best_trial() -> None:
    space = HpoPlan((SearchRange("hidden_dimension", "integer", 32, 256),), max_training_jobs=30, max_parallel_jobs=5)
    trials = run_trials(space, {}, lambda c: -abs(int(c["hidden_dimension"]) - 200), seed=11)
    best = best_trial(trials, maximize=True)
    assert best is not None and abs(int(best.hyperparameters["hidden_dimension"]) - 200) <= 3
    late = [int(t.hyperparameters["hidden_dimension"]) for t in trials[20:]]
    assert sum(abs(v - 200) <= 30 for v in late) >= 3  # the exploit half concentrates near the best


def test_an_exhausted_space_ends_the_search_early() -> None:
    tiny = HpoPlan((SearchRange("bptt", "integer", 2, 3),), max_training_jobs=1)
    assert len(run_trials(tiny, {}, lambda c: 0.0, seed=0)) == 1
    three = HpoPlan((SearchRange("bptt", "integer", 2, 4), SearchRange("x", "continuous", 0.5, 0.5)),
                    max_training_jobs=2)  # fmt: skip
    assert {t.hyperparameters["x"] for t in run_trials(three, {}, lambda c: 0.0, seed=0)} == {"0.5"}


def test_search_on_real_data_stays_in_the_requested_ranges() -> None:
    rows, _ = taste_rows(n_users=120, n_items=150, n_interactions=4_000, seed=2)
    train_users = split(prepare(rows, event_type=None, event_value_threshold=None), seed=1).train
    config = {**ranges(integer=[{"name": "hidden_dimension", "minValue": 32, "maxValue": 64}],
                       categorical=[{"name": "recency_mask", "values": ["false"]}]),
              "hpoResourceConfig": {"maxNumberOfTrainingJobs": "5", "maxParallelTrainingJobs": "5"}}  # fmt: skip
    result = search(UP, train_users, {}, hpo_plan=plan(UP, config, {}), items_metadata=None, seed=42)
    assert len(result.trials) == 5
    assert 32 <= int(result.tuned["hidden_dimension"]) <= 64 and result.tuned["recency_mask"] == "false"
    assert result.objective == DEFAULT_OBJECTIVE


def test_training_reports_the_plan_failure_as_the_version_failure() -> None:
    rows, _ = taste_rows(n_users=60, n_items=80, n_interactions=1_500, seed=5)
    bad = ranges(integer=[{"name": "hidden_dimension", "minValue": 1, "maxValue": 9}])
    result = train(rows, recipe=UP, event_type=None, event_value_threshold=None, hyperparameters={},
                   perform_hpo=True, items_metadata=None, seed=1, hpo_config=bad)  # fmt: skip
    assert result.failure_reason is not None and "outside its allowed range" in result.failure_reason
    ignored = train(rows, recipe=UP, event_type=None, event_value_threshold=None, hyperparameters={},
                    perform_hpo=False, items_metadata=None, seed=1, hpo_config=bad)  # fmt: skip
    assert ignored.succeeded and ignored.tuned_hyperparameters == {}
