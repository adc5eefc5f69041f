"""The worker's one settings model, loaded from a YAML file plus environment overrides.

Precedence (highest first): explicit arguments, ``WORKER_*`` environment variables
(nested with ``__``, e.g. ``WORKER_DELIVERY__LINGER_MS=20``), the well-known variables
operators already set (``KAFKA_BOOTSTRAP_SERVERS``, ``AWS_REGION``/``AWS_DEFAULT_REGION``),
then the YAML file (``--config`` or ``WORKER_CONFIG``), then defaults.

AWS credentials are never part of this model: botocore's standard chain (environment,
profile, container/instance role) finds them, and botocore itself honours the
service-specific ``AWS_ENDPOINT_URL_PERSONALIZE_EVENTS`` / ``AWS_ENDPOINT_URL_PERSONALIZE``
/ ``AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME`` variables, so a local Personalize is selected
exactly as users expect.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.config.archive import ArchiveSettings
from worker.config.base import ConfigError, _Section, format_validation_error
from worker.config.delivery import (
    DEPRECATED_DELIVERY_RATES,
    DeliverySettings,
    DlqSettings,
    PersonalizeSettings,
    ValidationSettings,
)
from worker.config.kafka import KafkaSettings
from worker.config.observability import ObservabilitySettings
from worker.config.privacy import PrivacySettings
from worker.config.quotas import QuotaSettings
from worker.config.scheduler import SchedulerSettings
from worker.config.topics import TopicSettings


class WorkerSettings(_Section):
    """Everything `clickstream-worker run` needs."""

    kafka: KafkaSettings = KafkaSettings()
    topics: list[TopicSettings] = Field(default_factory=list)
    personalize: PersonalizeSettings = PersonalizeSettings()
    delivery: DeliverySettings = DeliverySettings()
    quotas: QuotaSettings = QuotaSettings()
    validation: ValidationSettings = ValidationSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    dlq: DlqSettings = DlqSettings()
    archive: ArchiveSettings | None = Field(
        None, description="The S3 archive sink of delivered interactions (the scheduler's bulk-import path)."
    )
    scheduler: SchedulerSettings = SchedulerSettings()
    privacy: PrivacySettings | None = Field(
        None, description="Right to be forgotten: deletion requests on a topic, suppression, data deletion jobs."
    )

    @model_validator(mode="before")
    @classmethod
    def _archive_moved_out_of_scheduler(cls, data: Any) -> Any:
        """`scheduler.archive` (before the archive became a sink of its own) is still read, with a warning."""
        if not isinstance(data, dict):
            return data
        scheduler = data.get("scheduler")
        if not isinstance(scheduler, dict) or "archive" not in scheduler:
            return data
        data = {**data, "scheduler": {k: v for k, v in scheduler.items() if k != "archive"}}
        if data.get("archive") is None:
            data["archive"] = scheduler["archive"]
        warnings.warn("the setting scheduler.archive moved to archive (top level); it is read from the old place "
                      "for now: move it (WORKER_SCHEDULER__ARCHIVE -> WORKER_ARCHIVE)", FutureWarning, stacklevel=2)
        return data

    @model_validator(mode="after")
    def _rates_moved_to_quotas(self) -> WorkerSettings:
        """`delivery.put_*_rps` (before quotas were shared by the fleet) are still read, as the
        default quota of every dataset group, with a warning; both spellings at once is an error."""
        moved = {name: getattr(self.delivery, name) for name in DEPRECATED_DELIVERY_RATES
                 if name in self.delivery.model_fields_set}
        for name, old in moved.items():
            new = getattr(self.quotas.default, name)
            if name in self.quotas.default.model_fields_set and old != new:
                raise ValueError(f"delivery.{name} ({old:g}) and quotas.default.{name} ({new:g}) are both set: "
                                 f"remove delivery.{name} (deprecated) and keep quotas.default.{name}, the group's "
                                 "whole quota")
        if moved:
            default = self.quotas.default.model_copy(update=moved)
            self.quotas = self.quotas.model_copy(update={"default": default})
            warnings.warn(
                f"the setting(s) {', '.join('delivery.' + n for n in moved)} are deprecated: each is now read as "
                "quotas.default.<same name>, a dataset group's WHOLE quota, which the replicas share by partitions. "
                "If you had set quota / replicas (the old advice), set the whole quota instead. Move them "
                "(WORKER_DELIVERY__PUT_EVENTS_RPS -> WORKER_QUOTAS__DEFAULT__PUT_EVENTS_RPS)", FutureWarning,
                stacklevel=2)
        return self

    @model_validator(mode="after")
    def _check_quota_groups(self) -> WorkerSettings:
        scopes = {topic.rate_scope for topic in self.topics}
        unknown = sorted(set(self.quotas.groups) - scopes)
        if unknown and self.topics:
            raise ValueError(f"quotas.groups names {unknown}, which no topic sends to (the topics' dataset groups "
                             f"are {sorted(scopes)}): correct the name, or set topics[].dataset_group on the topics "
                             "of that group")
        return self

    @model_validator(mode="after")
    def _check_topics(self) -> WorkerSettings:
        if not self.topics:
            raise ValueError("no input topics: add at least one entry under `topics`")
        names = [t.name for t in self.topics]
        if len(set(names)) != len(names):
            raise ValueError(f"topics: a topic is listed twice: {names}")
        clash = set(names) & {t.dead_letter_topic for t in self.topics}
        if clash:
            raise ValueError(f"topics: a dead-letter topic is also an input topic: {sorted(clash)}")
        if self.privacy is not None:
            taken = set(names) | {t.dead_letter_topic for t in self.topics}
            for name in ("deletion_topic", "state_topic"):
                if getattr(self.privacy, name) in taken:
                    raise ValueError(f"privacy.{name} ({getattr(self.privacy, name)!r}) is also an input or "
                                     "dead-letter topic: give it a topic of its own")
            if self.privacy.pause_ingestion_during_jobs:
                groups = {arn.rsplit("/", 1)[-1] for arn in self.privacy.dataset_groups}
                unknown = [t.name for t in self.topics if t.rate_scope not in groups]
                if unknown:
                    raise ValueError(
                        f"privacy.pause_ingestion_during_jobs cannot tell which dataset group topics {unknown} feed "
                        f"(privacy.dataset_groups names {sorted(groups)}): set topics[].dataset_group to the group's "
                        "name, the last part of its ARN")
        return self


def _well_known_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Variables operators already use for Kafka and AWS, below WORKER_* in precedence."""
    result: dict[str, Any] = {}
    if servers := environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        result["kafka"] = {"bootstrap_servers": servers}
    if region := environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION"):
        result["personalize"] = {"region": region}
    return result

