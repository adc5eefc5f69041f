"""Fault injection for the local Personalize (a development/test stand-in).

The worker's retry, backoff and rate-limiting code can only be tested against a
service that misbehaves on demand. All knobs are set as a whole by
``POST /_local/faults`` (absent keys are off, so ``{}`` clears everything). Three
concern the Put* data plane:

* ``throttle_rps`` - a token bucket over all Put* requests together; a request that
  finds it empty answers 400 ``ThrottlingException`` "Rate exceeded" (the generic AWS
  throttling reply, retried by every botocore mode - contract §4.3). The bucket
  holds one second's worth of tokens. ``0`` throttles every request, which gives
  tests a deterministic switch.
* ``error_rate`` - that fraction of Put* requests answers 500 ``InternalFailure``.
* ``latency_ms`` - every Put* reply is delayed this long (``asyncio.sleep``, so other
  requests proceed meanwhile).
* ``quota_rps`` - the real service's quota: requests/s **per dataset group and operation**,
  e.g. ``{"PutEvents": 1000, "PutItems": 10, "PutUsers": 10}`` (operations not named are
  not limited). Each (group, operation) has its own bucket holding one second's worth; a
  request that finds its bucket empty answers like ``throttle_rps``. The group is read
  from the request: PutEvents by its ``trackingId`` (a dataset group has at most one event
  tracker, so the tracker stands for its group), PutItems/PutUsers by the group named in
  ``datasetArn``. A fleet of workers sharing one group's quota meets it here as it would
  in AWS, while other groups keep their own.

Faults are decided before validation and storage, so a throttled or failed request
stores nothing - exactly what a client retrying it must be able to rely on.

Control-plane knobs (for testing a training scheduler):

* ``fail_next_trainings`` - the next N CreateSolutionVersion calls create versions that
  go through their statuses and end CREATE FAILED with a failureReason saying so;
* ``fail_next_campaign_updates`` - the next N UpdateCampaign calls end with
  ``latestCampaignUpdate`` CREATE FAILED; the campaign keeps serving its version;
* ``training_seconds`` - the least time a new training stays CREATE IN_PROGRESS (so a
  stop-on-timeout can be tested without big data);
* ``control_throttle_rps`` - a token bucket over control-plane calls; a call that finds
  it empty answers 400 LimitExceededException (the control plane's modeled
  request-rate error, retried by botocore's standard and adaptive modes).

The two counters count down as they are used (``GET /_local/faults`` shows what is left).
The control-plane keys and ``quota_rps`` appear in the settings only when set, so a client
of the older three-key API sees exactly what it saw before.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Final

from clickstream_devkit.personalize.errors import INTERNAL_FAILURE, THROTTLING, ApiError

LIMIT_EXCEEDED: Final = "LimitExceededException"
_DATA_PLANE_KEYS: Final = ("throttle_rps", "error_rate", "latency_ms")
_CONTROL_DEFAULTS: Final[dict[str, Any]] = {
    "fail_next_trainings": 0,
    "fail_next_campaign_updates": 0,
    "training_seconds": 0.0,
    "control_throttle_rps": None,
    "quota_rps": None,
}
#: Operations a per-group quota can name (the data plane).
QUOTA_OPERATIONS: Final = frozenset({"PutEvents", "PutItems", "PutUsers", "PutActions", "PutActionInteractions"})
#: Where a request names its group; the bodies are JSON written by botocore or the lean client.
_TRACKING_ID = re.compile(rb'"trackingId"\s*:\s*"([^"\\]*)"')
_DATASET_GROUP = re.compile(rb'"datasetArn"\s*:\s*"arn:[^"]*?:dataset/([^/"]+)/')


@dataclass(frozen=True, slots=True)
class FaultSettings:
    throttle_rps: float | None = None
    error_rate: float = 0.0
    latency_ms: float = 0.0
    fail_next_trainings: int = 0
    fail_next_campaign_updates: int = 0
    training_seconds: float = 0.0
    control_throttle_rps: float | None = None
    quota_rps: Mapping[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The three data-plane keys always; control-plane keys only when not at their default."""
        values = asdict(self)
        if self.quota_rps is not None:
            values["quota_rps"] = dict(self.quota_rps)
        return {k: v for k, v in values.items() if k in _DATA_PLANE_KEYS or v != _CONTROL_DEFAULTS[k]}


#: Upper bounds of the fault settings: a latency of hours or a throttle of 1e300 requests/s is a
#: mistake (or an attack on a shared stand-in), not a test.
FAULT_LIMITS: dict[str, float] = {
    "throttle_rps": 1_000_000.0, "error_rate": 1.0, "latency_ms": 60_000.0, "training_seconds": 3_600.0,
    "control_throttle_rps": 1_000_000.0, "fail_next_trainings": 1_000, "fail_next_campaign_updates": 1_000,
}


def _check_number(name: str, value: Any) -> None:
    if value is None:
        return
    if type(value) not in (int, float) or not math.isfinite(value) or not 0 <= value <= FAULT_LIMITS[name]:
        raise ValueError(f"{name} must be a number from 0 to {FAULT_LIMITS[name]:g}")


