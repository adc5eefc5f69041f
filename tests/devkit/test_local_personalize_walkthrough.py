"""AWS's getting-started Python code, run against the local Personalize as a new user would.

Written in the shape of the public Amazon Personalize getting-started code and sample
notebooks: plain boto3 clients created with no endpoint argument (``AWS_ENDPOINT_URL_*``
points them at the local server, and at moto for S3 and IAM), a wait loop per resource,
``create_solution_version`` in the cell right after ``create_solution``, the
"replace a dataset" cell and the clean-up cells. Nothing from this project is imported:
the fixtures only start the servers.
"""

from __future__ import annotations

import csv
import io
import json
import random
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

pytestmark = pytest.mark.integration

BUCKET = "personalize-walkthrough"
ROLE_NAME = "PersonalizeRole"
GENRES = ("action", "comedy", "drama", "horror", "romance", "scifi")
N_USERS, N_ITEMS = 150, 120


# -- the data a notebook would download and prepare -------------------------------------------


def movie_data() -> tuple[list[list[Any]], list[list[Any]]]:
    """Users with a favourite genre watch mostly films of it; some watches end in a purchase."""
    rng = random.Random(7)
    items = [[f"movie-{i}", GENRES[i % len(GENRES)], round(5 + (i * 37 % 20), 2)] for i in range(N_ITEMS)]
    by_genre = {g: [row[0] for row in items if row[1] == g] for g in GENRES}
    interactions: list[list[Any]] = []
    start = 1_700_000_000
    for u in range(N_USERS):
        favourite = GENRES[u % len(GENRES)]
        for k in range(22):
            pool = by_genre[favourite] if rng.random() < 0.85 else [row[0] for row in items]
            event = "purchase" if rng.random() < 0.1 else "watch"
            interactions.append([f"user-{u}", rng.choice(pool), start + u * 500 + k * 10, event])
    return interactions, items


