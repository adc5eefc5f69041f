"""DeleteCampaign, DeleteSolution, DeleteEventTracker, DeleteFilter, DeleteDataset, DeleteSchema,
DeleteDatasetGroup.

Each answers ``{}`` at once (the operations have no output) after the checks every
operation gets (botocore-model validation in `plane`), then: ResourceNotFoundException for
an unknown ARN, ResourceInUseException while `deletion.blocker` names a reason. A
resource with a status then shows ``DELETE PENDING`` for one step, ``DELETE IN_PROGRESS``
for one more, and is gone: Describe* answers ResourceNotFoundException and its name can
be used again. A schema has no status and is gone when DeleteSchema answers. The statuses
are persisted, so a restarted server finishes a deletion it had started.

What disappears with the resource (the last step, idempotent so a crash in the middle is
simply repeated):

* a dataset: its stored records -- bulk-imported rows, PutItems/PutUsers records, and for
  the Interactions dataset every event of the group's trackers -- and its import jobs, so
  a re-created dataset starts empty. PutItems/PutUsers answer ResourceInUseException from
  DELETE PENDING on and ResourceNotFoundException once it is gone;
* an event tracker: PutEvents stops accepting its tracking ID at once (ResourceNotFound),
  while the events it delivered stay training data of the group, as the reference says;
* a solution: its versions and their model files;
* a dataset group: its filters and what remains of its deleted trackers.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Final

from clickstream_devkit.personalize.control import bulk_store, deletion
from clickstream_devkit.personalize.control import control_store as kinds
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.arns import RequestContext
from clickstream_devkit.personalize.control.control_store import Resource
from clickstream_devkit.personalize.control.deps import Deps, OpHandler, in_use, require
from clickstream_devkit.personalize.control.trackers_api import group_tracking_ids
from clickstream_devkit.personalize.control.versions_api import model_path

log = logging.getLogger(__name__)

#: Operation -> (ARN member, resource kind).
OPERATIONS: Final = {
    "DeleteCampaign": ("campaignArn", kinds.CAMPAIGN),
    "DeleteSolution": ("solutionArn", kinds.SOLUTION),
    "DeleteEventTracker": ("eventTrackerArn", kinds.EVENT_TRACKER),
    "DeleteFilter": ("filterArn", kinds.FILTER),
    "DeleteDataset": ("datasetArn", kinds.DATASET),
    "DeleteSchema": ("schemaArn", kinds.SCHEMA),
    "DeleteDatasetGroup": ("datasetGroupArn", kinds.DATASET_GROUP),
}
_KEY: Final = "#delete"


class DeletesApi:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def operations(self) -> dict[str, OpHandler]:
        return {name: self._handler(member, kind) for name, (member, kind) in OPERATIONS.items()}

    def resume(self, resource: Resource) -> None:
        """A deletion the previous server run had started: take it to the end."""
        self._begin(resource)
        self._deps.jobs.spawn(resource.arn + _KEY, self._drive(resource.arn))

    def _handler(self, member: str, kind: str) -> OpHandler:
        def delete(ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
            return self.delete(ctx, body[member], kind)

        return delete

    def delete(self, ctx: RequestContext, arn: str, kind: str) -> dict[str, Any]:
        deps = self._deps
        resource = require(deps, arn, kind, deletion.LABELS[kind])
        reason = deletion.blocker(resource, deps.resources.all())
        if reason is not None:
            raise in_use(reason)
        if resource.status is None:  # a schema: no status, gone at once
            self._finish(resource)
            return {}
        deps.resources.set_status(resource, st.DELETE_PENDING, ctx.now)
        self._begin(resource)
        deps.jobs.spawn(arn + _KEY, self._drive(arn))
        return {}

    def _begin(self, resource: Resource) -> None:
        """What stops at once when a deletion starts (idempotent)."""
        store = self._deps.store
        if resource.kind == kinds.DATASET and store.dataset(resource.arn) is not None:
            store.set_dataset_status(resource.arn, resource.status or st.DELETE_PENDING)
        elif resource.kind == kinds.EVENT_TRACKER:
            store.retire_tracker(resource.doc["trackingId"])

    async def _drive(self, arn: str) -> None:
        deps = self._deps
        while True:
            resource = deps.resources.get(arn)
            if resource is None or resource.status not in st.DELETING:
                return
            await deps.jobs.sleep(arn + _KEY, resource.updated + deps.step - deps.clock())
            following = st.next_delete_status(resource.status or "")
            if following is not None:
                deps.resources.set_status(resource, following, deps.clock())
                self._begin(resource)
                continue
            if resource.kind == kinds.DATASET:
                await deps.jobs.in_thread(
                    f"delete-{resource.arn.rsplit('/', 1)[-1]}", bulk_store.delete_dataset, deps.bulk_path, arn
                )
            self._finish(resource)
            return

    def _finish(self, resource: Resource) -> None:
        """Remove the resource and what goes with it (idempotent: repeated after a crash)."""
        deps = self._deps
        store = deps.store
        if resource.kind == kinds.DATASET:
            if resource.doc["datasetType"].lower() == "interactions" and resource.parent is not None:
                store.delete_events(group_tracking_ids(deps, resource.parent))
            store.unregister_dataset(resource.arn)
        elif resource.kind == kinds.DATASET_GROUP:
            store.forget_trackers(group_tracking_ids(deps, resource.arn))
        for child in deletion.cascade(resource, deps.resources.all()):
            if child.kind == kinds.SOLUTION_VERSION and "model" in child.meta:
                with contextlib.suppress(OSError):
                    model_path(deps, child).unlink()
            deps.resources.remove(child.arn)
            self._announce(child)
        deps.resources.remove(resource.arn)
        self._announce(resource)
        log.info("deleted %s", resource.arn)

    def _announce(self, resource: Resource) -> None:
        for callback in self._deps.on_deleted:
            callback(resource)
