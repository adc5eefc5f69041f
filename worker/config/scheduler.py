"""The `scheduler:` section: leader lease and lifecycle topics, tick interval, managed solutions."""

from __future__ import annotations

import re

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from worker.config.base import _Frozen
from worker.config.solutions import SolutionSchedule

_TOPIC = re.compile(r"^[a-zA-Z0-9._\-]{1,249}$")

class LeaseSettings(_Frozen):
    """Group timeouts of the leader lease; failover happens within ``session_timeout_ms``."""

    session_timeout_ms: int = Field(10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(1_000, ge=100)
    max_poll_interval_ms: int = Field(30_000, ge=1_000)

    @model_validator(mode="after")
    def _check(self) -> LeaseSettings:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be at most a third of session_timeout_ms")
        return self

class SchedulerSettings(_Frozen):
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
