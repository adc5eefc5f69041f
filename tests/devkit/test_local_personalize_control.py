"""Documented control-plane rules of the local Personalize: imports, training, campaigns, runtime, faults.

Each test runs the real server as a subprocess and drives it with unmodified boto3
clients (helpers from the lifecycle tests); S3 is moto's server on loopback.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest
from clickstream_devkit.recsys.data import InteractionRow

from tests.devkit.test_local_personalize_lifecycle import (
    CSV_HEADER,
    NO_RETRY,
    RECIPE,
    Clients,
    error_code,
    interaction_csv_rows,
    upload_csv,
)
from tests.devkit.test_recsys_models import taste_rows

pytestmark = pytest.mark.integration


def rows_for(n_users: int, per_user: int, event_type: str = "click", start: float = 1.7e9) -> list[InteractionRow]:
    return [
        InteractionRow(f"u{u}", f"item-{(u * 7 + k) % 60}", start + u * 1000 + k, event_type)
        for u in range(n_users)
        for k in range(per_user)
    ]


def bulk(lp: Any) -> dict[str, int]:
    with urllib.request.urlopen(lp.endpoint_url + "/_local/bulk", timeout=10) as response:
        counts: dict[str, int] = json.loads(response.read())
    return counts


def test_import_jobs_full_incremental_and_failures(local_personalize: Any, moto_s3: str) -> None:
    lp = local_personalize(extra_args=["--fast", "--s3-endpoint-url", moto_s3])
    c = Clients(lp, config=NO_RETRY)
    arns = c.group("imp", items=True)
    interactions = arns["interactions"]

    def job(name: str, location: str, mode: str = "FULL", dataset: str = interactions) -> dict[str, Any]:
        arn = c.cp.create_dataset_import_job(
            jobName=name, datasetArn=dataset, dataSource={"dataLocation": location}, importMode=mode
        )["datasetImportJobArn"]
        return c.wait(arn)

    good = upload_csv(moto_s3, "imp", "good.csv", CSV_HEADER, interaction_csv_rows(rows_for(40, 30)))
    assert error_code(
        lambda: c.cp.create_dataset_import_job(
            jobName="too-early", datasetArn=interactions, dataSource={"dataLocation": good}, importMode="INCREMENTAL"
        )
    ) == ("InvalidInputException", 400)

    bad_rows = [*interaction_csv_rows(rows_for(40, 30))]
    bad_rows[5] = ("u1", "item-1", "yesterday", "click", "")
    bad = upload_csv(moto_s3, "imp", "bad.csv", CSV_HEADER, bad_rows)
    failed = job("bad", bad)
    assert failed["status"] == "CREATE FAILED"
    assert "line 7, field TIMESTAMP: 'yesterday' is not a long" in failed["failureReason"]
    small = upload_csv(moto_s3, "imp", "small.csv", CSV_HEADER, interaction_csv_rows(rows_for(9, 111)))
    assert "at least 1000" in job("small", small)["failureReason"]
    assert "NoSuchKey" in job("missing", "s3://imp/none.csv")["failureReason"]
    swapped = upload_csv(moto_s3, "imp", "swapped.csv", CSV_HEADER[::-1], interaction_csv_rows(rows_for(40, 30)))
    assert "does not match the schema fields" in job("swapped", swapped)["failureReason"]

    streamed = c.put_events(arns["trackingId"], rows_for(3, 10, start=1.8e9))
    assert job("full-1", good)["status"] == "ACTIVE"
    assert bulk(lp)[interactions] == 1200
    more = upload_csv(moto_s3, "imp", "more.csv", CSV_HEADER, interaction_csv_rows(rows_for(50, 20)))
    assert job("incr-1", more, "INCREMENTAL")["status"] == "ACTIVE"
    assert bulk(lp)[interactions] == 2200
    assert job("full-2", more)["status"] == "ACTIVE"  # FULL replaces the bulk data …
    assert bulk(lp)[interactions] == 1000
    assert len(lp.events(arns["trackingId"])) == streamed  # … and keeps what was streamed

    # Items: a folder (prefix ending in /) is read whole; INCREMENTAL replaces by ID.
    upload_csv(moto_s3, "imp", "items/a.csv", ("ITEM_ID", "CATEGORY"), [(f"item-{i}", "x") for i in range(30)])
    upload_csv(moto_s3, "imp", "items/b.csv", ("ITEM_ID", "CATEGORY"), [(f"item-{i}", "y") for i in range(30, 50)])
    assert job("items-full", "s3://imp/items/", dataset=arns["items"])["status"] == "ACTIVE"
    assert bulk(lp)[arns["items"]] == 50
    upload_csv(moto_s3, "imp", "items2.csv", ("ITEM_ID", "CATEGORY"), [("item-1", "z"), ("item-99", "z")])
    assert job("items-incr", "s3://imp/items2.csv", "INCREMENTAL", arns["items"])["status"] == "ACTIVE"
    assert bulk(lp)[arns["items"]] == 51

    listed = c.cp.list_dataset_import_jobs(datasetArn=interactions, maxResults=4)
    assert len(listed["datasetImportJobs"]) == 4 and listed["nextToken"]
    rest = c.cp.list_dataset_import_jobs(datasetArn=interactions, nextToken=listed["nextToken"])["datasetImportJobs"]
    names = [j["jobName"] for j in listed["datasetImportJobs"] + rest]
    assert names == ["full-2", "incr-1", "full-1", "swapped", "missing", "small", "bad"]
    assert {j["importMode"] for j in rest} == {"FULL"}

    # At most 5 import jobs may be pending or in progress.
    for n in range(5):
        c.cp.create_dataset_import_job(jobName=f"burst-{n}", datasetArn=interactions, dataSource={"dataLocation": good})
    assert error_code(
        lambda: c.cp.create_dataset_import_job(
            jobName="burst-6", datasetArn=interactions, dataSource={"dataLocation": good}
        )
    ) == ("LimitExceededException", 400)


def test_training_minimums_modes_stop_and_fault_injection(local_personalize: Any) -> None:
    lp = local_personalize(extra_args=["--fast"])
    c = Clients(lp, config=NO_RETRY)
    arns = c.group("trn")
    group, tracking_id = arns["group"], arns["trackingId"]
    up = c.solution(group, "trn-up", "aws-user-personalization")
    purchases = c.solution(group, "trn-purchase", "aws-user-personalization", eventType="purchase")
    valued = c.solution(group, "trn-valued", "aws-popularity-count", solutionConfig={"eventValueThreshold": "0.5"})

    c.put_events(tracking_id, rows_for(20, 30))  # 600 interactions
    assert c.version(up)["failureReason"] == "Create failed. Dataset has fewer than 1000 interactions."
    c.put_events(tracking_id, rows_for(1, 500, start=1.75e9))  # 1100, but only 20 users have >= 2
    assert c.version(up)["failureReason"] == (
        "Create failed. Dataset has fewer than 25 users with at least 2 interactions each."
    )
    c.put_events(
        tracking_id, [InteractionRow(r.user_id + "x", r.item_id, r.timestamp, "purchase") for r in rows_for(40, 20)]
    )
    assert c.version(purchases)["failureReason"] == (
        "Create failed. Dataset has fewer than 1000 interactions after filtering by event type: purchase."
    )
    assert "event value threshold: 0.5" in c.version(valued)["failureReason"]  # no event carries a value

    # trainingMode restrictions.
    pop = c.solution(group, "trn-pop", "aws-popularity-count")
    for solution, mode in ((pop, "UPDATE"), (up, "UPDATE"), (up, "AUTOTRAIN")):
        assert error_code(lambda s=solution, m=mode: c.cp.create_solution_version(solutionArn=s, trainingMode=m)) == (
            "InvalidInputException",
            400,
        )
    # A solution trains nothing: it is ACTIVE when CreateSolution answers, so the samples' very next call works.
    prompt = c.cp.create_solution(name="trn-new", datasetGroupArn=group, recipeArn=RECIPE + "aws-sims")["solutionArn"]
    assert c.cp.describe_solution(solutionArn=prompt)["solution"]["status"] == "ACTIVE"
    early = c.cp.create_solution_version(solutionArn=prompt)["solutionVersionArn"]
    assert c.cp.describe_solution_version(solutionVersionArn=early)["solutionVersion"]["status"] == "CREATE PENDING"
    c.cp.stop_solution_version_creation(solutionVersionArn=early)

    # Injected failure, then a real training, then UPDATE from it.
    lp.set_faults(fail_next_trainings=1)
    injected = c.version(up)
    assert injected["status"] == "CREATE FAILED" and "fault injection" in injected["failureReason"]
    full = c.version(up)
    assert full["status"] == "ACTIVE", full
    update = c.version(up, trainingMode="UPDATE")
    assert (update["status"], update["trainingMode"]) == ("ACTIVE", "UPDATE")
    metrics = {
        v["solutionVersionArn"]: c.cp.get_solution_metrics(solutionVersionArn=v["solutionVersionArn"])["metrics"]
        for v in (full, update)
    }
    assert metrics[full["solutionVersionArn"]] == metrics[update["solutionVersionArn"]]  # UPDATE makes no new metrics

    # Stop: PENDING -> STOPPED at once; IN_PROGRESS -> STOPPING -> STOPPED.
    pending = c.cp.create_solution_version(solutionArn=up)["solutionVersionArn"]
    c.cp.stop_solution_version_creation(solutionVersionArn=pending)
    assert c.cp.describe_solution_version(solutionVersionArn=pending)["solutionVersion"]["status"] == "CREATE STOPPED"
    lp.set_faults(training_seconds=30)
    slow = c.cp.create_solution_version(solutionArn=up)["solutionVersionArn"]
    deadline = time.monotonic() + 10
    while c.cp.describe_solution_version(solutionVersionArn=slow)["solutionVersion"]["status"] != "CREATE IN_PROGRESS":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # the computation is long done; the fault holds it IN_PROGRESS
    assert c.cp.describe_solution_version(solutionVersionArn=slow)["solutionVersion"]["status"] == "CREATE IN_PROGRESS"
    assert error_code(lambda: c.cp.get_solution_metrics(solutionVersionArn=slow)) == ("ResourceInUseException", 400)
    c.cp.stop_solution_version_creation(solutionVersionArn=slow)
    seen: list[str] = []
    assert c.wait(slow, seen=seen)["status"] == "CREATE STOPPED"
    assert seen == ["CREATE STOPPING", "CREATE STOPPED"]
    assert error_code(lambda: c.cp.stop_solution_version_creation(solutionVersionArn=slow)) == (
        "ResourceInUseException",
        400,
    )

    # Control-plane throttling (LimitExceededException), off again with the other knobs.
    lp.set_faults(control_throttle_rps=0)
    assert error_code(c.cp.list_solutions) == ("LimitExceededException", 400)
    lp.clear_faults()
    assert len(c.cp.list_solutions(datasetGroupArn=group)["solutions"]) == 5


def test_campaign_updates_and_runtime_by_recipe_type(local_personalize: Any) -> None:
    lp = local_personalize(extra_args=["--fast"])
    c = Clients(lp, config=NO_RETRY)
    arns = c.group("rt")
    rows, _ = taste_rows(n_users=150, n_items=200, n_interactions=4_000, seed=3)
    c.put_events(arns["trackingId"], rows)
    group = arns["group"]
    versions = {
        recipe: c.version(c.solution(group, f"rt-{recipe.removeprefix('aws-')}", recipe))["solutionVersionArn"]
        for recipe in ("aws-user-personalization", "aws-popularity-count", "aws-sims", "aws-personalized-ranking")
    }
    up_version, pop_version = versions["aws-user-personalization"], versions["aws-popularity-count"]
    campaign = c.campaign("rt-up", up_version)

    def personalised() -> bool:
        return c.recommend(campaign, "user-1") != c.recommend(campaign, "user-2")

    assert personalised()
    lp.set_faults(fail_next_campaign_updates=1)
    c.cp.update_campaign(campaignArn=campaign, solutionVersionArn=pop_version)
    while (update := c.cp.describe_campaign(campaignArn=campaign)["campaign"]["latestCampaignUpdate"])[
        "status"
    ] not in ("ACTIVE", "CREATE FAILED"):
        time.sleep(0.05)
    assert update["status"] == "CREATE FAILED" and "fault injection" in update["failureReason"]
    described = c.cp.describe_campaign(campaignArn=campaign)["campaign"]
    assert (described["status"], described["solutionVersionArn"]) == ("ACTIVE", up_version)
    assert personalised()

    c.cp.update_campaign(campaignArn=campaign, solutionVersionArn=pop_version)
    served_during_update = []
    while True:
        before = c.cp.describe_campaign(campaignArn=campaign)["campaign"]["latestCampaignUpdate"]["status"]
        result = personalised()
        after = c.cp.describe_campaign(campaignArn=campaign)["campaign"]["latestCampaignUpdate"]["status"]
        if before == after == "ACTIVE":
            break
        if after in ("CREATE PENDING", "CREATE IN_PROGRESS"):
            served_during_update.append(result)
    assert served_during_update and all(served_during_update)  # the previous (personalised) version served
    assert not personalised()  # now Popularity-Count: the same list for everyone

    # $LATEST + syncWithLatestSolutionVersion follows new versions without an update.
    up_solution = up_version.rsplit("/", 1)[0]
    follower = c.campaign("rt-follow", up_solution + "/$LATEST", campaignConfig={"syncWithLatestSolutionVersion": True})
    assert c.cp.describe_campaign(campaignArn=follower)["campaign"]["solutionVersionArn"] == up_version
    newer = c.version(up_solution)["solutionVersionArn"]
    assert c.cp.describe_campaign(campaignArn=follower)["campaign"]["solutionVersionArn"] == newer
    assert error_code(
        lambda: c.cp.create_campaign(
            name="rt-bad", solutionVersionArn=up_version, campaignConfig={"syncWithLatestSolutionVersion": True}
        )
    ) == ("InvalidInputException", 400)

    # SIMS answers for an item; Personalized-Ranking re-ranks and appends unknown items.
    sims = c.campaign("rt-sims", versions["aws-sims"])
    related = c.rt.get_recommendations(campaignArn=sims, itemId="item-3", numResults=5)["itemList"]
    assert len(related) == 5 and "item-3" not in {i["itemId"] for i in related}
    assert error_code(lambda: c.rt.get_recommendations(campaignArn=sims, userId="user-1")) == (
        "InvalidInputException",
        400,
    )
    ranking = c.campaign("rt-rank", versions["aws-personalized-ranking"])
    input_list = ["unknown-b", "item-1", "item-2", "unknown-a", "item-30", "item-150"]
    ranked = c.rt.get_personalized_ranking(campaignArn=ranking, userId="user-1", inputList=input_list)
    ids = [i["itemId"] for i in ranked["personalizedRanking"]]
    assert sorted(ids) == sorted(input_list) and ids[-2:] == ["unknown-b", "unknown-a"]
    assert ranked["recommendationId"].startswith("RID-")
    assert error_code(lambda: c.rt.get_recommendations(campaignArn=ranking, userId="user-1")) == (
        "InvalidInputException",
        400,
    )
    assert error_code(
        lambda: c.rt.get_personalized_ranking(campaignArn=campaign, userId="u", inputList=["item-1"])
    ) == ("InvalidInputException", 400)

    # Runtime limits and errors (the runtime's modeled statuses: 400 and 404).
    assert error_code(lambda: c.rt.get_recommendations(campaignArn=campaign, userId="u", numResults=501)) == (
        "InvalidInputException",
        400,
    )
    assert len(c.rt.get_recommendations(campaignArn=campaign, userId="u", numResults=500)["itemList"]) == 200
    assert error_code(lambda: c.rt.get_recommendations(campaignArn=campaign)) == ("InvalidInputException", 400)
    missing = campaign.replace("rt-up", "rt-none")
    assert error_code(lambda: c.rt.get_recommendations(campaignArn=missing, userId="u")) == (
        "ResourceNotFoundException",
        404,
    )


def test_errors_pagination_region_and_restart_during_training(local_personalize: Any) -> None:
    lp = local_personalize(trackers=["pre-registered"], extra_args=["--fast"])
    c = Clients(lp, config=NO_RETRY)
    cp = c.cp
    # --tracker pre-registration keeps working next to the control plane.
    c.ev.put_events(trackingId="pre-registered", sessionId="s", eventList=[{"eventType": "click", "sentAt": 1.7e9}])

    assert error_code(
        lambda: cp.describe_dataset_group(datasetGroupArn="arn:aws:personalize:us-east-1:1:dataset-group/x")
    ) == (
        "ResourceNotFoundException",
        400,
    )
    with pytest.raises(Exception, match="field EVENT_VALUE") as caught:
        cp.create_schema(name="bad", schema=json.dumps({"type": "record", "name": "Interactions", "fields": [
            {"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_VALUE", "type": "string"}]}))  # fmt: skip
    assert "InvalidInputException" in str(caught.value)

    groups = [cp.create_dataset_group(name=f"pg-{n}")["datasetGroupArn"] for n in range(5)]
    assert error_code(lambda: cp.create_dataset_group(name="pg-0")) == ("ResourceAlreadyExistsException", 400)
    assert error_code(lambda: cp.create_event_tracker(name="early", datasetGroupArn=groups[0])) == (
        "ResourceInUseException",
        400,
    )
    pages, token, listed = 0, None, []
    while True:
        page = cp.list_dataset_groups(maxResults=2, **({"nextToken": token} if token else {}))
        listed += [g["datasetGroupArn"] for g in page["datasetGroups"]]
        pages += 1
        token = page.get("nextToken")
        if not token:
            break
    assert pages == 3 and listed == groups[::-1]
    first = cp.list_dataset_groups(maxResults=2)["nextToken"]
    assert error_code(lambda: cp.list_solutions(nextToken=first)) == ("InvalidNextTokenException", 400)
    assert error_code(lambda: cp.list_dataset_groups(nextToken="garbage")) == ("InvalidNextTokenException", 400)

    arns = c.group("pg")
    assert error_code(lambda: cp.create_event_tracker(name="second", datasetGroupArn=arns["group"])) == (
        "ResourceAlreadyExistsException",
        400,
    )
    assert error_code(
        lambda: cp.create_dataset(
            name="x", schemaArn=arns["schema"], datasetGroupArn=arns["group"], datasetType="Users"
        )
    ) == ("InvalidInputException", 400)
    assert error_code(
        lambda: cp.create_dataset(
            name="x", schemaArn=arns["schema"], datasetGroupArn=arns["group"], datasetType="Actions"
        )
    ) == ("InvalidInputException", 400)

    # The region comes from the request's SigV4 scope.
    eu = Clients(lp, region="eu-west-1", config=NO_RETRY)
    assert eu.cp.create_dataset_group(name="eu")["datasetGroupArn"].startswith("arn:aws:personalize:eu-west-1:")

    # A crash during a training: the restarted server runs it again to the end.
    rows, _ = taste_rows(n_users=60, n_items=80, n_interactions=1_500, seed=5)
    c.put_events(arns["trackingId"], rows)
    solution = c.solution(arns["group"], "pg-up", "aws-user-personalization")
    lp.set_faults(training_seconds=2)
    version = cp.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    while cp.describe_solution_version(solutionVersionArn=version)["solutionVersion"]["status"] != "CREATE IN_PROGRESS":
        time.sleep(0.05)
    lp.kill()
    lp.start()
    resumed = c.wait(version, 30.0)
    assert resumed["status"] == "ACTIVE", resumed
    assert cp.get_solution_metrics(solutionVersionArn=version)["metrics"]["coverage"] > 0


def test_a_solution_is_active_at_once_in_the_default_timing_too(local_personalize: Any) -> None:
    """The samples' CreateSolution → CreateSolutionVersion works with 10 s steps; versions keep their timing."""
    lp = local_personalize(extra_args=["--fast"])
    c = Clients(lp, config=NO_RETRY)
    group = c.cp.create_dataset_group(name="dflt")["datasetGroupArn"]
    c.active(group)
    lp.stop()
    lp.extra_args = []  # the realistic default: 10 s per step
    lp.start()
    solution = c.cp.create_solution(name="dflt-up", datasetGroupArn=group, recipeArn=RECIPE + "aws-sims")[
        "solutionArn"
    ]
    version = c.cp.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    assert c.cp.describe_solution(solutionArn=solution)["solution"]["status"] == "ACTIVE"
    time.sleep(0.5)
    assert c.cp.describe_solution_version(solutionVersionArn=version)["solutionVersion"]["status"] == "CREATE PENDING"
