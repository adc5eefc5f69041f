"""CreateDataDeletionJob / DescribeDataDeletionJob / ListDataDeletionJobs, and the job itself.

Create checks, in order: the dataset group exists (ResourceNotFoundException), a
``dataSource.dataLocation`` is given (InvalidInputException), the group is ACTIVE
(ResourceInUseException), the job name is free (ResourceAlreadyExistsException), the group
has fewer than 5 PENDING jobs (LimitExceededException); ``roleArn`` is required and checked
by the model, and, as for import jobs, the stand-in reads S3 with its own credentials.

A job (`_drive`): PENDING for at least one step and until it is its group's turn
(`data_deletion.may_start`); IN_PROGRESS: it notes the time (the *cutoff*), reads the CSV
of USER_IDs from S3 (`s3_source`, at most 100 MB, in a thread) and, one step later, removes
the users' records stored up to the cutoff (`erasure`: events and action interactions,
PutUsers records, bulk-imported interactions and Users rows), then COMPLETED with
``numDeleted``, or FAILED with a ``failureReason`` naming the file and line at fault. The
runtime's histories and the filters' Users records are dropped (`Deps.on_records_erased`),
so a deleted user gets no personalised answers from the data plane at once; the models
already trained keep what they learnt until the next training, which is why the guide
says to train a new solution version afterwards. A restart re-runs an IN_PROGRESS job
with the same cutoff (the removal is idempotent).

``GET /_local/data-deletions`` (`inspect`) shows per job what it removed, source by
source, the records of its users it kept because they arrived after the cutoff, and the
import jobs and trainings of the group that overlapped it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from clickstream_devkit.personalize.control import bulk_store
from clickstream_devkit.personalize.control import control_store as kinds
from clickstream_devkit.personalize.control import data_deletion as dd
from clickstream_devkit.personalize.control.arns import RequestContext, data_deletion_job_arn
from clickstream_devkit.personalize.control.control_store import Resource
from clickstream_devkit.personalize.control.csv_import import ImportFailure
from clickstream_devkit.personalize.control.datasets_api import group_datasets
from clickstream_devkit.personalize.control.deps import (
    Deps,
    OpHandler,
    check_new,
    invalid,
    limit_exceeded,
    new_resource,
    require,
    require_active,
    summary,
)
from clickstream_devkit.personalize.control.pagination import listing, paginate
from clickstream_devkit.personalize.control.s3_source import read_location
from clickstream_devkit.personalize.control.trackers_api import group_tracking_ids
from clickstream_devkit.personalize.erasure import ErasureCounts
from clickstream_devkit.personalize.errors import json_response

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputTask:
    """What the reading thread needs (plain values only)."""

    location: str
    endpoint_url: str | None
    region: str


def read_user_ids(task: InputTask) -> frozenset[str]:
    """The USER_IDs at the job's data location; raises `DeletionFailure` (or `ImportFailure` for S3)."""
    files = read_location(task.location, endpoint_url=task.endpoint_url, region=task.region,
                          max_bytes=dd.MAX_INPUT_BYTES)  # fmt: skip
    return dd.parse_user_ids(files)


