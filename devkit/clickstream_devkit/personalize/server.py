"""HTTP front of the local Personalize - a development/test stand-in, NOT Amazon Personalize.

Unmodified botocore/aiobotocore clients reach it through ``endpoint_url``. All three
Personalize services sign as ``personalize``, so routing cannot use the credential
scope (contract §1): a request carrying ``X-Amz-Target`` goes to the control plane
(JSON 1.1, `control.plane`), everything else is routed by method and path: the events
data plane here, the runtime (``/recommendations``, ``/personalize-ranking``) and the
``/_local/`` inspection routes. `PersonalizeService.add_route` and
`PersonalizeService.control_plane` are the extension points `control.plane.install` uses.

Requests are dispatched from one catch-all aiohttp route through a dict, which keeps
the per-request cost to a lookup; the access log is off unless asked for, because
logging every request would cost more than serving it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from clickstream_devkit.personalize.actions_api import ActionsApi
from clickstream_devkit.personalize.args import DESCRIPTION, add_arguments
from clickstream_devkit.personalize.control.deps import ControlOptions
from clickstream_devkit.personalize.control.plane import install
from clickstream_devkit.personalize.control.timing import Timing
from clickstream_devkit.personalize.errors import (
    AMZ_JSON_1_1,
    INTERNAL_FAILURE,
    SERIALIZATION,
    TOO_LARGE,
    UNKNOWN_OPERATION,
    ApiError,
    empty_success,
    error_response,
    json_response,
    new_request_id,
)
from clickstream_devkit.personalize.events_api import EventsApi, Handler, strict_json_loads
from clickstream_devkit.personalize.faults import FaultInjector, parse_settings
from clickstream_devkit.personalize.shape_validation import RequestValidator, compile_pattern, load_service_model
from clickstream_devkit.personalize.stats import Stats
from clickstream_devkit.personalize.store import DATASET_TYPES, Store

log = logging.getLogger(__name__)

RawHandler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]

#: Ready line printed to stdout; `READY_PREFIX` + URL, then the stand-in label.
READY_PREFIX: Final = "local-personalize listening on "
DEFAULT_PAGE: Final = 1000


class PersonalizeService:
    """Routing, shared state and the data-plane operations of one server instance."""

    def __init__(self, store: Store, faults: FaultInjector | None = None) -> None:
        self.store = store
        self.stats = Stats()
        self.faults = faults or FaultInjector()
        self.events_model = load_service_model("personalize-events")
        self.control_plane: RawHandler | None = None
        self._routes: dict[tuple[str, str], RawHandler] = {}
        validator = RequestValidator(self.events_model)
        events = EventsApi(store, self.stats, validator)
        actions = ActionsApi(store, self.stats, validator)
        for operation, (path, handler) in (events.routes() | actions.routes()).items():
            self.add_route("POST", path, self.operation_route(operation, handler))
        self._add_local_routes()

    def add_route(self, method: str, path: str, handler: RawHandler) -> None:
        self._routes[(method, path)] = handler

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        request_id = new_request_id()
        if "X-Amz-Target" in request.headers:
            if self.control_plane is not None:
                return await self.control_plane(request, request_id)
            target = request.headers["X-Amz-Target"]
            self.stats.requests["control-plane"] += 1
            error = ApiError(UNKNOWN_OPERATION, f"Unknown operation {target}", status=400)
            return error_response(error, request_id, content_type=AMZ_JSON_1_1)
        handler = self._routes.get((request.method, request.path))
        if handler is None:
            error = ApiError(UNKNOWN_OPERATION, f"No operation at {request.method} {request.path}", status=404)
            return error_response(error, request_id)
        return await handler(request, request_id)

    def operation_route(self, operation: str, handler: Handler, *, inject_faults: bool = True) -> RawHandler:
        """Wrap a rest-json body handler: count, inject faults, decode, run, render.

        The handler gets the decoded body and returns None (200, empty body - the Put*
        operations) or a JSON-serialisable reply (the runtime operations). The fault
        knobs are documented as Put* faults, so the runtime routes opt out of them.
        """
        stats, faults = self.stats, self.faults

        async def run(request: web.Request, request_id: str) -> web.StreamResponse:
            stats.requests[operation] += 1
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                error = ApiError(TOO_LARGE, "Request body is too large", status=413, rule="too_large")
                stats.reject(error.code, error.rule)
                return error_response(error, request_id)
            try:
                if inject_faults:
                    await faults.apply(operation, raw)  # before decoding and storage: a failure stores nothing
            except ApiError as error:
                return error_response(error, request_id)
            try:
                result = handler(decode_body(raw))
            except ApiError as error:
                stats.reject(error.code, error.rule)
                return error_response(error, request_id)
            except Exception:  # a bug or a storage failure: answer like AWS, keep serving
                log.exception("%s failed", operation)
                stats.reject(INTERNAL_FAILURE, "unexpected")
                return error_response(ApiError(INTERNAL_FAILURE, "Internal failure"), request_id)
            return empty_success(request_id) if result is None else json_response(result, request_id)

        return run

    # -- inspection and fault API for tests (not part of AWS) -------------------------

    def _add_local_routes(self) -> None:
        routes: dict[tuple[str, str], RawHandler] = {
            ("GET", "/_local/health"): self._health,
            ("GET", "/_local/stats"): self._stats,
            ("GET", "/_local/faults"): self._get_faults,
            ("POST", "/_local/faults"): self._set_faults,
            ("GET", "/_local/events"): self._events,
            ("GET", "/_local/items"): self._catalog("items"),
            ("GET", "/_local/users"): self._catalog("users"),
            ("GET", "/_local/actions"): self._actions,
            ("GET", "/_local/action-interactions"): self._action_interactions,
            ("GET", "/_local/action-trackers"): self._action_trackers,
            ("GET", "/_local/trackers"): self._trackers,
            ("GET", "/_local/datasets"): self._datasets,
        }
        for (method, path), handler in routes.items():
            self.add_route(method, path, handler)

    async def _health(self, request: web.Request, request_id: str) -> web.StreamResponse:
        return json_response({"status": "ok", "service": "local-personalize (development stand-in)"}, request_id)

    async def _stats(self, request: web.Request, request_id: str) -> web.StreamResponse:
        payload = self.stats.to_dict(
            throttled=self.faults.throttled,
            injected_errors=self.faults.injected_errors,
            stored=self.store.counts(),
        )
        return json_response(payload, request_id)

    async def _get_faults(self, request: web.Request, request_id: str) -> web.StreamResponse:
        return json_response(self.faults.settings.to_dict(), request_id)

    async def _set_faults(self, request: web.Request, request_id: str) -> web.StreamResponse:
        try:
            settings = parse_settings(decode_body(await request.read()))
        except (ApiError, ValueError) as error:
            return json_response({"error": str(error)}, request_id, status=400)
        self.faults.configure(settings)
        return json_response(settings.to_dict(), request_id)

    async def _events(self, request: web.Request, request_id: str) -> web.StreamResponse:
        query = request.query
        try:
            limit, offset = _page(query)
        except ValueError as error:
            return json_response({"error": str(error)}, request_id, status=400)
        return json_response(self.store.list_events(query.get("trackingId"), limit, offset), request_id)

    def _catalog(self, table: str) -> RawHandler:
        async def list_records(request: web.Request, request_id: str) -> web.StreamResponse:
            try:
                limit, offset = _page(request.query)
            except ValueError as error:
                return json_response({"error": str(error)}, request_id, status=400)
            rows = self.store.list_catalog(table, request.query.get("datasetArn"), limit, offset)
            return json_response(rows, request_id)

        return list_records

    async def _actions(self, request: web.Request, request_id: str) -> web.StreamResponse:
        try:
            limit, offset = _page(request.query)
        except ValueError as error:
            return json_response({"error": str(error)}, request_id, status=400)
        rows = self.store.actions.list_actions(request.query.get("datasetArn"), limit, offset)
        return json_response(rows, request_id)

    async def _action_interactions(self, request: web.Request, request_id: str) -> web.StreamResponse:
        try:
            limit, offset = _page(request.query)
        except ValueError as error:
            return json_response({"error": str(error)}, request_id, status=400)
        rows = self.store.actions.list_interactions(request.query.get("trackingId"), limit, offset)
        return json_response(rows, request_id)

    async def _action_trackers(self, request: web.Request, request_id: str) -> web.StreamResponse:
        rows = [
            {"trackingId": t.tracking_id, "datasetArn": t.dataset_arn, "datasetGroupArn": t.dataset_group_arn}
            for t in self.store.actions.trackers()
        ]
        return json_response(rows, request_id)

    async def _trackers(self, request: web.Request, request_id: str) -> web.StreamResponse:
        rows = [
            {"trackingId": t.tracking_id, "datasetGroupArn": t.dataset_group_arn, "status": t.status}
            for t in self.store.trackers()
        ]
        return json_response(rows, request_id)

    async def _datasets(self, request: web.Request, request_id: str) -> web.StreamResponse:
        rows = [
            {
                "datasetArn": d.arn,
                "datasetType": d.dataset_type,
                "datasetGroupArn": d.dataset_group_arn,
                "status": d.status,
            }
            for d in self.store.datasets()
        ]
        return json_response(rows, request_id)


def decode_body(raw: bytes) -> Any:
    """JSON body -> value; an empty body is ``{}`` (botocore omits empty bodies)."""
    if not raw:
        return {}
    try:
        return strict_json_loads(raw)
    except ValueError:  # includes UnicodeDecodeError
        raise ApiError(SERIALIZATION, "Request body is not valid JSON", rule="not_json") from None


def _page(query: Any) -> tuple[int, int]:
    limit, offset = int(query.get("limit", DEFAULT_PAGE)), int(query.get("offset", 0))
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must be non-negative")
    return limit, offset


def create_app(service: PersonalizeService) -> web.Application:
    """An aiohttp app whose single catch-all route hands everything to `service`."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", service.dispatch)
    return app


