"""A solution's ``solutionConfig.hpoConfig``, checked and turned into a search plan (pure).

What the request may say (M-CP ``HPOConfig``) and how the stand-in reads it:

* ``algorithmHyperParameterRanges`` -- integer, continuous and categorical ranges. Every
  name must be a documented hyperparameter of the recipe's algorithm (otherwise
  InvalidInputException with the service's own message, "Provide a hyperparameter that is
  used in the algorithm: <algorithmArn>"), be HPO-tunable, be given in the list of its own
  type, and lie inside the documented range; categorical values must be documented values.
  When ranges are given, only those hyperparameters are searched; the others keep the
  solution's ``algorithmHyperParameters`` or the recipe default. A range wins over a fixed
  value of the same name. Without ranges, every tunable hyperparameter the solution does not
  fix is searched over its documented range.
* ``hpoResourceConfig`` -- ``maxNumberOfTrainingJobs`` (1-40, documented maximum 40) is the
  number of trials; ``maxParallelTrainingJobs`` (1-10, documented maximum 10) is the size of
  each round of trials (see `hpo`). Both are strings holding integers, as in the model.
  Defaults: 20 and 5 (`DEFAULT_RESOURCE_CONFIG`, what DescribeAlgorithm reports).
* ``hpoObjective`` -- the model documents it as not configurable yet; the stand-in accepts it
  when it names one of the GetSolutionMetrics keys (``type`` Maximize or Minimize,
  ``metricRegex`` ignored: there are no training logs to search) and optimises that metric,
  so a request that sets it is honoured rather than silently ignored. Default: maximise
  ``normalized_discounted_cumulative_gain_at_10``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from clickstream_devkit.recsys.hyperparameters import Hyperparameter, Kind, by_name
from clickstream_devkit.recsys.metrics import METRIC_KEYS
from clickstream_devkit.recsys.models.base import HyperparameterError
from clickstream_devkit.recsys.recipes import recipe_info

DEFAULT_OBJECTIVE: Final = "normalized_discounted_cumulative_gain_at_10"
DEFAULT_RESOURCE_CONFIG: Final = {"maxNumberOfTrainingJobs": "20", "maxParallelTrainingJobs": "5"}
MAX_TRAINING_JOBS: Final = 40
MAX_PARALLEL_JOBS: Final = 10
_LIST_KEYS: Final[dict[Kind, str]] = {
    "integer": "integerHyperParameterRanges",
    "continuous": "continuousHyperParameterRanges",
    "categorical": "categoricalHyperParameterRanges",
}


@dataclass(frozen=True)
class SearchRange:
    """One searched hyperparameter: [lo, hi] for numbers, `values` for categories."""

    name: str
    kind: Kind
    lo: float = 0.0
    hi: float = 0.0
    values: tuple[str, ...] = ()

    @property
    def size(self) -> float:
        """Distinct values (inf for a continuous range wider than a point)."""
        if self.kind == "categorical":
            return float(len(self.values))
        if self.kind == "integer":
            return self.hi - self.lo + 1
        return 1.0 if self.lo == self.hi else math.inf

    def contains(self, value: str) -> bool:
        if self.kind == "categorical":
            return value in self.values
        number = float(value)
        return self.lo <= number <= self.hi


@dataclass(frozen=True)
class HpoPlan:
    ranges: tuple[SearchRange, ...]
    objective: str = DEFAULT_OBJECTIVE
    maximize: bool = True
    max_training_jobs: int = 20
    max_parallel_jobs: int = 5


def plan(recipe: str, hpo_config: Mapping[str, Any] | None, fixed: Mapping[str, str]) -> HpoPlan:
    """The search plan for `recipe` (raises HyperparameterError with the InvalidInput message)."""
    info = recipe_info(recipe)
    config = hpo_config or {}
    specs = by_name(info.hyperparameters)
    ranges = _requested_ranges(info.algorithm_arn, specs, config.get("algorithmHyperParameterRanges") or {})
    if not ranges:
        ranges = tuple(_full_range(spec) for spec in info.tunable if spec.name not in fixed)
    objective, maximize = _objective(config.get("hpoObjective") or {})
    resources = {**DEFAULT_RESOURCE_CONFIG, **(config.get("hpoResourceConfig") or {})}
    jobs = _count(resources["maxNumberOfTrainingJobs"], "maxNumberOfTrainingJobs", MAX_TRAINING_JOBS)
    parallel = _count(resources["maxParallelTrainingJobs"], "maxParallelTrainingJobs", MAX_PARALLEL_JOBS)
    return HpoPlan(ranges, objective, maximize, jobs, parallel)


def _requested_ranges(
    algorithm_arn: str, specs: Mapping[str, Hyperparameter], requested: Mapping[str, Any]
) -> tuple[SearchRange, ...]:
    out: list[SearchRange] = []
    seen: set[str] = set()
    for kind, key in _LIST_KEYS.items():
        for entry in requested.get(key) or ():
            name = str(entry.get("name") or "")
            spec = specs.get(name)
            if spec is None:
                raise HyperparameterError(f"Provide a hyperparameter that is used in the algorithm: {algorithm_arn}")
            if name in seen:
                raise HyperparameterError(f"Hyperparameter {name} has more than one range.")
            seen.add(name)
            if not spec.tunable:
                raise HyperparameterError(f"Hyperparameter {name} is not tunable for the algorithm {algorithm_arn}.")
            if spec.kind != kind:
                raise HyperparameterError(
                    f"Hyperparameter {name} is {_article(spec.kind)} {spec.kind} hyperparameter: give its range "
                    f"in {_LIST_KEYS[spec.kind]}, not {key}."
                )
            out.append(_categorical(spec, entry) if kind == "categorical" else _numeric(spec, entry))
    return tuple(out)


def _numeric(spec: Hyperparameter, entry: Mapping[str, Any]) -> SearchRange:
    lo, hi = entry.get("minValue"), entry.get("maxValue")
    if lo is None or hi is None:
        raise HyperparameterError(f"The range of hyperparameter {spec.name} needs minValue and maxValue.")
    low, high = float(lo), float(hi)
    if low > high:
        raise HyperparameterError(f"The range of hyperparameter {spec.name} has minValue {lo} above maxValue {hi}.")
    if not (spec.contains(low) and spec.contains(high)):
        raise HyperparameterError(
            f"The range [{lo}, {hi}] of hyperparameter {spec.name} is outside its allowed range {spec.range_text()}."
        )
    return SearchRange(spec.name, spec.kind, low, high)


def _categorical(spec: Hyperparameter, entry: Mapping[str, Any]) -> SearchRange:
    values: Sequence[Any] = entry.get("values") or ()
    if not values:
        raise HyperparameterError(f"The range of hyperparameter {spec.name} needs at least one value.")
    checked: list[str] = []
    for value in values:
        canonical = spec.check_value(str(value))
        if canonical not in checked:
            checked.append(canonical)
    return SearchRange(spec.name, "categorical", values=tuple(checked))


def _full_range(spec: Hyperparameter) -> SearchRange:
    if spec.kind == "categorical":
        return SearchRange(spec.name, "categorical", values=spec.values)
    return SearchRange(spec.name, spec.kind, spec.lo, spec.hi)


def _objective(objective: Mapping[str, Any]) -> tuple[str, bool]:
    metric = objective.get("metricName") or DEFAULT_OBJECTIVE
    if metric not in METRIC_KEYS:
        raise HyperparameterError(
            f"hpoObjective.metricName {metric!r} is not a solution metric; use one of {', '.join(METRIC_KEYS)}."
        )
    kind = str(objective.get("type") or "Maximize")
    if kind.lower() not in {"maximize", "minimize"}:
        raise HyperparameterError(f"hpoObjective.type must be Maximize or Minimize, got {kind!r}.")
    return metric, kind.lower() == "maximize"


def _count(raw: object, name: str, most: int) -> int:
    text = str(raw).strip()
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise HyperparameterError(f"hpoResourceConfig.{name} must be an integer from 1 to {most}, got {raw!r}.")
    return int(text)


def _article(kind: str) -> str:
    return "an" if kind == "integer" else "a"
