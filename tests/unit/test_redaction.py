"""With redaction on, no raw user, anonymous or session ID reaches a log line, at any stage.

A sentinel ID is planted in valid and malformed records (not JSON, truncated JSON, JSON
arrays, wrong-typed IDs, IDs too long, IDs inside other values) and in a Personalize error
message that quotes the request; every rejection goes through the real decoder and the real
logging pipeline, and the output is grepped. The same corpus with redaction off must show
the sentinel, so the grep can fail.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from worker.config.mapping import default_mapping
from worker.ingest.feedback import ConsumerFeedback
from worker.ingest.grouping import Batch, Entry
from worker.ingest.pipeline import Pipeline, TopicRoute
from worker.ingest.sender import Target, batch_identities
from worker.mapping import EventDecoder
from worker.observe.logging import (
    MIN_SCRUB_CHARS,
    NOISY_LIBRARIES,
    RAW_EXCERPT_KEY,
    SCRUB_KEY,
    configure_logging,
    get_logger,
    redact_id,
    scrub_text,
)
from worker.observe.metrics import Metrics
from worker.records import CatalogUpdate, DatasetType, Interaction, RawRecord, Rejection, SourceRef
from worker.schemas import load_schema
from worker.validate_cmd import run_validate
from worker.validation import ValidationLimits

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
SENTINEL = "SENTINEL-user-7f3a"
NOW = 1_780_000_000.0
ISO = "2026-05-28T20:26:40.000Z"


def _track(**over: Any) -> dict[str, Any]:
    event = {"type": "track", "messageId": "m1", "userId": SENTINEL, "anonymousId": f"anon-{SENTINEL}",
             "event": "view", "timestamp": ISO, "context": {"sessionId": f"sess-{SENTINEL}"},
             "properties": {"productId": "p1"}}
    event.update(over)
    return event


def corpus() -> list[bytes]:
    """Records that carry the sentinel and are rejected at the mapping or validation stage."""
    valid = json.dumps(_track()).encode()
    return [
        f"not json, user {SENTINEL}".encode(),
        valid[: len(valid) // 2],  # truncated JSON
        valid[:-1],
        json.dumps([_track()]).encode(),  # a JSON array
        json.dumps([SENTINEL, 1, 2]).encode(),
        json.dumps(SENTINEL).encode(),  # a JSON string
        b"\xff\xfe" + SENTINEL.encode(),  # not UTF-8
        json.dumps(_track(userId={"id": SENTINEL})).encode(),  # wrong types
        json.dumps(_track(userId=[SENTINEL])).encode(),
        json.dumps(_track(anonymousId=None, context={"sessionId": {"s": SENTINEL}})).encode(),
        json.dumps(_track(event=12.5)).encode(),
        json.dumps(_track(event={"name": SENTINEL})).encode(),
        json.dumps(_track(timestamp=f"yesterday {SENTINEL}")).encode(),
        json.dumps(_track(userId=SENTINEL + "x" * 300)).encode(),  # too long
        json.dumps(_track(context={"sessionId": SENTINEL * 20})).encode(),
        json.dumps(_track(properties={"productId": f"bought-by-{SENTINEL}" * 20})).encode(),
        json.dumps(_track(properties={"productId": "p1", "value": f"v-{SENTINEL}"})).encode(),
        json.dumps(_track(timestamp="1970-01-01T00:00:01Z")).encode(),
        json.dumps({k: v for k, v in _track().items() if k != "event"}).encode(),
    ]


@pytest.fixture
def decoder() -> EventDecoder:
    kind = DatasetType.INTERACTIONS
    return EventDecoder(kind, default_mapping(kind), load_schema(SCHEMAS / "interactions.json"), ValidationLimits())


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in NOISY_LIBRARIES}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lib_level in levels.items():
        logging.getLogger(name).setLevel(lib_level)
    structlog.reset_defaults()


def _log_rejections(decoder: EventDecoder, *, redact: bool) -> str:
    stream = io.StringIO()
    configure_logging(json=True, redact_user_ids=redact, redaction_salt="salt", stream=stream)

    class Sink:
        def write(self, *_args: object) -> None: ...

    async def run() -> None:
        pipeline = Pipeline({}, sender=None, dead_letters=Sink(), metrics=Metrics(),  # type: ignore[arg-type]
                            feedback=ConsumerFeedback(), linger_s=0.01)
        route = TopicRoute(target=None, decoder=decoder, dlq_topic="clicks.dlq")  # type: ignore[arg-type]
        for offset, value in enumerate(corpus()):
            raw = RawRecord(SourceRef("clicks", 0, offset), SENTINEL.encode(), value, (), None)
            decoded = decoder.decode(value, raw.source, NOW, key=raw.key, timestamp_ms=None)
            assert isinstance(decoded, Rejection), value
            pipeline._dead_letter_one(route, raw, decoded)

    asyncio.run(run())
    return stream.getvalue()


def test_no_rejection_log_line_carries_a_raw_identity(decoder: EventDecoder) -> None:
    output = _log_rejections(decoder, redact=True)
    lines = output.splitlines()
    assert len(lines) == len(corpus())
    assert SENTINEL not in output
    for line in map(json.loads, lines):
        assert line["event"] == "record rejected" and line["rule"]


def test_the_grep_can_fail_without_redaction(decoder: EventDecoder) -> None:
    output = _log_rejections(decoder, redact=False)
    assert SENTINEL in output
    assert SCRUB_KEY not in output, "the scrub hint is never output"


def test_validate_redacts_when_asked(decoder: EventDecoder) -> None:
    plain, redacted = io.StringIO(), io.StringIO()
    assert run_validate(corpus(), decoder, plain, now=NOW) == 1
    assert run_validate(corpus(), decoder, redacted, now=NOW, redaction_salt="salt") == 1
    assert SENTINEL in plain.getvalue()
    assert SENTINEL not in redacted.getvalue()
    reports = [json.loads(line) for line in redacted.getvalue().splitlines()]
    assert reports[-1]["summary"]["invalid"] == len(corpus())
    assert all("rule" in r and "line" in r for r in reports[:-1])


def test_a_personalize_error_quoting_the_request_is_scrubbed() -> None:
    stream = io.StringIO()
    configure_logging(json=True, redact_user_ids=True, redaction_salt="salt", stream=stream)
    event = Interaction(f"sess-{SENTINEL}", SENTINEL, {"eventId": "e1", "eventType": "view", "sentAt": NOW})
    batch: Batch[Any, Any] = Batch(("clicks", SENTINEL, "s"), [Entry(event, [SourceRef("clicks", 0, 1)])], 0.0)
    target = Target("clicks", DatasetType.INTERACTIONS, "g", tracking_id="t")
    message = f"1 validation error detected: Value '{SENTINEL}' at 'userId' failed to satisfy constraint"
    get_logger("worker.ingest.sender").warning("record rejected by personalize", error=message,
                                               scrub=batch_identities(target, batch))
    output = stream.getvalue()
    assert SENTINEL not in output
    assert redact_id(SENTINEL, "salt") in json.loads(output)["error"]


def test_batch_identities_cover_users_records_but_not_items() -> None:
    users = Target("users", DatasetType.USERS, "g", dataset_arn="arn")
    items = Target("items", DatasetType.ITEMS, "g", dataset_arn="arn")
    user_batch: Batch[Any, Any] = Batch("k", [Entry(CatalogUpdate(SENTINEL, {}), [])], 0.0)
    item_batch: Batch[Any, Any] = Batch("k", [Entry(CatalogUpdate("item-9", {}), [])], 0.0)
    assert batch_identities(users, user_batch) == (SENTINEL,)
    assert batch_identities(items, item_batch) == ()


def test_scrub_replaces_longest_identities_first_and_skips_tiny_ones() -> None:
    text = f"user {SENTINEL}-x and {SENTINEL} and 7"
    out = scrub_text(text, [SENTINEL, f"{SENTINEL}-x", "7"], "salt")
    assert SENTINEL not in out and redact_id(f"{SENTINEL}-x", "salt") in out
    assert out.endswith(" 7") and len("7") < MIN_SCRUB_CHARS


def test_raw_excerpts_are_omitted_with_redaction_and_kept_without() -> None:
    for redact, expect_raw in ((True, False), (False, True)):
        stream = io.StringIO()
        configure_logging(json=True, redact_user_ids=redact, stream=stream)
        get_logger("t").info("x", **{RAW_EXCERPT_KEY: f"{{'userId': '{SENTINEL}'"})
        line = json.loads(stream.getvalue())
        assert (SENTINEL in line[RAW_EXCERPT_KEY]) is expect_raw
