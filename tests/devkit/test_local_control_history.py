"""Runtime histories and training rows agree on whose an event is, and stay current."""

from __future__ import annotations

from pathlib import Path

from clickstream_devkit.personalize.control import bulk_store
from clickstream_devkit.personalize.control.bulk_store import BulkInteraction
from clickstream_devkit.personalize.control.history import HistoryIndex
from clickstream_devkit.personalize.control.training_data import interaction_rows
from clickstream_devkit.personalize.store import EventRow, Store


def event(n: int, user: str | None, session: str, item: str | None = "i", event_type: str = "click") -> EventRow:
    return EventRow(f"e{n}", user, session, item if item is None else f"{item}{n}", event_type, None, float(n),
                    None, None, None, None)  # fmt: skip


def test_anonymous_session_joins_the_user_that_logs_in(tmp_path: Path) -> None:
    store = Store(tmp_path)
    bulk = bulk_store.init(tmp_path)
    try:
        store.insert_events("t", [event(1, None, "s1"), event(2, None, "s1"), event(3, None, "s9")], 0.0)
        store.insert_events("t", [event(4, "alice", "s1"), event(5, "alice", "s2", item=None)], 0.0)
        index = HistoryIndex(store, bulk)
        alice = [r.item_id for r in index.history("alice", ["t"], None)]
        assert alice == ["i1", "i2", "i4"]
        assert [r.item_id for r in index.history("s9", ["t"], None)] == ["i3"]
        # Events after the index was built are seen at once (the store listener), linked sessions too.
        store.insert_events("t", [event(6, None, "s1"), event(7, "alice", "s3")], 0.0)
        assert [r.item_id for r in index.history("alice", ["t"], None)] == ["i1", "i2", "i4", "i6", "i7"]
        # Training resolves users the same way.
        rows = interaction_rows(store.path, ["t"], bulk, None)
        assert sorted((r.user_id, r.item_id) for r in rows) == sorted(
            [("alice", f"i{n}") for n in (1, 2, 4, 6, 7)] + [("s9", "i3")]
        )
    finally:
        store.close()


def test_bulk_history_is_merged_in_time_order_and_dropped_on_import(tmp_path: Path) -> None:
    store = Store(tmp_path)
    bulk = bulk_store.init(tmp_path)
    try:
        bulk_store.write_interactions(bulk, "ds", "j1", [BulkInteraction("bob", "old", 0.5, None, None)], full=True)
        store.insert_events("t", [event(1, "bob", "s")], 0.0)
        index = HistoryIndex(store, bulk)
        assert [r.item_id for r in index.history("bob", ["t"], "ds")] == ["old", "i1"]
        bulk_store.write_interactions(bulk, "ds", "j2", [BulkInteraction("bob", "new", 2.0, None, None)], full=True)
        assert [r.item_id for r in index.history("bob", ["t"], "ds")] == ["old", "i1"]  # cached until told
        index.invalidate_bulk("ds")
        assert [r.item_id for r in index.history("bob", ["t"], "ds")] == ["i1", "new"]
    finally:
        store.close()
