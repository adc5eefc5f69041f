"""The local Personalize's control plane, training and runtime, driven by unmodified boto3 clients.

Every test runs the real server (``python -m clickstream_devkit.personalize``) as a subprocess
and talks to it over HTTP with ``personalize``, ``personalize-events`` and
``personalize-runtime`` clients; S3 is moto's server on loopback.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from clickstream_devkit.recsys.data import InteractionRow
from clickstream_devkit.recsys.metrics import METRIC_KEYS

from tests.devkit.test_recsys_models import taste_rows
from tests.helpers import REPO_ROOT, LocalPersonalize, write_result

pytestmark = pytest.mark.integration

INTERACTIONS_SCHEMA = (REPO_ROOT / "schemas" / "interactions.json").read_text()
SIMPLE_INTERACTIONS_SCHEMA = (
    '{"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema", "fields": ['
    '{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},'
    '{"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},'
    '{"name": "EVENT_VALUE", "type": ["null", "float"]}], "version": "1.0"}'
)
ITEMS_SCHEMA = (
    '{"type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema", "fields": ['
    '{"name": "ITEM_ID", "type": "string"}, {"name": "CATEGORY", "type": "string", "categorical": true}],'
    ' "version": "1.0"}'
)
RECIPE = "arn:aws:personalize:::recipe/"
FINAL = ("ACTIVE", "CREATE FAILED", "CREATE STOPPED")
RID = re.compile(r"^RID-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1})  # one attempt: errors surface as sent


# -- helpers (also used by the conformance tests) ------------------------------------------


class Clients:
    """The three unmodified boto3 clients of one server."""

    def __init__(self, lp: LocalPersonalize, region: str = "us-east-1", config: Config | None = None) -> None:
        self.lp = lp
        kwargs: dict[str, Any] = {
            "endpoint_url": lp.endpoint_url,
            "region_name": region,
            "config": config,
            "aws_access_key_id": "testing",  # explicit: module-scoped users run before the aws_env fixture
            "aws_secret_access_key": "testing",
        }
        self.cp: Any = boto3.client("personalize", **kwargs)
        self.ev: Any = boto3.client("personalize-events", **kwargs)
        self.rt: Any = boto3.client("personalize-runtime", **kwargs)

    def wait(self, arn: str, timeout_s: float = 30.0, seen: list[str] | None = None) -> dict[str, Any]:
        """Poll DescribeX until the resource is in a final status; `seen` collects every status observed."""
        describe = _describer(self.cp, arn)
        deadline = time.monotonic() + timeout_s
        while True:
            resource = describe(arn)
            if seen is not None and (not seen or seen[-1] != resource["status"]):
                seen.append(resource["status"])
            if resource["status"] in FINAL:
                return resource
            assert time.monotonic() < deadline, f"{arn} still {resource['status']} after {timeout_s}s"
            time.sleep(0.05)

    def active(self, arn: str, timeout_s: float = 30.0) -> dict[str, Any]:
        resource = self.wait(arn, timeout_s)
        assert resource["status"] == "ACTIVE", resource
        return resource

    def group(self, name: str, *, items: bool = False, tracker: bool = True) -> dict[str, str]:
        """A dataset group with an Interactions dataset (+ Items) and an event tracker, all ACTIVE."""
        cp = self.cp
        out = {"schema": cp.create_schema(name=f"{name}-i", schema=SIMPLE_INTERACTIONS_SCHEMA)["schemaArn"]}
        out["group"] = cp.create_dataset_group(name=name)["datasetGroupArn"]
        self.active(out["group"])
        out["interactions"] = cp.create_dataset(
            name=f"{name}-i", schemaArn=out["schema"], datasetGroupArn=out["group"], datasetType="Interactions"
        )["datasetArn"]
        if items:
            schema = cp.create_schema(name=f"{name}-items", schema=ITEMS_SCHEMA)["schemaArn"]
            out["items"] = cp.create_dataset(
                name=f"{name}-items", schemaArn=schema, datasetGroupArn=out["group"], datasetType="ITEMS"
            )["datasetArn"]
        if tracker:
            created = cp.create_event_tracker(name=f"{name}-trk", datasetGroupArn=out["group"])
            out["tracker"], out["trackingId"] = created["eventTrackerArn"], created["trackingId"]
        for key in ("interactions", "items", "tracker"):
            if key in out:
                self.active(out[key])
        return out

    def put_events(self, tracking_id: str, rows: Iterable[InteractionRow]) -> int:
        """PutEvents in calls of 10 events sharing (userId, sessionId); returns the event count."""
        by_user: dict[str, list[InteractionRow]] = defaultdict(list)
        for row in rows:
            by_user[row.user_id].append(row)
        sent = 0
        for user, history in by_user.items():
            for start in range(0, len(history), 10):
                chunk = history[start : start + 10]
                events = [
                    {"eventType": r.event_type or "click", "itemId": r.item_id, "sentAt": r.timestamp}
                    | ({} if r.event_value is None else {"eventValue": r.event_value})
                    for r in chunk
                ]
                self.ev.put_events(trackingId=tracking_id, userId=user, sessionId=f"s-{user}", eventList=events)
                sent += len(events)
        return sent

    def solution(self, group: str, name: str, recipe: str, **kwargs: Any) -> str:
        arn: str = self.cp.create_solution(name=name, datasetGroupArn=group, recipeArn=RECIPE + recipe, **kwargs)[
            "solutionArn"
        ]
        self.active(arn)
        return arn

    def version(self, solution: str, **kwargs: Any) -> dict[str, Any]:
        arn = self.cp.create_solution_version(solutionArn=solution, **kwargs)["solutionVersionArn"]
        return self.wait(arn, timeout_s=60.0)

    def campaign(self, name: str, version: str, **kwargs: Any) -> str:
        arn: str = self.cp.create_campaign(name=name, solutionVersionArn=version, **kwargs)["campaignArn"]
        self.active(arn)
        return arn

    def recommend(self, campaign: str, user: str, n: int = 10) -> list[str]:
        reply = self.rt.get_recommendations(campaignArn=campaign, userId=user, numResults=n)
        return [i["itemId"] for i in reply["itemList"]]


def _describer(cp: Any, arn: str) -> Callable[[str], dict[str, Any]]:
    kind = arn.split(":", 5)[5].split("/", maxsplit=1)[0]
    if kind == "solution" and arn.count("/") == 2:
        return lambda a: cp.describe_solution_version(solutionVersionArn=a)["solutionVersion"]
    operation, member, key = {
        "dataset-group": ("describe_dataset_group", "datasetGroupArn", "datasetGroup"),
        "dataset": ("describe_dataset", "datasetArn", "dataset"),
        "event-tracker": ("describe_event_tracker", "eventTrackerArn", "eventTracker"),
        "dataset-import-job": ("describe_dataset_import_job", "datasetImportJobArn", "datasetImportJob"),
        "solution": ("describe_solution", "solutionArn", "solution"),
        "campaign": ("describe_campaign", "campaignArn", "campaign"),
        "filter": ("describe_filter", "filterArn", "filter"),
        "batch-inference-job": ("describe_batch_inference_job", "batchInferenceJobArn", "batchInferenceJob"),
    }[kind]
    return lambda a: getattr(cp, operation)(**{member: a})[key]


def error_code(call: Callable[[], Any]) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def upload_csv(endpoint: str, bucket: str, key: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue().encode())
    return f"s3://{bucket}/{key}"


def interaction_csv_rows(rows: Iterable[InteractionRow]) -> list[tuple[Any, ...]]:
    return [(r.user_id, r.item_id, int(r.timestamp), r.event_type or "click", "") for r in rows]


CSV_HEADER = ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE")


def category(item: str, n_items: int) -> int:
    return int(item.split("-")[1]) // (n_items // 8)


# -- the lifecycle -------------------------------------------------------------------------


def test_full_lifecycle_through_unmodified_boto3_clients(local_personalize: Any) -> None:
    """schema → dataset group → datasets → tracker → PutEvents → solution → version → metrics →
    campaign → recommendations → restart → newer version → campaign update."""
    lp = local_personalize(extra_args=["--transition-seconds", "0.3"])
    c = Clients(lp, config=NO_RETRY)
    cp = c.cp

    schema = cp.create_schema(name="lc-interactions", schema=INTERACTIONS_SCHEMA)["schemaArn"]
    assert schema == "arn:aws:personalize:us-east-1:123456789012:schema/lc-interactions"
    assert cp.describe_schema(schemaArn=schema)["schema"]["schema"] == INTERACTIONS_SCHEMA
    items_schema = cp.create_schema(name="lc-items", schema=ITEMS_SCHEMA)["schemaArn"]
    group = cp.create_dataset_group(name="lc")["datasetGroupArn"]
    seen: list[str] = []
    assert c.wait(group, seen=seen)["status"] == "ACTIVE"
    assert seen == ["CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE"]
    interactions = cp.create_dataset(name="lc-i", schemaArn=schema, datasetGroupArn=group, datasetType="Interactions")[
        "datasetArn"
    ]
    items = cp.create_dataset(name="lc-items", schemaArn=items_schema, datasetGroupArn=group, datasetType="Items")[
        "datasetArn"
    ]
    assert items == "arn:aws:personalize:us-east-1:123456789012:dataset/lc/ITEMS"
    # PutItems to a dataset that is not ACTIVE yet: ResourceInUseException, then it works.
    assert error_code(lambda: c.ev.put_items(datasetArn=items, items=[{"itemId": "item-0"}])) == (
        "ResourceInUseException",
        409,
    )
    tracker = cp.create_event_tracker(name="lc-trk", datasetGroupArn=group)
    assert re.fullmatch(
        r"arn:aws:personalize:us-east-1:123456789012:event-tracker/[0-9a-f]{8}", tracker["eventTrackerArn"]
    )
    for arn in (interactions, items, tracker["eventTrackerArn"]):
        c.active(arn)
    c.ev.put_items(
        datasetArn=items,
        items=[{"itemId": f"item-{i}", "properties": f'{{"category": "cat-{i // 25}"}}'} for i in range(10)],
    )

    rows, _ = taste_rows(n_users=250, n_items=200, n_interactions=6_000, seed=11)
    sent = c.put_events(tracker["trackingId"], rows)
    assert sent >= 5_000
    assert len(lp.events(tracker["trackingId"])) == sent

    hpo = {"algorithmHyperParameterRanges": {"integerHyperParameterRanges": [
        {"name": "hidden_dimension", "minValue": 32, "maxValue": 256}]}}  # fmt: skip
    solution = c.solution(
        group, "lc-up", "aws-user-personalization", performHPO=True, solutionConfig={"hpoConfig": hpo}
    )
    described = cp.describe_solution(solutionArn=solution)["solution"]
    assert described["performAutoTraining"] is True  # the real API's default, reported back
    seen = []
    v1_arn = cp.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    assert re.fullmatch(re.escape(solution) + r"/[0-9a-f]{8}", v1_arn)
    v1 = c.wait(v1_arn, 60.0, seen)
    assert v1["status"] == "ACTIVE", v1
    assert seen[-2:] == ["CREATE IN_PROGRESS", "ACTIVE"]
    assert v1["trainingMode"] == "FULL" and v1["trainingType"] == "MANUAL" and v1["trainingHours"] > 0
    tuned = v1["tunedHPOParams"]["algorithmHyperParameters"]
    assert set(tuned) == {"hidden_dimension"} and 32 <= int(tuned["hidden_dimension"]) <= 256
    metrics = cp.get_solution_metrics(solutionVersionArn=v1_arn)["metrics"]
    assert tuple(metrics) == METRIC_KEYS
    assert all(0.0 <= value <= 1.0 for value in metrics.values())
    assert metrics["normalized_discounted_cumulative_gain_at_10"] > 0
    latest = cp.describe_solution(solutionArn=solution)["solution"]["latestSolutionVersion"]
    assert (latest["solutionVersionArn"], latest["status"]) == (v1_arn, "ACTIVE")

    campaign = c.campaign("lc-campaign", v1_arn, minProvisionedTPS=2)
    assert "latestCampaignUpdate" not in cp.describe_campaign(campaignArn=campaign)["campaign"]
    reply = c.rt.get_recommendations(campaignArn=campaign, userId="user-1")
    assert len(reply["itemList"]) == 25  # numResults defaults to 25
    assert RID.match(reply["recommendationId"]) and len(reply["recommendationId"]) == 40
    scores = [item["score"] for item in reply["itemList"]]
    assert scores == sorted(scores, reverse=True)

    # Events received after training change a known user's recommendations at once.
    user = "user-7"
    before = c.recommend(campaign, user, 10)
    taste = {category(i, 200) for i in before[:5]}
    other = next(cat for cat in range(8) if cat not in taste)
    fresh = [InteractionRow(user, f"item-{other * 25 + k % 5}", 1.8e9 + k, "click") for k in range(30)]
    c.put_events(tracker["trackingId"], fresh)
    after = c.recommend(campaign, user, 10)
    assert after != before
    assert sum(category(i, 200) == other for i in after) >= 5

    # Unknown users get popular items: the same list for any of them.
    assert c.recommend(campaign, "nobody-1") == c.recommend(campaign, "nobody-2")

    # A crash mid-lifecycle loses nothing that was ACTIVE or received.
    events_before = len(lp.events(tracker["trackingId"]))
    lp.kill()
    lp.start()
    for arn in (group, interactions, items, tracker["eventTrackerArn"], solution, v1_arn, campaign):
        assert c.wait(arn)["status"] == "ACTIVE"
    assert len(lp.events(tracker["trackingId"])) == events_before
    assert c.recommend(campaign, user, 10) == after
    c.ev.put_events(  # the tracker still works after the restart
        trackingId=tracker["trackingId"],
        userId=user,
        sessionId="s-after",
        eventList=[{"eventType": "click", "itemId": "item-3", "sentAt": 1.9e9}],
    )
    assert cp.get_solution_metrics(solutionVersionArn=v1_arn)["metrics"] == metrics

    # A newer version, then a campaign update: the previous version serves until the update is ACTIVE.
    v2_arn = cp.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    assert c.wait(v2_arn, 60.0)["status"] == "ACTIVE"
    cp.update_campaign(campaignArn=campaign, solutionVersionArn=v2_arn, minProvisionedTPS=3)
    during = cp.describe_campaign(campaignArn=campaign)["campaign"]
    assert during["latestCampaignUpdate"]["status"] in ("CREATE PENDING", "CREATE IN_PROGRESS")
    assert (during["solutionVersionArn"], during["minProvisionedTPS"], during["status"]) == (v1_arn, 2, "ACTIVE")
    assert during["latestCampaignUpdate"]["solutionVersionArn"] == v2_arn
    assert error_code(lambda: cp.update_campaign(campaignArn=campaign, solutionVersionArn=v1_arn)) == (
        "ResourceInUseException",
        400,
    )
    deadline = time.monotonic() + 10
    while (done := cp.describe_campaign(campaignArn=campaign)["campaign"])["latestCampaignUpdate"][
        "status"
    ] != "ACTIVE":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (done["solutionVersionArn"], done["minProvisionedTPS"]) == (v2_arn, 3)
    assert c.recommend(campaign, user, 10)
    versions = cp.list_solution_versions(solutionArn=solution)["solutionVersions"]
    assert [v["solutionVersionArn"] for v in versions] == [v2_arn, v1_arn]  # newest first

    listed = lp.resources()
    assert {r["kind"] for r in listed} >= {"schema", "dataset-group", "dataset", "event-tracker", "campaign"}
    assert all(r["status"] in (None, "ACTIVE") for r in listed)


# -- offline metrics: User-Personalization vs Popularity-Count -----------------------------------


def test_user_personalization_beats_popularity_count_through_get_solution_metrics(
    local_personalize: Any, moto_s3: str
) -> None:
    lp = local_personalize(extra_args=["--fast", "--s3-endpoint-url", moto_s3])
    c = Clients(lp)
    arns = c.group("taste", tracker=False)
    rows, _ = taste_rows(n_users=300, n_items=400, n_interactions=20_000, seed=7)
    location = upload_csv(moto_s3, "taste", "interactions.csv", CSV_HEADER, interaction_csv_rows(rows))
    job = c.cp.create_dataset_import_job(
        jobName="taste-full",
        datasetArn=arns["interactions"],
        dataSource={"dataLocation": location},
        roleArn="arn:aws:iam::123456789012:role/personalize",
    )["datasetImportJobArn"]
    assert c.wait(job)["status"] == "ACTIVE"

    results: dict[str, dict[str, float]] = {}
    solutions: dict[str, str] = {}
    for recipe in ("aws-popularity-count", "aws-user-personalization"):
        solution = solutions[recipe] = c.solution(arns["group"], recipe.removeprefix("aws-"), recipe)
        version = c.version(solution)
        assert version["status"] == "ACTIVE", version
        results[recipe] = c.cp.get_solution_metrics(solutionVersionArn=version["solutionVersionArn"])["metrics"]
    write_result("local_personalize_taste_metrics", results)  # the table a reader may want; not stdout
    up, pop = results["aws-user-personalization"], results["aws-popularity-count"]
    assert up["normalized_discounted_cumulative_gain_at_10"] > pop["normalized_discounted_cumulative_gain_at_10"]
    assert up["precision_at_10"] > pop["precision_at_10"]
    # Deterministic for a given seed: the same data trains the same metrics again.
    again = c.version(solutions["aws-user-personalization"])["solutionVersionArn"]
    assert c.cp.get_solution_metrics(solutionVersionArn=again)["metrics"] == up
