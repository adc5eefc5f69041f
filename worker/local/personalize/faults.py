"""Fault injection for the local Personalize (a development/test stand-in).

The worker's retry, backoff and rate-limiting code can only be tested against a
service that misbehaves on demand. Three knobs, set as a whole by
``POST /_local/faults`` (absent keys are off, so ``{}`` clears everything):

* ``throttle_rps`` - a token bucket over all Put* requests together; a request that
  finds it empty answers 400 ``ThrottlingException`` "Rate exceeded" (the generic AWS
  throttling reply, retried by every botocore mode - contract §4.3). The bucket
  holds one second's worth of tokens. ``0`` throttles every request, which gives
  tests a deterministic switch.
* ``error_rate`` - that fraction of Put* requests answers 500 ``InternalFailure``.
* ``latency_ms`` - every Put* reply is delayed this long (``asyncio.sleep``, so other
  requests proceed meanwhile).

Faults are decided before validation and storage, so a throttled or failed request
stores nothing - exactly what a client retrying it must be able to rely on.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from worker.local.personalize.errors import INTERNAL_FAILURE, THROTTLING, ApiError


@dataclass(frozen=True, slots=True)
class FaultSettings:
    throttle_rps: float | None = None
    error_rate: float = 0.0
    latency_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_settings(payload: Any) -> FaultSettings:
    """Validate a ``POST /_local/faults`` body; raises ValueError with a readable reason."""
    if not isinstance(payload, dict):
        raise ValueError("fault settings must be a JSON object")
    unknown = set(payload) - {"throttle_rps", "error_rate", "latency_ms"}
    if unknown:
        raise ValueError(f"unknown fault settings: {sorted(unknown)}")
    throttle = payload.get("throttle_rps")
    error_rate = payload.get("error_rate", 0.0)
    latency = payload.get("latency_ms", 0.0)
    for name, value in (("throttle_rps", throttle), ("error_rate", error_rate), ("latency_ms", latency)):
        if value is not None and (type(value) not in (int, float) or value < 0):
            raise ValueError(f"{name} must be a non-negative number")
    if error_rate is None or error_rate > 1:
        raise ValueError("error_rate must be between 0.0 and 1.0")
    return FaultSettings(
        throttle_rps=None if throttle is None else float(throttle),
        error_rate=float(error_rate),
        latency_ms=float(latency or 0.0),
    )


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

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self.settings = FaultSettings()
        self._bucket: TokenBucket | None = None
        self.throttled = 0
        self.injected_errors = 0

    def configure(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._bucket = None if settings.throttle_rps is None else TokenBucket(settings.throttle_rps)

    async def apply(self) -> None:
        """Delay, then raise the injected ApiError if this request is to fail."""
        settings = self.settings
        if settings.latency_ms > 0:
            await asyncio.sleep(settings.latency_ms / 1000.0)
        if self._bucket is not None and not self._bucket.take():
            self.throttled += 1
            raise ApiError(THROTTLING, "Rate exceeded", rule="injected_throttle")
        if settings.error_rate > 0 and self._rng.random() < settings.error_rate:
            self.injected_errors += 1
            raise ApiError(
                INTERNAL_FAILURE,
                "Injected failure (local-personalize fault injection)",
                rule="injected_error",
            )
