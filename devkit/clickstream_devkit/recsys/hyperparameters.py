"""The documented hyperparameters of each recipe: type, default, range, HPO-tunable (pure).

Names, defaults, ranges and the "HPO tunable" flag are the developer guide's recipe pages
(User-Personalization, Personalized-Ranking, SIMS, HRNN), so DescribeAlgorithm reports what
the real service reports and CreateSolution accepts what it accepts. `used` says whether
the local stand-in algorithm reads the value: the featurization hyperparameters
(``*_percentile``) are range-checked and reported back but change nothing locally, because
the local algorithms have no user or item filtering stage for them to tune.

The algorithm-hyperparameter values the local models read are validated by the models
themselves (`KnnParams.parse`, `SimsParams.parse`); `check_value` covers the rest, and a
unit test keeps the two in agreement.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from clickstream_devkit.recsys.models.base import HyperparameterError

Kind = Literal["integer", "continuous", "categorical"]
BOOLEAN_VALUES = ("true", "false")


@dataclass(frozen=True)
class Hyperparameter:
    """One documented hyperparameter of a recipe's algorithm."""

    name: str
    kind: Kind
    default: str
    lo: float = 0.0
    hi: float = 0.0
    values: tuple[str, ...] = ()
    tunable: bool = False
    #: The local algorithm reads it (False: accepted, range-checked and reported only).
    used: bool = True
    #: The lower bound itself is not allowed ("positive floats").
    lo_exclusive: bool = False

    def check_value(self, raw: str) -> str:
        """The canonical string of a valid value; HyperparameterError for anything else."""
        text = str(raw).strip()
        if self.kind == "categorical":
            lowered = text.lower()
            allowed = {v.lower(): v for v in self.values}
            if lowered not in allowed:
                raise HyperparameterError(
                    f"Hyperparameter {self.name} must be one of {', '.join(self.values)}, got {raw!r}"
                )
            return allowed[lowered]
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        kind = "an integer" if self.kind == "integer" else "a number"
        if not math.isfinite(value) or (self.kind == "integer" and not value.is_integer()):
            raise HyperparameterError(f"Hyperparameter {self.name} must be {kind}, got {raw!r}")
        if not self.contains(value):
            raise HyperparameterError(f"Hyperparameter {self.name} must be in {self.range_text()}, got {raw!r}")
        return str(int(value)) if self.kind == "integer" else format(value, "g")

    def contains(self, value: float) -> bool:
        above = value > self.lo if self.lo_exclusive else value >= self.lo
        return above and value <= self.hi

    def range_text(self) -> str:
        if self.kind == "categorical":
            return "{" + ", ".join(self.values) + "}"
        low = "(" if self.lo_exclusive else "["
        if self.kind == "integer":
            return f"{low}{int(self.lo)}, {int(self.hi)}]"
        return f"{low}{self.lo:g}, {self.hi:g}]"


def _int(name: str, default: int, lo: int, hi: int, *, tunable: bool) -> Hyperparameter:
    return Hyperparameter(name, "integer", str(default), float(lo), float(hi), tunable=tunable)


def _float(
    name: str, default: str, lo: float, hi: float, *, tunable: bool = False, used: bool = True,
    lo_exclusive: bool = False,
) -> Hyperparameter:
    return Hyperparameter(name, "continuous", default, lo, hi, tunable=tunable, used=used, lo_exclusive=lo_exclusive)


def _percentile(name: str, default: str) -> Hyperparameter:
    return _float(name, default, 0.0, 1.0, used=False)


#: The largest value DescribeAlgorithm can express for an unbounded range (the model's IntegerMaxValue).
UNBOUNDED = 1_000_000.0

HIDDEN_DIMENSION = _int("hidden_dimension", 149, 32, 256, tunable=True)
BPTT = _int("bptt", 32, 2, 32, tunable=True)
RECENCY_MASK = Hyperparameter("recency_mask", "categorical", "true", values=BOOLEAN_VALUES, tunable=True)
EXPLORATION = (
    _float("exploration_weight", "0.3", 0.0, 1.0),
    _float("exploration_item_age_cut_off", "30", 0.0, UNBOUNDED, lo_exclusive=True),
)
_USER_HISTORY = (
    _percentile("min_user_history_length_percentile", "0.0"),
    _percentile("max_user_history_length_percentile", "0.99"),
)
#: HRNN family, User-Personalization, Personalized-Ranking: the same algorithm hyperparameters.
NEURAL = (HIDDEN_DIMENSION, BPTT, RECENCY_MASK, *_USER_HISTORY)
SIMS = (
    _float("popularity_discount_factor", "0.5", 0.0, 1.0, tunable=True),
    _int("min_cointeraction_count", 3, 0, 10, tunable=True),
    _percentile("min_user_history_length_percentile", "0.005"),
    _percentile("max_user_history_length_percentile", "0.995"),
    _percentile("min_item_interaction_count_percentile", "0.01"),
    _percentile("max_item_interaction_count_percentile", "0.9"),
)


def by_name(specs: tuple[Hyperparameter, ...]) -> dict[str, Hyperparameter]:
    return {spec.name: spec for spec in specs}


def defaults(specs: tuple[Hyperparameter, ...]) -> dict[str, str]:
    return {spec.name: spec.default for spec in specs}


def check_unused(specs: tuple[Hyperparameter, ...], hyperparameters: Mapping[str, str]) -> dict[str, str]:
    """Range-check the documented values the local model does not read (the model checks the rest)."""
    out: dict[str, str] = {}
    for spec in specs:
        if not spec.used and spec.name in hyperparameters:
            out[spec.name] = spec.check_value(hyperparameters[spec.name])
    return out


def default_ranges(specs: tuple[Hyperparameter, ...]) -> dict[str, list[dict[str, object]]]:
    """DescribeAlgorithm's ``defaultHyperParameterRanges`` (every documented hyperparameter, with isTunable)."""
    ranges: dict[str, list[dict[str, object]]] = {
        "integerHyperParameterRanges": [],
        "continuousHyperParameterRanges": [],
        "categoricalHyperParameterRanges": [],
    }
    for spec in specs:
        if spec.kind == "categorical":
            ranges["categoricalHyperParameterRanges"].append(
                {"name": spec.name, "values": list(spec.values), "isTunable": spec.tunable}
            )
        elif spec.kind == "integer":
            ranges["integerHyperParameterRanges"].append(
                {"name": spec.name, "minValue": int(spec.lo), "maxValue": int(spec.hi), "isTunable": spec.tunable}
            )
        else:
            ranges["continuousHyperParameterRanges"].append(
                {"name": spec.name, "minValue": spec.lo, "maxValue": spec.hi, "isTunable": spec.tunable}
            )
    return ranges
