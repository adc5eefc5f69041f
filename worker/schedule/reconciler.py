"""The reconciliation tick: observe -> decide -> (leader only) act, announce, remember.

One tick, per configured solution, in this order:

1. observe Personalize (observer.py) and, when a data-volume rule is configured, count
   the input topics' records since the newest ACTIVE version was created;
2. warn loudly about native automation the first time it is seen (the policy refuses
   to act on it unless ``allow_native_automation``);
3. decide (the pure policy) and refresh the gauges — every replica does this much;
4. leader only: announce outcomes that appeared since the last tick (training
   succeeded/failed/stopped, import finished, campaign created/updated/update failed)
   and new alerts; re-check the lease; act (executor.py); publish the decision and what
   acting did; persist the memory when it changed.

The first observation of a solution without stored memory is a *baseline*: the history
that already exists is marked as known without announcing it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog

from worker.config.scheduler import resource_name
from worker.config.solutions import SolutionSchedule
from worker.schedule.decisions import Decision
from worker.schedule.executor import ActResult, act
from worker.schedule.findings import check_conflicts
from worker.schedule.lifecycle import LifecyclePublisher, SchedulerMetrics
from worker.schedule.memory_store import MemoryStore, SolutionState
from worker.schedule.observer import InteractionCounter, ObserveError, PersonalizeObserver
from worker.schedule.policy import decide
from worker.schedule.state import ACTIVE, CREATE_FAILED, CREATE_STOPPED, Observation
from worker.schedule.triggers import starts_in_window

log = structlog.get_logger(__name__)

#: Actions that call Personalize or change memory (always published).
ACTING_KINDS = frozenset({"train", "stop", "import", "promote", "refuse", "rollback"})
_VERSION_OUTCOMES = {ACTIVE: "training.succeeded", CREATE_FAILED: "training.failed", CREATE_STOPPED: "training.stopped"}


@dataclass(frozen=True)
class TickReport:
    """One solution's tick: what was seen, decided and done."""

    solution_arn: str
    observation: Observation | None = None
    decision: Decision | None = None
    result: ActResult | None = None
    error: str | None = None

    @property
    def acted(self) -> bool:
        return self.result is not None and self.result.operation is not None and not self.result.failed


