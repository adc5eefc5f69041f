"""Durable state of the local Personalize (a development/test stand-in): one SQLite file.

WAL with ``synchronous=NORMAL`` survives a killed process (not a power cut), which is
the durability a test stand-in needs, and keeps a commit to a few microseconds so one
core absorbs thousands of PutEvents calls a second. Each Put* request is exactly one
transaction, so a batch is stored whole or not at all, as the real API promises.

Deduplication follows the service docs (contract §5.1): per tracking ID only the
*first* event with a given ``eventId`` is kept, and of several events that are exact
duplicates only one is kept. "Exact duplicate" is read as the same dataset row: the
same user, item, event type, event value, ``sentAt`` and identical ``properties``
text. Later copies are counted as duplicates and not stored.

The dedupe keys are held in memory (`_SeenKeys`, rebuilt from the table at start)
rather than as UNIQUE indexes: producers' event IDs are typically hashes, and a
B-tree over random keys dirties about one page per event, which on this kind of disk
cut throughput by more than half. The table therefore stays append-only on the hot
path. The price is memory - roughly 200 bytes per stored event - which a
development stand-in can afford. Keys join the in-memory set only after the
transaction commits, so the set never claims a row the table does not have.

Registrations (event trackers, datasets) live here too so a restart keeps them; the
small `register_*` API is what the control plane calls. Lookups are
served from an in-memory mirror to keep the hot path free of extra queries. The
control plane's Delete* operations use the `retire_tracker` / `forget_trackers` /
`delete_events` / `unregister_dataset` calls: a deleted tracker's events stay in its
dataset group's interactions (DeleteEventTracker "does not delete the dataset"), and a
deleted dataset takes its stored records with it.

Actions, action interactions and their trackers live in the same file (`action_store`,
composed here as `actions`). Data deletion jobs remove users' records through
`erase_events` / `erase_users`; which rows go is decided by the pure `erasure` rules.

The connection is used from the event-loop thread only; a component that needs
another thread (e.g. training) should open its own `Store` on the same directory.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from clickstream_devkit.personalize.action_store import ActionTables
from clickstream_devkit.personalize.erasure import StoredRow, select

DB_FILE: Final = "local-personalize.sqlite3"
SCHEMA_VERSION: Final = 1
DATASET_TYPES: Final = frozenset({"INTERACTIONS", "ITEMS", "USERS", "ACTIONS", "ACTION_INTERACTIONS"})
ACTIVE: Final = "ACTIVE"
#: A deleted event tracker: PutEvents no longer accepts its ID, its events stay training data.
RETIRED: Final = "DELETED"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trackers (
    tracking_id TEXT PRIMARY KEY,
    dataset_group_arn TEXT,
    status TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS datasets (
    dataset_arn TEXT PRIMARY KEY,
    dataset_type TEXT NOT NULL,
    dataset_group_arn TEXT,
    status TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    tracking_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    user_id TEXT,
    session_id TEXT NOT NULL,
    item_id TEXT,
    event_type TEXT NOT NULL,
    event_value REAL,
    sent_at REAL NOT NULL,
    properties TEXT,
    recommendation_id TEXT,
    impression TEXT,
    event_attribution_source TEXT,
    received_at REAL NOT NULL,
    content_key BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_tracker ON events (tracking_id, seq);
CREATE TABLE IF NOT EXISTS items (
    dataset_arn TEXT NOT NULL,
    item_id TEXT NOT NULL,
    properties TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (dataset_arn, item_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users (
    dataset_arn TEXT NOT NULL,
    user_id TEXT NOT NULL,
    properties TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (dataset_arn, user_id)
) WITHOUT ROWID;
"""

_INSERT_EVENT = (
    "INSERT INTO events (tracking_id, event_id, user_id, session_id, item_id, event_type,"
    " event_value, sent_at, properties, recommendation_id, impression, event_attribution_source,"
    " received_at, content_key) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_EVENT_COLUMNS = (
    "event_id, user_id, session_id, item_id, event_type, event_value, sent_at, properties,"
    " recommendation_id, impression, event_attribution_source, received_at, tracking_id"
)


