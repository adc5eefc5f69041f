"""The pipeline's privacy gate: deletion requests recorded (done only once acknowledged) or
dead-lettered, and a forgotten user's records suppressed without holding the partition.

The state topic's writer is replaced by `Writer` below: this is the pure intake logic on the
event loop; the real topic, producer and follower are exercised by
tests/integration/test_privacy_state_topic.py and the end-to-end privacy test.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from worker.config import DEFAULT_SCHEMA_DIR
from worker.config.mapping import default_mapping
from worker.config.privacy import PrivacySettings
from worker.ingest.feedback import ConsumerFeedback
from worker.ingest.pipeline import Pipeline, TopicRoute
from worker.ingest.sender import Target
from worker.mapping import EventDecoder
from worker.observe.logging import configure_logging
from worker.observe.metrics import Metrics
from worker.privacy.intake import PrivacyGate, user_of
from worker.privacy.ledger import Ledger, Record, encode, user_digest, with_request
from worker.privacy.service import PrivacyMetrics
from worker.records import CatalogUpdate, DatasetType, Interaction, RawRecord, Rejection, SourceRef, Stage
from worker.schemas import load_schema
from worker.validation import ValidationLimits

GROUP = "arn:aws:personalize:us-east-1:123456789012:dataset-group/shop"
NOW = 1_800_000_000.0


class Writer:
    """The state topic's writer: records what is sent; acknowledges (or fails) when told."""

    def __init__(self) -> None:
        self.sent: list[tuple[Record, Callable[[BaseException | None], None]]] = []

    def send(self, record: Record, on_done: Callable[[BaseException | None], None]) -> None:
        self.sent.append((record, on_done))


class State:
    """`PrivacyState`'s surface the gate uses, over an in-memory ledger."""

    def __init__(self, **settings: Any) -> None:
        self.settings = PrivacySettings(deletion_topic="forget", dataset_groups=(GROUP,), **settings)
        self.metrics = PrivacyMetrics()
        self.ledger = Ledger()
        self.writer = Writer()

    def digest(self, user_id: str) -> str:
        return user_digest(user_id)

    def suppressed(self, user_id: str | None) -> bool:
        return user_id is not None and self.ledger.suppressed(self.digest(user_id), NOW, self.settings.suppress_for_s)

    def read_back(self, record: Record) -> None:
        self.ledger.apply(*encode(record))


class DeadLetters:
    def __init__(self) -> None:
        self.written: list[tuple[str, SourceRef, Rejection]] = []

    def write(self, topic: str, raw: RawRecord, rejection: Rejection, on_done: Any = None) -> None:
        self.written.append((topic, raw.source, rejection))


def _decoder(kind: DatasetType) -> EventDecoder:
    schema = load_schema(DEFAULT_SCHEMA_DIR / f"{kind.value}.json")
    return EventDecoder(kind, default_mapping(kind), schema, ValidationLimits())


def _routes() -> dict[str, TopicRoute]:
    clicks = Target("clicks", DatasetType.INTERACTIONS, scope="shop", tracking_id="t")
    users = Target("users", DatasetType.USERS, scope="shop", dataset_arn="arn:aws:personalize:us-east-1:"
                   "123456789012:dataset/shop/USERS")
    return {"clicks": TopicRoute(target=clicks, decoder=_decoder(DatasetType.INTERACTIONS), dlq_topic="clicks.dlq"),
            "users": TopicRoute(target=users, decoder=_decoder(DatasetType.USERS), dlq_topic="users.dlq")}


def _event(user: str, n: int = 0) -> bytes:
    return json.dumps({"messageId": f"m-{user}-{n}", "userId": user, "anonymousId": "a", "event": "view",
                       "timestamp": "2026-11-22T10:00:00Z", "properties": {"productId": "p1"}}).encode()


def _user_record(user: str) -> bytes:
    return json.dumps({"type": "identify", "userId": user, "traits": {"membership": "gold"}}).encode()


