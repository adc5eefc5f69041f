"""The retraining policy: observed state + configuration -> one action per tick (pure).

Because every tick recomputes the decision from what Personalize reports, a crash or a
leader change can neither start a duplicate training nor lose one in flight: a version
already PENDING / IN_PROGRESS / STOPPING is adopted (waited on or stopped), never doubled.

Precedence (the first rule that applies wins; campaigns in configuration order):

 1. ``Blocked``  native automation would fight the scheduler (``performAutoTraining`` on the
    solution, ``syncWithLatestSolutionVersion`` on a campaign) and
    ``allow_native_automation`` is off; or the solution is unusable (failed / being deleted).
 2. ``Wait(solution)``  the solution itself is still being created.
 3. ``Wait(backoff)``  the last call failed with a retryable error (ResourceInUse,
    LimitExceeded, throttling) and ``memory.retry_after`` is still in the future.
 4. ``Stop``  the oldest PENDING/IN_PROGRESS version has run for ``stop_training_after_s``.
 5. ``Rollback``  a campaign's ``latestCampaignUpdate`` failed for a version *we* promoted:
    back to the version served before (alerted). Nothing to roll back to, or a failed
    rollback, only alerts.
 6. ``Promote`` / ``Refuse``  the newest ACTIVE version that is not refused, not already
    promoted to that campaign and newer than what it serves goes through the gate
    (gate.py). Skipped (and remembered as pending) for a campaign being created, one whose
    ``latestCampaignUpdate`` is PENDING/IN_PROGRESS (UpdateCampaign would be ResourceInUse),
    or while the needed metrics are not observed yet.
 7. ``Wait(training)``  a version is in flight, or one we started is not listed yet.
 8. Due?  FULL when no FULL version is ACTIVE yet (first training), when its cadence is due,
    when the data-volume trigger fires, or when a data deletion job of the dataset group
    completed after the last FULL training; else UPDATE when its cadence is due, the recipe
    supports it and a FULL version is ACTIVE. A due training is held back (``Nothing`` with
    the release time) while a data deletion job runs in the group, and by the daily cap, the
    minimum interval or the new-data requirement (not after a deletion).
 9. Before FULL: ``Wait(import)`` while any import job of the dataset runs. With an archive
    import configured: a fresh ACTIVE import (created after the last ACTIVE FULL version)
    lets training start; a fresh failed import alerts and waits ``retry_failed_after_s``
    (``Wait(import_retry)``) before ``Import`` again; otherwise ``Import``.
10. ``Train`` (FULL or UPDATE).
11. ``Wait`` on pending campaign work from step 6, else ``Nothing``.

Steps 5-6 come before 7 on purpose: promoting a finished version while the next one
trains is safe and keeps the campaign fresh; likewise a campaign update in flight does not
hold a due training back (they touch different resources). Alerts (failed training, import, campaign
update) are computed independently (findings.py) and attached to whatever decision is
returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.config.solutions import CampaignSettings, SolutionSchedule
from worker.schedule.decisions import (
    Action,
    Blocked,
    Conflict,
    Decision,
    Import,
    Nothing,
    Promote,
    Refuse,
    Rollback,
    Stop,
    Train,
    Wait,
)
from worker.schedule.findings import alerts, check_conflicts, failed_update
from worker.schedule.gate import evaluate, select_candidate
from worker.schedule.state import (
    ACTIVE,
    BUSY,
    CREATE_FAILED,
    FULL,
    INCREMENTAL,
    UPDATE,
    ImportView,
    Observation,
    supports_update,
)
from worker.schedule.triggers import human_duration, next_due, training_hold, volume_reached

#: How long a training we started may be missing from ListSolutionVersions (eventual
#: consistency) before we stop treating it as in flight.
UNLISTED_GRACE_S = 900.0

__all__ = ["UNLISTED_GRACE_S", "check_conflicts", "decide"]


@dataclass
class _Tick:
    """Per-call scratch space: what every returned decision carries."""

    obs: Observation
    cfg: SolutionSchedule
    alerts: tuple[str, ...]
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    pending: list[tuple[str, str]] = field(default_factory=list)  # (wait-on, reason)

    def make(self, action: Action, reason: str, **extra: Any) -> Decision:
        details = {**self.details, **extra}
        if self.notes:
            details["notes"] = list(self.notes)
        return Decision(action, reason, details, self.alerts)


def decide(obs: Observation, cfg: SolutionSchedule) -> Decision:
    """Choose this tick's single action (see the module docstring for the precedence)."""
    tick = _Tick(obs, cfg, tuple(alerts(obs, cfg)), {"solution_arn": cfg.solution_arn})
    conflicts = check_conflicts(obs, cfg.allow_native_automation)
    if conflicts:
        tick.details["conflicts"] = [f"{c.resource_arn}: {c.setting}" for c in conflicts]
    for step in (_guard_step, _stop_step, _rollback_step, _promotion_step, _in_flight_step, _training_step):
        decision = step(tick, conflicts)
        if decision is not None:
            return decision
    raise AssertionError("_training_step always decides")  # pragma: no cover


