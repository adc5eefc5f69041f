"""Actions, action interactions and action-interaction trackers, in the events store's SQLite file.

Part of the local Personalize (a development/test stand-in). `Store` owns the connection
and composes this class, so a PutActions / PutActionInteractions request is one
transaction of the same file and DeleteDataset removes a dataset's records in the
transaction that forgets the dataset.

* Actions are upserted by ID (last write wins), like items: PutActions "adds one or more
  actions to an Actions dataset" and a record with an existing ID replaces it.
* Action interactions are appended; of several with the same ``eventId`` per tracker
  only the first is kept ("any subsequent events after the first with the same event ID
  are not used in model training", ActionInteraction.eventId). The guide states no
  exact-duplicate rule for them, so none is applied. The event IDs are held in memory,
  rebuilt at start, as for events.
* The tracker of an Action interactions dataset is created with the dataset (its
  ``trackingId`` is in DescribeDataset); it follows the dataset's status. A tracker
  registered on the command line (``--action-tracker``) has no dataset and is always on.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final

from clickstream_devkit.personalize.erasure import StoredRow, select

ACTION_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS action_trackers (
    tracking_id TEXT PRIMARY KEY,
    dataset_arn TEXT,
    dataset_group_arn TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
    dataset_arn TEXT NOT NULL,
    action_id TEXT NOT NULL,
    properties TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (dataset_arn, action_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS action_interactions (
    seq INTEGER PRIMARY KEY,
    tracking_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    user_id TEXT,
    session_id TEXT NOT NULL,
    action_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    timestamp REAL NOT NULL,
    properties TEXT,
    recommendation_id TEXT,
    impression TEXT,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS action_interactions_by_tracker ON action_interactions (tracking_id, seq);
"""

