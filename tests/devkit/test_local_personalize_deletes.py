"""Delete* operations of the local Personalize over the wire: statuses, dependency rules, data, restarts.

Each test runs the real server as a subprocess, driven by unmodified boto3 clients
(helpers from the lifecycle tests); S3 is moto's server on loopback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.devkit.test_local_personalize_control import bulk, rows_for
from tests.devkit.test_local_personalize_lifecycle import (
    CSV_HEADER,
    ITEMS_SCHEMA,
    NO_RETRY,
    Clients,
    error_code,
    interaction_csv_rows,
    upload_csv,
)

pytestmark = pytest.mark.integration

USERS_SCHEMA = (
    '{"type": "record", "name": "Users", "namespace": "com.amazonaws.personalize.schema", "fields": ['
    '{"name": "USER_ID", "type": "string"}, {"name": "AGE", "type": "int"}], "version": "1.0"}'
)


def statuses_until_gone(describe: Callable[[], dict[str, Any]], timeout_s: float = 20.0) -> list[str]:
    """Every status Describe shows until it answers ResourceNotFoundException."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            status = describe()["status"]
        except ClientError as error:
            assert error.response["Error"]["Code"] == "ResourceNotFoundException", error.response
            return seen
        if not seen or seen[-1] != status:
            seen.append(status)
        assert time.monotonic() < deadline, f"still {status}"
        time.sleep(0.03)