# -- steps 1-4 --------------------------------------------------------------------------


def _guard_step(tick: _Tick, conflicts: Sequence[Conflict]) -> Decision | None:
    obs = tick.obs
    blocking = tuple(c for c in conflicts if c.blocking)
    if blocking:
        reason = "refusing to act: " + "; ".join(f"{c.resource_arn}: {c.message}" for c in blocking)
        reason += " (or set allow_native_automation: true to run alongside it)"
        return tick.make(Blocked(reason, tuple(conflicts)), reason)
    status = obs.solution.status
    if status in BUSY:
        return tick.make(Wait("solution"), f"solution is {status}; waiting until it is ACTIVE")
    if status != ACTIVE:
        reason = f"solution is {status}; nothing can be trained or promoted"
        return tick.make(Blocked(reason), reason)
    retry_after = obs.memory.retry_after
    if retry_after is not None and retry_after > obs.now:
        reason = (
            f"backing off after {obs.memory.last_error or 'a retryable error'}; "
            f"retrying in {human_duration(retry_after - obs.now)}"
        )
        return tick.make(Wait("backoff", retry_after), reason)
    return None


def _stop_step(tick: _Tick, _: Sequence[Conflict]) -> Decision | None:
    limit, now = tick.cfg.stop_training_after_s, tick.obs.now
    if limit is None:
        return None
    overlong = [v for v in tick.obs.versions if v.status in BUSY and now - v.created_at >= limit]
    if not overlong:
        return None
    victim = min(overlong, key=lambda v: (v.created_at, v.arn))
    reason = (
        f"training {victim.arn} has been {victim.status} for {human_duration(now - victim.created_at)}, "
        f"over stop_training_after_s={limit:g}; stopping it"
    )
    return tick.make(Stop(victim.arn), reason, running_s=now - victim.created_at)


# -- steps 5-6: campaigns ---------------------------------------------------------------------


def _rollback_step(tick: _Tick, _: Sequence[Conflict]) -> Decision | None:
    for settings in tick.cfg.campaigns:
        view = tick.obs.campaign(settings.arn)
        if view is None or view.latest_update is None:
            continue
        failure = failed_update(tick.obs, view)
        if failure is None or failure[0] != "rollback" or failure[1] is None:
            continue
        failed, target = view.latest_update.version_arn, failure[1]
        reason = (
            f"campaign {view.arn}: update to {failed} failed "
            f"({view.latest_update.failure_reason or 'no reason given'}); rolling back to {target}"
        )
        action = Rollback(view.arn, target, failed, settings.min_provisioned_tps, settings.config.to_wire(), reason)
        return tick.make(action, reason)
    return None


def _promotion_step(tick: _Tick, _: Sequence[Conflict]) -> Decision | None:
    for settings in tick.cfg.campaigns:
        decision = _gate_campaign(tick, settings)
        if decision is not None:
            return decision
    return None


