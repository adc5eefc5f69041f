"""Schema parsing: the shipped schemas, and every CreateSchema rule with the offending field named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from worker.records import DatasetType
from worker.schemas import (
    MAX_SCHEMA_CHARS,
    SchemaError,
    load_schema,
    parse_schema,
    property_key,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
INT, IT, U = DatasetType.INTERACTIONS, DatasetType.ITEMS, DatasetType.USERS
NAMES = {INT: "Interactions", IT: "Items", U: "Users"}
BASE: dict[DatasetType, list[dict[str, Any]]] = {
    INT: [
        {"name": "USER_ID", "type": "string"},
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
    ],
    IT: [{"name": "ITEM_ID", "type": "string"}, {"name": "CATEGORY", "type": "string", "categorical": True}],
    U: [{"name": "USER_ID", "type": "string"}, {"name": "MEMBERSHIP", "type": "string", "categorical": True}],
}


def text(kind: DatasetType, *extra: dict[str, Any], drop: tuple[str, ...] = (), name: str | None = None) -> str:
    fields = [f for f in BASE[kind] if f["name"] not in drop] + list(extra)
    return json.dumps(
        {
            "type": "record",
            "name": name or NAMES[kind],
            "namespace": "com.amazonaws.personalize.schema",
            "fields": fields,
            "version": "1.0",
        }
    )


def cat(name: str, nullable: bool = True) -> dict[str, Any]:
    return {"name": name, "type": ["null", "string"] if nullable else "string", "categorical": True}


@pytest.mark.parametrize("kind", list(DatasetType))
def test_shipped_schemas_parse(kind: DatasetType) -> None:
    schema = load_schema(SCHEMAS / f"{kind.value}.json", kind)
    assert schema.dataset_type is kind
    doc = json.loads((SCHEMAS / f"{kind.value}.json").read_text())
    assert doc["namespace"] == "com.amazonaws.personalize.schema" and doc["version"] == "1.0"
    assert [f.name for f in schema.fields] == [f["name"] for f in doc["fields"]]
    # Action interactions need no metadata field (the shipped one has none); the others carry one.
    assert schema.custom or kind is DatasetType.ACTION_INTERACTIONS
    # without `expected`, the dataset type comes from the record name
    assert parse_schema(schema.text).dataset_type is kind


def test_interactions_schema_fields() -> None:
    schema = load_schema(SCHEMAS / "interactions.json")
    device = schema.field("DEVICE")
    assert device is not None
    assert (device.avro_type, device.nullable, device.categorical, device.reserved) == ("string", True, True, False)
    assert device.types == ("null", "string")
    assert [f.name for f in schema.custom] == ["DEVICE"]
    event_value = schema.field("EVENT_VALUE")
    assert event_value is not None and event_value.reserved and event_value.nullable
    assert schema.field("NOPE") is None


def test_items_and_users_fields() -> None:
    items = load_schema(SCHEMAS / "items.json")
    description = items.field("DESCRIPTION")
    assert description is not None and description.textual and not description.categorical
    created = items.field("CREATION_TIMESTAMP")
    assert created is not None and created.reserved and created.avro_type == "long"
    users = load_schema(SCHEMAS / "users.json")
    assert {f.name for f in users.custom} == {"MEMBERSHIP", "AGE_GROUP"}


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("NUMBER_OF_RATINGS", "numberOfRatings"),
        ("CREATION_TIMESTAMP", "creationTimestamp"),
        ("MEMBERSHIP_TYPE", "membershipType"),
        ("DEVICE", "device"),
        ("AGE_GROUP", "ageGroup"),
        ("GENRES_FIELD_1", "genresField1"),
        ("deviceType", "deviceType"),
        ("Price", "price"),
    ],
)
def test_property_key(name: str, key: str) -> None:
    assert property_key(name) == key
    assert load_schema(SCHEMAS / "items.json").property_key(name) == key


@pytest.mark.parametrize(
    "doc",
    [
        text(INT, *(cat(f"C{n}") for n in range(5))),  # exactly the interactions cap
        text(U, *({"name": f"M{n}", "type": "int"} for n in range(24))),  # 25 with MEMBERSHIP
        text(IT, *({"name": f"M{n}", "type": "float"} for n in range(99))),  # 100 with CATEGORY
        text(IT, {"name": "CREATION_TIMESTAMP", "type": "long"}, drop=("CATEGORY",)),
        text(INT, {"name": "EVENT_VALUE", "type": ["float", "null"]}, {"name": "EVENT_TYPE", "type": "string"}),
        text(INT, {"name": "EVENT_ATTRIBUTION_SOURCE", "type": ["null", "string"]}),
        text(U, {"name": "ACTIVE", "type": "boolean"}, {"name": "SCORE", "type": ["null", "double"]}),
        text(IT, {"name": "DESCRIPTION", "type": ["null", "string"], "textual": True}),
    ],
)
def test_valid_edge_schemas_parse(doc: str) -> None:
    parse_schema(doc)


TOO_LONG = text(IT, {"name": "PAD", "type": "int", "doc": "x" * MAX_SCHEMA_CHARS})

# (case id, schema text, expected dataset type, field the error must name, a word of the fix)
REJECTED: list[tuple[str, str, DatasetType | None, str, str]] = [
    (
        "nested_record",
        text(IT, {"name": "ADDRESS", "type": {"type": "record", "name": "A", "fields": []}}),
        None,
        "ADDRESS",
        "flat",
    ),
    ("array", text(IT, {"name": "GENRES", "type": {"type": "array", "items": "string"}}), None, "GENRES", "|"),
    ("map", text(IT, {"name": "ATTRS", "type": {"type": "map", "values": "string"}}), None, "ATTRS", "primitive"),
    (
        "enum",
        text(U, {"name": "COLOR", "type": {"type": "enum", "name": "C", "symbols": ["R"]}}),
        None,
        "COLOR",
        "primitive",
    ),
    ("array_by_name", text(U, {"name": "TAGS", "type": "array"}), None, "TAGS", "flat"),
    (
        "union_with_array",
        text(U, {"name": "TAGS", "type": ["null", {"type": "array", "items": "string"}]}),
        None,
        "TAGS",
        "flat",
    ),
    ("unknown_type", text(U, {"name": "WHEN", "type": "timestamp"}), None, "WHEN", "use one of"),
    ("bytes_type", text(U, {"name": "BLOB", "type": "bytes"}), None, "BLOB", "use one of"),
    ("null_only", text(U, {"name": "NOTHING", "type": "null"}), None, "NOTHING", '["null"'),
    ("missing_type", text(U, {"name": "UNTYPED"}), None, "UNTYPED", "type"),
    ("two_type_union", text(U, {"name": "MIXED", "type": ["string", "int"]}), None, "MIXED", "nullable"),
    (
        "duplicate_ignoring_underscores",
        text(IT, cat("GENRES_FIELD_1"), cat("GENRESFIELD1")),
        None,
        "GENRESFIELD1",
        "rename",
    ),
    ("duplicate_ignoring_case", text(INT, cat("DEVICE"), cat("Device")), None, "Device", "rename"),
    ("dash_in_name", text(U, cat("PRICE-USD")), None, "PRICE-USD", "alphanumeric"),
    ("digit_first", text(U, cat("1ST_VISIT")), None, "1ST_VISIT", "start with a letter"),
    ("non_ascii_name", text(U, cat("GRÖSSE")), None, "GRÖSSE", "ASCII"),
    ("missing_user_id", text(INT, drop=("USER_ID",)), None, "USER_ID", "add"),
    ("missing_item_id", text(INT, drop=("ITEM_ID",)), None, "ITEM_ID", "add"),
    ("missing_timestamp", text(INT, drop=("TIMESTAMP",)), None, "TIMESTAMP", '"long"'),
    ("items_missing_item_id", text(IT, drop=("ITEM_ID",)), None, "ITEM_ID", "add"),
    (
        "timestamp_int",
        text(INT, drop=("TIMESTAMP",)).replace('"fields": [', '"fields": [{"name": "TIMESTAMP", "type": "int"}, '),
        None,
        "TIMESTAMP",
        '"long"',
    ),
    (
        "timestamp_nullable",
        text(INT, drop=("TIMESTAMP",)).replace(
            '"fields": [', '"fields": [{"name": "TIMESTAMP", "type": ["null", "long"]}, '
        ),
        None,
        "TIMESTAMP",
        "nullable",
    ),
    (
        "user_id_int",
        text(U, drop=("USER_ID",)).replace('"fields": [', '"fields": [{"name": "USER_ID", "type": "int"}, '),
        None,
        "USER_ID",
        '"string"',
    ),
    (
        "event_value_double",
        text(INT, {"name": "EVENT_VALUE", "type": ["null", "double"]}),
        None,
        "EVENT_VALUE",
        '"float"',
    ),
    (
        "event_type_categorical",
        text(INT, {"name": "EVENT_TYPE", "type": "string", "categorical": True}),
        None,
        "EVENT_TYPE",
        "remove",
    ),
    (
        "impression_textual",
        text(INT, {"name": "IMPRESSION", "type": ["null", "string"], "textual": True}),
        None,
        "IMPRESSION",
        "textual",
    ),
    (
        "creation_timestamp_string",
        text(IT, {"name": "CREATION_TIMESTAMP", "type": "string"}),
        None,
        "CREATION_TIMESTAMP",
        '"long"',
    ),
    (
        "reserved_lower_case",
        text(INT, {"name": "event_value", "type": ["null", "float"]}),
        None,
        "event_value",
        "EVENT_VALUE",
    ),
    ("plain_custom_string", text(U, {"name": "CITY", "type": "string"}), None, "CITY", "categorical"),
    ("plain_custom_string_items", text(IT, {"name": "COLOR", "type": "string"}), None, "COLOR", "textual"),
    ("textual_in_users", text(U, {"name": "BIO", "type": "string", "textual": True}), None, "BIO", "Items"),
    ("textual_in_interactions", text(INT, {"name": "NOTE", "type": "string", "textual": True}), None, "NOTE", "Items"),
    (
        "categorical_and_textual",
        text(IT, {"name": "X", "type": "string", "textual": True, "categorical": True}),
        None,
        "X",
        "drop one",
    ),
    ("categorical_int", text(U, {"name": "AGE", "type": "int", "categorical": True}), None, "AGE", "drop"),
    ("flag_not_bool", text(U, {"name": "TIER", "type": "string", "categorical": "yes"}), None, "TIER", "true or false"),
    ("users_without_metadata", text(U, drop=("MEMBERSHIP",)), None, "USER_ID", "metadata"),
    ("items_without_metadata", text(IT, drop=("CATEGORY",)), None, "ITEM_ID", "metadata"),
    ("interactions_6_custom", text(INT, *(cat(f"C{n}") for n in range(6))), None, "C5", "at most 5"),
    ("users_26_metadata", text(U, *({"name": f"M{n}", "type": "int"} for n in range(25))), None, "M24", "at most 25"),
    (
        "items_101_metadata",
        text(IT, *({"name": f"M{n}", "type": "int"} for n in range(100))),
        None,
        "M99",
        "at most 100",
    ),
    (
        "two_textual",
        text(
            IT,
            {"name": "T1", "type": "string", "textual": True},
            {"name": "T2", "type": ["null", "string"], "textual": True},
        ),
        None,
        "T2",
        "textual",
    ),
]


@pytest.mark.parametrize(("doc", "expected", "field", "fix"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_rejected_schemas_name_the_field(doc: str, expected: DatasetType | None, field: str, fix: str) -> None:
    with pytest.raises(SchemaError) as info:
        parse_schema(doc, expected)
    assert info.value.field == field
    assert field in str(info.value)
    assert fix in str(info.value)


def test_rejected_case_count() -> None:
    assert len(REJECTED) >= 15
    assert len({r[0] for r in REJECTED}) == len(REJECTED)


@pytest.mark.parametrize(
    ("doc", "expected", "needle"),
    [
        ("{not json", None, "not JSON"),
        ("[]", None, "Avro record"),
        ('{"type": "enum", "name": "Users"}', None, "Avro record"),
        (text(U, name="Customers"), None, "Customers"),
        (text(U, name="Recommenders"), None, "supported"),
        (text(U), IT, '"Items"'),
        (json.dumps({"type": "record", "name": "Users", "fields": []}), None, "fields"),
        (json.dumps({"type": "record", "name": "Users", "fields": ["USER_ID"]}), None, "fields[0]"),
        (TOO_LONG, None, str(MAX_SCHEMA_CHARS)),
    ],
)
def test_rejected_documents(doc: str, expected: DatasetType | None, needle: str) -> None:
    with pytest.raises(SchemaError, match=None) as info:
        parse_schema(doc, expected)
    assert needle in str(info.value)


def test_load_schema_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "users.json"
    bad.write_text(text(U, {"name": "CITY", "type": "string"}))
    with pytest.raises(SchemaError) as info:
        load_schema(bad)
    assert str(bad) in str(info.value) and info.value.field == "CITY"
    with pytest.raises(SchemaError, match="cannot read"):
        load_schema(tmp_path / "missing.json")
    (tmp_path / "latin1.json").write_bytes(b"\xff\xfe")
    with pytest.raises(SchemaError, match="cannot read"):
        load_schema(tmp_path / "latin1.json")
