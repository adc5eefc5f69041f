"""Input topics: each bound to one Personalize dataset, one schema and one mapping."""

from __future__ import annotations

import re
import sys
import urllib.parse
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from worker.config.base import _Section
from worker.config.mapping import MappingSpec, default_mapping
from worker.records import DatasetType


def _default_schema_dir() -> Path:
    """`schemas/` of a source checkout, else the copy a wheel installs under <prefix>/share."""
    checkout = Path(__file__).resolve().parents[2] / "schemas"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "clickstream-worker" / "schemas"

#: Schemas shipped with the project, used when a topic names none.
DEFAULT_SCHEMA_DIR = _default_schema_dir()

_ARN_GROUP = re.compile(r"^arn:[a-z\d-]+:personalize:[^:]*:[^:]*:dataset/([^/]+)/")

RecordFormat = Literal["json", "confluent", "glue"]


class ConfluentRegistrySettings(_Section):
    """A Confluent-compatible Schema Registry (Confluent Platform or Cloud, Karapace, Redpanda, ...)."""

    url: str = Field(description="Registry base URL, e.g. https://schema-registry:8081 (schemas: GET /schemas/ids/N).")
    username: str | None = Field(None, description="Basic auth user (Confluent Cloud: the API key).")
    password: SecretStr | None = Field(None, description="Basic auth password (Confluent Cloud: the API secret).")
    password_env: str | None = Field(
        None, description="Name of an environment variable holding the password (e.g. from a Kubernetes Secret)."
    )
    ca_file: Path | None = Field(None, description="CA bundle for the registry's TLS certificate.")
    cert_file: Path | None = Field(None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(None, description="Client certificate key (mutual TLS).")
    check_hostname: bool = Field(True, description="Verify the registry certificate's host name.")
    timeout_s: float = Field(10.0, gt=0, description="Per request.")
    retry_max_s: float = Field(
        30.0, gt=0, description="Longest wait between retries while the registry is unreachable or answers 5xx."
    )

    @model_validator(mode="after")
    def _check(self) -> ConfluentRegistrySettings:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"registry.url {self.url!r} is not an http(s) URL: write e.g. https://schema-registry:8081")
        if parts.username or parts.password:
            raise ValueError("registry.url carries credentials: move them to registry.username and registry.password")
        if self.password is not None and self.password_env:
            raise ValueError("set registry.password or registry.password_env, not both")
        if (self.password is not None or self.password_env) and not self.username:
            raise ValueError("registry has a password but no username: set registry.username")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("mutual TLS needs both registry.cert_file and registry.key_file")
        if self.username and parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
            raise ValueError(f"registry.url {self.url} is plain http to another machine: the basic-auth credentials "
                             "would cross the network unencrypted; use https")
        return self


class GlueRegistrySettings(_Section):
    """The AWS Glue Schema Registry (schemas by version UUID with glue:GetSchemaVersion)."""

    region: str | None = Field(None, description="Default: AWS_REGION / AWS_DEFAULT_REGION.")
    endpoint_url: str | None = Field(None, description="Override (AWS_ENDPOINT_URL_GLUE works too).")
    timeout_s: float = Field(10.0, gt=0, description="Per request.")
    retry_max_s: float = Field(
        30.0, gt=0, description="Longest wait between retries while Glue is unreachable or failing."
    )


