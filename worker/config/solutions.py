"""Per-solution retraining policy: cadence, data-volume trigger, gate, campaigns, archive import (pure models)."""

from __future__ import annotations

import re
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from worker.config.base import _Frozen

#: The metric the gate compares by default (GetSolutionMetrics key, contract §9).
DEFAULT_GATE_METRIC = "normalized_discounted_cumulative_gain_at_10"

_ARN = re.compile(r"^arn:[a-z\d-]+:personalize:[^:]*:[^:]*:.+$")

_ROLE_ARN = re.compile(r"^arn:[a-z\d-]+:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-/]+$")

_S3_LOCATION = re.compile(r"^(s3|http|https)://.+")

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]*$")

_CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})

#: Room left in the 63-character ``jobName`` for the ``-<epoch seconds>`` suffix.
_MAX_PREFIX = 63 - 11

def _check_arn(value: str, resource: str) -> str:
    """An ARN of the given Personalize resource type (``solution/``, ``campaign/`` …)."""
    if len(value) > 256 or not _ARN.match(value) or f":{resource}/" not in value:
        raise ValueError(
            f"expected a Personalize {resource} ARN like "
            f"'arn:aws:personalize:<region>:<account>:{resource}/<name>', got {value!r}"
        )
    return value

class Cadence(_Frozen):
    """When a training of one mode is due: exactly one of ``cron`` or ``interval_s``.

    Both are anchored on the creation time of the last successful (ACTIVE) training of
    that kind: the training is due at the first cron fire time after it, or
    ``interval_s`` after it. A failed or stopped attempt therefore does not push the
    schedule back; the retry is paced by ``min_interval_s`` and the daily cap instead.
    """

    cron: str | None = Field(
        None,
        description="Standard 5-field cron (minute hour day-of-month month day-of-week) or a macro "
        "such as @daily, evaluated in the schedule's timezone. Example: '0 3 * * 0' = Sundays 03:00.",
    )
    interval_s: float | None = Field(None, gt=0, description="Seconds between trainings, e.g. 604800 = 7 days.")

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        expr = value.strip()
        fields = expr.split()
        if expr in _CRON_MACROS:
            return expr
        if len(fields) != 5 or not croniter.is_valid(expr):
            raise ValueError(
                f"invalid cron expression {value!r}: use 5 fields 'minute hour day-of-month month "
                "day-of-week' (e.g. '0 3 * * 0') or a macro like @daily"
            )
        return expr

    @model_validator(mode="after")
    def _exactly_one(self) -> Cadence:
        if (self.cron is None) == (self.interval_s is None):
            raise ValueError("set exactly one of 'cron' (e.g. '0 3 * * 0') or 'interval_s' (e.g. 604800)")
        return self

class DataVolume(_Frozen):
    """The data-volume rule: how many interactions delivered since the last training matter.

    The count comes from the input topics' offsets since the last version's creation; when
    it is unknown (offsets unavailable) the rule is treated as *not* satisfied: an unknown
    count neither triggers a training nor satisfies ``required``.
    """

    min_new_interactions: int = Field(ge=1, description="N: interactions delivered since the last training.")
    trigger: bool = Field(True, description="Reaching N starts a FULL training even when the schedule is not due.")
    required: bool = Field(
        False,
        description="Every training (scheduled FULL, UPDATE, first FULL) waits until N new interactions "
        "have arrived; avoids paying to retrain on unchanged data.",
    )

class GateSettings(_Frozen):
    """The promotion gate: an ACTIVE version replaces the served one only if it is not worse."""

    metric: str = Field(DEFAULT_GATE_METRIC, min_length=1, max_length=256, description="GetSolutionMetrics key.")
    max_relative_drop: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Largest allowed relative drop of `metric` versus the served version (0.05 = 5 %).",
    )
    floors: dict[str, float] = Field(
        default_factory=dict,
        description="Absolute minimums, metric -> min. The only check for a campaign's first version.",
    )

