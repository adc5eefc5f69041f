"""Parsed record -> PutActionInteractions `ActionInteraction` (pure; `worker.mapping` calls it).

Default shape (`ActionInteractionsMapping` without configuration): a Segment **track** event
whose event name is the action interaction type and whose properties name the action::

    {"type": "track", "messageId": "m-1", "userId": "u1", "anonymousId": "a1",
     "event": "Taken", "timestamp": "2024-05-01T12:00:00.000Z",
     "context": {"sessionId": "s1"},
     "properties": {"actionId": "a7", "recommendationId": "RID-...", "channel": "email"}}

messageId -> eventId (else derived from the record, exactly as for interactions, so a
redelivery keeps its ID and Personalize keeps the interaction once), userId -> userId,
context.sessionId then anonymousId -> sessionId, event -> eventType (after
`allowed_event_types` and `event_type_renames`), timestamp -> timestamp (epoch seconds),
properties.actionId -> actionId; custom schema columns are read from `properties.*`.

Actions need no code of their own: they are catalog records keyed by ACTION_ID, read
like items (`EventDecoder`'s catalog path).
"""

from __future__ import annotations

from typing import Any

from worker.action_validation import ActionInteractionValidator
from worker.config.mapping import ActionInteractionsMapping
from worker.fieldpaths import (
    MappingError,
    Path,
    as_id,
    column_paths,
    compile_paths,
    derived_event_id,
    event_type_of,
    extract,
    parse_impression,
    to_epoch_seconds,
)
from worker.records import Interaction, SourceRef
from worker.schemas import DatasetSchema
from worker.validation import ValidationLimits


class ActionInteractionReader:
    """One topic's compiled paths and validator; `read` raises MappingError / ValidationError."""

    def __init__(self, spec: ActionInteractionsMapping, schema: DatasetSchema, limits: ValidationLimits) -> None:
        self.spec = spec
        self.validator = ActionInteractionValidator(schema, limits)
        c = compile_paths
        self.p_event_id, self.p_user, self.p_session = c(spec.event_id), c(spec.user_id), c(spec.session_id)
        self.p_action, self.p_type, self.p_time = c(spec.action_id), c(spec.event_type), c(spec.timestamp)
        self.p_rec, self.p_impression = c(spec.recommendation_id), c(spec.impression)
        self.allowed = frozenset(spec.allowed_event_types)
        self.renames = dict(spec.event_type_renames)
        self.columns = column_paths(spec, [f.name for f in schema.custom], spec.field_prefix)
        #: Where user and session IDs are: scrubbed from the logs of a rejected record.
        self.identity_paths: tuple[Path, ...] = (*self.p_user, *self.p_session)

    def read(
        self,
        obj: dict[str, Any],
        source: SourceRef,
        now: float,
        *,
        key: bytes | None,
        timestamp_ms: int | None,
        value: bytes | None,
    ) -> Interaction:
        event_type = event_type_of(obj, self.p_type, self.allowed, self.renames)
        raw_action = extract(obj, self.p_action)
        if raw_action is None:
            raise MappingError("missing", "actionId", "no actionId at the configured paths")
        raw_time = extract(obj, self.p_time)
        if raw_time is None:
            raise MappingError("missing", "timestamp", "no timestamp at the configured paths")
        timestamp = to_epoch_seconds("timestamp", raw_time, self.spec.timestamp_unit)
        user_id = self._opt_id("userId", obj, self.p_user)
        session_id = self._opt_id("sessionId", obj, self.p_session)
        if session_id is None:
            if user_id is None:
                raise MappingError("missing", "sessionId", "the interaction has neither a userId nor a sessionId")
            if not self.spec.session_id_fallback_to_user_id:
                raise MappingError(
                    "missing", "sessionId",
                    "no sessionId (PutActionInteractions requires one); set session_id_fallback_to_user_id to use "
                    "the userId",
                )
            session_id = user_id
        event_id = self._opt_id("eventId", obj, self.p_event_id) or derived_event_id(source, timestamp_ms, key, value)
        return self.validator.build(
            event_id=event_id,
            event_type=event_type,
            timestamp=round(timestamp, 3),
            session_id=session_id,
            user_id=user_id,
            action_id=as_id("actionId", raw_action),
            recommendation_id=self._opt_id("recommendationId", obj, self.p_rec),
            impression=parse_impression(extract(obj, self.p_impression)),
            values={name: extract(obj, paths) for name, paths in self.columns.items()},
            now=now,
        )

    @staticmethod
    def _opt_id(field: str, obj: dict[str, Any], paths: tuple[Path, ...]) -> str | None:
        raw = extract(obj, paths)
        return None if raw is None else as_id(field, raw)
