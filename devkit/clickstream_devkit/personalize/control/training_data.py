"""A dataset group's training data, read in the training thread with its own connections.

Item interactions are the events received through PutEvents for the group's tracking
IDs (the events store's ``events`` table, read directly: opening a `Store` would rebuild
its dedupe sets for nothing) followed by the group's bulk-imported interactions.
Events without an ``itemId`` are not item interactions and are skipped.

Anonymous events (contract §5.1): an event without ``userId`` belongs to the user that
any other event of the same ``sessionId`` names (the guide says the next FULL training
merges the two histories); a session that never names a user stays its own user, keyed
by the session ID, which is also what the runtime accepts as ``userId`` for it.

Item metadata (for the metadata-aware recipes) is the Items dataset: bulk records
(CSV column names) overlaid with PutItems records (camelCase ``properties`` keys mapped
back to the schema's column names). The ID, textual fields and unknown keys are left out.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from clickstream_devkit.personalize.control import bulk_store
from clickstream_devkit.recsys.data import InteractionRow

#: (user_id, session_id, item_id, event_type, event_value, sent_at) as stored by the events store.
EventTuple = tuple[str | None, str, str | None, str, float | None, float]


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
    try:
        yield db
    finally:
        db.close()


def read_events(events_db: Path, tracking_ids: Iterable[str]) -> list[EventTuple]:
    """Stored events of the tracking IDs, in arrival order."""
    ids = list(tracking_ids)
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    with read_only(events_db) as db:
        return db.execute(
            "SELECT user_id, session_id, item_id, event_type, event_value, sent_at FROM events"
            f" WHERE tracking_id IN ({marks}) ORDER BY seq",
            ids,
        ).fetchall()


def session_links(events: Iterable[EventTuple]) -> dict[str, str]:
    """sessionId -> the first userId seen with it."""
    links: dict[str, str] = {}
    for user_id, session_id, *_ in events:
        if user_id is not None and session_id not in links:
            links[session_id] = user_id
    return links


def user_key(user_id: str | None, session_id: str, links: Mapping[str, str]) -> str:
    """Whose interaction an event is (see the module docstring)."""
    if user_id is not None:
        return user_id
    return links.get(session_id, session_id)


def interaction_rows(
    events_db: Path,
    tracking_ids: Iterable[str],
    bulk_db: Path,
    interactions_dataset: str | None,
) -> list[InteractionRow]:
    """Streamed events (users resolved) then bulk interactions, as training rows."""
    events = read_events(events_db, tracking_ids)
    links = session_links(events)
    rows = [
        InteractionRow(user_key(user, session, links), item, float(sent_at), event_type, value)
        for user, session, item, event_type, value, sent_at in events
        if item is not None
    ]
    if interactions_dataset is not None:
        rows.extend(
            InteractionRow(b.user_id, b.item_id, b.timestamp, b.event_type or "", b.event_value)
            for b in bulk_store.read_interactions(bulk_db, interactions_dataset)
        )
    return rows


def items_metadata(
    events_db: Path, bulk_db: Path, items_dataset: str | None, columns: Mapping[str, str]
) -> dict[str, dict[str, str]] | None:
    """Item ID -> {column: value} for the metadata columns in `columns` (property key -> column)."""
    if items_dataset is None:
        return None
    wanted = set(columns.values())
    metadata: dict[str, dict[str, str]] = {}
    for item_id, fields in bulk_store.read_records(bulk_db, items_dataset).items():
        metadata[item_id] = {k: str(v) for k, v in fields.items() if k in wanted and v is not None}
    with read_only(events_db) as db:
        streamed = db.execute(
            "SELECT item_id, properties FROM items WHERE dataset_arn = ?", (items_dataset,)
        ).fetchall()
    for item_id, properties in streamed:
        parsed: dict[str, object] = json.loads(properties) if properties else {}
        merged = dict(metadata.get(item_id, {}))
        merged.update({columns[k]: str(v) for k, v in parsed.items() if k in columns and v is not None})
        metadata[item_id] = merged
    return metadata or None
