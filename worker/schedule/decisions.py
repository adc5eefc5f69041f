"""The one action the policy chooses per tick, and the decision that explains it.

Actions are plain frozen data: the reconciler maps each to at most one Personalize call
(or to recording something in the scheduler's memory), and publishes ``Decision.to_dict()``
as a lifecycle event. ``Decision.reason`` is always a human sentence: ``retrain --dry-run``
prints it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Wait:
    """Something is in flight or a backoff runs; act again when it changes (or at ``until``).

    ``on`` is one of: training, campaign_update, campaign, import, import_retry, backoff,
    metrics, solution.
    """

    kind: ClassVar[str] = "wait"
    on: str
    until: float | None = None


@dataclass(frozen=True, slots=True)
class Nothing:
    """No work is due (or due work is held back by a guard until ``next_check_at``)."""

    kind: ClassVar[str] = "nothing"
    next_check_at: float | None = None


@dataclass(frozen=True, slots=True)
class Import:
    """CreateDatasetImportJob of the configured archive (FULL first, INCREMENTAL after)."""

    kind: ClassVar[str] = "import"
    dataset_arn: str
    data_location: str
    role_arn: str
    mode: str
    job_name: str


@dataclass(frozen=True, slots=True)
class Train:
    """CreateSolutionVersion with ``trainingMode`` = mode; ``trigger`` says why it is due."""

    kind: ClassVar[str] = "train"
    solution_arn: str
    mode: str
    trigger: str


@dataclass(frozen=True, slots=True)
class Stop:
    """StopSolutionVersionCreation of a training that ran past ``stop_training_after_s``."""

    kind: ClassVar[str] = "stop"
    version_arn: str


@dataclass(frozen=True, slots=True)
class Promote:
    """UpdateCampaign (CreateCampaign when ``create``) to a version that passed the gate.

    ``previous_version_arn`` is what the campaign served before: the reconciler records it
    (``Memory.record_promotion``) as the rollback target.
    """

    kind: ClassVar[str] = "promote"
    campaign_arn: str
    version_arn: str
    min_tps: int
    config: Mapping[str, Any]
    previous_version_arn: str | None
    create: bool = False


@dataclass(frozen=True, slots=True)
class Refuse:
    """The gate refused a version: record it (``Memory.record_refusal``); it is never retried."""

    kind: ClassVar[str] = "refuse"
    campaign_arn: str
    version_arn: str
    reason: str
    metrics: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Rollback:
    """UpdateCampaign back to the version served before a promotion whose update failed."""

    kind: ClassVar[str] = "rollback"
    campaign_arn: str
    to_version_arn: str
    failed_version_arn: str
    min_tps: int
    config: Mapping[str, Any]
    reason: str


@dataclass(frozen=True, slots=True)
class Conflict:
    """Native automation that would fight the scheduler (warned about, blocking unless allowed)."""

    resource_arn: str
    setting: str
    message: str
    blocking: bool


@dataclass(frozen=True, slots=True)
class Blocked:
    """The scheduler refuses to act until an operator fixes the cause."""

    kind: ClassVar[str] = "blocked"
    reason: str
    conflicts: tuple[Conflict, ...] = ()


Action = Wait | Nothing | Import | Train | Stop | Promote | Refuse | Rollback | Blocked


@dataclass(frozen=True, slots=True)
class Decision:
    """One tick's choice: the action, a human reason, details, and alerts for a human.

    ``alerts`` lists conditions that need attention this tick whatever the action (a failed
    campaign update, a failed import, a failed training); the reconciler de-duplicates them.
    """

    action: Action
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)
    alerts: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return self.action.kind

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for lifecycle events and ``--dry-run --json``."""
        return {
            "action": {"kind": self.action.kind, **asdict(self.action)},
            "reason": self.reason,
            "details": dict(self.details),
            "alerts": list(self.alerts),
        }
