"""Record validation derived from a dataset schema plus the Personalize API limits.

botocore checks only minima (contract §3), so every maximum, pattern and schema type rule
is enforced here, before a record joins a batch: one bad record then costs one
dead-letter entry instead of a rejected batch of ten and a bisection.

A validator is built once per (schema, limits): each schema field becomes a small check
function chosen by its Avro type and flags, so a user's own schema file needs no code.
The validators take candidate values that the mapping stage has already extracted and
given their wire Python types (IDs as `str`, times as epoch seconds); custom field values
arrive as raw JSON values and are type-checked against the schema here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from worker.records import CatalogUpdate, DatasetType, Interaction, Rejection, Stage, truncate
from worker.schemas import ID_FIELDS, DatasetSchema, SchemaField

MAX_ID_CHARS = 256  # userId, sessionId, itemId, eventId, impression entries (M-EV)
MAX_EVENT_TYPE_CHARS = 256
MAX_RECOMMENDATION_ID_CHARS = 40
MAX_IMPRESSIONS = 25
MAX_JOINED_CHARS = 1000  # categorical values and the |-joined IMPRESSION column (§6.1)
MAX_STRING_CHARS = 1000  # non-textual strings (§6.3, Items row)
MAX_TEXTUAL_CHARS = 20_000
MAX_ATTRIBUTION_CHARS = 1024
#: 10 KB per event (§7). The contract does not say how it is measured (gap #17); we count
#: the UTF-8 bytes of the compact JSON of the wire `Event`, the closest honest reading.
MAX_EVENT_BYTES = 10 * 1024
MAX_PROPERTIES_CHARS: dict[DatasetType, int] = {
    DatasetType.INTERACTIONS: 1024,
    DatasetType.ITEMS: 32_000,
    DatasetType.USERS: 24_000,
    DatasetType.ACTIONS: 32_000,
    DatasetType.ACTION_INTERACTIONS: 1024,
}
#: Keys PutEvents refuses inside `properties`, compared case-insensitively (§5.3).
FORBIDDEN_EVENT_KEYS = frozenset({"userid", "sessionid", "eventtype", "timestamp", "recommendationid", "impression"})
#: The model's pattern for `eventAttributionSource`; `is_attribution_source` implements it.
ATTRIBUTION_PATTERN = re.compile(r"^[\x20-\x7E]*[\x21-\x7E]+[\x20-\x7E]*$")
_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
FLOAT32_MAX = 3.4028234663852886e38
_YEAR = 365 * 86_400
#: Reserved interaction columns that are optional wire members: when the schema makes the
#: column non-nullable, the member becomes required. USER_ID is deliberately absent:
#: PutEvents accepts anonymous events (sessionId only) and Personalize fills the column.
_COLUMN_MEMBERS = {
    "ITEM_ID": "itemId",
    "EVENT_VALUE": "eventValue",
    "IMPRESSION": "impression",
    "RECOMMENDATION_ID": "recommendationId",
    "EVENT_ATTRIBUTION_SOURCE": "metricAttribution.eventAttributionSource",
}
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class ValidationLimits:
    """Sanity windows and size guards that are policy rather than API rules.

    Personalize accepts any epoch for `sentAt`, but an event two years old or a day in the
    future is nearly always a unit mistake (milliseconds read as seconds lands in year
    50000; seconds read as milliseconds lands in January 1970) or a broken client clock,
    and would silently skew recency-weighted training. Item creation times legitimately
    reach further back than interactions, hence the separate, wider past bound; it still
    catches seconds read as milliseconds.
    """

    max_past_seconds: float = 2 * _YEAR
    max_future_seconds: float = 86_400.0
    max_creation_past_seconds: float = 50 * _YEAR


class Rule(StrEnum):
    """Stable rule identifiers carried by rejections (dashboards and replay match on them)."""

    REQUIRED = "required"
    WRONG_TYPE = "wrong_type"
    MIN_LENGTH = "min_length"
    MAX_LENGTH = "max_length"
    MAX_ITEMS = "max_items"
    NOT_INTEGRAL = "not_integral"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    TIMESTAMP_WINDOW = "timestamp_window"
    PATTERN = "pattern"
    FORBIDDEN_KEY = "forbidden_property_key"
    EVENT_TOO_LARGE = "event_too_large"
    INVALID_UNICODE = "invalid_unicode"
    EVENT_TYPE_NOT_ALLOWED = "event_type_not_allowed"


class ValidationError(Exception):
    """A value that breaks a schema or API rule."""

    def __init__(self, rule: Rule, field: str, message: str, value: object = _MISSING) -> None:
        super().__init__(message)
        self.rule = rule
        self.field = field
        self.message = message
        self.value = value

    def rejection(self) -> Rejection:
        return Rejection(
            stage=Stage.VALIDATION,
            rule=self.rule.value,
            message=self.message,
            field=self.field,
            value=None if self.value is _MISSING else render(self.value),
            exception_class="worker.validation.ValidationError",
        )


def render(value: object) -> str:
    """`records.truncate`, safe for values nested too deeply for `repr` (the decoder must not raise)."""
    try:
        return truncate(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deeply to show>"


def check_length(field: str, value: str, low: int, high: int) -> str:
    """Return `value` if `low <= len(value) <= high`, else raise."""
    n = len(value)
    if n < low:
        raise ValidationError(Rule.MIN_LENGTH, field, f"must have at least {low} characters", value)
    if n > high:
        raise ValidationError(Rule.MAX_LENGTH, field, f"has {n} characters, at most {high} allowed", value)
    return value


def check_window(field: str, seconds: float, now: float, past: float, future: float) -> None:
    if not now - past <= seconds <= now + future:
        raise ValidationError(
            Rule.TIMESTAMP_WINDOW,
            field,
            f"epoch seconds {seconds} are outside [now-{past:.0f}s, now+{future:.0f}s]: "
            "check the timestamp unit and the client clock",
            seconds,
        )


def is_attribution_source(text: str) -> bool:
    """`ATTRIBUTION_PATTERN` without regex backtracking: printable ASCII, not only spaces.

    Also stricter than `re.match` with `$`, which would let one trailing newline through.
    """
    return text.isascii() and text.isprintable() and bool(text.strip(" "))


Check = Callable[[Any], Any]


def field_check(f: SchemaField, textual_max: int = MAX_TEXTUAL_CHARS) -> Check:
    """Build the check for one column: raw JSON value -> wire value (None = no value)."""
    name = f.name
    if f.avro_type == "string":
        limit = textual_max if f.textual else (MAX_JOINED_CHARS if f.categorical else MAX_STRING_CHARS)
        return _string_check(name, limit, allow_list=f.categorical)
    if f.avro_type in _INT_RANGE:
        return _int_check(name, *_INT_RANGE[f.avro_type])
    if f.avro_type in ("float", "double"):
        return float_check(name, FLOAT32_MAX if f.avro_type == "float" else math.inf)
    return _bool_check(name)


def _wrong_type(name: str, expected: str, value: object) -> ValidationError:
    return ValidationError(Rule.WRONG_TYPE, name, f"expected {expected}, got {type(value).__name__}", value)


def _string_check(name: str, limit: int, *, allow_list: bool) -> Check:
    expected = "a string or a list of strings" if allow_list else "a string"

    def check(value: Any) -> str | None:
        if isinstance(value, str):
            text = value
        elif allow_list and isinstance(value, list):
            if not value:
                return None
            if not all(isinstance(v, str) for v in value):
                raise _wrong_type(name, "a list of strings", value)
            text = "|".join(value)
        else:
            raise _wrong_type(name, expected, value)
        if len(text) > limit:
            raise ValidationError(Rule.MAX_LENGTH, name, f"has {len(text)} characters, at most {limit} allowed", text)
        return text

    return check


def _int_check(name: str, low: int, high: int) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong_type(name, "an integer", value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValidationError(Rule.NOT_FINITE, name, "must be a finite number", value)
            if not value.is_integer():
                raise ValidationError(Rule.NOT_INTEGRAL, name, "must be a whole number", value)
            value = int(value)
        number: int = value
        if not low <= number <= high:
            raise ValidationError(Rule.OUT_OF_RANGE, name, f"must be within [{low}, {high}]", number)
        return number

    return check


def float_check(name: str, bound: float) -> Check:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong_type(name, "a number", value)
        try:
            number = float(value)
        except OverflowError:
            raise ValidationError(Rule.OUT_OF_RANGE, name, "number is too large", value) from None
        if not math.isfinite(number):
            raise ValidationError(Rule.NOT_FINITE, name, "must be a finite number", value)
        if abs(number) > bound:
            raise ValidationError(Rule.OUT_OF_RANGE, name, f"magnitude must be at most {bound:g}", value)
        return number

    return check


def _bool_check(name: str) -> Check:
    def check(value: Any) -> bool:
        if value is True or value is False:
            return value
        raise _wrong_type(name, "true or false", value)

    return check


@dataclass(frozen=True, slots=True)
class Column:
    """A compiled schema field: where it goes in `properties` and how it is checked."""

    name: str
    key: str
    nullable: bool
    check: Check
    window_past: float | None  # set for reserved time columns carried in properties


def _json_text(field: str, value: Any) -> str:
    """Compact JSON (orjson: ~13x faster than the json module for these small objects).

    orjson refuses lone surrogates (from ``\\ud800`` escapes in the source JSON), which
    cannot be sent as UTF-8; non-finite floats never get here (every number is checked).
    """
    try:
        return orjson.dumps(value).decode("utf-8")
    except orjson.JSONEncodeError:
        raise ValidationError(Rule.INVALID_UNICODE, field, "contains an unpaired surrogate", value) from None


def utf8_size(field: str, text: str) -> int:
    """UTF-8 size of `text`; lone surrogates (from `\\ud800` JSON escapes) cannot be sent."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValidationError(Rule.INVALID_UNICODE, field, "contains an unpaired surrogate", text) from None