def in_use(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("ResourceInUseException", 400)
    return str(error["Error"]["Message"])


def test_dependency_rules_statuses_and_data_over_the_wire(local_personalize: Any, moto_s3: str) -> None:
    lp = local_personalize(extra_args=["--fast", "--s3-endpoint-url", moto_s3])
    c = Clients(lp, config=NO_RETRY)
    cp = c.cp
    arns = c.group("del", items=True)
    group, interactions, items, tracking_id = arns["group"], arns["interactions"], arns["items"], arns["trackingId"]
    users_schema = cp.create_schema(name="del-users", schema=USERS_SCHEMA)["schemaArn"]
    users = cp.create_dataset(name="del-users", schemaArn=users_schema, datasetGroupArn=group, datasetType="Users")[
        "datasetArn"
    ]
    c.active(users)
    c.ev.put_items(datasetArn=items, items=[{"itemId": "item-1", "properties": '{"category": "x"}'}])
    c.ev.put_users(datasetArn=users, users=[{"userId": "u1", "properties": '{"age": "30"}'}])
    streamed = c.put_events(tracking_id, rows_for(30, 40))
    location = upload_csv(moto_s3, "del", "i.csv", CSV_HEADER, interaction_csv_rows(rows_for(40, 30, start=1.6e9)))
    job = cp.create_dataset_import_job(jobName="del-bulk", datasetArn=interactions,
                                       dataSource={"dataLocation": location})["datasetImportJobArn"]  # fmt: skip
    c.active(job)
    assert bulk(lp)[interactions] == 1200
    solution = c.solution(group, "del-up", "aws-user-personalization")
    version = c.version(solution)["solutionVersionArn"]
    campaign = c.campaign("del-campaign", version)
    expression = 'EXCLUDE ItemID WHERE Items.CATEGORY IN ("x")'
    filter_arn = cp.create_filter(name="del-filter", datasetGroupArn=group, filterExpression=expression)["filterArn"]

    # Every dependency the reference names blocks, with a message listing the dependents.
    message = in_use(lambda: cp.delete_dataset_group(datasetGroupArn=group))
    for dependent in (interactions, items, users, arns["tracker"], solution):
        assert dependent in message
    assert interactions in in_use(lambda: cp.delete_schema(schemaArn=arns["schema"]))
    assert campaign in in_use(lambda: cp.delete_solution(solutionArn=solution))
    lp.set_faults(training_seconds=30)
    busy = cp.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    assert busy in in_use(lambda: cp.delete_dataset(datasetArn=items))  # a training of the group is running
    cp.stop_solution_version_creation(solutionVersionArn=busy)
    assert c.wait(busy)["status"] == "CREATE STOPPED"
    lp.clear_faults()
    early = cp.create_dataset_group(name="del-early")["datasetGroupArn"]
    assert "CREATE PENDING" in in_use(lambda: cp.delete_dataset_group(datasetGroupArn=early))
    for operation, member in (("delete_campaign", "campaignArn"), ("delete_solution", "solutionArn"),
                              ("delete_event_tracker", "eventTrackerArn"), ("delete_filter", "filterArn"),
                              ("delete_dataset", "datasetArn"), ("delete_schema", "schemaArn"),
                              ("delete_dataset_group", "datasetGroupArn")):  # fmt: skip
        unknown = {member: f"arn:aws:personalize:us-east-1:123456789012:{member[:-3].lower()}/none"}
        assert error_code(lambda o=operation, u=unknown: getattr(cp, o)(**u)) == ("ResourceNotFoundException", 400)

    # A campaign: DELETE PENDING, DELETE IN_PROGRESS, gone; the runtime stops serving it at once.
    assert c.recommend(campaign, "user-1")
    assert cp.delete_campaign(campaignArn=campaign)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert error_code(lambda: c.rt.get_recommendations(campaignArn=campaign, userId="u1")) == (
        "ResourceNotFoundException",
        404,
    )
    assert in_use(lambda: cp.delete_campaign(campaignArn=campaign)).endswith("(status DELETE PENDING).")
    assert statuses_until_gone(lambda: cp.describe_campaign(campaignArn=campaign)["campaign"]) == [
        "DELETE PENDING",
        "DELETE IN_PROGRESS",
    ]
    assert cp.list_campaigns()["campaigns"] == []

    # A solution takes its versions along; the name can be used again.
    cp.delete_solution(solutionArn=solution)
    statuses_until_gone(lambda: cp.describe_solution(solutionArn=solution)["solution"])
    assert error_code(lambda: cp.describe_solution_version(solutionVersionArn=version)) == (
        "ResourceNotFoundException",
        400,
    )
    assert c.solution(group, "del-up", "aws-popularity-count") == solution

    # A tracker: PutEvents refuses its ID at once; what it delivered stays the group's data.
    cp.delete_event_tracker(eventTrackerArn=arns["tracker"])
    assert error_code(
        lambda: c.ev.put_events(trackingId=tracking_id, sessionId="s", eventList=[{"eventType": "x", "sentAt": 1.7e9}])
    ) == ("ResourceNotFoundException", 404)
    statuses_until_gone(lambda: cp.describe_event_tracker(eventTrackerArn=arns["tracker"])["eventTracker"])
    assert len(lp.events(tracking_id)) == streamed

    # Datasets: Put* answer ResourceInUse while deleting, ResourceNotFound after; the stored data goes.
    cp.delete_dataset(datasetArn=items)
    assert error_code(lambda: c.ev.put_items(datasetArn=items, items=[{"itemId": "item-2"}])) == (
        "ResourceInUseException",
        409,
    )
    statuses_until_gone(lambda: cp.describe_dataset(datasetArn=items)["dataset"])
    assert error_code(lambda: c.ev.put_items(datasetArn=items, items=[{"itemId": "item-2"}])) == (
        "ResourceNotFoundException",
        404,
    )
    assert lp.items(items) == []
    cp.delete_dataset(datasetArn=users)
    cp.delete_dataset(datasetArn=interactions)
    statuses_until_gone(lambda: cp.describe_dataset(datasetArn=users)["dataset"])
    statuses_until_gone(lambda: cp.describe_dataset(datasetArn=interactions)["dataset"])
    assert lp.users(users) == [] and lp.events(tracking_id) == [] and interactions not in bulk(lp)
    assert error_code(lambda: cp.describe_dataset_import_job(datasetImportJobArn=job)) == (
        "ResourceNotFoundException",
        400,
    )

    # The samples' "replace a dataset": the same name again, empty.
    again = cp.create_dataset(name="del-i", schemaArn=arns["schema"], datasetGroupArn=group,
                              datasetType="Interactions")["datasetArn"]  # fmt: skip
    assert again == interactions and c.active(again)["datasetArn"] == interactions
    assert interactions not in bulk(lp)
    job_again = cp.create_dataset_import_job(jobName="del-bulk", datasetArn=interactions,
                                             dataSource={"dataLocation": location})["datasetImportJobArn"]  # fmt: skip
    assert c.wait(job_again)["status"] == "ACTIVE" and bulk(lp)[interactions] == 1200

    # The group: its solutions and datasets first; its filters go with it.
    assert solution in in_use(lambda: cp.delete_dataset_group(datasetGroupArn=group))
    cp.delete_solution(solutionArn=solution)
    cp.delete_dataset(datasetArn=interactions)
    statuses_until_gone(lambda: cp.describe_dataset(datasetArn=interactions)["dataset"])
    statuses_until_gone(lambda: cp.describe_solution(solutionArn=solution)["solution"])
    cp.delete_schema(schemaArn=arns["schema"])
    assert error_code(lambda: cp.describe_schema(schemaArn=arns["schema"])) == ("ResourceNotFoundException", 400)
    assert cp.describe_filter(filterArn=filter_arn)["filter"]["status"] == "ACTIVE"
    cp.delete_dataset_group(datasetGroupArn=group)
    statuses_until_gone(lambda: cp.describe_dataset_group(datasetGroupArn=group)["datasetGroup"])
    assert error_code(lambda: cp.describe_filter(filterArn=filter_arn)) == ("ResourceNotFoundException", 400)
    assert [t for t in lp.resources() if group in (t["arn"], t["parent"])] == []


def test_a_deletion_started_before_a_crash_finishes_after_the_restart(local_personalize: Any) -> None:
    lp = local_personalize(extra_args=["--transition-seconds", "1"])
    c = Clients(lp, config=NO_RETRY)
    cp = c.cp
    group = cp.create_dataset_group(name="crash")["datasetGroupArn"]
    c.active(group)
    schema = cp.create_schema(name="crash-items", schema=ITEMS_SCHEMA)["schemaArn"]
    items = cp.create_dataset(name="crash-items", schemaArn=schema, datasetGroupArn=group, datasetType="Items")[
        "datasetArn"
    ]
    c.active(items)
    c.ev.put_items(datasetArn=items, items=[{"itemId": f"item-{i}", "properties": '{"category": "a"}'}
                                            for i in range(5)])  # fmt: skip
    cp.delete_dataset(datasetArn=items)
    lp.kill()
    lp.start()
    assert cp.describe_dataset(datasetArn=items)["dataset"]["status"] in ("DELETE PENDING", "DELETE IN_PROGRESS")
    statuses_until_gone(lambda: cp.describe_dataset(datasetArn=items)["dataset"])
    assert lp.items(items) == []
    assert error_code(lambda: c.ev.put_items(datasetArn=items, items=[{"itemId": "x"}])) == (
        "ResourceNotFoundException",
        404,
    )
    cp.delete_dataset_group(datasetGroupArn=group)
    lp.kill()
    lp.start()
    statuses_until_gone(lambda: cp.describe_dataset_group(datasetGroupArn=group)["datasetGroup"])
    lp.restart()  # gone for good: not resurrected by a later start
    assert error_code(lambda: cp.describe_dataset_group(datasetGroupArn=group)) == ("ResourceNotFoundException", 400)
