"""Scheduler replicas that do not lead make no Personalize calls; `status` shows the leader's view.

Two `Scheduler` services (embedded broker, local Personalize over HTTP, real botocore
clients) share one control topic. Every request a replica sends is counted on its own
client (the scheduler's ``clickstream_scheduler_personalize_calls_total``, and a test hook
that also notes whether the replica held the lease at that moment); the local
Personalize counts what it received. At the end, with both stopped, the server's count
equals the two clients' counts, so no request escaped the clients' counting.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from clickstream_devkit.broker import EmbeddedBroker
from prometheus_client import CollectorRegistry

from tests.conftest import unique_name
from tests.helpers import REPO_ROOT, LocalPersonalize
from tests.integration.scheduler_support import (
    REGION,
    Lab,
    campaign_arn,
    make_lab,
    schedule,
    scheduler_section,
    write_config,
)
from worker.config import KafkaSettings
from worker.config.scheduler import SchedulerSettings
from worker.schedule.cli_cmds import add_status_arguments, main_status
from worker.schedule.lease import wait_for
from worker.schedule.service import Scheduler

pytestmark = pytest.mark.integration

RESULTS = REPO_ROOT / "build" / "test-results"
MUTATING = ("Create", "Update", "Stop", "Delete")
#: Nothing listens here: a `status` that tried to observe Personalize would fail.
DEAD_ENDPOINT = "http://127.0.0.1:9"


@dataclass
class Replica:
    service: Scheduler
    registry: CollectorRegistry
    calls: list[tuple[str, bool]] = field(default_factory=list)  # (operation, leading when sent)

    def counted(self) -> int:
        """The replica's own metric: requests sent to Personalize."""
        return int(sum(s.value for m in self.registry.collect() if m.name == "clickstream_scheduler_personalize_calls"
                       for s in m.samples if s.name.endswith("_total")))  # fmt: skip

    def gauge(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


def replica(lab: Lab, broker: EmbeddedBroker, section: dict[str, Any]) -> Replica:
    client = boto3.client("personalize", endpoint_url=lab.server.endpoint_url, region_name=REGION)
    registry = CollectorRegistry()
    service = Scheduler(SchedulerSettings.model_validate(section), KafkaSettings(bootstrap_servers=broker.bootstrap),
                        region=REGION, registry=registry, client=client)  # fmt: skip
    made = Replica(service, registry)

    def note(event_name: str = "", **_: Any) -> None:
        made.calls.append((event_name.rsplit(".", 1)[-1], service.lease.is_leader))

    client.meta.events.register("before-send.personalize", note)
    return made


def server_requests(lab: Lab) -> int:
    return sum(int(n) for n in lab.server.stats()["requests"].values())


def settled(a: Replica, b: Replica, timeout_s: float = 60.0) -> tuple[Replica, Replica]:
    """(leader, follower) once one leads and the other has ticked three times as a follower since."""
    deadline = time.monotonic() + timeout_s
    since: tuple[Replica, int] | None = None
    while time.monotonic() < deadline:
        if a.service.is_leader != b.service.is_leader:
            follower = b if a.service.is_leader else a
            if since is None or since[0] is not follower:
                since = (follower, follower.service.ticks)
            elif follower.service.ticks >= since[1] + 3:
                return (a if follower is b else b), follower
        else:
            since = None
        time.sleep(0.05)
    raise AssertionError("the lease did not settle")


def status(config: Path, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    add_status_arguments(parser)
    out, err = io.StringIO(), io.StringIO()
    code = main_status(parser.parse_args(["--config", str(config), *argv]), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_a_follower_makes_no_personalize_call_and_a_failover_leader_observes_before_acting(
    local_personalize: Callable[..., LocalPersonalize], broker: EmbeddedBroker, tmp_path: Path
) -> None:
    lab = make_lab(local_personalize, with_data=1500)
    lab.server.set_faults(training_seconds=1)
    solution = lab.solution("aws-popularity-count")
    name = solution.rsplit("/", 1)[-1]
    camp = campaign_arn(unique_name("followed"))
    control = unique_name("sched-ctl")
    section = scheduler_section(schedule(solution, camp, max_trainings_per_day=50), control)
    offline = write_config(tmp_path / "offline.yaml", lab, broker,
                           {**section, "personalize_endpoint_url": DEAD_ENDPOINT})  # fmt: skip
    online = write_config(tmp_path / "online.yaml", lab, broker, section)
    before = server_requests(lab)  # from here on only the two replicas talk to the local Personalize

    a = replica(lab, broker, section)
    b = replica(lab, broker, section)
    replicas = (a, b)
    try:
        a.service.start()
        b.service.start()
        # Who leads is the group's choice (a joining member may take the lease): wait until it settles.
        leader, follower = settled(a, b)
        started = time.monotonic()
        leader_calls, follower_calls, follower_ticks = leader.counted(), follower.counted(), follower.service.ticks
        # The leader keeps training and promoting while the follower ticks many times.
        assert wait_for(lambda: follower.service.ticks >= follower_ticks + 15
                        and leader.counted() >= leader_calls + 20, 60.0)  # fmt: skip
        window = time.monotonic() - started
        follower_ticks = follower.service.ticks - follower_ticks
        leader_calls = leader.counted() - leader_calls
        follower_calls = follower.counted() - follower_calls
        assert follower_calls == 0, follower.calls
        assert leader.service.is_leader and not follower.service.is_leader

        # The follower's gauges come from the leader's published observation, with its age.
        age = follower.gauge("clickstream_scheduler_observation_age_seconds", solution=name)
        assert age is not None and 0 <= age < 30
        last = "clickstream_scheduler_last_successful_training_timestamp_seconds"
        assert follower.gauge(last, solution=name) == leader.gauge(last, solution=name) is not None
        assert follower.gauge("clickstream_scheduler_leader") == 0.0

        # `status` shows the leader's view without calling Personalize (its endpoint is dead here).
        code, text, err = status(offline)
        assert code == 0, text + err
        assert "by the leader (replica " in text and "lease generation" in text and "leader's decision:" in text
        code, text, err = status(offline, "--json")
        (doc,) = json.loads(text)
        assert doc["source"]["kind"] == "leader" and doc["source"]["freshness"] == "fresh", doc["source"]
        assert doc["source"]["replica"].endswith(f"/{os.getpid()}") and doc["versions"]
        first_generation = doc["source"]["generation"]

        calls_when_following = len(follower.calls)
        leader.service.stop()  # leaves cleanly: marks its observations released, then the lease moves
        assert wait_for(lambda: any(op.startswith(MUTATING) for op, _ in follower.calls[calls_when_following:]),
                        60.0), follower.calls  # fmt: skip
    finally:
        for r in replicas:
            r.service.stop()
    for r in replicas:
        assert all(leading for _, leading in r.calls), "a request sent without the lease"
    ops = [op for op, _ in follower.calls[calls_when_following:]]
    first_act = next(i for i, op in enumerate(ops) if op.startswith(MUTATING))
    assert ops[0] == "DescribeSolution" and "ListSolutionVersions" in ops[:first_act], ops  # observed first
    assert server_requests(lab) - before == a.counted() + b.counted(), "a request escaped the clients' count"

    # Both stopped cleanly: the published view is the last leader's, released, of a later generation.
    code, text, err = status(offline, "--published", "--json")
    (doc,) = json.loads(text)
    assert code == 0 and doc["source"]["freshness"] == "released", doc["source"]
    assert doc["source"]["generation"] > first_generation
    code, text, err = status(offline)  # nobody refreshes it: `status` would observe live (and fails here)
    assert code == 1 and "which has stopped" not in text and "cannot observe" in text, text
    code, text, err = status(online)
    assert code == 0, text + err
    assert "observed live by this command" in text and "which has stopped" in text

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scheduler_follower_calls.json").write_text(json.dumps({
        "window_s": round(window, 2), "tick_interval_s": section["tick_interval_s"],
        "follower_ticks": follower_ticks, "follower_calls": follower_calls, "leader_calls": leader_calls,
        "leader_calls_per_tick_interval": round(leader_calls / (window / section["tick_interval_s"]), 2),
    }, indent=2))  # fmt: skip
