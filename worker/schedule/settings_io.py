"""Settings of the scheduler's I/O side and of the S3 archive sink (pydantic v2).

`SchedulerSettings` is the ``scheduler:`` section of the worker's YAML: where the leader
lease and the lifecycle events live in Kafka, how often to reconcile, which input topics
feed the data-volume trigger, and one `SolutionSchedule` (pure policy settings, see
settings.py) per managed solution. `ArchiveSettings` configures the optional archive
sink that writes every delivered interaction to S3 as Personalize-importable CSV.

Like the rest of the configuration, every model forbids unknown keys.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from worker.schedule.settings import SolutionSchedule

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_TOPIC = re.compile(r"^[a-zA-Z0-9._\-]{1,249}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArchiveSettings(_Model):
    """The S3 archive of delivered interactions (the bulk path of Personalize).

    Objects are CSV with a header in the interactions schema's field order. With the
    default ``flat`` layout every object sits directly under `prefix`, because a
    Personalize import of a folder reads only the files at its first level; ``hive``
    writes ``prefix/dt=YYYY-MM-DD/hour=HH/`` folders (handy for Athena, but then import
    one folder at a time).
    """

    bucket: str = Field(description="S3 bucket the archive is written to.")
    prefix: str = Field("interactions/", description="Key prefix (a folder); '' for the bucket root.")
    gzip: bool = Field(False, description="gzip each object (.csv.gz).")
    flush_rows: int = Field(50_000, ge=1, description="Write an object once this many rows are buffered.")
    flush_seconds: float = Field(300.0, gt=0, description="Write buffered rows at least this often.")
    max_buffer_rows: int = Field(
        500_000, ge=1, description="While S3 fails, keep at most this many rows; older ones are dropped (and counted)."
    )
    layout: Literal["flat", "hive"] = Field(
        "flat", description="flat: prefix/part-...; hive: prefix/dt=/hour=/part-..."
    )
    anonymous: Literal["session", "skip"] = Field(
        "session",
        description="Events without a userId: 'session' writes the sessionId as USER_ID (what PutEvents "
        "trains on for anonymous sessions); 'skip' leaves them out.",
    )
    schema_file: Path | None = Field(None, description="Interactions schema; default schemas/interactions.json.")
    s3_endpoint_url: str | None = Field(None, description="Override (AWS_ENDPOINT_URL_S3 works too).")
    region: str | None = Field(None, description="Default: AWS_REGION / AWS_DEFAULT_REGION.")

    @field_validator("bucket")
    @classmethod
    def _check_bucket(cls, value: str) -> str:
        if not _BUCKET.match(value):
            raise ValueError(f"not a valid S3 bucket name: {value!r}")
        return value

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        value = value.strip("/")
        return f"{value}/" if value else ""

    @model_validator(mode="after")
    def _check_buffer(self) -> ArchiveSettings:
        if self.max_buffer_rows < self.flush_rows:
            raise ValueError("max_buffer_rows must be at least flush_rows")
        return self

    @property
    def data_location(self) -> str:
        """What CreateDatasetImportJob's dataSource.dataLocation should name (a folder)."""
        return f"s3://{self.bucket}/{self.prefix}"


class LeaseSettings(_Model):
    """Group timeouts of the leader lease; failover happens within ``session_timeout_ms``."""

    session_timeout_ms: int = Field(10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(1_000, ge=100)
    max_poll_interval_ms: int = Field(30_000, ge=1_000)

    @model_validator(mode="after")
    def _check(self) -> LeaseSettings:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be at most a third of session_timeout_ms")
        return self


class SchedulerSettings(_Model):
    """The ``scheduler:`` section: the retraining scheduler of `clickstream-worker run`/`schedule`."""

    enabled: bool = Field(False, description="Run the scheduler inside `clickstream-worker run`.")
    tick_interval_s: float = Field(60.0, gt=0, description="Seconds between two reconciliation passes.")
    control_topic: str = Field(
        "clickstream-scheduler", description="One-partition topic holding the lease group and the memory."
    )
    lifecycle_topic: str | None = Field(
        "clickstream-scheduler-events", description="CloudEvents of every decision and outcome; null = logs only."
    )
    group_id: str = Field("clickstream-scheduler", description="Consumer group of the leader lease.")
    event_source: str = Field("/clickstream-worker/scheduler", description="CloudEvents `source` attribute.")
    input_topics: list[str] = Field(
        default_factory=list,
        description="Topics counted by the data-volume trigger; default: the worker's interactions topics.",
    )
    personalize_endpoint_url: str | None = Field(
        None, description="Control-plane endpoint override (AWS_ENDPOINT_URL_PERSONALIZE works too)."
    )
    kafka_timeout_s: float = Field(10.0, gt=0, description="Budget of each blocking Kafka call.")
    lease: LeaseSettings = Field(default_factory=LeaseSettings)
    solutions: list[SolutionSchedule] = Field(default_factory=list)
    archive: ArchiveSettings | None = None

    @field_validator("control_topic", "group_id")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _TOPIC.match(value):
            raise ValueError(f"must be 1-249 characters of [a-zA-Z0-9._-], got {value!r}")
        return value

    @field_validator("solutions")
    @classmethod
    def _unique(cls, value: list[SolutionSchedule]) -> list[SolutionSchedule]:
        arns = [s.solution_arn for s in value]
        if len(set(arns)) != len(arns):
            raise ValueError(f"a solution is listed twice: {arns}")
        return value

    @model_validator(mode="after")
    def _check_enabled(self) -> SchedulerSettings:
        if self.enabled and not self.solutions:
            raise ValueError("scheduler.enabled is true but no solutions are configured")
        if self.lifecycle_topic is not None and self.lifecycle_topic == self.control_topic:
            raise ValueError("lifecycle_topic must differ from control_topic")
        return self

    def solution(self, name_or_arn: str) -> SolutionSchedule | None:
        """A configured solution by ARN or by name (the ARN's last segment)."""
        for schedule in self.solutions:
            if name_or_arn in (schedule.solution_arn, resource_name(schedule.solution_arn)):
                return schedule
        return None


def resource_name(arn: str) -> str:
    """``arn:…:solution/<name>`` -> ``<name>`` (metric labels, CLI selection, CreateCampaign names)."""
    return arn.rstrip("/").rsplit("/", 1)[-1]