def _gate_campaign(tick: _Tick, settings: CampaignSettings) -> Decision | None:
    obs, memory = tick.obs, tick.obs.memory
    view = obs.campaign(settings.arn)
    if view is not None:
        if view.status in BUSY:
            tick.pending.append(("campaign", f"campaign {view.arn} is {view.status}"))
            return None
        if view.status not in (ACTIVE, CREATE_FAILED):
            tick.notes.append(f"campaign {view.arn} is {view.status}; not promoting into it")
            return None
        update = view.latest_update
        if update is not None and update.status in BUSY:
            tick.pending.append(
                ("campaign_update", f"campaign {view.arn} update to {update.version_arn} is {update.status}")
            )
            return None
        failure = failed_update(obs, view)
        if failure is not None and failure[0] == "rollback_failed":
            tick.notes.append(f"campaign {view.arn}: rollback failed; no promotions until an operator fixes it")
            return None

    serving_arn = view.serving_version_arn if view is not None else None
    serving = obs.version(serving_arn)
    excluded = set(memory.refused) | memory.promoted_to(settings.arn)
    candidate = select_candidate(obs.versions, serving, serving_arn, excluded)
    if candidate is None:
        return None
    if candidate.metrics is None:
        tick.pending.append(("metrics", f"metrics of candidate {candidate.arn} not observed yet"))
        return None

    baseline = None
    if view is None:
        why = "the campaign does not exist yet"
    elif serving_arn is None:
        why = f"the campaign is {view.status} and serves nothing"
    elif serving is None:
        why = f"the served version {serving_arn} is not among the observed versions"
    elif serving.metrics is None:
        tick.pending.append(("metrics", f"metrics of served version {serving_arn} not observed yet"))
        return None
    else:
        why, baseline = "", serving.metrics

    verdict = evaluate(candidate.metrics, baseline, tick.cfg.gate, no_baseline_reason=why)
    gate = {"gate": dict(verdict.details), "campaign_arn": settings.arn, "serving_version_arn": serving_arn}
    if not verdict.passed:
        reason = f"refusing {candidate.arn} for campaign {settings.arn}: {verdict.reason}"
        return tick.make(Refuse(settings.arn, candidate.arn, verdict.reason, dict(candidate.metrics)), reason, **gate)
    action = Promote(
        settings.arn,
        candidate.arn,
        settings.min_provisioned_tps,
        settings.config.to_wire(),
        serving_arn,
        create=view is None,
    )
    verb = "creating campaign" if view is None else "promoting to campaign"
    return tick.make(action, f"{verb} {settings.arn} with {candidate.arn}: {verdict.reason}", **gate)


# -- steps 7-11: training ------------------------------------------------------------------


def _in_flight_step(tick: _Tick, _: Sequence[Conflict]) -> Decision | None:
    obs = tick.obs
    flying = sorted((v for v in obs.versions if v.in_flight), key=lambda v: (v.created_at, v.arn))
    if flying:
        v = flying[0]
        reason = (
            f"training {v.arn} ({v.training_mode}) is {v.status}, started {human_duration(obs.now - v.created_at)} "
            "ago; adopting it, never starting a second one"
        )
        return tick.make(Wait("training"), reason, in_flight=[x.arn for x in flying])
    listed = {v.arn for v in obs.versions}
    unlisted = [s for s in obs.memory.training_starts if s.version_arn not in listed]
    recent = [s for s in unlisted if 0 <= obs.now - s.started_at < UNLISTED_GRACE_S]
    if recent:
        start = max(recent, key=lambda s: s.started_at)
        reason = f"training {start.version_arn} was started but is not listed yet; waiting for it to appear"
        return tick.make(Wait("training", start.started_at + UNLISTED_GRACE_S), reason)
    return None


