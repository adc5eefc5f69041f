"""Deletion requests: a record of the deletion topic -> (user ID, request time) or a rejection (pure).

The value is a JSON object; `privacy.mapping` says where the user ID and the request time
are (defaults: ``userId`` / ``user_id`` and ``requestedAt`` / ``timestamp``). A missing
request time falls back to the record's Kafka timestamp. A request whose user ID is not a
valid Personalize user ID (1-256 characters) is rejected like a malformed event: to the
dead-letter topic with the stage and the rule.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from worker.config.privacy import DeletionRequestMapping
from worker.decoding.outcomes import ShapeError
from worker.mapping import as_id, compile_paths, extract, to_epoch_seconds
from worker.records import Rejection, Stage
from worker.validation import Rule, ValidationError

#: The Personalize limit on userId (PutEvents, PutUsers, data deletion CSV rows).
MAX_USER_ID = 256


@dataclass(frozen=True)
class DeletionRequest:
    user_id: str
    requested_at: float


class RequestParser:
    def __init__(self, mapping: DeletionRequestMapping) -> None:
        self._user = compile_paths(mapping.user_id)
        self._time = compile_paths(mapping.requested_at)
        self._unit = mapping.timestamp_unit

    def parse(self, value: bytes | None, record_timestamp_ms: int | None) -> DeletionRequest | Rejection:
        try:
            obj = json.loads(value) if value is not None else None
        except (ValueError, UnicodeDecodeError):
            return Rejection(Stage.MAPPING, "not_json", "the deletion request is not JSON")
        if not isinstance(obj, dict):
            return Rejection(Stage.MAPPING, "not_object", "the deletion request is not a JSON object")
        try:
            raw_user = extract(obj, self._user)
            if raw_user is None:
                return Rejection(Stage.VALIDATION, Rule.REQUIRED.value, "no user ID in the request", "userId")
            user_id = as_id("userId", raw_user)
            if not 1 <= len(user_id) <= MAX_USER_ID:
                return Rejection(Stage.VALIDATION, Rule.MAX_LENGTH.value,
                                 f"a user ID has 1 to {MAX_USER_ID} characters", "userId")  # fmt: skip
            raw_time = extract(obj, self._time)
            if raw_time is not None:
                requested_at = to_epoch_seconds("requestedAt", raw_time, self._unit)
            elif record_timestamp_ms is not None:
                requested_at = record_timestamp_ms / 1000
            else:
                return Rejection(Stage.VALIDATION, Rule.REQUIRED.value, "no request time", "requestedAt")
        except (ShapeError, ValidationError) as exc:
            return exc.rejection()
        if not math.isfinite(requested_at):
            return Rejection(Stage.VALIDATION, Rule.NOT_FINITE.value, "the request time is not finite", "requestedAt")
        return DeletionRequest(user_id, requested_at)
