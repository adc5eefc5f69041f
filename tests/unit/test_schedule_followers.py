"""Leader and followers in the reconciler: only the leader calls Personalize and publishes;
the others follow its snapshots; a new leader observes before it acts.

Personalize calls go through a real botocore client under botocore's Stubber: a call
that was not queued fails the test, so "no response queued" proves "no call made".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber
from prometheus_client import CollectorRegistry

from worker.config.solutions import SolutionSchedule
from worker.schedule.lifecycle import LifecyclePublisher, SchedulerMetrics
from worker.schedule.memory_store import InMemoryStore, SolutionState
from worker.schedule.reconciler import Reconciler
from worker.schedule.snapshot import freshness
from worker.schedule.snapshot_board import InMemorySnapshotBoard
from worker.schedule.state import ACTIVE, CREATE_IN_PROGRESS

ACCOUNT = "arn:aws:personalize:us-east-1:123456789012"
SOL = f"{ACCOUNT}:solution/shop"
CAMP = f"{ACCOUNT}:campaign/shop"
V1 = f"{SOL}/aaaa0001"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = T0.timestamp() + 3600
SOLUTION = {"solution": {"solutionArn": SOL, "status": ACTIVE}}
CFG = SolutionSchedule(solution_arn=SOL, campaigns=[{"arn": CAMP}])


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client() -> Any:
    return boto3.client("personalize", region_name="us-east-1")


@pytest.fixture
def stub(client: Any) -> Iterator[Stubber]:
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def replica(
    client: Any, board: InMemorySnapshotBoard, name: str, clock: Clock,
    registry: CollectorRegistry | None = None, store: InMemoryStore | None = None,
) -> Reconciler:  # fmt: skip
    return Reconciler(client, [CFG], store=store or InMemoryStore({SOL: SolutionState(baselined=True)}),
                      publisher=LifecyclePublisher(None, None, "/t"), metrics=SchedulerMetrics(registry),
                      board=board, replica=name, tick_interval_s=10.0, clock=clock)  # fmt: skip


def queue_observation(stub: Stubber, versions: list[dict[str, Any]], campaign: bool = True) -> None:
    stub.add_response("describe_solution", SOLUTION, {"solutionArn": SOL})
    stub.add_response("list_solution_versions", {"solutionVersions": versions}, {"solutionArn": SOL})
    for v in versions:
        if v["status"] == ACTIVE:
            metrics = {"normalized_discounted_cumulative_gain_at_10": 0.3}
            stub.add_response("get_solution_metrics", {"solutionVersionArn": v["solutionVersionArn"],
                                                       "metrics": metrics}, {"solutionVersionArn": V1})  # fmt: skip
    if campaign:
        described = {"campaignArn": CAMP, "status": ACTIVE, "solutionVersionArn": V1}
        stub.add_response("describe_campaign", {"campaign": described}, {"campaignArn": CAMP})
    else:
        stub.add_client_error("describe_campaign", service_error_code="ResourceNotFoundException",
                              service_message="no")  # fmt: skip


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_the_leader_publishes_what_it_observed_decided_and_did(client: Any, stub: Stubber) -> None:
    board, clock = InMemorySnapshotBoard(), Clock()
    leader = replica(client, board, "pod-a/1", clock)
    leader.load(1)
    queue_observation(stub, [], campaign=False)
    stub.add_response("create_solution_version", {"solutionVersionArn": V1}, {"solutionArn": SOL,
                                                                              "trainingMode": "FULL"})  # fmt: skip
    [report] = leader.tick(may_act=True)
    assert report.source == "leader" and report.acted
    [snap] = board.published
    assert (snap.solution_arn, snap.replica, snap.generation, snap.tick_interval_s) == (SOL, "pod-a/1", 0, 10.0)
    assert board.claims == ["pod-a/1"]  # the leadership was claimed when the lease came (load)
    assert (snap.decision, snap.action, snap.released, snap.error) == ("train", "CreateSolutionVersion done", False,
                                                                      None)  # fmt: skip
    assert snap.observation is not None and snap.observation.now == NOW == snap.published_at
    assert [s.version_arn for s in snap.observation.memory.training_starts] == [V1]  # memory after acting
    assert board.reads == 0  # a leader does not read the board


def test_a_follower_makes_no_personalize_call_and_mirrors_the_leader(client: Any, stub: Stubber) -> None:
    board, clock = InMemorySnapshotBoard(), Clock()
    registry = CollectorRegistry()
    follower = replica(client, board, "pod-b/2", clock, registry)
    for _ in range(5):  # nothing published yet: the gauges are absent, not zero
        [report] = follower.tick(may_act=False)
        assert report.source == "published" and report.observation is None and report.snapshot is None
    age = "clickstream_scheduler_observation_age_seconds"
    assert sample(registry, age, solution="shop") is None
    assert sample(registry, "clickstream_scheduler_trainings_today", solution="shop") is None

    leader_client = boto3.client("personalize", region_name="us-east-1")
    with Stubber(leader_client) as leader_stub:
        leader = replica(leader_client, board, "pod-a/1", clock)
        leader.load(1)
        running = {"solutionVersionArn": V1, "status": ACTIVE, "trainingMode": "FULL", "creationDateTime": T0,
                   "lastUpdatedDateTime": T0}  # fmt: skip
        queue_observation(leader_stub, [running])
        leader.tick(may_act=True)
        leader_stub.assert_no_pending_responses()

    for n in range(50):  # many ticks, no response queued on the follower's client: any call would fail
        clock.now = NOW + n
        [report] = follower.tick(may_act=False)
        assert report.source == "published" and report.decision is None and report.result is None
        assert report.snapshot is not None and report.snapshot.replica == "pod-a/1"
    assert sample(registry, age, solution="shop") == 49.0
    assert sample(registry, "clickstream_scheduler_last_successful_training_timestamp_seconds",
                  solution="shop") == T0.timestamp()  # fmt: skip
    assert sample(registry, "clickstream_scheduler_trainings_today", solution="shop") == 1.0
    assert sample(registry, "clickstream_scheduler_serving_version_age_seconds",
                  campaign="shop") == NOW + 49 - T0.timestamp()  # fmt: skip
    assert board.reads == 55  # one read of the control topic per tick

    board.snapshots.clear()  # the snapshot disappears (a tombstone): the gauges disappear too
    follower.tick(may_act=False)
    assert sample(registry, age, solution="shop") is None
    assert sample(registry, "clickstream_scheduler_serving_version_age_seconds", campaign="shop") is None


def test_a_new_leader_observes_before_acting_and_never_acts_on_the_snapshot(client: Any, stub: Stubber) -> None:
    board, clock = InMemorySnapshotBoard(), Clock()
    other = boto3.client("personalize", region_name="us-east-1")
    with Stubber(other) as old_stub:  # the old leader saw nothing trained, and started a training
        old = replica(other, board, "pod-a/1", clock)
        old.load(1)
        queue_observation(old_stub, [], campaign=False)
        old_stub.add_response("create_solution_version", {"solutionVersionArn": V1},
                              {"solutionArn": SOL, "trainingMode": "FULL"})  # fmt: skip
        old.tick(may_act=True)
    published = board.snapshots[SOL]
    assert published.observation is not None and published.observation.versions == ()  # seen before acting

    new = replica(client, board, "pod-b/2", clock, store=InMemoryStore())
    [followed] = new.tick(may_act=False)
    assert followed.snapshot == published
    clock.now += 1
    new.load(2)  # the lease moved here; Personalize now lists the training in flight
    running = {"solutionVersionArn": V1, "status": CREATE_IN_PROGRESS, "trainingMode": "FULL", "creationDateTime": T0}
    queue_observation(stub, [running], campaign=False)  # observed first (the Stubber enforces the order) ...
    [report] = new.tick(may_act=True)
    assert report.source == "leader" and report.observation is not None and report.observation.now == NOW + 1
    assert report.observation.versions[0].status == CREATE_IN_PROGRESS
    assert report.decision is not None and report.decision.kind == "wait"  # ... so no second training
    assert board.claims == ["pod-a/1", "pod-b/2"]
    assert (board.snapshots[SOL].replica, board.snapshots[SOL].generation) == ("pod-b/2", 1)  # a later one


def test_a_leader_that_loses_the_lease_while_observing_publishes_nothing(client: Any, stub: Stubber) -> None:
    board = InMemorySnapshotBoard()
    leader = replica(client, board, "pod-a/1", Clock())
    leader.load(1)
    queue_observation(stub, [], campaign=False)
    checks = iter([True, False])  # leading when the tick began, not any more when it would act
    [report] = leader.tick(may_act=lambda: next(checks))
    assert report.source == "leader" and report.result is None
    assert board.published == []


def test_an_observation_failure_is_published_with_the_last_good_view(client: Any, stub: Stubber) -> None:
    board, clock = InMemorySnapshotBoard(), Clock()
    leader = replica(client, board, "pod-a/1", clock)
    leader.load(1)
    stub.add_client_error("describe_solution", service_error_code="AccessDeniedException", service_message="no")
    [report] = leader.tick(may_act=True)
    assert report.error is not None
    assert board.snapshots[SOL].observation is None and "AccessDenied" in (board.snapshots[SOL].error or "")
    assert freshness(board.snapshots[SOL], NOW) == "unobserved"

    queue_observation(stub, [], campaign=False)
    stub.add_response("create_solution_version", {"solutionVersionArn": V1}, {"solutionArn": SOL,
                                                                              "trainingMode": "FULL"})  # fmt: skip
    leader.tick(may_act=True)
    good = board.snapshots[SOL]
    assert good.error is None and good.observation is not None
    clock.now += 30
    stub.add_client_error("describe_solution", service_error_code="ThrottlingException", service_message="slow")
    leader.tick(may_act=True)
    failed = board.snapshots[SOL]
    assert failed.observation == good.observation and failed.published_at == NOW + 30
    assert "ThrottlingException" in (failed.error or "") and freshness(failed, NOW + 30) == "fresh"


def test_a_leader_leaving_cleanly_marks_its_snapshots_released(client: Any, stub: Stubber) -> None:
    board, clock = InMemorySnapshotBoard(), Clock()
    leader = replica(client, board, "pod-a/1", clock)
    leader.release()  # never led: nothing to release
    assert board.published == []
    leader.load(1)
    queue_observation(stub, [], campaign=False)
    stub.add_response("create_solution_version", {"solutionVersionArn": V1}, {"solutionArn": SOL,
                                                                              "trainingMode": "FULL"})  # fmt: skip
    leader.tick(may_act=True)
    clock.now += 5
    leader.release()
    released = board.snapshots[SOL]
    assert released.released and released.published_at == NOW + 5 and freshness(released, NOW + 5) == "released"
    assert released.observation == board.published[0].observation
    leader.load(2)  # led again, left before its first tick: publishes nothing stale
    leader.release()
    assert len(board.published) == 2


def test_a_live_tick_observes_without_publishing(client: Any, stub: Stubber) -> None:
    board = InMemorySnapshotBoard()
    dry = replica(client, board, "cli", Clock())
    queue_observation(stub, [], campaign=False)
    [report] = dry.tick(may_act=False, live=True)
    assert report.source == "live" and report.decision is not None and report.decision.kind == "train"
    assert board.published == [] and board.reads == 0


def test_the_call_counter_counts_requests_sent() -> None:
    client = boto3.client("personalize", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    registry = CollectorRegistry()
    SchedulerMetrics(registry).count_calls(client)
    SchedulerMetrics().count_calls(object())  # not a botocore client: nothing to hook

    class Raw:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield b'{"solution": {"solutionArn": "%s", "status": "ACTIVE"}}' % SOL.encode()

    def answer(request: Any, **_: Any) -> AWSResponse:  # registered after the counter: no HTTP at all
        return AWSResponse(request.url, 200, {}, Raw())

    client.meta.events.register("before-send.personalize", answer)
    for _ in range(3):
        assert client.describe_solution(solutionArn=SOL)["solution"]["status"] == ACTIVE
    name = "clickstream_scheduler_personalize_calls_total"
    assert registry.get_sample_value(name, {"operation": "DescribeSolution"}) == 3.0


def test_a_new_leader_reuses_the_published_metrics_of_active_versions(client: Any, stub: Stubber) -> None:
    board, clock = InMemorySnapshotBoard(), Clock()
    other = boto3.client("personalize", region_name="us-east-1")
    active = {"solutionVersionArn": V1, "status": ACTIVE, "trainingMode": "FULL", "creationDateTime": T0}
    with Stubber(other) as old_stub:
        old = replica(other, board, "pod-a/1", clock)
        old.load(1)
        queue_observation(old_stub, [active])  # includes GetSolutionMetrics of V1
        old.tick(may_act=True)
    new = replica(client, board, "pod-b/2", clock)
    new.tick(may_act=False)
    new.load(2)
    stub.add_response("describe_solution", SOLUTION, {"solutionArn": SOL})  # no GetSolutionMetrics queued:
    stub.add_response("list_solution_versions", {"solutionVersions": [active]}, {"solutionArn": SOL})
    described = {"campaignArn": CAMP, "status": ACTIVE, "solutionVersionArn": V1}
    stub.add_response("describe_campaign", {"campaign": described}, {"campaignArn": CAMP})
    [report] = new.tick(may_act=True)  # metrics of an ACTIVE version never change: taken from the snapshot
    assert report.observation is not None and report.observation.versions[0].metrics is not None
