"""The control-plane side of `dev`: provisioning through the real Personalize API, and watching it.

`dev` creates everything a newcomer would create in AWS (schemas, dataset group, datasets,
event tracker, solutions) with plain boto3 calls against the local Personalize, so the
run exercises the same wire protocol as production instead of pre-registered shortcuts.
The scheduler (configured by `scheduler_section`) then trains and promotes by itself;
`observe` only reads cheap Describe/List calls so `dev` can show what it does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from worker.config import DEFAULT_SCHEMA_DIR

REGION = "us-east-1"
#: Label -> recipe; the labels name the solutions and campaigns ("dev-<run>-<label>").
RECIPES = {
    "user-personalization": "arn:aws:personalize:::recipe/aws-user-personalization",
    "sims": "arn:aws:personalize:::recipe/aws-sims",
    "popularity-count": "arn:aws:personalize:::recipe/aws-popularity-count",
}
BASELINE = "popularity-count"
IN_FLIGHT = frozenset({"CREATE PENDING", "CREATE IN_PROGRESS", "CREATE STOPPING"})
METRICS = (
    ("ndcg@10", "normalized_discounted_cumulative_gain_at_10"),
    ("precision@10", "precision_at_10"),
    ("mrr@25", "mean_reciprocal_rank_at_25"),
    ("coverage", "coverage"),
)


def clients(endpoint_url: str) -> tuple[Any, Any]:
    """(control plane, runtime) boto3 clients on the local Personalize."""
    kwargs = {"endpoint_url": endpoint_url, "region_name": REGION}
    return boto3.client("personalize", **kwargs), boto3.client("personalize-runtime", **kwargs)


def wait_active(describe: Callable[[], dict[str, Any]], what: str, timeout_s: float = 30.0) -> None:
    """Poll a Describe* call until ACTIVE; a FAILED status or the timeout raises."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = describe().get("status", "")
        if status == "ACTIVE":
            return
        if "FAILED" in status or time.monotonic() > deadline:
            raise RuntimeError(f"{what} is {status or 'unknown'} (wanted ACTIVE)")
        time.sleep(0.1)


@dataclass(frozen=True)
class Provisioned:
    group_arn: str
    datasets: dict[str, str]
    tracking_id: str
    solutions: dict[str, str]
    campaigns: dict[str, str]


def _describer(call: Callable[..., Any], key: str, arn: str, member: str) -> Callable[[], dict[str, Any]]:
    def describe() -> dict[str, Any]:
        return dict(call(**{key: arn})[member])

    return describe


def provision(client: Any, run: str) -> Provisioned:
    """Schemas, dataset group, datasets, event tracker and solutions, each waited ACTIVE."""
    schemas = {
        kind: client.create_schema(name=f"{run}-{kind}", schema=(DEFAULT_SCHEMA_DIR / f"{kind}.json").read_text())[
            "schemaArn"
        ]
        for kind in ("interactions", "items", "users")
    }
    group = client.create_dataset_group(name=run)["datasetGroupArn"]
    wait_active(lambda: client.describe_dataset_group(datasetGroupArn=group)["datasetGroup"], "dataset group")
    datasets: dict[str, str] = {}
    for kind, dataset_type in (("interactions", "Interactions"), ("items", "Items"), ("users", "Users")):
        arn = client.create_dataset(name=f"{run}-{kind}", schemaArn=schemas[kind], datasetGroupArn=group,
                                    datasetType=dataset_type)["datasetArn"]  # fmt: skip
        wait_active(_describer(client.describe_dataset, "datasetArn", arn, "dataset"), f"{kind} dataset")
        datasets[kind] = arn
    tracker = client.create_event_tracker(name=run, datasetGroupArn=group)
    wait_active(lambda: client.describe_event_tracker(eventTrackerArn=tracker["eventTrackerArn"])["eventTracker"],
                "event tracker")  # fmt: skip
    solutions: dict[str, str] = {}
    for label, recipe in RECIPES.items():
        arn = client.create_solution(name=f"{run}-{label}", datasetGroupArn=group, recipeArn=recipe,
                                     performAutoTraining=False)["solutionArn"]  # fmt: skip
        solutions[label] = arn
    for label, arn in solutions.items():
        wait_active(_describer(client.describe_solution, "solutionArn", arn, "solution"), f"solution {label}")
    prefix = group.split(":dataset-group/")[0]
    campaigns = {label: f"{prefix}:campaign/{run}-{label}" for label in RECIPES}
    return Provisioned(group, datasets, tracker["trackingId"], solutions, campaigns)


