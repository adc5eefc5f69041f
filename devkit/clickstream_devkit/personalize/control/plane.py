"""The JSON 1.1 control plane: ``POST /`` + ``X-Amz-Target: AmazonPersonalize.<Op>``, and its wiring.

Per request, in this order: the target names an implemented operation (else
UnknownOperationException); the ``control_throttle_rps`` fault (LimitExceededException);
the body decodes as JSON (SerializationException); the body satisfies every required
member, maximum, pattern and enum of the operation's input shape in botocore's own
``personalize`` model (InvalidInputException; botocore itself checks only types and
minimums, contract §3); then the operation. Every error is HTTP 400 with
``{"__type", "message"}`` and content type ``application/x-amz-json-1.1`` (contract §4.1);
an unexpected failure is 500 InternalFailure and the server keeps serving.

`install` builds the shared state (control store, bulk store, jobs, runtime), hooks the
control plane, the runtime routes and the ``/_local/resources``, ``/_local/bulk`` and
``/_local/data-deletions`` inspection routes into a
`PersonalizeService`, and `ControlPlane.start` resumes every resource's driver (a resource
that was being deleted resumes its deletion).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from aiohttp import web

from clickstream_devkit.personalize.control import bulk_store
from clickstream_devkit.personalize.control import control_store as kinds
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.arns import RequestContext, region_from_authorization
from clickstream_devkit.personalize.control.batch_api import BatchApi
from clickstream_devkit.personalize.control.campaigns_api import CampaignsApi
from clickstream_devkit.personalize.control.catalog import Catalog
from clickstream_devkit.personalize.control.control_store import ControlStore, Resource
from clickstream_devkit.personalize.control.data_deletion_api import DataDeletionApi
from clickstream_devkit.personalize.control.datasets_api import DatasetsApi
from clickstream_devkit.personalize.control.deletes_api import DeletesApi
from clickstream_devkit.personalize.control.deps import ControlOptions, Deps, OpHandler
from clickstream_devkit.personalize.control.filtering import Filtering
from clickstream_devkit.personalize.control.filters_api import FiltersApi
from clickstream_devkit.personalize.control.history import HistoryIndex
from clickstream_devkit.personalize.control.imports_api import ImportsApi
from clickstream_devkit.personalize.control.jobs import Jobs
from clickstream_devkit.personalize.control.models import ModelCache
from clickstream_devkit.personalize.control.recipes_api import RecipesApi
from clickstream_devkit.personalize.control.runtime_api import RuntimeApi
from clickstream_devkit.personalize.control.schemas_api import SchemasApi
from clickstream_devkit.personalize.control.serving import Serving
from clickstream_devkit.personalize.control.solutions_api import SolutionsApi
from clickstream_devkit.personalize.control.trackers_api import TrackersApi
from clickstream_devkit.personalize.control.versions_api import VersionsApi
from clickstream_devkit.personalize.errors import (
    AMZ_JSON_1_1,
    INTERNAL_FAILURE,
    SERIALIZATION,
    TOO_LARGE,
    UNKNOWN_OPERATION,
    ApiError,
    base_headers,
    error_response,
    json_response,
    validation_error,
)
from clickstream_devkit.personalize.events_api import strict_json_loads
from clickstream_devkit.personalize.shape_validation import RequestValidator, load_service_model

if TYPE_CHECKING:
    from clickstream_devkit.personalize.server import PersonalizeService

log = logging.getLogger(__name__)

TARGET_PREFIX: Final = "AmazonPersonalize"
MODELS_DIR: Final = "models"


class _Resumable(Protocol):
    def operations(self) -> dict[str, OpHandler]: ...

    def resume(self, resource: Resource) -> None: ...


class ControlPlane:
    def __init__(self, service: PersonalizeService, deps: Deps, serving: Serving) -> None:
        self._service = service
        self._deps = deps
        self._validator = RequestValidator(load_service_model("personalize"))
        campaigns = CampaignsApi(deps)
        datasets = DatasetsApi(deps)
        self._deletes = DeletesApi(deps)
        self.data_deletions = DataDeletionApi(deps)
        self._resumers: dict[str, _Resumable] = {
            kinds.DATASET_GROUP: datasets,
            kinds.DATASET: datasets,
            kinds.EVENT_TRACKER: TrackersApi(deps),
            kinds.IMPORT_JOB: ImportsApi(deps),
            kinds.SOLUTION: SolutionsApi(deps),
            kinds.SOLUTION_VERSION: VersionsApi(deps),
            kinds.CAMPAIGN: campaigns,
            kinds.FILTER: FiltersApi(deps),
            kinds.BATCH_INFERENCE_JOB: BatchApi(deps, serving),
            kinds.DATA_DELETION_JOB: self.data_deletions,
        }
        self.operations: dict[str, OpHandler] = {}
        for ops in (SchemasApi(deps).operations(), RecipesApi(deps).operations(), self._deletes.operations()):
            self.operations.update(ops)
        for api in self._resumers.values():
            self.operations.update(api.operations())

    async def start(self) -> None:
        """Resume the driver of every resource (a no-op for those already in a final status)."""
        for resource in self._deps.resources.all():
            if resource.status in st.DELETING:
                self._deletes.resume(resource)
                continue
            api = self._resumers.get(resource.kind)
            if api is not None:
                api.resume(resource)

    async def close(self) -> None:
        await self._deps.jobs.close()
        self._deps.resources.close()

    async def __call__(self, request: web.Request, request_id: str) -> web.StreamResponse:
        target = request.headers.get("X-Amz-Target", "")
        prefix, _, operation = target.partition(".")
        stats = self._service.stats
        stats.requests[operation or target] += 1
        try:
            if prefix != TARGET_PREFIX or operation not in self.operations:
                raise ApiError(
                    UNKNOWN_OPERATION,
                    f"Operation {target} is not supported by local-personalize (development stand-in)",
                    rule="unknown_operation",
                )
            self._deps.faults.check_control()
            body = await _read_json(request)
            violation = self._validator.validate(operation, body)
            if violation is not None:
                raise validation_error(violation)
            region = region_from_authorization(request.headers.get("Authorization"), self._deps.options.region)
            ctx = RequestContext(region, self._deps.options.account, self._deps.clock())
            result = self.operations[operation](ctx, body)
        except ApiError as error:
            stats.reject(error.code, error.rule)
            error.status = 413 if error.code == TOO_LARGE else 400
            return error_response(error, request_id, content_type=AMZ_JSON_1_1)
        except Exception:  # a bug: answer like AWS and keep serving
            log.exception("%s failed", operation)
            stats.reject(INTERNAL_FAILURE, "unexpected")
            return error_response(
                ApiError(INTERNAL_FAILURE, "Internal failure", status=500), request_id, content_type=AMZ_JSON_1_1
            )
        return web.Response(text=json.dumps(result), content_type=AMZ_JSON_1_1, headers=base_headers(request_id))

    async def inspect(self, request: web.Request, request_id: str) -> web.StreamResponse:
        """``GET /_local/resources[?kind=...]``: every resource with its status (not an AWS API)."""
        kind = request.query.get("kind")
        rows: list[dict[str, Any]] = [
            {"arn": r.arn, "kind": r.kind, "status": r.status, "parent": r.parent, "describe": r.describe()}
            for r in sorted(self._deps.resources.all(kind), key=lambda r: r.sort_key())
        ]
        return json_response(rows, request_id)

    async def inspect_bulk(self, request: web.Request, request_id: str) -> web.StreamResponse:
        """``GET /_local/bulk``: bulk-imported rows per dataset ARN (not an AWS API)."""
        return json_response(bulk_store.counts(self._deps.bulk_path), request_id)


async def _read_json(request: web.Request) -> Any:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(TOO_LARGE, "Request body is too large", rule="too_large") from None
    if not raw:
        return {}
    try:
        return strict_json_loads(raw)
    except ValueError:
        raise ApiError(SERIALIZATION, "Request body is not valid JSON", rule="not_json") from None


def _forget_history(history: HistoryIndex, resource: Resource) -> None:
    if resource.kind in (kinds.DATASET, kinds.DATASET_GROUP):
        history.reset()


def install(service: PersonalizeService, data_dir: Path | str, options: ControlOptions) -> ControlPlane:
    """Wire the control plane, the runtime and the inspection route into `service`."""
    directory = Path(data_dir)
    models_dir = directory / MODELS_DIR
    models_dir.mkdir(parents=True, exist_ok=True)
    deps = Deps(
        options=options,
        resources=ControlStore(directory),
        store=service.store,
        bulk_path=bulk_store.init(directory),
        models_dir=models_dir,
        jobs=Jobs(),
        faults=service.faults,
        clock=time.time,
    )
    history = HistoryIndex(service.store, deps.bulk_path)
    deps.on_import_done.append(history.invalidate_bulk)
    deps.on_deleted.append(lambda resource: _forget_history(history, resource))
    deps.on_records_erased.append(lambda group: history.reset())
    serving = Serving(deps, history, ModelCache(models_dir), Filtering(deps, history, Catalog(deps)))
    plane = ControlPlane(service, deps, serving)
    runtime = RuntimeApi(deps, serving, RequestValidator(load_service_model("personalize-runtime")))
    for operation, (path, handler) in runtime.routes().items():
        service.add_route("POST", path, service.operation_route(operation, handler, inject_faults=False))
    service.add_route("GET", "/_local/resources", plane.inspect)
    service.add_route("GET", "/_local/bulk", plane.inspect_bulk)
    service.add_route("GET", "/_local/data-deletions", plane.data_deletions.inspect)
    service.control_plane = plane
    return plane
