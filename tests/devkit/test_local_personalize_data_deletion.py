"""Data deletion jobs in the local Personalize, driven by unmodified boto3 clients; S3 is moto on loopback.

Shaped like the developer guide's "Deleting users" steps: a CSV file with a USER_ID column
in S3, CreateDataDeletionJob with a role ARN, DescribeDataDeletionJob until it is
COMPLETED, then a new solution version, as the guide asks after a deletion.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from tests.devkit.test_local_personalize_lifecycle import (
    CSV_HEADER,
    NO_RETRY,
    SIMPLE_INTERACTIONS_SCHEMA,
    Clients,
    error_code,
    upload_csv,
)
from tests.helpers import REPO_ROOT, write_result

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/PersonalizeRole"
USERS_SCHEMA = (REPO_ROOT / "schemas" / "users.json").read_text()
AI_SCHEMA = (REPO_ROOT / "schemas" / "action_interactions.json").read_text()
FINAL = ("COMPLETED", "FAILED")


def wait_job(cp: Any, arn: str, seen: list[str] | None = None, timeout_s: float = 30.0) -> dict[str, Any]:
    """DescribeDataDeletionJob until COMPLETED or FAILED; `seen` collects the statuses observed."""
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = cp.describe_data_deletion_job(dataDeletionJobArn=arn)["dataDeletionJob"]
        if seen is not None and (not seen or seen[-1] != job["status"]):
            seen.append(job["status"])
        if job["status"] in FINAL:
            return job
        assert time.monotonic() < deadline, f"{arn} still {job['status']} after {timeout_s}s"
        time.sleep(0.05)


def deletion_job(cp: Any, name: str, group: str, location: str) -> str:
    arn: str = cp.create_data_deletion_job(
        jobName=name, datasetGroupArn=group, dataSource={"dataLocation": location}, roleArn=ROLE
    )["dataDeletionJobArn"]
    return arn


def popular(c: Clients, campaign: str) -> list[str]:
    return c.recommend(campaign, "u1", 5)


def test_a_deleted_user_is_gone_from_every_dataset_and_from_the_next_training(
    local_personalize: Any, moto_s3: str
) -> None:
    lp = local_personalize(extra_args=["--fast", "--s3-endpoint-url", moto_s3])
    c = Clients(lp, config=NO_RETRY)
    cp, ev = c.cp, c.ev
    group = cp.create_dataset_group(name="forget")["datasetGroupArn"]
    c.active(group)
    datasets = {}
    for kind, schema in (("Interactions", SIMPLE_INTERACTIONS_SCHEMA), ("Users", USERS_SCHEMA),
                         ("Action_Interactions", AI_SCHEMA)):  # fmt: skip
        schema_arn = cp.create_schema(name=f"forget-{kind}", schema=schema)["schemaArn"]
        datasets[kind] = cp.create_dataset(name=f"forget-{kind}", schemaArn=schema_arn, datasetGroupArn=group,
                                           datasetType=kind)["datasetArn"]  # fmt: skip
    tracker = cp.create_event_tracker(name="forget-trk", datasetGroupArn=group)
    for arn in (*datasets.values(), tracker["eventTrackerArn"]):
        c.active(arn)
    action_tracking_id = cp.describe_dataset(datasetArn=datasets["Action_Interactions"])["dataset"]["trackingId"]

    # The ghost's data in every form: bulk rows, PutEvents (named and anonymous in its session),
    # a Users record, action interactions. Item "item-ghost" is theirs alone and the most popular.
    bulk_rows = [(f"u{u}", f"item-{(u * 7 + k) % 60}", 1_700_000_000 + u * 1000 + k, "click", "")
                 for u in range(40) for k in range(30)]  # fmt: skip
    bulk_rows += [("ghost", "item-ghost", 1_700_100_000 + k, "click", "") for k in range(30)]
    location = upload_csv(moto_s3, "forget", "interactions.csv", CSV_HEADER, bulk_rows)
    imported = cp.create_dataset_import_job(jobName="forget-bulk", datasetArn=datasets["Interactions"],
                                            dataSource={"dataLocation": location}, roleArn=ROLE)  # fmt: skip
    c.active(imported["datasetImportJobArn"])
    tracking_id = tracker["trackingId"]
    ghost_named = [{"eventType": "click", "itemId": "item-ghost", "sentAt": 1.71e9 + k} for k in range(60)]
    for start in range(0, 60, 10):
        batch = ghost_named[start : start + 10]
        ev.put_events(trackingId=tracking_id, userId="ghost", sessionId="s-ghost", eventList=batch)
    ev.put_events(trackingId=tracking_id, sessionId="s-ghost",  # anonymous, in the ghost's session
                  eventList=[{"eventType": "click", "itemId": "item-ghost", "sentAt": 1.72e9 + k} for k in range(4)])
    ev.put_events(trackingId=tracking_id, userId="u1", sessionId="s-u1",
                  eventList=[{"eventType": "click", "itemId": f"item-{k}", "sentAt": 1.71e9 + k} for k in range(10)])
    ev.put_users(datasetArn=datasets["Users"], users=[{"userId": "ghost", "properties": '{"membership": "gold"}'},
                                                      {"userId": "u1", "properties": '{"membership": "basic"}'}])
    ev.put_action_interactions(trackingId=action_tracking_id, actionInteractions=[
        {"actionId": "enroll", "userId": user, "sessionId": f"s-{user}", "timestamp": 1.7e9 + k, "eventType": "Viewed"}
        for user, k in (("ghost", 1), ("ghost", 2), ("ghost", 3), ("u1", 1), ("u1", 2))])  # fmt: skip

    solution = c.solution(group, "forget-pop", "aws-popularity-count")
    v1 = c.version(solution)
    assert v1["status"] == "ACTIVE", v1
    before = popular(c, c.campaign("forget-before", v1["solutionVersionArn"]))
    assert before[0] == "item-ghost"
    bulk_before = lp.bulk_counts()[datasets["Interactions"]]
    events_before = len(lp.events(tracking_id))

    # The guide's steps: a CSV of USER_IDs in S3, then CreateDataDeletionJob.
    csv_location = upload_csv(moto_s3, "forget", "deletions/users.csv", ("USER_ID",), [("ghost",), ("nobody",)])
    job_arn = deletion_job(cp, "forget-ghost", group, csv_location)
    assert job_arn == "arn:aws:personalize:us-east-1:123456789012:data-deletion-job/forget-ghost"
    seen: list[str] = []
    job = wait_job(cp, job_arn, seen)
    assert seen == ["PENDING", "IN_PROGRESS", "COMPLETED"]
    expected = {"events": 64, "actionInteractions": 3, "users": 1, "bulkInteractions": 30, "bulkUsers": 0,
                "keptAfterCutoff": 0}  # fmt: skip
    assert job["numDeleted"] == sum(v for k, v in expected.items() if k != "keptAfterCutoff") == 98
    assert (job["datasetGroupArn"], job["roleArn"], job["dataSource"]) == (group, ROLE, {"dataLocation": csv_location})
    assert "failureReason" not in job
    summary = cp.list_data_deletion_jobs(datasetGroupArn=group)["dataDeletionJobs"]
    assert [(j["dataDeletionJobArn"], j["jobName"], j["status"]) for j in summary] == [
        (job_arn, "forget-ghost", "COMPLETED")]  # fmt: skip
    [inspected] = lp.data_deletions(group)
    assert inspected["deleted"] == expected
    assert (inspected["users"], inspected["userCount"], inspected["overlapping"]) == (["ghost", "nobody"], 2, [])

    # Every store: the ghost is gone, everybody else is whole.
    events = lp.events(tracking_id)
    assert not [e for e in events if e["userId"] == "ghost" or e["sessionId"] == "s-ghost"]
    assert len(events) == events_before - 64 == 10
    assert [u["userId"] for u in lp.users(datasets["Users"])] == ["u1"]
    assert [a["userId"] for a in lp.action_interactions(action_tracking_id)] == ["u1", "u1"]
    assert lp.bulk_counts()[datasets["Interactions"]] == bulk_before - 30 == 1200

    # The guide: train a new solution version afterwards. The ghost's item is gone from it.
    v2 = c.version(solution)
    assert v2["status"] == "ACTIVE", v2
    after = popular(c, c.campaign("forget-after", v2["solutionVersionArn"]))
    assert "item-ghost" not in after
    assert after[:4] == before[1:]  # nothing else moved: the other users' data is complete
    write_result("local_personalize_data_deletion", {
        "deleted": inspected["deleted"], "numDeleted": job["numDeleted"], "statuses": seen,
        "top5_before": before, "top5_after": after, "events_before": events_before, "events_after": len(events),
    })  # fmt: skip


def test_input_files_failures_and_the_queue(local_personalize: Any, moto_s3: str) -> None:
    lp = local_personalize(extra_args=["--fast", "--s3-endpoint-url", moto_s3])
    c = Clients(lp, config=NO_RETRY)
    cp = c.cp
    group = cp.create_dataset_group(name="rules")["datasetGroupArn"]
    c.active(group)
    missing_group = group.replace("rules", "nope")

    not_found = ("ResourceNotFoundException", 400)
    assert error_code(lambda: deletion_job(cp, "j", missing_group, "s3://b/k.csv")) == not_found
    assert error_code(lambda: cp.create_data_deletion_job(jobName="j", datasetGroupArn=group, dataSource={},
                                                          roleArn=ROLE)) == ("InvalidInputException", 400)  # fmt: skip
    assert error_code(lambda: cp.create_data_deletion_job(jobName="j", datasetGroupArn=group, roleArn="not-a-role",
                                                          dataSource={"dataLocation": "s3://b/k"})) == (
        "InvalidInputException", 400)  # fmt: skip
    assert cp.list_data_deletion_jobs(datasetGroupArn=missing_group)["dataDeletionJobs"] == []
    assert error_code(lambda: cp.list_data_deletion_jobs(nextToken="garbage")) == ("InvalidNextTokenException", 400)

    inputs = {
        "missing": ("s3://rules/none.csv", "Cannot read s3://rules/none.csv: NoSuchKey"),
        "two-columns": (upload_csv(moto_s3, "rules", "two.csv", ("USER_ID", "ITEM_ID"), [("a", "b")]),
                        "must be a single USER_ID column"),
        "extra-value": (upload_csv(moto_s3, "rules", "extra.csv", ("user_id",), [("a",), ("b", "c")]),
                        "line 3 has 2 values"),
        "header-only": (upload_csv(moto_s3, "rules", "empty.csv", ("USER_ID",), []), None),
    }  # fmt: skip
    upload_csv(moto_s3, "rules", "folder/a.csv", ("USER_ID",), [("x",)])
    upload_csv(moto_s3, "rules", "folder/b.csv", ("USER_ID",), [("y",), ("x",)])
    inputs["folder"] = ("s3://rules/folder/", None)
    arns = {name: deletion_job(cp, f"rules-{name}", group, location) for name, (location, _) in inputs.items()}
    assert error_code(lambda: deletion_job(cp, "rules-missing", group, "s3://rules/x.csv")) == (
        "ResourceAlreadyExistsException", 400)  # fmt: skip
    for name, (_, reason) in inputs.items():
        job = wait_job(cp, arns[name])
        if reason is None:
            assert (job["status"], job["numDeleted"]) == ("COMPLETED", 0), job
        else:
            assert job["status"] == "FAILED" and reason in job["failureReason"], job
    inspected = lp.data_deletions(group)
    assert next(j for j in inspected if j["jobName"] == "rules-folder")["users"] == ["x", "y"]

    # One job of a group at a time, oldest first: each started after the previous one ended.
    ordered = sorted(inspected, key=lambda j: j["cutoff"])
    assert [j["jobName"] for j in ordered] == [f"rules-{name}" for name in inputs]
    ended = {a: cp.describe_data_deletion_job(dataDeletionJobArn=a)["dataDeletionJob"]["lastUpdatedDateTime"]
             for a in arns.values()}  # fmt: skip
    for previous, following in itertools.pairwise(ordered):
        assert following["cutoff"] >= ended[previous["dataDeletionJobArn"]].timestamp()

    first = cp.list_data_deletion_jobs(datasetGroupArn=group, maxResults=2)
    rest = cp.list_data_deletion_jobs(datasetGroupArn=group, nextToken=first["nextToken"])
    listed = [j["jobName"] for j in first["dataDeletionJobs"] + rest["dataDeletionJobs"]]
    assert listed == [f"rules-{name}" for name in reversed(inputs)]  # newest first


def test_pending_limit_busy_groups_and_restarts(local_personalize: Any, moto_s3: str) -> None:
    lp = local_personalize(extra_args=["--fast", "--s3-endpoint-url", moto_s3])
    c = Clients(lp, config=NO_RETRY)
    cp = c.cp
    group = cp.create_dataset_group(name="busy")["datasetGroupArn"]
    c.active(group)
    location = upload_csv(moto_s3, "busy", "users.csv", ("USER_ID",), [("u1",)])
    lp.extra_args = ["--transition-seconds", "600", "--s3-endpoint-url", moto_s3]  # nothing moves from here on
    lp.restart()
    c = Clients(lp, config=NO_RETRY)
    cp = c.cp

    jobs = [deletion_job(cp, f"busy-{i}", group, location) for i in range(5)]
    assert {cp.describe_data_deletion_job(dataDeletionJobArn=a)["dataDeletionJob"]["status"] for a in jobs} == {
        "PENDING"}  # fmt: skip
    with pytest.raises(cp.exceptions.LimitExceededException) as caught:
        deletion_job(cp, "busy-5", group, location)
    assert "More than 5 data deletion jobs with PENDING status" in caught.value.response["Error"]["Message"]
    with pytest.raises(cp.exceptions.ResourceInUseException) as caught:
        cp.delete_dataset_group(datasetGroupArn=group)
    assert "data deletion job" in caught.value.response["Error"]["Message"]
    fresh = cp.create_dataset_group(name="busy-fresh")["datasetGroupArn"]  # CREATE PENDING for 600 s
    assert error_code(lambda: deletion_job(cp, "fresh", fresh, location)) == ("ResourceInUseException", 400)

    lp.restart()  # the jobs are persisted and still wait their turn
    cp = Clients(lp, config=NO_RETRY).cp
    listed = cp.list_data_deletion_jobs(datasetGroupArn=group)["dataDeletionJobs"]
    assert sorted((j["jobName"], j["status"]) for j in listed) == [(f"busy-{i}", "PENDING") for i in range(5)]


def test_records_stored_while_a_job_runs_survive_it_and_overlaps_are_reported(
    local_personalize: Any, moto_s3: str
) -> None:
    lp = local_personalize(extra_args=["--transition-seconds", "1", "--s3-endpoint-url", moto_s3])
    c = Clients(lp, config=NO_RETRY)
    setup = c.group("late")
    tracking_id = setup["trackingId"]
    for user in ("late", "other"):
        c.ev.put_events(trackingId=tracking_id, userId=user, sessionId=f"s-{user}",
                        eventList=[{"eventType": "click", "itemId": f"i{k}", "sentAt": 1.7e9 + k} for k in range(2)])
    location = upload_csv(moto_s3, "late", "users.csv", ("USER_ID",), [("late",)])
    job_arn = deletion_job(c.cp, "late", setup["group"], location)
    solution = c.solution(setup["group"], "late-pop", "aws-popularity-count")
    training = c.cp.create_solution_version(solutionArn=solution)["solutionVersionArn"]  # against the guide's advice
    deadline = time.monotonic() + 20
    while c.cp.describe_data_deletion_job(dataDeletionJobArn=job_arn)["dataDeletionJob"]["status"] == "PENDING":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    c.ev.put_events(trackingId=tracking_id, userId="late", sessionId="s-late",  # the job is IN_PROGRESS now
                    eventList=[{"eventType": "click", "itemId": "i9", "sentAt": 1.8e9}])
    job = wait_job(c.cp, job_arn)
    assert (job["status"], job["numDeleted"]) == ("COMPLETED", 2)
    remaining = [(e["userId"], e["itemId"]) for e in lp.events(tracking_id)]
    assert remaining == [("other", "i0"), ("other", "i1"), ("late", "i9")]
    [inspected] = lp.data_deletions(setup["group"])
    assert inspected["deleted"]["keptAfterCutoff"] == 1
    assert [line.split(" (")[0] for line in inspected["overlapping"]] == [f"training {training}"]