def parse_settings(payload: Any) -> FaultSettings:
    """Validate a ``POST /_local/faults`` body; raises ValueError with a readable reason."""
    if not isinstance(payload, dict):
        raise ValueError("fault settings must be a JSON object")
    unknown = set(payload) - set(_DATA_PLANE_KEYS) - set(_CONTROL_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown fault settings: {sorted(unknown)}")
    control = _parse_control(payload)
    throttle = payload.get("throttle_rps")
    error_rate = payload.get("error_rate", 0.0)
    latency = payload.get("latency_ms", 0.0)
    for name, value in (("throttle_rps", throttle), ("error_rate", error_rate), ("latency_ms", latency)):
        _check_number(name, value)
    if error_rate is None:
        raise ValueError("error_rate must be a number from 0 to 1")
    return FaultSettings(
        throttle_rps=None if throttle is None else float(throttle),
        error_rate=float(error_rate),
        latency_ms=float(latency or 0.0),
        **control,
    )


def _parse_quota(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise ValueError("quota_rps must be an object of operation -> requests/s, e.g. {\"PutEvents\": 1000}")
    unknown = set(value) - QUOTA_OPERATIONS
    if unknown:
        raise ValueError(f"quota_rps names unknown operations {sorted(unknown)}; use {sorted(QUOTA_OPERATIONS)}")
    for operation, rate in value.items():
        if type(rate) not in (int, float) or not math.isfinite(rate) or not 0 < rate <= FAULT_LIMITS["throttle_rps"]:
            raise ValueError(f"quota_rps.{operation} must be a number above 0 and at most "
                             f"{FAULT_LIMITS['throttle_rps']:g}")
    return {operation: float(rate) for operation, rate in value.items()}


def quota_group(operation: str, body: bytes) -> str:
    """The dataset group a data-plane request counts against (see the module docstring)."""
    match = (_TRACKING_ID if operation in ("PutEvents", "PutActionInteractions") else _DATASET_GROUP).search(body)
    return match.group(1).decode("utf-8", "replace") if match else ""


def _parse_control(payload: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("fail_next_trainings", "fail_next_campaign_updates"):
        value = payload.get(name, 0)
        if type(value) is not int or not 0 <= value <= FAULT_LIMITS[name]:
            raise ValueError(f"{name} must be an integer from 0 to {FAULT_LIMITS[name]:g}")
        out[name] = value
    for name in ("training_seconds", "control_throttle_rps"):
        value = payload.get(name)
        _check_number(name, value)
        out[name] = None if value is None else float(value)
    out["training_seconds"] = out["training_seconds"] or 0.0
    out["quota_rps"] = _parse_quota(payload.get("quota_rps"))
    return out


class TokenBucket:
    """Classic token bucket; `clock` is injectable so the logic is testable without sleeping."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()

    def take(self) -> bool:
        if self.rate <= 0:
            return False
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class FaultInjector:
    """Current fault settings plus the state (bucket, RNG) needed to apply them."""

    def __init__(self, rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._rng = rng or random.Random()
        self._clock = clock
        self.settings = FaultSettings()
        self._bucket: TokenBucket | None = None
        self._control_bucket: TokenBucket | None = None
        self._quota_buckets: dict[tuple[str, str], TokenBucket] = {}
        self.throttled = 0
        self.injected_errors = 0

    def configure(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._bucket = None if settings.throttle_rps is None else TokenBucket(settings.throttle_rps, self._clock)
        rate = settings.control_throttle_rps
        self._control_bucket = None if rate is None else TokenBucket(rate, self._clock)
        self._quota_buckets = {}

    def _quota_bucket(self, operation: str, body: bytes, quota: Mapping[str, float]) -> TokenBucket:
        key = (quota_group(operation, body), operation)
        bucket = self._quota_buckets.get(key)
        if bucket is None:
            bucket = self._quota_buckets[key] = TokenBucket(quota[operation], self._clock)
        return bucket

    def check_control(self) -> None:
        """Raise LimitExceededException when the control-plane bucket is empty."""
        if self._control_bucket is not None and not self._control_bucket.take():
            self.throttled += 1
            raise ApiError(LIMIT_EXCEEDED, "Rate exceeded", status=400, rule="injected_throttle")

    def take_training_failure(self) -> bool:
        """Consume one ``fail_next_trainings``; True when this training must fail."""
        if self.settings.fail_next_trainings <= 0:
            return False
        self.settings = replace(self.settings, fail_next_trainings=self.settings.fail_next_trainings - 1)
        return True

    def take_campaign_update_failure(self) -> bool:
        """Consume one ``fail_next_campaign_updates``; True when this update must fail."""
        count = self.settings.fail_next_campaign_updates
        if count <= 0:
            return False
        self.settings = replace(self.settings, fail_next_campaign_updates=count - 1)
        return True

    async def apply(self, operation: str = "", body: bytes = b"") -> None:
        """Delay, then raise the injected ApiError if this request is to fail.

        `operation` and `body` identify the dataset group for ``quota_rps``."""
        if self.settings.latency_ms > 0:
            await asyncio.sleep(self.settings.latency_ms / 1000.0)
        settings = self.settings  # after the sleep: the settings may have changed meanwhile (a storm starts)
        if self._bucket is not None and not self._bucket.take():
            self.throttled += 1
            raise ApiError(THROTTLING, "Rate exceeded", rule="injected_throttle")
        quota = settings.quota_rps
        if quota is not None and operation in quota and not self._quota_bucket(operation, body, quota).take():
            self.throttled += 1
            raise ApiError(THROTTLING, "Rate exceeded", rule="quota")
        if settings.error_rate > 0 and self._rng.random() < settings.error_rate:
            self.injected_errors += 1
            raise ApiError(
                INTERNAL_FAILURE,
                "Injected failure (local-personalize fault injection)",
                rule="injected_error",
            )
