"""When a Delete* must answer ResourceInUseException, and what goes with a deleted resource (pure).

The rules are the API reference's (M-CP operation docs):

* DeleteDatasetGroup: "Before you delete a dataset group, you must delete all associated
  event trackers, all associated solutions, all datasets in the dataset group";
* DeleteDataset: not while an import job of the dataset or a solution version of its
  dataset group is CREATE PENDING or IN_PROGRESS;
* DeleteSolution: "you must delete all campaigns based on the solution", and not while a
  version is CREATE PENDING or IN_PROGRESS (a batch inference job still running on a
  version counts as well: it reads the version's model);
* DeleteSchema: "you must delete all datasets referencing the schema";
* DeleteFilter: not while a batch inference job that uses it is in progress (DG);
* DeleteDatasetGroup and DeleteDataset: not while a data deletion job of the group is
  PENDING or IN_PROGRESS (it reads and rewrites the group's datasets);
* every kind: not while the resource itself is being created (CREATE PENDING /
  CREATE IN_PROGRESS), has a campaign update in progress, or is already being deleted.

A dependent that is itself DELETE PENDING or DELETE IN_PROGRESS still exists and still
blocks, as on the service, so a clean-up script waits for each Describe to answer
ResourceNotFoundException before deleting the parent. What goes along with a resource
(`cascade`): a dataset group's filters (the reference lists no rule for them, so they do
not block) and finished data deletion jobs, a dataset's import jobs, a solution's versions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from clickstream_devkit.personalize.control import data_deletion
from clickstream_devkit.personalize.control import resource as kinds
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.resource import Resource

LABELS: Final = {
    kinds.SCHEMA: "schema",
    kinds.DATASET_GROUP: "dataset group",
    kinds.DATASET: "dataset",
    kinds.EVENT_TRACKER: "event tracker",
    kinds.IMPORT_JOB: "dataset import job",
    kinds.SOLUTION: "solution",
    kinds.SOLUTION_VERSION: "solution version",
    kinds.CAMPAIGN: "campaign",
    kinds.FILTER: "filter",
    kinds.BATCH_INFERENCE_JOB: "batch inference job",
    kinds.DATA_DELETION_JOB: "data deletion job",
}
_RUNNING: Final = st.BUSY


def solution_of(version_arn: str) -> str:
    """``…:solution/<name>/<id>`` (or ``…/$LATEST``) -> ``…:solution/<name>``."""
    return version_arn.rsplit("/", 1)[0]


def blocker(target: Resource, resources: Iterable[Resource]) -> str | None:
    """Why `target` cannot be deleted now (the ResourceInUseException message), else None."""
    label = LABELS.get(target.kind, target.kind)
    if target.status in st.DELETING:
        return f"The {label} {target.arn} is already being deleted (status {target.status})."
    if target.status in _RUNNING:
        return f"The {label} {target.arn} is {target.status}; it can be deleted once it is ACTIVE or CREATE FAILED."
    others = [r for r in resources if r.arn != target.arn]
    dependents = _dependents(target, others)
    if dependents:
        names = "; ".join(f"{LABELS.get(r.kind, r.kind)} {r.arn} ({r.status or 'exists'})" for r in dependents)
        return f"Cannot delete the {label} {target.arn} while these depend on it: {names}. Delete them first."
    if target.kind == kinds.CAMPAIGN:
        update = target.doc.get("latestCampaignUpdate") or {}
        if update.get("status") in _RUNNING:
            return f"The campaign {target.arn} has an update in progress (status {update['status']})."
    return None


def _dependents(target: Resource, others: list[Resource]) -> list[Resource]:
    kind = target.kind
    if kind == kinds.DATASET_GROUP:
        owned = (kinds.DATASET, kinds.EVENT_TRACKER, kinds.SOLUTION)
        return [r for r in others if r.kind in owned and r.parent == target.arn] + _erasing(others, target.arn)
    if kind == kinds.DATASET:
        group = target.parent
        running = [
            r
            for r in others
            if r.status in _RUNNING
            and (
                (r.kind == kinds.IMPORT_JOB and r.parent == target.arn)
                or (r.kind == kinds.SOLUTION_VERSION and r.doc.get("datasetGroupArn") == group)
            )
        ]
        return running + _erasing(others, group)
    if kind == kinds.SOLUTION:
        versions = {r.arn for r in others if r.kind == kinds.SOLUTION_VERSION and r.parent == target.arn}
        campaigns = [r for r in others if r.kind == kinds.CAMPAIGN and _campaign_uses(r, target.arn)]
        running = [
            r
            for r in others
            if r.status in _RUNNING
            and (r.arn in versions or (r.kind == kinds.BATCH_INFERENCE_JOB and r.doc["solutionVersionArn"] in versions))
        ]
        return campaigns + running
    if kind == kinds.SCHEMA:
        return [r for r in others if r.kind == kinds.DATASET and r.doc.get("schemaArn") == target.arn]
    if kind == kinds.FILTER:
        return [
            r
            for r in others
            if r.kind == kinds.BATCH_INFERENCE_JOB and r.status in _RUNNING and r.doc.get("filterArn") == target.arn
        ]
    return []


def _erasing(others: list[Resource], group: str | None) -> list[Resource]:
    """The group's data deletion jobs that are still PENDING or IN_PROGRESS."""
    return [
        r for r in others if r.kind == kinds.DATA_DELETION_JOB and r.parent == group and r.status in data_deletion.BUSY
    ]


def _campaign_uses(campaign: Resource, solution_arn: str) -> bool:
    arns = [campaign.doc.get("solutionVersionArn", "")]
    update = campaign.doc.get("latestCampaignUpdate")
    if update is not None:
        arns.append(update.get("solutionVersionArn", ""))
    return any(solution_of(a) == solution_arn for a in arns if a) or campaign.meta.get("follows") == solution_arn


def cascade(target: Resource, resources: Iterable[Resource]) -> list[Resource]:
    """The resources removed together with `target` (see the module docstring)."""
    children = {
        kinds.DATASET_GROUP: (kinds.FILTER, kinds.DATA_DELETION_JOB),
        kinds.DATASET: (kinds.IMPORT_JOB,),
        kinds.SOLUTION: (kinds.SOLUTION_VERSION,),
    }.get(target.kind, ())
    return [r for r in resources if r.kind in children and r.parent == target.arn]
