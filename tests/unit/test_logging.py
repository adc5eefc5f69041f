"""Logging: JSON validity, redaction of user IDs, masking of credentials, stdlib routing."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from worker.observe.logging import MASK, NOISY_LIBRARIES, configure_logging, get_logger, redact_id


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-global state; put it back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    library_levels = {name: logging.getLogger(name).level for name in NOISY_LIBRARIES}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lib_level in library_levels.items():
        logging.getLogger(name).setLevel(lib_level)
    structlog.reset_defaults()


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every output line parsed as JSON (fails the test on a non-JSON line)."""
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def configured(**kwargs: Any) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(json=True, stream=stream, **kwargs)
    return stream


def test_json_lines_carry_timestamp_level_logger_and_fields() -> None:
    stream = configured()
    get_logger("worker.test").info("batch sent", topic="clicks", partition=3, api="PutEvents")
    get_logger("worker.test").warning("slow", seconds=1.5)

    out = lines(stream)
    assert [o["event"] for o in out] == ["batch sent", "slow"]
    first = out[0]
    assert first["level"] == "info"
    assert first["logger"] == "worker.test"
    assert first["topic"] == "clicks" and first["partition"] == 3 and first["api"] == "PutEvents"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", first["timestamp"])
    assert out[1]["level"] == "warning"


def test_level_filters_lower_records() -> None:
    stream = configured(level="WARNING")
    log = get_logger("worker.test")
    log.info("hidden")
    log.error("shown")
    assert [o["event"] for o in lines(stream)] == ["shown"]


def test_user_and_session_ids_are_replaced_by_their_salted_hash() -> None:
    stream = configured(redaction_salt="pepper")
    get_logger("t").info(
        "event",
        user_id="alice@example.com",
        sessionId="sess-42",
        anonymousId="anon-7",
        record={"userId": "bob", "items": [{"session_id": "s-9"}], "itemId": "item-1"},
    )
    raw = stream.getvalue()
    for secret in ("alice@example.com", "sess-42", "anon-7", "bob", "s-9"):
        assert secret not in raw
    (out,) = lines(stream)
    assert out["user_id"] == redact_id("alice@example.com", "pepper")
    assert out["sessionId"] == redact_id("sess-42", "pepper")
    assert out["anonymousId"] == redact_id("anon-7", "pepper")
    assert out["record"]["userId"] == redact_id("bob", "pepper")
    assert out["record"]["items"][0]["session_id"] == redact_id("s-9", "pepper")
    assert out["record"]["itemId"] == "item-1"  # not personal data: untouched


def test_redaction_can_be_switched_off() -> None:
    stream = configured(redact_user_ids=False)
    get_logger("t").info("event", user_id="alice", session_id=None)
    (out,) = lines(stream)
    assert out["user_id"] == "alice"
    assert out["session_id"] is None


def test_redact_id_is_deterministic_salted_and_short() -> None:
    a = redact_id("user-1", "salt")
    assert a == redact_id("user-1", "salt")
    assert re.fullmatch(r"h:[0-9a-f]{16}", a)
    assert a != redact_id("user-2", "salt")
    assert a != redact_id("user-1", "other-salt")
    assert redact_id("user-1", "") != a


def test_credentials_are_masked_at_any_depth() -> None:
    stream = configured()
    get_logger("t").info(
        "client config",
        password="hunter2",
        sasl_plain_password="p@ss",
        aws={"aws_secret_access_key": "wJalrXUtnFEMI", "region": "eu-west-1", "SessionToken": "tok"},
        headers=[{"Authorization": "AWS4-HMAC-SHA256 Credential=x"}],
        api_key="k-123",
        bootstrap="broker:9092",
    )
    raw = stream.getvalue()
    for secret in ("hunter2", "p@ss", "wJalrXUtnFEMI", "AWS4-HMAC", "k-123", '"tok"'):
        assert secret not in raw
    (out,) = lines(stream)
    assert out["password"] == MASK
    assert out["sasl_plain_password"] == MASK
    assert out["aws"] == {"aws_secret_access_key": MASK, "region": "eu-west-1", "SessionToken": MASK}
    assert out["headers"] == [{"Authorization": MASK}]
    assert out["api_key"] == MASK
    assert out["bootstrap"] == "broker:9092"