def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged

def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist; fix: pass --config PATH or set WORKER_CONFIG") from exc
    except yaml.YAMLError as exc:
        # Not str(exc): PyYAML quotes the offending lines, which may hold a password.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}; fix the file's syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, not {type(data).__name__}; "
                          "fix: start from `clickstream-worker config example`")
    return data

def load_settings(path: str | Path | None = None, **overrides: Any) -> WorkerSettings:
    """Load the YAML file (``path`` or ``WORKER_CONFIG``), apply env overrides, validate.

    Environment variables win over the file; `overrides` (from the command line) win over both.
    Raises ConfigError with a message naming each bad setting.
    """
    try:
        return WorkerSettings.model_validate(_layered(path, overrides))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from exc

class ToolSettings(_Section):
    """What tools such as `dlq replay` read: any topics are optional."""

    model_config = ConfigDict(extra="ignore")

    kafka: KafkaSettings = KafkaSettings()
    dlq: DlqSettings = DlqSettings()
    topics: list[TopicSettings] = Field(default_factory=list)

def load_tool_settings(path: str | Path | None = None) -> ToolSettings:
    """The `kafka`, `dlq` and `topics` sections with the same layers as `load_settings` (file,
    KAFKA_BOOTSTRAP_SERVERS, WORKER_*), without requiring topics."""
    try:
        return ToolSettings.model_validate(_layered(path, {}))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from exc

def _layered(path: str | Path | None, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """File values as the lowest-precedence layer, the environment on top, then `overrides`."""
    file_data: dict[str, Any] = {}
    chosen = path or os.environ.get("WORKER_CONFIG")
    if chosen:
        file_data = _read_yaml(Path(chosen))
    worker_env = _WorkerEnv().model_dump(exclude_none=True)  # WORKER_* variables, nested by "__"
    data = _deep_merge(_deep_merge(file_data, _well_known_env(os.environ)), worker_env)
    return _deep_merge(data, overrides)

class _WorkerEnv(BaseSettings):
    """Reads only WORKER_* variables (no validation of completeness) so they can be layered."""

    model_config = SettingsConfigDict(env_prefix="WORKER_", env_nested_delimiter="__", extra="ignore")

    kafka: dict[str, Any] | None = None
    topics: list[dict[str, Any]] | None = None
    personalize: dict[str, Any] | None = None
    delivery: dict[str, Any] | None = None
    quotas: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    observability: dict[str, Any] | None = None
    dlq: dict[str, Any] | None = None
    archive: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