class Harness:
    def __init__(self, **settings: Any) -> None:
        self.state = State(**settings)
        self.gate = PrivacyGate(self.state, clock=lambda: NOW)  # type: ignore[arg-type]
        self.dlq = DeadLetters()
        self.feedback = ConsumerFeedback()
        self.offsets: dict[str, int] = {}
        self.pipeline: Pipeline | None = None

    def raw(self, topic: str, value: bytes | None) -> RawRecord:
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        return RawRecord(SourceRef(topic, 0, offset), None, value, (), 1_700_000_000_000)

    async def start(self) -> Pipeline:
        self.pipeline = Pipeline(_routes(), sender=None, dead_letters=self.dlq,  # type: ignore[arg-type]
                                 metrics=Metrics(), feedback=self.feedback, linger_s=60, privacy=self.gate)
        return self.pipeline

    def submit(self, *records: RawRecord) -> None:
        assert self.pipeline is not None
        self.pipeline.submit(list(records))

    def completed(self) -> list[SourceRef]:
        return [s for batch in self.feedback.take_completions() for s in batch]

    def ack(self, index: int = -1, error: BaseException | None = None) -> None:
        self.state.writer.sent[index][1](error)


def test_a_request_is_done_only_once_the_state_topic_acknowledged_it() -> None:
    h = Harness()

    async def scenario() -> None:
        await h.start()
        request = h.raw("forget", json.dumps({"userId": "alice", "requestedAt": "2026-12-01T00:00:00Z"}).encode())
        h.submit(request)
        (key, value), _ = h.state.writer.sent[0]
        assert key == "user/" + user_digest("alice")
        assert value is not None and value["user_id"] == "alice" and value["requested_at"] == 1_796_083_200.0
        assert h.completed() == [], "not committable before the write is acknowledged"
        h.ack()
        await asyncio.sleep(0)  # the acknowledgement is handed to the loop
        assert h.completed() == [request.source]
        assert h.state.metrics.requests.labels(outcome="recorded")._value.get() == 1

    asyncio.run(scenario())


