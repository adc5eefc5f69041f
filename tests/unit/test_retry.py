"""Error classification table, full-jitter backoff, and the delivery deadline."""

from __future__ import annotations

import random
import statistics

import pytest

from worker.ingest.retry import Backoff, DeliveryDeadline, ErrorKind, classify

THROTTLED = [
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "ProvisionedThroughputExceededException",
    "SlowDown",
]
RETRYABLE = [
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "ResourceInUseException",
]
CONFIG_FAULT = [
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
]
POISON = ["InvalidInputException", "ValidationException", "SerializationException"]

CODE_TABLE = (
    [(code, ErrorKind.THROTTLED) for code in THROTTLED]
    + [(code, ErrorKind.RETRYABLE) for code in RETRYABLE]
    + [(code, ErrorKind.CONFIG_FAULT) for code in CONFIG_FAULT]
    + [(code, ErrorKind.POISON) for code in POISON]
)


@pytest.mark.parametrize(("code", "kind"), CODE_TABLE)
@pytest.mark.parametrize("status", [None, 400, 404, 409, 500])
def test_known_codes_win_over_the_status(code: str, kind: ErrorKind, status: int | None) -> None:
    assert classify(code, status) is kind


@pytest.mark.parametrize("code", [None, "InvalidInputException", "ResourceNotFoundException", "Whatever"])
def test_http_429_is_always_throttling(code: str | None) -> None:
    assert classify(code, 429) is ErrorKind.THROTTLED


def test_no_reply_at_all_is_retryable() -> None:
    assert classify(None, None) is ErrorKind.RETRYABLE


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, ErrorKind.RETRYABLE),
        (502, ErrorKind.RETRYABLE),
        (503, ErrorKind.RETRYABLE),
        (504, ErrorKind.RETRYABLE),
        (599, ErrorKind.RETRYABLE),
        (401, ErrorKind.CONFIG_FAULT),
        (403, ErrorKind.CONFIG_FAULT),
        (404, ErrorKind.CONFIG_FAULT),
        (408, ErrorKind.RETRYABLE),
        (400, ErrorKind.POISON),
        (409, ErrorKind.POISON),
        (413, ErrorKind.POISON),
        (422, ErrorKind.POISON),
        (499, ErrorKind.POISON),
    ],
)
@pytest.mark.parametrize("code", [None, "SomethingNew"])
def test_unknown_code_falls_back_on_the_status(code: str | None, status: int, kind: ErrorKind) -> None:
    assert classify(code, status) is kind


def test_unknown_code_without_status_is_retryable() -> None:
    assert classify("SomethingNew", None) is ErrorKind.RETRYABLE


def test_codes_are_matched_exactly() -> None:
    assert classify("throttlingexception", 400) is ErrorKind.POISON  # botocore keeps AWS's casing
    assert classify("InvalidInput", 400) is ErrorKind.POISON


def test_error_kind_values_are_stable_strings() -> None:
    assert [k.value for k in ErrorKind] == ["retryable", "throttled", "poison", "config_fault"]
    assert f"{ErrorKind.CONFIG_FAULT}" == "config_fault"


