"""Types shared by every stage of the pipeline.

They live in one small module so the pure stages (mapping, validation, grouping,
offset tracking) and the I/O edges (consumer, sender, dead letters) agree on one
vocabulary without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: Longest offending value copied into a rejection (and so into a DLQ header).
MAX_REJECTED_VALUE_CHARS = 200


class DatasetType(StrEnum):
    """The Personalize dataset an input topic feeds."""

    INTERACTIONS = "interactions"
    ITEMS = "items"
    USERS = "users"
    #: The things recommended as next best actions (PutActions, by dataset ARN).
    ACTIONS = "actions"
    #: Taken / Not Taken / Viewed events on actions (PutActionInteractions, by tracking ID).
    ACTION_INTERACTIONS = "action_interactions"

    @property
    def is_event_stream(self) -> bool:
        """Events with their own IDs and times, grouped per session; the others are upserts by ID."""
        return self in (DatasetType.INTERACTIONS, DatasetType.ACTION_INTERACTIONS)


class Stage(StrEnum):
    """Where a record was rejected; written to the `__connect.errors.stage` header."""

    DESERIALIZATION = "deserialization"  # bytes that cannot be decoded (schema-registry formats)
    MAPPING = "mapping"
    VALIDATION = "validation"
    DELIVERY = "delivery"
    SUPPRESSED = "suppressed"  # a user whose deletion was requested (privacy.suppressed: dead_letter)


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a record came from: the unit of offset tracking and of dead-lettering."""

    topic: str
    partition: int
    offset: int


Header = tuple[str, bytes]


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A consumed record exactly as it arrived: what the DLQ must reproduce."""

    source: SourceRef
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]
    timestamp_ms: int | None

    @property
    def size(self) -> int:
        return len(self.value or b"") + len(self.key or b"")


def truncate(value: object, limit: int = MAX_REJECTED_VALUE_CHARS) -> str:
    """Render an offending value for a reason, cut so one bad record cannot bloat headers."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"...(+{len(text) - limit} chars)"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A machine-readable reason why a record cannot be delivered.

    `rule` is a short stable identifier (``max_length``, ``required``, ``not_json`` …)
    that dashboards and replay tooling can match on; `message` is for humans.
    """

    stage: Stage
    rule: str
    message: str
    field: str | None = None
    value: str | None = None
    #: What `__connect.errors.exception.class.name` says; the stage that rejects sets its own.
    exception_class: str = "worker.records.Rejection"
    #: User, anonymous and session IDs found in the record (when it parsed): logs scrub them.
    identities: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, str | None]:
        return {
            "stage": self.stage.value,
            "rule": self.rule,
            "field": self.field,
            "value": self.value,
            "message": self.message,
        }

    def describe(self) -> str:
        """One line: what `__connect.errors.exception.message` carries."""
        where = f" field={self.field}" if self.field else ""
        what = f" value={self.value}" if self.value is not None else ""
        return f"[{self.stage.value}/{self.rule}]{where} {self.message}{what}"


@dataclass(frozen=True, slots=True)
class Interaction:
    """One validated event, ready for PutEvents or PutActionInteractions.

    `event` is the wire `Event` structure (eventId, eventType, sentAt as epoch seconds,
    and the optional members) or, on an action interactions topic, the wire
    `ActionInteraction` (which carries its own userId and sessionId). `user_id`/`session_id`
    are request-level in PutEvents, which is why they are kept apart: they form the
    batching key, so action interactions are grouped per session like events.
    """

    session_id: str
    user_id: str | None
    event: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.event["eventId"])


@dataclass(frozen=True, slots=True)
class CatalogUpdate:
    """One validated item, user or action record, ready for PutItems/PutUsers/PutActions.

    `record` is the wire `Item` (``itemId``, ``properties``), `User` (``userId``,
    ``properties``) or `Action` (``actionId``, ``properties``) structure; `entity_id` is the
    coalescing key.
    """

    entity_id: str
    record: dict[str, Any] = field(default_factory=dict)


Decoded = Interaction | CatalogUpdate | Rejection