_INSERT = (
    "INSERT INTO action_interactions (tracking_id, event_id, user_id, session_id, action_id, event_type, timestamp,"
    " properties, recommendation_id, impression, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)

Transaction = Callable[[], AbstractContextManager[None]]


@dataclass(frozen=True, slots=True)
class ActionTracker:
    tracking_id: str
    dataset_arn: str | None
    dataset_group_arn: str | None


@dataclass(frozen=True, slots=True)
class ActionInteractionRow:
    """One accepted action interaction, as stored (``eventId`` already filled in)."""

    event_id: str
    user_id: str | None
    session_id: str
    action_id: str
    event_type: str
    timestamp: float
    properties: str | None
    recommendation_id: str | None
    impression: tuple[str, ...] | None


class ActionTables:
    """The three action tables on the store's connection (event-loop thread only)."""

    def __init__(self, db: sqlite3.Connection, transaction: Transaction) -> None:
        self._db = db
        self._transaction = transaction
        db.executescript(ACTION_SCHEMA)
        self._trackers = {
            r[0]: ActionTracker(r[0], r[1], r[2])
            for r in db.execute("SELECT tracking_id, dataset_arn, dataset_group_arn FROM action_trackers")
        }
        self._seen: dict[str, set[str]] = {}
        for tracking_id, event_id in db.execute("SELECT tracking_id, event_id FROM action_interactions"):
            self._seen.setdefault(tracking_id, set()).add(event_id)

    # -- trackers --------------------------------------------------------------------

    def register_tracker(
        self, tracking_id: str, dataset_arn: str | None = None, group_arn: str | None = None
    ) -> ActionTracker:
        """Create or update an action-interaction tracker (idempotent)."""
        self._db.execute(
            "INSERT INTO action_trackers (tracking_id, dataset_arn, dataset_group_arn, created_at) VALUES (?,?,?,?)"
            " ON CONFLICT (tracking_id) DO UPDATE SET dataset_arn = excluded.dataset_arn,"
            " dataset_group_arn = excluded.dataset_group_arn",
            (tracking_id, dataset_arn, group_arn, time.time()),
        )
        tracker = ActionTracker(tracking_id, dataset_arn, group_arn)
        self._trackers[tracking_id] = tracker
        return tracker

    def tracker(self, tracking_id: str) -> ActionTracker | None:
        return self._trackers.get(tracking_id)

    def trackers(self) -> list[ActionTracker]:
        return list(self._trackers.values())

    def group_tracking_ids(self, group_arn: str) -> list[str]:
        return sorted(t.tracking_id for t in self._trackers.values() if t.dataset_group_arn == group_arn)

    # -- writes ----------------------------------------------------------------------

    def upsert_actions(self, dataset_arn: str, records: list[tuple[str, str | None]], now: float) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT INTO actions (dataset_arn, action_id, properties, updated_at) VALUES (?,?,?,?)"
                " ON CONFLICT (dataset_arn, action_id) DO UPDATE SET"
                " properties = excluded.properties, updated_at = excluded.updated_at",
                [(dataset_arn, rid, props, now) for rid, props in records],
            )

    def insert_interactions(self, tracking_id: str, rows: list[ActionInteractionRow], received_at: float) -> int:
        """Store the first occurrence of each eventId, atomically; returns how many were stored."""
        seen = self._seen.setdefault(tracking_id, set())
        new_ids: set[str] = set()
        params: list[tuple[Any, ...]] = []
        for r in rows:
            if r.event_id in seen or r.event_id in new_ids:
                continue
            new_ids.add(r.event_id)
            impression = None if r.impression is None else json.dumps(r.impression)
            params.append((tracking_id, r.event_id, r.user_id, r.session_id, r.action_id, r.event_type,
                           r.timestamp, r.properties, r.recommendation_id, impression, received_at))  # fmt: skip
        if params:
            with self._transaction():
                self._db.executemany(_INSERT, params)
            seen |= new_ids  # only after COMMIT
        return len(params)

    def forget_dataset(self, dataset_arn: str) -> None:
        """Inside the caller's transaction: the dataset's actions, or its tracker and its interactions."""
        gone = [t.tracking_id for t in self._trackers.values() if t.dataset_arn == dataset_arn]
        self._db.execute("DELETE FROM actions WHERE dataset_arn = ?", (dataset_arn,))
        for tracking_id in gone:
            self._db.execute("DELETE FROM action_interactions WHERE tracking_id = ?", (tracking_id,))
            self._db.execute("DELETE FROM action_trackers WHERE tracking_id = ?", (tracking_id,))

    def after_forget(self, dataset_arn: str) -> None:
        """After the caller's COMMIT: drop the in-memory mirror of what `forget_dataset` removed."""
        for tracking_id in [t.tracking_id for t in self._trackers.values() if t.dataset_arn == dataset_arn]:
            self._trackers.pop(tracking_id, None)
            self._seen.pop(tracking_id, None)

    # -- user erasure (data deletion jobs) ---------------------------------------------

    def erase(self, tracking_id: str, users: frozenset[str], cutoff: float) -> tuple[int, int]:
        """Delete the tracker's interactions of `users` stored at or before `cutoff` (see `erasure`): (deleted, kept).

        Their event IDs are forgotten: the rows are gone, so a copy sent again is new data.
        """
        rows = [
            StoredRow(seq, user, session, received)
            for seq, user, session, received in self._db.execute(
                "SELECT seq, user_id, session_id, received_at FROM action_interactions WHERE tracking_id = ?"
                " ORDER BY seq",
                (tracking_id,),
            )
        ]
        selection = select(rows, users, cutoff)
        if not selection.delete:
            return 0, selection.kept
        with self._transaction():
            event_ids = [
                row[0]
                for key in selection.delete
                for row in self._db.execute("DELETE FROM action_interactions WHERE seq = ? RETURNING event_id", (key,))
            ]
        self._seen.get(tracking_id, set()).difference_update(event_ids)
        return len(event_ids), selection.kept

    # -- reads (inspection API) ----------------------------------------------------------

    def list_actions(self, dataset_arn: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        where, args = ("WHERE dataset_arn = ?", [dataset_arn]) if dataset_arn is not None else ("", [])
        rows = self._db.execute(
            f"SELECT dataset_arn, action_id, properties, updated_at FROM actions {where}"
            " ORDER BY dataset_arn, action_id LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return [{"datasetArn": r[0], "actionId": r[1], "properties": r[2], "updatedAt": r[3]} for r in rows]

    def list_interactions(self, tracking_id: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        where, args = ("WHERE tracking_id = ?", [tracking_id]) if tracking_id is not None else ("", [])
        rows = self._db.execute(
            "SELECT event_id, user_id, session_id, action_id, event_type, timestamp, properties, recommendation_id,"
            f" impression, received_at, tracking_id FROM action_interactions {where} ORDER BY seq LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        keys = ("eventId", "userId", "sessionId", "actionId", "eventType", "timestamp", "properties",
                "recommendationId", "impression", "receivedAt", "trackingId")  # fmt: skip
        out = [dict(zip(keys, r, strict=True)) for r in rows]
        for row in out:
            row["impression"] = None if row["impression"] is None else json.loads(row["impression"])
        return out

    def counts(self) -> dict[str, int]:
        return {
            table: int(self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in ("actions", "action_interactions")
        }
