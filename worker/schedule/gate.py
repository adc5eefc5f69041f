"""The promotion gate: may this ACTIVE version replace the one a campaign serves? (pure)

Rules, in order:

1. The candidate must report the gate metric (finite). A candidate without it is refused:
   there is nothing to judge it by, and it could never serve as a baseline later.
2. Every configured floor (metric -> minimum) must be present and met.
3. Against the served version's metrics, the gate metric must not drop by more than
   ``max_relative_drop`` of the served value (``candidate >= served - tol * |served|``).
   There is no baseline when the campaign serves nothing yet (it does not exist, or is
   not ACTIVE): then the floors are the only check. When the served version's metrics lack
   the gate metric, the candidate is likewise judged on floors only, and the reason says so
   (refusing would freeze the campaign forever on a version that cannot be compared).

Metrics from versions trained on different data are not strictly comparable (contract
§9); the tolerance absorbs that noise, the floors catch real regressions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.config.solutions import GateSettings
from worker.schedule.state import ACTIVE, VersionView

#: Absorbs float rounding so a drop of exactly ``max_relative_drop`` passes as documented.
_EPSILON = 1e-12


@dataclass(frozen=True, slots=True)
class GateVerdict:
    passed: bool
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)


def _value(metrics: Mapping[str, float], name: str) -> float | None:
    value = metrics.get(name)
    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def evaluate(
    candidate: Mapping[str, float],
    baseline: Mapping[str, float] | None,
    gate: GateSettings,
    *,
    no_baseline_reason: str = "the campaign serves nothing yet",
) -> GateVerdict:
    """Judge ``candidate`` metrics against ``baseline`` (None: no served version to compare).

    ``no_baseline_reason`` explains a None baseline in the verdict's reason.
    """
    details: dict[str, Any] = {"metric": gate.metric}
    value = _value(candidate, gate.metric)
    if value is None:
        what = "has no metrics" if not candidate else f"has no finite {gate.metric!r}"
        return GateVerdict(False, f"candidate {what}; cannot judge it", details)
    details["candidate"] = value

    failures = []
    for name, floor in sorted(gate.floors.items()):
        got = _value(candidate, name)
        if got is None:
            failures.append(f"{name} missing (floor {floor:g})")
        elif got < floor:
            failures.append(f"{name}={got:.4g} below floor {floor:g}")
    if gate.floors:
        details["floors"] = dict(gate.floors)
    if failures:
        return GateVerdict(False, "floor check failed: " + "; ".join(failures), details)
    floors_note = f"floors met ({len(gate.floors)})" if gate.floors else "no floors configured"

    if baseline is None:
        return GateVerdict(True, f"no baseline ({no_baseline_reason}); gated on floors only: {floors_note}", details)
    served = _value(baseline, gate.metric)
    if served is None:
        return GateVerdict(
            True, f"served version has no {gate.metric!r} to compare with; gated on floors only: {floors_note}", details
        )

    threshold = served - gate.max_relative_drop * abs(served)
    change = (value - served) / abs(served) if served else 0.0
    details.update(served=served, threshold=threshold, relative_change=change)
    summary = (
        f"{gate.metric} {value:.4f} vs served {served:.4f} ({change:+.1%}, tolerance -{gate.max_relative_drop:.1%})"
    )
    if value < threshold - _EPSILON:
        return GateVerdict(False, f"regression: {summary}", details)
    return GateVerdict(True, f"{summary}; {floors_note}", details)


def select_candidate(
    versions: Iterable[VersionView],
    serving: VersionView | None,
    serving_arn: str | None,
    excluded: Iterable[str],
) -> VersionView | None:
    """The newest ACTIVE version that is neither excluded nor served, and newer than the served one.

    ``excluded`` is the union of refused versions and versions already promoted to this
    campaign. When the served version is not among the observed ones its age is unknown,
    so any other ACTIVE version qualifies (the reconciler should list every version).
    Ties on creation time break on the ARN so the choice is deterministic.
    """
    skip = set(excluded)
    if serving_arn:
        skip.add(serving_arn)
    floor = serving.created_at if serving is not None else -math.inf
    eligible = [v for v in versions if v.status == ACTIVE and v.arn not in skip and v.created_at > floor]
    return max(eligible, key=lambda v: (v.created_at, v.arn), default=None)
