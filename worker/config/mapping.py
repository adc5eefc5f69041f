"""How one topic's JSON records map onto Personalize members: the `mapping:` block of a topic.

Which JSON fields feed which member is configuration (dot paths, tried in order), so an application
with its own event shape writes a mapping, never code; `worker.mapping` compiles it into a decoder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from worker.decoding import presets
from worker.decoding.presets import InteractionsPreset, ItemsPreset, UsersPreset
from worker.records import DatasetType

TimestampUnit = Literal[
    "iso8601", "seconds", "milliseconds", "microseconds", "iso8601_or_seconds", "iso8601_or_milliseconds"
]

def _as_path_list(value: object) -> object:
    """Let a single path be written as a plain string in YAML."""
    return [value] if isinstance(value, str) else value

def _check_paths(paths: tuple[str, ...]) -> tuple[str, ...]:
    for path in paths:
        if not path or any(not seg for seg in path.split(".")):
            raise ValueError(f"bad field path {path!r}: write dot paths such as 'properties.productId'")
    return paths

Paths = Annotated[tuple[str, ...], BeforeValidator(_as_path_list), AfterValidator(_check_paths)]
"""A list of dot paths tried in order; the first one holding a non-null value wins."""

_EVENT_TYPE = Annotated[str, Field(min_length=1, max_length=256)]

def _with_preset(table: dict[str, dict[str, Any]], data: Any) -> Any:
    """Fill the fields a mapping block leaves out from its preset's table (explicit fields win)."""
    if isinstance(data, dict):
        defaults = table.get(str(data.get("preset", "segment")))
        if defaults:
            return {**defaults, **data}
    return data


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    field_prefix: str = Field(default="properties", min_length=1, description="Where unlisted columns are read.")
    fields: dict[str, Paths] = Field(
        default_factory=dict,
        description="Schema column -> paths. Columns not listed are looked up in "
        "<field_prefix>.<camelCase>, <field_prefix>.<COLUMN>, <field_prefix>.<lowercase>.",
    )

    @field_validator("field_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        _check_paths((value,))
        return value

    @field_validator("fields")
    @classmethod
    def _check_field_paths(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for column, paths in value.items():
            if not paths:
                raise ValueError(f"fields.{column}: give at least one path, or drop the entry")
        return value

class InteractionsMapping(_Spec):
    """How one topic's JSON events become PutEvents events. Defaults read Segment `track`."""

    kind: Literal["interactions"] = Field(default="interactions", description="The dataset type this maps to.")
    preset: InteractionsPreset = Field(
        default="segment",
        description="The event shape the other fields default to: segment (track), rudderstack, snowplow "
        "(enriched TSV or its JSON form), amplitude (HTTP API v2 events), ga4 (BigQuery export rows; one "
        "interaction per item), personalize-connector (aws/personalize-kafka-connector records). Any field "
        "set next to it overrides the preset's.",
    )
    event_id: Paths = Field(
        default=("messageId",),
        description="The source's own event ID (makes redelivery effectively-once across topics). "
        "Empty, or nothing found: derived from the record itself (topic, partition, offset, timestamp, "
        "key and value digests), so redeliveries share it and re-created topics do not reuse it.",
    )
    user_id: Paths = Field(default=("userId",), description="Optional: events without it are anonymous.")
    session_id: Paths = Field(default=("context.sessionId", "anonymousId"), description="PutEvents requires one.")
    session_id_fallback_to_user_id: bool = Field(
        default=False,
        description="Use the userId as sessionId when no session path holds a value. Off by default: "
        "a per-user session merges all of a user's visits into one session, which hides session "
        "boundaries from session-based recipes; turn it on only for sources without sessions.",
    )
    item_id: Paths = Field(
        default=("properties.productId", "properties.itemId"),
        description="Required when the schema's ITEM_ID column is not nullable (the shipped one).",
    )
    event_type: Paths = Field(default=("event",), min_length=1, description="Required; becomes eventType.")
    allowed_event_types: list[_EVENT_TYPE] = Field(
        default_factory=list,
        description="Source event names accepted (matched before renaming); empty accepts all. "
        "Others are rejected with rule event_type_not_allowed.",
    )
    event_type_renames: dict[str, _EVENT_TYPE] = Field(
        default_factory=dict, description="Source event name -> eventType sent to Personalize."
    )
    event_value: Paths = Field(default=("properties.value",), description="A JSON number; becomes eventValue.")
    timestamp: Paths = Field(default=("timestamp",), min_length=1, description="Required; becomes sentAt.")
    timestamp_unit: TimestampUnit = Field(
        default="iso8601",
        description="How `timestamp` is written: iso8601 strings, or epoch seconds / milliseconds / "
        "microseconds numbers (iso8601_or_seconds, iso8601_or_milliseconds: strings as ISO-8601, numbers in "
        "that unit). Explicit on purpose: "
        "guessing seconds vs milliseconds from magnitude is how year-50000 events happen. ISO-8601 "
        "times without an offset are taken as UTC.",
    )
    recommendation_id: Paths = Field(
        default=("properties.recommendationId",), description="Becomes recommendationId (1-40 chars)."
    )
    impression: Paths = Field(
        default=("properties.impression",), description="A list of item IDs or one string joined with |."
    )
    event_attribution_source: Paths = Field(
        default=("properties.eventAttributionSource",),
        description="Becomes metricAttribution.eventAttributionSource.",
    )

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, data: Any) -> Any:
        return _with_preset(presets.INTERACTIONS, data)

class _CatalogSpec(_Spec):
    timestamp_units: dict[str, TimestampUnit] = Field(
        default_factory=dict,
        description="Integer columns holding times, converted to epoch seconds. Reserved time "
        "columns (CREATION_TIMESTAMP) default to iso8601_or_seconds.",
    )

class ItemsMapping(_CatalogSpec):
    """How one topic's JSON item records become PutItems items."""

    kind: Literal["items"] = Field(default="items", description="The dataset type this maps to.")
    preset: ItemsPreset = Field(default="segment", description="The record shape the other fields default to.")
    item_id: Paths = Field(
        default=("itemId", "properties.itemId", "properties.productId"), min_length=1, description="Required."
    )

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, data: Any) -> Any:
        return _with_preset(presets.ITEMS, data)

