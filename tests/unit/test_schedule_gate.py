"""The promotion gate (metric comparison, floors) and the choice of the version to gate."""

from __future__ import annotations

import math
from typing import Any

import pytest

from worker.config.solutions import DEFAULT_GATE_METRIC, GateSettings
from worker.schedule.gate import evaluate, select_candidate
from worker.schedule.state import (
    ACTIVE,
    CREATE_FAILED,
    CREATE_IN_PROGRESS,
    CREATE_STOPPED,
    UPDATE,
    VersionView,
)

M = DEFAULT_GATE_METRIC
P = "precision_at_10"
DEFAULT = GateSettings()
FLOORS = GateSettings(floors={M: 0.2, P: 0.05})
LOOSE = GateSettings(max_relative_drop=0.5)
STRICT = GateSettings(max_relative_drop=0.0)
MRR = GateSettings(metric="mean_reciprocal_rank_at_25", max_relative_drop=0.1)


# (id, candidate, baseline, gate, passed, fragment of the reason)
GATE_CASES: list[tuple[str, dict[str, float], dict[str, float] | None, GateSettings, bool, str]] = [
    ("equal", {M: 0.30}, {M: 0.30}, DEFAULT, True, "+0.0%"),
    ("improvement", {M: 0.33}, {M: 0.30}, DEFAULT, True, "+10.0%"),
    ("drop-within-tolerance", {M: 0.29}, {M: 0.30}, DEFAULT, True, "-3.3%"),
    ("drop-exactly-at-tolerance", {M: 0.285}, {M: 0.30}, DEFAULT, True, "-5.0%"),
    ("drop-beyond-tolerance", {M: 0.284}, {M: 0.30}, DEFAULT, False, "regression"),
    ("large-drop-loose-tolerance", {M: 0.16}, {M: 0.30}, LOOSE, True, "tolerance -50.0%"),
    ("any-drop-strict", {M: 0.2999}, {M: 0.30}, STRICT, False, "regression"),
    ("no-change-strict", {M: 0.30}, {M: 0.30}, STRICT, True, "+0.0%"),
    ("served-zero-candidate-zero", {M: 0.0}, {M: 0.0}, DEFAULT, True, "vs served 0.0000"),
    (
        "other-metric-configured",
        {"mean_reciprocal_rank_at_25": 0.5, M: 0.01},
        {"mean_reciprocal_rank_at_25": 0.52},
        MRR,
        True,
        "mean_reciprocal_rank_at_25",
    ),
    (
        "other-metric-regression",
        {"mean_reciprocal_rank_at_25": 0.4, M: 0.9},
        {"mean_reciprocal_rank_at_25": 0.5, M: 0.1},
        MRR,
        False,
        "regression",
    ),
    ("candidate-empty", {}, {M: 0.30}, DEFAULT, False, "has no metrics"),
    ("candidate-lacks-metric", {P: 0.1}, {M: 0.30}, DEFAULT, False, f"has no finite '{M}'"),
    ("candidate-nan", {M: math.nan}, {M: 0.30}, DEFAULT, False, "no finite"),
    ("candidate-inf", {M: math.inf}, None, DEFAULT, False, "no finite"),
    ("first-version-no-floors", {M: 0.01}, None, DEFAULT, True, "no floors configured"),
    ("first-version-floors-met", {M: 0.25, P: 0.06}, None, FLOORS, True, "floors met (2)"),
    ("first-version-floor-below", {M: 0.15, P: 0.06}, None, FLOORS, False, f"{M}=0.15 below floor 0.2"),
    ("first-version-floor-metric-missing", {M: 0.25}, None, FLOORS, False, f"{P} missing"),
    ("floor-fails-even-when-better-than-served", {M: 0.19, P: 0.06}, {M: 0.10}, FLOORS, False, "floor check failed"),
    ("both-floors-reported", {M: 0.1, P: 0.01}, None, FLOORS, False, f"{M}=0.1 below floor 0.2; {P}=0.01 below"),
    ("served-lacks-metric-floors-only", {M: 0.25, P: 0.06}, {P: 0.5}, FLOORS, True, "gated on floors only"),
    ("served-empty-floors-only", {M: 0.01}, {}, DEFAULT, True, "served version has no"),
    ("floors-and-comparison-both-pass", {M: 0.31, P: 0.06}, {M: 0.30}, FLOORS, True, "floors met (2)"),
]


