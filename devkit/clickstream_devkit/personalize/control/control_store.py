"""Control-plane resources of the local Personalize, persisted in ``control.sqlite3``.

One generic table holds every resource (schema, dataset group, dataset, event tracker,
import job, solution, solution version, campaign, filter, batch inference job, data
deletion job): its ARN, kind, parent, status, timestamps, the public document DescribeX
returns (``doc``) and private bookkeeping (``meta``: injected failures, the pending
campaign update, the model file …). Resources
are few, so all of them are mirrored in memory and every write goes straight to SQLite:
a restart reloads exactly what was last acknowledged, including every in-flight status,
which is what lets the background drivers resume (see `jobs`).

This file is separate from the events store so a control-plane write never waits for
an events transaction and vice versa. It is used from the event-loop thread only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from clickstream_devkit.personalize.control.resource import (
    BATCH_INFERENCE_JOB,
    CAMPAIGN,
    DATA_DELETION_JOB,
    DATASET,
    DATASET_GROUP,
    EVENT_TRACKER,
    FILTER,
    IMPORT_JOB,
    SCHEMA,
    SOLUTION,
    SOLUTION_VERSION,
    Resource,
)

CONTROL_DB_FILE: Final = "control.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    arn TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    parent TEXT,
    status TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    doc TEXT NOT NULL,
    meta TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS resources_by_kind ON resources (kind, parent);
"""

__all__ = [
    "BATCH_INFERENCE_JOB",
    "CAMPAIGN",
    "DATASET",
    "DATASET_GROUP",
    "DATA_DELETION_JOB",
    "EVENT_TRACKER",
    "FILTER",
    "IMPORT_JOB",
    "SCHEMA",
    "SOLUTION",
    "SOLUTION_VERSION",
    "ControlStore",
    "Resource",
]

class ControlStore:
    """The resources table plus its in-memory mirror (event-loop thread only)."""

    def __init__(self, data_dir: Path | str) -> None:
        directory = Path(data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / CONTROL_DB_FILE
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._resources: dict[str, Resource] = {}
        for arn, kind, parent, status, created, updated, doc, meta in self._db.execute(
            "SELECT arn, kind, parent, status, created, updated, doc, meta FROM resources"
        ):
            self._resources[arn] = Resource(
                arn, kind, parent, status, created, updated, json.loads(doc), json.loads(meta)
            )

    def close(self) -> None:
        self._db.close()

    def get(self, arn: str, kind: str | None = None) -> Resource | None:
        resource = self._resources.get(arn)
        if resource is None or (kind is not None and resource.kind != kind):
            return None
        return resource

    def add(self, resource: Resource) -> None:
        """Insert a new resource; the caller has checked the ARN is free."""
        self._write(resource)
        self._resources[resource.arn] = resource

    def save(self, resource: Resource, *, now: float | None = None) -> None:
        """Persist changes made to `resource` (``updated`` moves to `now` when given)."""
        if now is not None:
            resource.updated = now
        self._write(resource)

    def remove(self, arn: str) -> None:
        """Forget a resource for good (the last step of a Delete*); a no-op when it is already gone."""
        self._db.execute("DELETE FROM resources WHERE arn = ?", (arn,))
        self._resources.pop(arn, None)

    def set_status(self, resource: Resource, status: str, now: float, **doc_updates: Any) -> None:
        resource.status = status
        resource.doc.update(doc_updates)
        self.save(resource, now=now)

    def all(self, kind: str | None = None, parent: str | None = None) -> list[Resource]:
        return list(self._iter(kind, parent))

    def _iter(self, kind: str | None, parent: str | None) -> Iterator[Resource]:
        for resource in self._resources.values():
            if kind is not None and resource.kind != kind:
                continue
            if parent is not None and resource.parent != parent:
                continue
            yield resource

    def _write(self, r: Resource) -> None:
        self._db.execute(
            "INSERT INTO resources (arn, kind, parent, status, created, updated, doc, meta)"
            " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (arn) DO UPDATE SET"
            " status = excluded.status, updated = excluded.updated, doc = excluded.doc, meta = excluded.meta",
            (r.arn, r.kind, r.parent, r.status, r.created, r.updated, json.dumps(r.doc), json.dumps(r.meta)),
        )
