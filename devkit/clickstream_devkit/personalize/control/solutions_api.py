"""CreateSolution / DescribeSolution / ListSolutions.

What a solution fixes for its versions, all checked here so a bad value fails the call
rather than a training hours later: the recipe (one of `RECIPES`, by ARN), ``eventType``
(the event type kept for training), ``solutionConfig.eventValueThreshold`` (a number in
a string: events below it are not trained on), ``solutionConfig.algorithmHyperParameters``
(range-checked against the recipe by `effective_hyperparameters`), ``performHPO`` and
``solutionConfig.hpoConfig`` (ranges, budget and objective, checked by `hpo_config.plan`).

A solution is ACTIVE when CreateSolution answers. It trains nothing (its versions do), and
on the real service it is ACTIVE by the time a client's next call arrives: every public
sample calls CreateSolutionVersion right after CreateSolution, and the API requires the
solution to be ACTIVE for that. So unlike the other resources it skips CREATE PENDING and
CREATE IN_PROGRESS in every timing mode; solution versions keep their realistic timing.

``performAutoTraining`` defaults to true like the real API and is reported back with
``solutionConfig.autoTrainingConfig`` as given, but this stand-in never trains on its
own: versions are created by CreateSolutionVersion only (``trainingType`` MANUAL).
AutoML (deprecated on the real service) is refused with InvalidInputException.
"""

from __future__ import annotations

import math
from typing import Any

from clickstream_devkit.personalize.control import control_store as kinds
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.arns import RequestContext, solution_arn
from clickstream_devkit.personalize.control.control_store import Resource
from clickstream_devkit.personalize.control.deps import (
    Deps,
    OpHandler,
    check_new,
    drive_simple,
    invalid,
    new_resource,
    not_found,
    require,
    require_active,
    summary,
)
from clickstream_devkit.personalize.control.pagination import listing, paginate
from clickstream_devkit.recsys.hpo_config import plan
from clickstream_devkit.recsys.models.base import HyperparameterError
from clickstream_devkit.recsys.recipes import RecipeInfo, UnknownRecipeError, effective_hyperparameters, recipe_info

VERSION_SUMMARY_FIELDS = ("solutionVersionArn", "trainingMode", "trainingType")


class SolutionsApi:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def operations(self) -> dict[str, OpHandler]:
        return {
            "CreateSolution": self.create_solution,
            "DescribeSolution": self.describe_solution,
            "ListSolutions": self.list_solutions,
        }

    def resume(self, resource: Resource) -> None:
        """Only solutions persisted by an older server can still be on their way to ACTIVE."""
        self._deps.jobs.spawn(resource.arn, drive_simple(self._deps, resource.arn))

    def create_solution(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("performAutoML"):
            raise invalid("performAutoML is not supported by local-personalize (development stand-in): set recipeArn.")
        if not body.get("recipeArn"):
            raise invalid("recipeArn is required when performAutoML is false.")
        info = recipe_by_arn(body["recipeArn"])
        group = require(self._deps, body["datasetGroupArn"], kinds.DATASET_GROUP, "dataset group")
        config = body.get("solutionConfig") or {}
        threshold = parse_threshold(config.get("eventValueThreshold"))
        fixed = config.get("algorithmHyperParameters") or {}
        try:
            effective_hyperparameters(info.name, fixed)
            if "hpoConfig" in config:
                plan(info.name, config["hpoConfig"], fixed)
        except HyperparameterError as exc:
            raise invalid(str(exc)) from None
        require_active(group, "dataset group")
        arn = solution_arn(ctx, body["name"])
        check_new(self._deps, arn)
        doc: dict[str, Any] = {
            "name": body["name"],
            "solutionArn": arn,
            "performHPO": bool(body.get("performHPO", False)),
            "performAutoML": False,
            "performAutoTraining": bool(body.get("performAutoTraining", True)),
            "recipeArn": info.arn,
            "datasetGroupArn": group.arn,
        }
        if "performIncrementalUpdate" in body:
            doc["performIncrementalUpdate"] = bool(body["performIncrementalUpdate"])
        if body.get("eventType"):
            doc["eventType"] = body["eventType"]
        if config:
            doc["solutionConfig"] = config
        meta = {"eventValueThreshold": threshold}
        self._deps.resources.add(
            new_resource(ctx, arn, kinds.SOLUTION, doc, parent=group.arn, status=st.ACTIVE, meta=meta)
        )
        return {"solutionArn": arn}

    def describe_solution(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        solution = require(self._deps, body["solutionArn"], kinds.SOLUTION, "solution")
        described = solution.describe()
        versions = self._deps.resources.all(kinds.SOLUTION_VERSION, solution.arn)
        if versions:
            latest = max(versions, key=lambda r: r.sort_key())
            described["latestSolutionVersion"] = summary(latest, *VERSION_SUMMARY_FIELDS)
        return {"solution": described}

    def list_solutions(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        group = body.get("datasetGroupArn")
        solutions = self._deps.resources.all(kinds.SOLUTION, group)
        page, token = paginate(solutions, body, key=lambda r: r.sort_key(), scope=f"solutions|{group}")
        return listing("solutions", [summary(r, "name", "solutionArn", "recipeArn") for r in page], token)


def recipe_by_arn(arn: str) -> RecipeInfo:
    try:
        info = recipe_info(arn)
    except UnknownRecipeError:
        info = None
    if info is None or info.arn != arn:
        raise not_found(f"Could not find recipe with ARN {arn}.")
    return info


def parse_threshold(raw: str | None) -> float | None:
    """``solutionConfig.eventValueThreshold`` is a string holding a number (M-CP)."""
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise invalid(f"solutionConfig.eventValueThreshold must be a number, got {raw!r}.")
    return value
