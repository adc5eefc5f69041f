"""Malformed inputs for the decoder corpus test, each with the rejection it must produce.

Every case names the decoder it runs through (see `DECODERS` in test_mapping.py's corpus
test): most use the shipped schema with the default Segment mapping; a few need a
particular mapping or schema to reach their rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: A fixed clock (2025-06-15T15:06:40Z) so time-window cases do not drift.
NOW = 1_750_000_000.0
NOW_ISO = "2025-06-15T15:06:40.000Z"
DROP = object()
#: One 4-byte UTF-8 character, to make events big in bytes while short in characters.
EMOJI = "\U0001f600"


def track(changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """A valid Segment track event (for the shipped schema), with dot-path changes applied."""
    event: dict[str, Any] = {
        "type": "track",
        "messageId": "msg-0001",
        "userId": "user-1",
        "anonymousId": "anon-1",
        "event": "Product Clicked",
        "timestamp": NOW_ISO,
        "context": {"sessionId": "sess-1"},
        "properties": {"productId": "item-1", "value": 2.5, "device": "mobile"},
    }
    return apply(event, changes or {})


def item(changes: dict[str, Any] | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "itemId": "item-1",
        "properties": {
            "category": "shoes",
            "price": 9.5,
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "description": "A shoe.",
        },
    }
    return apply(record, changes or {})


def user(changes: dict[str, Any] | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"type": "identify", "userId": "user-1", "traits": {"membership": "gold"}}
    return apply(record, changes or {})


def apply(doc: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        if value is DROP:
            node.pop(last, None)
        else:
            node[last] = value
    return doc


def enc(doc: Any) -> bytes:
    """JSON bytes; NaN/Infinity are written as the non-standard literals clients emit."""
    return json.dumps(doc, allow_nan=True).encode("utf-8")


@dataclass(frozen=True)
class Case:
    name: str
    value: bytes | None
    stage: str
    rule: str
    field: str | None = None
    decoder: str = "interactions"


def _deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


M, V = "mapping", "validation"
NO_SESSION = {"anonymousId": DROP, "context.sessionId": DROP}
LONG = "x" * 257

INTERACTION_CASES: list[Case] = [
    # --- bytes that are not a JSON object --------------------------------------------
    Case("not_json_word", b"hello", M, "not_json"),
    Case("truncated_json", b'{"event": "x", ', M, "not_json"),
    Case("trailing_garbage", enc(track())[:-1] + b"} trailing", M, "not_json"),
    Case("single_quotes", b"{'event': 'x'}", M, "not_json"),
    Case("raw_control_char_in_string", b'{"event": "a\x01b"}', M, "not_json"),
    Case("utf8_bom", b"\xef\xbb\xbf" + enc(track()), M, "not_json"),
    Case("int_over_4300_digits", b'{"event": ' + b"9" * 5000 + b"}", M, "not_json"),
    Case("deeply_nested_root", b"[" * 100_000 + b"]" * 100_000, M, "not_json"),
    Case(
        "deeply_nested_property",
        enc(track())[:-2] + b', "deep": ' + _deep(50_000).encode() + b"}}",
        M,
        "not_json",
    ),
    Case("non_utf8_byte", b"\xff\xfe{", M, "not_utf8"),
    Case(
        "latin1_encoded",
        json.dumps(track({"userId": "josé"}), ensure_ascii=False).encode("latin-1"),
        M,
        "not_utf8",
    ),
    Case("utf16_encoded", json.dumps(track()).encode("utf-16"), M, "not_utf8"),
    Case("truncated_multibyte", b'{"event": "caf\xc3', M, "not_utf8"),
    Case("empty", b"", M, "empty"),
    Case("whitespace_only", b"  \r\n\t ", M, "empty"),
    Case("tombstone", None, M, "tombstone"),
    Case("huge_value", b'{"pad": "' + b"x" * 1_000_100 + b'"}', M, "too_large"),
    Case("array_root", enc([track()]), M, "not_object"),
    Case("null_root", b"null", M, "not_object"),
    Case("number_root", b"42", M, "not_object"),
    Case("string_root", b'"event"', M, "not_object"),
    Case("nan_root", b"NaN", M, "not_object"),
    Case("bool_root", b"true", M, "not_object"),
    # --- mapped paths missing or of the wrong type ------------------------------------
    Case("missing_event", enc(track({"event": DROP})), M, "missing", "eventType"),
    Case("null_event", enc(track({"event": None})), M, "missing", "eventType"),
    Case("object_event", enc(track({"event": {"name": "x"}})), M, "wrong_type", "eventType"),
    Case("list_event", enc(track({"event": ["a", "b"]})), M, "wrong_type", "eventType"),
    Case("bool_event", enc(track({"event": True})), M, "wrong_type", "eventType"),
    Case("missing_timestamp", enc(track({"timestamp": DROP})), M, "missing", "sentAt"),
    Case("epoch_for_iso_unit", enc(track({"timestamp": NOW})), M, "wrong_type", "sentAt"),
    Case("timestamp_word", enc(track({"timestamp": "yesterday"})), M, "bad_timestamp", "sentAt"),
    Case("timestamp_month_13", enc(track({"timestamp": "2025-13-45T00:00:00Z"})), M, "bad_timestamp", "sentAt"),
    Case("timestamp_object", enc(track({"timestamp": {"iso": NOW_ISO}})), M, "wrong_type", "sentAt"),
    Case("no_user_no_session", enc(track({**NO_SESSION, "userId": DROP})), M, "missing", "sessionId"),
    Case("user_without_session", enc(track(NO_SESSION)), M, "missing", "sessionId"),
    Case("object_user_id", enc(track({"userId": {"id": "u"}})), M, "wrong_type", "userId"),
    Case("float_user_id", enc(track({"userId": 1.5})), M, "wrong_type", "userId"),
    Case("bool_user_id", enc(track({"userId": False})), M, "wrong_type", "userId"),
    Case(
        "list_anonymous_id",
        enc(track({"context.sessionId": DROP, "anonymousId": ["a"]})),
        M,
        "wrong_type",
        "sessionId",
    ),
    Case("object_message_id", enc(track({"messageId": {"id": 1}})), M, "wrong_type", "eventId"),
    Case("object_product_id", enc(track({"properties.productId": {"sku": 1}})), M, "wrong_type", "itemId"),
    Case("string_value", enc(track({"properties.value": "4.5"})), M, "wrong_type", "eventValue"),
    Case("bool_value", enc(track({"properties.value": True})), M, "wrong_type", "eventValue"),
    Case("object_impression", enc(track({"properties.impression": {"a": 1}})), M, "wrong_type", "impression"),
    Case(
        "nested_impression_entry",
        enc(track({"properties.impression": ["a", ["b"]]})),
        M,
        "wrong_type",
        "impression",
    ),
    Case(
        "float_recommendation_id",
        enc(track({"properties.recommendationId": 1.5})),
        M,
        "wrong_type",
        "recommendationId",
    ),
    Case(
        "list_attribution_source",
        enc(track({"properties.eventAttributionSource": ["a"]})),
        M,
        "wrong_type",
        "metricAttribution.eventAttributionSource",
    ),
    # --- values breaking schema or API rules -----------------------------------------
    Case("user_id_257", enc(track({"userId": LONG})), V, "max_length", "userId"),
    Case("user_id_empty", enc(track({"userId": ""})), V, "min_length", "userId"),
    Case("session_id_257", enc(track({"context.sessionId": LONG})), V, "max_length", "sessionId"),
    Case("item_id_257", enc(track({"properties.productId": LONG})), V, "max_length", "itemId"),
    Case("event_id_257", enc(track({"messageId": LONG})), V, "max_length", "eventId"),
    Case("event_type_257", enc(track({"event": LONG})), V, "max_length", "eventType"),
    Case("event_type_empty", enc(track({"event": ""})), V, "min_length", "eventType"),
    Case("missing_item_id", enc(track({"properties.productId": DROP})), V, "required", "itemId"),
    Case("timestamp_1970", enc(track({"timestamp": "1970-01-21T06:13:20Z"})), V, "timestamp_window", "sentAt"),
    Case(
        "timestamp_year_2999",
        enc(track({"timestamp": "2999-01-01T00:00:00Z"})),
        V,
        "timestamp_window",
        "sentAt",
    ),
    Case(
        "timestamp_3_years_old",
        enc(track({"timestamp": "2022-06-01T00:00:00Z"})),
        V,
        "timestamp_window",
        "sentAt",
    ),
    Case(
        "timestamp_2_days_ahead",
        enc(track({"timestamp": "2025-06-17T16:00:00Z"})),
        V,
        "timestamp_window",
        "sentAt",
    ),
    Case(
        "seconds_under_ms_unit",
        enc(track({"timestamp": NOW})),
        V,
        "timestamp_window",
        "sentAt",
        "interactions_ms",
    ),
    Case(
        "ms_under_seconds_unit",
        enc(track({"timestamp": NOW * 1000})),
        V,
        "timestamp_window",
        "sentAt",
        "interactions_seconds",
    ),
    Case("iso_under_seconds_unit", enc(track()), M, "wrong_type", "sentAt", "interactions_seconds"),
    Case(
        "nan_timestamp_seconds",
        enc(track({"timestamp": float("nan")})),
        V,
        "not_finite",
        "sentAt",
        "interactions_seconds",
    ),
    Case("nan_value", enc(track({"properties.value": float("nan")})), V, "not_finite", "eventValue"),
    Case("infinity_value", enc(track({"properties.value": float("inf")})), V, "not_finite", "eventValue"),
    Case("minus_infinity_value", enc(track({"properties.value": float("-inf")})), V, "not_finite", "eventValue"),
    Case("value_over_float32", enc(track({"properties.value": 1e39})), V, "out_of_range", "eventValue"),
    Case("value_huge_int", enc(track({"properties.value": 10**400})), V, "out_of_range", "eventValue"),
    Case("device_1001_chars", enc(track({"properties.device": "d" * 1001})), V, "max_length", "DEVICE"),
    Case("device_number", enc(track({"properties.device": 5})), V, "wrong_type", "DEVICE"),
    Case("device_object", enc(track({"properties.device": {"type": "ios"}})), V, "wrong_type", "DEVICE"),
    Case("device_list_of_numbers", enc(track({"properties.device": ["a", 1]})), V, "wrong_type", "DEVICE"),
    Case(
        "device_list_joined_over_1000",
        enc(track({"properties.device": ["d" * 100] * 11})),
        V,
        "max_length",
        "DEVICE",
    ),
    Case(
        "recommendation_id_41",
        enc(track({"properties.recommendationId": "R" * 41})),
        V,
        "max_length",
        "recommendationId",
    ),
    Case(
        "recommendation_id_empty",
        enc(track({"properties.recommendationId": ""})),
        V,
        "min_length",
        "recommendationId",
    ),
    Case(
        "impression_26_ids",
        enc(track({"properties.impression": [f"i{n}" for n in range(26)]})),
        V,
        "max_items",
        "impression",
    ),
    Case("impression_id_257", enc(track({"properties.impression": ["a", LONG]})), V, "max_length", "impression"),
    Case("impression_empty_id", enc(track({"properties.impression": "a||b"})), V, "min_length", "impression"),
    Case(
        "impression_joined_over_1000",
        enc(track({"properties.impression": ["i" * 100] * 10})),
        V,
        "max_length",
        "impression",
    ),
    Case(
        "attribution_only_spaces",
        enc(track({"properties.eventAttributionSource": "   "})),
        V,
        "pattern",
        "metricAttribution.eventAttributionSource",
    ),
    Case(
        "attribution_tab",
        enc(track({"properties.eventAttributionSource": "a\tb"})),
        V,
        "pattern",
        "metricAttribution.eventAttributionSource",
    ),
    Case(
        "attribution_trailing_newline",
        enc(track({"properties.eventAttributionSource": "abc\n"})),
        V,
        "pattern",
        "metricAttribution.eventAttributionSource",
    ),
    Case(
        "attribution_non_ascii",
        enc(track({"properties.eventAttributionSource": "café"})),
        V,
        "pattern",
        "metricAttribution.eventAttributionSource",
    ),
    Case(
        "attribution_1025",
        enc(track({"properties.eventAttributionSource": "a" * 1025})),
        V,
        "max_length",
        "metricAttribution.eventAttributionSource",
    ),
    Case(
        "lone_surrogate_user_id",
        b'{"event":"x","timestamp":"'
        + NOW_ISO.encode()
        + b'","userId":"\\ud800","anonymousId":"a","properties":{"productId":"i"}}',
        V,
        "invalid_unicode",
        "userId",
    ),
    Case("lone_surrogate_event_type", enc(track({"event": "\ud800"})), V, "invalid_unicode", "eventType"),
    Case(
        "lone_surrogate_device",
        enc(track({"properties.device": "\udfff"})),
        V,
        "invalid_unicode",
        "properties",
    ),
    Case(
        "event_over_10kb",
        enc(
            track(
                {
                    "messageId": EMOJI * 256,
                    "event": EMOJI * 256,
                    "properties.productId": EMOJI * 256,
                    "properties.device": EMOJI * 1000,
                    "properties.impression": [EMOJI * 39] * 25,
                }
            )
        ),
        V,
        "event_too_large",
        "event",
    ),
    Case(
        "event_not_in_allow_list",
        enc(track({"event": "Signed In"})),
        V,
        "event_type_not_allowed",
        "eventType",
        "interactions_allow",
    ),
    Case(
        "forbidden_property_key",
        enc(track({"properties.sessionId": "s-9"})),
        V,
        "forbidden_property_key",
        "SESSION_ID",
        "interactions_forbidden",
    ),
    Case(
        "properties_over_1024",
        enc(track({**{f"properties.c{n}": "v" * 300 for n in range(1, 5)}, "properties.c5": 1})),
        V,
        "max_length",
        "properties",
        "interactions_wide",
    ),
    Case("required_custom_missing", enc(track()), V, "required", "C5", "interactions_wide"),
    Case(
        "custom_int_not_integral",
        enc(track({"properties.c5": 1.5})),
        V,
        "not_integral",
        "C5",
        "interactions_wide",
    ),
    Case(
        "custom_int_over_int32",
        enc(track({"properties.c5": 2**31})),
        V,
        "out_of_range",
        "C5",
        "interactions_wide",
    ),
]

CATALOG_CASES: list[Case] = [
    Case("item_not_json", b"{item}", M, "not_json", None, "items"),
    Case("item_missing_id", enc(item({"itemId": DROP})), M, "missing", "itemId", "items"),
    Case("item_object_id", enc(item({"itemId": {"sku": 1}})), M, "wrong_type", "itemId", "items"),
    Case("items_record_id_257", enc(item({"itemId": LONG})), V, "max_length", "itemId", "items"),
    Case("item_price_string", enc(item({"properties.price": "9.5"})), V, "wrong_type", "PRICE", "items"),
    Case("item_price_missing", enc(item({"properties.price": DROP})), V, "required", "PRICE", "items"),
    Case("item_price_nan", enc(item({"properties.price": float("nan")})), V, "not_finite", "PRICE", "items"),
    Case("item_category_missing", enc(item({"properties.category": DROP})), V, "required", "CATEGORY", "items"),
    Case(
        "item_category_1001",
        enc(item({"properties.category": "c" * 1001})),
        V,
        "max_length",
        "CATEGORY",
        "items",
    ),
    Case(
        "item_creation_bad_iso",
        enc(item({"properties.creationTimestamp": "soon"})),
        M,
        "bad_timestamp",
        "CREATION_TIMESTAMP",
        "items",
    ),
    Case(
        "item_creation_1960",
        enc(item({"properties.creationTimestamp": "1960-01-01T00:00:00Z"})),
        V,
        "timestamp_window",
        "CREATION_TIMESTAMP",
        "items",
    ),
    Case(
        "item_creation_in_ms",
        enc(item({"properties.creationTimestamp": NOW * 1000})),
        V,
        "timestamp_window",
        "CREATION_TIMESTAMP",
        "items",
    ),
    Case(
        "item_creation_bool",
        enc(item({"properties.creationTimestamp": True})),
        M,
        "wrong_type",
        "CREATION_TIMESTAMP",
        "items",
    ),
    Case(
        "item_description_20001",
        enc(item({"properties.description": "d" * 20_001})),
        V,
        "max_length",
        "DESCRIPTION",
        "items",
    ),
    Case(
        "item_description_list",
        enc(item({"properties.description": ["a", "b"]})),
        V,
        "wrong_type",
        "DESCRIPTION",
        "items",
    ),
    Case("user_array_root", b"[]", M, "not_object", None, "users"),
    Case("user_missing_id", enc(user({"userId": DROP})), M, "missing", "userId", "users"),
    Case("users_record_id_257", enc(user({"userId": LONG})), V, "max_length", "userId", "users"),
    Case(
        "user_membership_missing",
        enc(user({"traits.membership": DROP})),
        V,
        "required",
        "MEMBERSHIP",
        "users",
    ),
    Case("user_membership_number", enc(user({"traits.membership": 3})), V, "wrong_type", "MEMBERSHIP", "users"),
    Case(
        "user_age_group_1001",
        enc(user({"traits.ageGroup": "a" * 1001})),
        V,
        "max_length",
        "AGE_GROUP",
        "users",
    ),
]
