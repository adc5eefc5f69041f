"""Validators derived from a schema: Avro types, API limits, and the wire structures they build."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from worker.records import DatasetType, Rejection, Stage
from worker.schemas import DatasetSchema, load_schema, parse_schema
from worker.validation import (
    ATTRIBUTION_PATTERN,
    MAX_EVENT_BYTES,
    CatalogValidator,
    InteractionValidator,
    ValidationError,
    ValidationLimits,
    is_attribution_source,
    render,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
NOW = 1_750_000_000.0
DAY = 86_400.0


def interactions(*custom: dict[str, Any], reserved: tuple[dict[str, Any], ...] = ()) -> DatasetSchema:
    fields = [
        {"name": "USER_ID", "type": "string"},
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
        *reserved,
        *custom,
    ]
    return parse_schema(json.dumps({"type": "record", "name": "Interactions", "fields": fields}))


def catalog(name: str, *fields: dict[str, Any]) -> DatasetSchema:
    id_field = {"Items": "ITEM_ID", "Users": "USER_ID"}[name]
    return parse_schema(
        json.dumps({"type": "record", "name": name, "fields": [{"name": id_field, "type": "string"}, *fields]})
    )


def build(validator: InteractionValidator, **overrides: Any) -> Any:
    args: dict[str, Any] = {
        "event_id": "e-1",
        "event_type": "click",
        "sent_at": NOW - 10,
        "session_id": "s-1",
        "user_id": "u-1",
        "item_id": "i-1",
        "values": {},
        "now": NOW,
    }
    args.update(overrides)
    return validator.build(**args)


def fails(call: Any, rule: str, field: str) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        call()
    assert (info.value.rule.value, info.value.field) == (rule, field), info.value
    return info.value


SHIPPED = load_schema(SCHEMAS / "interactions.json")
V = InteractionValidator(SHIPPED, ValidationLimits())


def test_event_wire_structure() -> None:
    result = build(
        V,
        event_value=3,
        recommendation_id="RID-1",
        impression=["a", "b"],
        attribution_source="home page",
        values={"DEVICE": ["tv", "web"]},
    )
    assert (result.session_id, result.user_id) == ("s-1", "u-1")
    assert result.event == {
        "eventId": "e-1",
        "eventType": "click",
        "sentAt": NOW - 10,
        "itemId": "i-1",
        "eventValue": 3.0,
        "properties": '{"device":"tv|web"}',
        "recommendationId": "RID-1",
        "impression": ["a", "b"],
        "metricAttribution": {"eventAttributionSource": "home page"},
    }
    assert isinstance(result.event["eventValue"], float)


def test_properties_absent_when_no_custom_values() -> None:
    event = build(V, values={"DEVICE": None}).event
    assert "properties" not in event and "eventValue" not in event and "impression" not in event
    assert "properties" not in build(V, values={"DEVICE": []}).event  # empty list = no value


@pytest.mark.parametrize(
    ("overrides", "rule", "field"),
    [
        ({"event_id": ""}, "min_length", "eventId"),
        ({"event_id": "e" * 257}, "max_length", "eventId"),
        ({"event_type": ""}, "min_length", "eventType"),
        ({"event_type": "t" * 257}, "max_length", "eventType"),
        ({"session_id": "s" * 257}, "max_length", "sessionId"),
        ({"user_id": ""}, "min_length", "userId"),
        ({"item_id": "i" * 257}, "max_length", "itemId"),
        ({"item_id": None}, "required", "itemId"),
        ({"recommendation_id": "R" * 41}, "max_length", "recommendationId"),
        ({"impression": ["x"] * 26}, "max_items", "impression"),
        ({"impression": ["x" * 257]}, "max_length", "impression"),
        ({"impression": ["x" * 40] * 25}, "max_length", "impression"),  # 25*40 + 24 separators > 1000
        ({"attribution_source": ""}, "min_length", "metricAttribution.eventAttributionSource"),
        ({"attribution_source": "a" * 1025}, "max_length", "metricAttribution.eventAttributionSource"),
        ({"attribution_source": "  "}, "pattern", "metricAttribution.eventAttributionSource"),
        ({"attribution_source": "x\x7f"}, "pattern", "metricAttribution.eventAttributionSource"),
        ({"event_value": float("nan")}, "not_finite", "eventValue"),
        ({"event_value": 3.5e38}, "out_of_range", "eventValue"),
        ({"sent_at": float("inf")}, "not_finite", "sentAt"),
        ({"sent_at": NOW - 731 * DAY}, "timestamp_window", "sentAt"),
        ({"sent_at": NOW + DAY + 1}, "timestamp_window", "sentAt"),
        ({"sent_at": NOW * 1000}, "timestamp_window", "sentAt"),
        ({"values": {"DEVICE": "d" * 1001}}, "max_length", "DEVICE"),
        ({"values": {"DEVICE": 7}}, "wrong_type", "DEVICE"),
        ({"user_id": "\udc80"}, "invalid_unicode", "userId"),
    ],
)
def test_event_rules(overrides: dict[str, Any], rule: str, field: str) -> None:
    error = fails(lambda: build(V, **overrides), rule, field)
    rejection = error.rejection()
    assert rejection.stage is Stage.VALIDATION
    assert rejection.exception_class == "worker.validation.ValidationError"


def test_limits_at_the_boundary_are_accepted() -> None:
    event = build(
        V,
        event_id="e" * 256,
        event_type="t" * 256,
        item_id="i" * 256,
        recommendation_id="R" * 40,
        impression=["x" * 39] * 25,  # joined: exactly 1000
        attribution_source=" " + "a" * 1023,
        sent_at=NOW - 730 * DAY,
        values={"DEVICE": "d" * 1000},
    ).event
    assert len(event["impression"]) == 25
    build(V, sent_at=NOW + DAY)


def test_timestamp_window_follows_limits() -> None:
    strict = InteractionValidator(SHIPPED, ValidationLimits(max_past_seconds=60, max_future_seconds=0))
    fails(lambda: build(strict, sent_at=NOW - 61), "timestamp_window", "sentAt")
    fails(lambda: build(strict, sent_at=NOW + 1), "timestamp_window", "sentAt")
    build(strict, sent_at=NOW - 60)


def test_attribution_check_matches_the_model_pattern() -> None:
    rng = random.Random(5)
    alphabet = [" ", "a", "~", "\x1f", "\x7f", "é", "\t", "\n", "!"]
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        assert is_attribution_source(text) == bool(ATTRIBUTION_PATTERN.fullmatch(text)), repr(text)
    # `re.match` with `$` would let a trailing newline through; the service pattern must not
    assert ATTRIBUTION_PATTERN.match("abc\n") and not is_attribution_source("abc\n")


CUSTOM = interactions(
    {"name": "N_INT", "type": ["null", "int"]},
    {"name": "N_LONG", "type": ["null", "long"]},
    {"name": "N_FLOAT", "type": ["null", "float"]},
    {"name": "N_DOUBLE", "type": ["null", "double"]},
    {"name": "FLAG", "type": ["null", "boolean"]},
)
VC = InteractionValidator(CUSTOM, ValidationLimits())


@pytest.mark.parametrize(
    ("field", "value", "wire"),
    [
        ("N_INT", 5, 5),
        ("N_INT", 5.0, 5),
        ("N_INT", -(2**31), -(2**31)),
        ("N_LONG", 2**63 - 1, 2**63 - 1),
        ("N_FLOAT", 1, 1.0),
        ("N_FLOAT", -2.5, -2.5),
        ("N_DOUBLE", 1e300, 1e300),
        ("FLAG", True, True),
        ("FLAG", False, False),
    ],
)
def test_avro_types_accept(field: str, value: Any, wire: Any) -> None:
    props = json.loads(build(VC, values={field: value}).event["properties"])
    key = CUSTOM.property_key(field)
    assert props == {key: wire} and type(props[key]) is type(wire)


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("N_INT", 1.5, "not_integral"),
        ("N_INT", 2**31, "out_of_range"),
        ("N_INT", True, "wrong_type"),
        ("N_INT", "3", "wrong_type"),
        ("N_INT", float("inf"), "not_finite"),
        ("N_LONG", 2**63, "out_of_range"),
        ("N_LONG", [1], "wrong_type"),
        ("N_FLOAT", 3.5e38, "out_of_range"),
        ("N_FLOAT", "1.0", "wrong_type"),
        ("N_FLOAT", False, "wrong_type"),
        ("N_DOUBLE", float("nan"), "not_finite"),
        ("N_DOUBLE", 10**400, "out_of_range"),
        ("FLAG", 1, "wrong_type"),
        ("FLAG", "true", "wrong_type"),
    ],
)
def test_avro_types_reject(field: str, value: Any, rule: str) -> None:
    fails(lambda: build(VC, values={field: value}), rule, field)


def test_non_nullable_custom_field_is_required() -> None:
    validator = InteractionValidator(interactions({"name": "TIER", "type": "int"}), ValidationLimits())
    fails(lambda: build(validator), "required", "TIER")
    assert build(validator, values={"TIER": 0}).event["properties"] == '{"tier":0}'


def test_non_nullable_reserved_columns_make_members_required() -> None:
    schema = interactions(
        reserved=(
            {"name": "EVENT_VALUE", "type": "float"},
            {"name": "RECOMMENDATION_ID", "type": "string"},
            {"name": "EVENT_ATTRIBUTION_SOURCE", "type": "string"},
        )
    )
    validator = InteractionValidator(schema, ValidationLimits())
    full = {"event_value": 1.0, "recommendation_id": "R", "attribution_source": "web"}
    build(validator, **full)
    for arg, member in [
        ("event_value", "eventValue"),
        ("recommendation_id", "recommendationId"),
        ("attribution_source", "metricAttribution.eventAttributionSource"),
    ]:
        fails(lambda a=arg: build(validator, **{**full, a: None}), "required", member)
    # anonymous events stay valid although USER_ID is not nullable: Personalize fills it later
    assert build(validator, user_id=None, **full).user_id is None


def test_properties_json_limit_for_events() -> None:
    schema = interactions(*({"name": f"C{n}", "type": ["null", "string"], "categorical": True} for n in range(5)))
    validator = InteractionValidator(schema, ValidationLimits())
    values = {f"C{n}": "v" * 190 for n in range(5)}  # 5 * (190 + 9) = 995 chars
    props = build(validator, values=values).event["properties"]
    assert len(props) <= 1024
    error = fails(lambda: build(validator, values={**values, "C4": "v" * 230}), "max_length", "properties")
    assert "1024" in error.message


def test_forbidden_property_keys_are_case_insensitive() -> None:
    for name in ("SESSION_ID", "SessionID", "EVENTTYPE", "RECOMMENDATIONID", "IMPRESSION_"):
        schema = interactions({"name": name, "type": ["null", "string"], "categorical": True})
        validator = InteractionValidator(schema, ValidationLimits())
        fails(lambda v=validator, n=name: build(v, values={n: "x"}), "forbidden_property_key", name)
        build(validator)  # absent values are fine: the schema itself is valid Personalize


def test_event_size_limit_is_measured_in_utf8_bytes() -> None:
    big = "\U0001f600"
    error = fails(
        lambda: build(
            V,
            event_id=big * 256,
            event_type=big * 256,
            item_id=big * 256,
            impression=[big * 39] * 25,
            values={"DEVICE": big * 1000},
        ),
        "event_too_large",
        "event",
    )
    assert str(MAX_EVENT_BYTES) in error.message
    # the same lengths in ASCII fit easily
    build(
        V,
        event_id="e" * 256,
        event_type="t" * 256,
        item_id="i" * 256,
        impression=["x" * 39] * 25,
        values={"DEVICE": "d" * 1000},
    )


# --- items and users ---------------------------------------------------------------------------

ITEMS = load_schema(SCHEMAS / "items.json")
VI = CatalogValidator(ITEMS, ValidationLimits())
ITEM_VALUES = {"CATEGORY": ["a", "b"], "PRICE": 9, "CREATION_TIMESTAMP": int(NOW - 3 * 365 * DAY)}


def test_item_wire_record() -> None:
    update = VI.build("item-1", {**ITEM_VALUES, "DESCRIPTION": "long text " * 100}, NOW)
    assert update.entity_id == "item-1"
    assert update.record["itemId"] == "item-1"
    assert json.loads(update.record["properties"]) == {
        "category": "a|b",
        "price": 9.0,
        "creationTimestamp": ITEM_VALUES["CREATION_TIMESTAMP"],
        "description": "long text " * 100,
    }


@pytest.mark.parametrize(
    ("entity_id", "values", "rule", "field"),
    [
        ("", ITEM_VALUES, "min_length", "itemId"),
        ("i" * 257, ITEM_VALUES, "max_length", "itemId"),
        ("\ud800", ITEM_VALUES, "invalid_unicode", "itemId"),
        ("i", {**ITEM_VALUES, "PRICE": None}, "required", "PRICE"),
        (
            "i",
            {**ITEM_VALUES, "CREATION_TIMESTAMP": int(NOW - 51 * 365 * DAY)},
            "timestamp_window",
            "CREATION_TIMESTAMP",
        ),
        ("i", {**ITEM_VALUES, "CREATION_TIMESTAMP": int(NOW + 2 * DAY)}, "timestamp_window", "CREATION_TIMESTAMP"),
        ("i", {**ITEM_VALUES, "CREATION_TIMESTAMP": 1.5}, "not_integral", "CREATION_TIMESTAMP"),
        ("i", {**ITEM_VALUES, "DESCRIPTION": "d" * 20_001}, "max_length", "DESCRIPTION"),
        ("i", {**ITEM_VALUES, "DESCRIPTION": ["a"]}, "wrong_type", "DESCRIPTION"),
        ("i", {**ITEM_VALUES, "CATEGORY": "c" * 1001}, "max_length", "CATEGORY"),
        ("i", {**ITEM_VALUES, "CATEGORY": "\udfff"}, "invalid_unicode", "properties"),
    ],
)
def test_item_rules(entity_id: str, values: dict[str, Any], rule: str, field: str) -> None:
    fails(lambda: VI.build(entity_id, values, NOW), rule, field)


def test_item_textual_limit_boundary() -> None:
    VI.build("i", {**ITEM_VALUES, "DESCRIPTION": "d" * 20_000}, NOW)


def test_catalog_properties_limits() -> None:
    wide_items = catalog("Items", *({"name": f"C{n}", "type": "string", "categorical": True} for n in range(33)))
    values = {f"C{n}": "v" * 1000 for n in range(33)}  # > 33,000 chars of JSON
    fails(lambda: CatalogValidator(wide_items, ValidationLimits()).build("i", values, NOW), "max_length", "properties")
    wide_users = catalog("Users", *({"name": f"C{n}", "type": "string", "categorical": True} for n in range(25)))
    values = {f"C{n}": "v" * 1000 for n in range(25)}  # > 24,000
    users = CatalogValidator(wide_users, ValidationLimits())
    fails(lambda: users.build("u", values, NOW), "max_length", "properties")
    values = {f"C{n}": "v" * 940 for n in range(25)}  # 25 * (940 + 8) + 24 < 24,000
    assert users.build("u", values, NOW).record["userId"] == "u"


def test_users_wire_record() -> None:
    users = CatalogValidator(load_schema(SCHEMAS / "users.json"), ValidationLimits())
    update = users.build("u-1", {"MEMBERSHIP": "gold", "AGE_GROUP": None}, NOW)
    assert update.record == {"userId": "u-1", "properties": '{"membership":"gold"}'}
    fails(lambda: users.build("u-1", {"AGE_GROUP": "x"}, NOW), "required", "MEMBERSHIP")


def test_validators_refuse_the_wrong_schema_kind() -> None:
    with pytest.raises(ValueError, match="Interactions"):
        InteractionValidator(ITEMS, ValidationLimits())
    with pytest.raises(ValueError, match="Items, Users or Actions"):
        CatalogValidator(SHIPPED, ValidationLimits())


def test_rejection_value_is_truncated() -> None:
    error = fails(lambda: build(V, user_id="u" * 5000), "max_length", "userId")
    rejection = error.rejection()
    assert isinstance(rejection, Rejection)
    assert rejection.value is not None and rejection.value.startswith("u" * 200) and "+4800 chars" in rejection.value


def test_limits_are_frozen_with_documented_defaults() -> None:
    limits = ValidationLimits()
    assert limits.max_past_seconds == 2 * 365 * DAY and limits.max_future_seconds == DAY
    with pytest.raises(AttributeError):
        limits.max_past_seconds = 1  # type: ignore[misc]
    assert DatasetType.ITEMS is ITEMS.dataset_type


def test_render_survives_values_too_deep_for_repr() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    assert render(deep) == "<list nested too deeply to show>"
    assert render("x" * 300).endswith("...(+100 chars)")
