"""The pipeline with registry formats and fan-out, without processes: a fake registry, sender and DLQ.

Covers the failure semantics: a registry outage holds records (topic faulted and paused,
nothing dead-lettered, nothing completed) and recovers by itself; a schema the registry
does not have dead-letters its records with stage `deserialization`; held records keep Kafka
order. And fan-out: a GA4 row is complete only when every one of its interactions is.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
from typing import Any

import fastavro
import pytest

from worker.config.mapping import parse_mapping
from worker.decoding.avro import AvroReader, SchemaParseError
from worker.decoding.fanout import FanoutTracker, PartRef
from worker.decoding.gate import SchemaGate
from worker.decoding.outcomes import SchemaRef
from worker.decoding.payload import RegistryPayload, SchemaCache
from worker.decoding.readers import Reader
from worker.decoding.sources import RegistryUnavailableError, SchemaNotFoundError
from worker.ingest.feedback import ConsumerFeedback
from worker.ingest.grouping import Batch
from worker.ingest.pipeline import Pipeline, TopicRoute
from worker.ingest.sender import Target
from worker.mapping import EventDecoder
from worker.observe.logging import configure_logging
from worker.observe.metrics import Metrics
from worker.records import DatasetType, RawRecord, Rejection, SourceRef, Stage
from worker.schemas import parse_schema
from worker.validation import ValidationLimits

INT = DatasetType.INTERACTIONS
TARGET = Target("clicks", INT, scope="g", tracking_id="t")
SCHEMA = parse_schema(json.dumps({"type": "record", "name": "Interactions", "fields": [
    {"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
    {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"}]}), INT)
AVRO = {"type": "record", "name": "Track", "fields": [
    {"name": "messageId", "type": "string"}, {"name": "userId", "type": "string"},
    {"name": "anonymousId", "type": "string"}, {"name": "event", "type": "string"},
    {"name": "timestamp", "type": "string"},
    {"name": "properties",
     "type": {"type": "record", "name": "P", "fields": [{"name": "productId", "type": "string"}]}},
]}
NOW_ISO = "2026-11-22T10:00:00Z"


def framed(schema_id: int, n: int) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(AVRO), {
        "messageId": f"m-{n}", "userId": f"u-{n}", "anonymousId": f"a-{n}", "event": "view", "timestamp": NOW_ISO,
        "properties": {"productId": f"p-{n}"}})
    return b"\x00" + struct.pack(">I", schema_id) + out.getvalue()


class FakeSource:
    """Answers are scripted per call: a reader, or an exception instance to raise."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[SchemaRef] = []

    def describe(self) -> str:
        return "fake registry"

    async def fetch(self, ref: SchemaRef) -> Reader:
        self.calls.append(ref)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[no-any-return]


class InstantSender:
    """Delivers every batch at once (optionally dead-lettering the sources `poison` picks)."""

    def __init__(self, poison: Any = None) -> None:
        self.batches: list[list[SourceRef]] = []
        self.poison = poison

    async def deliver(self, target: Target, batch: Batch[Any, Any], listener: Any) -> None:
        self.batches.append(batch.sources())
        bad = [s for s in batch.sources() if self.poison and self.poison(s)]
        if bad:
            listener.dead_letter(target, bad, Rejection(Stage.VALIDATION, "invalid", "poison"))
            batch = Batch(batch.key, [e for e in batch.entries if not any(s in bad for s in e.sources)],
                          batch.opened_at)
        if batch.entries:
            listener.delivered(target, batch)


class DeadLetters:
    def __init__(self) -> None:
        self.written: list[tuple[SourceRef, Rejection]] = []

    def write(self, _topic: str, raw: RawRecord, rejection: Rejection, on_done: Any) -> None:
        self.written.append((raw.source, rejection))
        on_done(raw.source, rejection)


async def no_sleep(_s: float) -> None:
    await asyncio.sleep(0)