def scheduler_section(p: Provisioned, endpoint_url: str, *, retrain_every_s: float, tick_s: float,
                      lease: dict[str, int], min_new_interactions: int) -> dict[str, Any]:  # fmt: skip
    """The ``scheduler:`` section for a fast dev cadence: FULL every `retrain_every_s`, and only
    once `min_new_interactions` were stored since the last training (``data_volume.required``;
    `dev` gives the scheduler a counter of stored interactions, dev_account.StoredVolume).
    """
    return {
        "enabled": True,
        "tick_interval_s": tick_s,
        "control_topic": "clickstream-dev-scheduler",
        "lifecycle_topic": "clickstream-dev-scheduler-events",
        "group_id": "clickstream-dev-scheduler",
        "personalize_endpoint_url": endpoint_url,
        "kafka_timeout_s": 5,
        "lease": lease,
        "solutions": [
            {
                "solution_arn": arn,
                "campaigns": [{"arn": p.campaigns[label]}],
                "full": {"interval_s": retrain_every_s},
                "data_volume": {"min_new_interactions": min_new_interactions, "trigger": False, "required": True},
                "min_interval_s": min(10.0, retrain_every_s),
                "max_trainings_per_day": 1000,
                "stop_training_after_s": 600,
            }
            for label, arn in p.solutions.items()
        ],
    }


# -- watching -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    arn: str
    status: str
    created: float

    @property
    def short(self) -> str:
        return self.arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ControlState:
    """Per solution label: its versions (newest first) and what its campaign serves."""

    versions: dict[str, list[Version]] = field(default_factory=dict)
    serving: dict[str, str | None] = field(default_factory=dict)
    campaign_status: dict[str, str] = field(default_factory=dict)

    def active(self, label: str) -> list[Version]:
        return [v for v in self.versions.get(label, []) if v.status == "ACTIVE"]

    @property
    def active_count(self) -> int:
        return sum(len(self.active(label)) for label in self.versions)


def _serving(client: Any, arn: str) -> tuple[str | None, str]:
    try:
        campaign = client.describe_campaign(campaignArn=arn)["campaign"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None, "not created"
        raise
    if campaign["status"] != "ACTIVE":
        return None, str(campaign["status"])
    update = campaign.get("latestCampaignUpdate")
    if update and update.get("status") == "ACTIVE":
        return str(update["solutionVersionArn"]), "ACTIVE"
    status = f"ACTIVE, update {update['status']}" if update else "ACTIVE"
    return str(campaign["solutionVersionArn"]), status


def observe(client: Any, p: Provisioned) -> ControlState:
    """One ListSolutionVersions per solution and one DescribeCampaign per campaign."""
    state = ControlState()
    for label, solution in p.solutions.items():
        listed = client.list_solution_versions(solutionArn=solution).get("solutionVersions", [])
        versions = [Version(v["solutionVersionArn"], v["status"], v["creationDateTime"].timestamp()) for v in listed]
        state.versions[label] = sorted(versions, key=lambda v: v.created, reverse=True)
        state.serving[label], state.campaign_status[label] = _serving(client, p.campaigns[label])
    return state


def metrics_rows(client: Any, state: ControlState) -> list[tuple[str, str, dict[str, float]]]:
    """(solution label, version short id, metrics) of every ACTIVE version, oldest first."""
    rows = []
    for label in state.versions:
        for version in reversed(state.active(label)):
            metrics = client.get_solution_metrics(solutionVersionArn=version.arn).get("metrics", {})
            rows.append((label, version.short, {k: float(v) for k, v in metrics.items()}))
    return rows


def recommend(runtime: Any, campaign_arn: str, user_id: str, n: int = 10) -> list[str]:
    reply = runtime.get_recommendations(campaignArn=campaign_arn, userId=user_id, numResults=n)
    return [str(item["itemId"]) for item in reply.get("itemList", [])]