def build_properties(
    columns: Sequence[Column], values: Mapping[str, Any], now: float, limits: ValidationLimits, limit: int
) -> str | None:
    """Check every column's value and serialize the non-null ones as the wire JSON string."""
    props: dict[str, Any] = {}
    for col in columns:
        raw = values.get(col.name)
        wire = None if raw is None else col.check(raw)
        if wire is None:
            if not col.nullable:
                raise ValidationError(Rule.REQUIRED, col.name, "is required by the schema (not nullable)")
            continue
        if col.window_past is not None:
            check_window(col.name, wire, now, col.window_past, limits.max_future_seconds)
        props[col.key] = wire
    if not props:
        return None
    text = _json_text("properties", props)
    if len(text) > limit:
        raise ValidationError(
            Rule.MAX_LENGTH, "properties", f"JSON has {len(text)} characters, at most {limit} allowed", text
        )
    return text


class InteractionValidator:
    """Checks one interaction's candidate values and builds the PutEvents `Event`."""

    def __init__(self, schema: DatasetSchema, limits: ValidationLimits) -> None:
        if schema.dataset_type is not DatasetType.INTERACTIONS:
            raise ValueError(f"an interactions validator needs an Interactions schema, not {schema.name}")
        self.limits = limits
        self.columns = tuple(Column(f.name, f.key, f.nullable, field_check(f), None) for f in schema.custom)
        self._event_value = float_check("eventValue", FLOAT32_MAX)
        self.forbidden = {c.name for c in self.columns if c.key.lower() in FORBIDDEN_EVENT_KEYS}
        self.required_members = frozenset(
            member
            for column, member in _COLUMN_MEMBERS.items()
            if (f := schema.field(column)) is not None and not f.nullable
        )

    def build(
        self,
        *,
        event_id: str,
        event_type: str,
        sent_at: float,
        session_id: str,
        user_id: str | None,
        item_id: str | None = None,
        event_value: float | None = None,
        recommendation_id: str | None = None,
        impression: list[str] | None = None,
        attribution_source: str | None = None,
        values: Mapping[str, Any],
        now: float,
    ) -> Interaction:
        """Validate and assemble; raise `ValidationError` on the first broken rule."""
        check_length("eventId", event_id, 1, MAX_ID_CHARS)
        check_length("eventType", event_type, 1, MAX_EVENT_TYPE_CHARS)
        check_length("sessionId", session_id, 1, MAX_ID_CHARS)
        if user_id is not None:
            check_length("userId", user_id, 1, MAX_ID_CHARS)
        limits = self.limits
        if not math.isfinite(sent_at):
            raise ValidationError(Rule.NOT_FINITE, "sentAt", "must be a finite number", sent_at)
        check_window("sentAt", sent_at, now, limits.max_past_seconds, limits.max_future_seconds)
        event: dict[str, Any] = {"eventId": event_id, "eventType": event_type, "sentAt": sent_at}
        if item_id is not None:
            event["itemId"] = check_length("itemId", item_id, 1, MAX_ID_CHARS)
        if event_value is not None:
            event["eventValue"] = self._event_value(event_value)
        for name in self.forbidden:
            if values.get(name) is not None:
                raise ValidationError(
                    Rule.FORBIDDEN_KEY,
                    name,
                    f"maps to properties key {self._key(name)!r}, which PutEvents forbids: rename the schema field",
                    values[name],
                )
        props = build_properties(self.columns, values, now, limits, MAX_PROPERTIES_CHARS[DatasetType.INTERACTIONS])
        if props is not None:
            event["properties"] = props
        if recommendation_id is not None:
            event["recommendationId"] = check_length(
                "recommendationId", recommendation_id, 1, MAX_RECOMMENDATION_ID_CHARS
            )
        if impression:
            event["impression"] = check_impression(impression)
        if attribution_source is not None:
            field = "metricAttribution.eventAttributionSource"
            check_length(field, attribution_source, 1, MAX_ATTRIBUTION_CHARS)
            if not is_attribution_source(attribution_source):
                raise ValidationError(
                    Rule.PATTERN, field, "must be printable ASCII and not only spaces", attribution_source
                )
            event["metricAttribution"] = {"eventAttributionSource": attribution_source}
        for member in self.required_members:
            if member.split(".")[0] not in event:
                raise ValidationError(Rule.REQUIRED, member, "is required: the schema column is not nullable")
        try:
            size = len(orjson.dumps(event))
        except orjson.JSONEncodeError:
            raise _bad_unicode(event) from None
        if size > MAX_EVENT_BYTES:
            raise ValidationError(
                Rule.EVENT_TOO_LARGE, "event", f"serialized event is {size} bytes, at most {MAX_EVENT_BYTES}"
            )
        if user_id is not None:
            utf8_size("userId", user_id)
        utf8_size("sessionId", session_id)
        return Interaction(session_id=session_id, user_id=user_id, event=event)

    def _key(self, name: str) -> str:
        return next(c.key for c in self.columns if c.name == name)


