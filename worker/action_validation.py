"""Validation of action interactions: the PutActionInteractions `ActionInteraction` (pure).

Limits from botocore's ``personalize-events`` model (it checks none of the maxima itself):
actionId, userId, sessionId, eventType and eventId 1-256 characters, recommendationId 1-40,
impression 1-25 action IDs, properties a JSON string of 1-1,024 characters whose keys must
not repeat the interaction's own members (the `ActionInteraction.properties` doc, as for
PutEvents). `timestamp` is epoch seconds and gets the same sanity window as `sentAt`.

Event types: the model member is a free string, but its documentation and the developer
guide (recording-action-interaction-events) name exactly three: ``Taken``, ``Not Taken``
and ``Viewed``, and Personalize trains on nothing else. Anything else is rejected here
(rule ``event_type_not_allowed``) rather than costing a rejected batch and a bisection; map
other source names with the topic's ``event_type_renames``. Case is not documented (the
guide's own CSV example writes ``Not taken``), so the match ignores case and the value is
sent as written — the local Personalize does the same.

`userId` is optional, as in the model: like PutEvents, an anonymous interaction carries
its session only. The result is an `Interaction`, so action interactions are grouped per
(userId, sessionId) exactly like events, although the wire format repeats both per record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from worker.records import DatasetType, Interaction
from worker.schemas import DatasetSchema
from worker.validation import (
    FORBIDDEN_EVENT_KEYS,
    MAX_EVENT_TYPE_CHARS,
    MAX_ID_CHARS,
    MAX_PROPERTIES_CHARS,
    MAX_RECOMMENDATION_ID_CHARS,
    Column,
    Rule,
    ValidationError,
    ValidationLimits,
    build_properties,
    check_impression,
    check_length,
    check_window,
    field_check,
    utf8_size,
)

#: The documented action interaction event types, as the guide writes them.
ACTION_EVENT_TYPES: Final = ("Taken", "Not Taken", "Viewed")
_EVENT_TYPES_FOLDED: Final = frozenset(t.casefold() for t in ACTION_EVENT_TYPES)
#: Optional reserved columns that are wire members: a non-nullable column makes the member required.
_COLUMN_MEMBERS: Final = {"IMPRESSION": "impression", "RECOMMENDATION_ID": "recommendationId"}


def is_action_event_type(event_type: str) -> bool:
    """One of Taken / Not Taken / Viewed, in any case."""
    return event_type.casefold() in _EVENT_TYPES_FOLDED


class ActionInteractionValidator:
    """Checks one action interaction's candidate values and builds the wire `ActionInteraction`."""

    def __init__(self, schema: DatasetSchema, limits: ValidationLimits) -> None:
        if schema.dataset_type is not DatasetType.ACTION_INTERACTIONS:
            raise ValueError(f"an action interactions validator needs an ActionInteractions schema, not {schema.name}")
        self.limits = limits
        self.columns = tuple(Column(f.name, f.key, f.nullable, field_check(f), None) for f in schema.custom)
        self.forbidden = tuple(c for c in self.columns if c.key.lower() in FORBIDDEN_EVENT_KEYS)
        self.required_members = tuple(
            member for column, member in _COLUMN_MEMBERS.items()
            if (f := schema.field(column)) is not None and not f.nullable
        )

    def build(
        self,
        *,
        event_id: str,
        event_type: str,
        timestamp: float,
        session_id: str,
        user_id: str | None,
        action_id: str,
        recommendation_id: str | None = None,
        impression: list[str] | None = None,
        values: Mapping[str, Any],
        now: float,
    ) -> Interaction:
        """Validate and assemble; raise `ValidationError` on the first broken rule."""
        check_length("eventId", event_id, 1, MAX_ID_CHARS)
        check_length("eventType", event_type, 1, MAX_EVENT_TYPE_CHARS)
        if not is_action_event_type(event_type):
            raise ValidationError(
                Rule.EVENT_TYPE_NOT_ALLOWED, "eventType",
                f"is not an action interaction event type ({', '.join(ACTION_EVENT_TYPES)}): "
                "map source names onto them with event_type_renames", event_type,
            )
        check_length("sessionId", session_id, 1, MAX_ID_CHARS)
        check_length("actionId", action_id, 1, MAX_ID_CHARS)
        if not math.isfinite(timestamp):
            raise ValidationError(Rule.NOT_FINITE, "timestamp", "must be a finite number", timestamp)
        limits = self.limits
        check_window("timestamp", timestamp, now, limits.max_past_seconds, limits.max_future_seconds)
        record: dict[str, Any] = {
            "eventId": event_id, "eventType": event_type, "timestamp": timestamp,
            "sessionId": session_id, "actionId": action_id,
        }
        if user_id is not None:
            record["userId"] = check_length("userId", user_id, 1, MAX_ID_CHARS)
        for column in self.forbidden:
            if values.get(column.name) is not None:
                raise ValidationError(
                    Rule.FORBIDDEN_KEY, column.name,
                    f"maps to properties key {column.key!r}, which PutActionInteractions forbids: rename the "
                    "schema field", values[column.name],
                )
        limit = MAX_PROPERTIES_CHARS[DatasetType.ACTION_INTERACTIONS]
        props = build_properties(self.columns, values, now, limits, limit)
        if props is not None:
            record["properties"] = props
        if recommendation_id is not None:
            record["recommendationId"] = check_length(
                "recommendationId", recommendation_id, 1, MAX_RECOMMENDATION_ID_CHARS)
        if impression:
            record["impression"] = check_impression(impression)
        for member in self.required_members:
            if member not in record:
                raise ValidationError(Rule.REQUIRED, member, "is required: the schema column is not nullable")
        for name in ("eventId", "eventType", "sessionId", "actionId", "userId", "recommendationId"):
            if name in record:
                utf8_size(name, record[name])  # an unpaired surrogate cannot be sent as UTF-8
        for action in record.get("impression", ()):
            utf8_size("impression", action)
        return Interaction(session_id=session_id, user_id=user_id, event=record)
