"""Executing a `Decision`: at most one Personalize call, and the memory transition after it.

Mapping (one call per action; the policy already chose *what*):

=========  ===================================================================================
Train      CreateSolutionVersion(trainingMode) -> ``Memory.record_training``
Stop       StopSolutionVersionCreation
Import     CreateDatasetImportJob(importMode FULL | INCREMENTAL)
Promote    UpdateCampaign(solutionVersionArn, minProvisionedTPS, campaignConfig), or
           CreateCampaign when the campaign does not exist -> ``Memory.record_promotion``
Refuse     no call -> ``Memory.record_refusal``
Rollback   UpdateCampaign back to the version served before. The memory is left as it is:
           the failed version stays "promoted" (never promoted again) and the previous
           version stays the rollback target, which is how the policy recognises a failed
           rollback (findings.failed_update) instead of looping.
others     no call
=========  ===================================================================================

Errors: ResourceInUse, LimitExceeded and throttling mean "busy, retry later"; every other
client or connection error is logged as a failure. Both back off through
``Memory.record_error`` so a broken call is not repeated every tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from worker.config.scheduler import resource_name
from worker.schedule.decisions import Decision, Import, Promote, Refuse, Rollback, Stop, Train
from worker.schedule.observer import error_code
from worker.schedule.state import RETRYABLE_ERRORS, Memory

#: Lifecycle event = (kind, data); the reconciler adds the CloudEvents envelope.
Event = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class ActResult:
    """What acting did: the memory to keep, the events to publish, the call made."""

    memory: Memory
    events: list[Event] = field(default_factory=list)
    operation: str | None = None
    error_code: str | None = None

    @property
    def failed(self) -> bool:
        return self.error_code is not None

    def describe(self) -> str | None:
        """``UpdateCampaign done``, ``CreateSolutionVersion failed: LimitExceededException``; None: no call."""
        if self.operation is None:
            return None
        return f"{self.operation} " + (f"failed: {self.error_code}" if self.failed else "done")


def act(client: Any, decision: Decision, memory: Memory, now: float) -> ActResult:
    """Perform `decision` against the boto3 ``personalize`` `client`."""
    action = decision.action
    if isinstance(action, Refuse):
        data = {
            "campaign_arn": action.campaign_arn,
            "version_arn": action.version_arn,
            "reason": action.reason,
            "metrics": dict(action.metrics),
            "gate": dict(decision.details.get("gate", {})),
            "serving_version_arn": decision.details.get("serving_version_arn"),
        }
        return ActResult(memory.record_refusal(action.version_arn, action.reason), [("gate.refused", data)])
    call = _CALLS.get(type(action))
    if call is None:
        return ActResult(memory)
    operation, perform = call
    if isinstance(action, Promote):
        operation = "CreateCampaign" if action.create else "UpdateCampaign"
    try:
        result: ActResult = perform(client, decision, memory, now)
        return result
    except (ClientError, BotoCoreError) as exc:
        code = error_code(exc)
        retryable = code in RETRYABLE_ERRORS
        data = {"operation": operation, "code": code, "message": str(exc), "action": decision.to_dict()["action"]}
        kind = "action.retry_later" if retryable else "action.failed"
        return ActResult(memory.record_error(f"{operation}: {code}", now), [(kind, data)], operation, code)


def _train(client: Any, decision: Decision, memory: Memory, now: float) -> ActResult:
    action = decision.action
    assert isinstance(action, Train)
    reply = client.create_solution_version(solutionArn=action.solution_arn, trainingMode=action.mode)
    arn = str(reply["solutionVersionArn"])
    data = {
        "solution_arn": action.solution_arn,
        "version_arn": arn,
        "training_mode": action.mode,
        "trigger": action.trigger,
        "reason": decision.reason,
    }
    return ActResult(memory.record_training(arn, now), [("training.started", data)], "CreateSolutionVersion")


def _stop(client: Any, decision: Decision, memory: Memory, now: float) -> ActResult:
    action = decision.action
    assert isinstance(action, Stop)
    client.stop_solution_version_creation(solutionVersionArn=action.version_arn)
    data = {
        "version_arn": action.version_arn,
        "running_s": decision.details.get("running_s"),
        "reason": decision.reason,
    }
    return ActResult(memory.cleared(), [("training.stop_requested", data)], "StopSolutionVersionCreation")


def _import(client: Any, decision: Decision, memory: Memory, now: float) -> ActResult:
    action = decision.action
    assert isinstance(action, Import)
    reply = client.create_dataset_import_job(
        jobName=action.job_name,
        datasetArn=action.dataset_arn,
        dataSource={"dataLocation": action.data_location},
        roleArn=action.role_arn,
        importMode=action.mode,
    )
    data = {
        "job_arn": reply["datasetImportJobArn"],
        "dataset_arn": action.dataset_arn,
        "data_location": action.data_location,
        "import_mode": action.mode,
        "reason": decision.reason,
    }
    return ActResult(memory.cleared(), [("import.started", data)], "CreateDatasetImportJob")


def _promote(client: Any, decision: Decision, memory: Memory, now: float) -> ActResult:
    action = decision.action
    assert isinstance(action, Promote)
    config = dict(action.config)
    if action.create:
        operation = "CreateCampaign"
        args: dict[str, Any] = {
            "name": resource_name(action.campaign_arn),
            "solutionVersionArn": action.version_arn,
            "minProvisionedTPS": action.min_tps,
        }
        if config:
            args["campaignConfig"] = config
        client.create_campaign(**args)
    else:
        operation = "UpdateCampaign"
        _update_campaign(client, action.campaign_arn, action.version_arn, action.min_tps, config)
    gate = dict(decision.details.get("gate", {}))
    base = {"campaign_arn": action.campaign_arn, "version_arn": action.version_arn}
    events: list[Event] = [
        ("gate.passed", {**base, "reason": decision.reason, "gate": gate}),
        (
            "campaign.create_started" if action.create else "campaign.update_started",
            {**base, "previous_version_arn": action.previous_version_arn, "min_provisioned_tps": action.min_tps},
        ),
    ]
    memory = memory.record_promotion(action.campaign_arn, action.version_arn, action.previous_version_arn)
    return ActResult(memory, events, operation)


def _rollback(client: Any, decision: Decision, memory: Memory, now: float) -> ActResult:
    action = decision.action
    assert isinstance(action, Rollback)
    _update_campaign(client, action.campaign_arn, action.to_version_arn, action.min_tps, dict(action.config))
    data = {
        "campaign_arn": action.campaign_arn,
        "to_version_arn": action.to_version_arn,
        "failed_version_arn": action.failed_version_arn,
        "reason": action.reason,
    }
    return ActResult(memory.cleared(), [("campaign.rolled_back", data)], "UpdateCampaign")


def _update_campaign(client: Any, arn: str, version: str, min_tps: int, config: Mapping[str, Any]) -> None:
    args: dict[str, Any] = {"campaignArn": arn, "solutionVersionArn": version, "minProvisionedTPS": min_tps}
    if config:
        args["campaignConfig"] = dict(config)
    client.update_campaign(**args)


_CALLS: dict[type, tuple[str, Any]] = {
    Train: ("CreateSolutionVersion", _train),
    Stop: ("StopSolutionVersionCreation", _stop),
    Import: ("CreateDatasetImportJob", _import),
    Promote: ("UpdateCampaign", _promote),
    Rollback: ("UpdateCampaign", _rollback),
}