def test_aws_access_key_ids_in_free_text_are_masked() -> None:
    stream = configured()
    get_logger("t").warning("signing with AKIAABCDEFGHIJKLMNOP failed", detail="key ASIAABCDEFGHIJKLMNOP")
    raw = stream.getvalue()
    assert "AKIAABCDEFGHIJKLMNOP" not in raw and "ASIAABCDEFGHIJKLMNOP" not in raw
    (out,) = lines(stream)
    assert out["event"] == f"signing with {MASK} failed"


def test_stdlib_records_share_the_format_redaction_and_library_levels() -> None:
    stream = configured(redaction_salt="s")
    kafka_log = logging.getLogger("kafka.conn")
    kafka_log.info("chatty connection detail")  # held back: libraries log at WARNING
    kafka_log.warning("broker %s unreachable", "b1:9092")
    logging.getLogger("worker.something").info("app record", extra={"user_id": "carol", "token": "t0"})

    out = lines(stream)
    assert [o["event"] for o in out] == ["broker b1:9092 unreachable", "app record"]
    assert out[0]["logger"] == "kafka.conn" and out[0]["level"] == "warning"
    assert "timestamp" in out[0]
    assert out[1]["user_id"] == redact_id("carol", "s")
    assert out[1]["token"] == MASK


def test_library_level_is_configurable() -> None:
    stream = configured(library_level="INFO")
    logging.getLogger("botocore.retryhandler").info("retry needed")
    assert [o["event"] for o in lines(stream)] == ["retry needed"]


def test_exceptions_render_as_a_traceback_field() -> None:
    stream = configured()
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger("t").exception("failed")
    (out,) = lines(stream)
    assert out["level"] == "error"
    assert "ValueError: boom" in out["exception"]
    assert "Traceback" in out["exception"]


def test_unserialisable_values_do_not_break_json() -> None:
    stream = configured()

    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    get_logger("t").info("odd", thing=Opaque(), data=b"\x00\x01")
    (out,) = lines(stream)
    assert out["thing"] == "<opaque>"


def test_auto_format_is_json_off_a_terminal_and_console_on_one() -> None:
    pipe = io.StringIO()
    configure_logging(stream=pipe)
    get_logger("t").info("to a pipe", n=1)
    assert json.loads(pipe.getvalue())["event"] == "to a pipe"

    tty = FakeTTY()
    configure_logging(stream=tty)
    get_logger("t").info("to a terminal", n=1)
    text = tty.getvalue()
    assert "to a terminal" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_reconfiguring_replaces_the_handler_instead_of_duplicating_output() -> None:
    first = configured()
    second = configured()
    get_logger("t").info("once")
    assert first.getvalue() == ""
    assert len(lines(second)) == 1


def test_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json=True)
    get_logger("t").info("to stderr", user_id="dave")
    captured = capsys.readouterr()
    assert captured.out == ""
    record = json.loads(captured.err.strip().splitlines()[-1])
    assert record["event"] == "to stderr"
    assert record["user_id"] == redact_id("dave", "")


def test_rejected_user_ids_are_redacted_in_the_rejection_log() -> None:
    """A too-long userId is personal data: the "record rejected" line must not carry it."""
    import asyncio
    import io
    import json as _json

    from worker.ingest.feedback import ConsumerFeedback
    from worker.ingest.pipeline import Pipeline, TopicRoute
    from worker.observe.logging import configure_logging
    from worker.observe.metrics import Metrics
    from worker.records import RawRecord, Rejection, SourceRef, Stage

    stream = io.StringIO()
    configure_logging(json=True, redact_user_ids=True, redaction_salt="s", stream=stream)

    class Sink:
        def write(self, *_args: object) -> None: ...

    async def scenario() -> None:
        pipeline = Pipeline({}, sender=None, dead_letters=Sink(), metrics=Metrics(),  # type: ignore[arg-type]
                            feedback=ConsumerFeedback(), linger_s=0.01)
        raw = RawRecord(SourceRef("clicks", 0, 7), None, b"{}", (), None)
        rejection = Rejection(Stage.VALIDATION, "max_length", "too long", field="userId", value="alice@example.com")
        route = TopicRoute(target=None, decoder=None, dlq_topic="clicks.dlq")  # type: ignore[arg-type]
        pipeline._dead_letter_one(route, raw, rejection)

    asyncio.run(scenario())
    line = _json.loads(stream.getvalue().strip().splitlines()[-1])
    assert "alice@example.com" not in stream.getvalue()
    assert line["user_id"].startswith("h:") and line["offset"] == 7 and line["field"] == "userId"