# --- backoff ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_delay_stays_within_full_jitter_bounds(kind: ErrorKind) -> None:
    backoff = Backoff()
    rng = random.Random(7)
    base = 0.2 if kind is ErrorKind.THROTTLED else 0.05
    for attempt in range(12):
        ceiling = min(5.0, base * 2**attempt)
        samples = [backoff.delay(attempt, kind, rng) for _ in range(500)]
        assert all(0.0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.95  # it does reach the top of the range
        assert min(samples) < ceiling * 0.05  # and the bottom: full, not "equal", jitter


def test_delay_grows_exponentially_until_the_cap() -> None:
    backoff = Backoff(base_s=0.1, cap_s=3.0, throttle_base_s=0.4)
    rng = random.Random(11)
    means = [statistics.fmean(backoff.delay(a, ErrorKind.RETRYABLE, rng) for _ in range(4000)) for a in range(8)]
    expected = [min(3.0, 0.1 * 2**a) / 2 for a in range(8)]  # mean of uniform(0, c) is c / 2
    assert means == pytest.approx(expected, rel=0.05)
    throttled = statistics.fmean(backoff.delay(0, ErrorKind.THROTTLED, rng) for _ in range(4000))
    assert throttled == pytest.approx(0.2, rel=0.05)


def test_delay_is_uniform_over_the_range() -> None:
    backoff = Backoff()
    rng = random.Random(3)
    n = 20_000
    ceiling = backoff.ceiling(4, ErrorKind.RETRYABLE)
    assert ceiling == pytest.approx(0.8)
    deciles = [0] * 10
    for _ in range(n):
        deciles[min(9, int(backoff.delay(4, ErrorKind.RETRYABLE, rng) / ceiling * 10))] += 1
    assert all(abs(count - n / 10) < n / 10 * 0.08 for count in deciles), deciles


def test_huge_attempt_numbers_are_capped_without_overflow() -> None:
    backoff = Backoff()
    rng = random.Random(5)
    for attempt in (63, 1024, 10**6):
        assert backoff.ceiling(attempt, ErrorKind.THROTTLED) == 5.0
        assert 0.0 <= backoff.delay(attempt, ErrorKind.RETRYABLE, rng) <= 5.0


def test_same_seed_same_delays() -> None:
    backoff = Backoff()
    first = [backoff.delay(a, ErrorKind.THROTTLED, random.Random(42)) for a in range(6)]
    again = [backoff.delay(a, ErrorKind.THROTTLED, random.Random(42)) for a in range(6)]
    other = [backoff.delay(a, ErrorKind.THROTTLED, random.Random(43)) for a in range(6)]
    assert first == again
    assert first != other


def test_invalid_backoff() -> None:
    with pytest.raises(ValueError):
        Backoff().delay(-1, ErrorKind.RETRYABLE, random.Random(0))
    with pytest.raises(ValueError):
        Backoff(base_s=-0.1)
    with pytest.raises(ValueError):
        Backoff(cap_s=-1.0)


def test_zero_cap_means_no_sleep() -> None:
    assert Backoff(cap_s=0.0).delay(3, ErrorKind.THROTTLED, random.Random(1)) == 0.0


# --- deadline -----------------------------------------------------------------------------------


def test_deadline_arithmetic() -> None:
    d = DeliveryDeadline(started_at=100.0, timeout_s=30.0)
    assert d.expires_at == 130.0
    assert d.remaining(100.0) == 30.0
    assert d.remaining(120.5) == 9.5
    assert d.remaining(131.0) == 0.0  # never negative
    assert not d.expired(129.999)
    assert d.expired(130.0)
    assert d.expired(1000.0)


def test_next_sleep_is_capped_by_the_deadline() -> None:
    d = DeliveryDeadline(started_at=0.0, timeout_s=10.0)
    assert d.next_sleep(1.0, 2.5) == 2.5
    assert d.next_sleep(9.0, 2.5) == 1.0  # wake at the deadline, not past it
    assert d.next_sleep(9.0, -1.0) == 0.0
    assert d.next_sleep(10.0, 0.1) is None  # expired: dead-letter instead of sleeping
    assert d.next_sleep(50.0, 0.0) is None


def test_retry_loop_ends_by_the_deadline() -> None:
    """Driving backoff and deadline together, as the sender does: total sleep <= timeout."""
    backoff, rng = Backoff(), random.Random(9)
    d = DeliveryDeadline(started_at=0.0, timeout_s=20.0)
    now, attempt = 0.0, 0
    while (pause := d.next_sleep(now, backoff.delay(attempt, ErrorKind.THROTTLED, rng))) is not None:
        now += pause + 0.01  # the call itself takes a little time
        attempt += 1
    assert 20.0 <= now <= 20.0 + 0.01
    assert attempt > 5
