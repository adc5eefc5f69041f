"""ListRecipes / DescribeRecipe for the recipes `clickstream_devkit.recsys.recipes.RECIPES` can train.

Names, ARNs (``arn:aws:personalize:::recipe/<name>``) and recipe types are the real
ones; each description says which local algorithm stands in for the real one. They
are custom (non-domain) recipes, so a ListRecipes filtered by ``domain`` lists none.
"""

from __future__ import annotations

from typing import Any, Final

from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.arns import RequestContext
from clickstream_devkit.personalize.control.deps import Deps, OpHandler, not_found
from clickstream_devkit.personalize.control.pagination import listing, paginate
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


class RecipesApi:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def operations(self) -> dict[str, OpHandler]:
        return {"ListRecipes": self.list_recipes, "DescribeRecipe": self.describe_recipe}

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
