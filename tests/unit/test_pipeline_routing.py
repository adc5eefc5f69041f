"""Pipeline intake: a record that breaks routing is dead-lettered; the rest of the chunk goes on.

Regression: a malformed userId with a lone surrogate made the log redaction raise inside
`submit`, which abandoned the whole polled chunk (never completed, never committed: a stall).
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

from worker.config import DEFAULT_SCHEMA_DIR
from worker.config.mapping import default_mapping
from worker.ingest.feedback import ConsumerFeedback
from worker.ingest.pipeline import DECODE_SLICE, Pipeline, TopicRoute
from worker.ingest.sender import Target
from worker.mapping import EventDecoder
from worker.observe.logging import configure_logging, redact_id
from worker.observe.metrics import Metrics
from worker.records import DatasetType, RawRecord, Rejection, SourceRef, Stage
from worker.schemas import load_schema
from worker.validation import ValidationLimits


class DeadLetters:
    def __init__(self) -> None:
        self.written: list[tuple[SourceRef, Rejection]] = []

    def write(self, _topic: str, raw: RawRecord, rejection: Rejection, _on_done: object = None) -> None:
        self.written.append((raw.source, rejection))


class ExplodingDecoder:
    """Wraps the real decoder; offset 1 hits a bug."""

    def __init__(self, real: EventDecoder) -> None:
        self.real = real

    def decode(self, value: bytes | None, source: SourceRef, now: float, **record: Any) -> Any:
        if source.offset == 1:
            raise RuntimeError("bug")
        return self.real.decode(value, source, now, **record)


def _route(decoder: Any) -> TopicRoute:
    target = Target("clicks", DatasetType.INTERACTIONS, scope="g", tracking_id="t")
    return TopicRoute(target=target, decoder=decoder, dlq_topic="clicks.dlq")


def _decoder() -> EventDecoder:
    schema = load_schema(DEFAULT_SCHEMA_DIR / "interactions.json")
    return EventDecoder(DatasetType.INTERACTIONS, default_mapping(DatasetType.INTERACTIONS), schema, ValidationLimits())


def _run(decoder: Any, values: list[bytes]) -> tuple[DeadLetters, Pipeline]:
    dlq = DeadLetters()

    async def scenario() -> Pipeline:
        pipeline = Pipeline({"clicks": _route(decoder)}, sender=None, dead_letters=dlq,  # type: ignore[arg-type]
                            metrics=Metrics(), feedback=ConsumerFeedback(), linger_s=60)
        records = [RawRecord(SourceRef("clicks", 0, i), None, v, (), None) for i, v in enumerate(values)]
        pipeline.submit(records)
        return pipeline

    return dlq, asyncio.run(scenario())


def _event(user: str) -> bytes:
    return json.dumps({"messageId": f"m-{user}", "userId": user, "anonymousId": "a", "event": "view",
                       "timestamp": "2026-11-22T10:00:00Z", "properties": {"productId": "p1"}}).encode()


def test_redaction_of_lone_surrogates_does_not_raise() -> None:
    assert redact_id("u\ud800x", "salt").startswith("h:")


def test_surrogate_user_id_is_rejected_and_logged_without_stalling_the_chunk() -> None:
    configure_logging(json=True, redact_user_ids=True, stream=io.StringIO())
    bad = b'{"userId": "\\ud800' + b"x" * 300 + b'", "anonymousId": "a", "event": "view", ' \
          b'"timestamp": "2026-11-22T10:00:00Z", "properties": {"productId": "p1"}}'
    dlq, pipeline = _run(_decoder(), [bad, _event("u2")])
    assert [s.offset for s, _ in dlq.written] == [0]
    assert pipeline.pending_batches == 1, "the good record behind it was batched"


def test_a_bug_on_one_record_dead_letters_it_and_the_rest_continue() -> None:
    configure_logging(json=True, stream=io.StringIO())
    dlq, pipeline = _run(ExplodingDecoder(_decoder()), [_event("u1"), _event("u2"), _event("u3")])
    assert [(s.offset, r.stage, r.rule) for s, r in dlq.written] == [(1, Stage.MAPPING, "internal_error")]
    assert pipeline.pending_batches == 2


class RecordingDecoder:
    """Wraps the real decoder and records the order in which offsets are decoded."""

    def __init__(self, real: EventDecoder) -> None:
        self.real = real
        self.order: list[tuple[int, int]] = []

    def decode(self, value: bytes | None, source: SourceRef, now: float, **record: Any) -> Any:
        self.order.append((source.partition, source.offset))
        return self.real.decode(value, source, now, **record)


def _chunk(partition: int, count: int) -> list[RawRecord]:
    return [RawRecord(SourceRef("clicks", partition, i), None, _event(f"u{partition}-{i}"), (), None)
            for i in range(count)]


def test_chunks_are_decoded_in_slices_and_in_kafka_order() -> None:
    """A large chunk yields to the loop between slices; a chunk arriving meanwhile queues behind it."""
    decoder = RecordingDecoder(_decoder())
    first, second = _chunk(0, 3 * DECODE_SLICE + 5), _chunk(1, 7)

    async def scenario() -> list[int]:
        pipeline = Pipeline({"clicks": _route(decoder)}, sender=None, dead_letters=DeadLetters(),  # type: ignore[arg-type]
                            metrics=Metrics(), feedback=ConsumerFeedback(), linger_s=60)
        pipeline.submit(first)
        seen = [len(decoder.order)]  # only the first slice ran synchronously
        pipeline.submit(second)  # arrives while the first chunk is still being decoded
        seen.append(len(decoder.order))
        for _ in range(10):
            await asyncio.sleep(0)
        seen.append(len(decoder.order))
        return seen

    seen = asyncio.run(scenario())
    assert seen == [DECODE_SLICE, DECODE_SLICE, len(first) + len(second)]
    expected = [(0, i) for i in range(len(first))] + [(1, i) for i in range(len(second))]
    assert decoder.order == expected