class Rig:
    def __init__(self, source: FakeSource, *, preset: str = "segment", sender: Any = None,
                 payload: bool = True) -> None:
        self.cache = SchemaCache()
        self.gate = SchemaGate(TARGET, source, self.cache, sleep=no_sleep)
        registry = RegistryPayload("confluent", self.cache, self.gate) if payload else None
        limits = ValidationLimits(max_past_seconds=10**10)
        self.decoder = EventDecoder(INT, parse_mapping(INT, {"preset": preset}), SCHEMA, limits, payload=registry)
        self.dlq = DeadLetters()
        self.feedback = ConsumerFeedback()
        self.sender = sender or InstantSender()
        self.order: list[int] = []
        decode = self.decoder.decode

        def recording(value: Any, source: SourceRef, now: float, **kw: Any) -> Any:
            self.order.append(source.offset)
            return decode(value, source, now, **kw)

        self.decoder.decode = recording  # type: ignore[method-assign]
        self.pipeline = Pipeline({"clicks": TopicRoute(TARGET, self.decoder, "clicks.dlq")}, self.sender,
                                 self.dlq, Metrics(), self.feedback, linger_s=0.0)  # type: ignore[arg-type]

    def completed(self) -> list[int]:
        return sorted(s.offset for chunk in self.feedback.take_completions() for s in chunk)


def records(values: list[bytes]) -> list[RawRecord]:
    return [RawRecord(SourceRef("clicks", 0, n), None, v, (), None) for n, v in enumerate(values)]


async def settle(rig: Rig, rounds: int = 50) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)
    await rig.pipeline.drain(1.0)


@pytest.fixture(autouse=True)
def _quiet_logs() -> None:
    configure_logging(json=True, stream=io.StringIO())


def test_unknown_schema_is_fetched_once_and_held_records_keep_kafka_order() -> None:
    source = FakeSource(AvroReader(json.dumps(AVRO)))

    async def scenario() -> Rig:
        rig = Rig(source)
        rig.pipeline.start()
        rig.pipeline.submit(records([framed(1, n) for n in range(5)]))
        assert rig.gate.held == 5, "the first record waits for schema 1; the rest queue behind it"
        await settle(rig)
        await rig.pipeline.close()
        return rig

    rig = asyncio.run(scenario())
    assert source.calls == [SchemaRef("id", "1")]
    assert rig.order == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]  # held in order, decoded again in order
    assert rig.completed() == [0, 1, 2, 3, 4] and rig.dlq.written == []


def test_registry_outage_pauses_the_topic_and_dead_letters_nothing() -> None:
    down = RegistryUnavailableError("schema registry answered HTTP 503")
    source = FakeSource(down, down, down, AvroReader(json.dumps(AVRO)))
    faults: list[dict[str, str]] = []

    async def scenario() -> Rig:
        rig = Rig(source)
        rig.pipeline.start()
        original = rig.pipeline.config_fault

        def spy(target: Target, message: str) -> None:
            original(target, message)
            faults.append(dict(rig.pipeline.faults))
            assert rig.feedback.stopped_topics == frozenset({"clicks"})
            assert rig.feedback.take_completions() == [] and rig.dlq.written == []

        rig.pipeline.config_fault = spy  # type: ignore[method-assign]
        rig.pipeline.submit(records([framed(1, n) for n in range(3)]))
        await settle(rig)
        await rig.pipeline.close()
        return rig

    rig = asyncio.run(scenario())
    assert len(source.calls) == 4 and len(faults) == 1, "one fault report per outage, however many retries"
    assert "HTTP 503" in faults[0]["clicks"]
    assert rig.pipeline.faults == {} and rig.feedback.stopped_topics == frozenset(), "recovered by itself"
    assert rig.dlq.written == [] and rig.completed() == [0, 1, 2]


def test_a_bug_in_the_source_is_treated_as_an_outage_not_a_dead_letter() -> None:
    source = FakeSource(RuntimeError("boom"), AvroReader(json.dumps(AVRO)))

    async def scenario() -> Rig:
        rig = Rig(source)
        rig.pipeline.start()
        rig.pipeline.submit(records([framed(1, 0)]))
        await settle(rig)
        await rig.pipeline.close()
        return rig

    rig = asyncio.run(scenario())
    assert rig.dlq.written == [] and rig.completed() == [0]


@pytest.mark.parametrize(("answer", "rule"), [
    (SchemaNotFoundError("the registry has no schema ID 9 (HTTP 404, error_code 40403)"), "unknown_schema"),
    (SchemaParseError("not a usable Avro schema"), "unusable_schema"),
])
def test_a_schema_the_registry_does_not_have_dead_letters_with_the_schema_id(answer: Exception, rule: str) -> None:
    source = FakeSource(answer)

    async def scenario() -> Rig:
        rig = Rig(source)
        rig.pipeline.start()
        rig.pipeline.submit(records([framed(9, 0), framed(9, 1), b"not framed at all"]))
        await settle(rig)
        await rig.pipeline.close()
        return rig

    rig = asyncio.run(scenario())
    assert len(source.calls) == 1, "the answer is cached for every record naming the schema"
    got = [(s.offset, r.stage, r.rule, r.field, r.value) for s, r in rig.dlq.written]
    assert got == [(0, Stage.DESERIALIZATION, rule, "schemaId", "9"), (1, Stage.DESERIALIZATION, rule, "schemaId", "9"),
                   (2, Stage.DESERIALIZATION, "bad_magic_byte", "magicByte", "0x6e")]
    assert rig.completed() == [0, 1, 2] and rig.pipeline.faults == {}


