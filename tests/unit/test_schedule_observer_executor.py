"""The scheduler's I/O edges without a server: parsing, acting, announcing, CloudEvents.

Personalize calls go through a real botocore ``personalize`` client with botocore's
Stubber, so every request is checked against the service model (the contract) and every
reply is parsed by botocore exactly as a real one would be.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from kafka import TopicPartition
from kafka.structs import OffsetAndTimestamp
from prometheus_client import CollectorRegistry

from worker.config.archive import ArchiveSettings
from worker.config.scheduler import SchedulerSettings, resource_name
from worker.config.solutions import SolutionSchedule
from worker.schedule.decisions import Decision, Import, Nothing, Promote, Refuse, Rollback, Stop, Train
from worker.schedule.executor import act
from worker.schedule.lifecycle import LifecyclePublisher, SchedulerMetrics, cloud_event, rfc3339
from worker.schedule.memory_store import InMemoryStore, SolutionState, decode_record
from worker.schedule.observer import (
    PersonalizeObserver,
    campaign_view,
    count_since_from_offsets,
    import_view,
    solution_view,
    version_view,
)
from worker.schedule.reconciler import Reconciler, describe_outcome, outcome_keys
from worker.schedule.state import (
    ACTIVE,
    CREATE_FAILED,
    CREATE_IN_PROGRESS,
    CampaignView,
    Memory,
    Observation,
    SolutionView,
    UpdateView,
    VersionView,
)

ACCOUNT = "arn:aws:personalize:us-east-1:123456789012"
SOL = f"{ACCOUNT}:solution/shop"
V1, V2 = f"{SOL}/aaaa0001", f"{SOL}/aaaa0002"
CAMP = f"{ACCOUNT}:campaign/shop"
DATASET = f"{ACCOUNT}:dataset/shop/INTERACTIONS"
RECIPE = "arn:aws:personalize:::recipe/aws-user-personalization"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = T0.timestamp() + 3600
METRICS = {"normalized_discounted_cumulative_gain_at_10": 0.3, "precision_at_5": 0.1}


@pytest.fixture
def client() -> Any:
    return boto3.client("personalize", region_name="us-east-1")


@pytest.fixture
def stub(client: Any) -> Iterator[Stubber]:
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def decision(action: Any, **details: Any) -> Decision:
    return Decision(action, "because", details)


# -- parsing ----------------------------------------------------------------------------------


def test_parse_solution_version_campaign_and_import() -> None:
    solution = solution_view({"solutionArn": SOL, "status": ACTIVE, "recipeArn": RECIPE, "performAutoTraining": True})
    assert (solution.recipe_arn, solution.perform_auto_training) == (RECIPE, True)
    version = version_view(
        {"solutionVersionArn": V1, "status": ACTIVE, "trainingMode": "UPDATE", "creationDateTime": T0,
         "lastUpdatedDateTime": T0.replace(hour=13)},
        METRICS,
    )  # fmt: skip
    assert (version.training_mode, version.created_at, version.updated_at) == ("UPDATE", T0.timestamp(), NOW)
    assert version.metrics == METRICS
    assert version_view({"solutionVersionArn": V2, "status": CREATE_IN_PROGRESS}).metrics is None
    campaign = campaign_view({
        "campaignArn": CAMP, "status": ACTIVE, "solutionVersionArn": V1, "minProvisionedTPS": 2,
        "campaignConfig": {"syncWithLatestSolutionVersion": False},
        "latestCampaignUpdate": {"solutionVersionArn": V2, "status": CREATE_FAILED, "failureReason": "boom",
                                 "creationDateTime": T0},
    })  # fmt: skip
    assert campaign.latest_update == UpdateView(V2, CREATE_FAILED, T0.timestamp(), "boom")
    assert (campaign.serving_version_arn, campaign.min_tps, campaign.syncs_with_latest) == (V1, 2, False)
    assert campaign_view({"campaignArn": CAMP, "status": ACTIVE, "solutionVersionArn": V1}).latest_update is None
    job = import_view({"datasetImportJobArn": "arn:j", "status": ACTIVE, "creationDateTime": T0,
                       "importMode": "INCREMENTAL"})  # fmt: skip
    assert (job.import_mode, job.created_at) == ("INCREMENTAL", T0.timestamp())


def test_new_interactions_from_offsets() -> None:
    a, b, c = (TopicPartition("clicks", p) for p in range(3))
    ends = {a: 100, b: 50, c: 10}
    starts = {
        a: OffsetAndTimestamp(60, 1, -1),  # 40 new
        b: None,  # nothing at or after the time
        c: OffsetAndTimestamp(0, -1, -1),  # Tansu's "none": offset 0 with timestamp -1
    }
    assert count_since_from_offsets(starts, ends, 1000, {}) == 40
    assert count_since_from_offsets({}, ends, None, {a: 10, b: 0, c: 10}) == 90 + 50


# -- acting -----------------------------------------------------------------------------------


def test_train_calls_create_solution_version_and_remembers_it(client: Any, stub: Stubber) -> None:
    stub.add_response(
        "create_solution_version", {"solutionVersionArn": V2}, {"solutionArn": SOL, "trainingMode": "FULL"}
    )
    result = act(client, decision(Train(SOL, "FULL", "schedule")), Memory(), NOW)
    assert result.operation == "CreateSolutionVersion"
    assert [s.version_arn for s in result.memory.training_starts] == [V2]
    [(kind, data)] = result.events
    assert (kind, data["version_arn"], data["trigger"]) == ("training.started", V2, "schedule")


def test_promote_updates_the_campaign_with_configured_tps_and_config(client: Any, stub: Stubber) -> None:
    config = {"itemExplorationConfig": {"explorationWeight": "0.3"}}
    stub.add_response(
        "update_campaign",
        {"campaignArn": CAMP},
        {"campaignArn": CAMP, "solutionVersionArn": V2, "minProvisionedTPS": 3, "campaignConfig": config},
    )
    promote = Promote(CAMP, V2, 3, config, V1)
    result = act(client, decision(promote, gate={"candidate": 0.3, "served": 0.29}), Memory(), NOW)
    assert result.memory.promoted_to(CAMP) == {V2}
    assert result.memory.previous_serving[CAMP] == V1
    assert [k for k, _ in result.events] == ["gate.passed", "campaign.update_started"]
    assert result.events[0][1]["gate"] == {"candidate": 0.3, "served": 0.29}


def test_promote_creates_a_missing_campaign_named_after_its_arn(client: Any, stub: Stubber) -> None:
    stub.add_response(
        "create_campaign", {"campaignArn": CAMP}, {"name": "shop", "solutionVersionArn": V1, "minProvisionedTPS": 1}
    )
    result = act(client, decision(Promote(CAMP, V1, 1, {}, None, create=True)), Memory(), NOW)
    assert result.operation == "CreateCampaign"
    assert result.memory.previous_serving == {CAMP: None}


def test_rollback_keeps_memory_so_a_failed_rollback_is_recognised(client: Any, stub: Stubber) -> None:
    memory = Memory().record_promotion(CAMP, V2, V1)
    stub.add_response(
        "update_campaign",
        {"campaignArn": CAMP},
        {"campaignArn": CAMP, "solutionVersionArn": V1, "minProvisionedTPS": 1},
    )
    result = act(client, decision(Rollback(CAMP, V1, V2, 1, {}, "update failed")), memory, NOW)
    assert result.memory.promoted == memory.promoted
    assert result.memory.previous_serving == memory.previous_serving
    assert result.events[0][0] == "campaign.rolled_back"


def test_stop_and_import(client: Any, stub: Stubber) -> None:
    stub.add_response("stop_solution_version_creation", {}, {"solutionVersionArn": V2})
    assert act(client, decision(Stop(V2), running_s=99.0), Memory(), NOW).events[0][1]["running_s"] == 99.0
    role = "arn:aws:iam::123456789012:role/p"
    stub.add_response(
        "create_dataset_import_job",
        {"datasetImportJobArn": "arn:job"},
        {"jobName": "imp-1", "datasetArn": DATASET, "dataSource": {"dataLocation": "s3://b/p/"}, "roleArn": role,
         "importMode": "INCREMENTAL"},
    )  # fmt: skip
    result = act(client, decision(Import(DATASET, "s3://b/p/", role, "INCREMENTAL", "imp-1")), Memory(), NOW)
    assert result.events == [("import.started", {
        "job_arn": "arn:job", "dataset_arn": DATASET, "data_location": "s3://b/p/", "import_mode": "INCREMENTAL",
        "reason": "because",
    })]  # fmt: skip


def test_refuse_and_nothing_make_no_call(client: Any, stub: Stubber) -> None:
    refused = act(client, decision(Refuse(CAMP, V2, "regression", METRICS)), Memory(), NOW)
    assert refused.memory.refused == {V2: "regression"}
    assert refused.events[0][1]["metrics"] == METRICS
    assert act(client, decision(Nothing()), Memory(), NOW).operation is None


@pytest.mark.parametrize(
    ("code", "kind"),
    [("ResourceInUseException", "action.retry_later"), ("LimitExceededException", "action.retry_later"),
     ("InvalidInputException", "action.failed")],
)  # fmt: skip
def test_errors_back_off(client: Any, stub: Stubber, code: str, kind: str) -> None:
    stub.add_client_error("create_solution_version", service_error_code=code, service_message="busy")
    result = act(client, decision(Train(SOL, "FULL", "first")), Memory(), NOW)
    assert result.error_code == code
    assert result.memory.retry_after is not None and result.memory.retry_after > NOW
    assert result.memory.consecutive_errors == 1
    assert result.events[0][0] == kind
    assert not result.memory.training_starts


# -- observing ---------------------------------------------------------------------------------


def test_observer_lists_every_page_fetches_metrics_of_active_versions_once(client: Any, stub: Stubber) -> None:
    cfg = SolutionSchedule(solution_arn=SOL, campaigns=[{"arn": CAMP}])
    observer = PersonalizeObserver(client)
    for _ in range(2):
        solution = {"solution": {"solutionArn": SOL, "status": ACTIVE}}
        stub.add_response("describe_solution", solution, {"solutionArn": SOL})
        stub.add_response(
            "list_solution_versions",
            {"solutionVersions": [{"solutionVersionArn": V1, "status": ACTIVE, "trainingMode": "FULL",
                                   "creationDateTime": T0}], "nextToken": "page2"},
            {"solutionArn": SOL},
        )  # fmt: skip
        stub.add_response(
            "list_solution_versions",
            {"solutionVersions": [{"solutionVersionArn": V2, "status": CREATE_IN_PROGRESS, "trainingMode": "FULL",
                                   "creationDateTime": T0.replace(hour=13)}]},
            {"solutionArn": SOL, "nextToken": "page2"},
        )  # fmt: skip
        if _ == 0:  # cached afterwards: metrics of an ACTIVE version never change
            stub.add_response(
                "get_solution_metrics", {"solutionVersionArn": V1, "metrics": METRICS}, {"solutionVersionArn": V1}
            )
        stub.add_client_error("describe_campaign", service_error_code="ResourceNotFoundException", service_message="no")
        obs = observer.observe(cfg, Memory(), NOW)
        assert [v.arn for v in obs.versions] == [V1, V2]
        assert obs.version(V1).metrics == METRICS  # type: ignore[union-attr]
        assert obs.version(V2).metrics is None  # type: ignore[union-attr]
        assert obs.campaigns == ()


# -- announcing and the tick -------------------------------------------------------------------------


def test_outcomes_are_keyed_by_terminal_state() -> None:
    obs = Observation(
        NOW, SolutionView(SOL),
        versions=(VersionView(V1, ACTIVE, created_at=1.0, updated_at=31.0, metrics=METRICS),
                  VersionView(V2, CREATE_IN_PROGRESS, created_at=2.0)),
        campaigns=(CampaignView(CAMP, ACTIVE, V1, UpdateView(V2, CREATE_FAILED, 5.0, "boom")),),
    )  # fmt: skip
    keys = outcome_keys(obs)
    assert keys == {f"version:{V1}": ACTIVE, f"update:{CAMP}|{V2}|5.000": CREATE_FAILED}
    kind, data = describe_outcome(f"version:{V1}", ACTIVE, obs)
    assert (kind, data["metrics"], data["duration_s"]) == ("training.succeeded", METRICS, 30.0)
    kind, data = describe_outcome(f"update:{CAMP}|{V2}|5.000", CREATE_FAILED, obs)
    assert (kind, data["failure_reason"]) == ("campaign.update_failed", "boom")


def test_leader_tick_creates_the_campaign_and_persists_memory(client: Any, stub: Stubber) -> None:
    cfg = SolutionSchedule(solution_arn=SOL, campaigns=[{"arn": CAMP, "min_provisioned_tps": 2}])
    store = InMemoryStore({SOL: SolutionState(baselined=True)})
    registry = CollectorRegistry()
    publisher = LifecyclePublisher(None, None, "/test")
    reconciler = Reconciler(client, [cfg], store=store, publisher=publisher, metrics=SchedulerMetrics(registry),
                            clock=lambda: NOW)  # fmt: skip
    reconciler.load(1)
    solution = {"solutionArn": SOL, "status": ACTIVE, "recipeArn": RECIPE, "performAutoTraining": False}
    stub.add_response("describe_solution", {"solution": solution}, {"solutionArn": SOL})
    stub.add_response("list_solution_versions", {"solutionVersions": [
        {"solutionVersionArn": V1, "status": ACTIVE, "trainingMode": "FULL", "creationDateTime": T0}]},
        {"solutionArn": SOL})  # fmt: skip
    reply = {"solutionVersionArn": V1, "metrics": METRICS}
    stub.add_response("get_solution_metrics", reply, {"solutionVersionArn": V1})
    stub.add_client_error("describe_campaign", service_error_code="ResourceNotFoundException", service_message="no")
    stub.add_response("create_campaign", {"campaignArn": CAMP},
                      {"name": "shop", "solutionVersionArn": V1, "minProvisionedTPS": 2})  # fmt: skip
    [report] = reconciler.tick(may_act=True)
    assert report.acted and report.decision is not None and isinstance(report.decision.action, Promote)
    assert store.states[SOL].memory.promoted_to(CAMP) == {V1}
    types = [e["type"].removeprefix("com.clickstream.scheduler.") for e in publisher.recent]
    assert types == ["training.succeeded", "decision", "gate.passed", "campaign.create_started"]
    assert registry.get_sample_value("clickstream_scheduler_trainings_today", {"solution": "shop"}) == 1.0
    assert registry.get_sample_value(
        "clickstream_scheduler_decisions_total", {"solution": "shop", "action": "promote"}
    ) == 1.0


def test_a_live_tick_without_the_lease_observes_and_decides_but_does_not_act(client: Any, stub: Stubber) -> None:
    """``retrain --dry-run``: observe and decide without leading (a follower's tick observes nothing)."""
    cfg = SolutionSchedule(solution_arn=SOL)
    store = InMemoryStore()
    publisher = LifecyclePublisher(None, None, "/test")
    reconciler = Reconciler(client, [cfg], store=store, publisher=publisher, metrics=SchedulerMetrics(),
                            clock=lambda: NOW)  # fmt: skip
    stub.add_response("describe_solution", {"solution": {"solutionArn": SOL, "status": ACTIVE}}, {"solutionArn": SOL})
    stub.add_response("list_solution_versions", {"solutionVersions": []}, {"solutionArn": SOL})
    [report] = reconciler.tick(may_act=False, live=True)
    assert report.decision is not None and isinstance(report.decision.action, Train)  # would train: first FULL
    assert report.result is None and store.saves == 0 and not publisher.recent


# -- events and memory records ---------------------------------------------------------------------


def test_cloud_event_attributes() -> None:
    event = cloud_event("training.started", {"x": 1}, source="/w/s", now=T0.timestamp() + 0.25, subject=SOL,
                        event_id="id-1")  # fmt: skip
    assert event == {
        "specversion": "1.0", "id": "id-1", "source": "/w/s", "type": "com.clickstream.scheduler.training.started",
        "time": "2026-03-01T12:00:00.250Z", "datacontenttype": "application/json", "subject": SOL, "data": {"x": 1},
    }  # fmt: skip
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    json.dumps(cloud_event("decision", {}, source="/s", now=1.0))  # JSON-serialisable


def test_memory_records_round_trip_and_ignore_other_keys() -> None:
    state = SolutionState(Memory().record_refusal(V2, "worse").record_training(V1, 5.0), {"version:x": ACTIVE}, True)
    decoded = decode_record(f"memory/{SOL}".encode(), json.dumps(state.to_dict()).encode())
    assert decoded == (SOL, state)
    assert decode_record(f"memory/{SOL}".encode(), None) == (SOL, None)  # tombstone
    assert decode_record(b"other", b"{}") is None
    assert decode_record(f"memory/{SOL}".encode(), b"not json") is None


def test_scheduler_settings_validate_names_and_pick_solutions() -> None:
    settings = SchedulerSettings.model_validate({"enabled": True, "solutions": [{"solution_arn": SOL}]})
    assert settings.solution("shop") is settings.solution(SOL) is settings.solutions[0]
    assert resource_name(CAMP) == "shop"
    with pytest.raises(ValueError, match="no solutions"):
        SchedulerSettings.model_validate({"enabled": True})
    archive = ArchiveSettings.model_validate({"bucket": "my-bucket", "prefix": "/a/b"})
    assert archive.data_location == "s3://my-bucket/a/b/"
    with pytest.raises(ValueError, match="bucket"):
        ArchiveSettings.model_validate({"bucket": "Bad_Bucket"})


class FlakyStore(InMemoryStore):
    """Fails the first save, like a broker that is briefly unreachable."""

    def __init__(self) -> None:
        super().__init__({SOL: SolutionState(baselined=True)})
        self.failures = 1

    def save(self, solution_arn: str, state: SolutionState) -> None:
        if self.failures:
            self.failures -= 1
            raise TimeoutError("broker unreachable")
        super().save(solution_arn, state)


def test_memory_that_could_not_be_saved_is_saved_on_the_next_tick(client: Any, stub: Stubber) -> None:
    store = FlakyStore()
    reconciler = Reconciler(client, [SolutionSchedule(solution_arn=SOL)], store=store,
                            publisher=LifecyclePublisher(None, None, "/t"), metrics=SchedulerMetrics(),
                            clock=lambda: NOW)  # fmt: skip
    reconciler.load(1)
    solution = {"solution": {"solutionArn": SOL, "status": ACTIVE}}
    stub.add_response("describe_solution", solution, {"solutionArn": SOL})
    stub.add_response("list_solution_versions", {"solutionVersions": []}, {"solutionArn": SOL})
    expected = {"solutionArn": SOL, "trainingMode": "FULL"}
    stub.add_response("create_solution_version", {"solutionVersionArn": V1}, expected)
    [first] = reconciler.tick(may_act=True)
    assert first.acted and store.saves == 0  # acted, but the memory is not persisted yet
    stub.add_response("describe_solution", solution, {"solutionArn": SOL})
    running = {"solutionVersionArn": V1, "status": CREATE_IN_PROGRESS, "trainingMode": "FULL", "creationDateTime": T0}
    stub.add_response("list_solution_versions", {"solutionVersions": [running]}, {"solutionArn": SOL})
    [second] = reconciler.tick(may_act=True)
    assert second.decision is not None and second.decision.kind == "wait"
    assert store.saves == 1 and [s.version_arn for s in store.states[SOL].memory.training_starts] == [V1]



@pytest.mark.integration
def test_volume_counter_accepts_the_worker_kafka_settings(broker: Any, kafka_topic: Any) -> None:
    """Regression: the worker's client config already carries request_timeout_ms."""
    import time as _time

    from worker.config import KafkaSettings
    from worker.schedule.observer import VolumeCounter

    topic = kafka_topic(partitions=1)
    counter = VolumeCounter(KafkaSettings(bootstrap_servers=broker.bootstrap).client_config(), timeout_s=5)
    assert counter.count_since([topic], _time.time() - 60) in (0, None)
