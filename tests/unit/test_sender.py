"""Sender decisions with a scripted client.

The client is a fake on purpose: these tests need exact, repeatable failure sequences
(poison record at position 7, throttling then success, a timeout) that a real server
cannot produce deterministically. The same paths run against the real local Personalize
in tests/integration.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from worker.ingest.grouping import Batch, Entry
from worker.ingest.ratelimit import RateLimiterRegistry
from worker.ingest.retry import Backoff
from worker.ingest.sender import Sender, Target, build_request, error_info
from worker.observe.metrics import Metrics
from worker.records import CatalogUpdate, DatasetType, Interaction, Rejection, SourceRef, Stage

TARGET = Target("clicks", DatasetType.INTERACTIONS, scope="g", tracking_id="tid")


def _error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": f"{code}!"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutEvents"
    )


def _batch(n: int, user: str | None = "u1") -> Batch[Any, Interaction]:
    entries = [
        Entry(
            Interaction("s1", user, {"eventId": f"e{i}", "eventType": "view", "sentAt": 1.0}),
            [SourceRef("clicks", 0, i)],
        )
        for i in range(n)
    ]
    return Batch(key=("clicks", user, "s1"), entries=entries, opened_at=time.monotonic())


class ScriptedClient:
    def __init__(self, script: Any) -> None:
        self.script = script
        self.calls: list[dict[str, Any]] = []

    async def put_events(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        outcome = self.script(request)
        if isinstance(outcome, BaseException):
            raise outcome
        return {}


class Listener:
    def __init__(self) -> None:
        self.done: list[SourceRef] = []
        self.dead: list[tuple[SourceRef, Rejection]] = []
        self.faults: list[str] = []
        self.recovered = 0

    def delivered(self, target: Target, batch: Batch[Any, Any]) -> None:
        self.done.extend(batch.sources())

    def dead_letter(self, target: Target, sources: list[SourceRef], rejection: Rejection) -> None:
        self.dead.extend((s, rejection) for s in sources)

    def config_fault(self, target: Target, message: str) -> None:
        self.faults.append(message)

    def config_recovered(self, target: Target) -> None:
        self.recovered += 1


def _sender(client: ScriptedClient, timeout_s: float = 5.0) -> Sender:
    return Sender(
        client,
        RateLimiterRegistry({"PutEvents": 10_000}),
        Metrics(),
        max_concurrency=4,
        delivery_timeout_s=timeout_s,
        config_fault_retry_s=0.01,
        backoff=Backoff(base_s=0.001, cap_s=0.01, throttle_base_s=0.001),
    )


def test_build_request_puts_user_and_session_at_request_level() -> None:
    request = build_request(TARGET, _batch(3))
    assert request["trackingId"] == "tid" and request["userId"] == "u1" and request["sessionId"] == "s1"
    assert [e["eventId"] for e in request["eventList"]] == ["e0", "e1", "e2"]
    anonymous = build_request(TARGET, _batch(1, user=None))
    assert "userId" not in anonymous
    items = Target("items", DatasetType.ITEMS, "g", dataset_arn="arn:x")
    batch = Batch(key=("items", None, ""), entries=[Entry(CatalogUpdate("i1", {"itemId": "i1"}), [])], opened_at=0.0)
    assert build_request(items, batch) == {"datasetArn": "arn:x", "items": [{"itemId": "i1"}]}


def test_error_info_reads_client_errors_and_network_errors() -> None:
    assert error_info(_error("ThrottlingException", 400))[:2] == ("ThrottlingException", 400)
    assert error_info(EndpointConnectionError(endpoint_url="http://x"))[:2] == (None, None)


def test_poison_event_is_isolated_by_bisection() -> None:
    def script(request: dict[str, Any]) -> Any:
        ids = [e["eventId"] for e in request["eventList"]]
        return _error("InvalidInputException", 400) if "e7" in ids else None

    client, listener = ScriptedClient(script), Listener()
    asyncio.run(_sender(client).deliver(TARGET, _batch(10), listener))
    assert sorted(s.offset for s in listener.done) == [i for i in range(10) if i != 7]
    assert [(s.offset, r.stage) for s, r in listener.dead] == [(7, Stage.VALIDATION)]
    assert listener.dead[0][1].rule == "rejected_by_personalize"
    assert len(client.calls) <= 1 + 2 * 4, "bisection is logarithmic"


def test_throttling_and_5xx_are_retried_until_success() -> None:
    outcomes = iter(
        [
            _error("ThrottlingException", 400),
            _error("InternalFailure", 500),
            EndpointConnectionError(endpoint_url="http://x"),
            None,
        ]
    )
    client, listener = ScriptedClient(lambda _r: next(outcomes)), Listener()
    asyncio.run(_sender(client).deliver(TARGET, _batch(4), listener))
    assert len(listener.done) == 4 and not listener.dead
    assert len(client.calls) == 4


def test_delivery_timeout_dead_letters_with_stage_delivery() -> None:
    client, listener = ScriptedClient(lambda _r: _error("ServiceUnavailable", 503)), Listener()
    asyncio.run(_sender(client, timeout_s=0.05).deliver(TARGET, _batch(3), listener))
    assert not listener.done
    assert {r.stage for _, r in listener.dead} == {Stage.DELIVERY}
    assert len(listener.dead) == 3
    assert "ServiceUnavailable" in listener.dead[0][1].message


def test_config_fault_parks_then_recovers_without_dead_lettering() -> None:
    outcomes = iter([_error("ResourceNotFoundException", 404)] * 3 + [None])
    client, listener = ScriptedClient(lambda _r: next(outcomes)), Listener()
    asyncio.run(_sender(client).deliver(TARGET, _batch(2), listener))
    assert len(listener.faults) == 1, "reported once, not per retry"
    assert not listener.dead
    assert len(listener.done) == 2 and listener.recovered == 1


@pytest.mark.parametrize("code", ["AccessDeniedException", "UnrecognizedClientException"])
def test_auth_errors_are_config_faults(code: str) -> None:
    outcomes = iter([_error(code, 403), None])
    client, listener = ScriptedClient(lambda _r: next(outcomes)), Listener()
    asyncio.run(_sender(client).deliver(TARGET, _batch(1), listener))
    assert listener.faults and not listener.dead


def test_the_retry_budget_counts_from_when_the_batch_was_ready() -> None:
    """A batch that waited in its lane past the budget (an outage, the rate at its floor) gets one
    call; if that fails it is dead-lettered at once instead of starting a fresh budget."""
    client, listener = ScriptedClient(lambda _r: _error("ServiceUnavailable", 503)), Listener()
    waited = _batch(2)
    waited = Batch(waited.key, waited.entries, opened_at=time.monotonic() - 10.0)
    asyncio.run(_sender(client, timeout_s=5.0).deliver(TARGET, waited, listener))
    assert len(client.calls) == 1 and {r.stage for _, r in listener.dead} == {Stage.DELIVERY}

    ok_client, ok_listener = ScriptedClient(lambda _r: None), Listener()
    asyncio.run(_sender(ok_client, timeout_s=5.0).deliver(TARGET, waited, ok_listener))
    assert len(ok_listener.done) == 2, "a late batch whose call succeeds is delivered, not dropped"
