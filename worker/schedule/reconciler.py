"""The reconciliation tick: (leader) observe -> decide -> act, announce, remember, publish;
(other replicas) follow what the leader published.

Whether this replica leads is checked per solution *before* anything is observed. A
leader's tick, per configured solution, in this order:

1. observe Personalize (observer.py) and, when a data-volume rule is configured, count
   the input topics' records since the newest ACTIVE version was created;
2. warn loudly about native automation the first time it is seen (the policy refuses
   to act on it unless ``allow_native_automation``);
3. decide (the pure policy) and refresh the gauges;
4. announce outcomes that appeared since the last tick (training succeeded/failed/
   stopped, import finished, campaign created/updated/update failed) and new alerts;
   re-check the lease; act (executor.py); publish the decision and what acting did;
   persist the memory when it changed;
5. publish a `Snapshot` of what it observed, decided and did (snapshot.py) for the
   other replicas and ``status``.

A replica that does not lead makes no Personalize call: it reads the leader's latest
snapshots (one read of the control topic per tick) and sets its gauges from them, with
``clickstream_scheduler_observation_age_seconds`` saying how old they are; without a
snapshot its solution gauges are absent. It never decides or acts on a snapshot: the
tick in which a replica first leads observes Personalize itself before acting.
``tick(live=True)`` (``retrain --dry-run``, ``status --live``) observes and decides
without leading, and acts on nothing.

The first observation of a solution without stored memory is a *baseline*: the history
that already exists is marked as known without announcing it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import structlog

from worker.config.scheduler import resource_name
from worker.config.solutions import SolutionSchedule
from worker.schedule.decisions import Decision
from worker.schedule.executor import ActResult, act
from worker.schedule.findings import check_conflicts
from worker.schedule.follower import FollowLog, ObservationGauges
from worker.schedule.lifecycle import LifecyclePublisher, SchedulerMetrics
from worker.schedule.memory_store import MemoryStore, SolutionState
from worker.schedule.observer import InteractionCounter, ObserveError, PersonalizeObserver
from worker.schedule.policy import decide
from worker.schedule.snapshot import Snapshot, leader_snapshot
from worker.schedule.snapshot_board import SnapshotBoard
from worker.schedule.state import ACTIVE, CREATE_FAILED, CREATE_STOPPED, DeletionView, Observation

log = structlog.get_logger(__name__)

#: Actions that call Personalize or change memory (always published).
ACTING_KINDS = frozenset({"train", "stop", "import", "promote", "refuse", "rollback"})
_VERSION_OUTCOMES = {ACTIVE: "training.succeeded", CREATE_FAILED: "training.failed", CREATE_STOPPED: "training.stopped"}


#: Where a report's observation comes from: observed by this replica as leader, observed live
#: without leading (dry run), or the leader's published snapshot (None: nothing to show).
ReportSource = Literal["leader", "live", "published"]


@dataclass(frozen=True)
class TickReport:
    """One solution's tick: what was seen, decided and done.

    A follower's report carries the leader's `snapshot` (its observation, no decision).
    """

    solution_arn: str
    observation: Observation | None = None
    decision: Decision | None = None
    result: ActResult | None = None
    error: str | None = None
    source: ReportSource | None = None
    snapshot: Snapshot | None = None

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
        board: SnapshotBoard | None = None,
        replica: str = "-",
        tick_interval_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        deletions: Callable[[str], DeletionView | None] | None = None,
    ) -> None:
        self.client = client
        self.deletions = deletions
        self.schedules = list(schedules)
        self.store = store
        self.publisher = publisher
        self.metrics = metrics
        self.volume = volume
        self.input_topics = list(input_topics)
        self.observer = PersonalizeObserver(client)
        self.clock = clock
        self.board = board
        self.replica = replica
        self.tick_interval_s = tick_interval_s
        self.term: int | None = None
        self.states: dict[str, SolutionState] = {}
        self.loaded_generation: int | None = None
        self._conflicts_seen: set[str] = set()
        self._last_decision: dict[str, str] = {}
        self._unsaved: set[str] = set()
        self._published: dict[str, Snapshot] = {}
        self.gauges = ObservationGauges(metrics, clock)
        self._follow_log = FollowLog()

    def load(self, generation: int = 0) -> None:
        """Read the memory of every solution and claim the leadership on the board (call when the
        lease is (re)acquired). The claim's offset is this leadership's published generation."""
        self.states = self.store.load_all()
        self.loaded_generation = generation
        self._published.clear()  # a new leadership: nothing published in it yet
        self.term = None if self.board is None else self.board.claim(self.replica, self.clock())
        log.info("scheduler memory loaded", solutions=len(self.states), generation=generation,
                 published_generation=self.term)  # fmt: skip

    def tick(
        self, *, may_act: Callable[[], bool] | bool = False, only: str | None = None, live: bool = False
    ) -> list[TickReport]:
        """One pass over the solutions (or only the one whose ARN is `only`).

        Leading (`may_act` true when the solution's turn comes): observe, decide, act,
        publish. Otherwise: follow the leader's snapshots, or with `live` observe and
        decide without acting.
        """
        check = may_act if callable(may_act) else (lambda: bool(may_act))
        reports = []
        snapshots: Mapping[str, Snapshot] | None = None
        for cfg in self.schedules:
            if only is not None and cfg.solution_arn != only:
                continue
            leading = check()
            if not leading and not live:
                if snapshots is None:
                    snapshots = self.board.latest() if self.board is not None else {}
                reports.append(self._follow(cfg, snapshots.get(cfg.solution_arn)))
                continue
            try:
                reports.append(self._lead(cfg, check) if leading else self._observe_only(cfg))
            except ObserveError as exc:
                log.warning("scheduler tick skipped: cannot observe", solution=cfg.solution_arn, error=str(exc))
                self.metrics.errors.labels(solution=resource_name(cfg.solution_arn), code="observe").inc()
                if leading and check():
                    self._publish_snapshot(cfg, error=str(exc))
                reports.append(TickReport(cfg.solution_arn, error=str(exc)))
        self.metrics.last_tick.set(self.clock())
        self.publisher.flush()
        if self.board is not None and self._published:
            self.board.flush()
        return reports

    def release(self) -> None:
        """Mark this leadership's snapshots released (call when leaving the lease cleanly)."""
        if self.board is None or not self._published:
            return
        now = self.clock()
        for arn, snapshot in list(self._published.items()):
            self._published[arn] = replace(snapshot, released=True, published_at=now)
            self.board.publish(self._published[arn])
        self.board.flush()
        log.info("scheduler observations marked released", solutions=len(self._published), replica=self.replica)

    # -- one solution --------------------------------------------------------------------------

    def observe(self, cfg: SolutionSchedule) -> Observation:
        now = self.clock()
        state = self.states.get(cfg.solution_arn, SolutionState())
        obs = self.observer.observe(cfg, state.memory.pruned(now), now)
        if cfg.data_volume is not None and self.volume is not None and self.input_topics:
            active = [v.created_at for v in obs.versions if v.status == ACTIVE]
            since = max(active) if active else None
            obs = replace(obs, new_interactions=self.volume.count_since(self.input_topics, since))
        group = obs.solution.dataset_group_arn
        if self.deletions is not None and group:
            obs = replace(obs, deletion=self.deletions(group))
        return obs

    def _observe_only(self, cfg: SolutionSchedule) -> TickReport:
        """Observe and decide without leading (dry runs): nothing is announced, done or published."""
        obs = self.observe(cfg)
        self._warn_conflicts(cfg, obs, publish=False)
        decision = decide(obs, cfg)
        log.debug("scheduler decision (not leader; observing only)", solution=cfg.solution_arn, kind=decision.kind)
        return TickReport(cfg.solution_arn, obs, decision, source="live")

    def _lead(self, cfg: SolutionSchedule, may_act: Callable[[], bool]) -> TickReport:
        """Observe now (never from a snapshot), decide, act while the lease holds, publish."""
        arn = cfg.solution_arn
        obs = self.observe(cfg)
        self._warn_conflicts(cfg, obs, publish=True)
        decision = decide(obs, cfg)
        self.gauges.show(cfg, obs, obs.now)
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
        if result is not None:  # still leading after observing: what we saw is the leader's view
            self._publish_snapshot(cfg, replace(obs, memory=state.memory), decision, result)
        return TickReport(arn, obs, decision, result, source="leader")

    def _follow(self, cfg: SolutionSchedule, snapshot: Snapshot | None) -> TickReport:
        """No Personalize call: the gauges come from the leader's snapshot, or are absent."""
        arn = cfg.solution_arn
        now = self.clock()
        self._follow_log.note(arn, snapshot, now)
        if snapshot is None or snapshot.observation is None:
            self.gauges.clear(cfg)
            return TickReport(arn, source="published", snapshot=snapshot)
        self.gauges.show(cfg, snapshot.observation, now)
        self.observer.remember_metrics(snapshot.observation.versions)  # immutable: spares a new leader the calls
        return TickReport(arn, snapshot.observation, source="published", snapshot=snapshot)

    def _publish_snapshot(
        self,
        cfg: SolutionSchedule,
        obs: Observation | None = None,
        decision: Decision | None = None,
        result: ActResult | None = None,
        *,
        error: str | None = None,
    ) -> None:
        """Publish what this leader saw (or, on `error`, its last good view with the error)."""
        if self.board is None:
            return
        if self.term is None:  # the claim failed when the lease came: try again
            self.term = self.board.claim(self.replica, self.clock())
        arn = cfg.solution_arn
        previous = self._published.get(arn)
        now = self.clock()
        if obs is not None:
            snapshot = leader_snapshot(obs, decision, arn=arn, replica=self.replica, generation=self.term, now=now,
                                       tick_interval_s=self.tick_interval_s,
                                       action=None if result is None else result.describe())  # fmt: skip
        elif previous is not None:
            snapshot = replace(previous, published_at=now, error=error, released=False)
        else:
            snapshot = Snapshot(arn, self.replica, self.term, now, self.tick_interval_s, error=error)
        self._published[arn] = snapshot
        self.board.publish(snapshot)

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
