"""Filters, batch inference and HPO of the local Personalize, over the wire with unmodified boto3 clients.

One server and one trained dataset group serve the module (training is the slow part);
each test builds what else it needs. S3 is moto's server on loopback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.devkit.test_local_personalize_deletes import statuses_until_gone
from tests.devkit.test_local_personalize_lifecycle import NO_RETRY, RECIPE, Clients, error_code
from tests.devkit.test_recsys_models import taste_rows
from tests.helpers import LocalPersonalize, write_result

pytestmark = pytest.mark.integration

N_ITEMS = 200
ITEMS_SCHEMA = (
    '{"type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema", "fields": ['
    '{"name": "ITEM_ID", "type": "string"}, {"name": "CATEGORY", "type": "string", "categorical": true},'
    '{"name": "PRICE", "type": "float"}], "version": "1.0"}'
)
USERS_SCHEMA = (
    '{"type": "record", "name": "Users", "namespace": "com.amazonaws.personalize.schema", "fields": ['
    '{"name": "USER_ID", "type": "string"}, {"name": "AGE", "type": "int"}], "version": "1.0"}'
)


def category_of(item: str) -> str:
    return f"cat-{int(item.split('-')[1]) // (N_ITEMS // 8)}"


def price_of(item: str) -> float:
    return float(int(item.split("-")[1]) % 50)


class World:
    """The module's server, clients and trained resources."""

    def __init__(self, lp: LocalPersonalize, moto: str) -> None:
        self.lp, self.moto = lp, moto
        self.c = Clients(lp, config=NO_RETRY)
        self.arns = self.c.group("feat", items=False)
        cp = self.c.cp
        group = self.arns["group"]
        schemas = {
            name: cp.create_schema(name=f"feat-{name}", schema=text)["schemaArn"]
            for name, text in (("items", ITEMS_SCHEMA), ("users", USERS_SCHEMA))
        }
        for kind in ("Items", "Users"):
            self.arns[kind.lower()] = cp.create_dataset(
                name=f"feat-{kind.lower()}", schemaArn=schemas[kind.lower()], datasetGroupArn=group, datasetType=kind
            )["datasetArn"]
            self.c.active(self.arns[kind.lower()])
        catalog = [f"item-{i}" for i in range(N_ITEMS)]
        for start in range(0, N_ITEMS, 10):
            self.c.ev.put_items(
                datasetArn=self.arns["items"],
                items=[
                    {"itemId": i, "properties": json.dumps({"category": category_of(i), "price": price_of(i)})}
                    for i in catalog[start : start + 10]
                ],
            )
        self.c.ev.put_users(
            datasetArn=self.arns["users"],
            users=[
                {"userId": "user-1", "properties": '{"age": 12}'},
                {"userId": "user-2", "properties": '{"age": 40}'},
            ],
        )
        rows, _ = taste_rows(n_users=150, n_items=N_ITEMS, n_interactions=4_000, seed=3)
        self.c.put_events(self.arns["trackingId"], rows)
        self.versions = {
            recipe: self.c.version(self.c.solution(group, f"feat-{recipe.removeprefix('aws-')}", recipe))[
                "solutionVersionArn"
            ]
            for recipe in ("aws-user-personalization", "aws-sims", "aws-personalized-ranking")
        }
        self.campaigns = {
            recipe: self.c.campaign(f"feat-{recipe.removeprefix('aws-')}", version)
            for recipe, version in self.versions.items()
        }

    def filter(self, name: str, expression: str, group: str | None = None) -> str:
        arn: str = self.c.cp.create_filter(
            name=name, datasetGroupArn=group or self.arns["group"], filterExpression=expression
        )["filterArn"]
        self.c.active(arn)
        return arn


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, moto_s3: str) -> Iterator[World]:
    # Module scope runs before the per-test aws_env fixture: give the server (it reads S3) fake credentials.
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.setenv(name, "testing")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        lp = LocalPersonalize(
            data_dir=tmp_path_factory.mktemp("features") / "data",
            extra_args=["--fast", "--s3-endpoint-url", moto_s3],
        ).start()
    try:
        yield World(lp, moto_s3)
    finally:
        lp.stop()


def items_of(reply: dict[str, Any], key: str = "itemList") -> list[str]:
    return [i["itemId"] for i in reply[key]]