def _registry(model: type[_Section], data: dict[str, Any], topic: str, fmt: str) -> _Section:
    """The `registry:` block validated for the topic's format; errors name each setting (never a value)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"registry.{'.'.join(map(str, e['loc'])) or '(block)'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ValueError(f"topic {topic!r} (format {fmt}): {problems}") from None


class TopicSettings(_Section):
    """One input topic, bound to one Personalize dataset and one mapping."""

    name: str = Field(min_length=1, max_length=249, description="Kafka topic to consume.")
    dataset_type: DatasetType = Field(
        description="interactions (PutEvents), items (PutItems), users (PutUsers), actions (PutActions) or "
        "action_interactions (PutActionInteractions).")
    tracking_id: str | None = Field(
        None, description="Tracking ID; required for interactions (the event tracker's) and action_interactions (the "
        "one the Action interactions dataset was created with: DescribeDataset trackingId).")
    dataset_arn: str | None = Field(
        None, description="Dataset ARN; required for items, users and actions.")
    dataset_group: str | None = Field(
        None,
        description="The dataset group this topic sends to: its Personalize quota is shared by every topic and "
        "replica sending to it (raise it under quotas.groups.NAME). Default: from the dataset ARN, else the "
        "tracking ID; name it on interactions topics.",
    )
    schema_file: Path | None = Field(None, description="Avro schema; default schemas/<dataset_type>.json.")
    mapping: MappingSpec | None = Field(None, description="Field mapping; default reads Segment events.")
    dlq_topic: str | None = Field(None, description="Dead-letter topic; default <name>.dlq.")
    format: RecordFormat = Field(
        "json",
        description="How record values are encoded: json (or the mapping preset's text form), confluent "
        "(Schema Registry framing: Avro, Protobuf or JSON Schema), glue (AWS Glue Schema Registry framing).",
    )
    registry: ConfluentRegistrySettings | GlueRegistrySettings | None = Field(
        None, description="Where schemas are fetched: required for confluent (url, auth, TLS); optional for glue."
    )

    @model_validator(mode="before")
    @classmethod
    def _registry_for_format(cls, data: Any) -> Any:
        """Validate `registry:` with the model of the topic's format (each refuses the other's keys)."""
        if not isinstance(data, dict):
            return data
        fmt, registry = data.get("format", "json"), data.get("registry")
        name = data.get("name", "?")
        if fmt == "confluent":
            if registry is None:
                raise ValueError(f"topic {name!r} has format confluent: set registry.url to the Schema Registry "
                                 "URL (e.g. https://schema-registry:8081)")
            if isinstance(registry, dict):
                data = {**data, "registry": _registry(ConfluentRegistrySettings, registry, name, fmt)}
        elif fmt == "glue":
            if registry is None or isinstance(registry, dict):
                data = {**data, "registry": _registry(GlueRegistrySettings, registry or {}, name, fmt)}
        elif registry is not None:
            raise ValueError(f"topic {name!r} sets registry but its format is {fmt}: set format to confluent or "
                             "glue, or remove registry")
        return data

    @model_validator(mode="before")
    @classmethod
    def _mapping_kind_from_dataset_type(cls, data: Any) -> Any:
        """A topic's `mapping:` block need not repeat its kind: it is the topic's dataset type."""
        if isinstance(data, dict) and isinstance(data.get("mapping"), dict) and data.get("dataset_type"):
            data = {**data, "mapping": {"kind": data["dataset_type"], **data["mapping"]}}
        return data

    @model_validator(mode="after")
    def _check_target(self) -> TopicSettings:
        if self.dataset_type is DatasetType.INTERACTIONS and not self.tracking_id:
            raise ValueError(
                f"topic {self.name!r} feeds interactions: set tracking_id to the event tracker's "
                "trackingId (CreateEventTracker / DescribeEventTracker)"
            )
        if self.dataset_type is DatasetType.ACTION_INTERACTIONS and not self.tracking_id:
            raise ValueError(
                f"topic {self.name!r} feeds action_interactions: set tracking_id to the trackingId of the Action "
                "interactions dataset (DescribeDataset; CreateDataset made its tracker)"
            )
        if not self.dataset_type.is_event_stream and not self.dataset_arn:
            raise ValueError(
                f"topic {self.name!r} feeds {self.dataset_type.value}: set dataset_arn to the "
                f"{self.dataset_type.value} dataset's ARN"
            )
        return self

    @property
    def dead_letter_topic(self) -> str:
        return self.dlq_topic or f"{self.name}.dlq"

    @property
    def schema_path(self) -> Path:
        return self.schema_file or DEFAULT_SCHEMA_DIR / f"{self.dataset_type.value}.json"

    @property
    def effective_mapping(self) -> MappingSpec:
        return self.mapping or default_mapping(self.dataset_type)

    @property
    def rate_scope(self) -> str:
        """Personalize quotas are per dataset group; approximate when the group is unknown."""
        if self.dataset_group:
            return self.dataset_group
        if self.dataset_arn and (match := _ARN_GROUP.match(self.dataset_arn)):
            return match.group(1)
        return self.tracking_id or self.dataset_arn or self.name