def test_a_failed_write_is_retried_and_the_request_stays_uncommitted_meanwhile(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("worker.privacy.intake.RETRY_INITIAL_S", 0.01)
    h = Harness()

    async def scenario() -> None:
        await h.start()
        request = h.raw("forget", json.dumps({"userId": "alice"}).encode())
        h.submit(request)
        h.ack(0, OSError("not leader"))
        await asyncio.sleep(0.05)
        assert len(h.state.writer.sent) == 2, "written again after the backoff"
        assert h.completed() == []
        h.ack(1)
        await asyncio.sleep(0)
        assert h.completed() == [request.source]

    asyncio.run(scenario())


@pytest.mark.parametrize(("value", "rule"), [
    (b"not json", "not_json"),
    (b"[1, 2]", "not_object"),
    (json.dumps({"requestedAt": "2026-12-01T00:00:00Z"}).encode(), "required"),
    (json.dumps({"userId": "x" * 257}).encode(), "max_length"),
    (None, "not_object"),
])
def test_a_bad_request_goes_to_the_deletion_topics_dlq_with_the_rule(value: bytes | None, rule: str) -> None:
    h = Harness()

    async def scenario() -> None:
        await h.start()
        h.submit(h.raw("forget", value))

    asyncio.run(scenario())
    assert [(t, r.rule) for t, _s, r in h.dlq.written] == [("forget.dlq", rule)]
    assert h.state.writer.sent == []
    assert h.state.metrics.requests.labels(outcome="rejected")._value.get() == 1


def test_a_repeated_request_is_done_at_once_and_written_once() -> None:
    h = Harness()

    async def scenario() -> None:
        await h.start()
        first, second = (h.raw("forget", json.dumps({"userId": "alice"}).encode()) for _ in range(2))
        h.submit(first, second)
        assert len(h.state.writer.sent) == 1
        assert h.completed() == [second.source]
        h.state.read_back(h.state.writer.sent[0][0])  # the follower read it back: repeats stay repeats
        third = h.raw("forget", json.dumps({"userId": "alice"}).encode())
        h.submit(third)
        assert len(h.state.writer.sent) == 1 and h.completed() == [third.source]

    asyncio.run(scenario())
    assert h.state.metrics.requests.labels(outcome="repeated")._value.get() == 2


def test_after_a_request_the_users_events_and_user_records_are_dead_lettered_as_suppressed() -> None:
    h = Harness()

    async def scenario() -> Pipeline:
        pipeline = await h.start()
        h.submit(h.raw("forget", json.dumps({"userId": "alice"}).encode()))
        # Recorded by this process, not yet read back from the state topic: already suppressed.
        h.submit(h.raw("clicks", _event("alice", 1)), h.raw("clicks", _event("bob", 1)),
                 h.raw("users", _user_record("alice")), h.raw("users", _user_record("bob")))
        return pipeline

    pipeline = asyncio.run(scenario())
    suppressed = [(t, s.offset) for t, s, r in h.dlq.written if r.stage is Stage.SUPPRESSED]
    assert suppressed == [("clicks.dlq", 0), ("users.dlq", 0)]
    assert all(r.rule == "user_deletion_requested" for _t, _s, r in h.dlq.written)
    assert pipeline.pending_batches == 2, "bob's event and bob's user record are queued for delivery"
    counter = h.state.metrics.suppressed
    assert counter.labels(topic="clicks", action="dead_lettered")._value.get() == 1
    assert counter.labels(topic="users", action="dead_lettered")._value.get() == 1


def test_suppression_follows_the_ledger_written_by_other_replicas() -> None:
    h = Harness()
    record = with_request(h.state.ledger, "carol", user_digest("carol"), NOW - 10, NOW - 5)
    assert record is not None
    h.state.read_back(record)

    async def scenario() -> None:
        await h.start()
        h.submit(h.raw("clicks", _event("carol")), h.raw("clicks", _event("dave")))

    asyncio.run(scenario())
    assert [(s.offset, r.stage) for _t, s, r in h.dlq.written] == [(0, Stage.SUPPRESSED)]


def test_expired_entries_no_longer_suppress() -> None:
    h = Harness(suppress_for_s=60.0)
    forgotten = {"format": 1, "user_id": None, "requested_at": NOW - 1000, "recorded_at": NOW - 999,
                 "forgotten_at": NOW - 61}
    h.state.ledger.apply(("user/" + user_digest("erin")).encode(), json.dumps(forgotten).encode())

    async def scenario() -> Pipeline:
        pipeline = await h.start()
        h.submit(h.raw("clicks", _event("erin")))
        return pipeline

    assert asyncio.run(scenario()).pending_batches == 1
    assert h.dlq.written == []


def test_drop_mode_completes_and_counts_without_a_dead_letter() -> None:
    h = Harness(suppressed="drop")

    async def scenario() -> None:
        await h.start()
        h.submit(h.raw("forget", json.dumps({"userId": "alice"}).encode()))
        h.ack()
        await asyncio.sleep(0)
        h.completed()
        h.submit(h.raw("clicks", _event("alice", 1)), h.raw("clicks", _event("alice", 2)))
        assert h.completed() == [SourceRef("clicks", 0, 0), SourceRef("clicks", 0, 1)], "done: never holds commits"

    asyncio.run(scenario())
    assert h.dlq.written == []
    assert h.state.metrics.suppressed.labels(topic="clicks", action="dropped")._value.get() == 2


def test_no_log_line_carries_the_user_id() -> None:
    stream = io.StringIO()
    configure_logging(json=True, redact_user_ids=True, stream=stream)
    h = Harness()

    async def scenario() -> None:
        await h.start()
        h.submit(h.raw("forget", json.dumps({"userId": "secret-user-42"}).encode()))
        h.ack()
        await asyncio.sleep(0)
        h.submit(h.raw("clicks", _event("secret-user-42")), h.raw("forget", b'{"userId": "secret-user-43'))

    asyncio.run(scenario())
    text = stream.getvalue()
    assert "deletion request recorded" in text and "deletion request rejected" in text
    assert "secret-user-4" not in text


def test_user_of_each_record_kind() -> None:
    assert user_of(Interaction("s", "u", {"eventId": "e"})) == "u"
    assert user_of(Interaction("s", None, {"eventId": "e"})) is None
    assert user_of(CatalogUpdate("u", {"userId": "u", "properties": "{}"})) == "u"
    assert user_of(CatalogUpdate("i", {"itemId": "i", "properties": "{}"})) is None


def test_pausing_needs_every_topics_dataset_group() -> None:
    from worker.config import ConfigError, WorkerSettings

    base = {"deletion_topic": "forget", "dataset_groups": [GROUP], "pause_ingestion_during_jobs": True}
    named = {"name": "clicks", "dataset_type": "interactions", "tracking_id": "t", "dataset_group": "shop"}
    WorkerSettings.model_validate({"topics": [named], "privacy": base})
    unnamed = {"name": "clicks", "dataset_type": "interactions", "tracking_id": "t"}
    with pytest.raises((ValueError, ConfigError), match=r"set topics\[\]\.dataset_group"):
        WorkerSettings.model_validate({"topics": [unnamed], "privacy": base})
    WorkerSettings.model_validate({"topics": [unnamed], "privacy": {**base, "pause_ingestion_during_jobs": False}})


def test_a_completed_job_holds_trainings_until_the_archive_is_purged() -> None:
    from worker.privacy.ledger import COMPLETED, JobEntry
    from worker.privacy.service import PrivacyState

    state = PrivacyState(PrivacySettings(deletion_topic="forget", dataset_groups=(GROUP,)),
                         {"bootstrap_servers": "127.0.0.1:9"})  # nothing is connected: the ledger is filled here
    job = JobEntry("j1", GROUP, (user_digest("a"),), COMPLETED, 10.0, 20.0, "del/j1.csv", completed_at=20.0)
    state.follower.ledger.apply(*encode((job.key, job.to_dict())))
    held = state.deletion_view(GROUP, archive=True)
    assert held is not None and held.running == "j1 (archive purge)" and held.completed_at == 20.0
    free = state.deletion_view(GROUP, archive=False)
    assert free is not None and free.running is None
    purged = JobEntry("j1", GROUP, job.digests, COMPLETED, 10.0, 30.0, "del/j1.csv", archive_purged=True,
                      completed_at=20.0)
    state.follower.ledger.apply(*encode((purged.key, purged.to_dict())))
    after = state.deletion_view(GROUP, archive=True)
    assert after is not None and after.running is None and after.completed_at == 20.0


def test_a_local_entry_gives_way_to_the_ledger_once_read_back() -> None:
    """Recorded here, then read back, then expired in the ledger: no longer suppressed (the local
    entry must not outlive `suppress_for_s`)."""
    h = Harness(suppress_for_s=60.0)

    async def scenario() -> Pipeline:
        pipeline = await h.start()
        h.submit(h.raw("forget", json.dumps({"userId": "frank"}).encode()))
        h.ack()
        await asyncio.sleep(0)
        expired = {"format": 1, "user_id": None, "requested_at": NOW - 1000, "recorded_at": NOW - 999,
                   "forgotten_at": NOW - 61}
        h.state.ledger.apply(("user/" + user_digest("frank")).encode(), json.dumps(expired).encode())
        h.submit(h.raw("clicks", _event("frank")))
        return pipeline

    assert asyncio.run(scenario()).pending_batches == 1
    assert h.dlq.written == []
