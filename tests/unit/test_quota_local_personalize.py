"""The local Personalize's per-dataset-group quota (`quota_rps`): parsing, the group of a request,
and one bucket per (group, operation), on a fake clock."""

from __future__ import annotations

import asyncio
import json

import pytest
from clickstream_devkit.personalize.errors import ApiError
from clickstream_devkit.personalize.faults import FaultInjector, parse_settings, quota_group


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def events_body(tracking_id: str) -> bytes:
    return json.dumps({"trackingId": tracking_id, "sessionId": "s", "eventList": []}).encode()


def items_body(group: str) -> bytes:
    arn = f"arn:aws:personalize:us-east-1:123456789012:dataset/{group}/ITEMS"
    return json.dumps({"datasetArn": arn, "items": []}, separators=(",", ":")).encode()


def admitted(injector: FaultInjector, operation: str, body: bytes) -> bool:
    try:
        asyncio.run(injector.apply(operation, body))
    except ApiError as error:
        assert error.code == "ThrottlingException" and error.status == 400
        return False
    return True


def test_the_group_of_a_request() -> None:
    assert quota_group("PutEvents", events_body("tracker-1")) == "tracker-1"
    assert quota_group("PutItems", items_body("shop")) == "shop"
    assert quota_group("PutUsers", b'{"datasetArn": "arn:aws:personalize:eu-west-1:1:dataset/g2/USERS"}') == "g2"
    assert quota_group("PutEvents", b"{}") == "", "no group named: counted together"


def test_each_group_and_operation_has_its_own_second_of_quota() -> None:
    clock = FakeClock()
    injector = FaultInjector(clock=clock)
    injector.configure(parse_settings({"quota_rps": {"PutEvents": 3, "PutItems": 1}}))
    assert [admitted(injector, "PutEvents", events_body("a")) for _ in range(4)] == [True, True, True, False]
    assert admitted(injector, "PutEvents", events_body("b")), "another group has its own quota"
    assert admitted(injector, "PutItems", items_body("a")), "another operation too"
    assert not admitted(injector, "PutItems", items_body("a"))
    assert admitted(injector, "PutUsers", b'{"datasetArn": "x"}'), "an operation not named is not limited"
    clock.now = 1 / 3
    assert admitted(injector, "PutEvents", events_body("a")), "refilled at 3/s"
    assert injector.throttled == 2


def test_quota_settings_are_shown_only_when_set_and_reset_by_configure() -> None:
    assert "quota_rps" not in parse_settings({}).to_dict()
    settings = parse_settings({"quota_rps": {"PutEvents": 1000}, "latency_ms": 20})
    assert settings.to_dict()["quota_rps"] == {"PutEvents": 1000.0}
    clock = FakeClock()
    injector = FaultInjector(clock=clock)
    injector.configure(parse_settings({"quota_rps": {"PutEvents": 1}}))
    assert admitted(injector, "PutEvents", events_body("a"))
    assert not admitted(injector, "PutEvents", events_body("a"))
    injector.configure(parse_settings({"quota_rps": {"PutEvents": 1}}))
    assert admitted(injector, "PutEvents", events_body("a")), "a new setting starts with full buckets"


@pytest.mark.parametrize("value", [{}, [], {"PutEvents": 0}, {"PutEvents": -1}, {"PutEvents": "fast"},
                                   {"GetRecommendations": 10}, {"PutEvents": float("inf")}])
def test_invalid_quota_settings(value: object) -> None:
    with pytest.raises(ValueError, match="quota_rps"):
        parse_settings({"quota_rps": value})


def test_a_request_waiting_out_its_latency_meets_the_quota_in_force_when_it_is_decided() -> None:
    """A storm starts while calls are in their emulated round trip: they must not create the
    group's bucket from the settings they started under (it would keep the old quota)."""
    clock = FakeClock()
    injector = FaultInjector(clock=clock)
    injector.configure(parse_settings({"latency_ms": 5, "quota_rps": {"PutEvents": 1000}}))

    async def scenario() -> list[bool]:
        async def one() -> bool:
            try:
                await injector.apply("PutEvents", events_body("a"))
            except ApiError:
                return False
            return True

        first = asyncio.ensure_future(one())
        await asyncio.sleep(0)  # it is asleep for its latency
        injector.configure(parse_settings({"latency_ms": 5, "quota_rps": {"PutEvents": 1}}))
        return [await first, await one(), await one()]

    assert asyncio.run(scenario()) == [True, False, False], "the storm's quota of 1/s, not the old 1000/s"
