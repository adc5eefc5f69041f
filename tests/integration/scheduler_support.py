"""Shared set-up of the scheduler, archive and evaluate integration tests.

`make_lab` gives a local Personalize (``--fast``) with a dataset group, an interactions
dataset and an event tracker, all created through plain boto3 clients, plus helpers to
send generated interactions and to create solutions. `Harness` ticks a `Reconciler` in
the test thread (deterministic: a test decides exactly how far the loop runs).
"""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml
from clickstream_devkit.broker import EmbeddedBroker
from clickstream_devkit.generator import ClickstreamGenerator

from tests.helpers import TANSU_CONSUMER_SETTINGS, LocalPersonalize
from worker.config import DEFAULT_SCHEMA_DIR
from worker.config.mapping import default_mapping
from worker.config.solutions import SolutionSchedule
from worker.mapping import EventDecoder
from worker.records import DatasetType, Interaction, SourceRef
from worker.schedule.lifecycle import TYPE_PREFIX, LifecyclePublisher, SchedulerMetrics
from worker.schedule.memory_store import InMemoryStore, MemoryStore
from worker.schedule.observer import VolumeCounter
from worker.schedule.reconciler import Reconciler, TickReport
from worker.schemas import load_schema
from worker.validation import ValidationLimits

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/personalize-import"
SCHEMA = load_schema(DEFAULT_SCHEMA_DIR / "interactions.json")
NDCG10 = "normalized_discounted_cumulative_gain_at_10"
LEASE = dict(TANSU_CONSUMER_SETTINGS)
_names = itertools.count()


def campaign_arn(name: str) -> str:
    return f"arn:aws:personalize:{REGION}:{ACCOUNT}:campaign/{name}"


def generated_interactions(seed: int, count: int, *, users: int = 120, items: int = 150) -> list[Interaction]:
    """`count` generator records decoded by the worker's own decoder (valid ones only)."""
    decoder = EventDecoder(
        DatasetType.INTERACTIONS, default_mapping(DatasetType.INTERACTIONS), SCHEMA, ValidationLimits()
    )
    now = time.time()
    generator = ClickstreamGenerator(
        seed=seed, users=users, items=items, categories=8, start_time=now - count / 100.0, events_per_second=100.0
    )
    out = []
    for n, record in enumerate(generator.events(count)):
        decoded = decoder.decode(record.value, SourceRef("generated", 0, n), now)
        if isinstance(decoded, Interaction):
            out.append(decoded)
    return out