def test_a_value_decoding_to_a_non_record_is_rejected() -> None:
    reader = AvroReader('"string"')
    out = io.BytesIO()
    fastavro.schemaless_writer(out, "string", "just a string")

    async def scenario() -> Rig:
        rig = Rig(FakeSource(reader))
        rig.pipeline.start()
        rig.pipeline.submit(records([b"\x00\x00\x00\x00\x05" + out.getvalue()]))
        await settle(rig)
        await rig.pipeline.close()
        return rig

    rig = asyncio.run(scenario())
    assert [(r.stage, r.rule) for _s, r in rig.dlq.written] == [(Stage.DESERIALIZATION, "not_object")]


# -- fan-out ----------------------------------------------------------------------------------

def ga4_row(items: int, user: str = "pseudo-1") -> bytes:
    return json.dumps({
        "event_name": "view_item_list", "event_timestamp": "1790000000000000", "user_pseudo_id": user,
        "event_params": [{"key": "ga_session_id", "value": {"int_value": "1790000000"}}],
        "items": [{"item_id": f"i-{n}", "price": 1.0} for n in range(items)],
    }).encode()


def test_a_ga4_row_completes_when_all_its_interactions_are_delivered() -> None:
    class HeldSender(InstantSender):
        """Delivers only when released, to see the record stay open in between."""

        def __init__(self) -> None:
            super().__init__()
            self.release = asyncio.Event()

        async def deliver(self, target: Target, batch: Batch[Any, Any], listener: Any) -> None:
            if len(self.batches) >= 1:
                await self.release.wait()
            await super().deliver(target, batch, listener)

    async def scenario() -> tuple[Rig, list[int]]:
        sender = HeldSender()
        rig = Rig(FakeSource(None), preset="ga4", sender=sender, payload=False)
        rig.pipeline.start()
        rig.pipeline.submit(records([ga4_row(12)]))  # 12 interactions: a full call of 10, then 2
        for _ in range(20):
            await asyncio.sleep(0)
        rig.pipeline._flush_all()
        for _ in range(20):
            await asyncio.sleep(0)
        before = rig.completed()
        sender.release.set()
        await settle(rig)
        await rig.pipeline.close()
        return rig, before

    rig, before = asyncio.run(scenario())
    assert [len(b) for b in rig.sender.batches] == [10, 2]
    assert all(isinstance(s, PartRef) for b in rig.sender.batches for s in b)
    assert before == [], "10 of 12 delivered: the record is not done"
    assert rig.completed() == [0] and rig.dlq.written == []


def test_a_failed_part_dead_letters_the_whole_row_once() -> None:
    sender = InstantSender(poison=lambda s: isinstance(s, PartRef) and s.offset == 0 and s.part in (1, 2))

    async def scenario() -> Rig:
        rig = Rig(FakeSource(None), preset="ga4", sender=sender, payload=False)
        rig.pipeline.start()
        rig.pipeline.submit(records([ga4_row(3), ga4_row(2, user="pseudo-2")]))
        await settle(rig)
        await rig.pipeline.close()
        return rig

    rig = asyncio.run(scenario())
    assert [(s, r.rule) for s, r in rig.dlq.written] == [(SourceRef("clicks", 0, 0), "invalid")]
    assert rig.completed() == [0, 1], "record 0 once (its dead letter), record 1 when both parts were delivered"


def test_fanout_tracker_rules() -> None:
    tracker = FanoutTracker()
    record = SourceRef("t", 1, 7)
    parts = tracker.open(record, 3)
    assert parts[2] == PartRef("t", 1, 7, 2) and parts[2].record == record and parts[2] != record
    assert tracker.delivered([parts[0], SourceRef("t", 1, 8)]) == [SourceRef("t", 1, 8)]
    assert tracker.failed([parts[1]]) == [record]
    assert tracker.failed([parts[1]]) == [] and tracker.delivered([parts[2]]) == []
    assert len(tracker) == 0
    with pytest.raises(ValueError, match="at least one part"):
        tracker.open(record, 0)