@pytest.mark.parametrize(
    ("candidate", "baseline", "gate", "passed", "fragment"),
    [c[1:] for c in GATE_CASES],
    ids=[c[0] for c in GATE_CASES],
)
def test_gate(
    candidate: dict[str, float], baseline: dict[str, float] | None, gate: GateSettings, passed: bool, fragment: str
) -> None:
    verdict = evaluate(candidate, baseline, gate, no_baseline_reason="the campaign does not exist yet")
    assert verdict.passed is passed, verdict.reason
    assert fragment in verdict.reason
    if baseline is None and verdict.passed:
        assert "the campaign does not exist yet" in verdict.reason


def test_gate_details_report_the_comparison() -> None:
    verdict = evaluate({M: 0.27}, {M: 0.30}, DEFAULT)
    assert not verdict.passed
    assert verdict.details["candidate"] == pytest.approx(0.27)
    assert verdict.details["served"] == pytest.approx(0.30)
    assert verdict.details["threshold"] == pytest.approx(0.285)
    assert verdict.details["relative_change"] == pytest.approx(-0.1)


def test_gate_threshold_matches_tolerance_across_values() -> None:
    """For a grid of served values and tolerances, the boundary sits at served·(1 - tol)."""
    for served in (0.05, 0.1, 0.3, 0.9):
        for tol in (0.0, 0.01, 0.05, 0.2):
            gate = GateSettings(max_relative_drop=tol)
            boundary = served * (1 - tol)
            assert evaluate({M: boundary + 1e-9}, {M: served}, gate).passed
            assert not evaluate({M: boundary - 1e-6}, {M: served}, gate).passed


# -- candidate selection -----------------------------------------------------------------------------

SOL = "arn:aws:personalize:us-east-1:123456789012:solution/shop"


def v(n: int, status: str = ACTIVE, created: float = 0.0, **kw: Any) -> VersionView:
    return VersionView(f"{SOL}/v{n}", status, created_at=created if created else float(n), **kw)


VERSIONS = (
    v(1),
    v(2, CREATE_FAILED),
    v(3),
    v(4, training_mode=UPDATE),
    v(5, CREATE_STOPPED),
    v(6, CREATE_IN_PROGRESS),
)


def arn(n: int) -> str:
    return f"{SOL}/v{n}"


# (id, serving n (None = nothing), excluded, expected n (None = no candidate))
SELECT_CASES: list[tuple[str, int | None, set[int], int | None]] = [
    ("newest-active-including-update-mode", 1, set(), 4),
    ("skips-excluded", 1, {4}, 3),
    ("skips-everything-excluded", 1, {3, 4}, None),
    ("nothing-newer-than-served", 4, set(), None),
    ("never-older-than-served", 3, set(), 4),
    ("campaign-serves-nothing", None, set(), 4),
    ("campaign-serves-nothing-all-excluded", None, {1, 3, 4}, None),
]


@pytest.mark.parametrize(
    ("serving", "excluded", "expected"), [c[1:] for c in SELECT_CASES], ids=[c[0] for c in SELECT_CASES]
)
def test_select_candidate(serving: int | None, excluded: set[int], expected: int | None) -> None:
    serving_view = next((x for x in VERSIONS if serving is not None and x.arn == arn(serving)), None)
    got = select_candidate(VERSIONS, serving_view, arn(serving) if serving else None, {arn(n) for n in excluded})
    assert (got.arn if got else None) == (arn(expected) if expected else None)


def test_select_candidate_when_served_version_is_not_observed() -> None:
    """Unknown age of the served version: any other ACTIVE version qualifies, never the served one."""
    got = select_candidate(VERSIONS, None, arn(4), set())
    assert got is not None and got.arn == arn(3)


def test_select_candidate_breaks_ties_deterministically() -> None:
    twins = (v(7, created=10.0), v(8, created=10.0))
    assert select_candidate(twins, None, None, set()) == twins[1]
    assert select_candidate(tuple(reversed(twins)), None, None, set()) == twins[1]


def test_select_candidate_requires_strictly_newer_than_served() -> None:
    served = v(7, created=10.0)
    same_instant = v(8, created=10.0)
    assert select_candidate((served, same_instant), served, served.arn, set()) is None
    newer = v(9, created=10.5)
    assert select_candidate((served, same_instant, newer), served, served.arn, set()) == newer