class CampaignConfigSettings(_Frozen):
    """The ``campaignConfig`` sent with every UpdateCampaign/CreateCampaign the scheduler issues.

    ``syncWithLatestSolutionVersion`` is deliberately absent: it would let Personalize promote
    versions past the gate.
    """

    item_exploration_config: dict[str, str] | None = Field(
        None, description="e.g. {explorationWeight: '0.3', explorationItemAgeCutOff: '30'} (User-Personalization)."
    )
    enable_metadata_with_recommendations: bool | None = None
    ranking_influence: dict[Literal["POPULARITY", "FRESHNESS"], float] | None = Field(
        None, description="Weights in [0, 1], e.g. {FRESHNESS: 0.5}."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_sync(cls, data: Any) -> Any:
        if isinstance(data, dict) and {"sync_with_latest_solution_version", "syncWithLatestSolutionVersion"} & set(
            data
        ):
            raise ValueError(
                "syncWithLatestSolutionVersion is not supported: the scheduler promotes versions itself, "
                "through the promotion gate; remove the setting"
            )
        return data

    @field_validator("ranking_influence")
    @classmethod
    def _check_influence(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key, weight in (value or {}).items():
            if not 0.0 <= weight <= 1.0:
                raise ValueError(f"ranking_influence.{key} must be between 0 and 1, got {weight}")
        return value

    def to_wire(self) -> dict[str, Any]:
        """The camelCase ``campaignConfig`` shape of UpdateCampaign; unset members omitted."""
        wire: dict[str, Any] = {}
        if self.item_exploration_config is not None:
            wire["itemExplorationConfig"] = dict(self.item_exploration_config)
        if self.enable_metadata_with_recommendations is not None:
            wire["enableMetadataWithRecommendations"] = self.enable_metadata_with_recommendations
        if self.ranking_influence is not None:
            wire["rankingInfluence"] = dict(self.ranking_influence)
        return wire

class CampaignSettings(_Frozen):
    """A campaign the scheduler promotes versions into (created on first promotion if absent)."""

    arn: str
    min_provisioned_tps: int = Field(1, ge=1, description="minProvisionedTPS sent with each update.")
    config: CampaignConfigSettings = Field(default_factory=CampaignConfigSettings)

    @field_validator("arn")
    @classmethod
    def _check(cls, value: str) -> str:
        return _check_arn(value, "campaign")

class ArchiveImport(_Frozen):
    """A bulk import (CreateDatasetImportJob) that must be ACTIVE before each FULL training.

    The first import is FULL; later ones are INCREMENTAL (FULL would overwrite earlier bulk
    data, and INCREMENTAL is only accepted after an earlier bulk import).
    """

    dataset_arn: str = Field(description="The interactions dataset the archive is imported into.")
    data_location: str = Field(description="s3://bucket/key or a folder prefix ending in '/'.")
    role_arn: str = Field(description="IAM role Personalize assumes to read the archive.")
    job_name_prefix: str = Field("scheduler-import", description="jobName = '<prefix>-<epoch seconds>'.")
    retry_failed_after_s: float = Field(3600, ge=0, description="Delay before re-importing after a failed job.")

    @field_validator("dataset_arn")
    @classmethod
    def _check_dataset(cls, value: str) -> str:
        return _check_arn(value, "dataset")

    @field_validator("data_location")
    @classmethod
    def _check_location(cls, value: str) -> str:
        if len(value) > 256 or not _S3_LOCATION.match(value):
            raise ValueError(f"data_location must look like 's3://bucket/path' (at most 256 chars), got {value!r}")
        return value

    @field_validator("role_arn")
    @classmethod
    def _check_role(cls, value: str) -> str:
        if len(value) > 256 or not _ROLE_ARN.match(value):
            raise ValueError(f"role_arn must be an IAM role ARN like 'arn:aws:iam::123456789012:role/x', got {value!r}")
        return value

    @field_validator("job_name_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not _NAME.match(value) or len(value) > _MAX_PREFIX:
            raise ValueError(
                f"job_name_prefix must match [a-zA-Z0-9][a-zA-Z0-9-_]* and be at most {_MAX_PREFIX} chars, "
                f"got {value!r}"
            )
        return value

class SolutionSchedule(_Frozen):
    """Everything the scheduler decides for one managed solution."""

    solution_arn: str
    campaigns: list[CampaignSettings] = Field(
        default_factory=list, description="Promotion targets, handled in this order each tick."
    )
    timezone: str = Field("UTC", description="IANA timezone the cron expressions are evaluated in.")
    full: Cadence | None = Field(
        default_factory=lambda: Cadence(interval_s=7 * 86400),
        description="FULL retraining cadence (default weekly); null = only data-volume triggers and the first FULL.",
    )
    update: Cadence | None = Field(
        None,
        description="UPDATE cadence; honoured only for User-Personalization/HRNN-Coldstart recipes and "
        "only once a FULL version is ACTIVE.",
    )
    data_volume: DataVolume | None = None
    min_interval_s: float = Field(3600, ge=0, description="Minimum seconds between the starts of two trainings.")
    max_trainings_per_day: int = Field(
        2, ge=1, description="Cost cap: trainings started in any rolling 24 h window (failed/stopped count too)."
    )
    stop_training_after_s: float | None = Field(
        12 * 3600, gt=0, description="StopSolutionVersionCreation once a training runs this long; null = never."
    )
    gate: GateSettings = Field(default_factory=GateSettings)
    archive_import: ArchiveImport | None = None
    allow_native_automation: bool = Field(
        False,
        description="Run even if the solution has performAutoTraining or a campaign has "
        "syncWithLatestSolutionVersion (otherwise the scheduler refuses to act).",
    )

    @field_validator("solution_arn")
    @classmethod
    def _check_solution(cls, value: str) -> str:
        return _check_arn(value, "solution")

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}: use an IANA name such as 'UTC' or 'Europe/Paris'") from None
        return value

    @field_validator("campaigns")
    @classmethod
    def _unique_campaigns(cls, value: list[CampaignSettings]) -> list[CampaignSettings]:
        seen: set[str] = set()
        for campaign in value:
            if campaign.arn in seen:
                raise ValueError(f"campaign {campaign.arn!r} is listed twice")
            seen.add(campaign.arn)
        return value

    def campaign(self, arn: str) -> CampaignSettings | None:
        return next((c for c in self.campaigns if c.arn == arn), None)
