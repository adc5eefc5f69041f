"""Dead-letter headers and replay header rewriting (pure parts)."""

from __future__ import annotations

import pytest

from worker.dlq_replay import allowed_sources, replay_headers
from worker.ingest.deadletter import error_headers, header_value
from worker.ingest.origin import ORIGIN_HEADER, ORIGIN_MAC_HEADER, OriginCheck, check_origin, origin_mac, parse_origin
from worker.records import RawRecord, Rejection, SourceRef, Stage


def _raw(headers: tuple[tuple[str, bytes], ...] = (("trace", b"abc"),)) -> RawRecord:
    return RawRecord(SourceRef("clicks", 3, 1234), b"k", b"{bad", headers, 1_700_000_000_000)


def test_error_headers_follow_kafka_connect_names() -> None:
    rejection = Rejection(
        Stage.VALIDATION,
        "max_length",
        "too long",
        field="userId",
        value="x" * 10,
        exception_class="worker.validation.ValidationError",
    )
    headers = error_headers(_raw(), rejection)
    assert headers[0] == ("trace", b"abc"), "original headers first, unchanged"
    assert header_value(headers, "__connect.errors.topic") == "clicks"
    assert header_value(headers, "__connect.errors.partition") == "3"
    assert header_value(headers, "__connect.errors.offset") == "1234"
    assert header_value(headers, "__connect.errors.stage") == "validation"
    assert header_value(headers, "__connect.errors.exception.class.name") == "worker.validation.ValidationError"
    message = header_value(headers, "__connect.errors.exception.message") or ""
    assert "max_length" in message and "userId" in message


def test_stale_error_headers_are_replaced_not_duplicated() -> None:
    rejection = Rejection(Stage.DELIVERY, "delivery_timeout", "timeout")
    first = error_headers(_raw(), rejection)
    again = error_headers(RawRecord(SourceRef("clicks", 0, 9), b"k", b"v", tuple(first), None), rejection)
    names = [k for k, _ in again]
    assert names.count("__connect.errors.stage") == 1
    assert header_value(again, "__connect.errors.offset") == "9"


SECRET = b"shared-replay-key"


def test_replay_strips_error_headers_and_keeps_first_origin() -> None:
    raw = _raw()
    headers = error_headers(raw, Rejection(Stage.DELIVERY, "delivery_timeout", "t"))
    topic, replayed = replay_headers(headers, secret=SECRET, key=raw.key, value=raw.value)
    assert topic == "clicks"
    assert not [k for k, _ in replayed if k.startswith("__connect.errors.")]
    assert header_value(replayed, ORIGIN_HEADER) == "clicks:3:1234"
    assert ("trace", b"abc") in replayed
    assert check_origin(replayed, SECRET, raw.key, raw.value) == (OriginCheck.VERIFIED, SourceRef("clicks", 3, 1234))
    # Dead-lettered again later at another position: the first origin survives, signed.
    again = error_headers(
        RawRecord(SourceRef("clicks", 0, 99), raw.key, raw.value, tuple(replayed), None),
        Rejection(Stage.DELIVERY, "delivery_timeout", "t"),
    )
    _, replayed_again = replay_headers(again, secret=SECRET, key=raw.key, value=raw.value)
    assert header_value(replayed_again, ORIGIN_HEADER) == "clicks:3:1234"
    # Without the key the first origin cannot be trusted: the dead letter's own position is used.
    _, unsigned = replay_headers(again)
    assert header_value(unsigned, ORIGIN_HEADER) == "clicks:0:99"
    assert header_value(unsigned, ORIGIN_MAC_HEADER) is None


def test_an_origin_mac_is_bound_to_the_key_the_value_and_the_position() -> None:
    origin = "clicks:3:1234"
    mac = origin_mac(SECRET, origin, b"k", b"v").encode()
    headers = [(ORIGIN_HEADER, origin.encode()), (ORIGIN_MAC_HEADER, mac)]
    assert check_origin(headers, SECRET, b"k", b"v")[0] is OriginCheck.VERIFIED
    assert check_origin(headers, SECRET, b"k", b"other value")[0] is OriginCheck.INVALID
    assert check_origin(headers, SECRET, b"k2", b"v")[0] is OriginCheck.INVALID
    assert check_origin(headers, SECRET, None, b"v")[0] is OriginCheck.INVALID
    assert check_origin(headers, b"another key", b"k", b"v")[0] is OriginCheck.INVALID
    moved = [(ORIGIN_HEADER, b"clicks:3:1235"), (ORIGIN_MAC_HEADER, mac)]
    assert check_origin(moved, SECRET, b"k", b"v")[0] is OriginCheck.INVALID
    assert check_origin(headers, None, b"k", b"v")[0] is OriginCheck.UNAUTHENTICATED  # no key to check with
    assert check_origin(headers[:1], SECRET, b"k", b"v")[0] is OriginCheck.UNAUTHENTICATED  # no MAC
    assert check_origin([("other", b"x")], SECRET, b"k", b"v") == (OriginCheck.NONE, None)
    garbage = [(ORIGIN_HEADER, b"garbage"), (ORIGIN_MAC_HEADER, origin_mac(SECRET, "garbage", b"k", b"v").encode())]
    assert check_origin(garbage, SECRET, b"k", b"v")[0] is OriginCheck.INVALID


def test_allowed_sources() -> None:
    assert allowed_sources("clicks.dlq", {}, None) == {"clicks"}
    assert allowed_sources("clicks.dlq", {}, "clicks-v2") == {"clicks-v2"}
    assert allowed_sources("errors", {"a": "errors", "b": "errors", "c": "c.dlq"}, None) == {"a", "b"}
    with pytest.raises(ValueError, match="--source-topic"):
        allowed_sources("errors", {}, None)
    with pytest.raises(ValueError, match="not the dead-letter topic"):
        allowed_sources("clicks.dlq", {"items": "items.dlq"}, None)


def test_parse_origin() -> None:
    assert parse_origin("clicks.v2:3:1234") == ("clicks.v2", 3, 1234)
    assert parse_origin("garbage") is None
    assert parse_origin("a:b:c") is None
    assert parse_origin(":1:2") is None and parse_origin("t:-1:2") is None
