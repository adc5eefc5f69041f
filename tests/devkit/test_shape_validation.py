"""Model-driven request validation of the local Personalize, checked against the real botocore models."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from botocore.model import ServiceModel
from clickstream_devkit.personalize.shape_validation import (
    RequestValidator,
    Violation,
    compile_pattern,
    load_service_model,
)


@pytest.fixture(scope="module")
def events() -> RequestValidator:
    return RequestValidator(load_service_model("personalize-events"))


@pytest.fixture(scope="module")
def control() -> RequestValidator:
    return RequestValidator(load_service_model("personalize"))


def valid_put_events() -> dict[str, Any]:
    return {
        "trackingId": "tracker-1",
        "userId": "user-1",
        "sessionId": "session-1",
        "eventList": [
            {
                "eventType": "click",
                "sentAt": 1704164645.678,
                "eventId": f"e-{i}",
                "eventValue": 1.5,
                "itemId": "item-1",
                "properties": '{"device": "ios"}',
                "recommendationId": "RID-12345678-1234-1234-1234-abcdefghijkl",
                "impression": ["item-1", "item-2"],
                "metricAttribution": {"eventAttributionSource": "campaign-a"},
            }
            for i in range(10)
        ],
    }


def with_change(path: str, value: Any) -> dict[str, Any]:
    """A valid PutEvents body with the member at dotted `path` replaced (``...`` deletes it)."""
    body = valid_put_events()
    *parents, last = path.split(".")
    node: Any = body
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is ...:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return body


def test_valid_full_batch_passes(events: RequestValidator) -> None:
    assert events.validate("PutEvents", valid_put_events()) is None


@pytest.mark.parametrize(
    ("path", "value", "expected_path", "rule"),
    [
        ("trackingId", "t" * 257, "trackingId", "max_length"),
        ("trackingId", "", "trackingId", "min_length"),
        ("userId", "u" * 257, "userId", "max_length"),
        ("sessionId", ..., "sessionId", "required"),
        ("eventList", [], "eventList", "min_items"),
        ("eventList.3.sentAt", ..., "eventList.3.sentAt", "required"),
        ("eventList.3.sentAt", "2024-01-01T00:00:00Z", "eventList.3.sentAt", "type"),
        ("eventList.3.sentAt", True, "eventList.3.sentAt", "type"),
        ("eventList.3.eventValue", "4", "eventList.3.eventValue", "type"),
        ("eventList.3.properties", "x" * 1025, "eventList.3.properties", "max_length"),
        ("eventList.9.recommendationId", "r" * 41, "eventList.9.recommendationId", "max_length"),
        ("eventList.0.impression", [f"i{n}" for n in range(26)], "eventList.0.impression", "max_items"),
        ("eventList.0.impression.1", "i" * 257, "eventList.0.impression.1", "max_length"),
        ("eventList.0.impression.1", 7, "eventList.0.impression.1", "type"),
        ("eventList.2.metricAttribution", {}, "eventList.2.metricAttribution.eventAttributionSource", "required"),
        (
            "eventList.2.metricAttribution.eventAttributionSource",
            "   ",
            "eventList.2.metricAttribution.eventAttributionSource",
            "pattern",
        ),
        (
            "eventList.2.metricAttribution.eventAttributionSource",
            "caf\u00e9",
            "eventList.2.metricAttribution.eventAttributionSource",
            "pattern",
        ),
        ("eventList.4", "not-an-event", "eventList.4", "type"),
    ],
)
def test_put_events_violations_name_the_member(
    events: RequestValidator, path: str, value: Any, expected_path: str, rule: str
) -> None:
    violation = events.validate("PutEvents", with_change(path, value))
    assert violation is not None
    assert (violation.path, violation.rule) == (expected_path, rule)
    assert f"'{expected_path}'" in violation.message


def test_eleven_events_exceed_the_list_maximum(events: RequestValidator) -> None:
    body = valid_put_events()
    body["eventList"].append(copy.deepcopy(body["eventList"][0]))
    violation = events.validate("PutEvents", body)
    assert violation == Violation("eventList", "max_items", "Member must have length less than or equal to 10")


def test_first_violation_follows_model_member_order(events: RequestValidator) -> None:
    body = with_change("sessionId", "s" * 300)
    body["trackingId"] = "t" * 300
    violation = events.validate("PutEvents", body)
    assert violation is not None and violation.path == "trackingId"


def test_null_is_absent_and_unknown_members_are_ignored(events: RequestValidator) -> None:
    body = with_change("userId", None)
    body["somethingNew"] = {"x": 1}
    body["eventList"][0]["itemId"] = None
    assert events.validate("PutEvents", body) is None
    assert events.validate("PutEvents", with_change("trackingId", None)) == Violation(
        "trackingId", "required", "Member must not be null"
    )


def test_sensitive_values_are_never_echoed(events: RequestValidator) -> None:
    secret = "s3cr3t-user-" + "x" * 250
    violation = events.validate("PutEvents", with_change("userId", secret))
    assert violation is not None and violation.value is None
    assert "s3cr3t" not in violation.message
    # trackingId is not sensitive in the model, so its value helps debugging.
    shown = events.validate("PutEvents", with_change("trackingId", "visible-" + "t" * 250))
    assert shown is not None and shown.value is not None and shown.value.startswith("visible-")


def test_body_must_be_an_object(events: RequestValidator) -> None:
    violation = events.validate("PutEvents", [1, 2])
    assert violation is not None and (violation.path, violation.rule) == ("", "type")
    assert "request body" in violation.message


def test_put_items_arn_pattern_and_record_limits(events: RequestValidator) -> None:
    arn = "arn:aws:personalize:us-east-1:123456789012:dataset/G/ITEMS"
    assert events.validate("PutItems", {"datasetArn": arn, "items": [{"itemId": "i"}]}) is None
    bad_arn = events.validate("PutItems", {"datasetArn": "dataset/G/ITEMS", "items": [{"itemId": "i"}]})
    assert bad_arn is not None and (bad_arn.path, bad_arn.rule) == ("datasetArn", "pattern")
    too_long = events.validate("PutItems", {"datasetArn": arn, "items": [{"itemId": "i", "properties": "x" * 32001}]})
    assert too_long is not None and (too_long.path, too_long.rule) == ("items.0.properties", "max_length")
    users = events.validate("PutUsers", {"datasetArn": arn, "users": [{"userId": "u", "properties": "x" * 24001}]})
    assert users is not None and (users.path, users.rule) == ("users.0.properties", "max_length")
    assert (
        events.validate("PutUsers", {"datasetArn": arn, "users": [{"userId": "u", "properties": "x" * 24000}]}) is None
    )


def test_enum_and_numeric_range_from_control_plane_model(control: RequestValidator) -> None:
    domain = control.validate("CreateDatasetGroup", {"name": "g1", "domain": "RETAIL"})
    assert domain is not None and domain.rule == "enum" and "ECOMMERCE" in domain.constraint
    assert control.validate("CreateDatasetGroup", {"name": "g1", "domain": "ECOMMERCE"}) is None
    too_many = control.validate("ListDatasetGroups", {"maxResults": 101})
    assert too_many is not None and (too_many.path, too_many.rule) == ("maxResults", "max_value")
    too_few = control.validate("ListDatasetGroups", {"maxResults": 0})
    assert too_few is not None and too_few.rule == "min_value"
    assert control.validate("ListDatasetGroups", {"maxResults": 1.5}) is not None  # integer shape


def test_unicode_property_patterns_are_enforced(control: RequestValidator) -> None:
    arn = "arn:aws:personalize:us-east-1:123456789012:dataset-group/g"
    ok = {"resourceArn": arn, "tags": [{"tagKey": "Team Ä", "tagValue": "ml-1"}]}
    assert control.validate("TagResource", ok) is None
    bad = {"resourceArn": arn, "tags": [{"tagKey": "Team", "tagValue": "bell\u0007"}]}
    violation = control.validate("TagResource", bad)
    assert violation is not None and (violation.path, violation.rule) == ("tags.0.tagValue", "pattern")


def test_every_personalize_model_compiles() -> None:
    for name in ("personalize-events", "personalize", "personalize-runtime"):
        model = load_service_model(name)
        assert RequestValidator(model).operations == frozenset(model.operation_names)


def test_patterns_match_the_whole_value_and_dollar_is_strict() -> None:
    name = compile_pattern("^[a-zA-Z0-9][a-zA-Z0-9\\-_]*")
    assert name.fullmatch("abc-1_2") is not None
    assert name.fullmatch("abc!") is None  # a name is names' characters throughout
    assert name.fullmatch("x/../../..") is None
    assert name.fullmatch("-abc") is None
    strict = compile_pattern("^[a-z]+$")
    assert strict.fullmatch("abc") is not None
    assert strict.fullmatch("abc\n") is None  # Python's plain $ would accept this
    assert compile_pattern("\\p{ASCII}+").fullmatch("\u00e9") is None


def test_a_path_is_not_a_resource_name(control: RequestValidator) -> None:
    for name in ("x/../../..", "group name", "ok\n", "a" * 64):
        violation = control.validate("CreateDatasetGroup", {"name": name})
        assert violation is not None and "name" in violation.message, name
    assert control.validate("CreateDatasetGroup", {"name": "clickstream-demo_1"}) is None


SYNTHETIC = {
    "metadata": {"protocol": "rest-json", "apiVersion": "2020-01-01", "endpointPrefix": "x"},
    "operations": {"Op": {"name": "Op", "http": {"method": "POST", "requestUri": "/"}, "input": {"shape": "Node"}}},
    "shapes": {
        "Node": {
            "type": "structure",
            "required": ["name"],
            "members": {
                "name": {"shape": "Name"},
                "children": {"shape": "Nodes"},
                "labels": {"shape": "Labels"},
                "flag": {"shape": "Flag"},
                "data": {"shape": "Data"},
                "choice": {"shape": "Choice"},
            },
        },
        "Nodes": {"type": "list", "member": {"shape": "Node"}, "max": 2},
        "Labels": {"type": "map", "key": {"shape": "Name"}, "value": {"shape": "Name"}, "max": 2},
        "Name": {"type": "string", "min": 1, "max": 5},
        "Flag": {"type": "boolean"},
        "Data": {"type": "blob"},
        "Choice": {
            "type": "structure",
            "union": True,
            "members": {"a": {"shape": "Name"}, "b": {"shape": "Name"}},
        },
    },
}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"name": "root", "children": [{"name": "kid", "children": [{"name": "toolong"}]}]},
            "children.0.children.0.name",
        ),
        ({"name": "root", "children": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}, "children"),
        ({"name": "root", "labels": {"k": "v", "toolongkey": "v"}}, "labels.toolongkey"),
        ({"name": "root", "labels": {"a": "1", "b": "2", "c": "3"}}, "labels"),
        ({"name": "root", "flag": "true"}, "flag"),
        ({"name": "root", "data": 5}, "data"),
        ({"name": "root", "choice": {"a": "x", "b": "y"}}, "choice"),
        ({"name": "root", "choice": {}}, "choice"),
    ],
)
def test_synthetic_model_recursion_maps_and_unions(body: dict[str, Any], expected: str) -> None:
    validator = RequestValidator(ServiceModel(SYNTHETIC))
    violation = validator.validate("Op", body)
    assert violation is not None and violation.path == expected


def test_synthetic_model_accepts_valid_nested_input() -> None:
    validator = RequestValidator(ServiceModel(SYNTHETIC))
    body = {
        "name": "root",
        "children": [{"name": "kid", "children": [{"name": "leaf"}]}],
        "labels": {"k": "v"},
        "flag": False,
        "data": "aGk=",
        "choice": {"b": "y"},
    }
    assert validator.validate("Op", body) is None