class DataDeletionApi:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def operations(self) -> dict[str, OpHandler]:
        return {
            "CreateDataDeletionJob": self.create_data_deletion_job,
            "DescribeDataDeletionJob": self.describe_data_deletion_job,
            "ListDataDeletionJobs": self.list_data_deletion_jobs,
        }

    def resume(self, resource: Resource) -> None:
        if resource.status in dd.BUSY:
            self._deps.jobs.spawn(resource.arn, self._drive(resource.arn))

    # -- operations ----------------------------------------------------------------------------

    def create_data_deletion_job(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        deps = self._deps
        group = require(deps, body["datasetGroupArn"], kinds.DATASET_GROUP, "dataset group")
        location = (body.get("dataSource") or {}).get("dataLocation")
        if not location:
            raise invalid("dataSource.dataLocation is required: the S3 location of the CSV file of USER_IDs.")
        require_active(group, "dataset group")
        arn = data_deletion_job_arn(ctx, body["jobName"])
        check_new(deps, arn)
        if dd.pending_in_group(deps.resources.all(kinds.DATA_DELETION_JOB), group.arn) >= dd.MAX_PENDING_PER_GROUP:
            raise limit_exceeded(
                f"More than {dd.MAX_PENDING_PER_GROUP} data deletion jobs with PENDING status for dataset group"
                f" {group.arn}."
            )
        doc = {
            "jobName": body["jobName"],
            "dataDeletionJobArn": arn,
            "datasetGroupArn": group.arn,
            "dataSource": {"dataLocation": location},
            "roleArn": body["roleArn"],
        }
        job = new_resource(ctx, arn, kinds.DATA_DELETION_JOB, doc, parent=group.arn, status=dd.PENDING,
                           meta={"region": ctx.region})  # fmt: skip
        deps.resources.add(job)
        deps.jobs.spawn(arn, self._drive(arn))
        return {"dataDeletionJobArn": arn}

    def describe_data_deletion_job(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        job = require(self._deps, body["dataDeletionJobArn"], kinds.DATA_DELETION_JOB, "data deletion job")
        return {"dataDeletionJob": job.describe()}

    def list_data_deletion_jobs(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        group = body.get("datasetGroupArn")
        jobs = self._deps.resources.all(kinds.DATA_DELETION_JOB, group)
        page, token = paginate(jobs, body, key=lambda r: r.sort_key(), scope=f"data-deletions|{group}")
        entries = [summary(r, "dataDeletionJobArn", "datasetGroupArn", "jobName") for r in page]
        return listing("dataDeletionJobs", entries, token)

    async def inspect(self, request: web.Request, request_id: str) -> web.StreamResponse:
        """``GET /_local/data-deletions[?datasetGroupArn=…]``: what each job did (not an AWS API)."""
        jobs = self._deps.resources.all(kinds.DATA_DELETION_JOB, request.query.get("datasetGroupArn"))
        rows = [
            {"dataDeletionJobArn": j.arn, "datasetGroupArn": j.parent, "jobName": j.doc["jobName"],
             "status": j.status, "numDeleted": j.doc.get("numDeleted"), "failureReason": j.doc.get("failureReason"),
             "userCount": j.meta.get("userCount"), "users": j.meta.get("users"), "cutoff": j.meta.get("cutoff"),
             "deleted": j.meta.get("deleted"), "overlapping": j.meta.get("overlapping", [])}
            for j in sorted(jobs, key=lambda r: r.sort_key())
        ]  # fmt: skip
        return json_response(rows, request_id)

    # -- the job ---------------------------------------------------------------------------------

    async def _drive(self, arn: str) -> None:
        deps = self._deps
        job = deps.resources.get(arn)
        if job is None:
            return
        if job.status == dd.PENDING:
            await deps.jobs.sleep(arn, job.updated + deps.step - deps.clock())
            while job.status == dd.PENDING and deps.resources.get(arn) is job:
                if dd.may_start(job, deps.resources.all(kinds.DATA_DELETION_JOB)):
                    job.meta["cutoff"] = deps.clock()
                    deps.resources.set_status(job, dd.IN_PROGRESS, job.meta["cutoff"])
                    break
                await deps.jobs.sleep(arn, deps.step)  # or until the running job of the group wakes it
        if job.status != dd.IN_PROGRESS:
            return
        cutoff = float(job.meta["cutoff"])
        reason: str | None = None
        users: frozenset[str] = frozenset()
        try:
            task = InputTask(job.doc["dataSource"]["dataLocation"], deps.options.s3_endpoint_url,
                             job.meta.get("region", deps.options.region))  # fmt: skip
            users = await deps.jobs.in_thread(f"deletion-{job.doc['jobName']}", read_user_ids, task)
        except (dd.DeletionFailure, ImportFailure) as failure:
            reason = failure.reason
        except Exception as exc:  # a bug: the job fails, the server keeps going
            log.exception("data deletion job %s failed", arn)
            reason = f"Internal error while reading the input: {exc}"
        await deps.jobs.sleep(arn, cutoff + deps.step - deps.clock())
        if reason is not None:
            deps.resources.set_status(job, dd.FAILED, deps.clock(), failureReason=reason)
        else:
            counts = await self._erase(job, users, cutoff)
            job.meta.update(
                userCount=len(users),
                users=sorted(users)[: dd.SHOWN_USERS],
                deleted=counts.to_dict(),
                overlapping=dd.overlapping(job, deps.resources.all(), deps.clock()),
            )
            deps.resources.set_status(job, dd.COMPLETED, deps.clock(), numDeleted=counts.total)
            log.info("data deletion job %s removed %d records of %d users", arn, counts.total, len(users))
        for waiting in dd.waiting_in_group(deps.resources.all(kinds.DATA_DELETION_JOB), job.parent):
            deps.jobs.wake(waiting.arn)

    async def _erase(self, job: Resource, users: frozenset[str], cutoff: float) -> ErasureCounts:
        """Remove the users' records of the job's group stored up to `cutoff` (see `erasure`)."""
        deps = self._deps
        group = str(job.parent)
        store = deps.store
        counts = ErasureCounts()
        for tracking_id in group_tracking_ids(deps, group):
            deleted, kept = store.erase_events(tracking_id, users, cutoff)
            counts = counts.plus(ErasureCounts(events=deleted, kept=kept))
        for tracking_id in store.actions.group_tracking_ids(group):
            deleted, kept = store.actions.erase(tracking_id, users, cutoff)
            counts = counts.plus(ErasureCounts(action_interactions=deleted, kept=kept))
        datasets = group_datasets(deps, group)
        users_dataset, interactions = datasets.get("users"), datasets.get("interactions")
        if users_dataset is not None:
            deleted, kept = store.erase_users(users_dataset.arn, users, cutoff)
            counts = counts.plus(ErasureCounts(users=deleted, kept=kept))
        imported = dd.bulk_jobs_before(deps.resources.all(), [d.arn for d in datasets.values()], cutoff)
        bulk = await deps.jobs.in_thread(
            f"deletion-bulk-{job.doc['jobName']}", bulk_store.erase_users, deps.bulk_path,
            None if interactions is None else interactions.arn, None if users_dataset is None else users_dataset.arn,
            users, imported,
        )  # fmt: skip
        counts = counts.plus(ErasureCounts(bulk_interactions=bulk.interactions, bulk_users=bulk.users, kept=bulk.kept))
        for callback in deps.on_records_erased:
            callback(group)
        return counts
