"""What the scheduler observes each tick, and what it remembers across ticks and leaders.

The I/O side (the reconciler) fills these frozen views from ListSolutionVersions,
DescribeCampaign, GetSolutionMetrics, ListDatasetImportJobs and the input topics' offsets,
then hands one :class:`Observation` to the pure policy. Times are epoch seconds (floats),
so the policy never reads a clock.

:class:`Memory` is the little the service itself cannot tell us: which versions the gate
refused, which ones we promoted and what each campaign served before, trainings we started
that the listing may not show yet, and the retry-after of the last failed call. The I/O
side persists it (lifecycle events / control topic) and applies the pure ``record_*``
transitions below after acting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# Status strings exactly as on the wire (with a space; contract §8.2).
CREATE_PENDING = "CREATE PENDING"
CREATE_IN_PROGRESS = "CREATE IN_PROGRESS"
ACTIVE = "ACTIVE"
CREATE_FAILED = "CREATE FAILED"
CREATE_STOPPING = "CREATE STOPPING"
CREATE_STOPPED = "CREATE STOPPED"

#: Campaign updates, import jobs and solutions still being created.
BUSY = frozenset({CREATE_PENDING, CREATE_IN_PROGRESS})
#: Solution versions that are training (or stopping): adopted, never duplicated.
TRAINING_IN_FLIGHT = frozenset({CREATE_PENDING, CREATE_IN_PROGRESS, CREATE_STOPPING})

FULL = "FULL"
UPDATE = "UPDATE"
INCREMENTAL = "INCREMENTAL"

#: Recipes that accept trainingMode=UPDATE (contract §8.5).
UPDATE_RECIPES = frozenset({"aws-user-personalization", "aws-user-personalization-v2", "aws-hrnn-coldstart"})

#: Errors that mean "the resource is busy or a quota is full: try the same thing later".
RETRYABLE_ERRORS = frozenset({"ResourceInUseException", "LimitExceededException", "ThrottlingException"})

#: The daily cap counts trainings in a rolling window of this length (see triggers.py).
DAY_S = 86_400.0


def supports_update(recipe_arn: str | None) -> bool:
    """Whether the recipe accepts trainingMode=UPDATE (User-Personalization or HRNN-Coldstart)."""
    return bool(recipe_arn) and str(recipe_arn).rstrip("/").rsplit("/", 1)[-1] in UPDATE_RECIPES


@dataclass(frozen=True, slots=True)
class VersionView:
    """One solution version (ListSolutionVersions summary + GetSolutionMetrics).

    ``metrics`` is None while not yet observed (the I/O side has not fetched it, or the
    fetch failed) and ``{}`` when GetSolutionMetrics answered without metrics; the gate
    waits on the first and refuses on the second.
    """

    arn: str
    status: str
    training_mode: str = FULL
    created_at: float = 0.0
    updated_at: float | None = None
    failure_reason: str | None = None
    metrics: Mapping[str, float] | None = None

    @property
    def in_flight(self) -> bool:
        return self.status in TRAINING_IN_FLIGHT


@dataclass(frozen=True, slots=True)
class UpdateView:
    """``campaign.latestCampaignUpdate``: the one thing to watch while an update runs."""

    version_arn: str
    status: str
    created_at: float = 0.0
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class CampaignView:
    """DescribeCampaign. ``version_arn`` is ``campaign.solutionVersionArn``."""

    arn: str
    status: str
    version_arn: str | None
    latest_update: UpdateView | None = None
    min_tps: int | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    failure_reason: str | None = None

    @property
    def serving_version_arn(self) -> str | None:
        """The version answering requests now, or None when the campaign serves nothing.

        During an update the campaign keeps serving the previous version until
        ``latestCampaignUpdate.status`` is ACTIVE (contract §8.8), so a completed update
        wins over ``solutionVersionArn``; a campaign that is not ACTIVE serves nothing.
        """
        if self.status != ACTIVE:
            return None
        if self.latest_update is not None and self.latest_update.status == ACTIVE:
            return self.latest_update.version_arn
        return self.version_arn

    @property
    def syncs_with_latest(self) -> bool:
        return bool(self.config.get("syncWithLatestSolutionVersion"))


@dataclass(frozen=True, slots=True)
class ImportView:
    """One dataset import job of the archive dataset (ListDatasetImportJobs summary)."""

    arn: str
    status: str
    created_at: float
    import_mode: str = FULL
    updated_at: float | None = None
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class SolutionView:
    """DescribeSolution: what matters for training and for conflicts with native automation."""

    arn: str
    status: str = ACTIVE
    recipe_arn: str | None = None
    perform_auto_training: bool = False
    dataset_group_arn: str | None = None


@dataclass(frozen=True, slots=True)
class DeletionView:
    """The dataset group's data deletion jobs, from the privacy ledger (worker.privacy).

    ``running``: the job that runs now (trainings and imports of the group wait for it);
    ``completed_at``: when the newest job completed (a FULL training follows it).
    """

    running: str | None = None
    completed_at: float | None = None


@dataclass(frozen=True, slots=True)
class TrainingStart:
    """A CreateSolutionVersion we issued: counts toward the cap even before it is listed."""

    version_arn: str
    started_at: float


@dataclass(frozen=True, slots=True)
class Memory:
    """What the scheduler remembers across ticks and leader changes (persisted by the I/O side).

    * ``refused``: version ARN -> gate reason. Final: a refused version is never retried.
    * ``promoted``: campaign ARN -> versions we issued UpdateCampaign/CreateCampaign for. A
      version is promoted to a campaign at most once, so a failed-then-rolled-back version
      is not promoted again.
    * ``previous_serving``: campaign ARN -> what it served before our last promotion (None:
      nothing), i.e. the rollback target.
    * ``training_starts``: trainings we started (rolling 24 h is enough).
    * ``last_error`` / ``retry_after`` / ``consecutive_errors``: backoff after a retryable
      error (ResourceInUse, LimitExceeded, throttling); the policy waits until ``retry_after``.
    """

    refused: Mapping[str, str] = field(default_factory=dict)
    promoted: Mapping[str, frozenset[str]] = field(default_factory=dict)
    previous_serving: Mapping[str, str | None] = field(default_factory=dict)
    training_starts: tuple[TrainingStart, ...] = ()
    last_error: str | None = None
    retry_after: float | None = None
    consecutive_errors: int = 0

    def promoted_to(self, campaign_arn: str) -> frozenset[str]:
        return self.promoted.get(campaign_arn, frozenset())

    # -- pure transitions the I/O side applies after acting -----------------------------

    def record_training(self, version_arn: str, started_at: float) -> Memory:
        starts = (*self.training_starts, TrainingStart(version_arn, started_at))
        return replace(self, training_starts=starts).cleared()

    def record_promotion(self, campaign_arn: str, version_arn: str, previous: str | None) -> Memory:
        promoted = dict(self.promoted)
        promoted[campaign_arn] = self.promoted_to(campaign_arn) | {version_arn}
        previous_serving = {**self.previous_serving, campaign_arn: previous}
        return replace(self, promoted=promoted, previous_serving=previous_serving).cleared()

    def record_refusal(self, version_arn: str, reason: str) -> Memory:
        return replace(self, refused={**self.refused, version_arn: reason})

    def record_error(self, message: str, now: float, base_s: float = 30.0, cap_s: float = 1800.0) -> Memory:
        """Back off exponentially (base·2^n, capped); the I/O side may add jitter on top."""
        delay = min(cap_s, base_s * 2.0**self.consecutive_errors)
        return replace(
            self, last_error=message, retry_after=now + delay, consecutive_errors=self.consecutive_errors + 1
        )

    def cleared(self) -> Memory:
        """After a successful call: no more backoff."""
        return replace(self, last_error=None, retry_after=None, consecutive_errors=0)

    def pruned(self, now: float) -> Memory:
        """Drop training starts older than the cap's window; they no longer matter."""
        return replace(self, training_starts=tuple(s for s in self.training_starts if now - s.started_at < DAY_S))

    # -- persistence ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for lifecycle events / the control topic."""
        return {
            "refused": dict(self.refused),
            "promoted": {c: sorted(v) for c, v in self.promoted.items()},
            "previous_serving": dict(self.previous_serving),
            "training_starts": [[s.version_arn, s.started_at] for s in self.training_starts],
            "last_error": self.last_error,
            "retry_after": self.retry_after,
            "consecutive_errors": self.consecutive_errors,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Memory:
        return cls(
            refused={str(k): str(v) for k, v in data.get("refused", {}).items()},
            promoted={str(c): frozenset(map(str, v)) for c, v in data.get("promoted", {}).items()},
            previous_serving={
                str(c): (None if v is None else str(v)) for c, v in data.get("previous_serving", {}).items()
            },
            training_starts=tuple(TrainingStart(str(a), float(t)) for a, t in data.get("training_starts", [])),
            last_error=data.get("last_error"),
            retry_after=None if data.get("retry_after") is None else float(data["retry_after"]),
            consecutive_errors=int(data.get("consecutive_errors", 0)),
        )


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything one tick of the policy sees.

    ``campaigns`` holds the configured campaigns that exist; a configured campaign missing
    here does not exist yet (its first promotion creates it). ``imports`` are the archive
    dataset's import jobs (empty when no archive import is configured).
    ``new_interactions`` counts interactions delivered since the last version's creation;
    None means unknown. ``deletion`` is the dataset group's data deletion state (None without
    privacy configured).
    """

    now: float
    solution: SolutionView
    versions: tuple[VersionView, ...] = ()
    campaigns: tuple[CampaignView, ...] = ()
    imports: tuple[ImportView, ...] = ()
    new_interactions: int | None = None
    memory: Memory = field(default_factory=Memory)
    deletion: DeletionView | None = None

    def version(self, arn: str | None) -> VersionView | None:
        return next((v for v in self.versions if v.arn == arn), None) if arn else None

    def campaign(self, arn: str) -> CampaignView | None:
        return next((c for c in self.campaigns if c.arn == arn), None)
