"""Hyperparameter optimisation: a seeded search inside the requested ranges (pure compute, no I/O).

The real service runs Bayesian HPO with up to ``maxParallelTrainingJobs`` trainings at
once. The stand-in keeps the two properties a client can observe -- every tuned value lies
inside the requested ranges, and the budget and parallelism shape the search -- with a
small deterministic search:

1. the plan (`hpo_config.plan`) gives the ranges, the objective metric and the budget;
2. if the ranges hold no more combinations than ``maxNumberOfTrainingJobs``, every
   combination is tried (a grid, in range order);
3. otherwise trials run in rounds of ``maxParallelTrainingJobs``. Round 1 starts from the
   solution's own values (the recipe default, or the range's middle when the default lies
   outside) and fills the round with uniform samples. Later rounds alternate samples near
   the best trial so far (the neighbourhood halves every round) with uniform samples. Like
   parallel Bayesian HPO, a round learns only from the rounds before it, so more
   parallelism means fewer informed proposals;
4. each trial fits the recipe on a validation split carved from the **training users
   only** (the 90/10 user split again, seeded differently), so the test users behind the
   reported metrics never influence the choice, and scores the objective; ties keep the
   earlier trial.

The computation itself is sequential (this stand-in trains one model at a time).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from clickstream_devkit.recsys.data import Dataset, split
from clickstream_devkit.recsys.hpo_config import DEFAULT_OBJECTIVE, HpoPlan, SearchRange, plan
from clickstream_devkit.recsys.offline import evaluate_model
from clickstream_devkit.recsys.recipes import fit, recipe_info

OBJECTIVE = DEFAULT_OBJECTIVE
#: Added to the training seed so the validation split differs from the test split.
VALIDATION_SEED_OFFSET = 7919
#: Attempts at drawing a candidate not tried yet before the search gives up on a round.
_DRAWS = 25

Candidate = dict[str, str]


@dataclass(frozen=True)
class Trial:
    #: The searched hyperparameters of this trial (strings, as the API reports them).
    hyperparameters: Candidate
    #: The objective metric on the validation users.
    score: float


@dataclass(frozen=True)
class HpoResult:
    #: The chosen values, as DescribeSolutionVersion's tunedHPOParams.algorithmHyperParameters.
    tuned: Candidate
    #: Every trial, in the order it ran.
    trials: tuple[Trial, ...]
    objective: str = OBJECTIVE


def search(
    recipe: str,
    train: Dataset,
    hyperparameters: Mapping[str, str],
    *,
    hpo_plan: HpoPlan | None = None,
    items_metadata: Mapping[str, Mapping[str, str]] | None,
    seed: int,
) -> HpoResult:
    """Run the trials of `hpo_plan` (default: the recipe's tunable ranges) and keep the best."""
    info = recipe_info(recipe)
    the_plan = hpo_plan if hpo_plan is not None else plan(info.name, None, {})
    if not the_plan.ranges or train.n_users < 2:
        return HpoResult({}, (), the_plan.objective)
    validation = split(train, seed + VALIDATION_SEED_OFFSET)
    catalog = validation.train.all_item_ids | set(items_metadata or {})

    def score(candidate: Candidate) -> float:
        model = fit(info.name, validation.train, {**hyperparameters, **candidate}, items_metadata=items_metadata,
                    rng_seed=seed)  # fmt: skip
        return evaluate_model(model, validation.test_inputs, validation.test_relevant, catalog)[the_plan.objective]

    trials = run_trials(the_plan, {**info.default_hyperparameters, **hyperparameters}, score, seed)
    best = best_trial(trials, maximize=the_plan.maximize)
    return HpoResult(dict(best.hyperparameters) if best else {}, tuple(trials), the_plan.objective)


def run_trials(
    hpo_plan: HpoPlan, baseline: Mapping[str, str], score: Callable[[Candidate], float], seed: int
) -> list[Trial]:
    """Propose and score trials round by round until the budget is spent or the space is exhausted."""
    ranges = hpo_plan.ranges
    if math.prod(r.size for r in ranges) <= hpo_plan.max_training_jobs:
        names = [r.name for r in ranges]
        return [Trial(c, score(c)) for c in (dict(zip(names, combo, strict=True)) for combo in _grid(ranges))]
    proposer = Proposer(hpo_plan, baseline, seed)
    trials: list[Trial] = []
    while len(trials) < hpo_plan.max_training_jobs:
        best = best_trial(trials, maximize=hpo_plan.maximize)
        size = min(hpo_plan.max_parallel_jobs, hpo_plan.max_training_jobs - len(trials))
        batch = proposer.next_round(size, None if best is None else best.hyperparameters)
        if not batch:
            break
        trials.extend(Trial(candidate, score(candidate)) for candidate in batch)
    return trials


def best_trial(trials: list[Trial], *, maximize: bool) -> Trial | None:
    """The best-scoring trial; ties keep the earlier one."""
    best: Trial | None = None
    for trial in trials:
        if best is None or (trial.score > best.score if maximize else trial.score < best.score):
            best = trial
    return best


class Proposer:
    """Seeded proposals, one round at a time (see the module docstring)."""

    def __init__(self, hpo_plan: HpoPlan, baseline: Mapping[str, str], seed: int) -> None:
        self._ranges = hpo_plan.ranges
        self._rng = np.random.default_rng(seed)
        self._start = {r.name: _start_value(r, baseline.get(r.name)) for r in self._ranges}
        self._seen: set[tuple[str, ...]] = set()
        self._round = 0

    def next_round(self, size: int, best: Candidate | None) -> list[Candidate]:
        """Up to `size` candidates not proposed before; empty when none could be found."""
        batch: list[Candidate] = []
        for slot in range(size):
            if best is None and slot == 0:
                draw = dict(self._start)
            elif best is not None and slot % 2 == 0:
                draw = _near(self._ranges, best, self._rng, 0.5**self._round)
            else:
                draw = _uniform(self._ranges, self._rng)
            for _ in range(_DRAWS):
                key = tuple(draw[r.name] for r in self._ranges)
                if key not in self._seen:
                    self._seen.add(key)
                    batch.append(draw)
                    break
                draw = _uniform(self._ranges, self._rng)
        self._round += 1
        return batch


def _grid(ranges: tuple[SearchRange, ...]) -> itertools.product[tuple[str, ...]]:
    axes: list[list[str]] = []
    for r in ranges:
        if r.kind == "categorical":
            axes.append(list(r.values))
        elif r.kind == "integer":
            axes.append([str(v) for v in range(int(r.lo), int(r.hi) + 1)])
        else:
            axes.append([_fmt(r, r.lo)])
    return itertools.product(*axes)


def _start_value(r: SearchRange, value: str | None) -> str:
    if value is not None:
        if r.kind == "categorical" and value.lower() in r.values:
            return value.lower()
        if r.kind != "categorical" and r.contains(value):
            return _fmt(r, float(value))
    if r.kind == "categorical":
        return r.values[0]
    return _fmt(r, (r.lo + r.hi) / 2)


def _uniform(ranges: tuple[SearchRange, ...], rng: np.random.Generator) -> Candidate:
    out: Candidate = {}
    for r in ranges:
        if r.kind == "categorical":
            out[r.name] = r.values[int(rng.integers(len(r.values)))]
        elif r.kind == "integer":
            out[r.name] = str(int(rng.integers(int(r.lo), int(r.hi) + 1)))
        else:
            out[r.name] = _fmt(r, float(rng.uniform(r.lo, r.hi)))
    return out


def _near(ranges: tuple[SearchRange, ...], anchor: Candidate, rng: np.random.Generator, scale: float) -> Candidate:
    """A candidate around `anchor`: numbers move by a normal step of `scale` x range width."""
    out: Candidate = {}
    for r in ranges:
        if r.kind == "categorical":
            keep = rng.random() < 0.7
            out[r.name] = anchor[r.name] if keep else r.values[int(rng.integers(len(r.values)))]
            continue
        width = r.hi - r.lo
        value = float(anchor[r.name]) + float(rng.normal(0.0, max(scale * width, 1e-12)))
        value = min(max(value, r.lo), r.hi)
        out[r.name] = str(round(value)) if r.kind == "integer" else _fmt(r, value)
    return out


def _fmt(r: SearchRange, value: float) -> str:
    """An integer, or a continuous value to 4 significant digits kept inside [lo, hi]."""
    if r.kind == "integer":
        return str(round(value))
    text = f"{value:.4g}"
    if float(text) < r.lo:
        return f"{r.lo:g}"
    if float(text) > r.hi:
        return f"{r.hi:g}"
    return text


def tune(
    recipe: str,
    train: Dataset,
    hyperparameters: Mapping[str, str],
    *,
    hpo_plan: HpoPlan | None = None,
    items_metadata: Mapping[str, Mapping[str, str]] | None = None,
    seed: int = 0,
) -> dict[str, str]:
    """Just the chosen values (empty for recipes with nothing to tune)."""
    return search(recipe, train, hyperparameters, hpo_plan=hpo_plan, items_metadata=items_metadata, seed=seed).tuned