class Reconciler:
    """Ticks every configured solution; acts only when told it may (the lease)."""

    def __init__(
        self,
        client: Any,
        schedules: Sequence[SolutionSchedule],
        *,
        store: MemoryStore,
        publisher: LifecyclePublisher,
        metrics: SchedulerMetrics,
        volume: InteractionCounter | None = None,
        input_topics: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.schedules = list(schedules)
        self.store = store
        self.publisher = publisher
        self.metrics = metrics
        self.volume = volume
        self.input_topics = list(input_topics)
        self.observer = PersonalizeObserver(client)
        self.clock = clock
        self.states: dict[str, SolutionState] = {}
        self.loaded_generation: int | None = None
        self._conflicts_seen: set[str] = set()
        self._last_decision: dict[str, str] = {}
        self._unsaved: set[str] = set()

    def load(self, generation: int = 0) -> None:
        """Read the memory of every solution (call when the lease is (re)acquired)."""
        self.states = self.store.load_all()
        self.loaded_generation = generation
        log.info("scheduler memory loaded", solutions=len(self.states), generation=generation)

    def tick(self, *, may_act: Callable[[], bool] | bool = False, only: str | None = None) -> list[TickReport]:
        """One pass over the solutions (or only the one whose ARN is `only`)."""
        check = may_act if callable(may_act) else (lambda: bool(may_act))
        reports = []
        for cfg in self.schedules:
            if only is not None and cfg.solution_arn != only:
                continue
            try:
                reports.append(self._tick_one(cfg, check))
            except ObserveError as exc:
                log.warning("scheduler tick skipped: cannot observe", solution=cfg.solution_arn, error=str(exc))
                self.metrics.errors.labels(solution=resource_name(cfg.solution_arn), code="observe").inc()
                reports.append(TickReport(cfg.solution_arn, error=str(exc)))
        self.metrics.last_tick.set(self.clock())
        self.publisher.flush()
        return reports

    # -- one solution --------------------------------------------------------------------------

    def observe(self, cfg: SolutionSchedule) -> Observation:
        now = self.clock()
        state = self.states.get(cfg.solution_arn, SolutionState())
        obs = self.observer.observe(cfg, state.memory.pruned(now), now)
        if cfg.data_volume is not None and self.volume is not None and self.input_topics:
            active = [v.created_at for v in obs.versions if v.status == ACTIVE]
            since = max(active) if active else None
            obs = replace(obs, new_interactions=self.volume.count_since(self.input_topics, since))
        return obs

    def _tick_one(self, cfg: SolutionSchedule, may_act: Callable[[], bool]) -> TickReport:
        arn = cfg.solution_arn
        obs = self.observe(cfg)
        leader = may_act()
        self._warn_conflicts(cfg, obs, publish=leader)
        decision = decide(obs, cfg)
        self._gauges(cfg, obs)
        if not leader:
            log.debug("scheduler decision (not leader; observing only)", solution=arn, kind=decision.kind)
            return TickReport(arn, obs, decision)

        before = self.states.get(arn, SolutionState())
        state = self._announce(arn, obs, before, decision)
        self._publish_decision(arn, decision)
        result: ActResult | None = None
        if may_act():  # the lease may have moved while we observed
            result = act(self.client, decision, state.memory, obs.now)
            state = state.with_memory(result.memory)
            for kind, data in result.events:
                self.publisher.emit(kind, {"solution_arn": arn, **data}, subject=arn)
            self._count(cfg, decision, result)
        if state != before or arn in self._unsaved:
            self.states[arn] = state
            self._save(arn, state)
        return TickReport(arn, obs, decision, result)

    def _save(self, arn: str, state: SolutionState) -> None:
        """Persist; on failure keep acting on the in-process copy and retry next tick."""
        try:
            self.store.save(arn, state)
        except Exception as exc:  # noqa: BLE001 - a broker hiccup must not stop reconciliation
            self._unsaved.add(arn)
            log.error("could not persist the scheduler memory; retrying next tick", solution=arn, error=str(exc))
        else:
            self._unsaved.discard(arn)

    def _count(self, cfg: SolutionSchedule, decision: Decision, result: ActResult) -> None:
        name = resource_name(cfg.solution_arn)
        if decision.kind in ACTING_KINDS:
            self.metrics.decisions.labels(solution=name, action=decision.kind).inc()
        if decision.kind == "refuse":
            self.metrics.gate_refusals.labels(solution=name).inc()
        if result.error_code is not None:
            self.metrics.errors.labels(solution=name, code=result.error_code).inc()

    def _publish_decision(self, arn: str, decision: Decision) -> None:
        """Publish acting decisions always, waiting ones when they change (not every tick)."""
        body = decision.to_dict()
        signature = json.dumps(body["action"], sort_keys=True, default=str)
        changed = self._last_decision.get(arn) != signature
        self._last_decision[arn] = signature
        if decision.kind in ACTING_KINDS or changed:
            self.publisher.emit("decision", {"solution_arn": arn, **body}, subject=arn)
        else:
            log.debug("scheduler decision unchanged", solution=arn, kind=decision.kind, reason=decision.reason)

    def _warn_conflicts(self, cfg: SolutionSchedule, obs: Observation, *, publish: bool) -> None:
        for conflict in check_conflicts(obs, cfg.allow_native_automation):
            key = f"{conflict.resource_arn}|{conflict.setting}|{publish}"
            if key in self._conflicts_seen:
                continue
            self._conflicts_seen.add(key)
            consequence = "REFUSING TO ACT" if conflict.blocking else "running alongside it (allowed)"
            log.error(
                "NATIVE AUTOMATION CONFLICT: " + consequence,
                resource=conflict.resource_arn, setting=conflict.setting, detail=conflict.message,
            )  # fmt: skip
            if publish:
                data = {
                    "solution_arn": cfg.solution_arn,
                    "resource_arn": conflict.resource_arn,
                    "setting": conflict.setting,
                    "message": conflict.message,
                    "blocking": conflict.blocking,
                }
                self.publisher.emit("conflict.detected", data, subject=cfg.solution_arn)

    # -- outcomes --------------------------------------------------------------------------------

    def _announce(self, arn: str, obs: Observation, state: SolutionState, decision: Decision) -> SolutionState:
        """Publish outcomes and alerts not announced yet; returns the updated state."""
        current = outcome_keys(obs)
        current.update({f"alert:{text}": "open" for text in decision.alerts})
        if not state.baselined:
            return replace(state, announced=current, baselined=True)
        for key, status in current.items():
            if state.announced.get(key) == status:
                continue
            kind, data = describe_outcome(key, status, obs)
            self.publisher.emit(kind, {"solution_arn": arn, **data}, subject=arn)
        return replace(state, announced=current)

    def _gauges(self, cfg: SolutionSchedule, obs: Observation) -> None:
        name = resource_name(cfg.solution_arn)
        finished = [v.updated_at or v.created_at for v in obs.versions if v.status == ACTIVE]
        if finished:
            self.metrics.last_success.labels(solution=name).set(max(finished))
        starts = {v.arn: v.created_at for v in obs.versions}
        starts.update({s.version_arn: s.started_at for s in obs.memory.training_starts})
        self.metrics.trainings_today.labels(solution=name).set(len(starts_in_window(starts.values(), obs.now)))
        for campaign in obs.campaigns:
            serving = obs.version(campaign.serving_version_arn)
            if serving is not None:
                self.metrics.serving_age.labels(campaign=resource_name(campaign.arn)).set(obs.now - serving.created_at)


def outcome_keys(obs: Observation) -> dict[str, str]:
    """Terminal states worth announcing once: key -> status (pure)."""
    keys: dict[str, str] = {}
    for v in obs.versions:
        if v.status in _VERSION_OUTCOMES:
            keys[f"version:{v.arn}"] = v.status
    for job in obs.imports:
        if job.status in (ACTIVE, CREATE_FAILED):
            keys[f"import:{job.arn}"] = job.status
    for c in obs.campaigns:
        u = c.latest_update
        if u is not None and u.status in (ACTIVE, CREATE_FAILED):
            keys[f"update:{c.arn}|{u.version_arn}|{u.created_at:.3f}"] = u.status
        elif u is None and c.status in (ACTIVE, CREATE_FAILED):
            keys[f"campaign:{c.arn}|{c.version_arn}"] = c.status
    return keys


def describe_outcome(key: str, status: str, obs: Observation) -> tuple[str, dict[str, Any]]:
    """The lifecycle event (kind, data) of one new outcome key (pure)."""
    kind, _, ident = key.partition(":")
    if kind == "alert":
        return "alert", {"message": ident}
    if kind == "version":
        v = obs.version(ident)
        data: dict[str, Any] = {"version_arn": ident, "status": status}
        if v is not None:
            data.update(training_mode=v.training_mode, created_at=v.created_at, failure_reason=v.failure_reason)
            if v.updated_at is not None:
                data["duration_s"] = round(v.updated_at - v.created_at, 3)
            if v.metrics is not None:
                data["metrics"] = dict(v.metrics)
        return _VERSION_OUTCOMES[status], data
    if kind == "import":
        job = next((j for j in obs.imports if j.arn == ident), None)
        data = {"job_arn": ident, "status": status}
        if job is not None:
            data.update(import_mode=job.import_mode, failure_reason=job.failure_reason)
        return ("import.succeeded" if status == ACTIVE else "import.failed"), data
    campaign_arn, version_arn = ident.split("|")[:2]
    campaign = obs.campaign(campaign_arn)
    data = {"campaign_arn": campaign_arn, "version_arn": version_arn, "status": status}
    if kind == "campaign":
        failure = campaign.failure_reason if campaign is not None else None
        return ("campaign.created" if status == ACTIVE else "campaign.create_failed"), {**data, "failure": failure}
    update = campaign.latest_update if campaign is not None else None
    if status == ACTIVE:
        rollback = obs.memory.previous_serving.get(campaign_arn) == version_arn
        return "campaign.updated", {**data, "rollback": rollback}
    return "campaign.update_failed", {**data, "failure_reason": update.failure_reason if update else None}