@dataclass(frozen=True, slots=True)
class Tracker:
    tracking_id: str
    dataset_group_arn: str | None
    status: str


@dataclass(frozen=True, slots=True)
class Dataset:
    arn: str
    dataset_type: str
    dataset_group_arn: str | None
    status: str


@dataclass(frozen=True, slots=True)
class EventRow:
    """One accepted PutEvents event, as stored (``eventId`` already filled in)."""

    event_id: str
    user_id: str | None
    session_id: str
    item_id: str | None
    event_type: str
    event_value: float | None
    sent_at: float
    properties: str | None
    recommendation_id: str | None
    impression: tuple[str, ...] | None
    event_attribution_source: str | None


@dataclass(frozen=True, slots=True)
class InsertResult:
    """`duplicates` were not stored; `same_content` of them had a new eventId but repeated a
    stored event in every other member (the exact-duplicate rule), the rest repeated an eventId."""

    stored: int
    duplicates: int
    same_content: int = 0


def content_key(row: EventRow) -> bytes:
    """Identity of an event for the exact-duplicate rule: every member except eventId.

    The guide only says events with "exactly the same timestamp and identical properties"
    are kept once (contract section 5.1). The safe reading drops only events that are
    identical in *every* member: two views of one item in the same millisecond that differ
    in session, recommendationId or impression are distinct events and both are kept.
    The repr of a tuple is unambiguous (strings are quoted and escaped) and cheap.
    """
    identity = (row.user_id, row.session_id, row.item_id, row.event_type, row.event_value, row.sent_at,
                row.properties, row.recommendation_id, row.impression, row.event_attribution_source)
    return hashlib.blake2b(repr(identity).encode(), digest_size=16).digest()


class _SeenKeys:
    """Event IDs and content keys already stored for one tracking ID, and the event IDs already
    discarded as same-content duplicates (so a redelivery of one is not counted twice)."""

    __slots__ = ("contents", "event_ids", "same_content_ids")

    def __init__(self) -> None:
        self.event_ids: set[str] = set()
        self.contents: set[bytes] = set()
        self.same_content_ids: set[str] = set()


