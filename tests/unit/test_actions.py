"""Actions and action interactions, the pure parts: schemas, validation, default mappings, settings.

Delivery (wire requests, grouping and coalescing, quotas) is in test_action_delivery.py; the
end-to-end path against the local Personalize in tests/integration/test_actions_pipeline.py.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from worker.action_validation import ActionInteractionValidator, is_action_event_type
from worker.config import DEFAULT_SCHEMA_DIR
from worker.config.mapping import ActionInteractionsMapping, ActionsMapping, default_mapping, parse_mapping
from worker.config.topics import TopicSettings
from worker.mapping import EventDecoder, derived_event_id
from worker.records import CatalogUpdate, DatasetType, Interaction, Rejection, SourceRef, Stage
from worker.schemas import DatasetSchema, SchemaError, load_schema, parse_schema
from worker.validation import MAX_PROPERTIES_CHARS, CatalogValidator, ValidationError, ValidationLimits

ACT, AI = DatasetType.ACTIONS, DatasetType.ACTION_INTERACTIONS
NOW = 1_750_000_000.0
SRC = SourceRef("nba", 1, 42)
ACTIONS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/nba/ACTIONS"
SEGMENT_AI = {
    "type": "track", "messageId": "m-1", "userId": "u1", "anonymousId": "a1", "event": "Taken",
    "timestamp": "2025-06-15T15:06:40.000Z", "context": {"sessionId": "s1"},
    "properties": {"actionId": "a7", "recommendationId": "RID-1", "impression": ["a7", "a8"]},
}


def schema_text(name: str, fields: list[dict[str, Any]]) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "com.amazonaws.personalize.schema",
                       "fields": fields, "version": "1.0"})


def ai_schema(*extra: dict[str, Any]) -> DatasetSchema:
    base = [{"name": "USER_ID", "type": "string"}, {"name": "ACTION_ID", "type": "string"},
            {"name": "EVENT_TYPE", "type": "string"}, {"name": "TIMESTAMP", "type": "long"}]
    return parse_schema(schema_text("ActionInteractions", [*base, *extra]))


def shipped(kind: DatasetType) -> DatasetSchema:
    return load_schema(DEFAULT_SCHEMA_DIR / f"{kind.value}.json", kind)


def decoder(kind: DatasetType, mapping: dict[str, Any] | None = None, schema: DatasetSchema | None = None,
            limits: ValidationLimits | None = None) -> EventDecoder:
    spec = parse_mapping(kind, mapping) if mapping is not None else default_mapping(kind)
    return EventDecoder(kind, spec, schema or shipped(kind), limits or ValidationLimits())


def decode(d: EventDecoder, record: dict[str, Any] | bytes, **kw: Any) -> Any:
    value = record if isinstance(record, bytes) else json.dumps(record).encode()
    return d.decode(value, SRC, NOW, **kw)


# -- schemas ----------------------------------------------------------------------------------


def test_shipped_action_schemas_parse_with_their_reserved_fields() -> None:
    actions = shipped(ACT)
    assert [f.name for f in actions.custom] == ["MEMBERSHIP_LEVEL"]
    assert {f.name for f in actions.fields if f.reserved} == {
        "ACTION_ID", "VALUE", "CREATION_TIMESTAMP", "EXPIRATION_TIMESTAMP", "REPEAT_FREQUENCY"}
    interactions = shipped(AI)
    assert interactions.custom == ()
    assert parse_schema(interactions.text).dataset_type is AI
    with pytest.raises(SchemaError, match="record name is 'ActionInteractions' but this is a actions schema"):
        parse_schema(interactions.text, ACT)


@pytest.mark.parametrize(("fields", "needle"), [
    ([{"name": "ACTION_ID", "type": "string"}], "at least one metadata field besides ACTION_ID"),
    ([{"name": "ACTION_ID", "type": "string"}, {"name": "VALUE", "type": "string"}],
     'field VALUE: reserved field must have type "long"'),
    ([{"name": "ACTION_ID", "type": ["null", "string"]}, {"name": "VALUE", "type": ["null", "long"]}],
     "field ACTION_ID: reserved field is required and cannot be nullable"),
    ([{"name": "ACTION_ID", "type": "string"}, {"name": "DESCRIPTION", "type": "string", "textual": True}],
     '"textual" is allowed only in Items schemas'),
    ([{"name": "ACTION_ID", "type": "string"}, {"name": "value", "type": ["null", "long"]}],
     "reserved field names are upper case"),
    ([{"name": "ACTION_ID", "type": "string"}, *({"name": f"F{i}", "type": "int"} for i in range(11))],
     "field F10: 11 fields besides ACTION_ID; Actions allows at most 10"),
])
def test_actions_schema_rules(fields: list[dict[str, Any]], needle: str) -> None:
    with pytest.raises(SchemaError, match=needle.replace("(", r"\(")):
        parse_schema(schema_text("Actions", fields))


def test_actions_schema_accepts_what_the_guide_allows() -> None:
    ten = [{"name": "ACTION_ID", "type": "string"}, *({"name": f"F{i}", "type": "int"} for i in range(10))]
    assert len(parse_schema(schema_text("Actions", ten)).fields) == 11
    plain = parse_schema(schema_text("Actions", [  # non-categorical strings: imported, not trained on
        {"name": "ACTION_ID", "type": "string"}, {"name": "NOTE", "type": ["null", "string"]},
        {"name": "TYPE", "type": ["null", "string"], "categorical": True}]))
    assert plain.field("NOTE") is not None and plain.field("TYPE") is not None
    assert parse_schema(schema_text("Actions", [{"name": "ACTION_ID", "type": "string"},
                                                {"name": "TYPE", "type": "string"}])).field("TYPE") is not None
    with pytest.raises(SchemaError, match="custom string field needs"):  # other types keep their rule
        parse_schema(schema_text("Users", [{"name": "USER_ID", "type": "string"}, {"name": "N", "type": "string"}]))


@pytest.mark.parametrize(("drop", "replace", "needle"), [
    ("EVENT_TYPE", None, "field EVENT_TYPE: ActionInteractions schemas require it"),
    ("USER_ID", None, "field USER_ID: ActionInteractions schemas require it"),
    ("TIMESTAMP", {"name": "TIMESTAMP", "type": ["null", "long"]}, "field TIMESTAMP: reserved field is required"),
    ("EVENT_TYPE", {"name": "EVENT_TYPE", "type": ["null", "string"]}, "field EVENT_TYPE: reserved field is required"),
])
def test_action_interactions_schema_rules(drop: str, replace: dict[str, Any] | None, needle: str) -> None:
    doc = json.loads(shipped(AI).text)
    doc["fields"] = [f for f in doc["fields"] if f["name"] != drop] + ([replace] if replace else [])
    with pytest.raises(SchemaError, match=needle):
        parse_schema(json.dumps(doc))


# -- action interaction validation ------------------------------------------------------------


def build(validator: ActionInteractionValidator | None = None, **overrides: Any) -> Interaction:
    args: dict[str, Any] = {"event_id": "e1", "event_type": "Taken", "timestamp": NOW - 60, "session_id": "s1",
                            "user_id": "u1", "action_id": "a1", "values": {}, "now": NOW}
    args.update(overrides)
    return (validator or ActionInteractionValidator(shipped(AI), ValidationLimits())).build(**args)


def test_valid_action_interaction_is_the_wire_structure() -> None:
    built = build(recommendation_id="r" * 40, impression=["a1", "a2"])
    assert (built.session_id, built.user_id, built.event_id) == ("s1", "u1", "e1")
    assert built.event == {"eventId": "e1", "eventType": "Taken", "timestamp": NOW - 60, "sessionId": "s1",
                           "actionId": "a1", "userId": "u1", "recommendationId": "r" * 40,
                           "impression": ["a1", "a2"]}
    assert "userId" not in build(user_id=None).event  # anonymous: the session only, as in the model


@pytest.mark.parametrize("event_type", ["Taken", "Not Taken", "Viewed", "not taken", "VIEWED", "Not taken"])
def test_documented_event_types_in_any_case_are_sent_as_written(event_type: str) -> None:
    assert build(event_type=event_type).event["eventType"] == event_type
    assert is_action_event_type(event_type)


@pytest.mark.parametrize(("overrides", "rule", "field"), [
    ({"event_type": "click"}, "event_type_not_allowed", "eventType"),
    ({"event_type": "NotTaken"}, "event_type_not_allowed", "eventType"),
    ({"event_type": ""}, "min_length", "eventType"),
    ({"event_id": "e" * 257}, "max_length", "eventId"),
    ({"session_id": ""}, "min_length", "sessionId"),
    ({"session_id": "s" * 257}, "max_length", "sessionId"),
    ({"action_id": "a" * 257}, "max_length", "actionId"),
    ({"user_id": "u" * 257}, "max_length", "userId"),
    ({"recommendation_id": "r" * 41}, "max_length", "recommendationId"),
    ({"impression": [f"a{i}" for i in range(26)]}, "max_items", "impression"),
    ({"impression": ["a" * 257]}, "max_length", "impression"),
    ({"timestamp": math.inf}, "not_finite", "timestamp"),
    ({"timestamp": NOW * 1000}, "timestamp_window", "timestamp"),
    ({"timestamp": 1.0}, "timestamp_window", "timestamp"),
    ({"action_id": "a\ud800"}, "invalid_unicode", "actionId"),
])
def test_action_interaction_limits(overrides: dict[str, Any], rule: str, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        build(**overrides)
    assert (caught.value.rule.value, caught.value.field) == (rule, field)


def test_boundaries_are_accepted() -> None:
    built = build(event_id="e" * 256, session_id="s" * 256, action_id="a" * 256, user_id="u" * 256,
                  impression=[f"a{i}" for i in range(25)], timestamp=NOW + 86_400)
    assert len(built.event["impression"]) == 25


def test_custom_columns_become_properties_within_1024_chars_and_no_member_keys() -> None:
    schema = ai_schema({"name": "CHANNEL", "type": ["null", "string"], "categorical": True},
                       {"name": "NUMBER_OF_ACTIONS", "type": ["null", "int"]},
                       {"name": "SESSION_ID", "type": ["null", "string"], "categorical": True})
    v = ActionInteractionValidator(schema, ValidationLimits())
    built = build(v, values={"CHANNEL": ["email", "sms"], "NUMBER_OF_ACTIONS": 12})
    assert json.loads(built.event["properties"]) == {"channel": "email|sms", "numberOfActions": 12}
    with pytest.raises(ValidationError) as caught:
        build(v, values={"SESSION_ID": "x"})
    assert (caught.value.rule.value, caught.value.field) == ("forbidden_property_key", "SESSION_ID")
    with pytest.raises(ValidationError) as caught:
        build(v, values={"CHANNEL": "x" * 1000, "NUMBER_OF_ACTIONS": 1})  # column fits, properties do not
    assert (caught.value.rule.value, caught.value.field) == ("max_length", "properties")
    with pytest.raises(ValidationError) as caught:
        build(v, values={"NUMBER_OF_ACTIONS": 1.5})
    assert caught.value.rule.value == "not_integral"


def test_non_nullable_optional_columns_make_their_members_required() -> None:
    v = ActionInteractionValidator(ai_schema({"name": "RECOMMENDATION_ID", "type": "string"}), ValidationLimits())
    with pytest.raises(ValidationError) as caught:
        build(v)
    assert (caught.value.rule.value, caught.value.field) == ("required", "recommendationId")
    assert build(v, recommendation_id="r1").event["recommendationId"] == "r1"


def test_validators_refuse_the_other_schemas() -> None:
    with pytest.raises(ValueError, match="needs an ActionInteractions schema"):
        ActionInteractionValidator(shipped(ACT), ValidationLimits())
    with pytest.raises(ValueError, match="catalog validator"):
        CatalogValidator(shipped(AI), ValidationLimits())


# -- actions validation -----------------------------------------------------------------------


def test_action_record_and_its_time_columns() -> None:
    v = CatalogValidator(shipped(ACT), ValidationLimits())
    built = v.build("a1", {"VALUE": 100, "MEMBERSHIP_LEVEL": ["gold", "silver"], "CREATION_TIMESTAMP": int(NOW) - 10,
                           "EXPIRATION_TIMESTAMP": int(NOW) + 400 * 86_400, "REPEAT_FREQUENCY": 7}, NOW)
    assert built.entity_id == "a1" and built.record["actionId"] == "a1"
    assert json.loads(built.record["properties"]) == {
        "value": 100, "membershipLevel": "gold|silver", "creationTimestamp": int(NOW) - 10,
        "expirationTimestamp": int(NOW) + 400 * 86_400, "repeatFrequency": 7}
    assert "properties" in v.build("a1", {"CREATION_TIMESTAMP": int(NOW)}, NOW).record
    cases = [({"CREATION_TIMESTAMP": int(NOW) * 1000}, "timestamp_window", "CREATION_TIMESTAMP"),
             ({"CREATION_TIMESTAMP": None}, "required", "CREATION_TIMESTAMP"),  # not nullable in the shipped schema
             ({"CREATION_TIMESTAMP": int(NOW), "VALUE": 9.5}, "not_integral", "VALUE"),
             ({"CREATION_TIMESTAMP": int(NOW), "VALUE": "100"}, "wrong_type", "VALUE")]
    for values, rule, field in cases:
        with pytest.raises(ValidationError) as caught:
            v.build("a1", values, NOW)
        assert (caught.value.rule.value, caught.value.field) == (rule, field)
    with pytest.raises(ValidationError) as caught:
        v.build("a" * 257, {"CREATION_TIMESTAMP": int(NOW)}, NOW)
    assert (caught.value.rule.value, caught.value.field) == ("max_length", "actionId")


def test_action_properties_are_held_to_the_actions_limit_not_the_interactions_one() -> None:
    assert MAX_PROPERTIES_CHARS[ACT] == 32_000 and MAX_PROPERTIES_CHARS[AI] == 1024
    fields = [{"name": "ACTION_ID", "type": "string"}, *({"name": f"NOTE{i}", "type": "string"} for i in range(9))]
    v = CatalogValidator(parse_schema(schema_text("Actions", fields)), ValidationLimits())
    big = {f"NOTE{i}": "x" * 1000 for i in range(9)}
    assert len(v.build("a1", big, NOW).record["properties"]) > 9000
    fields = [{"name": "ACTION_ID", "type": "string"}, {"name": "NOTE", "type": "string"}]
    v = CatalogValidator(parse_schema(schema_text("Actions", fields)), ValidationLimits())
    with pytest.raises(ValidationError) as caught:
        v.build("a1", {"NOTE": "x" * 1001}, NOW)  # a non-textual string column stays at 1000
    assert (caught.value.rule.value, caught.value.field) == ("max_length", "NOTE")


# -- default mappings -------------------------------------------------------------------------


def test_default_action_mapping_reads_items_shaped_records_with_iso_or_epoch_times() -> None:
    assert isinstance(default_mapping(ACT), ActionsMapping)
    d = decoder(ACT)
    out = decode(d, {"actionId": "a1", "properties": {"value": 5, "membershipLevel": "gold",
                                                      "creationTimestamp": "2025-06-15T15:00:00Z",
                                                      "expirationTimestamp": int(NOW) + 86_400 * 30}})
    assert isinstance(out, CatalogUpdate) and out.entity_id == "a1"
    props = json.loads(out.record["properties"])
    assert props["creationTimestamp"] == 1_749_999_600 and props["expirationTimestamp"] == int(NOW) + 86_400 * 30
    nested = decode(d, {"properties": {"actionId": 7, "creationTimestamp": int(NOW)}})
    assert isinstance(nested, CatalogUpdate) and nested.entity_id == "7"
    missing = decode(d, {"properties": {"value": 1}})
    assert isinstance(missing, Rejection) and (missing.stage, missing.rule, missing.field) == (
        Stage.MAPPING, "missing", "actionId")
    assert missing.identities == ()  # action IDs are not personal data
    value = decode(d, {"actionId": "a1", "properties": {"value": 1.5, "creationTimestamp": int(NOW)}})
    assert isinstance(value, Rejection) and (value.rule, value.field) == ("not_integral", "VALUE")


def test_default_action_interactions_mapping_reads_segment_track() -> None:
    assert isinstance(default_mapping(AI), ActionInteractionsMapping)
    out = decode(decoder(AI), SEGMENT_AI)
    assert isinstance(out, Interaction)
    assert out.event == {"eventId": "m-1", "eventType": "Taken", "timestamp": 1_750_000_000.0, "sessionId": "s1",
                         "actionId": "a7", "userId": "u1", "recommendationId": "RID-1", "impression": ["a7", "a8"]}
    anonymous = decode(decoder(AI), {**SEGMENT_AI, "userId": None, "context": {}, "properties": {"actionId": "a7"}})
    assert isinstance(anonymous, Interaction) and anonymous.session_id == "a1" and anonymous.user_id is None


def test_event_ids_are_derived_exactly_like_events() -> None:
    record = {k: v for k, v in SEGMENT_AI.items() if k != "messageId"}
    value = json.dumps(record).encode()
    first = decoder(AI).decode(value, SRC, NOW, key=b"k", timestamp_ms=1_750_000_000_123)
    again = decoder(AI).decode(value, SRC, NOW, key=b"k", timestamp_ms=1_750_000_000_123)
    elsewhere = decoder(AI).decode(value, SourceRef("nba", 1, 43), NOW, key=b"k", timestamp_ms=1_750_000_000_123)
    assert isinstance(first, Interaction) and isinstance(again, Interaction) and isinstance(elsewhere, Interaction)
    assert first.event_id == again.event_id == derived_event_id(SRC, 1_750_000_000_123, b"k", value)
    assert elsewhere.event_id != first.event_id


def test_event_type_renames_and_allowed_types() -> None:
    d = decoder(AI, {"event_type_renames": {"Offer Accepted": "Taken", "Offer Shown": "Viewed"},
                     "allowed_event_types": ["Offer Accepted", "Offer Shown"]})
    shown = decode(d, {**SEGMENT_AI, "event": "Offer Shown"})
    assert isinstance(shown, Interaction) and shown.event["eventType"] == "Viewed"
    other = decode(d, {**SEGMENT_AI, "event": "Taken"})
    assert isinstance(other, Rejection) and other.rule == "event_type_not_allowed" and other.stage is Stage.VALIDATION
    unknown = decode(decoder(AI), {**SEGMENT_AI, "event": "Offer Accepted"})
    assert isinstance(unknown, Rejection) and (unknown.rule, unknown.field) == ("event_type_not_allowed", "eventType")
    assert "u1" in unknown.identities and "s1" in unknown.identities  # scrubbed from the logs


@pytest.mark.parametrize(("change", "stage", "rule", "field"), [
    ({"properties": {}}, Stage.MAPPING, "missing", "actionId"),
    ({"event": None}, Stage.MAPPING, "missing", "eventType"),
    ({"timestamp": None}, Stage.MAPPING, "missing", "timestamp"),
    ({"timestamp": "yesterday"}, Stage.MAPPING, "bad_timestamp", "timestamp"),
    ({"context": {}, "anonymousId": None}, Stage.MAPPING, "missing", "sessionId"),
    ({"properties": {"actionId": {"id": "a"}}}, Stage.MAPPING, "wrong_type", "actionId"),
    ({"properties": {"actionId": "a", "impression": 5}}, Stage.MAPPING, "wrong_type", "impression"),
    ({"timestamp": "1970-01-02T00:00:00Z"}, Stage.VALIDATION, "timestamp_window", "timestamp"),
])
def test_action_interaction_rejections(change: dict[str, Any], stage: Stage, rule: str, field: str) -> None:
    out = decode(decoder(AI), {**SEGMENT_AI, **change})
    assert isinstance(out, Rejection) and (out.stage, out.rule, out.field) == (stage, rule, field)


def test_session_fallback_and_custom_paths() -> None:
    d = decoder(AI, {"session_id_fallback_to_user_id": True, "action_id": "offer.id", "timestamp": "ts",
                     "timestamp_unit": "milliseconds"})
    out = decode(d, {"userId": "u9", "event": "viewed", "offer": {"id": "o1"}, "ts": 1_749_999_000_000})
    assert isinstance(out, Interaction)
    assert (out.session_id, out.event["actionId"], out.event["timestamp"]) == ("u9", "o1", 1_749_999_000.0)


def test_mapping_config_blocks_and_topic_settings() -> None:
    assert parse_mapping(AI, {"kind": "action_interactions"}).kind == "action_interactions"
    with pytest.raises(Exception, match=r"(?i)extra inputs"):
        parse_mapping(AI, {"item_id": "x"})
    with pytest.raises(Exception, match="preset"):
        parse_mapping(ACT, {"preset": "ga4"})
    topic = TopicSettings.model_validate({"name": "nba", "dataset_type": "action_interactions", "tracking_id": "t",
                                          "mapping": {"event_type_renames": {"accept": "Taken"}}})
    assert isinstance(topic.effective_mapping, ActionInteractionsMapping)
    assert topic.schema_path.name == "action_interactions.json"
    with pytest.raises(Exception, match=r"action_interactions: set tracking_id"):
        TopicSettings.model_validate({"name": "nba", "dataset_type": "action_interactions"})
    with pytest.raises(Exception, match="actions: set dataset_arn"):
        TopicSettings.model_validate({"name": "acts", "dataset_type": "actions", "tracking_id": "t"})
    actions = TopicSettings.model_validate({"name": "acts", "dataset_type": "actions", "dataset_arn": ACTIONS_ARN})
    assert actions.rate_scope == "nba" and isinstance(actions.effective_mapping, ActionsMapping)