def to_csv(header: list[str], rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def wait_for(describe: Callable[[], dict[str, Any]], what: str, timeout: float = 120) -> str:
    """The notebooks' loop: describe until ACTIVE or CREATE FAILED (sleeping 60 s there, 0.1 s here)."""
    max_time = time.time() + timeout
    status = "unknown"
    while time.time() < max_time:
        status = describe()["status"]
        if status in ("ACTIVE", "CREATE FAILED"):
            break
        time.sleep(0.1)
    print(f"{what}: {status}")
    return status


def wait_until_deleted(describe: Callable[[], Any], personalize: Any, timeout: float = 60) -> None:
    """The clean-up cells' loop: describe until ResourceNotFoundException."""
    max_time = time.time() + timeout
    while time.time() < max_time:
        try:
            describe()
        except personalize.exceptions.ResourceNotFoundException:
            return
        time.sleep(0.1)
    raise AssertionError("still there")


@pytest.fixture
def endpoints(local_personalize: Any, moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lp = local_personalize(extra_args=["--fast", "--s3-endpoint-url", moto_s3])
    for service in ("PERSONALIZE", "PERSONALIZE_EVENTS", "PERSONALIZE_RUNTIME"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", lp.endpoint_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_s3)
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", moto_s3)


def test_getting_started_walkthrough(endpoints: None) -> None:
    personalize = boto3.client("personalize")
    personalize_events = boto3.client("personalize-events")
    personalize_runtime = boto3.client("personalize-runtime")
    s3 = boto3.client("s3")
    iam = boto3.client("iam")

    # -- Prepare the data in S3 and the role Personalize assumes -----------------------------
    interactions, items = movie_data()
    s3.create_bucket(Bucket=BUCKET)
    service = {"Service": "personalize.amazonaws.com"}
    s3_access = {
        "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
        "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
    }  # fmt: skip
    bucket_policy = {"Version": "2012-10-17", "Statement": [{**s3_access, "Principal": service}]}
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(bucket_policy))
    s3.put_object(Bucket=BUCKET, Key="interactions.csv",
                  Body=to_csv(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"], interactions))  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key="items.csv", Body=to_csv(["ITEM_ID", "GENRE", "PRICE"], items))
    assume_role_policy = {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": service, "Action": "sts:AssumeRole"}]
    }  # fmt: skip
    role_arn = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(assume_role_policy))["Role"][
        "Arn"
    ]
    policy_arn = iam.create_policy(
        PolicyName="PersonalizeS3BucketAccessPolicy",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [s3_access]}),
    )["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=ROLE_NAME, PolicyArn=policy_arn)

    # -- Create schemas ---------------------------------------------------------------------
    interactions_schema = {
        "type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
        "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                   {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"}],
        "version": "1.0",
    }  # fmt: skip
    items_schema = {
        "type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema",
        "fields": [{"name": "ITEM_ID", "type": "string"}, {"name": "GENRE", "type": "string", "categorical": True},
                   {"name": "PRICE", "type": "float"}],
        "version": "1.0",
    }  # fmt: skip
    schema_arn = personalize.create_schema(name="movies-interactions", schema=json.dumps(interactions_schema))[
        "schemaArn"
    ]
    items_schema_arn = personalize.create_schema(name="movies-items", schema=json.dumps(items_schema))["schemaArn"]
    print("Schema ARN:" + schema_arn)

    # -- Create and wait for the dataset group ------------------------------------------------
    dataset_group_arn = personalize.create_dataset_group(name="movies")["datasetGroupArn"]
    status = wait_for(lambda: personalize.describe_dataset_group(datasetGroupArn=dataset_group_arn)["datasetGroup"],
                      "DatasetGroup")  # fmt: skip
    assert status == "ACTIVE"

    # -- Create datasets; a re-run replaces an existing one, as the notebooks do ---------------
    def create_dataset(name: str, dataset_type: str, schema: str) -> str:
        try:
            arn: str = personalize.create_dataset(
                name=name, datasetType=dataset_type, datasetGroupArn=dataset_group_arn, schemaArn=schema
            )["datasetArn"]
        except personalize.exceptions.ResourceAlreadyExistsException:
            existing = f"{dataset_group_arn.replace(':dataset-group/', ':dataset/')}/{dataset_type.upper()}"
            print(f"The {dataset_type} dataset exists; deleting it")
            personalize.delete_dataset(datasetArn=existing)
            wait_until_deleted(lambda: personalize.describe_dataset(datasetArn=existing), personalize)
            arn = personalize.create_dataset(
                name=name, datasetType=dataset_type, datasetGroupArn=dataset_group_arn, schemaArn=schema
            )["datasetArn"]
        assert wait_for(lambda: personalize.describe_dataset(datasetArn=arn)["dataset"], dataset_type) == "ACTIVE"
        return arn

    interactions_arn = create_dataset("movies-interactions", "Interactions", schema_arn)
    assert create_dataset("movies-interactions", "Interactions", schema_arn) == interactions_arn  # re-run
    items_arn = create_dataset("movies-items", "Items", items_schema_arn)

    # -- Import the data ----------------------------------------------------------------------
    for job_name, dataset_arn, key in (("movies-interactions-import", interactions_arn, "interactions.csv"),
                                       ("movies-items-import", items_arn, "items.csv")):  # fmt: skip
        job_arn = personalize.create_dataset_import_job(
            jobName=job_name, datasetArn=dataset_arn, dataSource={"dataLocation": f"s3://{BUCKET}/{key}"},
            roleArn=role_arn,
        )["datasetImportJobArn"]  # fmt: skip
        status = wait_for(
            lambda j=job_arn: personalize.describe_dataset_import_job(datasetImportJobArn=j)["datasetImportJob"],
            "DatasetImportJob",
        )
        assert status == "ACTIVE"

    # -- Create solutions and, in the very next cell, their versions ---------------------------
    recipes = {
        "user-personalization": "arn:aws:personalize:::recipe/aws-user-personalization",
        "sims": "arn:aws:personalize:::recipe/aws-sims",
        "personalized-ranking": "arn:aws:personalize:::recipe/aws-personalized-ranking",
        "popularity-count": "arn:aws:personalize:::recipe/aws-popularity-count",
    }
    solution_arns: dict[str, str] = {}
    version_arns: dict[str, str] = {}
    for name, recipe_arn in recipes.items():
        create_solution_response = personalize.create_solution(
            name=f"movies-{name}", datasetGroupArn=dataset_group_arn, recipeArn=recipe_arn
        )
        solution_arns[name] = create_solution_response["solutionArn"]
        create_solution_version_response = personalize.create_solution_version(solutionArn=solution_arns[name])
        version_arns[name] = create_solution_version_response["solutionVersionArn"]
    for name, version_arn in version_arns.items():
        status = wait_for(
            lambda v=version_arn: personalize.describe_solution_version(solutionVersionArn=v)["solutionVersion"],
            f"SolutionVersion {name}",
        )
        assert status == "ACTIVE"

    # -- Evaluate: every recipe against the popularity baseline --------------------------------
    metrics = {name: personalize.get_solution_metrics(solutionVersionArn=arn)["metrics"]
               for name, arn in version_arns.items()}  # fmt: skip
    for name, values in metrics.items():
        print(name, json.dumps(values))
        assert set(values) >= {"coverage", "precision_at_10", "normalized_discounted_cumulative_gain_at_10"}
    assert metrics["user-personalization"]["precision_at_10"] > metrics["popularity-count"]["precision_at_10"]

    # -- Deploy campaigns and get recommendations -----------------------------------------------
    def create_campaign(name: str, version_arn: str) -> str:
        arn: str = personalize.create_campaign(name=name, solutionVersionArn=version_arn, minProvisionedTPS=1)[
            "campaignArn"
        ]
        assert wait_for(lambda: personalize.describe_campaign(campaignArn=arn)["campaign"], "Campaign") == "ACTIVE"
        return arn

    campaign_arn = create_campaign("movies-campaign", version_arns["user-personalization"])
    ranking_campaign_arn = create_campaign("movies-ranking", version_arns["personalized-ranking"])
    sims_campaign_arn = create_campaign("movies-sims", version_arns["sims"])
    user_id = "user-3"  # favourite genre: horror
    response = personalize_runtime.get_recommendations(campaignArn=campaign_arn, userId=user_id)
    recommended = [item["itemId"] for item in response["itemList"]]
    assert len(recommended) == 25
    genre_of = {row[0]: row[1] for row in items}
    assert sum(genre_of[i] == "horror" for i in recommended[:10]) >= 6
    ranked = personalize_runtime.get_personalized_ranking(
        campaignArn=ranking_campaign_arn, userId=user_id, inputList=["movie-0", "movie-3", "movie-4", "movie-9"]
    )["personalizedRanking"]
    assert [genre_of[i["itemId"]] for i in ranked][:2] == ["horror", "horror"]
    similar = personalize_runtime.get_recommendations(campaignArn=sims_campaign_arn, itemId="movie-3", numResults=5)
    assert len(similar["itemList"]) == 5

    # -- Filters: exclude what the user bought; only the genres asked for ------------------------
    purchased_filter_arn = personalize.create_filter(
        name="movies-exclude-purchased", datasetGroupArn=dataset_group_arn,
        filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")',
    )["filterArn"]  # fmt: skip
    genre_filter_arn = personalize.create_filter(
        name="movies-genre", datasetGroupArn=dataset_group_arn,
        filterExpression="INCLUDE ItemID WHERE Items.GENRE IN ($GENRE)",
    )["filterArn"]  # fmt: skip
    for arn in (purchased_filter_arn, genre_filter_arn):
        assert wait_for(lambda a=arn: personalize.describe_filter(filterArn=a)["filter"], "Filter") == "ACTIVE"
    listed = personalize.list_filters(datasetGroupArn=dataset_group_arn)["Filters"]
    assert {f["filterArn"] for f in listed} == {purchased_filter_arn, genre_filter_arn}

    bought_before = {row[1] for row in interactions if row[0] == user_id and row[3] == "purchase"}
    filtered = personalize_runtime.get_recommendations(campaignArn=campaign_arn, userId=user_id,
                                                       filterArn=purchased_filter_arn)  # fmt: skip
    top = [item["itemId"] for item in filtered["itemList"]]
    assert len(top) == 25 and not bought_before & set(top)
    tracker = personalize.create_event_tracker(name="movies-tracker", datasetGroupArn=dataset_group_arn)
    event_tracker_arn, tracking_id = tracker["eventTrackerArn"], tracker["trackingId"]
    status = wait_for(lambda: personalize.describe_event_tracker(eventTrackerArn=event_tracker_arn)["eventTracker"],
                      "EventTracker")  # fmt: skip
    assert status == "ACTIVE"
    personalize_events.put_events(
        trackingId=tracking_id, userId=user_id, sessionId="session-1",
        eventList=[{"eventType": "purchase", "itemId": top[0], "sentAt": time.time()}],
    )  # fmt: skip
    after = personalize_runtime.get_recommendations(campaignArn=campaign_arn, userId=user_id,
                                                    filterArn=purchased_filter_arn)["itemList"]  # fmt: skip
    assert top[0] not in {item["itemId"] for item in after}  # the purchase is filtered out at once
    comedies = personalize_runtime.get_recommendations(
        campaignArn=campaign_arn, userId=user_id, filterArn=genre_filter_arn,
        filterValues={"GENRE": '"comedy","romance"'}, numResults=10,
    )["itemList"]  # fmt: skip
    assert len(comedies) == 10 and {genre_of[i["itemId"]] for i in comedies} <= {"comedy", "romance"}

    # -- Update the campaign to a newer version ---------------------------------------------------
    new_version_arn = personalize.create_solution_version(solutionArn=solution_arns["user-personalization"])[
        "solutionVersionArn"
    ]
    status = wait_for(lambda: personalize.describe_solution_version(solutionVersionArn=new_version_arn)[
        "solutionVersion"], "SolutionVersion")  # fmt: skip
    assert status == "ACTIVE"
    personalize.update_campaign(campaignArn=campaign_arn, solutionVersionArn=new_version_arn,
                                campaignConfig={"itemExplorationConfig": {"explorationWeight": "0.1"}})  # fmt: skip
    status = wait_for(lambda: personalize.describe_campaign(campaignArn=campaign_arn)["campaign"][
        "latestCampaignUpdate"], "CampaignUpdate")  # fmt: skip
    assert status == "ACTIVE"
    assert personalize.describe_campaign(campaignArn=campaign_arn)["campaign"]["solutionVersionArn"] == new_version_arn

    # -- Batch inference: recommendations for a list of users, filtered -------------------------
    batch_users = [f"user-{u}" for u in range(0, 12, 3)]
    lines = [json.dumps({"userId": u}) for u in batch_users]
    lines.append(json.dumps({"userId": "user-1", "filterValues": {"GENRE": '"drama"'}}))
    s3.put_object(Bucket=BUCKET, Key="batch/input/users.json", Body="\n".join(lines).encode())
    batch_job_arn = personalize.create_batch_inference_job(
        jobName="movies-batch", solutionVersionArn=new_version_arn, roleArn=role_arn, numResults=10,
        filterArn=genre_filter_arn,
        jobInput={"s3DataSource": {"path": f"s3://{BUCKET}/batch/input/users.json"}},
        jobOutput={"s3DataDestination": {"path": f"s3://{BUCKET}/batch/output/"}},
    )["batchInferenceJobArn"]  # fmt: skip
    status = wait_for(lambda: personalize.describe_batch_inference_job(batchInferenceJobArn=batch_job_arn)[
        "batchInferenceJob"], "BatchInferenceJob")  # fmt: skip
    assert status == "ACTIVE"
    listed_jobs = personalize.list_batch_inference_jobs(solutionVersionArn=new_version_arn)["batchInferenceJobs"]
    assert [j["batchInferenceJobArn"] for j in listed_jobs] == [batch_job_arn]
    output = s3.get_object(Bucket=BUCKET, Key="batch/output/users.json.out")["Body"].read().decode()
    results = [json.loads(line) for line in output.splitlines()]
    assert [r["input"]["userId"] for r in results] == [*batch_users, "user-1"]
    for result in results[:-1]:  # an INCLUDE filter without its value: the line's error says so
        assert result["output"] is None and "$GENRE" in result["error"]
    drama = results[-1]
    assert drama["error"] is None and len(drama["output"]["recommendedItems"]) == 10
    assert {genre_of[i] for i in drama["output"]["recommendedItems"]} == {"drama"}
    assert drama["output"]["scores"] == sorted(drama["output"]["scores"], reverse=True)

    # -- Clean up, in the order the clean-up notebook uses --------------------------------------
    for arn in (campaign_arn, ranking_campaign_arn, sims_campaign_arn):
        personalize.delete_campaign(campaignArn=arn)
        wait_until_deleted(lambda a=arn: personalize.describe_campaign(campaignArn=a), personalize)
    for arn in (purchased_filter_arn, genre_filter_arn):
        personalize.delete_filter(filterArn=arn)
        wait_until_deleted(lambda a=arn: personalize.describe_filter(filterArn=a), personalize)
    for arn in solution_arns.values():
        personalize.delete_solution(solutionArn=arn)
        wait_until_deleted(lambda a=arn: personalize.describe_solution(solutionArn=a), personalize)
    personalize.delete_event_tracker(eventTrackerArn=event_tracker_arn)
    wait_until_deleted(lambda: personalize.describe_event_tracker(eventTrackerArn=event_tracker_arn), personalize)
    for arn in (interactions_arn, items_arn):
        personalize.delete_dataset(datasetArn=arn)
        wait_until_deleted(lambda a=arn: personalize.describe_dataset(datasetArn=a), personalize)
    for arn in (schema_arn, items_schema_arn):
        personalize.delete_schema(schemaArn=arn)
        wait_until_deleted(lambda a=arn: personalize.describe_schema(schemaArn=a), personalize)
    personalize.delete_dataset_group(datasetGroupArn=dataset_group_arn)
    wait_until_deleted(lambda: personalize.describe_dataset_group(datasetGroupArn=dataset_group_arn), personalize)
    assert personalize.list_dataset_groups()["datasetGroups"] == []
    assert personalize.list_solutions()["solutions"] == []
    assert personalize.list_schemas()["schemas"] == []