def _bad_unicode(event: dict[str, Any]) -> ValidationError:
    """Name the member holding an unpaired surrogate (rare path, so a second pass is fine)."""
    for key, value in event.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return ValidationError(Rule.INVALID_UNICODE, key, "contains an unpaired surrogate", text)
    return ValidationError(Rule.INVALID_UNICODE, "event", "contains an unpaired surrogate")


def check_impression(ids: list[str]) -> list[str]:
    if len(ids) > MAX_IMPRESSIONS:
        raise ValidationError(Rule.MAX_ITEMS, "impression", f"has {len(ids)} item IDs, at most {MAX_IMPRESSIONS}", ids)
    for item in ids:
        check_length("impression", item, 1, MAX_ID_CHARS)
    joined = sum(map(len, ids)) + len(ids) - 1
    if joined > MAX_JOINED_CHARS:
        raise ValidationError(
            Rule.MAX_LENGTH,
            "impression",
            f"joined with | is {joined} characters, at most {MAX_JOINED_CHARS}",
            ids,
        )
    return ids


class CatalogValidator:
    """Checks one item, user or action and builds the PutItems `Item` / PutUsers `User` / PutActions `Action`.

    Only CREATION_TIMESTAMP is held to a time window: an action's EXPIRATION_TIMESTAMP lies
    in the future by design, and VALUE and REPEAT_FREQUENCY are not times.
    """

    def __init__(self, schema: DatasetSchema, limits: ValidationLimits) -> None:
        if schema.dataset_type.is_event_stream:
            raise ValueError("a catalog validator needs an Items, Users or Actions schema")
        self.limits = limits
        self.dataset_type = schema.dataset_type
        self.id_field = ID_FIELDS[schema.dataset_type]
        self.id_key = schema.property_key(self.id_field)
        self.columns = tuple(
            Column(
                f.name,
                f.key,
                f.nullable,
                field_check(f),
                limits.max_creation_past_seconds if f.reserved and f.name == "CREATION_TIMESTAMP" else None,
            )
            for f in schema.fields
            if f.name != self.id_field
        )

    def build(self, entity_id: str, values: Mapping[str, Any], now: float) -> CatalogUpdate:
        """Validate and assemble; raise `ValidationError` on the first broken rule."""
        check_length(self.id_key, entity_id, 1, MAX_ID_CHARS)
        utf8_size(self.id_key, entity_id)
        record: dict[str, Any] = {self.id_key: entity_id}
        props = build_properties(self.columns, values, now, self.limits, MAX_PROPERTIES_CHARS[self.dataset_type])
        if props is not None:
            utf8_size("properties", props)
            record["properties"] = props
        return CatalogUpdate(entity_id=entity_id, record=record)
