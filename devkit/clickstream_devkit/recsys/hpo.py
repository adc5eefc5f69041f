"""Hyperparameter optimisation: a small deterministic grid search over the recipe's main knob.

The real service runs Bayesian HPO over ranges; locally a handful of grid points on one
validation split is enough to make ``performHPO`` change something measurable. The
validation split is carved from the **training users only** (the same 90/10 user split,
seeded differently), so the test users behind the reported metrics never influence the
choice. The objective is NDCG@10; ties keep the earlier grid value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from clickstream_devkit.recsys.data import Dataset, split
from clickstream_devkit.recsys.offline import evaluate_model
from clickstream_devkit.recsys.recipes import fit, recipe_info

OBJECTIVE = "normalized_discounted_cumulative_gain_at_10"
#: Added to the training seed so the validation split differs from the test split.
VALIDATION_SEED_OFFSET = 7919


@dataclass(frozen=True)
class HpoResult:
    #: The chosen values, as DescribeSolutionVersion's tunedHPOParams.algorithmHyperParameters.
    tuned: dict[str, str]
    #: (value, objective) per grid point, in grid order.
    trials: tuple[tuple[str, float], ...]


def search(
    recipe: str,
    train: Dataset,
    hyperparameters: Mapping[str, str],
    *,
    items_metadata: Mapping[str, Mapping[str, str]] | None,
    seed: int,
) -> HpoResult:
    """Fit one model per grid value on the validation-train users and score the validation users."""
    info = recipe_info(recipe)
    if not info.hpo_grid or train.n_users < 2:
        return HpoResult({}, ())
    validation = split(train, seed + VALIDATION_SEED_OFFSET)
    catalog = validation.train.all_item_ids | set(items_metadata or {})
    trials: list[tuple[str, float]] = []
    best_value, best_score = info.hpo_grid[0], -1.0
    for value in info.hpo_grid:
        hps = {**hyperparameters, info.hpo_parameter: value}
        model = fit(recipe, validation.train, hps, items_metadata=items_metadata, rng_seed=seed)
        score = evaluate_model(model, validation.test_inputs, validation.test_relevant, catalog)[OBJECTIVE]
        trials.append((value, score))
        if score > best_score:
            best_value, best_score = value, score
    return HpoResult({info.hpo_parameter: best_value}, tuple(trials))


def tune(
    recipe: str,
    train: Dataset,
    hyperparameters: Mapping[str, str],
    *,
    items_metadata: Mapping[str, Mapping[str, str]] | None = None,
    seed: int = 0,
) -> dict[str, str]:
    """Just the chosen values (empty for recipes with nothing to tune)."""
    return search(recipe, train, hyperparameters, items_metadata=items_metadata, seed=seed).tuned