def _training_step(tick: _Tick, _: Sequence[Conflict]) -> Decision:
    obs, cfg, now = tick.obs, tick.cfg, tick.obs.now
    full_times = [v.created_at for v in obs.versions if v.training_mode == FULL and v.status == ACTIVE]
    active_times = [v.created_at for v in obs.versions if v.status == ACTIVE]
    last_full = max(full_times, default=None)
    last_active = max(active_times, default=None)

    mode: str | None = None
    trigger = ""
    full_due_at: float | None = None
    update_due_at: float | None = None
    if last_full is None:
        mode, trigger = FULL, "first"
    else:
        full_due_at = next_due(cfg.full, last_full, now, cfg.timezone) if cfg.full is not None else None
        volume = cfg.data_volume
        if full_due_at is not None and full_due_at <= now:
            mode, trigger = FULL, "schedule"
        elif (
            volume is not None and volume.trigger and volume_reached(obs.new_interactions, volume.min_new_interactions)
        ):
            mode, trigger = FULL, "data_volume"
    deletion = obs.deletion
    if mode is None and deletion is not None and deletion.completed_at is not None:
        retrained = [v for v in obs.versions if v.training_mode == FULL and v.status != CREATE_FAILED
                     and v.created_at >= deletion.completed_at]  # fmt: skip
        if not retrained:
            mode, trigger = FULL, "data_deletion"
    if cfg.update is not None:
        if not supports_update(obs.solution.recipe_arn):
            tick.notes.append(f"UPDATE cadence ignored: recipe {obs.solution.recipe_arn} does not support UPDATE")
        elif last_full is None:
            tick.notes.append("UPDATE waits for the first ACTIVE FULL version")
        else:
            update_due_at = next_due(cfg.update, last_active, now, cfg.timezone)
            if mode is None and update_due_at <= now:
                mode, trigger = UPDATE, "schedule"
    tick.details.update(full_due_at=full_due_at, update_due_at=update_due_at, new_interactions=obs.new_interactions)

    if mode is None:
        upcoming = [t for t in (full_due_at, update_due_at) if t is not None]
        when = min(upcoming, default=None)
        idle = "no training due" + (f"; next in {human_duration(when - now)}" if when is not None else "")
        return _idle(tick, idle, when)

    if deletion is not None and deletion.running is not None:
        # AWS: data imported or trained while a deletion job runs may escape the deletion.
        reason = (f"{mode} training due ({trigger}) but held: data deletion job {deletion.running} runs in the "
                  "dataset group; trainings and imports wait for it")  # fmt: skip
        return _idle(tick, reason, None, hold="data_deletion")
    starts = {v.arn: v.created_at for v in obs.versions}
    starts.update({s.version_arn: s.started_at for s in obs.memory.training_starts})
    hold = training_hold(cfg, starts.values(), obs.new_interactions, now, needs_new_data=trigger != "data_deletion")
    if hold is not None:
        return _idle(tick, f"{mode} training due ({trigger}) but held: {hold.reason}", hold.until, hold=hold.guard)

    train = Train(cfg.solution_arn, mode, trigger)
    why = {
        "first": "no FULL version is ACTIVE yet",
        "schedule": f"the {mode} cadence is due",
        "data_volume": f"{obs.new_interactions} new interactions reached the data-volume trigger",
        "data_deletion": "a data deletion job completed after the last FULL training: train without those users",
    }[trigger]
    if mode == UPDATE:
        return tick.make(train, f"starting an UPDATE training: {why}")
    return _before_full(tick, train, why, last_full)


def _before_full(tick: _Tick, train: Train, why: str, last_full: float | None) -> Decision:
    """Step 9: the bulk-import precondition of a FULL training."""
    obs, now, archive = tick.obs, tick.obs.now, tick.cfg.archive_import
    latest: ImportView | None = max(obs.imports, key=lambda i: (i.created_at, i.arn), default=None)
    if latest is not None and latest.status in BUSY:
        reason = (
            f"FULL training due ({why}) but import job {latest.arn} is {latest.status}; never train during an import"
        )
        return tick.make(Wait("import"), reason, import_job=latest.arn)
    if archive is None:
        return tick.make(train, f"starting a FULL training: {why}")
    fresh = latest is not None and (last_full is None or latest.created_at > last_full)
    if latest is not None and fresh and latest.status == ACTIVE:
        return tick.make(
            train, f"starting a FULL training: {why}; archive import {latest.arn} is ACTIVE", import_job=latest.arn
        )
    if latest is not None and fresh and latest.status == CREATE_FAILED:
        retry_at = (latest.updated_at or latest.created_at) + archive.retry_failed_after_s
        if now < retry_at:
            reason = f"import job {latest.arn} failed; retrying the import in {human_duration(retry_at - now)}"
            return tick.make(Wait("import_retry", retry_at), reason, import_job=latest.arn)
    mode = INCREMENTAL if any(i.status == ACTIVE for i in obs.imports) else FULL
    action = Import(
        archive.dataset_arn, archive.data_location, archive.role_arn, mode, f"{archive.job_name_prefix}-{int(now)}"
    )
    return tick.make(action, f"FULL training due ({why}); importing the archive first ({mode})")


def _idle(tick: _Tick, reason: str, next_check_at: float | None, **extra: Any) -> Decision:
    """Step 11: wait on pending campaign work if any, else nothing to do."""
    if tick.pending:
        on = tick.pending[0][0]
        waits = "; ".join(text for _, text in tick.pending)
        return tick.make(Wait(on), f"waiting: {waits} ({reason})", **extra)
    return tick.make(Nothing(next_check_at), reason, **extra)
