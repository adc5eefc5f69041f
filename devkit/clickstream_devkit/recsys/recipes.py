"""The recipes the local Personalize accepts, and which local algorithm trains each.

The names, ARNs and recipe types are the real service's (``arn:aws:personalize:::recipe/<name>``;
types USER_PERSONALIZATION, RELATED_ITEMS, PERSONALIZED_RANKING as DescribeRecipe reports
them). The algorithms are small, honest stand-ins -- the descriptions say which one -- so a
solution configured for the real service trains here unchanged: unknown hyperparameter names
are ignored, known ones are range-checked against the real recipe pages (the table of each
recipe's documented hyperparameters is `hyperparameters`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from clickstream_devkit.recsys import hyperparameters as hp
from clickstream_devkit.recsys.data import Dataset
from clickstream_devkit.recsys.hyperparameters import Hyperparameter
from clickstream_devkit.recsys.models.base import ModelFormatError, Recommender, peek_header
from clickstream_devkit.recsys.models.knn import ColdMode, KnnModel
from clickstream_devkit.recsys.models.popularity import PopularityModel
from clickstream_devkit.recsys.models.sims import SimsModel

RecipeType = Literal["USER_PERSONALIZATION", "RELATED_ITEMS", "PERSONALIZED_RANKING"]
Algorithm = Literal["popularity", "sims", "item-knn"]
Model = PopularityModel | SimsModel | KnnModel

RECIPE_ARN_PREFIX = "arn:aws:personalize:::recipe/"

_KNN_NOTE = (
    "Local stand-in: item-kNN (cosine on the user-item matrix, top hidden_dimension neighbours per "
    "item) scored from the user's current history (last bptt distinct items)."
)


@dataclass(frozen=True)
class RecipeInfo:
    """What DescribeRecipe/ListRecipes need plus how the local Personalize trains the recipe."""

    name: str
    recipe_type: RecipeType
    description: str
    algorithm: Algorithm
    #: The documented hyperparameters of the recipe's algorithm (DescribeAlgorithm, HPO ranges).
    hyperparameters: tuple[Hyperparameter, ...] = ()
    #: How the kNN model treats items without interactions (see models/knn.py).
    cold: ColdMode = "none"
    #: trainingMode=UPDATE is allowed (User-Personalization and legacy HRNN-Coldstart only).
    supports_update: bool = False

    @property
    def arn(self) -> str:
        return RECIPE_ARN_PREFIX + self.name

    @property
    def algorithm_arn(self) -> str:
        return f"arn:aws:personalize:::algorithm/{self.name}"

    @property
    def default_hyperparameters(self) -> dict[str, str]:
        return hp.defaults(self.hyperparameters)

    @property
    def tunable(self) -> tuple[Hyperparameter, ...]:
        """The hyperparameters HPO may search (the recipe pages' "HPO tunable: Yes")."""
        return tuple(spec for spec in self.hyperparameters if spec.tunable)


def _knn(
    name: str, recipe_type: RecipeType, what: str, *, cold: ColdMode, update: bool, exploration: bool
) -> RecipeInfo:
    return RecipeInfo(
        name=name,
        recipe_type=recipe_type,
        description=f"{what} {_KNN_NOTE}",
        algorithm="item-knn",
        hyperparameters=hp.NEURAL + (hp.EXPLORATION if exploration else ()),
        cold=cold,
        supports_update=update,
    )


RECIPES: dict[str, RecipeInfo] = {
    info.name: info
    for info in (
        _knn(
            "aws-user-personalization",
            "USER_PERSONALIZATION",
            "Personalised recommendations with exploration of items that have no interactions yet "
            "(exploration_weight, exploration_item_age_cut_off); UPDATE training adds new items.",
            cold="explore",
            update=True,
            exploration=True,
        ),
        _knn(
            "aws-user-personalization-v2",
            "USER_PERSONALIZATION",
            "Personalised recommendations (v2); no exploration, no UPDATE training.",
            cold="none",
            update=False,
            exploration=False,
        ),
        RecipeInfo(
            name="aws-popularity-count",
            recipe_type="USER_PERSONALIZATION",
            description="The most interacted-with items for every user (the offline-metrics baseline). "
            "Local stand-in: the same event count, no hyperparameters.",
            algorithm="popularity",
        ),
        RecipeInfo(
            name="aws-sims",
            recipe_type="RELATED_ITEMS",
            description="Items related to a given item. Local stand-in: co-occurrence in user histories "
            "divided by the candidate's user count ** popularity_discount_factor, padded with popular items.",
            algorithm="sims",
            hyperparameters=hp.SIMS,
        ),
        _knn(
            "aws-personalized-ranking",
            "PERSONALIZED_RANKING",
            "Re-ranks an input list for a user; items the model does not know go last.",
            cold="none",
            update=False,
            exploration=False,
        ),
        _knn(
            "aws-personalized-ranking-v2",
            "PERSONALIZED_RANKING",
            "Re-ranks an input list for a user (v2); items the model does not know go last.",
            cold="none",
            update=False,
            exploration=False,
        ),
        _knn(
            "aws-hrnn",
            "USER_PERSONALIZATION",
            "Legacy HRNN, trained with the closest local algorithm.",
            cold="none",
            update=False,
            exploration=False,
        ),
        _knn(
            "aws-hrnn-metadata",
            "USER_PERSONALIZATION",
            "Legacy HRNN-Metadata: as HRNN, and items without interactions are scored by the category "
            "affinity of their Items-dataset metadata to the user's history.",
            cold="metadata",
            update=False,
            exploration=True,
        ),
        _knn(
            "aws-hrnn-coldstart",
            "USER_PERSONALIZATION",
            "Legacy HRNN-Coldstart: cold items scored by metadata category affinity; UPDATE training adds new items.",
            cold="metadata",
            update=True,
            exploration=True,
        ),
    )
}


class UnknownRecipeError(ValueError):
    """A recipe name or ARN that is not in `RECIPES`."""


def recipe_info(name_or_arn: str) -> RecipeInfo:
    """Look a recipe up by name (``aws-sims``) or ARN (``arn:aws:personalize:::recipe/aws-sims``)."""
    name = name_or_arn.removeprefix(RECIPE_ARN_PREFIX)
    info = RECIPES.get(name)
    if info is None:
        raise UnknownRecipeError(f"Recipe {name_or_arn} is not supported by the local Personalize")
    return info


def effective_hyperparameters(recipe: str, hyperparameters: Mapping[str, str]) -> dict[str, str]:
    """Recipe defaults overlaid with the solution's values, validated (raises HyperparameterError).

    Unknown names are kept (they are reported back as given) but no model reads them;
    documented names the local model does not read are range-checked all the same.
    """
    info = recipe_info(recipe)
    merged = {**info.default_hyperparameters, **{k: str(v) for k, v in hyperparameters.items()}}
    validated = _model_class(info).parse_hyperparameters(merged)
    validated.update(hp.check_unused(info.hyperparameters, merged))
    return {**merged, **{k: v for k, v in validated.items() if k in merged}}


def _model_class(info: RecipeInfo) -> type[PopularityModel] | type[SimsModel] | type[KnnModel]:
    if info.algorithm == "popularity":
        return PopularityModel
    if info.algorithm == "sims":
        return SimsModel
    return KnnModel


def fit(
    recipe: str,
    train: Dataset,
    hyperparameters: Mapping[str, str],
    *,
    items_metadata: Mapping[str, Mapping[str, str]] | None = None,
    rng_seed: int = 0,
) -> Model:
    """Train the recipe's local algorithm on `train`."""
    info = recipe_info(recipe)
    if info.algorithm == "popularity":
        return PopularityModel.fit(train, hyperparameters, recipe=info.name, rng_seed=rng_seed)
    if info.algorithm == "sims":
        return SimsModel.fit(train, hyperparameters, recipe=info.name, rng_seed=rng_seed)
    return KnnModel.fit(
        train, hyperparameters, recipe=info.name, cold=info.cold, items_metadata=items_metadata, rng_seed=rng_seed
    )


def load_model(recipe: str, model_bytes: bytes) -> Model:
    """Rebuild a model from `to_bytes` output, checking it was trained for `recipe`."""
    info = recipe_info(recipe)
    header = peek_header(model_bytes)
    if header.get("recipe") != info.name:
        raise ModelFormatError(f"model was trained for {header.get('recipe')!r}, not {info.name!r}")
    model: Model = _model_class(info).from_bytes(model_bytes)
    return model


__all__ = [
    "RECIPES",
    "Model",
    "RecipeInfo",
    "Recommender",
    "UnknownRecipeError",
    "effective_hyperparameters",
    "fit",
    "load_model",
    "recipe_info",
]
