"""The ``personalize-events`` operations of the local Personalize (a development/test stand-in).

Each handler takes the decoded JSON body and either returns (the server answers 200
with an empty body) or raises `ApiError`. Checks run in the order the worker can act
on: shape against the botocore model (contract §3/§5), then semantics the model cannot
express (``properties`` must be a JSON object, forbidden keys), then resource lookup,
then one store transaction - so a batch is accepted or rejected whole.

Unknown tracking ID (or the ID of a deleted tracker): the real service's answer is
undocumented (contract §11 gap #11; PutEvents models only InvalidInputException). This stand-in answers
ResourceNotFoundException (404) because a tracker that does not exist is a
configuration fault, not a poison record: a worker must stop and alert rather than
dead-letter every event, and a distinct code lets it tell the two apart.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

from clickstream_devkit.personalize.errors import (
    INVALID_INPUT,
    RESOURCE_IN_USE,
    RESOURCE_NOT_FOUND,
    ApiError,
    validation_error,
)
from clickstream_devkit.personalize.shape_validation import RequestValidator
from clickstream_devkit.personalize.stats import Stats
from clickstream_devkit.personalize.store import ACTIVE, Dataset, EventRow, Store

#: Keys the model forbids inside PutEvents ``properties`` (case-insensitive, contract §5.3).
FORBIDDEN_EVENT_PROPERTY_KEYS: Final = frozenset(
    {"userid", "sessionid", "eventtype", "timestamp", "recommendationid", "impression"}
)

#: Takes the decoded JSON body; returns None (empty 200) or a JSON-serialisable reply.
Handler = Callable[[Any], Any]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def strict_json_loads(text: str | bytes) -> Any:
    """`json.loads` without Python's NaN/Infinity extension, which JSON does not allow."""
    return json.loads(text, parse_constant=_reject_constant)


def parse_properties(text: str, path: str) -> dict[str, Any]:
    """Decode a ``properties`` string, which must hold a JSON object (contract §3)."""
    try:
        value = strict_json_loads(text)
    except ValueError:
        raise ApiError(
            INVALID_INPUT, f"Error parsing properties json at '{path}'", rule="properties_not_json"
        ) from None
    if type(value) is not dict:
        raise ApiError(
            INVALID_INPUT,
            f"Error parsing properties json at '{path}': properties must be a JSON object",
            rule="properties_not_object",
        )
    return value


