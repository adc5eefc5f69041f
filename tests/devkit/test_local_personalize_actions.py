"""Actions and Action interactions in the local Personalize, driven by unmodified boto3 clients.

The default schemas in ``schemas/`` go through CreateSchema, the two dataset types through
CreateDataset (with the action interaction tracker it creates), and PutActions /
PutActionInteractions through the events client, as the developer guide's examples do.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.devkit.test_local_personalize_lifecycle import NO_RETRY, SIMPLE_INTERACTIONS_SCHEMA, Clients, error_code
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.integration

ACTIONS_SCHEMA = (REPO_ROOT / "schemas" / "actions.json").read_text()
ACTION_INTERACTIONS_SCHEMA = (REPO_ROOT / "schemas" / "action_interactions.json").read_text()
ACCOUNT = "arn:aws:personalize:us-east-1:123456789012"
CLI_ACTIONS = f"{ACCOUNT}:dataset/Cli/ACTIONS"
NO_EVENT_TYPE = (("USER_ID", "string"), ("ACTION_ID", "string"), ("TIMESTAMP", "long"))


def schema_text(name: str, fields: list[dict[str, Any]]) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "com.amazonaws.personalize.schema",
                       "fields": fields, "version": "1.0"})  # fmt: skip


def interaction(action: str, event_type: str = "Taken", **extra: Any) -> dict[str, Any]:
    return {"actionId": action, "sessionId": "s-1", "timestamp": 1_700_000_000, "eventType": event_type, **extra}


def test_action_datasets_schemas_and_data_plane(local_personalize: Any) -> None:
    lp = local_personalize(extra_args=["--fast", "--action-tracker", "cli-trk", "--dataset", CLI_ACTIONS])
    c = Clients(lp, config=NO_RETRY)
    cp, ev = c.cp, c.ev

    # -- schemas: the shipped defaults are accepted; the documented rules name the field --------
    actions_schema = cp.create_schema(name="nba-actions", schema=ACTIONS_SCHEMA)["schemaArn"]
    ai_schema = cp.create_schema(name="nba-ai", schema=ACTION_INTERACTIONS_SCHEMA)["schemaArn"]
    assert cp.describe_schema(schemaArn=ai_schema)["schema"]["schema"] == ACTION_INTERACTIONS_SCHEMA
    bad = {
        "ActionInteractions without EVENT_TYPE": (
            schema_text("ActionInteractions", [{"name": n, "type": t} for n, t in NO_EVENT_TYPE]),
            "field EVENT_TYPE: ActionInteractions schemas require it",
        ),
        "Actions with the ID only": (
            schema_text("Actions", [{"name": "ACTION_ID", "type": "string"}]),
            "at least one metadata field besides ACTION_ID",
        ),
        "VALUE of the wrong type": (
            schema_text("Actions", [{"name": "ACTION_ID", "type": "string"}, {"name": "VALUE", "type": "string"}]),
            'field VALUE: reserved field must have type "long"',
        ),
    }
    for name, (text, needle) in bad.items():
        with pytest.raises(cp.exceptions.InvalidInputException) as caught:
            cp.create_schema(name="bad", schema=text)
        assert needle in caught.value.response["Error"]["Message"], name

    # -- datasets: the two types, their schema rules and the tracker of Action_Interactions ----
    group = cp.create_dataset_group(name="nba")["datasetGroupArn"]
    c.active(group)
    items_schema = cp.create_schema(name="nba-i", schema=SIMPLE_INTERACTIONS_SCHEMA)["schemaArn"]
    assert error_code(lambda: cp.create_dataset(name="x", schemaArn=items_schema, datasetGroupArn=group,
                                                datasetType="Actions")) == ("InvalidInputException", 400)  # fmt: skip
    actions = cp.create_dataset(name="nba-actions", schemaArn=actions_schema, datasetGroupArn=group,
                                datasetType="Actions")["datasetArn"]  # fmt: skip
    ai = cp.create_dataset(name="nba-ai", schemaArn=ai_schema, datasetGroupArn=group,
                           datasetType="action_interactions")["datasetArn"]  # fmt: skip
    assert (actions, ai) == (f"{ACCOUNT}:dataset/nba/ACTIONS", f"{ACCOUNT}:dataset/nba/ACTION_INTERACTIONS")
    assert error_code(lambda: ev.put_actions(datasetArn=actions, actions=[{"actionId": "a"}])) == (
        "ResourceInUseException", 409)  # fmt: skip
    c.active(actions)
    described = c.active(ai)
    assert described["datasetType"] == "Action_Interactions"
    tracking_id = described["trackingId"]
    listed = {d["datasetArn"]: d["datasetType"] for d in cp.list_datasets(datasetGroupArn=group)["datasets"]}
    assert listed == {actions: "Actions", ai: "Action_Interactions"}
    domain_group = cp.create_dataset_group(name="nba-vod", domain="VIDEO_ON_DEMAND")["datasetGroupArn"]
    c.active(domain_group)
    with pytest.raises(cp.exceptions.InvalidInputException) as caught:
        cp.create_dataset(name="v", schemaArn=actions_schema, datasetGroupArn=domain_group, datasetType="Actions")
    assert "custom dataset group" in caught.value.response["Error"]["Message"]

    # -- PutActions: upsert by ID, dataset errors -------------------------------------------------
    ev.put_actions(datasetArn=actions, actions=[
        {"actionId": "enroll", "properties": '{"value": "100", "membershipLevel": "Gold"}'},
        {"actionId": "install-app"}])  # fmt: skip
    ev.put_actions(datasetArn=actions, actions=[{"actionId": "enroll", "properties": '{"value": "150"}'}])
    assert [(a["actionId"], a["properties"]) for a in lp.actions(actions)] == [
        ("enroll", '{"value": "150"}'), ("install-app", None)]  # fmt: skip
    interactions_arn = f"{ACCOUNT}:dataset/nba/INTERACTIONS"
    assert error_code(lambda: ev.put_actions(datasetArn=interactions_arn, actions=[{"actionId": "a"}])) == (
        "ResourceNotFoundException", 404)  # fmt: skip
    with pytest.raises(ev.exceptions.InvalidInputException) as caught:
        ev.put_actions(datasetArn=ai, actions=[{"actionId": "a"}])
    assert "PutActions accepts only a dataset of type ACTIONS" in caught.value.response["Error"]["Message"]
    assert error_code(lambda: ev.put_actions(datasetArn=actions, actions=[{"actionId": "a", "properties": "x=1"}])) == (
        "InvalidInputException", 400)  # fmt: skip
    eleven = [{"actionId": f"a{i}"} for i in range(11)]
    assert error_code(lambda: ev.put_actions(datasetArn=actions, actions=eleven)) == ("InvalidInputException", 400)

    # -- PutActionInteractions: the dataset's tracker, documented event types, eventId dedupe ------
    ev.put_action_interactions(trackingId=tracking_id, actionInteractions=[
        interaction("enroll", "Viewed", userId="u1", eventId="e1", impression=["enroll", "install-app"]),
        interaction("enroll", "Taken", userId="u1", eventId="e2", recommendationId="rid-1",
                    properties='{"numberOfActions": "2"}'),
        interaction("install-app", "Not taken", eventId="e3")])  # fmt: skip
    ev.put_action_interactions(trackingId=tracking_id, actionInteractions=[interaction("enroll", userId="u1",
                                                                                      eventId="e2")])  # fmt: skip
    stored = lp.action_interactions(tracking_id)
    assert [(r["eventId"], r["userId"], r["eventType"]) for r in stored] == [
        ("e1", "u1", "Viewed"), ("e2", "u1", "Taken"), ("e3", None, "Not taken")]  # fmt: skip
    assert stored[0]["impression"] == ["enroll", "install-app"] and stored[1]["recommendationId"] == "rid-1"
    refusals = {
        "an undocumented event type": [interaction("enroll", "click")],
        "a forbidden properties key": [interaction("enroll", properties='{"userId": "u2"}')],
        "properties that are not an object": [interaction("enroll", properties="[1]")],
        "a recommendationId over 40 characters": [interaction("enroll", recommendationId="r" * 41)],
    }
    for what, batch in refusals.items():
        assert error_code(lambda b=batch: ev.put_action_interactions(trackingId=tracking_id, actionInteractions=b)) == (
            "InvalidInputException", 400), what  # fmt: skip
    events_tracker = cp.create_event_tracker(name="nba-trk", datasetGroupArn=group)
    c.active(events_tracker["eventTrackerArn"])
    assert error_code(lambda: ev.put_action_interactions(trackingId=events_tracker["trackingId"],
                                                         actionInteractions=[interaction("a")])) == (
        "ResourceNotFoundException", 404)  # fmt: skip
    assert error_code(lambda: ev.put_events(trackingId=tracking_id, sessionId="s",
                                            eventList=[{"eventType": "click", "sentAt": 1.7e9}])) == (
        "ResourceNotFoundException", 404)  # fmt: skip
    with pytest.raises(cp.exceptions.InvalidInputException) as caught:
        cp.create_dataset_import_job(jobName="nba-import", datasetArn=actions, dataSource={"dataLocation": "s3://b/a.csv"},
                                     roleArn="arn:aws:iam::123456789012:role/p")  # fmt: skip
    assert "not supported" in caught.value.response["Error"]["Message"]

    # -- registrations from the command line, counters, inspection --------------------------------
    ev.put_actions(datasetArn=CLI_ACTIONS, actions=[{"actionId": "cli-action"}])
    ev.put_action_interactions(trackingId="cli-trk", actionInteractions=[interaction("cli-action", eventId="c1")])
    assert {t["trackingId"]: t["datasetArn"] for t in lp.action_trackers()} == {tracking_id: ai, "cli-trk": None}
    stats = lp.stats()
    assert (stats["actions"], stats["action_interactions"], stats["duplicate_action_interactions"]) == (4, 5, 1)
    assert (stats["stored"]["actions"], stats["stored"]["action_interactions"]) == (3, 4)
    assert stats["rejected"]["InvalidInputException/action_event_type"] == 1

    # -- DeleteDataset takes the records and the tracker with it; a restart keeps the rest --------
    cp.delete_dataset(datasetArn=ai)
    deadline = time.monotonic() + 20
    while any(d["datasetArn"] == ai for d in cp.list_datasets(datasetGroupArn=group)["datasets"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert error_code(lambda: ev.put_action_interactions(trackingId=tracking_id,
                                                         actionInteractions=[interaction("a")])) == (
        "ResourceNotFoundException", 404)  # fmt: skip
    assert lp.action_interactions(tracking_id) == []
    lp.restart()
    assert [a["actionId"] for a in lp.actions()] == ["cli-action", "enroll", "install-app"]
    ev.put_action_interactions(trackingId="cli-trk", actionInteractions=[interaction("cli-action", eventId="c1")])
    assert len(lp.action_interactions("cli-trk")) == 1  # the eventId memory survives the restart
