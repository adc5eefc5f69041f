"""PutActions and PutActionInteractions of the local Personalize (a development/test stand-in).

Same order of checks as `events_api`: shape against botocore's ``personalize-events``
model (1-10 records, IDs 1-256, ``properties`` 1-32,000 / 1-1,024 characters,
``recommendationId`` 1-40, ``impression`` 1-25 IDs), then what the model cannot say, then
the resource, then one store transaction, so a batch is accepted or rejected whole.

Rules beyond the model, from the developer guide and the model's member docs:

* ``properties`` holds a JSON object (both operations); in an action interaction it must
  not repeat the interaction's own members (userId, sessionId, eventType, timestamp,
  recommendationId, impression; case-insensitive), as in PutEvents;
* an action interaction's ``eventType`` is one of the documented ``Taken``, ``Not Taken``
  and ``Viewed`` ("An action interaction event must have an event type attribute, which
  can be one of the following", recording-action-interaction-events). Case is not
  documented and the guide's own CSV example writes ``Not taken``, so the match ignores
  case; the value is stored as sent;
* ``userId`` and ``sessionId`` are per interaction (unlike PutEvents); a missing
  ``eventId`` is generated.

Resources: PutActions names an Actions dataset by ARN (unknown: ResourceNotFoundException
404; another type: InvalidInputException; not ACTIVE: ResourceInUseException 409).
PutActionInteractions names the tracker that CreateDataset made for an Action
interactions dataset (DescribeDataset ``trackingId``); an unknown tracking ID - an
events tracker's included - is ResourceNotFoundException, one whose dataset is not
ACTIVE (being created or deleted) is ResourceInUseException.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Final

from clickstream_devkit.personalize.action_store import ActionInteractionRow
from clickstream_devkit.personalize.errors import (
    INVALID_INPUT,
    RESOURCE_IN_USE,
    RESOURCE_NOT_FOUND,
    ApiError,
    validation_error,
)
from clickstream_devkit.personalize.events_api import (
    Handler,
    catalog_records,
    check_property_keys,
    parse_properties,
    require_dataset,
)
from clickstream_devkit.personalize.shape_validation import RequestValidator
from clickstream_devkit.personalize.stats import Stats
from clickstream_devkit.personalize.store import ACTIVE, Store

#: The documented action interaction event types, lower-cased (compared ignoring case).
ACTION_EVENT_TYPES: Final = frozenset({"taken", "not taken", "viewed"})


class ActionsApi:
    def __init__(
        self, store: Store, stats: Stats, validator: RequestValidator, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._stats = stats
        self._validator = validator
        self._clock = clock

    def routes(self) -> dict[str, tuple[str, Handler]]:
        return {
            "PutActions": ("/actions", self.put_actions),
            "PutActionInteractions": ("/action-interactions", self.put_action_interactions),
        }

    def put_actions(self, body: Any) -> None:
        self._validate("PutActions", body)
        records = catalog_records(body["actions"], "actions", "actionId")
        dataset = require_dataset(self._store, body["datasetArn"], "ACTIONS", "PutActions")
        self._store.actions.upsert_actions(dataset.arn, records, self._clock())
        self._stats.actions += len(records)

    def put_action_interactions(self, body: Any) -> None:
        self._validate("PutActionInteractions", body)
        rows = [action_interaction_row(i, raw) for i, raw in enumerate(body["actionInteractions"])]
        tracking_id = body["trackingId"]
        self._require_tracker(tracking_id)
        stored = self._store.actions.insert_interactions(tracking_id, rows, self._clock())
        self._stats.action_interactions += len(rows)
        self._stats.duplicate_action_interactions += len(rows) - stored

    def _validate(self, operation: str, body: Any) -> None:
        violation = self._validator.validate(operation, body)
        if violation is not None:
            raise validation_error(violation)

    def _require_tracker(self, tracking_id: str) -> None:
        tracker = self._store.actions.tracker(tracking_id)
        dataset = None if tracker is None or tracker.dataset_arn is None else self._store.dataset(tracker.dataset_arn)
        if tracker is None or (tracker.dataset_arn is not None and dataset is None):
            raise ApiError(
                RESOURCE_NOT_FOUND,
                f"Action interaction event tracker with trackingId '{tracking_id}' does not exist",
                rule="unknown_action_tracker",
            )
        if dataset is not None and dataset.status != ACTIVE:
            raise ApiError(
                RESOURCE_IN_USE,
                f"The Action interactions dataset '{dataset.arn}' of trackingId '{tracking_id}' is not ACTIVE"
                f" (status {dataset.status})",
                rule="dataset_not_active",
            )


def action_interaction_row(index: int, raw: dict[str, Any]) -> ActionInteractionRow:
    """The stored row of one shape-valid interaction, after the rules the model cannot express."""
    event_type: str = raw["eventType"]
    if event_type.lower() not in ACTION_EVENT_TYPES:
        raise ApiError(
            INVALID_INPUT,
            f"Invalid eventType '{event_type[:100]}' at 'actionInteractions.{index}.eventType': an action"
            " interaction event type is one of Taken, Not Taken or Viewed",
            rule="action_event_type",
        )
    properties: str | None = raw.get("properties")
    if properties is not None:
        path = f"actionInteractions.{index}.properties"
        check_property_keys(parse_properties(properties, path), path)
    impression = raw.get("impression")
    return ActionInteractionRow(
        event_id=raw.get("eventId") or str(uuid.uuid4()),
        user_id=raw.get("userId"),
        session_id=raw["sessionId"],
        action_id=raw["actionId"],
        event_type=event_type,
        timestamp=float(raw["timestamp"]),
        properties=properties,
        recommendation_id=raw.get("recommendationId"),
        impression=None if impression is None else tuple(impression),
    )
