"""Delete* dependency rules, one test per documented rule (pure: resources as data, no server)."""

from __future__ import annotations

from typing import Any

import pytest
from clickstream_devkit.personalize.control import resource as kinds
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.deletion import blocker, cascade, solution_of
from clickstream_devkit.personalize.control.resource import Resource

ARN = "arn:aws:personalize:us-east-1:123456789012"
GROUP = f"{ARN}:dataset-group/shop"
SCHEMA = f"{ARN}:schema/shop-i"
DATASET = f"{ARN}:dataset/shop/INTERACTIONS"
SOLUTION = f"{ARN}:solution/up"
VERSION = f"{SOLUTION}/0a1b2c3d"


def res(arn: str, kind: str, parent: str | None = None, status: str | None = st.ACTIVE, **doc: Any) -> Resource:
    return Resource(arn, kind, parent, status, 0.0, 0.0, dict(doc))


def world(**overrides: str | None) -> dict[str, Resource]:
    """A dataset group with one of everything, all ACTIVE unless overridden by name."""
    items = {
        "schema": res(SCHEMA, kinds.SCHEMA, status=None),
        "group": res(GROUP, kinds.DATASET_GROUP),
        "dataset": res(DATASET, kinds.DATASET, GROUP, schemaArn=SCHEMA, datasetType="Interactions"),
        "tracker": res(f"{ARN}:event-tracker/abcd1234", kinds.EVENT_TRACKER, GROUP, trackingId="t"),
        "job": res(f"{ARN}:dataset-import-job/j", kinds.IMPORT_JOB, DATASET),
        "solution": res(SOLUTION, kinds.SOLUTION, GROUP),
        "version": res(VERSION, kinds.SOLUTION_VERSION, SOLUTION, datasetGroupArn=GROUP),
        "campaign": res(f"{ARN}:campaign/c", kinds.CAMPAIGN, SOLUTION, solutionVersionArn=VERSION),
        "filter": res(f"{ARN}:filter/f", kinds.FILTER, GROUP),
        "batch": res(
            f"{ARN}:batch-inference-job/b", kinds.BATCH_INFERENCE_JOB, VERSION, solutionVersionArn=VERSION,
            filterArn=f"{ARN}:filter/f",
        ),
    }
    for name, status in overrides.items():
        items[name].status = status
    return items


def why(target: str, items: dict[str, Resource], *gone: str) -> str | None:
    present = [r for name, r in items.items() if name not in gone]
    return blocker(items[target], present)


def test_dataset_group_waits_for_datasets_trackers_and_solutions() -> None:
    items = world()
    reason = why("group", items)
    assert reason is not None and "Delete them first" in reason
    for needed in ("dataset", "event tracker", "solution"):
        assert needed in reason
    assert "filter" not in reason  # filters go with the group
    assert why("group", items, "dataset", "tracker") is not None  # the solution still blocks
    assert why("group", items, "dataset", "tracker", "solution", "version", "campaign", "job") is None


def test_a_dependent_being_deleted_still_blocks_its_parent() -> None:
    items = world(dataset=st.DELETE_PENDING, tracker=st.DELETE_IN_PROGRESS)
    reason = why("group", items, "solution")
    assert reason is not None and "DELETE PENDING" in reason and "DELETE IN_PROGRESS" in reason


def test_dataset_waits_for_running_imports_and_trainings_of_its_group() -> None:
    assert why("dataset", world()) is None  # finished jobs and ACTIVE versions do not block
    for name, status in (("job", st.PENDING), ("job", st.IN_PROGRESS), ("version", st.IN_PROGRESS),
                         ("version", st.PENDING), ("version", st.STOPPING)):  # fmt: skip
        reason = why("dataset", world(**{name: status}))
        assert reason is not None and status in reason
    other = world(version=st.IN_PROGRESS)
    other["version"].doc["datasetGroupArn"] = f"{ARN}:dataset-group/other"
    assert why("dataset", other) is None


def test_solution_waits_for_campaigns_running_versions_and_batch_jobs() -> None:
    reason = why("solution", world())
    assert reason is not None and "campaign" in reason
    assert why("solution", world(), "campaign") is None
    assert why("solution", world(version=st.IN_PROGRESS), "campaign") is not None
    assert why("solution", world(version=st.FAILED), "campaign") is None
    assert why("solution", world(batch=st.IN_PROGRESS), "campaign") is not None


def test_a_campaign_counts_through_its_pending_update_and_latest_follower() -> None:
    items = world()
    items["campaign"].doc["solutionVersionArn"] = f"{ARN}:solution/other/11111111"
    assert why("solution", items) is None
    items["campaign"].doc["latestCampaignUpdate"] = {"solutionVersionArn": VERSION, "status": st.ACTIVE}
    assert why("solution", items) is not None
    del items["campaign"].doc["latestCampaignUpdate"]
    items["campaign"].meta["follows"] = SOLUTION
    assert why("solution", items) is not None


def test_schema_waits_for_the_datasets_that_use_it() -> None:
    reason = why("schema", world())
    assert reason is not None and DATASET in reason
    assert why("schema", world(), "dataset") is None


def test_filter_waits_for_running_batch_jobs_that_use_it() -> None:
    assert why("filter", world()) is None
    assert why("filter", world(batch=st.PENDING)) is not None


@pytest.mark.parametrize("name", ["group", "dataset", "tracker", "campaign", "filter"])
@pytest.mark.parametrize("status", [st.PENDING, st.IN_PROGRESS, st.DELETE_PENDING, st.DELETE_IN_PROGRESS])
def test_nothing_is_deleted_while_it_is_being_created_or_deleted(name: str, status: str) -> None:
    items = world(**{name: status})
    reason = why(name, items, *(n for n in items if n != name))
    assert reason is not None and status in reason


def test_failed_resources_can_be_deleted() -> None:
    items = world(tracker=st.FAILED, campaign=st.FAILED)
    assert why("tracker", items) is None and why("campaign", items) is None


def test_a_campaign_update_in_progress_blocks_the_campaign() -> None:
    items = world()
    items["campaign"].doc["latestCampaignUpdate"] = {"solutionVersionArn": VERSION, "status": st.IN_PROGRESS}
    reason = why("campaign", items)
    assert reason is not None and "update in progress" in reason
    items["campaign"].doc["latestCampaignUpdate"]["status"] = st.FAILED
    assert why("campaign", items) is None


def test_cascades() -> None:
    items = world()
    everything = list(items.values())
    assert [r.kind for r in cascade(items["group"], everything)] == [kinds.FILTER]
    assert [r.kind for r in cascade(items["dataset"], everything)] == [kinds.IMPORT_JOB]
    assert [r.kind for r in cascade(items["solution"], everything)] == [kinds.SOLUTION_VERSION]
    for name in ("schema", "tracker", "campaign", "filter", "version"):
        assert cascade(items[name], everything) == []
    assert solution_of(VERSION) == SOLUTION and solution_of(f"{SOLUTION}/$LATEST") == SOLUTION
    assert st.next_delete_status(st.DELETE_PENDING) == st.DELETE_IN_PROGRESS
    assert st.next_delete_status(st.DELETE_IN_PROGRESS) is None