def wait_status(describe: Callable[[], dict[str, Any]], wanted: str, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        doc = describe()
        if doc.get("status") == wanted:
            return doc
        assert time.monotonic() < deadline, f"still {doc.get('status')} (wanted {wanted}): {doc}"
        time.sleep(0.05)


@dataclass
class Lab:
    server: LocalPersonalize
    control: Any
    events: Any
    runtime: Any
    group_arn: str = ""
    dataset_arn: str = ""
    tracking_id: str = ""

    def put(self, interactions: Iterable[Interaction]) -> int:
        """PutEvents, up to 10 events per call sharing (user, session), from a few threads."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for i in interactions:
            groups[(i.user_id or i.session_id, i.session_id)].append(i.event)
        calls = [(key, events[n : n + 10]) for key, events in groups.items() for n in range(0, len(events), 10)]

        def send(call: tuple[tuple[str, str], list[dict[str, Any]]]) -> int:
            (user, session), batch = call
            self.events.put_events(trackingId=self.tracking_id, userId=user, sessionId=session, eventList=batch)
            return len(batch)

        with ThreadPoolExecutor(max_workers=8) as pool:
            return sum(pool.map(send, calls))

    def solution(self, recipe: str = "aws-user-personalization", *, auto_training: bool = False) -> str:
        name = f"sol-{next(_names)}"
        arn = self.control.create_solution(
            name=name, datasetGroupArn=self.group_arn, recipeArn=f"arn:aws:personalize:::recipe/{recipe}",
            performAutoTraining=auto_training,
        )["solutionArn"]  # fmt: skip
        wait_status(lambda: self.control.describe_solution(solutionArn=arn)["solution"], "ACTIVE")
        return str(arn)

    def versions(self, solution_arn: str) -> list[dict[str, Any]]:
        return list(self.control.list_solution_versions(solutionArn=solution_arn)["solutionVersions"])

    def campaign(self, arn: str) -> dict[str, Any]:
        return dict(self.control.describe_campaign(campaignArn=arn)["campaign"])

    def serving(self, arn: str) -> str | None:
        try:
            campaign = self.campaign(arn)
        except self.control.exceptions.ResourceNotFoundException:
            return None
        update = campaign.get("latestCampaignUpdate")
        if campaign["status"] != "ACTIVE":
            return None
        if update and update["status"] == "ACTIVE":
            return str(update["solutionVersionArn"])
        return str(campaign["solutionVersionArn"])

    def recommend(self, campaign: str, user: str, n: int = 10) -> list[str]:
        reply = self.runtime.get_recommendations(campaignArn=campaign, userId=user, numResults=n)
        return [str(i["itemId"]) for i in reply["itemList"]]


def make_lab(start: Callable[..., LocalPersonalize], *, with_data: int = 3000, seed: int = 1) -> Lab:
    """A fresh local Personalize with a dataset group, dataset, tracker and `with_data` events."""
    server = start(extra_args=["--fast"])
    kwargs = {"endpoint_url": server.endpoint_url, "region_name": REGION}
    lab = Lab(server, boto3.client("personalize", **kwargs), boto3.client("personalize-events", **kwargs),
              boto3.client("personalize-runtime", **kwargs))  # fmt: skip
    cp = lab.control
    schema = cp.create_schema(name="interactions", schema=SCHEMA.text)["schemaArn"]
    lab.group_arn = cp.create_dataset_group(name="shop")["datasetGroupArn"]
    wait_status(lambda: cp.describe_dataset_group(datasetGroupArn=lab.group_arn)["datasetGroup"], "ACTIVE")
    lab.dataset_arn = cp.create_dataset(name="shop-interactions", schemaArn=schema, datasetGroupArn=lab.group_arn,
                                        datasetType="Interactions")["datasetArn"]  # fmt: skip
    wait_status(lambda: cp.describe_dataset(datasetArn=lab.dataset_arn)["dataset"], "ACTIVE")
    tracker = cp.create_event_tracker(name="shop", datasetGroupArn=lab.group_arn)
    lab.tracking_id = tracker["trackingId"]
    wait_status(lambda: cp.describe_event_tracker(eventTrackerArn=tracker["eventTrackerArn"])["eventTracker"], "ACTIVE")
    if with_data:
        lab.put(generated_interactions(seed, with_data))
    return lab


def schedule(solution: str, camp: str | None = None, **overrides: Any) -> SolutionSchedule:
    """A schedule that retrains as soon as allowed (tests set the guards they exercise)."""
    data: dict[str, Any] = {
        "solution_arn": solution,
        "campaigns": [{"arn": camp}] if camp else [],
        "full": {"interval_s": 1},
        "min_interval_s": 0,
        "max_trainings_per_day": 10,
        "gate": {"metric": NDCG10, "max_relative_drop": 1.0},
    }
    data.update(overrides)
    return SolutionSchedule.model_validate(data)


def scheduler_section(cfg: SolutionSchedule, control: str, **extra: Any) -> dict[str, Any]:
    """The ``scheduler:`` section of a service managing `cfg` on the control topic `control`."""
    return {
        "control_topic": control,
        "group_id": control,
        "lifecycle_topic": f"{control}-events",
        "tick_interval_s": 0.2,
        "lease": LEASE,
        "solutions": [json.loads(cfg.model_dump_json())],
        **extra,
    }


def write_config(path: Path, lab: Lab, broker: EmbeddedBroker, scheduler: dict[str, Any]) -> Path:
    """A worker configuration file for the CLI commands (the scheduler talks to the lab)."""
    config = {
        "kafka": {"bootstrap_servers": broker.bootstrap},
        "topics": [{"name": "clicks", "dataset_type": "interactions", "tracking_id": lab.tracking_id}],
        "observability": {"http_port": 0, "log_format": "json"},
        "scheduler": {"personalize_endpoint_url": lab.server.endpoint_url, "kafka_timeout_s": 5, **scheduler},
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@dataclass
class Harness:
    """A Reconciler ticked by the test (leader unless told otherwise), with an in-memory store."""

    lab: Lab
    schedules: Sequence[SolutionSchedule]
    store: MemoryStore = field(default_factory=InMemoryStore)
    volume: VolumeCounter | None = None
    topics: Sequence[str] = ()
    reconciler: Reconciler = field(init=False)
    reports: list[TickReport] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.publisher = LifecyclePublisher(None, None, "/tests/scheduler")
        self.reconciler = Reconciler(
            self.lab.control, self.schedules, store=self.store, publisher=self.publisher,
            metrics=SchedulerMetrics(), volume=self.volume, input_topics=self.topics,
        )  # fmt: skip
        self.reconciler.load(1)

    def ticks(self, timeout_s: float, interval_s: float = 0.1) -> Iterator[TickReport]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for report in self.reconciler.tick(may_act=True):
                self.reports.append(report)
                assert report.error is None, report.error
                yield report
            time.sleep(interval_s)
        raise AssertionError(f"condition not reached in {timeout_s}s; last: {self.last_reason()}")

    def until(self, predicate: Callable[[TickReport], bool], timeout_s: float = 30.0) -> TickReport:
        for report in self.ticks(timeout_s):
            if predicate(report):
                return report
        raise AssertionError("unreachable")  # pragma: no cover

    def last_reason(self) -> str:
        last = self.reports[-1] if self.reports else None
        return "no tick" if last is None or last.decision is None else f"{last.decision.kind}: {last.decision.reason}"

    def kinds(self) -> list[str]:
        return [e["type"].removeprefix(TYPE_PREFIX) for e in self.publisher.recent]

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.publisher.of_kind(kind)]


def acted(kind: str) -> Callable[[TickReport], bool]:
    """Predicate: this tick's decision was `kind` and acting it succeeded (or made no call)."""

    def check(report: TickReport) -> bool:
        return report.decision is not None and report.decision.kind == kind and not (
            report.result is not None and report.result.failed
        )

    return check
