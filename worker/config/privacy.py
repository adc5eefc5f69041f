"""Right to be forgotten: deletion requests, suppression of the users' records, deletion jobs."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from worker.config.archive import S3Bucket, S3Prefix
from worker.config.base import _Frozen
from worker.config.mapping import Paths, TimestampUnit

_GROUP_ARN = re.compile(r"^arn:aws[a-z-]*:personalize:[a-z0-9-]+:\d{12}:dataset-group/[A-Za-z0-9][A-Za-z0-9_-]*$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")


class DeletionRequestMapping(_Frozen):
    """Where a deletion request's fields are in its JSON value (first path found wins)."""

    user_id: Paths = Field(("userId", "user_id"), description="Paths of the user to forget.")
    requested_at: Paths = Field(
        ("requestedAt", "timestamp"), description="Paths of the request time; the record's timestamp if absent."
    )
    timestamp_unit: TimestampUnit = Field("iso8601_or_milliseconds", description="Unit of the request time.")


class DeletionJobSettings(_Frozen):
    """How pending users become `CreateDataDeletionJob` calls (run by the scheduler's leader)."""

    bucket: S3Bucket = Field(description="S3 bucket for the jobs' CSV inputs (one USER_ID column).")
    prefix: S3Prefix = Field("personalize-deletions/", description="Key prefix of the CSV inputs.")
    role_arn: str = Field(description="IAM role Personalize assumes to read the CSV.")
    max_users_per_job: int = Field(
        10_000, ge=1, le=25_000, description="Users per job (the job's record in the state topic lists them)."
    )
    batch_wait_s: float = Field(
        300.0, ge=0, description="A job starts once its oldest pending request is this old (more users per job)."
    )
    retry_initial_s: float = Field(300.0, gt=0, description="First wait after a failed job; doubles per failure.")
    retry_max_s: float = Field(6 * 3600.0, gt=0, description="Longest wait between two attempts.")
    s3_endpoint_url: str | None = Field(None, description="Override (AWS_ENDPOINT_URL_S3 works too).")
    region: str | None = Field(None, description="Default: AWS_REGION / AWS_DEFAULT_REGION.")

    @field_validator("role_arn")
    @classmethod
    def _check_role(cls, value: str) -> str:
        if not _ROLE_ARN.match(value):
            raise ValueError(f"not an IAM role ARN: {value!r} (arn:aws:iam::123456789012:role/NAME)")
        return value


class PrivacySettings(_Frozen):
    """Deletion requests on a Kafka topic; their state in a compacted topic shared by all replicas.

    Once a user's deletion is requested, every replica stops sending that user's records
    (`suppressed`), the scheduler's leader deletes the user from each dataset group with a
    data deletion job, purges the S3 archive, and trains a new version afterwards.
    """

    deletion_topic: str = Field(description="Topic of deletion requests (JSON with the user ID and request time).")
    state_topic: str = Field(
        "clickstream-privacy", description="Compacted topic: requests and jobs, read in full by every replica."
    )
    dataset_groups: tuple[str, ...] = Field(
        description="ARNs of the dataset groups users are deleted from (each gets its own jobs)."
    )
    mapping: DeletionRequestMapping = Field(default_factory=DeletionRequestMapping)
    digest_key: SecretStr = Field(
        SecretStr(""),
        description="Key of the users' digests in the state topic (without it a digest of a guessable ID can be "
        "reversed); changing it makes the recorded requests unmatchable.",
    )
    suppressed: Literal["dead_letter", "drop"] = Field(
        "dead_letter",
        description="A forgotten user's records: to the DLQ with stage 'suppressed', or dropped and counted.",
    )
    suppress_for_s: float = Field(
        90 * 86400.0, gt=0, description="After the last job of a user completed, keep suppressing this long."
    )
    propagation_s: float = Field(
        30.0, ge=0, description="A request joins a job only this long after it was recorded (every replica saw it)."
    )
    pause_ingestion_during_jobs: bool = Field(
        False,
        description="Pause every Put* of a dataset group while its deletion job runs (AWS's strict reading; "
        "up to a day of lag). Default: only the forgotten users' records are held back.",
    )
    jobs: DeletionJobSettings | None = Field(None, description="Deletion jobs; without it requests only suppress.")

    @field_validator("dataset_groups")
    @classmethod
    def _check_groups(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not _GROUP_ARN.match(v)]
        if bad:
            raise ValueError(f"not dataset group ARNs: {bad} (arn:aws:personalize:REGION:ACCOUNT:dataset-group/NAME)")
        if len(set(value)) != len(value):
            raise ValueError("a dataset group is listed twice")
        return value

    @model_validator(mode="after")
    def _distinct_topics(self) -> PrivacySettings:
        if self.deletion_topic == self.state_topic:
            raise ValueError("deletion_topic and state_topic must differ (the state topic is compacted)")
        return self
