"""ListRecipes / DescribeRecipe / DescribeAlgorithm for the recipes `RECIPES` can train.

Names, ARNs (``arn:aws:personalize:::recipe/<name>``, ``…:::algorithm/<name>``) and recipe
types are the real ones; each description says which local algorithm stands in for the
real one. They are custom (non-domain) recipes, so a ListRecipes filtered by ``domain``
lists none.

As on AWS, DescribeRecipe names the recipe's algorithm and DescribeAlgorithm carries the
hyperparameters: ``defaultHyperParameters`` (every documented one, as a string),
``defaultHyperParameterRanges`` (integer / continuous / categorical, each with
``isTunable``: what ``hpoConfig.algorithmHyperParameterRanges`` may name) and
``defaultResourceConfig`` (the HPO budget used when ``hpoResourceConfig`` is absent). The
``algorithmImage`` names the local algorithm; there is no container behind it.
"""

from __future__ import annotations

from typing import Any, Final

from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.arns import RequestContext
from clickstream_devkit.personalize.control.deps import Deps, OpHandler, not_found
from clickstream_devkit.personalize.control.pagination import listing, paginate
from clickstream_devkit.recsys.hpo_config import DEFAULT_RESOURCE_CONFIG
from clickstream_devkit.recsys.hyperparameters import default_ranges
from clickstream_devkit.recsys.recipes import RECIPES, RecipeInfo, UnknownRecipeError, recipe_info

#: A fixed creation time for the built-in recipes (they predate every resource).
RECIPES_CREATED: Final = 1_546_300_800.0  # 2019-01-01T00:00:00Z


def describe(info: RecipeInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "recipeArn": info.arn,
        "algorithmArn": info.algorithm_arn,
        "status": st.ACTIVE,
        "description": info.description,
        "recipeType": info.recipe_type,
        "creationDateTime": RECIPES_CREATED,
        "lastUpdatedDateTime": RECIPES_CREATED,
    }


def describe_algorithm(info: RecipeInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "algorithmArn": info.algorithm_arn,
        "algorithmImage": {"name": info.name, "dockerURI": f"local-personalize/{info.algorithm}"},
        "defaultHyperParameters": info.default_hyperparameters,
        "defaultHyperParameterRanges": default_ranges(info.hyperparameters),
        "defaultResourceConfig": dict(DEFAULT_RESOURCE_CONFIG),
        "trainingInputMode": "File",
        "creationDateTime": RECIPES_CREATED,
        "lastUpdatedDateTime": RECIPES_CREATED,
    }


class RecipesApi:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def operations(self) -> dict[str, OpHandler]:
        return {
            "ListRecipes": self.list_recipes,
            "DescribeRecipe": self.describe_recipe,
            "DescribeAlgorithm": self.describe_algorithm,
        }

    def list_recipes(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        infos = [] if body.get("domain") else list(RECIPES.values())
        page, token = paginate(
            infos, body, key=lambda i: (RECIPES_CREATED, i.arn), scope=f"recipes|{body.get('domain')}"
        )
        keys = ("name", "recipeArn", "status", "creationDateTime", "lastUpdatedDateTime")
        return listing("recipes", [{k: describe(i)[k] for k in keys} for i in page], token)

    def describe_recipe(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        try:
            info = recipe_info(body["recipeArn"])
        except UnknownRecipeError:
            raise not_found(f"Could not find recipe with ARN {body['recipeArn']}.") from None
        if info.arn != body["recipeArn"]:
            raise not_found(f"Could not find recipe with ARN {body['recipeArn']}.")
        return {"recipe": describe(info)}

    def describe_algorithm(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        arn = body["algorithmArn"]
        info = next((i for i in RECIPES.values() if i.algorithm_arn == arn), None)
        if info is None:
            raise not_found(f"Could not find algorithm with ARN {arn}.")
        return {"algorithm": describe_algorithm(info)}
