"""Actions and action interactions, delivery: quotas, wire requests, grouping and coalescing.

The wire requests are checked against botocore's own model and serializer (what the aiobotocore
client sends) and against the lean client's paths; grouping runs through the real pipeline and
sender with a client that records each call (the Personalize side of the same requests runs in
tests/integration/test_actions_pipeline.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import botocore.session
import orjson
from botocore.serialize import create_serializer
from botocore.validate import validate_parameters

from tests.unit.test_actions import ACT, ACTIONS_ARN, AI, NOW, SEGMENT_AI, build, decoder, shipped
from worker.config.quotas import DefaultQuota, GroupQuota, QuotaSettings
from worker.ingest.feedback import ConsumerFeedback
from worker.ingest.grouping import Batch, Entry
from worker.ingest.lean_client import _PATHS
from worker.ingest.pipeline import Pipeline, TopicRoute
from worker.ingest.ratelimit import RateLimiterRegistry
from worker.ingest.sender import API_BY_TYPE, METHOD_BY_TYPE, Sender, Target, build_request
from worker.observe.metrics import Metrics
from worker.records import Interaction, RawRecord, Rejection, SourceRef
from worker.validation import CatalogValidator, ValidationLimits


def test_quotas_default_like_put_items_and_are_configurable() -> None:
    rates = DefaultQuota().rates()
    assert rates["PutActions"] == rates["PutActionInteractions"] == rates["PutItems"] == 10.0
    quotas = QuotaSettings.model_validate({"groups": {"nba": {"put_action_interactions_rps": 25}}})
    assert quotas.groups["nba"].rates() == {"PutActionInteractions": 25.0}
    assert GroupQuota().rates() == {}
    assert {API_BY_TYPE[ACT], API_BY_TYPE[AI]} <= set(rates)


# -- wire requests: lean client paths and botocore's model ------------------------------------


def _interaction_batch(n: int) -> Batch[Any, Interaction]:
    entries = [Entry(build(event_id=f"e{i}", user_id="u1", session_id="s1"), [SourceRef("nba", 0, i)])
               for i in range(n)]
    return Batch(key=("nba", "u1", "s1"), entries=entries, opened_at=time.monotonic())


def test_requests_are_valid_for_botocore_and_serialise_to_the_lean_paths() -> None:
    model = botocore.session.get_session().get_service_model("personalize-events")
    serializer = create_serializer("rest-json", include_validation=False)
    ai_target = Target("nba", AI, "g", tracking_id="trk")
    act_target = Target("acts", ACT, "g", dataset_arn=ACTIONS_ARN)
    action = CatalogValidator(shipped(ACT), ValidationLimits()).build("a1", {"CREATION_TIMESTAMP": int(NOW)}, NOW)
    act_batch = Batch(key=("acts", None, ""), entries=[Entry(action, [SourceRef("acts", 0, 0)])], opened_at=0.0)
    for target, batch, operation in ((ai_target, _interaction_batch(10), "PutActionInteractions"),
                                     (act_target, act_batch, "PutActions")):
        assert target.api == operation
        request = build_request(target, batch)
        op = model.operation_model(operation)
        validate_parameters(request, op.input_shape)  # raises ParamValidationError on any shape mismatch
        wire = serializer.serialize_to_request(request, op)
        assert wire["url_path"] == _PATHS[METHOD_BY_TYPE[target.dataset_type]] == op.http["requestUri"]
        assert json.loads(wire["body"]) == orjson.loads(orjson.dumps(request))  # what the lean client sends
    assert build_request(ai_target, _interaction_batch(2)) == {
        "trackingId": "trk", "actionInteractions": [e.payload.event for e in _interaction_batch(2).entries]}
    assert build_request(act_target, act_batch) == {"datasetArn": ACTIONS_ARN, "actions": [action.record]}


# -- grouping and coalescing through the pipeline ---------------------------------------------


class RecordingClient:
    """Records each call; the Personalize side of these requests runs in the integration test."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def put_actions(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("put_actions", request))
        return {}

    async def put_action_interactions(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("put_action_interactions", request))
        return {}


class DeadLetters:
    def __init__(self) -> None:
        self.written: list[tuple[SourceRef, Rejection]] = []

    def write(self, _topic: str, raw: RawRecord, rejection: Rejection, on_done: Any) -> None:
        self.written.append((raw.source, rejection))
        on_done(raw.source, rejection)


def test_pipeline_coalesces_actions_by_id_and_groups_action_interactions_per_session() -> None:
    client, dlq, feedback = RecordingClient(), DeadLetters(), ConsumerFeedback()
    routes = {
        "acts": TopicRoute(Target("acts", ACT, "nba", dataset_arn=ACTIONS_ARN), decoder(ACT), "acts.dlq"),
        "nba": TopicRoute(Target("nba", AI, "nba", tracking_id="trk"), decoder(AI), "nba.dlq"),
    }
    now = NOW
    actions = [RawRecord(SourceRef("acts", 0, i), None, json.dumps(
        {"actionId": f"a{i % 3}", "properties": {"value": i, "creationTimestamp": int(now)}}).encode(), (), None)
        for i in range(9)]
    interactions = [RawRecord(SourceRef("nba", 0, i), None, json.dumps(
        {**SEGMENT_AI, "messageId": f"m{i}", "userId": f"u{i % 2}", "context": {"sessionId": f"s{i % 2}"},
         "timestamp": "2025-06-15T15:00:00Z"}).encode(), (), None) for i in range(14)]
    bad = RawRecord(SourceRef("nba", 0, 14), None, json.dumps({**SEGMENT_AI, "event": "click"}).encode(), (), None)

    async def scenario() -> bool:
        sender = Sender(client, RateLimiterRegistry({"PutActions": 1e6, "PutActionInteractions": 1e6}), Metrics(),
                        max_concurrency=4, delivery_timeout_s=5, config_fault_retry_s=0.01)
        pipeline = Pipeline(routes, sender, dead_letters=dlq, metrics=Metrics(),  # type: ignore[arg-type]
                            feedback=feedback, linger_s=0.05, wall_clock=lambda: now)
        pipeline.submit([*actions, *interactions, bad])
        drained = await pipeline.drain(5)
        await pipeline.close()
        return drained

    assert asyncio.run(scenario())
    put_actions = [r for m, r in client.calls if m == "put_actions"]
    assert len(put_actions) == 1 and put_actions[0]["datasetArn"] == ACTIONS_ARN
    # three actions, last write wins, first-seen order kept
    assert [(a["actionId"], json.loads(a["properties"])["value"]) for a in put_actions[0]["actions"]] == [
        ("a0", 6), ("a1", 7), ("a2", 8)]
    calls = [r for m, r in client.calls if m == "put_action_interactions"]
    assert all(r["trackingId"] == "trk" and 1 <= len(r["actionInteractions"]) <= 10 for r in calls)
    for r in calls:  # one session (and user) per call, as for PutEvents
        assert len({(i["userId"], i["sessionId"]) for i in r["actionInteractions"]}) == 1
    sent = sorted(i["eventId"] for r in calls for i in r["actionInteractions"])
    assert sent == sorted(f"m{i}" for i in range(14)) and len(calls) == 2
    assert [(s.offset, r.rule) for s, r in dlq.written] == [(14, "event_type_not_allowed")]
