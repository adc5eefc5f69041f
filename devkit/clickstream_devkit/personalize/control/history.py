"""Each user's *current* interactions, for the runtime (GetRecommendations / GetPersonalizedRanking).

On the real service an event received after training changes a known user's
recommendations on the next request (contract §5.1, "Effect on live campaigns"). The
stand-in gets the same effect by passing the user's whole current history to the model
at request time, so it needs every user's history at hand without scanning the events
table per request. This index holds it in memory:

* per tracking ID, built on first use from the events store and then kept current by a
  store listener (a list append per stored event, and nothing at all for trackers no
  campaign has asked about, so the PutEvents path stays as fast as it was);
* per Interactions dataset, the bulk-imported rows, loaded on first use and dropped when
  an import job of that dataset finishes.

A deleted dataset or dataset group takes its data with it, so a deletion `reset`s the index.

Anonymous events follow `training_data.user_key`: an event without ``userId`` is the
user's once any event of its session names the user (earlier anonymous events of the
session included), otherwise it is the session's own history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from clickstream_devkit.personalize.control import bulk_store
from clickstream_devkit.personalize.control.training_data import EventTuple
from clickstream_devkit.personalize.store import EventRow, Store


@dataclass(frozen=True, slots=True)
class Interaction:
    timestamp: float
    item_id: str
    event_type: str
    event_value: float | None


@dataclass
class _TrackerHistory:
    by_key: dict[str, list[Interaction]] = field(default_factory=dict)
    #: sessionId -> the user that first appeared with it.
    links: dict[str, str] = field(default_factory=dict)
    #: user -> sessions linked to it (whose anonymous rows are stored under the session ID).
    sessions: dict[str, set[str]] = field(default_factory=dict)

    def add(self, row: EventTuple) -> None:
        """Record one stored event (see the module docstring for whose it is)."""
        user_id, session_id, item_id, event_type, value, ts = row
        if user_id is not None and session_id not in self.links:
            self.links[session_id] = user_id
            self.sessions.setdefault(user_id, set()).add(session_id)
        if item_id is None:
            return
        key = user_id if user_id is not None else self.links.get(session_id, session_id)
        self.by_key.setdefault(key, []).append(Interaction(ts, item_id, event_type, value))

    def of(self, user_id: str) -> list[Interaction]:
        rows = list(self.by_key.get(user_id, ()))
        for session in self.sessions.get(user_id, ()):
            if session != user_id:
                rows.extend(self.by_key.get(session, ()))
        return rows


class HistoryIndex:
    def __init__(self, store: Store, bulk_path: Path) -> None:
        self._store = store
        self._bulk_path = bulk_path
        self._trackers: dict[str, _TrackerHistory] = {}
        self._bulk: dict[str, dict[str, list[Interaction]]] = {}
        store.add_listener(self._on_events)

    def _on_events(self, tracking_id: str, rows: list[EventRow]) -> None:
        history = self._trackers.get(tracking_id)
        if history is None:
            return
        for r in rows:
            history.add((r.user_id, r.session_id, r.item_id, r.event_type, r.event_value, r.sent_at))

    def _tracker(self, tracking_id: str) -> _TrackerHistory:
        history = self._trackers.get(tracking_id)
        if history is None:
            history = _TrackerHistory()
            for row in self._store.event_history(tracking_id):
                history.add(row)
            self._trackers[tracking_id] = history
        return history

    def _bulk_for(self, dataset_arn: str) -> dict[str, list[Interaction]]:
        by_user = self._bulk.get(dataset_arn)
        if by_user is None:
            by_user = {}
            for b in bulk_store.read_interactions(self._bulk_path, dataset_arn):
                by_user.setdefault(b.user_id, []).append(
                    Interaction(b.timestamp, b.item_id, b.event_type or "", b.event_value)
                )
            self._bulk[dataset_arn] = by_user
        return by_user

    def invalidate_bulk(self, dataset_arn: str) -> None:
        self._bulk.pop(dataset_arn, None)

    def reset(self) -> None:
        """Forget everything (an Interactions dataset or a dataset group was deleted); rebuilt on use."""
        self._trackers.clear()
        self._bulk.clear()

    def history(self, user_id: str, tracking_ids: Iterable[str], interactions_dataset: str | None) -> list[Interaction]:
        """The user's interactions from every source, oldest first (ties keep arrival order)."""
        rows: list[Interaction] = []
        if interactions_dataset is not None:
            rows.extend(self._bulk_for(interactions_dataset).get(user_id, ()))
        for tracking_id in tracking_ids:
            rows.extend(self._tracker(tracking_id).of(user_id))
        rows.sort(key=lambda r: r.timestamp)
        return rows
