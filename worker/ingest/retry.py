"""What to do after a failed call: classify the error, back off, respect a deadline.

The sender needs one decision per failure, and it must be the same everywhere:

* THROTTLED — retry after a longer backoff and tell the rate limiter to slow down;
* RETRYABLE — transient (network, 5xx, expired credentials that botocore refreshes,
  a resource that is busy): retry with backoff;
* POISON — the request itself is invalid: bisect the batch and dead-letter the
  offending record, never retry it as is;
* CONFIG_FAULT — wrong tracking ID / dataset ARN, credentials or permissions: every
  record would fail the same way, so the worker must stop consuming and alert rather
  than dead-letter the whole stream.

Retries are bounded by a per-record delivery deadline rather than a count, so a long
throttling episode and a flapping endpoint are handled alike: when time runs out the
record is dead-lettered with stage ``delivery``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class ErrorKind(StrEnum):
    RETRYABLE = "retryable"
    THROTTLED = "throttled"
    POISON = "poison"
    CONFIG_FAULT = "config_fault"


#: Throttling codes botocore knows (retries/standard.py) plus Personalize's
#: LimitExceededException, which its model documents as the per-second request limit.
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
    }
)

RETRYABLE_CODES = frozenset(
    {
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        # botocore refreshes credentials on the next attempt.
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        # The contract says to wait when a dataset or tracker is busy.
        "ResourceInUseException",
    }
)

CONFIG_FAULT_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "InvalidClientTokenId",
        "MissingAuthenticationToken",
        "IncompleteSignature",
        "AuthFailure",
        "UnknownOperationException",
    }
)

POISON_CODES = frozenset({"InvalidInputException", "ValidationException", "SerializationException"})

#: Statuses that mean "you or your configuration", whatever the (unknown) code.
CONFIG_FAULT_STATUSES = frozenset({401, 403, 404})

_HTTP_TOO_MANY_REQUESTS = 429
_HTTP_REQUEST_TIMEOUT = 408


def classify(error_code: str | None, http_status: int | None) -> ErrorKind:
    """Decide what a failure means from its AWS error code and HTTP status.

    Both None means no reply at all (connection error, timeout): retryable. A known
    code wins over the status, except that 429 is always throttling (botocore's
    standard retry mode does not retry a bare 429, so the worker must). An unknown
    code falls back on the status: 5xx retryable, 401/403/404 a configuration fault,
    408 retryable (a timeout, not a bad request), any other 4xx poison. An unknown
    code with no usable status is treated as retryable: the delivery deadline bounds
    the cost of being wrong, whereas calling it poison would dead-letter good data.
    """
    if http_status == _HTTP_TOO_MANY_REQUESTS or error_code in THROTTLING_CODES:
        return ErrorKind.THROTTLED
    if error_code in RETRYABLE_CODES:
        return ErrorKind.RETRYABLE
    if error_code in CONFIG_FAULT_CODES:
        return ErrorKind.CONFIG_FAULT
    if error_code in POISON_CODES:
        return ErrorKind.POISON
    if http_status is None:
        return ErrorKind.RETRYABLE
    if http_status >= 500:
        return ErrorKind.RETRYABLE
    if http_status in CONFIG_FAULT_STATUSES:
        return ErrorKind.CONFIG_FAULT
    if http_status == _HTTP_REQUEST_TIMEOUT:
        return ErrorKind.RETRYABLE
    if 400 <= http_status < 500:
        return ErrorKind.POISON
    return ErrorKind.RETRYABLE


#: Beyond this many doublings every realistic base exceeds any cap; it also keeps
#: ``2 ** attempt`` from overflowing a float.
_MAX_DOUBLINGS = 62


@dataclass(frozen=True, slots=True)
class Backoff:
    """Full-jitter exponential backoff (AWS Architecture Blog, "Exponential Backoff
    and Jitter"): sleep uniform(0, min(cap, base * 2**attempt)). Full jitter spreads
    the retries of many concurrent senders, which is what breaks up a synchronized
    throttling storm; throttles start from a larger base because the service asked
    us to back off."""

    base_s: float = 0.05
    cap_s: float = 5.0
    throttle_base_s: float = 0.2

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.throttle_base_s < 0 or self.cap_s < 0:
            raise ValueError("backoff durations must be >= 0")

    def ceiling(self, attempt: int, kind: ErrorKind) -> float:
        """The upper bound of the jittered delay for `attempt` (0-based)."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        base = self.throttle_base_s if kind is ErrorKind.THROTTLED else self.base_s
        return min(self.cap_s, base * 2.0 ** min(attempt, _MAX_DOUBLINGS))

    def delay(self, attempt: int, kind: ErrorKind, rng: random.Random) -> float:
        """Seconds to sleep before retry number `attempt` (0 for the first retry)."""
        return rng.uniform(0.0, self.ceiling(attempt, kind))


@dataclass(frozen=True, slots=True)
class DeliveryDeadline:
    """How long a batch may keep being retried, measured from when it was ready to be sent."""

    started_at: float
    timeout_s: float

    @property
    def expires_at(self) -> float:
        return self.started_at + self.timeout_s

    def remaining(self, now: float) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires_at - now)

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def next_sleep(self, now: float, delay: float) -> float | None:
        """min(delay, remaining), or None once expired: the caller then dead-letters
        with stage ``delivery`` instead of sleeping past the deadline."""
        if self.expired(now):
            return None
        return min(max(0.0, delay), self.remaining(now))
