"""The one entry point the local Personalize calls for CreateSolutionVersion.

FULL training, step by step:

1. validate the hyperparameters against the recipe (bad values fail the version);
2. apply the solution's eventType / eventValueThreshold filters and check the documented
   minimums (failureReason on shortfall);
3. split: 90 % of users train, 10 % are test users (``data.split``);
4. optionally HPO on a validation split of the training users (``hpo``), inside the ranges,
   budget and objective of the solution's ``hpoConfig`` (``hpo_config``);
5. fit on the training users and compute the documented metrics: each test user's oldest
   90 % is passed as the history at recommendation time, the newest 10 % is scored;
6. refit on **all** users with the same hyperparameters and serialise that model. The
   metrics describe the 90 %-users model, as documented; serving the refit means nothing a
   customer sent is silently missing from the deployed model (an item that only test users
   touched would otherwise be unknown to it).

UPDATE training (User-Personalization, HRNN-Coldstart) starts from the previous FULL
version's bytes, adds items unseen at FULL training as exploration candidates, runs no HPO
and computes no metrics: like the real service it creates no new metrics, and the result
carries the FULL version's metrics and tuned hyperparameters unchanged (stored in the model
header) so GetSolutionMetrics on the update shows what it was built from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from clickstream_devkit.recsys.data import Dataset, InteractionRow, check_minimums, prepare, split
from clickstream_devkit.recsys.hpo import search
from clickstream_devkit.recsys.hpo_config import HpoPlan, plan
from clickstream_devkit.recsys.models.base import HyperparameterError, ModelFormatError
from clickstream_devkit.recsys.models.knn import KnnModel
from clickstream_devkit.recsys.offline import evaluate_model
from clickstream_devkit.recsys.recipes import (
    Model,
    UnknownRecipeError,
    effective_hyperparameters,
    fit,
    load_model,
    recipe_info,
)

TrainingMode = Literal["FULL", "UPDATE"]

__all__ = ["InteractionRow", "TrainingMode", "TrainingResult", "load_model", "train"]


@dataclass(frozen=True)
class TrainingResult:
    """Either `failure_reason`, or a model with its metrics."""

    failure_reason: str | None = None
    model_bytes: bytes | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    tuned_hyperparameters: dict[str, str] = field(default_factory=dict)
    #: Recipe defaults + the solution's values + tuned values: what the model was trained with.
    hyperparameters: dict[str, str] = field(default_factory=dict)
    training_seconds: float = 0.0
    #: Interactions left after the eventType / eventValueThreshold filters.
    num_interactions: int = 0
    #: HPO trials as (searched values, objective score), in the order they ran.
    hpo_trials: tuple[tuple[dict[str, str], float], ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.failure_reason is None and self.model_bytes is not None


def train(
    rows: Iterable[InteractionRow],
    *,
    recipe: str,
    event_type: str | None,
    event_value_threshold: float | None,
    hyperparameters: Mapping[str, str],
    perform_hpo: bool,
    items_metadata: Mapping[str, Mapping[str, str]] | None,
    seed: int,
    training_mode: TrainingMode = "FULL",
    previous: bytes | None = None,
    hpo_config: Mapping[str, Any] | None = None,
) -> TrainingResult:
    """Train one solution version (see the module docstring for the steps)."""
    started = time.perf_counter()
    if training_mode not in {"FULL", "UPDATE"}:
        raise ValueError(f"unsupported trainingMode {training_mode!r}")

    def done(**kwargs: Any) -> TrainingResult:
        return TrainingResult(training_seconds=time.perf_counter() - started, **kwargs)

    try:
        info = recipe_info(recipe)
        hps = effective_hyperparameters(info.name, hyperparameters)
        hpo_plan: HpoPlan | None = plan(info.name, hpo_config, hyperparameters) if perform_hpo else None
    except (UnknownRecipeError, HyperparameterError) as exc:
        return done(failure_reason=f"Create failed. {exc}")
    dataset = prepare(rows, event_type=event_type, event_value_threshold=event_value_threshold)

    if training_mode == "UPDATE":
        return _update(
            info.name,
            supported=info.supports_update,
            dataset=dataset,
            items_metadata=items_metadata,
            previous=previous,
            done=done,
        )
    reason = check_minimums(dataset)
    if reason is not None:
        return done(failure_reason=reason, num_interactions=dataset.n_interactions)
    offline = split(dataset, seed)
    tuned: dict[str, str] = {}
    trials: tuple[tuple[dict[str, str], float], ...] = ()
    if hpo_plan is not None:
        result = search(info.name, offline.train, hps, hpo_plan=hpo_plan, items_metadata=items_metadata, seed=seed)
        tuned = result.tuned
        trials = tuple((t.hyperparameters, t.score) for t in result.trials)
        hps.update(tuned)
    evaluated = fit(info.name, offline.train, hps, items_metadata=items_metadata, rng_seed=seed)
    catalog = dataset.all_item_ids | set(items_metadata or {})
    metrics = evaluate_model(evaluated, offline.test_inputs, offline.test_relevant, catalog)
    final: Model = fit(info.name, dataset, hps, items_metadata=items_metadata, rng_seed=seed)
    final.info = {
        "training_mode": "FULL",
        "metrics": metrics,
        "tuned_hyperparameters": tuned,
        "hyperparameters": hps,
        "num_interactions": dataset.n_interactions,
    }
    return done(
        model_bytes=final.to_bytes(),
        metrics=metrics,
        tuned_hyperparameters=tuned,
        hyperparameters=hps,
        num_interactions=dataset.n_interactions,
        hpo_trials=trials,
    )


def _update(
    recipe: str,
    *,
    supported: bool,
    dataset: Dataset,
    items_metadata: Mapping[str, Mapping[str, str]] | None,
    previous: bytes | None,
    done: Callable[..., TrainingResult],
) -> TrainingResult:
    """UPDATE from `previous` (a FULL version, or an earlier UPDATE: new items accumulate)."""
    if not supported:
        return done(
            failure_reason="Create failed. trainingMode UPDATE is only supported for solutions trained with the "
            "User-Personalization or HRNN-Coldstart recipe."
        )
    if previous is None:
        return done(
            failure_reason="Create failed. trainingMode UPDATE requires an active solution version trained "
            "with trainingMode FULL."
        )
    try:
        base = load_model(recipe, previous)
    except (ModelFormatError, ValueError) as exc:
        return done(failure_reason=f"Create failed. Previous solution version is unusable: {exc}")
    if not isinstance(base, KnnModel):
        return done(failure_reason=f"Create failed. Previous solution version is not a {recipe} model.")
    updated = base.update(dataset, items_metadata)
    updated.info = {**base.info, "training_mode": "UPDATE"}
    return done(
        model_bytes=updated.to_bytes(),
        metrics=dict(base.info.get("metrics", {})),
        tuned_hyperparameters=dict(base.info.get("tuned_hyperparameters", {})),
        hyperparameters=dict(base.info.get("hyperparameters", {})),
        num_interactions=dataset.n_interactions,
    )
