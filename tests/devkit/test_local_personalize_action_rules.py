"""Actions / Action interactions rules of the local Personalize (pure, plus the store on a temp dir).

Schemas as CreateSchema checks them, PutActionInteractions rules beyond the model, and the
action tables of the events store (upsert, eventId dedupe, DeleteDataset, restart).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from clickstream_devkit.personalize.action_store import ActionInteractionRow
from clickstream_devkit.personalize.actions_api import action_interaction_row
from clickstream_devkit.personalize.control.action_schemas import (
    ACTION_INTERACTIONS,
    ACTIONS,
    is_action_schema,
    parse_action_schema,
    record_name,
)
from clickstream_devkit.personalize.control.schemas_api import schema_type
from clickstream_devkit.personalize.errors import ApiError
from clickstream_devkit.personalize.events_api import catalog_records
from clickstream_devkit.personalize.store import Store

from tests.helpers import REPO_ROOT
from worker.schemas import MAX_SCHEMA_CHARS, SchemaError

ID = {"name": "ACTION_ID", "type": "string"}
AI_REQUIRED = [
    {"name": "USER_ID", "type": "string"},
    {"name": "ACTION_ID", "type": "string"},
    {"name": "EVENT_TYPE", "type": "string"},
    {"name": "TIMESTAMP", "type": "long"},
]


def actions(*fields: dict[str, Any]) -> str:
    return json.dumps({"type": "record", "name": "Actions", "fields": [ID, *fields]})


def action_interactions(*fields: dict[str, Any]) -> str:
    return json.dumps({"type": "record", "name": "ActionInteractions", "fields": [*AI_REQUIRED, *fields]})


# -- schemas ---------------------------------------------------------------------------------------


def test_the_shipped_default_schemas_parse() -> None:
    shipped = parse_action_schema((REPO_ROOT / "schemas" / "actions.json").read_text())
    assert (shipped.dataset_type, shipped.name) == (ACTIONS, "Actions")
    assert [f.name for f in shipped.fields] == ["ACTION_ID", "VALUE", "MEMBERSHIP_LEVEL", "CREATION_TIMESTAMP",
                                                "EXPIRATION_TIMESTAMP", "REPEAT_FREQUENCY"]  # fmt: skip
    assert [f.name for f in shipped.custom] == ["MEMBERSHIP_LEVEL"]
    assert shipped.by_name["MEMBERSHIP_LEVEL"].categorical and shipped.by_name["VALUE"].nullable
    assert shipped.by_name["MEMBERSHIP_LEVEL"].key == "membershipLevel"
    ai = parse_action_schema((REPO_ROOT / "schemas" / "action_interactions.json").read_text())
    assert (ai.dataset_type, ai.name) == (ACTION_INTERACTIONS, "ActionInteractions")
    assert [f.name for f in ai.fields if not f.nullable] == ["USER_ID", "ACTION_ID", "EVENT_TYPE", "TIMESTAMP"]
    assert ai.custom == ()


def test_the_guides_examples_parse() -> None:
    parse_action_schema(action_interactions())  # "only the required fields"
    parse_action_schema(actions({"name": "VALUE", "type": ["null", "long"]},
                                {"name": "MEMBERSHIP_LEVEL", "type": ["null", "string"], "categorical": True},
                                {"name": "CREATION_TIMESTAMP", "type": "long"},
                                {"name": "REPEAT_FREQUENCY", "type": ["null", "long"]}))  # fmt: skip


@pytest.mark.parametrize(
    ("text", "field", "needle"),
    [
        (actions(), "ACTION_ID", "at least one metadata field besides ACTION_ID"),
        (json.dumps({"type": "record", "name": "Actions", "fields": [{"name": "VALUE", "type": "long"}]}),
         "ACTION_ID", "Actions schemas require it"),
        (actions({"name": "VALUE", "type": "string"}), "VALUE", 'must have type "long"'),
        (actions({"name": "EXPIRATION_TIMESTAMP", "type": "int"}), "EXPIRATION_TIMESTAMP", 'type "long"'),
        (actions({"name": "VALUE", "type": "long", "categorical": True}), "VALUE", "wrong categorical flag"),
        (actions({"name": "value", "type": "long"}), "value", "rename it to VALUE"),
        (actions({"name": "NOTE", "type": "string", "textual": True}), "NOTE", "allowed only in Items"),
        (actions({"name": "N", "type": "long", "categorical": True}), "N", "string fields only"),
        (actions({"name": "N", "type": "long", "categorical": "yes"}), "N", "must be true or false"),
        (actions({"name": "N", "type": ["string", "long"]}), "N", "nullable union"),
        (actions({"name": "N", "type": ["null"]}), "N", "nullable union"),
        (actions({"name": "N", "type": {"type": "array", "items": "string"}}), "N", "primitive type"),
        (actions({"name": "N", "type": "bytes"}), "N", "unsupported Avro type 'bytes'"),
        (actions({"name": "1N", "type": "long"}), "1N", "start with a letter"),
        (actions({"name": "NÉ", "type": "long"}), "NÉ", "ASCII alphanumeric"),
        (actions({"name": "A_B", "type": "long"}, {"name": "ab", "type": "long"}), "ab", "duplicates 'A_B'"),
        (actions(*[{"name": f"F{i}", "type": "long"} for i in range(11)]), "F10", "at most 10"),
        (action_interactions({"name": "EVENT_TYPE2", "type": "string"}, {"name": "TIMESTAMP", "type": "long"}),
         "TIMESTAMP", "duplicates 'TIMESTAMP'"),
        (json.dumps({"type": "record", "name": "ActionInteractions", "fields": AI_REQUIRED[1:]}), "USER_ID",
         "ActionInteractions schemas require it"),
        (action_interactions().replace('"TIMESTAMP", "type": "long"', '"TIMESTAMP", "type": ["null", "long"]'),
         "TIMESTAMP", "cannot be nullable"),
        (action_interactions({"name": "IMPRESSION", "type": ["null", "long"]}), "IMPRESSION", 'type "string"'),
        (action_interactions().replace('"EVENT_TYPE", "type": "string"',
                                       '"EVENT_TYPE", "type": "string", "categorical": true'),
         "EVENT_TYPE", "wrong categorical flag"),
    ],
)  # fmt: skip
def test_each_rule_names_the_field(text: str, field: str, needle: str) -> None:
    with pytest.raises(SchemaError) as caught:
        parse_action_schema(text)
    assert caught.value.field == field
    assert needle in str(caught.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{", "not JSON"),
        ("[]", "must be an Avro record"),
        (json.dumps({"type": "record", "name": "ActionInteraction", "fields": AI_REQUIRED}), "not an action dataset"),
        (json.dumps({"type": "record", "name": "Actions", "fields": []}), 'non-empty "fields"'),
        (json.dumps({"type": "record", "name": "Actions", "fields": ["ACTION_ID"]}), "fields[0] must be an object"),
        (actions({"name": "X" * MAX_SCHEMA_CHARS, "type": "long"}), "CreateSchema accepts at most"),
    ],
)
def test_malformed_schemas(text: str, needle: str) -> None:
    with pytest.raises(SchemaError) as caught:
        parse_action_schema(text)
    assert needle in str(caught.value)


def test_permissive_where_the_guide_is_silent() -> None:
    """Nullable CREATION_TIMESTAMP, TYPE with or without categorical, plain custom strings, no cap on AI."""
    parsed = parse_action_schema(actions({"name": "CREATION_TIMESTAMP", "type": ["null", "long"]},
                                         {"name": "TYPE", "type": ["null", "string"], "categorical": True},
                                         {"name": "TITLE", "type": "string"}))  # fmt: skip
    assert parsed.by_name["CREATION_TIMESTAMP"].nullable and not parsed.by_name["TITLE"].categorical
    parse_action_schema(actions({"name": "TYPE", "type": "string"}))
    parse_action_schema(actions(*[{"name": f"F{i}", "type": "long"} for i in range(10)]))  # 10 besides the ID
    parse_action_schema(action_interactions(*[{"name": f"F{i}", "type": "double"} for i in range(20)]))


def test_schema_type_dispatches_on_the_record_name() -> None:
    assert record_name(action_interactions()) == "ActionInteractions"
    assert record_name("nope") is None and record_name("[1]") is None
    assert is_action_schema(actions({"name": "V", "type": "long"}))
    assert not is_action_schema((REPO_ROOT / "schemas" / "items.json").read_text())
    assert schema_type(action_interactions()) == "action_interactions"
    assert schema_type((REPO_ROOT / "schemas" / "users.json").read_text()) == "users"
    with pytest.raises(SchemaError, match="not a supported dataset type"):
        schema_type(json.dumps({"type": "record", "name": "Recommenders", "fields": [ID]}))


# -- PutActions / PutActionInteractions rules --------------------------------------------------------


def raw(**extra: Any) -> dict[str, Any]:
    return {"actionId": "a1", "sessionId": "s1", "timestamp": 1_700_000_000, "eventType": "Taken", **extra}


@pytest.mark.parametrize("event_type", ["Taken", "Not Taken", "Viewed", "not taken", "VIEWED", "Not taken"])
def test_documented_event_types_in_any_case(event_type: str) -> None:
    assert action_interaction_row(0, raw(eventType=event_type)).event_type == event_type  # stored as sent


@pytest.mark.parametrize(
    ("extra", "rule"),
    [
        ({"eventType": "click"}, "action_event_type"),
        ({"eventType": "NotTaken"}, "action_event_type"),
        ({"properties": "{bad"}, "properties_not_json"),
        ({"properties": '"text"'}, "properties_not_object"),
        ({"properties": '{"Timestamp": 1}'}, "forbidden_property_key"),
        ({"properties": '{"impression": "a|b"}'}, "forbidden_property_key"),
    ],
)
def test_rules_beyond_the_model(extra: dict[str, Any], rule: str) -> None:
    with pytest.raises(ApiError) as caught:
        action_interaction_row(3, raw(**extra))
    assert (caught.value.code, caught.value.rule) == ("InvalidInputException", rule)
    assert "actionInteractions.3." in caught.value.message


def test_row_fields_and_a_generated_event_id() -> None:
    row = action_interaction_row(0, raw(userId="u1", recommendationId="r1", impression=["a1", "a2"],
                                        properties='{"numberOfActions": "2"}'))  # fmt: skip
    assert (row.user_id, row.recommendation_id, row.impression, row.timestamp) == ("u1", "r1", ("a1", "a2"), 1.7e9)
    assert len(row.event_id) == 36
    assert action_interaction_row(0, raw(eventId="e1")).event_id == "e1"


def test_put_actions_records_need_json_object_properties() -> None:
    assert catalog_records([{"actionId": "a", "properties": '{"value": "1"}'}, {"actionId": "b"}], "actions",
                           "actionId") == [("a", '{"value": "1"}'), ("b", None)]  # fmt: skip
    with pytest.raises(ApiError) as caught:
        catalog_records([{"actionId": "a"}, {"actionId": "b", "properties": "[]"}], "actions", "actionId")
    assert "'actions.1.properties'" in caught.value.message


# -- the action tables ---------------------------------------------------------------------------------


def row(event_id: str, user: str | None = "u1", session: str = "s1") -> ActionInteractionRow:
    return ActionInteractionRow(event_id, user, session, "a1", "Taken", 1.7e9, None, None, None)


def test_action_tables_upsert_dedupe_delete_and_restart(tmp_path: Path) -> None:
    store = Store(tmp_path)
    tables = store.actions
    store.register_dataset("arn:x:dataset/G/ACTIONS", "Actions", "arn:x:dataset-group/G")
    store.register_dataset("arn:x:dataset/G/ACTION_INTERACTIONS", "action_interactions", "arn:x:dataset-group/G")
    tables.register_tracker("t1", "arn:x:dataset/G/ACTION_INTERACTIONS", "arn:x:dataset-group/G")
    tables.register_tracker("bare")
    tables.upsert_actions("arn:x:dataset/G/ACTIONS", [("a", '{"v": 1}'), ("b", None)], 1.0)
    tables.upsert_actions("arn:x:dataset/G/ACTIONS", [("a", '{"v": 2}')], 2.0)
    assert [(r["actionId"], r["properties"]) for r in tables.list_actions(None, 10, 0)] == [("a", '{"v": 2}'),
                                                                                          ("b", None)]  # fmt: skip
    assert tables.insert_interactions("t1", [row("e1"), row("e2"), row("e1")], 5.0) == 2
    assert tables.insert_interactions("t1", [row("e2"), row("e3")], 6.0) == 1
    assert tables.insert_interactions("bare", [row("e1")], 6.0) == 1  # dedupe is per tracker
    assert [r["eventId"] for r in tables.list_interactions("t1", 10, 0)] == ["e1", "e2", "e3"]
    assert tables.list_interactions(None, 2, 1)[0]["eventId"] == "e2"
    assert tables.group_tracking_ids("arn:x:dataset-group/G") == ["t1"]
    assert store.counts() == {"events": 0, "items": 0, "users": 0, "actions": 2, "action_interactions": 4}
    store.close()

    store = Store(tmp_path)  # a restart: registrations and the eventId memory come back
    assert {t.tracking_id: t.dataset_arn for t in store.actions.trackers()} == {
        "t1": "arn:x:dataset/G/ACTION_INTERACTIONS", "bare": None}  # fmt: skip
    assert store.actions.insert_interactions("t1", [row("e3")], 7.0) == 0
    store.unregister_dataset("arn:x:dataset/G/ACTION_INTERACTIONS")
    assert store.actions.tracker("t1") is None and store.actions.list_interactions("t1", 10, 0) == []
    assert store.actions.insert_interactions("t1", [row("e1")], 8.0) == 1  # forgotten with the dataset
    store.unregister_dataset("arn:x:dataset/G/ACTIONS")
    assert store.actions.list_actions(None, 10, 0) == []
    store.close()