class UsersMapping(_CatalogSpec):
    """How one topic's JSON user records become PutUsers users. Defaults read Segment `identify`."""

    kind: Literal["users"] = Field(default="users", description="The dataset type this maps to.")
    preset: UsersPreset = Field(default="segment", description="The record shape the other fields default to.")
    user_id: Paths = Field(default=("userId",), min_length=1, description="Required.")
    field_prefix: str = Field(default="traits", min_length=1, description="Where unlisted columns are read.")

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, data: Any) -> Any:
        return _with_preset(presets.USERS, data)

class ActionsMapping(_CatalogSpec):
    """How one topic's JSON action records become PutActions actions (shaped like items records)."""

    kind: Literal["actions"] = Field(default="actions", description="The dataset type this maps to.")
    preset: Literal["segment"] = Field(default="segment", description="The record shape (only the default one).")
    action_id: Paths = Field(default=("actionId", "properties.actionId"), min_length=1, description="Required.")


class ActionInteractionsMapping(_Spec):
    """How one topic's JSON events become PutActionInteractions interactions.

    Defaults read Segment `track` events with the action at ``properties.actionId`` and the
    event name one of Taken / Not Taken / Viewed.
    """

    kind: Literal["action_interactions"] = Field(
        default="action_interactions", description="The dataset type this maps to.")
    preset: Literal["segment"] = Field(default="segment", description="The event shape (only the default one).")
    event_id: Paths = Field(
        default=("messageId",),
        description="The source's own event ID; nothing found: derived from the record itself, as for interactions.",
    )
    user_id: Paths = Field(default=("userId",), description="Optional: interactions without it are anonymous.")
    session_id: Paths = Field(default=("context.sessionId", "anonymousId"),
                              description="PutActionInteractions requires one per interaction.")
    session_id_fallback_to_user_id: bool = Field(
        default=False, description="Use the userId as sessionId when no session path holds a value.")
    action_id: Paths = Field(default=("properties.actionId", "actionId"), min_length=1, description="Required.")
    event_type: Paths = Field(
        default=("event",), min_length=1,
        description="Required: after renaming, one of Taken, Not Taken, Viewed (any case).")
    allowed_event_types: list[_EVENT_TYPE] = Field(
        default_factory=list, description="Source event names accepted (matched before renaming); empty accepts all.")
    event_type_renames: dict[str, _EVENT_TYPE] = Field(
        default_factory=dict, description="Source event name -> eventType sent, e.g. {Offer Accepted: Taken}.")
    timestamp: Paths = Field(default=("timestamp",), min_length=1, description="Required; becomes timestamp.")
    timestamp_unit: TimestampUnit = Field(default="iso8601", description="As for interactions.")
    recommendation_id: Paths = Field(
        default=("properties.recommendationId",), description="Becomes recommendationId (1-40 chars).")
    impression: Paths = Field(
        default=("properties.impression",),
        description="Action IDs, a list or one string joined with |. Personalize ignores it: prefer one Viewed "
        "interaction per action shown.")


def _spec_kind(value: Any) -> str | None:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind if isinstance(kind, str) else None

MappingSpec = Annotated[
    Annotated[InteractionsMapping, Tag("interactions")]
    | Annotated[ItemsMapping, Tag("items")]
    | Annotated[UsersMapping, Tag("users")]
    | Annotated[ActionsMapping, Tag("actions")]
    | Annotated[ActionInteractionsMapping, Tag("action_interactions")],
    Discriminator(
        _spec_kind,
        custom_error_type="mapping_kind",
        custom_error_message="a mapping needs `kind: interactions | items | users | actions | action_interactions` "
        "(the dataset type of its topic)",
    ),
]
"""Any topic's mapping; `kind` names the dataset type it is written for."""

AnyMapping = InteractionsMapping | ItemsMapping | UsersMapping | ActionsMapping | ActionInteractionsMapping
"""The model of any one mapping (what `MappingSpec` validates into)."""

_MODELS: dict[DatasetType, type[AnyMapping]] = {
    DatasetType.INTERACTIONS: InteractionsMapping,
    DatasetType.ITEMS: ItemsMapping,
    DatasetType.USERS: UsersMapping,
    DatasetType.ACTIONS: ActionsMapping,
    DatasetType.ACTION_INTERACTIONS: ActionInteractionsMapping,
}

def default_mapping(dataset_type: DatasetType) -> AnyMapping:
    """The mapping used when a topic configures none (the shapes in the module docstring)."""
    return _MODELS[dataset_type]()

def parse_mapping(dataset_type: DatasetType, data: Mapping[str, Any] | None) -> AnyMapping:
    """Validate a mapping section written for `dataset_type` (its `kind` may be left out)."""
    return _MODELS[dataset_type].model_validate(dict(data or {}))
