"""Bulk-imported data (CreateDatasetImportJob) of the local Personalize: ``bulk.sqlite3``.

Kept apart from the streamed data on purpose, because the two obey different rules
(contract §8.4): a FULL import replaces the dataset's earlier *bulk* data but never
removes records that arrived through PutEvents/PutItems/PutUsers; an INCREMENTAL import
appends interactions and replaces items/users that have the same ID.

A separate file also keeps a long import (which runs in its own thread) from ever
holding a lock the events data plane or the control plane waits for. Every function
opens its own short-lived connection, so any thread may call it.

Idempotence: every interaction row carries the ARN of the job that imported it and a
job first deletes its own rows, so an import that is re-run after a crash (see
`jobs`) never doubles the data. The job ARN also tells a data deletion job which rows
were imported before it started (`erase_users`).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

BULK_DB_FILE: Final = "bulk.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bulk_interactions (
    dataset_arn TEXT NOT NULL,
    job_arn TEXT NOT NULL,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    ts REAL NOT NULL,
    event_type TEXT,
    event_value REAL
);
CREATE INDEX IF NOT EXISTS bulk_interactions_by_dataset ON bulk_interactions (dataset_arn, job_arn);
CREATE TABLE IF NOT EXISTS bulk_records (
    dataset_arn TEXT NOT NULL,
    record_id TEXT NOT NULL,
    job_arn TEXT NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (dataset_arn, record_id)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class BulkInteraction:
    user_id: str
    item_id: str
    timestamp: float
    event_type: str | None
    event_value: float | None


def init(data_dir: Path | str) -> Path:
    """Create the file and tables if needed; returns the path."""
    path = Path(data_dir) / BULK_DB_FILE
    with _connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
    return path


@contextlib.contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    try:
        db.execute("PRAGMA synchronous=NORMAL")
        yield db
    finally:
        db.close()


def write_interactions(
    path: Path, dataset_arn: str, job_arn: str, rows: Sequence[BulkInteraction], *, full: bool
) -> None:
    """One transaction: drop the dataset's bulk rows (FULL) or this job's (re-run), then insert."""
    with _connect(path) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            if full:
                db.execute("DELETE FROM bulk_interactions WHERE dataset_arn = ?", (dataset_arn,))
            else:
                db.execute(
                    "DELETE FROM bulk_interactions WHERE dataset_arn = ? AND job_arn = ?", (dataset_arn, job_arn)
                )
            db.executemany(
                "INSERT INTO bulk_interactions (dataset_arn, job_arn, user_id, item_id, ts, event_type, event_value)"
                " VALUES (?,?,?,?,?,?,?)",
                [(dataset_arn, job_arn, r.user_id, r.item_id, r.timestamp, r.event_type, r.event_value) for r in rows],
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def write_records(
    path: Path, dataset_arn: str, job_arn: str, records: Sequence[tuple[str, dict[str, str | None]]], *, full: bool
) -> None:
    """Items or users: FULL replaces the dataset's bulk records, INCREMENTAL upserts by ID."""
    with _connect(path) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            if full:
                db.execute("DELETE FROM bulk_records WHERE dataset_arn = ?", (dataset_arn,))
            db.executemany(
                "INSERT INTO bulk_records (dataset_arn, record_id, job_arn, fields) VALUES (?,?,?,?)"
                " ON CONFLICT (dataset_arn, record_id) DO UPDATE SET job_arn = excluded.job_arn,"
                " fields = excluded.fields",
                [(dataset_arn, rid, job_arn, json.dumps(fields)) for rid, fields in records],
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def delete_dataset(path: Path, dataset_arn: str) -> None:
    """Every bulk row of a dataset, gone in one transaction (DeleteDataset; idempotent)."""
    with _connect(path) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM bulk_interactions WHERE dataset_arn = ?", (dataset_arn,))
            db.execute("DELETE FROM bulk_records WHERE dataset_arn = ?", (dataset_arn,))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


@dataclass(frozen=True, slots=True)
class BulkErasure:
    interactions: int
    users: int
    #: Rows of the users imported by jobs that were not ACTIVE by the cutoff (kept).
    kept: int


def erase_users(
    path: Path,
    interactions_dataset: str | None,
    users_dataset: str | None,
    users: frozenset[str],
    jobs: frozenset[str],
) -> BulkErasure:
    """Delete the users' bulk interactions and Users records imported by `jobs`, in one transaction.

    Rows of the same users imported by other jobs (still running, or finished after the
    deletion job started) are counted as kept.
    """
    counts = {"interactions": 0, "users": 0, "kept": 0}
    targets = (
        ("interactions", "bulk_interactions", "user_id", interactions_dataset),
        ("users", "bulk_records", "record_id", users_dataset),
    )
    with _connect(path) as db:
        db.execute("CREATE TEMP TABLE IF NOT EXISTS erase_users (id TEXT PRIMARY KEY) WITHOUT ROWID")
        db.execute("CREATE TEMP TABLE IF NOT EXISTS erase_jobs (arn TEXT PRIMARY KEY) WITHOUT ROWID")
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR IGNORE INTO erase_users (id) VALUES (?)", [(u,) for u in users])
            db.executemany("INSERT OR IGNORE INTO erase_jobs (arn) VALUES (?)", [(j,) for j in jobs])
            for key, table, column, dataset in targets:
                if dataset is None:
                    continue
                mine = f"dataset_arn = ? AND {column} IN (SELECT id FROM erase_users)"
                counts[key] = db.execute(
                    f"DELETE FROM {table} WHERE {mine} AND job_arn IN (SELECT arn FROM erase_jobs)", (dataset,)
                ).rowcount
                counts["kept"] += db.execute(f"SELECT count(*) FROM {table} WHERE {mine}", (dataset,)).fetchone()[0]
            db.execute("DELETE FROM erase_users")
            db.execute("DELETE FROM erase_jobs")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return BulkErasure(counts["interactions"], counts["users"], counts["kept"])


def read_interactions(path: Path, dataset_arn: str) -> list[BulkInteraction]:
    """The dataset's bulk interactions in import order."""
    with _connect(path) as db:
        rows = db.execute(
            "SELECT user_id, item_id, ts, event_type, event_value FROM bulk_interactions"
            " WHERE dataset_arn = ? ORDER BY rowid",
            (dataset_arn,),
        ).fetchall()
    return [BulkInteraction(u, i, float(t), e, v) for u, i, t, e, v in rows]


def read_records(path: Path, dataset_arn: str) -> dict[str, dict[str, str | None]]:
    """Items or users of one dataset: record ID -> {column name: value}."""
    with _connect(path) as db:
        rows = db.execute("SELECT record_id, fields FROM bulk_records WHERE dataset_arn = ?", (dataset_arn,))
        return {rid: json.loads(fields) for rid, fields in rows}


def counts(path: Path) -> dict[str, int]:
    """Row counts per dataset ARN (interactions and records together), for inspection."""
    with _connect(path) as db:
        out: dict[str, int] = {}
        for table in ("bulk_interactions", "bulk_records"):
            for arn, n in db.execute(f"SELECT dataset_arn, count(*) FROM {table} GROUP BY dataset_arn"):
                out[arn] = out.get(arn, 0) + int(n)
        return out
