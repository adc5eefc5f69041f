"""The retraining scheduler against the local Personalize over HTTP (and the embedded broker).

Every scenario drives real boto3 clients against ``python -m clickstream_devkit.personalize
--fast``; fault injection (``training_seconds``, ``fail_next_campaign_updates``) makes the
slow or failing cases happen on demand. Single-scheduler scenarios tick a Reconciler from
the test (deterministic); the lease scenarios run whole `Scheduler` services on the
embedded Tansu broker with short group timeouts, and one runs as a process that is
SIGKILLed mid-training.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clickstream_devkit.broker import EmbeddedBroker
from kafka import KafkaConsumer, KafkaProducer

from tests.conftest import unique_name
from tests.helpers import REPO_ROOT, LocalPersonalize
from tests.integration.scheduler_support import (
    NDCG10,
    Harness,
    Lab,
    acted,
    campaign_arn,
    generated_interactions,
    make_lab,
    schedule,
    scheduler_section,
    wait_status,
    write_config,
)
from worker.config import KafkaSettings
from worker.config.scheduler import SchedulerSettings
from worker.records import Interaction
from worker.schedule.cli_cmds import add_retrain_arguments, add_status_arguments, main_retrain, main_status
from worker.schedule.lease import wait_for
from worker.schedule.memory_store import KafkaMemoryStore
from worker.schedule.observer import VolumeCounter
from worker.schedule.service import Scheduler
from worker.schedule.state import ACTIVE, CREATE_IN_PROGRESS, CREATE_STOPPED

pytestmark = pytest.mark.integration

RESULTS = REPO_ROOT / "build" / "test-results"
Start = Callable[..., LocalPersonalize]


def hit_events(item: str, users: int, per_user: int = 3) -> list[Interaction]:
    now = time.time()
    return [
        Interaction(
            f"hit-s{u}",
            f"hit-u{u}",
            {"eventId": f"hit-{u}-{k}", "eventType": "purchase", "sentAt": now - 60 + k, "itemId": item},
        )
        for u in range(users)
        for k in range(per_user)
    ]


def noise_events(items: list[str], users: int, per_user: int, seed: int = 5) -> list[Interaction]:
    """Users whose interactions are uniformly random: nothing for a recommender to learn."""
    rng = random.Random(seed)
    now = time.time()
    return [
        Interaction(
            f"noise-s{u}",
            f"noise-u{u}",
            {"eventId": f"noise-{u}-{k}", "eventType": "view", "sentAt": now - 3600 + k, "itemId": rng.choice(items)},
        )
        for u in range(users)
        for k in range(per_user)
    ]


def service(lab: Lab, broker: EmbeddedBroker, section: dict[str, Any]) -> Scheduler:
    settings = SchedulerSettings.model_validate(section)
    return Scheduler(settings, KafkaSettings(bootstrap_servers=broker.bootstrap), region="us-east-1",
                     client=__import__("boto3").client("personalize", endpoint_url=lab.server.endpoint_url,
                                                        region_name="us-east-1"))  # fmt: skip


def test_full_cycle_train_gate_promote_and_serve_the_new_version(
    local_personalize: Start, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    lab = make_lab(local_personalize)
    solution = lab.solution("aws-popularity-count")
    camp = campaign_arn("shop-live")
    control = unique_name("sched-ctl")
    store = KafkaMemoryStore({"bootstrap_servers": broker.bootstrap}, control, timeout_s=5)
    from worker.schedule.lease import ensure_control_topic

    ensure_control_topic({"bootstrap_servers": broker.bootstrap}, control)
    cfg = schedule(solution, camp)
    h = Harness(lab, [cfg], store=store)

    first = h.until(acted("train"))
    assert first.decision is not None and first.decision.action.mode == "FULL"  # type: ignore[union-attr]
    created = h.until(acted("promote"))
    v1 = created.decision.action.version_arn  # type: ignore[union-attr]
    assert created.decision.action.create  # type: ignore[union-attr]
    wait_status(lambda: lab.campaign(camp), ACTIVE)
    assert lab.serving(camp) == v1
    assert "NEW-HIT" not in lab.recommend(camp, "a-new-visitor", 25)

    lab.put(hit_events("NEW-HIT", users=150))  # the new most popular item, unknown to v1
    second = h.until(acted("train"))
    v2 = second.result.events[0][1]["version_arn"]  # type: ignore[union-attr]
    promoted = h.until(acted("promote"))
    assert promoted.decision.action.version_arn == v2  # type: ignore[union-attr]
    assert promoted.decision.action.previous_version_arn == v1  # type: ignore[union-attr]
    h.until(lambda r: lab.serving(camp) == v2, timeout_s=20)
    assert lab.recommend(camp, "a-new-visitor", 5)[0] == "NEW-HIT"  # served by the new version

    kinds = h.kinds()
    for kind in ("training.started", "training.succeeded", "gate.passed"):
        assert kinds.count(kind) >= 2, kinds
    assert "campaign.created" in kinds and "campaign.update_started" in kinds
    gate = h.events("gate.passed")[-1]["gate"]
    assert gate["metric"] == NDCG10 and "candidate" in gate and "served" in gate

    # The memory survived in the control topic; `status` shows it with the observed state.
    assert store.load_all()[solution].memory.promoted_to(camp) >= {v1, v2}
    section = scheduler_section(cfg, control)
    config = write_config(tmp_path / "worker.yaml", lab, broker, section)
    parser = argparse.ArgumentParser()
    add_status_arguments(parser)
    out = io.StringIO()
    assert main_status(parser.parse_args(["--config", str(config)]), out=out) == 0
    text = out.getvalue()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scheduler_status.txt").write_text(text)  # what `status` showed, for a reader; not stdout
    v2_name = v2.rsplit("/", 1)[-1]
    assert f"{v2_name}  ACTIVE" in text and "serving in shop-live" in text
    assert "shop-live" in text and "CAMPAIGN" in text and "NDCG@10" in text


def test_a_worse_version_is_refused_with_its_metrics(local_personalize: Start) -> None:
    lab = make_lab(local_personalize, with_data=4000)
    solution = lab.solution("aws-user-personalization")
    camp = campaign_arn("shop-gated")
    h = Harness(lab, [schedule(solution, camp, gate={"metric": NDCG10, "max_relative_drop": 0.05},
                               max_trainings_per_day=2)])  # fmt: skip
    v1 = h.until(acted("promote")).decision.action.version_arn  # type: ignore[union-attr]
    wait_status(lambda: lab.campaign(camp), ACTIVE)

    items = sorted({str(i.event["itemId"]) for i in generated_interactions(1, 4000)})
    lab.put(noise_events(items, users=600, per_user=20))  # most test users now behave randomly
    refused = h.until(acted("refuse"), timeout_s=60)
    action = refused.decision.action  # type: ignore[union-attr]
    assert action.version_arn != v1
    [event] = h.events("gate.refused")
    assert event["version_arn"] == action.version_arn and NDCG10 in event["metrics"]
    assert event["gate"]["candidate"] < event["gate"]["threshold"] < event["gate"]["served"]
    assert "regression" in event["reason"]
    for _ in zip(range(5), h.ticks(10), strict=False):  # refused for good: never promoted afterwards
        pass
    assert lab.serving(camp) == v1
    assert action.version_arn in h.reconciler.states[solution].memory.refused


def test_a_training_over_its_timeout_is_stopped(local_personalize: Start) -> None:
    lab = make_lab(local_personalize)
    lab.server.set_faults(training_seconds=60)
    solution = lab.solution()
    h = Harness(lab, [schedule(solution, full=None, stop_training_after_s=1.0, min_interval_s=3600)])
    started = h.until(acted("train"))
    version = started.result.events[0][1]["version_arn"]  # type: ignore[union-attr]
    stop = h.until(acted("stop"))
    assert stop.decision.action.version_arn == version  # type: ignore[union-attr]
    h.until(lambda r: "training.stopped" in h.kinds(), timeout_s=20)
    assert [v["status"] for v in lab.versions(solution)] == [CREATE_STOPPED]
    after = next(h.ticks(5))
    assert after.decision is not None and after.decision.kind == "nothing"  # held by min_interval_s
    assert after.decision.details.get("hold") == "min_interval"


def test_a_failed_campaign_update_is_rolled_back_and_alerted(local_personalize: Start) -> None:
    lab = make_lab(local_personalize)
    solution = lab.solution("aws-popularity-count")
    camp = campaign_arn("shop-rollback")
    h = Harness(lab, [schedule(solution, camp, max_trainings_per_day=2)])
    v1 = h.until(acted("promote")).decision.action.version_arn  # type: ignore[union-attr]
    wait_status(lambda: lab.campaign(camp), ACTIVE)
    lab.server.set_faults(fail_next_campaign_updates=1)
    v2 = h.until(acted("promote")).decision.action.version_arn  # type: ignore[union-attr]
    rollback = h.until(acted("rollback"))
    assert rollback.decision.action.to_version_arn == v1  # type: ignore[union-attr]
    assert rollback.decision.action.failed_version_arn == v2  # type: ignore[union-attr]
    h.until(lambda r: "campaign.updated" in h.kinds(), timeout_s=20)
    assert lab.serving(camp) == v1
    [updated] = h.events("campaign.updated")
    assert updated["rollback"] is True and updated["version_arn"] == v1
    kinds = h.kinds()
    assert {"campaign.update_failed", "campaign.rolled_back", "alert"} <= set(kinds)
    for report in (r for _, r in zip(range(5), h.ticks(10), strict=False)):  # v2 is never promoted again
        assert report.decision is not None and report.decision.kind != "promote"
    assert lab.serving(camp) == v1


def test_two_schedulers_start_exactly_one_training_and_fail_over(
    local_personalize: Start, broker: EmbeddedBroker
) -> None:
    lab = make_lab(local_personalize)
    lab.server.set_faults(training_seconds=3)
    solution = lab.solution()
    control = unique_name("sched-ctl")
    section = scheduler_section(schedule(solution, full=None), control)
    a, b = service(lab, broker, section), service(lab, broker, section)
    try:
        a.start()
        b.start()
        both = []

        def trained() -> bool:
            both.append(a.is_leader and b.is_leader)
            return any(v["status"] == ACTIVE for v in lab.versions(solution))

        assert wait_for(trained, 40.0, 0.1)
        time.sleep(1.0)  # more ticks from whoever leads: still nothing new to do
        assert not any(both), "two leaders at once"
        assert len(lab.versions(solution)) == 1
        started = [e for s in (a, b) for e in s.publisher.of_kind("training.started")]
        assert len(started) == 1
        leader, other = (a, b) if a.is_leader else (b, a)
        assert leader.is_leader and not other.is_leader
        leader.stop()  # leaves the group: the other takes over within the session timeout
        assert wait_for(lambda: other.is_leader, 6.0 + 4.0)
    finally:
        a.stop()
        b.stop()
    events = _lifecycle_messages(broker, f"{control}-events")
    assert [e["type"] for e in events].count("com.clickstream.scheduler.training.started") == 1
    for event in events:
        assert event["specversion"] == "1.0" and event["source"] and event["id"] and event["time"].endswith("Z")
        assert event["datacontenttype"] == "application/json" and isinstance(event["data"], dict)


def _lifecycle_messages(broker: EmbeddedBroker, topic: str) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                             group_id=None, consumer_timeout_ms=1500)  # fmt: skip
    try:
        return [json.loads(record.value) for record in consumer]
    finally:
        consumer.close()


def test_a_scheduler_killed_mid_training_is_replaced_without_a_second_training(
    local_personalize: Start, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    lab = make_lab(local_personalize)
    lab.server.set_faults(training_seconds=16)
    solution = lab.solution()
    camp = campaign_arn("shop-restart")
    control = unique_name("sched-ctl")
    section = scheduler_section(schedule(solution, camp, full=None), control)
    config = write_config(tmp_path / "worker.yaml", lab, broker, section)
    code = (
        "import argparse, sys\n"
        "from worker.schedule.cli_cmds import add_schedule_arguments, main_schedule\n"
        "p = argparse.ArgumentParser(); add_schedule_arguments(p)\n"
        "sys.exit(main_schedule(p.parse_args(sys.argv[1:])))\n"
    )
    log = (tmp_path / "scheduler.log").open("wb")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-c", code, "--config", str(config)]
    proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: any(v["status"] == CREATE_IN_PROGRESS for v in lab.versions(solution)), 30.0, 0.1), (
            (tmp_path / "scheduler.log").read_text()
        )
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # a crash: no clean leave, no final writes
        proc.wait(10)
        log.close()
    [running] = lab.versions(solution)

    replacement = service(lab, broker, section)
    try:
        replacement.start()
        assert wait_for(lambda: lab.serving(camp) == running["solutionVersionArn"], 40.0, 0.2)
    finally:
        replacement.stop()
    assert len(lab.versions(solution)) == 1, "a second training was started"
    assert not replacement.publisher.of_kind("training.started")
    adopted = [e for e in replacement.publisher.of_kind("decision") if "adopting" in e["data"]["reason"]]
    assert adopted, [e["data"]["reason"] for e in replacement.publisher.of_kind("decision")]
    assert replacement.publisher.of_kind("training.succeeded")  # the new leader announced the outcome


def test_retrain_dry_run_then_retrain_for_real(
    local_personalize: Start, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    lab = make_lab(local_personalize)
    solution = lab.solution()
    control = unique_name("sched-ctl")
    section = scheduler_section(schedule(solution, full=None), control)
    config = write_config(tmp_path / "worker.yaml", lab, broker, section)
    parser = argparse.ArgumentParser()
    add_retrain_arguments(parser)

    def retrain(*argv: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main_retrain(parser.parse_args(["--config", str(config), *argv]), out=out, err=err)
        return code, out.getvalue() + err.getvalue()

    code, text = retrain("--dry-run")
    assert code == 0, text
    assert "DRY RUN" in text and "(no solution versions)" in text
    assert "decision: train - starting a FULL training: no FULL version is ACTIVE yet" in text
    assert lab.versions(solution) == []  # a dry run changes nothing

    code, text = retrain("--solution", solution.rsplit("/", 1)[-1])
    assert code == 0, text
    assert "action: CreateSolutionVersion done" in text
    [version] = lab.versions(solution)

    code, text = retrain("--dry-run", "--json")
    assert code == 0, text
    [report] = json.loads(text[text.index("[") :])
    assert report["decision"]["action"]["kind"] in ("wait", "nothing")  # in flight or finished: never a 2nd one
    assert [v["arn"] for v in report["versions"]] == [version["solutionVersionArn"]]
    code, text = retrain("--solution", "unknown")
    assert code == 2 and "not configured" in text


def _produce(broker: EmbeddedBroker, topic: str, count: int, batches: int) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    try:
        for b in range(batches):
            for n in range(count // batches):
                producer.send(topic, key=f"{b}-{n}".encode(), value=b"{}")
            producer.flush(10)
    finally:
        producer.close(5)


def test_data_volume_trigger_counts_new_records_from_offsets(
    local_personalize: Start, broker: EmbeddedBroker, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(partitions=3, prefix="clicks")
    counter = VolumeCounter({"bootstrap_servers": broker.bootstrap}, timeout_s=5)
    try:
        _produce(broker, topic, 300, batches=3)
        assert counter.count_since([topic], None) == 300  # exact, even where end offsets lag a batch
        time.sleep(0.05)
        middle = time.time()
        time.sleep(0.05)
        _produce(broker, topic, 120, batches=2)
        assert counter.count_since([topic], middle) == 120
        assert counter.count_since([topic], time.time() + 60) == 0  # nothing after a future time
        assert counter.count_since(["no-such-topic-" + topic], None) is None  # unknown, never a trigger

        lab = make_lab(local_personalize)
        solution = lab.solution("aws-popularity-count")
        cfg = schedule(solution, full=None, data_volume={"min_new_interactions": 200})
        h = Harness(lab, [cfg], volume=counter, topics=[topic])
        first = h.until(acted("train"))
        assert first.decision.action.trigger == "first"  # type: ignore[union-attr]
        idle = h.until(lambda r: r.decision is not None and r.decision.kind == "nothing", timeout_s=30)
        assert idle.observation is not None and idle.observation.new_interactions == 0
        _produce(broker, topic, 250, batches=5)
        second = h.until(acted("train"), timeout_s=20)
        assert second.decision.action.trigger == "data_volume"  # type: ignore[union-attr]
        assert second.observation is not None and second.observation.new_interactions == 250
    finally:
        counter.close()


def test_native_auto_training_is_a_loud_conflict_and_blocks_unless_allowed(local_personalize: Start) -> None:
    lab = make_lab(local_personalize, with_data=0)
    solution = lab.solution(auto_training=True)
    h = Harness(lab, [schedule(solution, full=None)])
    report = next(h.ticks(5))
    assert report.decision is not None and report.decision.kind == "blocked"
    assert "performAutoTraining" in report.decision.reason and report.result is not None
    assert report.result.operation is None  # refused to act
    [conflict] = h.events("conflict.detected")
    assert conflict["setting"] == "performAutoTraining" and conflict["blocking"] is True
    assert not h.events("training.started")

    allowed = Harness(lab, [schedule(solution, full=None, allow_native_automation=True)])
    report = next(allowed.ticks(5))
    assert report.decision is not None and report.decision.kind != "blocked"
    assert allowed.events("conflict.detected")[0]["blocking"] is False
