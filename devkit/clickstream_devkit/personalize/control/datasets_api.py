"""Dataset groups and datasets: Create/Describe/List for both.

A dataset created here is registered with the events store at once, with its status, so
PutItems/PutUsers/PutActions answer ResourceInUseException while it is still CREATE PENDING
or CREATE IN_PROGRESS and work as soon as it is ACTIVE, exactly as the data plane treats
any dataset. Types (case-insensitive, as on the real API): Interactions, Items, Users,
Actions, Action_Interactions; the schema must be of the same type. One dataset per type
per group is implied by the ARN format (``dataset/<group>/<TYPE>``): a second one is
ResourceAlreadyExistsException.

An Action_Interactions dataset comes with its action interaction event tracker: its
``trackingId`` is in DescribeDataset (the model's ``Dataset.trackingId``) and is what
PutActionInteractions takes; it follows the dataset's status. "You can't create next best
action resources, including Actions and Action Interactions datasets, in a domain dataset
group" (developer guide): InvalidInputException.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from clickstream_devkit.personalize.control import control_store as kinds
from clickstream_devkit.personalize.control import schemas_api
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.arns import (
    DATASET_TYPE_NAMES,
    DATASET_TYPE_SEGMENTS,
    RequestContext,
    dataset_arn,
    dataset_group_arn,
)
from clickstream_devkit.personalize.control.control_store import Resource
from clickstream_devkit.personalize.control.deps import (
    Deps,
    OpHandler,
    check_new,
    drive_simple,
    invalid,
    new_resource,
    require,
    require_active,
    summary,
)
from clickstream_devkit.personalize.control.pagination import listing, paginate

#: The dataset types of the next-best-action recipes (not allowed in a domain dataset group).
ACTION_TYPES: Final = frozenset({"actions", "action_interactions"})


class DatasetsApi:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def operations(self) -> dict[str, OpHandler]:
        return {
            "CreateDatasetGroup": self.create_dataset_group,
            "DescribeDatasetGroup": self.describe_dataset_group,
            "ListDatasetGroups": self.list_dataset_groups,
            "CreateDataset": self.create_dataset,
            "DescribeDataset": self.describe_dataset,
            "ListDatasets": self.list_datasets,
        }

    def resume(self, resource: Resource) -> None:
        """Restart the driver of a resource that is not in a final status (and redo ACTIVE side effects)."""
        if resource.kind == kinds.DATASET_GROUP:
            self._deps.jobs.spawn(resource.arn, drive_simple(self._deps, resource.arn))
        elif resource.kind == kinds.DATASET:
            self._register(resource)
            self._deps.jobs.spawn(resource.arn, drive_simple(self._deps, resource.arn, self._register))

    # -- dataset groups -------------------------------------------------------------------

    def create_dataset_group(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        arn = dataset_group_arn(ctx, body["name"])
        check_new(self._deps, arn)
        doc = {"name": body["name"], "datasetGroupArn": arn}
        doc.update({k: body[k] for k in ("roleArn", "kmsKeyArn", "domain") if body.get(k)})
        self._deps.resources.add(new_resource(ctx, arn, kinds.DATASET_GROUP, doc))
        self._deps.jobs.spawn(arn, drive_simple(self._deps, arn))
        reply = {"datasetGroupArn": arn}
        if body.get("domain"):
            reply["domain"] = body["domain"]
        return reply

    def describe_dataset_group(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        group = require(self._deps, body["datasetGroupArn"], kinds.DATASET_GROUP, "dataset group")
        return {"datasetGroup": group.describe()}

    def list_dataset_groups(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        groups = self._deps.resources.all(kinds.DATASET_GROUP)
        page, token = paginate(groups, body, key=lambda r: r.sort_key(), scope="dataset-groups")
        return listing("datasetGroups", [summary(r, "name", "datasetGroupArn", "domain") for r in page], token)

    # -- datasets ------------------------------------------------------------------------

    def create_dataset(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        kind = body["datasetType"].lower()
        if kind not in DATASET_TYPE_SEGMENTS:
            raise invalid(
                f"Dataset type {body['datasetType']} is not a dataset type: use Interactions, Items, Users,"
                " Actions or Action_Interactions."
            )
        schema_kind = schemas_api.dataset_type_of(self._deps, body["schemaArn"])
        group = require(self._deps, body["datasetGroupArn"], kinds.DATASET_GROUP, "dataset group")
        if schema_kind != kind:
            raise invalid(
                f"Schema {body['schemaArn']} is a {DATASET_TYPE_NAMES.get(schema_kind, schema_kind)} schema; a dataset"
                f" of type {DATASET_TYPE_NAMES[kind]} needs a {DATASET_TYPE_NAMES[kind]} schema."
            )
        if kind in ACTION_TYPES and group.doc.get("domain"):
            raise invalid(
                f"Dataset group {group.arn} is a {group.doc['domain']} domain dataset group; Actions and"
                " Action_Interactions datasets can only be created in a custom dataset group."
            )
        require_active(group, "dataset group")
        arn = dataset_arn(group.arn, kind)
        check_new(self._deps, arn)
        doc = {
            "name": body["name"],
            "datasetArn": arn,
            "datasetGroupArn": group.arn,
            "datasetType": DATASET_TYPE_NAMES[kind],
            "schemaArn": body["schemaArn"],
        }
        if kind == "action_interactions":
            doc["trackingId"] = str(uuid.uuid4())
        dataset = new_resource(ctx, arn, kinds.DATASET, doc, parent=group.arn)
        self._deps.resources.add(dataset)
        self._register(dataset)
        self._deps.jobs.spawn(arn, drive_simple(self._deps, arn, self._register))
        return {"datasetArn": arn}

    def describe_dataset(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        return {"dataset": require(self._deps, body["datasetArn"], kinds.DATASET, "dataset").describe()}

    def list_datasets(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        group = body.get("datasetGroupArn")
        datasets = self._deps.resources.all(kinds.DATASET, group)
        page, token = paginate(datasets, body, key=lambda r: r.sort_key(), scope=f"datasets|{group}")
        return listing("datasets", [summary(r, "name", "datasetArn", "datasetType") for r in page], token)

    def _register(self, dataset: Resource) -> None:
        """Mirror the dataset (its status, its action tracker) into the events store, which serves Put*."""
        store = self._deps.store
        store.register_dataset(dataset.arn, dataset.doc["datasetType"], dataset.parent)
        if "trackingId" in dataset.doc:
            store.actions.register_tracker(dataset.doc["trackingId"], dataset.arn, dataset.parent)
        if dataset.status != st.ACTIVE:
            store.set_dataset_status(dataset.arn, dataset.status or st.PENDING)


def group_datasets(deps: Deps, group_arn: str) -> dict[str, Resource]:
    """The group's datasets by lower-case type (``interactions``, ``items``, ``users``, ``actions``, …)."""
    return {r.doc["datasetType"].lower(): r for r in deps.resources.all(kinds.DATASET, group_arn)}