def dataset_type_from_arn(arn: str) -> str:
    """``…:dataset/<GroupName>/ITEMS`` -> ``ITEMS`` (last path segment, any case).

    This is the form of the dataset ARNs in the Personalize docs (contract §8.1), so
    ``--dataset`` needs no separate type argument.
    """
    kind = arn.rsplit("/", 1)[-1].upper()
    if "/" not in arn or kind not in DATASET_TYPES:
        raise ValueError(
            f"cannot tell the dataset type of {arn!r}: its last path segment must be ITEMS or USERS"
            " (PutItems/PutUsers), ACTIONS (PutActions), INTERACTIONS or ACTION_INTERACTIONS"
        )
    return kind


def dataset_group_from_arn(arn: str) -> str | None:
    """``arn:…:dataset/<Group>/<TYPE>`` -> ``arn:…:dataset-group/<Group>`` when it has that form."""
    prefix, _, resource = arn.partition(":dataset/")
    group = resource.split("/", 1)[0]
    return f"{prefix}:dataset-group/{group}" if resource and group else None


def register(
    store: Store,
    trackers: Iterable[str],
    datasets: Iterable[str],
    arn_pattern: str,
    action_trackers: Iterable[str] = (),
) -> None:
    """Apply the command-line registrations (idempotent, persisted)."""
    pattern = compile_pattern(arn_pattern)
    for tracking_id in [*trackers, *action_trackers]:
        if not 1 <= len(tracking_id) <= 256:
            raise ValueError(f"tracking ID must have 1 to 256 characters: {tracking_id!r}")
    for tracking_id in trackers:
        store.register_tracker(tracking_id)
    for tracking_id in action_trackers:
        store.actions.register_tracker(tracking_id)
    for arn in datasets:
        if len(arn) > 256 or pattern.fullmatch(arn) is None:
            raise ValueError(f"not a Personalize ARN: {arn!r}")
        store.register_dataset(arn, dataset_type_from_arn(arn), dataset_group_from_arn(arn))


