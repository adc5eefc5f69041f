"""A control-plane resource as data, and the resource kinds (pure: no I/O).

Kept apart from `control_store` (which persists resources in SQLite) so the pure rule
modules (`deletion`, `filter_expr` …) can reason about resources without importing
anything that touches a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

#: Resource kinds (the ARN's type segment, except solution versions).
SCHEMA: Final = "schema"
DATASET_GROUP: Final = "dataset-group"
DATASET: Final = "dataset"
EVENT_TRACKER: Final = "event-tracker"
IMPORT_JOB: Final = "dataset-import-job"
SOLUTION: Final = "solution"
SOLUTION_VERSION: Final = "solution-version"
CAMPAIGN: Final = "campaign"
FILTER: Final = "filter"
BATCH_INFERENCE_JOB: Final = "batch-inference-job"
DATA_DELETION_JOB: Final = "data-deletion-job"


@dataclass
class Resource:
    """One resource. `doc` holds the public fields except status and timestamps."""

    arn: str
    kind: str
    parent: str | None
    status: str | None
    created: float
    updated: float
    doc: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The public document: `doc` plus status (when it has one) and the two timestamps."""
        out = dict(self.doc)
        if self.status is not None:
            out["status"] = self.status
        out["creationDateTime"] = self.created
        out["lastUpdatedDateTime"] = self.updated
        return out

    def sort_key(self) -> tuple[float, str]:
        return (self.created, self.arn)
