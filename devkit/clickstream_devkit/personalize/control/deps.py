"""What every control-plane operation module shares: options, state handles, errors, the simple driver.

Control-plane errors are HTTP 400 whatever the code (the DG API pages list 400 for
every control-plane error; contract §4.1), with ``{"__type", "message"}`` bodies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.arns import DEFAULT_ACCOUNT, DEFAULT_REGION, RequestContext
from clickstream_devkit.personalize.control.control_store import ControlStore, Resource
from clickstream_devkit.personalize.control.jobs import Jobs
from clickstream_devkit.personalize.control.timing import Timing
from clickstream_devkit.personalize.errors import INVALID_INPUT, RESOURCE_IN_USE, RESOURCE_NOT_FOUND, ApiError
from clickstream_devkit.personalize.faults import FaultInjector
from clickstream_devkit.personalize.store import Store

RESOURCE_ALREADY_EXISTS: Final = "ResourceAlreadyExistsException"
LIMIT_EXCEEDED: Final = "LimitExceededException"

#: A control-plane operation: request context and decoded (validated) body -> reply body.
OpHandler = Callable[[RequestContext, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class ControlOptions:
    """Command-line settings of the control plane (see ``python -m clickstream_devkit.personalize --help``)."""

    account: str = DEFAULT_ACCOUNT
    region: str = DEFAULT_REGION
    s3_endpoint_url: str | None = None
    training_seed: int = 42
    timing: Timing = field(default_factory=Timing)


@dataclass
class Deps:
    """Handles shared by the operation modules (all used from the event-loop thread)."""

    options: ControlOptions
    resources: ControlStore
    store: Store
    bulk_path: Path
    models_dir: Path
    jobs: Jobs
    faults: FaultInjector
    clock: Callable[[], float] = time.time
    #: Called when an import job finished, with the dataset ARN (the runtime drops its cache).
    on_import_done: list[Callable[[str], None]] = field(default_factory=list)
    #: Called when a solution version became ACTIVE (campaigns that follow ``$LATEST`` switch to it).
    on_version_active: list[Callable[[Resource], None]] = field(default_factory=list)
    #: Called when a resource is gone for good (Delete*), with its last state: caches drop it.
    on_deleted: list[Callable[[Resource], None]] = field(default_factory=list)
    #: Called when a data deletion job removed users' records, with the dataset group ARN.
    on_records_erased: list[Callable[[str], None]] = field(default_factory=list)

    @property
    def step(self) -> float:
        return self.options.timing.step_seconds


def error(code: str, message: str, rule: str = "") -> ApiError:
    return ApiError(code, message, status=400, rule=rule or code)


def invalid(message: str) -> ApiError:
    return error(INVALID_INPUT, message)


def not_found(message: str) -> ApiError:
    return error(RESOURCE_NOT_FOUND, message)


def in_use(message: str) -> ApiError:
    return error(RESOURCE_IN_USE, message)


def already_exists(arn: str) -> ApiError:
    return error(RESOURCE_ALREADY_EXISTS, f"Resource {arn} already exists.")


def limit_exceeded(message: str) -> ApiError:
    return error(LIMIT_EXCEEDED, message)


def require(deps: Deps, arn: str, kind: str, label: str) -> Resource:
    """The resource at `arn` of `kind`, or ResourceNotFoundException naming it as `label`."""
    resource = deps.resources.get(arn, kind)
    if resource is None:
        raise not_found(f"Could not find {label} with ARN {arn}.")
    return resource


def require_active(resource: Resource, label: str) -> None:
    if resource.status != st.ACTIVE:
        raise in_use(f"The {label} {resource.arn} is not ACTIVE (status {resource.status}).")


def check_new(deps: Deps, arn: str) -> None:
    if deps.resources.get(arn) is not None:
        raise already_exists(arn)


def new_resource(
    ctx: RequestContext,
    arn: str,
    kind: str,
    doc: dict[str, Any],
    *,
    parent: str | None = None,
    status: str | None = st.PENDING,
    meta: dict[str, Any] | None = None,
) -> Resource:
    return Resource(arn, kind, parent, status, ctx.now, ctx.now, doc, meta or {})


async def drive_simple(deps: Deps, arn: str, on_active: Callable[[Resource], None] | None = None) -> None:
    """CREATE PENDING → CREATE IN_PROGRESS → ACTIVE, one step each; resumes from the persisted status.

    `on_active` runs once the resource is ACTIVE (it must be idempotent: after a crash
    between the two writes it runs again at start-up).
    """
    while True:
        resource = deps.resources.get(arn)
        if resource is None or resource.status is None:
            return
        target = st.next_status(resource.status)
        if target is None:
            return
        await deps.jobs.sleep(arn, resource.updated + deps.step - deps.clock())
        current = deps.resources.get(arn)
        if current is None or current.status != resource.status:
            continue
        deps.resources.set_status(current, target, deps.clock())
        if target == st.ACTIVE and on_active is not None:
            on_active(current)


def summary(resource: Resource, *fields: str) -> dict[str, Any]:
    """The List* summary of a resource: the named doc fields plus status and timestamps."""
    described = resource.describe()
    keys = (*fields, "status", "creationDateTime", "lastUpdatedDateTime", "failureReason")
    return {k: described[k] for k in keys if k in described}
