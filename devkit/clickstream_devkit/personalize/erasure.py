"""Which stored records a data deletion job removes (pure: no I/O).

A data deletion job "deletes users and their data, including their metadata and
interactions data, from a dataset group" (developer guide, delete-records). Here a user's
data is every record the training would attribute to the user:

* events and action interactions whose ``userId`` is the user, and the anonymous ones
  (no ``userId``) of a session whose first named user is the user: the training merges
  those into the user's history (`training_data.user_key`, the guide's anonymous-events
  rule), so leaving them would leave the user in the model under the session's ID;
  anonymous rows of a session that never names a user belong to the session ID itself;
* the user's Users record (PutUsers and bulk import);
* the user's bulk-imported interactions.

Items and actions are nobody's personal data and stay. Only records stored before the
job went IN_PROGRESS (the *cutoff*) are removed: the guide warns that records imported
while a job runs may survive it ("we can't guarantee that the users' data will be
deleted"), and the stand-in makes that concrete and visible instead of silently
forgiving it, so a pipeline that keeps sending a deleted user's data during the job is
caught (`Selection.kept` counts what survived that way).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoredRow:
    """What the attribution needs of a stored event or action interaction (in arrival order)."""

    key: int
    user_id: str | None
    session_id: str
    stored_at: float


@dataclass(frozen=True, slots=True)
class Selection:
    """Rows to delete, and how many rows of the listed users were stored after the cutoff (kept)."""

    delete: tuple[int, ...]
    kept: int


def owners(rows: Sequence[StoredRow]) -> list[str]:
    """Whose record each row is: its ``userId``, else its session's first named user, else its session ID."""
    links: dict[str, str] = {}
    for row in rows:
        if row.user_id is not None and row.session_id not in links:
            links[row.session_id] = row.user_id
    return [row.user_id if row.user_id is not None else links.get(row.session_id, row.session_id) for row in rows]


def select(rows: Sequence[StoredRow], users: frozenset[str], cutoff: float) -> Selection:
    """The rows of `users` stored at or before `cutoff` (to delete) and the count of later ones (kept)."""
    delete: list[int] = []
    kept = 0
    for row, owner in zip(rows, owners(rows), strict=True):
        if owner not in users:
            continue
        if row.stored_at <= cutoff:
            delete.append(row.key)
        else:
            kept += 1
    return Selection(tuple(delete), kept)


@dataclass(frozen=True)
class ErasureCounts:
    """Records removed per source, and records of the listed users that arrived after the cutoff (kept)."""

    events: int = 0
    action_interactions: int = 0
    users: int = 0
    bulk_interactions: int = 0
    bulk_users: int = 0
    kept: int = 0

    @property
    def total(self) -> int:
        """``numDeleted``: "the number of records deleted by a COMPLETED job" (API reference)."""
        return self.events + self.action_interactions + self.users + self.bulk_interactions + self.bulk_users

    def plus(self, other: ErasureCounts) -> ErasureCounts:
        return ErasureCounts(
            self.events + other.events,
            self.action_interactions + other.action_interactions,
            self.users + other.users,
            self.bulk_interactions + other.bulk_interactions,
            self.bulk_users + other.bulk_users,
            self.kept + other.kept,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "events": self.events,
            "actionInteractions": self.action_interactions,
            "users": self.users,
            "bulkInteractions": self.bulk_interactions,
            "bulkUsers": self.bulk_users,
            "keptAfterCutoff": self.kept,
        }