class Store:
    """The SQLite file under the data directory, plus an in-memory registration mirror."""

    def __init__(self, data_dir: Path | str) -> None:
        directory = Path(data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / DB_FILE
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self._trackers = {
            r[0]: Tracker(r[0], r[1], r[2])
            for r in self._db.execute("SELECT tracking_id, dataset_group_arn, status FROM trackers")
        }
        self._datasets = {
            r[0]: Dataset(r[0], r[1], r[2], r[3])
            for r in self._db.execute("SELECT dataset_arn, dataset_type, dataset_group_arn, status FROM datasets")
        }

        #: Called after each commit with (tracking ID, stored rows): the runtime's live histories.
        self._listeners: list[Callable[[str, list[EventRow]], None]] = []
        #: Called after each PutItems/PutUsers commit with (table, dataset ARN, (ID, properties) records).
        self._record_listeners: list[Callable[[str, str, list[tuple[str, str | None]]], None]] = []
        self._seen: dict[str, _SeenKeys] = {}
        for tracking_id, event_id, key in self._db.execute("SELECT tracking_id, event_id, content_key FROM events"):
            seen = self._seen_for(tracking_id)
            seen.event_ids.add(event_id)
            seen.contents.add(key)
        #: PutActions / PutActionInteractions data and the action-interaction trackers.
        self.actions = ActionTables(self._db, self._transaction)

    def close(self) -> None:
        self._db.close()

    def add_listener(self, listener: Callable[[str, list[EventRow]], None]) -> None:
        """Have `listener` see every newly stored event (after its commit, on this thread)."""
        self._listeners.append(listener)

    def add_record_listener(self, listener: Callable[[str, str, list[tuple[str, str | None]]], None]) -> None:
        """Have `listener` see every PutItems/PutUsers batch after its commit (``items`` or ``users``)."""
        self._record_listeners.append(listener)

    # -- registrations (the control plane calls these) -------------------------------

    def register_tracker(self, tracking_id: str, dataset_group_arn: str | None = None) -> Tracker:
        """Create or update an ACTIVE event tracker; idempotent."""
        self._db.execute(
            "INSERT INTO trackers (tracking_id, dataset_group_arn, status, created_at) VALUES (?,?,?,?)"
            " ON CONFLICT (tracking_id) DO UPDATE SET"
            " dataset_group_arn = coalesce(excluded.dataset_group_arn, dataset_group_arn),"
            " status = excluded.status",
            (tracking_id, dataset_group_arn, ACTIVE, time.time()),
        )
        group = dataset_group_arn
        if group is None and tracking_id in self._trackers:
            group = self._trackers[tracking_id].dataset_group_arn
        tracker = Tracker(tracking_id, group, ACTIVE)
        self._trackers[tracking_id] = tracker
        return tracker

    def register_dataset(self, arn: str, dataset_type: str, dataset_group_arn: str | None = None) -> Dataset:
        """Create or update an ACTIVE dataset; `dataset_type` as in CreateDataset (any case)."""
        kind = dataset_type.upper()
        if kind not in DATASET_TYPES:
            raise ValueError(f"unknown dataset type {dataset_type!r}; expected one of {sorted(DATASET_TYPES)}")
        self._db.execute(
            "INSERT INTO datasets (dataset_arn, dataset_type, dataset_group_arn, status, created_at)"
            " VALUES (?,?,?,?,?) ON CONFLICT (dataset_arn) DO UPDATE SET"
            " dataset_type = excluded.dataset_type,"
            " dataset_group_arn = coalesce(excluded.dataset_group_arn, dataset_group_arn),"
            " status = excluded.status",
            (arn, kind, dataset_group_arn, ACTIVE, time.time()),
        )
        group = dataset_group_arn
        if group is None and arn in self._datasets:
            group = self._datasets[arn].dataset_group_arn
        dataset = Dataset(arn, kind, group, ACTIVE)
        self._datasets[arn] = dataset
        return dataset

    def set_dataset_status(self, arn: str, status: str) -> None:
        """Let the control plane mark a dataset busy (Put* then answers ResourceInUse)."""
        current = self._datasets[arn]
        self._db.execute("UPDATE datasets SET status = ? WHERE dataset_arn = ?", (status, arn))
        self._datasets[arn] = Dataset(current.arn, current.dataset_type, current.dataset_group_arn, status)

    def retire_tracker(self, tracking_id: str) -> None:
        """DeleteEventTracker: PutEvents stops accepting the ID; its events stay (see the module docstring)."""
        current = self._trackers.get(tracking_id)
        if current is None:
            return
        self._db.execute("UPDATE trackers SET status = ? WHERE tracking_id = ?", (RETIRED, tracking_id))
        self._trackers[tracking_id] = Tracker(tracking_id, current.dataset_group_arn, RETIRED)

    def forget_trackers(self, tracking_ids: list[str]) -> None:
        """Drop the trackers and their events for good (their dataset group is being deleted)."""
        self.delete_events(tracking_ids)
        with self._transaction():
            self._db.executemany("DELETE FROM trackers WHERE tracking_id = ?", [(t,) for t in tracking_ids])
        for tracking_id in tracking_ids:
            self._trackers.pop(tracking_id, None)

    def delete_events(self, tracking_ids: list[str]) -> None:
        """Remove every stored event of the trackers (their Interactions dataset is deleted).

        The dedupe keys go too: an event sent again to a re-created dataset is new data.
        """
        with self._transaction():
            self._db.executemany("DELETE FROM events WHERE tracking_id = ?", [(t,) for t in tracking_ids])
        for tracking_id in tracking_ids:
            self._seen.pop(tracking_id, None)

    def unregister_dataset(self, arn: str) -> None:
        """DeleteDataset: forget the dataset and what PutItems/PutUsers/PutActions(/Interactions) stored in it."""
        with self._transaction():
            self._db.execute("DELETE FROM datasets WHERE dataset_arn = ?", (arn,))
            self._db.execute("DELETE FROM items WHERE dataset_arn = ?", (arn,))
            self._db.execute("DELETE FROM users WHERE dataset_arn = ?", (arn,))
            self.actions.forget_dataset(arn)
        self.actions.after_forget(arn)
        self._datasets.pop(arn, None)

    def tracker(self, tracking_id: str) -> Tracker | None:
        return self._trackers.get(tracking_id)

    def dataset(self, arn: str) -> Dataset | None:
        return self._datasets.get(arn)

    def trackers(self) -> list[Tracker]:
        return list(self._trackers.values())

    def datasets(self) -> list[Dataset]:
        return list(self._datasets.values())

    # -- writes: one transaction each -----------------------------------------------

    def insert_events(self, tracking_id: str, rows: list[EventRow], received_at: float) -> InsertResult:
        """Store the first occurrence of each event (eventId and exact-row dedupe), atomically."""
        seen = self._seen_for(tracking_id)
        new_ids: set[str] = set()
        new_keys: set[bytes] = set()
        params = []
        stored: list[EventRow] = []
        same_content = 0
        for r in rows:
            key = content_key(r)
            if r.event_id in seen.event_ids or r.event_id in new_ids:
                continue
            if key in seen.contents or key in new_keys:
                # A distinct eventId, but identical in every other member; counted once per
                # eventId (a redelivered one is a plain duplicate). In memory: a restart forgets.
                if r.event_id not in seen.same_content_ids:
                    seen.same_content_ids.add(r.event_id)
                    same_content += 1
                continue
            new_ids.add(r.event_id)
            new_keys.add(key)
            stored.append(r)
            params.append(
                (
                    tracking_id,
                    r.event_id,
                    r.user_id,
                    r.session_id,
                    r.item_id,
                    r.event_type,
                    r.event_value,
                    r.sent_at,
                    r.properties,
                    r.recommendation_id,
                    None if r.impression is None else json.dumps(r.impression),
                    r.event_attribution_source,
                    received_at,
                    key,
                )
            )
        if params:
            with self._transaction():
                self._db.executemany(_INSERT_EVENT, params)
            seen.event_ids |= new_ids  # only after COMMIT
            seen.contents |= new_keys
            for listener in self._listeners:
                listener(tracking_id, stored)
        return InsertResult(stored=len(params), duplicates=len(rows) - len(params), same_content=same_content)

    def _seen_for(self, tracking_id: str) -> _SeenKeys:
        seen = self._seen.get(tracking_id)
        if seen is None:
            seen = self._seen[tracking_id] = _SeenKeys()
        return seen

    def upsert_items(self, dataset_arn: str, records: list[tuple[str, str | None]]) -> None:
        self._upsert("items", "item_id", dataset_arn, records)

    def upsert_users(self, dataset_arn: str, records: list[tuple[str, str | None]]) -> None:
        self._upsert("users", "user_id", dataset_arn, records)

    def _upsert(self, table: str, id_column: str, dataset_arn: str, records: list[tuple[str, str | None]]) -> None:
        """Last write wins: a record whose ID exists replaces it (DG importing-items/users)."""
        now = time.time()
        sql = (
            f"INSERT INTO {table} (dataset_arn, {id_column}, properties, updated_at) VALUES (?,?,?,?)"
            f" ON CONFLICT (dataset_arn, {id_column}) DO UPDATE SET"
            " properties = excluded.properties, updated_at = excluded.updated_at"
        )
        with self._transaction():
            self._db.executemany(sql, [(dataset_arn, rid, props, now) for rid, props in records])
        for listener in self._record_listeners:
            listener(table, dataset_arn, records)

    def catalog_records(self, table: str, dataset_arn: str) -> list[tuple[str, str | None]]:
        """(ID, properties) of every item or user stored by PutItems/PutUsers in one dataset."""
        id_column = {"items": "item_id", "users": "user_id"}[table]
        return self._db.execute(
            f"SELECT {id_column}, properties FROM {table} WHERE dataset_arn = ?", (dataset_arn,)
        ).fetchall()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # -- user erasure (data deletion jobs) ---------------------------------------------

    def erase_events(self, tracking_id: str, users: frozenset[str], cutoff: float) -> tuple[int, int]:
        """Delete the tracker's events of `users` stored at or before `cutoff` (see `erasure`): (deleted, kept).

        Their event IDs and content keys are forgotten too, as for a deleted dataset: the
        rows are gone, so a copy sent again is new data.
        """
        rows = [
            StoredRow(seq, user, session, received)
            for seq, user, session, received in self._db.execute(
                "SELECT seq, user_id, session_id, received_at FROM events WHERE tracking_id = ? ORDER BY seq",
                (tracking_id,),
            )
        ]
        selection = select(rows, users, cutoff)
        if not selection.delete:
            return 0, selection.kept
        with self._transaction():
            gone = [
                row
                for seq in selection.delete
                for row in self._db.execute("DELETE FROM events WHERE seq = ? RETURNING event_id, content_key", (seq,))
            ]
        seen = self._seen_for(tracking_id)
        seen.event_ids.difference_update(event_id for event_id, _ in gone)
        seen.contents.difference_update(key for _, key in gone)
        return len(gone), selection.kept

    def erase_users(self, dataset_arn: str, users: frozenset[str], cutoff: float) -> tuple[int, int]:
        """Delete the PutUsers records of `users` last written at or before `cutoff`: (deleted, kept)."""
        found = [
            (user_id, updated_at)
            for user_id, updated_at in self._db.execute(
                "SELECT user_id, updated_at FROM users WHERE dataset_arn = ?", (dataset_arn,)
            )
            if user_id in users
        ]
        doomed = [user_id for user_id, updated_at in found if updated_at <= cutoff]
        if doomed:
            with self._transaction():
                self._db.executemany(
                    "DELETE FROM users WHERE dataset_arn = ? AND user_id = ?", [(dataset_arn, u) for u in doomed]
                )
        return len(doomed), len(found) - len(doomed)

    # -- reads (inspection API) -----------------------------------------------------

    def list_events(self, tracking_id: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        where, args = ("WHERE tracking_id = ?", [tracking_id]) if tracking_id is not None else ("", [])
        rows = self._db.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events {where} ORDER BY seq LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return [
            {
                "eventId": r[0],
                "userId": r[1],
                "sessionId": r[2],
                "itemId": r[3],
                "eventType": r[4],
                "eventValue": r[5],
                "sentAt": r[6],
                "properties": r[7],
                "recommendationId": r[8],
                "impression": None if r[9] is None else json.loads(r[9]),
                "eventAttributionSource": r[10],
                "receivedAt": r[11],
                "trackingId": r[12],
            }
            for r in rows
        ]

    def event_history(self, tracking_id: str) -> list[tuple[str | None, str, str | None, str, float | None, float]]:
        """(user, session, item, event type, value, sentAt) of a tracker's events, in arrival order."""
        return self._db.execute(
            "SELECT user_id, session_id, item_id, event_type, event_value, sent_at FROM events"
            " WHERE tracking_id = ? ORDER BY seq",
            (tracking_id,),
        ).fetchall()

    def list_catalog(self, table: str, dataset_arn: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        """Items or users (`table` is ``items`` or ``users``), in ID order."""
        id_column, id_key = {"items": ("item_id", "itemId"), "users": ("user_id", "userId")}[table]
        where, args = ("WHERE dataset_arn = ?", [dataset_arn]) if dataset_arn is not None else ("", [])
        rows = self._db.execute(
            f"SELECT dataset_arn, {id_column}, properties, updated_at FROM {table} {where}"
            f" ORDER BY dataset_arn, {id_column} LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return [{"datasetArn": r[0], id_key: r[1], "properties": r[2], "updatedAt": r[3]} for r in rows]

    def counts(self) -> dict[str, int]:
        counts = {
            table: int(self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in ("events", "items", "users")
        }
        return counts | self.actions.counts()


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``/``ROLLBACK`` on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
