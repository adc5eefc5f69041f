"""Findings a human must hear about: native automation that conflicts with the scheduler,
and failures (training, import, campaign update) visible in the observation (pure).

They are kept apart from the policy's precedence because they are reported on every
tick whatever the chosen action: a failed import is worth an alert even while the
policy is busy rolling back a campaign.
"""

from __future__ import annotations

from worker.config.solutions import SolutionSchedule
from worker.schedule.decisions import Conflict
from worker.schedule.state import CREATE_FAILED, CampaignView, Observation


def check_conflicts(obs: Observation, allow: bool) -> list[Conflict]:
    """Native automation on managed resources; blocking unless ``allow``."""
    conflicts = []
    if obs.solution.perform_auto_training:
        conflicts.append(
            Conflict(
                obs.solution.arn,
                "performAutoTraining",
                "the solution trains itself (performAutoTraining=true): versions would appear outside the "
                "scheduler's schedule and caps; turn it off with UpdateSolution(performAutoTraining=false)",
                not allow,
            )
        )
    for campaign in sorted(obs.campaigns, key=lambda c: c.arn):
        if campaign.syncs_with_latest:
            conflicts.append(
                Conflict(
                    campaign.arn,
                    "syncWithLatestSolutionVersion",
                    "the campaign follows the latest version by itself, bypassing the promotion gate; "
                    "set campaignConfig.syncWithLatestSolutionVersion=false",
                    not allow,
                )
            )
    return conflicts


def failed_update(obs: Observation, view: CampaignView) -> tuple[str, str | None] | None:
    """Classify a failed ``latestCampaignUpdate``: rollback, rollback_failed, no_target, foreign."""
    update = view.latest_update
    if update is None or update.status != CREATE_FAILED:
        return None
    memory = obs.memory
    previous = memory.previous_serving.get(view.arn)
    if view.arn in memory.previous_serving and previous == update.version_arn:
        return "rollback_failed", previous
    if update.version_arn in memory.promoted_to(view.arn):
        return ("rollback", previous) if previous is not None else ("no_target", None)
    return "foreign", None


def alerts(obs: Observation, cfg: SolutionSchedule) -> list[str]:
    """Conditions a human should hear about this tick, whatever the action."""
    alerts = []
    newest = max(obs.versions, key=lambda v: (v.created_at, v.arn), default=None)
    if newest is not None and newest.status == CREATE_FAILED:
        alerts.append(f"training {newest.arn} ({newest.training_mode}) failed: {newest.failure_reason or 'no reason'}")
    latest_import = max(obs.imports, key=lambda i: (i.created_at, i.arn), default=None)
    if latest_import is not None and latest_import.status == CREATE_FAILED:
        alerts.append(f"import job {latest_import.arn} failed: {latest_import.failure_reason or 'no reason'}")
    for settings in cfg.campaigns:
        view = obs.campaign(settings.arn)
        if view is None:
            continue
        if view.status == CREATE_FAILED:
            alerts.append(f"campaign {view.arn} is CREATE FAILED: {view.failure_reason or 'no reason'}")
        failure = failed_update(obs, view)
        if failure is None or view.latest_update is None:
            continue
        kind, target = failure
        failed = view.latest_update.version_arn
        why = view.latest_update.failure_reason or "no reason"
        alerts.append(
            {
                "rollback": f"campaign {view.arn}: update to {failed} failed ({why}); rolling back to {target}",
                "no_target": f"campaign {view.arn}: update to {failed} failed ({why}); nothing to roll back to",
                "rollback_failed": f"campaign {view.arn}: rollback to {failed} failed ({why}); manual action needed",
                "foreign": f"campaign {view.arn}: an update to {failed} not issued by the scheduler failed ({why})",
            }[kind]
        )
    return alerts
