"""Solution versions: create (= train), describe, list, stop, metrics.

CreateSolutionVersion restrictions (contract §8.5): the solution must be ACTIVE
(ResourceInUseException); ``trainingMode`` is FULL (default) or UPDATE, and UPDATE is
accepted only for recipes that support it (User-Personalization, HRNN-Coldstart) and
only once the solution has an ACTIVE version (InvalidInputException otherwise; the
service only documents the rule). AUTOTRAIN is the mode of automatic trainings, which
this stand-in does not run, so a request for it is InvalidInputException. At most 20
versions may be in progress per region (DG limits).

A training (see `_drive`): CREATE PENDING for one step, then CREATE IN_PROGRESS while
`training_runner.run_training` computes in a thread, for at least one step and at least
the ``training_seconds`` fault, then ACTIVE (metrics, ``trainingHours``, and, with
``performHPO``, the chosen values as ``tunedHPOParams``, every HPO trial in the private
``meta.hpoTrials``) or CREATE FAILED with the
reason `train` gives (e.g. the documented minimum-data message). Stop: PENDING →
STOPPED at once; IN_PROGRESS → STOPPING → STOPPED one step later, the computation's
result discarded. After a restart an IN_PROGRESS training is run again from the start
(the computation is deterministic, so the resumed version is what it would have been
on the data present when it resumes).

GetSolutionMetrics answers ResourceInUseException until the version is ACTIVE (the
model lists that code without saying when; contract §8.7).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Final

from clickstream_devkit.personalize.control import control_store as kinds
from clickstream_devkit.personalize.control import schemas_api
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.arns import (
    RequestContext,
    new_short_id,
    resource_name,
    solution_version_arn,
)
from clickstream_devkit.personalize.control.control_store import Resource
from clickstream_devkit.personalize.control.datasets_api import group_datasets
from clickstream_devkit.personalize.control.deps import (
    Deps,
    OpHandler,
    in_use,
    invalid,
    limit_exceeded,
    new_resource,
    require,
    require_active,
    summary,
)
from clickstream_devkit.personalize.control.pagination import listing, paginate
from clickstream_devkit.personalize.control.trackers_api import group_tracking_ids
from clickstream_devkit.personalize.control.training_runner import TrainingJob, TrainingOutcome, run_training
from clickstream_devkit.recsys.recipes import recipe_info

log = logging.getLogger(__name__)

MAX_BUSY_VERSIONS: Final = 20
INJECTED_FAILURE: Final = "Create failed. Injected training failure (local-personalize fault injection)."


class VersionsApi:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def operations(self) -> dict[str, OpHandler]:
        return {
            "CreateSolutionVersion": self.create_solution_version,
            "DescribeSolutionVersion": self.describe_solution_version,
            "ListSolutionVersions": self.list_solution_versions,
            "StopSolutionVersionCreation": self.stop_solution_version_creation,
            "GetSolutionMetrics": self.get_solution_metrics,
        }

    def resume(self, resource: Resource) -> None:
        if resource.status in st.BUSY:
            self._deps.jobs.spawn(resource.arn, self._drive(resource.arn))

    # -- operations ---------------------------------------------------------------------------

    def create_solution_version(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        deps = self._deps
        solution = require(deps, body["solutionArn"], kinds.SOLUTION, "solution")
        mode = body.get("trainingMode") or "FULL"
        info = recipe_info(solution.doc["recipeArn"])
        if mode == "AUTOTRAIN":
            raise invalid("trainingMode AUTOTRAIN is used by automatic training only; use FULL or UPDATE.")
        if mode == "UPDATE" and not info.supports_update:
            raise invalid(
                "trainingMode UPDATE is only supported for solutions that use the User-Personalization "
                f"or HRNN-Coldstart recipe; {solution.arn} uses {info.name}."
            )
        require_active(solution, "solution")
        if mode == "UPDATE" and not any(
            v.status == st.ACTIVE for v in deps.resources.all(kinds.SOLUTION_VERSION, solution.arn)
        ):
            raise invalid(
                f"trainingMode UPDATE needs an ACTIVE solution version of {solution.arn} "
                "trained with trainingMode FULL."
            )
        if sum(v.status in st.BUSY for v in deps.resources.all(kinds.SOLUTION_VERSION)) >= MAX_BUSY_VERSIONS:
            raise limit_exceeded(f"More than {MAX_BUSY_VERSIONS} resources with PENDING or IN_PROGRESS status.")
        arn = solution_version_arn(solution.arn, new_short_id())
        keys = ("performHPO", "performAutoML", "performIncrementalUpdate", "recipeArn", "eventType",
                "datasetGroupArn", "solutionConfig")  # fmt: skip
        doc: dict[str, Any] = {"solutionVersionArn": arn, "solutionArn": solution.arn}
        if body.get("name"):
            doc["name"] = body["name"]
        doc.update({k: solution.doc[k] for k in keys if k in solution.doc})
        doc.update(trainingMode=mode, trainingType="MANUAL")
        meta: dict[str, Any] = {"minTrainingSeconds": deps.faults.settings.training_seconds}
        if deps.faults.take_training_failure():
            meta["injectedFailure"] = INJECTED_FAILURE
        deps.resources.add(new_resource(ctx, arn, kinds.SOLUTION_VERSION, doc, parent=solution.arn, meta=meta))
        deps.jobs.spawn(arn, self._drive(arn))
        return {"solutionVersionArn": arn}

    def describe_solution_version(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        version = require(self._deps, body["solutionVersionArn"], kinds.SOLUTION_VERSION, "solution version")
        return {"solutionVersion": version.describe()}

    def list_solution_versions(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        solution = body.get("solutionArn")
        if solution is not None:
            require(self._deps, solution, kinds.SOLUTION, "solution")
        versions = self._deps.resources.all(kinds.SOLUTION_VERSION, solution)
        page, token = paginate(versions, body, key=lambda r: r.sort_key(), scope=f"versions|{solution}")
        entries = [summary(v, "solutionVersionArn", "trainingMode", "trainingType") for v in page]
        return listing("solutionVersions", entries, token)

    def stop_solution_version_creation(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        version = require(self._deps, body["solutionVersionArn"], kinds.SOLUTION_VERSION, "solution version")
        target = st.stop_transition(version.status or "")
        if target is None:
            raise in_use(
                f"Solution version {version.arn} is {version.status}; only a version in CREATE PENDING or "
                "CREATE IN_PROGRESS can be stopped."
            )
        self._deps.resources.set_status(version, target, ctx.now)
        self._deps.jobs.wake(version.arn)
        return {}

    def get_solution_metrics(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        version = require(self._deps, body["solutionVersionArn"], kinds.SOLUTION_VERSION, "solution version")
        if version.status != st.ACTIVE:
            raise in_use(f"Solution version {version.arn} is {version.status}; metrics exist once it is ACTIVE.")
        return {"solutionVersionArn": version.arn, "metrics": dict(version.meta.get("metrics", {}))}

    # -- the training ---------------------------------------------------------------------------

    async def _drive(self, arn: str) -> None:
        deps = self._deps
        version = deps.resources.get(arn)
        if version is None:
            return
        if version.status == st.PENDING:
            await deps.jobs.sleep(arn, version.updated + deps.step - deps.clock())
            if version.status == st.PENDING:
                deps.resources.set_status(version, st.IN_PROGRESS, deps.clock())
        if version.status == st.IN_PROGRESS:
            outcome = await self._train(version)
            if outcome is not None and version.status == st.IN_PROGRESS:
                self._finish(version, outcome)
        if version.status == st.STOPPING:
            while (remaining := version.updated + deps.step - deps.clock()) > 0:
                await deps.jobs.sleep(arn, remaining)
            self._discard_model(version)
            deps.resources.set_status(version, st.STOPPED, deps.clock())

    async def _train(self, version: Resource) -> TrainingOutcome | None:
        """Compute (unless a failure is injected) and hold IN_PROGRESS for the minimum time."""
        deps = self._deps
        started = deps.clock()
        outcome: TrainingOutcome | None = None
        async with deps.jobs.training_slot:
            if version.status != st.IN_PROGRESS:
                return None
            if "injectedFailure" in version.meta:
                outcome = TrainingOutcome(failure_reason=version.meta["injectedFailure"])
            else:
                try:
                    job = self._job(version)
                    outcome = await deps.jobs.in_thread(f"train-{resource_name(version.arn)}", run_training, job)
                except Exception as exc:  # a bug: fail the version, keep serving
                    log.exception("training %s failed", version.arn)
                    outcome = TrainingOutcome(failure_reason=f"Create failed. Internal error: {exc}")
        minimum = max(deps.step, float(version.meta.get("minTrainingSeconds") or 0.0))
        while version.status == st.IN_PROGRESS and (remaining := started + minimum - deps.clock()) > 0:
            await deps.jobs.sleep(version.arn, remaining)
        return outcome

    def _finish(self, version: Resource, outcome: TrainingOutcome) -> None:
        deps = self._deps
        if outcome.failure_reason is not None:
            deps.resources.set_status(version, st.FAILED, deps.clock(), failureReason=outcome.failure_reason)
            return
        version.meta.update(
            metrics=outcome.metrics,
            hyperparameters=outcome.hyperparameters,
            numInteractions=outcome.num_interactions,
            model=self._model_path(version).name,
            hpoTrials=[{"hyperparameters": hps, "score": score} for hps, score in outcome.hpo_trials],
        )
        updates: dict[str, Any] = {"trainingHours": outcome.training_seconds / 3600.0}
        if version.doc.get("performHPO"):
            updates["tunedHPOParams"] = {"algorithmHyperParameters": outcome.tuned_hyperparameters}
        deps.resources.set_status(version, st.ACTIVE, deps.clock(), **updates)
        for callback in deps.on_version_active:
            callback(version)

    def _job(self, version: Resource) -> TrainingJob:
        deps = self._deps
        solution = require(deps, version.doc["solutionArn"], kinds.SOLUTION, "solution")
        group = solution.doc["datasetGroupArn"]
        datasets = group_datasets(deps, group)
        items = datasets.get("items")
        columns: dict[str, str] = {}
        if items is not None:
            schema = schemas_api.load(deps, items.doc["schemaArn"])
            columns = {f.key: f.name for f in schema.fields if not f.textual and f.name != "ITEM_ID"}
        mode = version.doc["trainingMode"]
        previous = self._latest_active_model(solution.arn) if mode == "UPDATE" else None
        config: dict[str, Any] = solution.doc.get("solutionConfig") or {}
        interactions = datasets.get("interactions")
        return TrainingJob(
            version_arn=version.arn,
            events_db=deps.store.path,
            tracking_ids=tuple(group_tracking_ids(deps, group)),
            bulk_db=deps.bulk_path,
            interactions_dataset=None if interactions is None else interactions.arn,
            items_dataset=None if items is None else items.arn,
            items_columns=columns,
            recipe=solution.doc["recipeArn"],
            event_type=solution.doc.get("eventType"),
            event_value_threshold=solution.meta.get("eventValueThreshold"),
            hyperparameters=dict(config.get("algorithmHyperParameters") or {}),
            perform_hpo=bool(solution.doc.get("performHPO")),
            hpo_config=config.get("hpoConfig"),
            seed=deps.options.training_seed,
            training_mode=mode,
            previous_model=previous,
            model_path=self._model_path(version),
        )

    def _latest_active_model(self, solution_arn: str) -> Path | None:
        active = [v for v in self._deps.resources.all(kinds.SOLUTION_VERSION, solution_arn) if v.status == st.ACTIVE]
        if not active:
            return None
        return self._deps.models_dir / str(max(active, key=lambda v: v.sort_key()).meta["model"])

    def _model_path(self, version: Resource) -> Path:
        return model_path(self._deps, version)

    def _discard_model(self, version: Resource) -> None:
        with contextlib.suppress(OSError):
            self._model_path(version).unlink()


def model_path(deps: Deps, version: Resource) -> Path:
    """``models/<solution-name>-<version-id>.model`` under the data directory."""
    solution_name = resource_name(version.doc["solutionArn"])
    return deps.models_dir / f"{solution_name}-{version.arn.rsplit('/', 1)[-1]}.model"
