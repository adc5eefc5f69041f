"""Input topics: each bound to one Personalize dataset, one schema and one mapping."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
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

class TopicSettings(_Section):
    """One input topic, bound to one Personalize dataset and one mapping."""

    name: str = Field(min_length=1, max_length=249, description="Kafka topic to consume.")
    dataset_type: DatasetType = Field(description="interactions (PutEvents), items (PutItems) or users (PutUsers).")
    tracking_id: str | None = Field(None, description="Event tracker ID; required for interactions.")
    dataset_arn: str | None = Field(None, description="Items/Users dataset ARN; required for items/users.")
    dataset_group: str | None = Field(
        None,
        description="Rate-limit scope (quotas are per dataset group). Default: from the dataset ARN, "
        "else the tracking ID.",
    )
    schema_file: Path | None = Field(None, description="Avro schema; default schemas/<dataset_type>.json.")
    mapping: MappingSpec | None = Field(None, description="Field mapping; default reads Segment events.")
    dlq_topic: str | None = Field(None, description="Dead-letter topic; default <name>.dlq.")

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
        if self.dataset_type is not DatasetType.INTERACTIONS and not self.dataset_arn:
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