class EventsApi:
    """PutEvents / PutItems / PutUsers (PutActions and PutActionInteractions: `actions_api`)."""

    def __init__(
        self, store: Store, stats: Stats, validator: RequestValidator, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._stats = stats
        self._validator = validator
        self._clock = clock

    def routes(self) -> dict[str, tuple[str, Handler]]:
        """Operation name -> (path, handler); every route is ``POST`` (contract §2)."""
        return {
            "PutEvents": ("/events", self.put_events),
            "PutItems": ("/items", self.put_items),
            "PutUsers": ("/users", self.put_users),
        }

    # -- operations -----------------------------------------------------------------

    def put_events(self, body: Any) -> None:
        self._validate("PutEvents", body)
        user_id, session_id = body.get("userId"), body["sessionId"]
        rows = [_event_row(i, event, user_id, session_id) for i, event in enumerate(body["eventList"])]
        tracking_id = body["trackingId"]
        tracker = self._store.tracker(tracking_id)
        if tracker is None or tracker.status != ACTIVE:
            raise ApiError(
                RESOURCE_NOT_FOUND,
                f"Event tracker with trackingId '{tracking_id}' does not exist",
                rule="unknown_tracker",
            )
        result = self._store.insert_events(tracking_id, rows, self._clock())
        self._stats.accepted_events += len(rows)
        self._stats.duplicate_events += result.duplicates
        self._stats.same_content_events += result.same_content

    def put_items(self, body: Any) -> None:
        records = self._catalog_records("PutItems", body, "items", "itemId")
        dataset = require_dataset(self._store, body["datasetArn"], "ITEMS", "PutItems")
        self._store.upsert_items(dataset.arn, records)
        self._stats.items += len(records)

    def put_users(self, body: Any) -> None:
        records = self._catalog_records("PutUsers", body, "users", "userId")
        dataset = require_dataset(self._store, body["datasetArn"], "USERS", "PutUsers")
        self._store.upsert_users(dataset.arn, records)
        self._stats.users += len(records)

    # -- helpers ----------------------------------------------------------------------

    def _validate(self, operation: str, body: Any) -> None:
        violation = self._validator.validate(operation, body)
        if violation is not None:
            raise validation_error(violation)

    def _catalog_records(self, operation: str, body: Any, list_key: str, id_key: str) -> list[tuple[str, str | None]]:
        self._validate(operation, body)
        return catalog_records(body[list_key], list_key, id_key)


def catalog_records(records: list[dict[str, Any]], list_key: str, id_key: str) -> list[tuple[str, str | None]]:
    """(ID, properties) of PutItems/PutUsers/PutActions records; ``properties`` must hold a JSON object."""
    out: list[tuple[str, str | None]] = []
    for index, record in enumerate(records):
        properties = record.get("properties")
        if properties is not None:
            parse_properties(properties, f"{list_key}.{index}.properties")
        out.append((record[id_key], properties))
    return out


def require_dataset(store: Store, arn: str, expected_type: str, operation: str) -> Dataset:
    """The ACTIVE dataset a PutItems/PutUsers/PutActions request names, or the error to answer."""
    dataset = store.dataset(arn)
    if dataset is None:
        raise ApiError(RESOURCE_NOT_FOUND, f"Dataset '{arn}' does not exist", rule="unknown_dataset")
    if dataset.dataset_type != expected_type:
        raise ApiError(
            INVALID_INPUT,
            f"Dataset '{arn}' has type {dataset.dataset_type}; {operation} accepts only a dataset of type"
            f" {expected_type} (it is not supported on {dataset.dataset_type} datasets)",
            rule="wrong_dataset_type",
        )
    if dataset.status != ACTIVE:
        raise ApiError(
            RESOURCE_IN_USE,
            f"Dataset '{arn}' is not ACTIVE (status {dataset.status})",
            rule="dataset_not_active",
        )
    return dataset


def check_property_keys(parsed: dict[str, Any], path: str) -> None:
    """PutEvents / PutActionInteractions ``properties`` must not repeat the request's own members."""
    for key in parsed:
        if key.lower() in FORBIDDEN_EVENT_PROPERTY_KEYS:
            raise ApiError(
                INVALID_INPUT,
                f"Invalid key '{key}' in '{path}': userId, sessionId, eventType, timestamp,"
                " recommendationId and impression are not allowed in properties",
                rule="forbidden_property_key",
            )


def _event_row(index: int, event: dict[str, Any], user_id: str | None, session_id: str) -> EventRow:
    """Apply the rules the model cannot express and build the stored row.

    Legacy clients put ``itemId``/``eventValue`` inside ``properties``; both forms are
    accepted and the top-level member wins when both are present (contract §5.3).
    """
    item_id: str | None = event.get("itemId")
    event_value = event.get("eventValue")
    properties: str | None = event.get("properties")
    if properties is not None:
        path = f"eventList.{index}.properties"
        parsed = parse_properties(properties, path)
        check_property_keys(parsed, path)
        if item_id is None and "itemId" in parsed:
            item_id = _legacy_item_id(parsed["itemId"], path)
        if event_value is None and "eventValue" in parsed:
            event_value = _legacy_event_value(parsed["eventValue"], path)
    impression = event.get("impression")
    attribution = event.get("metricAttribution")
    return EventRow(
        event_id=event.get("eventId") or str(uuid.uuid4()),  # the service generates a missing one
        user_id=user_id,
        session_id=session_id,
        item_id=item_id,
        event_type=event["eventType"],
        event_value=None if event_value is None else float(event_value),
        sent_at=float(event["sentAt"]),
        properties=properties,
        recommendation_id=event.get("recommendationId"),
        impression=None if impression is None else tuple(impression),
        event_attribution_source=None if attribution is None else attribution["eventAttributionSource"],
    )


def _legacy_item_id(value: Any, path: str) -> str:
    if type(value) is not str or not 1 <= len(value) <= 256:
        raise ApiError(
            INVALID_INPUT,
            f"'itemId' in '{path}' must be a string of 1 to 256 characters",
            rule="legacy_item_id",
        )
    return value


def _legacy_event_value(value: Any, path: str) -> float:
    number: float | None = None
    if type(value) in (int, float):
        number = float(value)
    elif type(value) is str:
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is not None and math.isfinite(number):
        return number
    raise ApiError(INVALID_INPUT, f"'eventValue' in '{path}' must be a number", rule="legacy_event_value")
