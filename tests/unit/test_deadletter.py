"""Dead-letter headers and replay header rewriting (pure parts)."""

from __future__ import annotations

from worker.dlq_replay import ORIGIN_HEADER, parse_origin, replay_headers
from worker.ingest.deadletter import error_headers, header_value
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


def test_replay_strips_error_headers_and_keeps_first_origin() -> None:
    headers = error_headers(_raw(), Rejection(Stage.DELIVERY, "delivery_timeout", "t"))
    topic, replayed = replay_headers(headers)
    assert topic == "clicks"
    assert not [k for k, _ in replayed if k.startswith("__connect.errors.")]
    assert header_value(replayed, ORIGIN_HEADER) == "clicks:3:1234"
    assert ("trace", b"abc") in replayed
    # Dead-lettered again later at another position: the first origin survives.
    again = error_headers(
        RawRecord(SourceRef("clicks", 0, 99), None, b"v", tuple(replayed), None),
        Rejection(Stage.DELIVERY, "delivery_timeout", "t"),
    )
    _, replayed_again = replay_headers(again)
    assert header_value(replayed_again, ORIGIN_HEADER) == "clicks:3:1234"


def test_parse_origin() -> None:
    assert parse_origin("clicks.v2:3:1234") == ("clicks.v2", 3, 1234)
    assert parse_origin("garbage") is None
    assert parse_origin("a:b:c") is None
