"""CreateDatasetImportJob / DescribeDatasetImportJob / ListDatasetImportJobs.

A job reads its CSV from S3 through boto3 (`s3_source`), checks it against the dataset's
schema (`csv_import`) and stores it as the dataset's bulk data (`bulk_store`), all in a
background thread, then ends ACTIVE or CREATE FAILED with a failureReason that names
the file, line and field at fault. Import modes (contract §8.4):

* FULL (the default) replaces the dataset's earlier bulk data; records that arrived
  through PutEvents/PutItems/PutUsers are kept;
* INCREMENTAL appends interactions and replaces items/users with the same ID, and is
  accepted only once an earlier import of the dataset is ACTIVE (InvalidInputException
  otherwise; the guide says only FULL is accepted before a first bulk import).

At most 5 import jobs may be CREATE PENDING or CREATE IN_PROGRESS in a region (a quota
the guide calls not adjustable); the 6th is LimitExceededException with the guide's text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from clickstream_devkit.personalize.control import bulk_store, schemas_api
from clickstream_devkit.personalize.control import control_store as kinds
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.arns import RequestContext, import_job_arn
from clickstream_devkit.personalize.control.control_store import Resource
from clickstream_devkit.personalize.control.csv_import import ImportFailure, parse_files
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
from worker.records import DatasetType
from worker.schemas import DatasetSchema

log = logging.getLogger(__name__)

MAX_BUSY_IMPORT_JOBS: Final = 5
#: Dataset types the stand-in imports from CSV (the action types take records through the data plane only).
BULK_TYPES: Final = frozenset({"interactions", "items", "users"})


@dataclass(frozen=True)
class ImportTask:
    """Everything the import thread needs (no shared state)."""

    job_arn: str
    dataset_arn: str
    location: str
    full: bool
    schema: DatasetSchema
    bulk_path: Path
    endpoint_url: str | None
    region: str


def run_import(task: ImportTask) -> int:
    """Read, check and store one job's data; returns the record count or raises ImportFailure."""
    files = read_location(task.location, endpoint_url=task.endpoint_url, region=task.region)
    parsed = parse_files(files, task.schema)
    if task.schema.dataset_type is DatasetType.INTERACTIONS:
        bulk_store.write_interactions(
            task.bulk_path, task.dataset_arn, task.job_arn, parsed.interactions, full=task.full
        )
    else:
        bulk_store.write_records(task.bulk_path, task.dataset_arn, task.job_arn, parsed.records, full=task.full)
    return parsed.count


class ImportsApi:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def operations(self) -> dict[str, OpHandler]:
        return {
            "CreateDatasetImportJob": self.create_dataset_import_job,
            "DescribeDatasetImportJob": self.describe_dataset_import_job,
            "ListDatasetImportJobs": self.list_dataset_import_jobs,
        }

    def resume(self, resource: Resource) -> None:
        if resource.status in (st.PENDING, st.IN_PROGRESS):
            self._deps.jobs.spawn(resource.arn, self._drive(resource.arn))

    def create_dataset_import_job(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        dataset = require(self._deps, body["datasetArn"], kinds.DATASET, "dataset")
        if dataset.doc["datasetType"].lower() not in BULK_TYPES:
            raise invalid(
                f"Bulk imports into {dataset.doc['datasetType']} datasets are not supported by local-personalize"
                " (development stand-in): use PutActions / PutActionInteractions."
            )
        location = (body.get("dataSource") or {}).get("dataLocation")
        if not location:
            raise invalid("dataSource.dataLocation is required.")
        require_active(dataset, "dataset")
        arn = import_job_arn(ctx, body["jobName"])
        check_new(self._deps, arn)
        mode = body.get("importMode") or "FULL"
        jobs = self._deps.resources.all(kinds.IMPORT_JOB)
        if mode == "INCREMENTAL" and not any(j.parent == dataset.arn and j.status == st.ACTIVE for j in jobs):
            raise invalid(
                f"importMode INCREMENTAL needs an earlier ACTIVE import into {dataset.arn}: "
                "the first bulk import of a dataset must be FULL."
            )
        if sum(j.status in st.BUSY for j in jobs) >= MAX_BUSY_IMPORT_JOBS:
            raise limit_exceeded(f"More than {MAX_BUSY_IMPORT_JOBS} resources with PENDING or IN_PROGRESS status.")
        doc: dict[str, Any] = {
            "jobName": body["jobName"],
            "datasetImportJobArn": arn,
            "datasetArn": dataset.arn,
            "dataSource": {"dataLocation": location},
            "importMode": mode,
            "publishAttributionMetricsToS3": bool(body.get("publishAttributionMetricsToS3", False)),
        }
        if body.get("roleArn"):
            doc["roleArn"] = body["roleArn"]
        self._deps.resources.add(
            new_resource(ctx, arn, kinds.IMPORT_JOB, doc, parent=dataset.arn, meta={"region": ctx.region})
        )
        self._deps.jobs.spawn(arn, self._drive(arn))
        return {"datasetImportJobArn": arn}

    def describe_dataset_import_job(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        job = require(self._deps, body["datasetImportJobArn"], kinds.IMPORT_JOB, "dataset import job")
        return {"datasetImportJob": job.describe()}

    def list_dataset_import_jobs(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        dataset = body.get("datasetArn")
        jobs = self._deps.resources.all(kinds.IMPORT_JOB, dataset)
        page, token = paginate(jobs, body, key=lambda r: r.sort_key(), scope=f"imports|{dataset}")
        entries = [summary(r, "datasetImportJobArn", "jobName", "importMode") for r in page]
        return listing("datasetImportJobs", entries, token)

    # -- the job ---------------------------------------------------------------------------

    async def _drive(self, arn: str) -> None:
        deps = self._deps
        job = deps.resources.get(arn)
        if job is None:
            return
        if job.status == st.PENDING:
            await deps.jobs.sleep(arn, job.updated + deps.step - deps.clock())
            deps.resources.set_status(job, st.IN_PROGRESS, deps.clock())
        if job.status != st.IN_PROGRESS:
            return
        started = deps.clock()
        reason: str | None = None
        try:
            task = self._task(job)
            count = await deps.jobs.in_thread(f"import-{job.doc['jobName']}", run_import, task)
            log.info("import job %s stored %d records", arn, count)
        except ImportFailure as failure:
            reason = failure.reason
        except Exception as exc:  # a bug or an unreadable file: the job fails, the server keeps going
            log.exception("import job %s failed", arn)
            reason = f"Internal error while importing: {exc}"
        await deps.jobs.sleep(arn, started + deps.step - deps.clock())
        if reason is None:
            deps.resources.set_status(job, st.ACTIVE, deps.clock())
        else:
            deps.resources.set_status(job, st.FAILED, deps.clock(), failureReason=reason)
        for callback in deps.on_import_done:
            callback(job.doc["datasetArn"])

    def _task(self, job: Resource) -> ImportTask:
        dataset = require(self._deps, job.doc["datasetArn"], kinds.DATASET, "dataset")
        return ImportTask(
            job_arn=job.arn,
            dataset_arn=dataset.arn,
            location=job.doc["dataSource"]["dataLocation"],
            full=job.doc["importMode"] == "FULL",
            schema=schemas_api.load(self._deps, dataset.doc["schemaArn"]),
            bulk_path=self._deps.bulk_path,
            endpoint_url=self._deps.options.s3_endpoint_url,
            region=job.meta.get("region", self._deps.options.region),
        )
