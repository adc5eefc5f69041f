"""CreateBatchInferenceJob / DescribeBatchInferenceJob / ListBatchInferenceJobs.

A job reads JSON Lines queries from ``jobInput.s3DataSource.path`` (one object, or every
object under a prefix ending in ``/``), answers each one from the solution version's model
exactly as the runtime would (`serving`: the user's history, the job's ``filterArn`` with
each line's ``filterValues``, ``batchInferenceJobConfig.itemExplorationConfig``), and writes
``<input name>.out`` under ``jobOutput.s3DataDestination.path`` (`batch_io` has the formats).
Statuses: CREATE PENDING for one step, CREATE IN_PROGRESS while it runs (at least one
step), then ACTIVE, or CREATE FAILED with a failureReason when the input cannot be read
or the output cannot be written. The model's doc lists the statuses as "PENDING, IN
PROGRESS, ACTIVE, CREATE FAILED"; the stand-in uses the spelling every other resource
uses on the wire (``CREATE PENDING``, ``CREATE IN_PROGRESS``), which the AWS samples'
wait loops (``ACTIVE`` or ``CREATE FAILED``) accept either way. A restarted server runs an
interrupted job again from the start (it rewrites the same output).

Checks at creation: the solution version exists (ResourceNotFoundException) and is ACTIVE
(ResourceInUseException while it trains, InvalidInputException once failed or stopped);
``numResults`` is 1-500 (default 25); the filter, if any, exists, is ACTIVE and belongs to
the version's dataset group; ``s3://`` locations only; ``THEME_GENERATION`` mode needs the
Similar-Items recipe and a content generator, neither of which the stand-in has
(InvalidInputException). Reading and writing S3 use the server's own credentials and
``--s3-endpoint-url`` (the role is recorded, not assumed).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from clickstream_devkit.personalize.control import control_store as kinds
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.arns import RequestContext, resource_name
from clickstream_devkit.personalize.control.batch_io import BatchInputError, Query, output_line, output_uri, parse_input
from clickstream_devkit.personalize.control.control_store import Resource
from clickstream_devkit.personalize.control.csv_import import ImportFailure
from clickstream_devkit.personalize.control.deps import (
    Deps,
    OpHandler,
    check_new,
    in_use,
    invalid,
    new_resource,
    not_found,
    require,
    summary,
)
from clickstream_devkit.personalize.control.pagination import listing, paginate
from clickstream_devkit.personalize.control.s3_source import read_location, split_location, write_object
from clickstream_devkit.personalize.control.serving import Exploration, QueryError, Serving

log = logging.getLogger(__name__)

DEFAULT_NUM_RESULTS: Final = 25
MAX_NUM_RESULTS: Final = 500
#: Queries answered between two yields to the event loop (the server keeps serving meanwhile).
_CHUNK: Final = 50


class BatchApi:
    def __init__(self, deps: Deps, serving: Serving) -> None:
        self._deps = deps
        self._serving = serving

    def operations(self) -> dict[str, OpHandler]:
        return {
            "CreateBatchInferenceJob": self.create_batch_inference_job,
            "DescribeBatchInferenceJob": self.describe_batch_inference_job,
            "ListBatchInferenceJobs": self.list_batch_inference_jobs,
        }

    def resume(self, resource: Resource) -> None:
        if resource.status in (st.PENDING, st.IN_PROGRESS):
            self._deps.jobs.spawn(resource.arn, self._drive(resource.arn))

    def create_batch_inference_job(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        deps = self._deps
        version = require(deps, body["solutionVersionArn"], kinds.SOLUTION_VERSION, "solution version")
        if version.status in st.BUSY:
            raise in_use(f"Solution version {version.arn} is {version.status}; batch inference needs it ACTIVE.")
        if version.status != st.ACTIVE:
            raise invalid(f"Solution version {version.arn} is {version.status}; batch inference needs it ACTIVE.")
        if (body.get("batchInferenceJobMode") or "BATCH_INFERENCE") != "BATCH_INFERENCE":
            raise invalid(
                "batchInferenceJobMode THEME_GENERATION is not supported by local-personalize (development stand-in): "
                "it needs the Similar-Items recipe and a content generator."
            )
        n = int(body.get("numResults", DEFAULT_NUM_RESULTS))
        if not 1 <= n <= MAX_NUM_RESULTS:
            raise invalid(f"numResults must be from 1 to {MAX_NUM_RESULTS}, got {n}.")
        source = body["jobInput"]["s3DataSource"]["path"]
        destination = body["jobOutput"]["s3DataDestination"]["path"]
        for location in (source, destination):
            try:
                split_location(location)
            except ImportFailure as exc:
                raise invalid(exc.reason) from None
        config = body.get("batchInferenceJobConfig") or {}
        try:
            Exploration.of(config.get("itemExplorationConfig"))
        except ValueError:
            raise invalid("batchInferenceJobConfig.itemExplorationConfig values must be numbers.") from None
        if body.get("filterArn"):
            self._check_filter(body["filterArn"], version)
        arn = ctx.arn(f"batch-inference-job/{body['jobName']}")
        check_new(deps, arn)
        doc: dict[str, Any] = {
            "jobName": body["jobName"],
            "batchInferenceJobArn": arn,
            "solutionVersionArn": version.arn,
            "numResults": n,
            "jobInput": body["jobInput"],
            "jobOutput": body["jobOutput"],
            "roleArn": body["roleArn"],
            "batchInferenceJobMode": "BATCH_INFERENCE",
        }
        doc.update({k: body[k] for k in ("filterArn", "batchInferenceJobConfig") if body.get(k)})
        deps.resources.add(
            new_resource(ctx, arn, kinds.BATCH_INFERENCE_JOB, doc, parent=version.arn, meta={"region": ctx.region})
        )
        deps.jobs.spawn(arn, self._drive(arn))
        return {"batchInferenceJobArn": arn}

    def describe_batch_inference_job(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        job = require(self._deps, body["batchInferenceJobArn"], kinds.BATCH_INFERENCE_JOB, "batch inference job")
        return {"batchInferenceJob": job.describe()}

    def list_batch_inference_jobs(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        version = body.get("solutionVersionArn")
        jobs = self._deps.resources.all(kinds.BATCH_INFERENCE_JOB, version)
        page, token = paginate(jobs, body, key=lambda r: r.sort_key(), scope=f"batch|{version}")
        fields = ("batchInferenceJobArn", "jobName", "solutionVersionArn", "batchInferenceJobMode")
        return listing("batchInferenceJobs", [summary(r, *fields) for r in page], token)

    def _check_filter(self, filter_arn: str, version: Resource) -> None:
        resource = self._deps.resources.get(filter_arn, kinds.FILTER)
        if resource is None:
            raise not_found(f"Could not find filter with ARN {filter_arn}.")
        if resource.status in st.BUSY:
            raise in_use(f"Filter {filter_arn} is {resource.status}; it can be used once it is ACTIVE.")
        if resource.status != st.ACTIVE or resource.parent != version.doc["datasetGroupArn"]:
            raise invalid(
                f"Filter {filter_arn} ({resource.status}) cannot filter solution version {version.arn}: it must be "
                "ACTIVE and belong to the version's dataset group."
            )

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
        try:
            await self._run(job)
            reason = None
        except (ImportFailure, BatchInputError, QueryError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "message", None) or str(exc)
        except Exception as exc:  # a bug: the job fails, the server keeps going
            log.exception("batch inference job %s failed", arn)
            reason = f"Internal error during batch inference: {exc}"
        await deps.jobs.sleep(arn, started + deps.step - deps.clock())
        if reason is None:
            deps.resources.set_status(job, st.ACTIVE, deps.clock())
        else:
            deps.resources.set_status(job, st.FAILED, deps.clock(), failureReason=reason)

    async def _run(self, job: Resource) -> None:
        deps = self._deps
        version = deps.resources.get(job.doc["solutionVersionArn"], kinds.SOLUTION_VERSION)
        if version is None or version.status != st.ACTIVE or "model" not in version.meta:
            raise QueryError(f"Solution version {job.doc['solutionVersionArn']} is no longer ACTIVE.")
        region = job.meta.get("region", deps.options.region)
        endpoint = deps.options.s3_endpoint_url
        files = await deps.jobs.in_thread(
            f"batch-read-{resource_name(job.arn)}",
            lambda: read_location(job.doc["jobInput"]["s3DataSource"]["path"], endpoint_url=endpoint, region=region),
        )
        if not files:
            raise BatchInputError(f"No input found at {job.doc['jobInput']['s3DataSource']['path']}.")
        kind = self._serving.recipe_type(version)
        outputs: list[tuple[str, bytes]] = []
        for uri, data in files:
            lines = await self._answer(job, version, parse_input(data, kind))
            target = output_uri(uri, job.doc["jobOutput"]["s3DataDestination"]["path"])
            outputs.append((target, ("\n".join(lines) + "\n").encode() if lines else b""))
        for target, payload in outputs:
            await deps.jobs.in_thread(
                f"batch-write-{resource_name(job.arn)}",
                lambda t=target, p=payload: write_object(t, p, endpoint_url=endpoint, region=region),
            )

    async def _answer(self, job: Resource, version: Resource, queries: list[Query]) -> list[str]:
        """One output line per query, yielding to the event loop every `_CHUNK` queries."""
        serving = self._serving
        model = serving.model(version)
        kind = serving.recipe_type(version)
        exploration = Exploration.of((job.doc.get("batchInferenceJobConfig") or {}).get("itemExplorationConfig"))
        lines: list[str] = []
        for index, query in enumerate(queries):
            if index and index % _CHUNK == 0:
                await asyncio.sleep(0)
            if query.error is not None:
                lines.append(output_line(query, None))
                continue
            try:
                prepared = serving.prepare_filter(version, job.doc.get("filterArn"), query.filter_values)
                if kind == "PERSONALIZED_RANKING":
                    ranked = serving.rank(
                        version, model, user_id=query.user_id or "", items=query.item_list, prepared=prepared
                    )
                else:
                    ranked = serving.recommend(
                        version, model, user_id=query.user_id, item_id=query.item_id, n=job.doc["numResults"],
                        prepared=prepared, exploration=exploration,
                    )  # fmt: skip
            except QueryError as exc:
                lines.append(output_line(query, None, exc.message))
                continue
            lines.append(output_line(query, ranked))
        return lines