async def serve(
    host: str,
    port: int,
    data_dir: Path | str,
    *,
    trackers: Iterable[str] = (),
    datasets: Iterable[str] = (),
    action_trackers: Iterable[str] = (),
    access_log: bool = False,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    control: ControlOptions | None = None,
) -> None:
    """Run until `stop` is set (or SIGTERM/SIGINT when `stop` is None), then close cleanly."""
    store = Store(data_dir)
    try:
        service = PersonalizeService(store)
        arn_pattern = service.events_model.shape_for("Arn").metadata["pattern"]
        register(store, trackers, datasets, arn_pattern, action_trackers)
        plane = install(service, data_dir, control or ControlOptions())
        runner = web.AppRunner(create_app(service), access_log=log if access_log else None, handle_signals=False)
        await runner.setup()
        try:
            await plane.start()
            site = web.TCPSite(runner, host, port)
            await site.start()
            url = _bound_url(runner, host, port)
            if stop is None:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, stop.set)
            if ready is not None:
                ready(url)
            await stop.wait()
        finally:
            await runner.cleanup()
            await plane.close()
    finally:
        store.close()


def _bound_url(runner: web.AppRunner, host: str, port: int) -> str:
    """The URL actually bound (port 0 asks the OS for a free port)."""
    addresses = runner.addresses
    if addresses:
        port = int(addresses[0][1])
    return f"http://{host}:{port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clickstream_devkit.personalize", description=DESCRIPTION)
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv), parser)


def run_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Serve until SIGTERM/SIGINT with the options `add_arguments` defined (parsed by `parser`).

    An invalid option value exits through ``parser.error`` (usage and exit code 2).
    """
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")

    def announce(url: str) -> None:
        log.warning("local-personalize is a development/test stand-in, not Amazon Personalize")
        print(f"{READY_PREFIX}{url} (development stand-in)", flush=True)

    try:
        if not (len(args.account_id) == 12 and args.account_id.isdigit()):
            raise ValueError(f"--account-id must be 12 digits, got {args.account_id!r}")
        control = ControlOptions(
            account=args.account_id,
            region=args.region,
            s3_endpoint_url=args.s3_endpoint_url,
            training_seed=args.training_seed,
            timing=Timing.from_options(fast=args.fast, transition_seconds=args.transition_seconds),
        )
        asyncio.run(
            serve(
                args.host,
                args.port,
                args.data_dir,
                trackers=args.tracker,
                datasets=args.dataset,
                action_trackers=args.action_tracker,
                access_log=args.access_log,
                ready=announce,
                control=control,
            )
        )
    except ValueError as error:
        parser.error(str(error))
    return 0
