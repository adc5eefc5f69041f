"""CreateEventTracker / DescribeEventTracker / ListEventTrackers.

When a tracker becomes ACTIVE its tracking ID is registered with the events store,
scoped to its dataset group, so PutEvents with that ID works from then on (the API doc
says a tracker must be ACTIVE before its tracking ID is used; before that PutEvents
answers as for any unknown tracking ID). Events sent to it are the dataset group's
streamed interactions for training and for the runtime.

One tracker per dataset group (contract §5.1/§7). The code for a second one is not
documented (contract §11 gap); this stand-in answers ResourceAlreadyExistsException,
because CreateEventTracker models it and, unlike LimitExceededException, no botocore
retry mode retries it: a client must not loop on a request that can never succeed.
"""

from __future__ import annotations

import uuid
from typing import Any

from clickstream_devkit.personalize.control import control_store as kinds
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.arns import RequestContext, event_tracker_arn, new_short_id
from clickstream_devkit.personalize.control.control_store import Resource
from clickstream_devkit.personalize.control.deps import (
    RESOURCE_ALREADY_EXISTS,
    Deps,
    OpHandler,
    drive_simple,
    error,
    new_resource,
    require,
    require_active,
    summary,
)
from clickstream_devkit.personalize.control.pagination import listing, paginate


class TrackersApi:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def operations(self) -> dict[str, OpHandler]:
        return {
            "CreateEventTracker": self.create_event_tracker,
            "DescribeEventTracker": self.describe_event_tracker,
            "ListEventTrackers": self.list_event_trackers,
        }

    def resume(self, resource: Resource) -> None:
        if resource.status == st.ACTIVE:
            self._register(resource)
        self._deps.jobs.spawn(resource.arn, drive_simple(self._deps, resource.arn, self._register))

    def create_event_tracker(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        group = require(self._deps, body["datasetGroupArn"], kinds.DATASET_GROUP, "dataset group")
        require_active(group, "dataset group")
        existing = [t for t in self._deps.resources.all(kinds.EVENT_TRACKER, group.arn) if t.status != st.FAILED]
        if existing:
            raise error(
                RESOURCE_ALREADY_EXISTS,
                f"Dataset group {group.arn} already has an event tracker ({existing[0].arn}); "
                "a dataset group can have only one.",
            )
        arn = event_tracker_arn(ctx, new_short_id())
        tracking_id = str(uuid.uuid4())
        doc = {
            "name": body["name"],
            "eventTrackerArn": arn,
            "accountId": ctx.account,
            "trackingId": tracking_id,
            "datasetGroupArn": group.arn,
        }
        self._deps.resources.add(new_resource(ctx, arn, kinds.EVENT_TRACKER, doc, parent=group.arn))
        self._deps.jobs.spawn(arn, drive_simple(self._deps, arn, self._register))
        return {"eventTrackerArn": arn, "trackingId": tracking_id}

    def describe_event_tracker(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        tracker = require(self._deps, body["eventTrackerArn"], kinds.EVENT_TRACKER, "event tracker")
        return {"eventTracker": tracker.describe()}

    def list_event_trackers(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        group = body.get("datasetGroupArn")
        trackers = self._deps.resources.all(kinds.EVENT_TRACKER, group)
        page, token = paginate(trackers, body, key=lambda r: r.sort_key(), scope=f"trackers|{group}")
        return listing("eventTrackers", [summary(r, "name", "eventTrackerArn") for r in page], token)

    def _register(self, tracker: Resource) -> None:
        self._deps.store.register_tracker(tracker.doc["trackingId"], tracker.parent)


def group_tracking_ids(deps: Deps, group_arn: str) -> list[str]:
    """Tracking IDs whose events belong to the group (control-plane trackers and scoped registrations)."""
    return sorted(t.tracking_id for t in deps.store.trackers() if t.dataset_group_arn == group_arn)