def message(call: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Message"]


# -- filters ----------------------------------------------------------------------------------------


def test_filter_lifecycle_and_errors(world: World) -> None:
    cp, rt = world.c.cp, world.c.rt
    group, up = world.arns["group"], world.campaigns["aws-user-personalization"]
    code, status, text = message(
        lambda: cp.create_filter(
            name="bad", datasetGroupArn=group, filterExpression='EXCLUDE ItemID Items.CATEGORY IN ("x")'
        )
    )
    assert (code, status) == ("InvalidInputException", 400) and "expected WHERE at position 16" in text
    code, _, text = message(
        lambda: cp.create_filter(
            name="bad", datasetGroupArn=group, filterExpression='EXCLUDE ItemID WHERE Items.GENRE IN ("x")'
        )
    )
    assert code == "InvalidInputException" and "the Items schema has no field GENRE" in text
    arn = cp.create_filter(
        name="feat-cheap", datasetGroupArn=group, filterExpression="INCLUDE ItemID WHERE Items.PRICE < $MAX"
    )["filterArn"]
    seen: list[str] = []
    assert world.c.wait(arn, seen=seen)["status"] == "ACTIVE"
    assert seen == ["CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE"]
    described = cp.describe_filter(filterArn=arn)["filter"]
    assert described["filterExpression"] == "INCLUDE ItemID WHERE Items.PRICE < $MAX"
    assert described["datasetGroupArn"] == group and described["name"] == "feat-cheap"
    assert arn in {f["filterArn"] for f in cp.list_filters(datasetGroupArn=group)["Filters"]}

    cheap = items_of(
        rt.get_recommendations(
            campaignArn=up, userId="user-3", filterArn=arn, numResults=30, filterValues={"MAX": "10"}
        )
    )
    assert len(cheap) == 30 and all(price_of(i) < 10 for i in cheap)
    code, status, text = message(lambda: rt.get_recommendations(campaignArn=up, userId="user-3", filterArn=arn))
    assert (code, status) == ("InvalidInputException", 400) and "missing: $MAX" in text
    code, _, text = message(
        lambda: rt.get_recommendations(campaignArn=up, userId="user-3", filterArn=arn, filterValues={"MAX": '"ten"'})
    )
    assert code == "InvalidInputException" and "must be one number" in text
    unknown = arn.replace("feat-cheap", "none")
    assert error_code(lambda: rt.get_recommendations(campaignArn=up, userId="user-3", filterArn=unknown)) == (
        "ResourceNotFoundException",
        404,
    )
    pending = cp.create_filter(
        name="feat-pending", datasetGroupArn=group, filterExpression='EXCLUDE ItemID WHERE Items.CATEGORY IN ("cat-1")'
    )["filterArn"]
    code, status, text = message(lambda: rt.get_recommendations(campaignArn=up, userId="u", filterArn=pending))
    assert (code, status) == ("InvalidInputException", 400) and "is not ACTIVE (status CREATE PENDING)" in text
    world.c.active(pending)

    other_group = world.c.cp.create_dataset_group(name="feat-other")["datasetGroupArn"]
    world.c.active(other_group)
    schema = world.c.cp.create_schema(name="feat-other-items", schema=ITEMS_SCHEMA)["schemaArn"]
    world.c.active(
        cp.create_dataset(name="o", schemaArn=schema, datasetGroupArn=other_group, datasetType="Items")["datasetArn"]
    )
    elsewhere = world.filter("feat-elsewhere", 'EXCLUDE ItemID WHERE Items.CATEGORY IN ("cat-1")', other_group)
    code, _, text = message(lambda: rt.get_recommendations(campaignArn=up, userId="u", filterArn=elsewhere))
    assert code == "InvalidInputException" and "belongs to dataset group" in text

    # At most 10 filters per dataset group (the other group has one already).
    for n in range(9):
        cp.create_filter(
            name=f"feat-many-{n}",
            datasetGroupArn=other_group,
            filterExpression='EXCLUDE ItemID WHERE Items.CATEGORY IN ("x")',
        )
    code, status, text = message(
        lambda: cp.create_filter(
            name="feat-many-9", datasetGroupArn=other_group, filterExpression="EXCLUDE ItemID WHERE Items.PRICE > 3"
        )
    )
    assert (code, status) == ("LimitExceededException", 400) and "10 filters" in text

    # Deleted: gone, and the runtime no longer knows it.
    cp.delete_filter(filterArn=arn)
    assert statuses_until_gone(lambda: cp.describe_filter(filterArn=arn)["filter"]) == [
        "DELETE PENDING",
        "DELETE IN_PROGRESS",
    ]
    gone = {"campaignArn": up, "userId": "u", "filterArn": arn, "filterValues": {"MAX": "3"}}
    assert error_code(lambda: rt.get_recommendations(**gone)) == ("ResourceNotFoundException", 404)


def test_filters_exclude_a_purchase_at_once_and_read_items_users_and_the_current_item(world: World) -> None:
    rt = world.c.rt
    up, pr = world.campaigns["aws-user-personalization"], world.campaigns["aws-personalized-ranking"]
    sims = world.campaigns["aws-sims"]
    user = "user-7"
    bought = world.filter("feat-bought", 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")')
    before = items_of(rt.get_recommendations(campaignArn=up, userId=user, filterArn=bought, numResults=10))
    world.c.ev.put_events(
        trackingId=world.arns["trackingId"],
        userId=user,
        sessionId="s-buy",
        eventList=[{"eventType": "Purchase", "itemId": item, "sentAt": 1.9e9 + k} for k, item in enumerate(before[:3])],
    )
    after = items_of(rt.get_recommendations(campaignArn=up, userId=user, filterArn=bought, numResults=10))
    assert len(after) == 10 and not set(before[:3]) & set(after)  # event types match case-insensitively
    ranked = items_of(
        rt.get_personalized_ranking(
            campaignArn=pr, userId=user, filterArn=bought, inputList=[before[0], "item-5", "item-77"]
        ),
        "personalizedRanking",
    )
    assert sorted(ranked) == ["item-5", "item-77"]

    cats = world.filter(
        "feat-cats",
        'INCLUDE ItemID WHERE Items.CATEGORY IN ($CATS) | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")',
    )
    got = items_of(
        rt.get_recommendations(
            campaignArn=up, userId=user, filterArn=cats, numResults=20, filterValues={"CATS": '"cat-2","cat-5"'}
        )
    )
    assert len(got) == 20 and {category_of(i) for i in got} <= {"cat-2", "cat-5"} and not set(before[:3]) & set(got)
    eleven = ",".join(f'"cat-{k}"' for k in range(11))
    code, status, text = message(
        lambda: rt.get_recommendations(campaignArn=up, userId=user, filterArn=cats, filterValues={"CATS": eleven})
    )
    assert (code, status) == ("InvalidInputException", 400) and "at most 10" in text

    kids = world.filter(
        "feat-kids", 'EXCLUDE ItemID WHERE Items.CATEGORY IN ("cat-0", "cat-1") IF CurrentUser.AGE < 18'
    )
    child = items_of(rt.get_recommendations(campaignArn=up, userId="user-1", filterArn=kids, numResults=50))
    assert len(child) == 50 and not {category_of(i) for i in child} & {"cat-0", "cat-1"}
    adult = rt.get_recommendations(campaignArn=up, userId="user-2", filterArn=kids, numResults=50)
    assert items_of(adult) == items_of(rt.get_recommendations(campaignArn=up, userId="user-2", numResults=50))

    cheaper = world.filter(
        "feat-cheaper",
        "INCLUDE ItemID WHERE Items.CATEGORY IN CurrentItem.CATEGORY AND Items.PRICE < CurrentItem.PRICE",
    )
    related = items_of(rt.get_recommendations(campaignArn=sims, itemId="item-30", filterArn=cheaper, numResults=10))
    assert related and set(related) <= {f"item-{i}" for i in range(25, 30)}  # cat-1, price below 30
    code, _, text = message(lambda: rt.get_recommendations(campaignArn=up, userId=user, filterArn=cheaper))
    assert code == "InvalidInputException" and "CurrentItem" in text


# -- batch inference ---------------------------------------------------------------------------------


def test_batch_inference_jobs(world: World) -> None:
    cp = world.c.cp
    s3: Any = boto3.client("s3", endpoint_url=world.moto, region_name="us-east-1")
    s3.create_bucket(Bucket="feat-batch")
    s3.put_object(Bucket="feat-batch", Key="in/a.json", Body=b'{"itemId": "item-30"}\n{"itemId": "item-77"}\n')
    s3.put_object(Bucket="feat-batch", Key="in/b.json", Body=b'{"itemId": "item-3"}\nnot json\n{"userId": "x"}\n')
    s3.put_object(
        Bucket="feat-batch",
        Key="rank.json",
        Body=b'{"userId": "user-4", "itemList": ["item-1", "item-150", "unknown"]}\n',
    )
    role = "arn:aws:iam::123456789012:role/personalize"
    sims_version, pr_version = world.versions["aws-sims"], world.versions["aws-personalized-ranking"]
    cheaper = world.filter("feat-batch-cheaper", "INCLUDE ItemID WHERE Items.PRICE < $MAX")

    def job(name: str, version: str, path: str, **extra: Any) -> dict[str, Any]:
        arn = cp.create_batch_inference_job(
            jobName=name,
            solutionVersionArn=version,
            roleArn=role,
            jobInput={"s3DataSource": {"path": path}},
            jobOutput={"s3DataDestination": {"path": "s3://feat-batch/out/"}},
            **extra,
        )["batchInferenceJobArn"]
        seen: list[str] = []
        described = world.c.wait(arn, timeout_s=60.0, seen=seen)
        assert seen[0] == "CREATE PENDING"
        return described

    def output(key: str) -> list[dict[str, Any]]:
        body = s3.get_object(Bucket="feat-batch", Key=key)["Body"].read().decode()
        return [json.loads(line) for line in body.splitlines()]

    related = job("feat-related", sims_version, "s3://feat-batch/in/", numResults=5, filterArn=cheaper)
    assert related["status"] == "ACTIVE", related
    assert (related["numResults"], related["filterArn"], related["batchInferenceJobMode"]) == (
        5,
        cheaper,
        "BATCH_INFERENCE",
    )
    a = output("out/a.json.out")
    assert [line["input"] for line in a] == [{"itemId": "item-30"}, {"itemId": "item-77"}]
    assert all("$MAX" in line["error"] for line in a)  # an INCLUDE filter needs its value on every line
    s3.put_object(
        Bucket="feat-batch",
        Key="in/a.json",
        Body=(
            b'{"itemId": "item-30", "filterValues": {"MAX": "20"}}\n'
            b'{"itemId": "item-77", "filterValues": {"MAX": "20"}}'
        ),
    )
    assert (
        job("feat-related-2", sims_version, "s3://feat-batch/in/", numResults=5, filterArn=cheaper)["status"]
        == "ACTIVE"
    )
    a = output("out/a.json.out")
    for line in a:
        assert line["error"] is None and len(line["output"]["recommendedItems"]) == 5
        assert all(price_of(i) < 20 for i in line["output"]["recommendedItems"])
    b = output("out/b.json.out")
    assert [line["error"] is None for line in b] == [False, False, False]  # every line lacks $MAX or is malformed
    assert b[1] == {"input": "not json", "output": None, "error": "The input line is not valid JSON."}
    assert "itemId is required" in b[2]["error"]

    ranking = job("feat-ranking", pr_version, "s3://feat-batch/rank.json")
    assert ranking["status"] == "ACTIVE" and ranking["numResults"] == 25
    (line,) = output("out/rank.json.out")
    assert sorted(line["output"]["recommendedItems"]) == ["item-1", "item-150", "unknown"]
    assert line["output"]["recommendedItems"][-1] == "unknown" and line["error"] is None

    missing = job("feat-missing", pr_version, "s3://feat-batch/none.json")
    assert missing["status"] == "CREATE FAILED" and "NoSuchKey" in missing["failureReason"]
    listed = cp.list_batch_inference_jobs(solutionVersionArn=pr_version)["batchInferenceJobs"]
    assert [j["jobName"] for j in listed] == ["feat-missing", "feat-ranking"]

    def create(**changes: Any) -> tuple[str, int]:
        body = {
            "jobName": "feat-bad",
            "solutionVersionArn": pr_version,
            "roleArn": role,
            "jobInput": {"s3DataSource": {"path": "s3://feat-batch/rank.json"}},
            "jobOutput": {"s3DataDestination": {"path": "s3://feat-batch/out/"}},
            **changes,
        }
        return error_code(lambda: cp.create_batch_inference_job(**body))

    assert create(jobName="feat-ranking") == ("ResourceAlreadyExistsException", 400)
    assert create(numResults=501) == ("InvalidInputException", 400)
    assert create(batchInferenceJobMode="THEME_GENERATION") == ("InvalidInputException", 400)
    assert create(solutionVersionArn=pr_version[:-8] + "00000000") == ("ResourceNotFoundException", 400)
    assert create(filterArn=cheaper.replace("feat-batch-cheaper", "none")) == ("ResourceNotFoundException", 400)
    assert create(jobInput={"s3DataSource": {"path": "https://example.com/in.json"}}) == ("InvalidInputException", 400)


# -- HPO --------------------------------------------------------------------------------------------


def test_hpo_as_documented_over_the_wire(world: World) -> None:
    cp = world.c.cp
    recipe = cp.describe_recipe(recipeArn=RECIPE + "aws-user-personalization")["recipe"]
    algorithm = cp.describe_algorithm(algorithmArn=recipe["algorithmArn"])["algorithm"]
    assert algorithm["algorithmArn"] == "arn:aws:personalize:::algorithm/aws-user-personalization"
    assert algorithm["defaultHyperParameters"]["hidden_dimension"] == "149"
    integers = {r["name"]: r for r in algorithm["defaultHyperParameterRanges"]["integerHyperParameterRanges"]}
    assert integers["hidden_dimension"] == {
        "name": "hidden_dimension",
        "minValue": 32,
        "maxValue": 256,
        "isTunable": True,
    }
    assert algorithm["defaultResourceConfig"] == {"maxNumberOfTrainingJobs": "20", "maxParallelTrainingJobs": "5"}
    assert error_code(lambda: cp.describe_algorithm(algorithmArn="arn:aws:personalize:::algorithm/none")) == (
        "ResourceNotFoundException",
        400,
    )

    group = world.arns["group"]
    bad = {
        "hpoConfig": {
            "algorithmHyperParameterRanges": {
                "integerHyperParameterRanges": [{"name": "model.id_embedding_dim", "minValue": 30, "maxValue": 200}]
            }
        }
    }
    code, status, text = message(
        lambda: cp.create_solution(
            name="feat-hpo-bad",
            datasetGroupArn=group,
            recipeArn=recipe["recipeArn"],
            performHPO=True,
            solutionConfig=bad,
        )
    )
    assert (code, status, text) == (
        "InvalidInputException",
        400,
        "Provide a hyperparameter that is used in the "
        "algorithm: arn:aws:personalize:::algorithm/aws-user-personalization",
    )

    requests = {
        "aws-user-personalization": {
            "algorithmHyperParameterRanges": {
                "integerHyperParameterRanges": [{"name": "hidden_dimension", "minValue": 32, "maxValue": 64}],
                "categoricalHyperParameterRanges": [{"name": "recency_mask", "values": ["true", "false"]}],
            },
            "hpoResourceConfig": {"maxNumberOfTrainingJobs": "6", "maxParallelTrainingJobs": "2"},
        },
        "aws-sims": {
            "algorithmHyperParameterRanges": {
                "continuousHyperParameterRanges": [
                    {"name": "popularity_discount_factor", "minValue": 0.1, "maxValue": 0.3}
                ],
                "integerHyperParameterRanges": [{"name": "min_cointeraction_count", "minValue": 1, "maxValue": 2}],
            },
            "hpoResourceConfig": {"maxNumberOfTrainingJobs": "4", "maxParallelTrainingJobs": "4"},
            "hpoObjective": {"type": "Maximize", "metricName": "precision_at_10"},
        },
    }
    tuned_by_recipe: dict[str, Any] = {}
    for name, hpo in requests.items():
        solution = world.c.solution(
            group, f"feat-hpo-{name.removeprefix('aws-')}", name, performHPO=True, solutionConfig={"hpoConfig": hpo}
        )
        version = world.c.version(solution)
        assert version["status"] == "ACTIVE", version
        assert version["solutionConfig"]["hpoConfig"] == hpo
        tuned = version["tunedHPOParams"]["algorithmHyperParameters"]
        ranges = hpo["algorithmHyperParameterRanges"]
        for r in ranges.get("integerHyperParameterRanges", []) + ranges.get("continuousHyperParameterRanges", []):
            assert r["minValue"] <= float(tuned[r["name"]]) <= r["maxValue"], (r, tuned)
        for r in ranges.get("categoricalHyperParameterRanges", []):
            assert tuned[r["name"]] in r["values"]
        assert set(tuned) == {r["name"] for values in ranges.values() for r in values}
        metrics = cp.get_solution_metrics(solutionVersionArn=version["solutionVersionArn"])["metrics"]
        objective = hpo.get("hpoObjective", {}).get("metricName", "normalized_discounted_cumulative_gain_at_10")
        tuned_by_recipe[name] = {"ranges": ranges, "tuned": tuned, objective: metrics[objective]}
    write_result("local_personalize_hpo", tuned_by_recipe)  # for a reader; not stdout
