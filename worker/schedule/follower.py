"""What a replica shows of each solution: gauges from an observation — its own while it leads,
the leader's published one otherwise — and a log line whenever the followed view changes.

The gauges mean the same on every replica, so a dashboard may read any of them;
``clickstream_scheduler_observation_age_seconds`` says how old the observation behind them
is (about 0 on the leader). Without an observation a solution's gauges are removed rather
than left at values nobody refreshes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import structlog

from worker.config.scheduler import resource_name
from worker.config.solutions import SolutionSchedule
from worker.schedule.lifecycle import SchedulerMetrics
from worker.schedule.snapshot import Snapshot, freshness, stale_after
from worker.schedule.state import ACTIVE, Observation
from worker.schedule.triggers import starts_in_window

log = structlog.get_logger(__name__)


class ObservationGauges:
    """The per-solution and per-campaign gauges of `SchedulerMetrics`."""

    def __init__(self, metrics: SchedulerMetrics, clock: Callable[[], float]) -> None:
        self.metrics = metrics
        self.clock = clock

    def show(self, cfg: SolutionSchedule, obs: Observation, now: float) -> None:
        name = resource_name(cfg.solution_arn)
        m = self.metrics
        m.observation_age.labels(solution=name).set(max(0.0, self.clock() - obs.now))
        finished = [v.updated_at or v.created_at for v in obs.versions if v.status == ACTIVE]
        if finished:
            m.last_success.labels(solution=name).set(max(finished))
        starts = {v.arn: v.created_at for v in obs.versions}
        starts.update({s.version_arn: s.started_at for s in obs.memory.training_starts})
        m.trainings_today.labels(solution=name).set(len(starts_in_window(starts.values(), now)))
        for campaign in obs.campaigns:
            serving = obs.version(campaign.serving_version_arn)
            if serving is not None:
                m.serving_age.labels(campaign=resource_name(campaign.arn)).set(now - serving.created_at)

    def clear(self, cfg: SolutionSchedule) -> None:
        name = resource_name(cfg.solution_arn)
        m = self.metrics
        for gauge in (m.observation_age, m.last_success, m.trainings_today):
            with contextlib.suppress(KeyError):
                gauge.remove(name)
        for campaign in cfg.campaigns:
            with contextlib.suppress(KeyError):
                m.serving_age.remove(resource_name(campaign.arn))


class FollowLog:
    """Logs what a non-leader follows per solution when it changes (not every tick)."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def note(self, arn: str, snapshot: Snapshot | None, now: float) -> None:
        state = "none" if snapshot is None else freshness(snapshot, now)
        key = state if snapshot is None else f"{state}|{snapshot.replica}|{snapshot.generation}"
        if self._seen.get(arn) == key:
            return
        self._seen[arn] = key
        fields: dict[str, Any] = {"solution": arn, "state": state}
        if snapshot is not None:
            age = snapshot.age(now)
            fields.update(leader=snapshot.replica, generation=snapshot.generation,
                          age_s=None if age is None else round(age, 1))  # fmt: skip
        if snapshot is not None and state == "stale":
            log.warning("scheduler not leading: the leader's observation is stale",
                        stale_after_s=stale_after(snapshot.tick_interval_s), **fields)  # fmt: skip
        elif state == "fresh":
            log.info("scheduler not leading: following the leader's observations", **fields)
        else:
            log.info("scheduler not leading: no current observation from a leader", **fields)
