"""The lean client against a capturing loopback server and the local Personalize.

The signature check re-derives SigV4 with botocore's own signer from the captured request
(same timestamp), so a wrong canonical request, scope or signing name fails the test.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import botocore.session
import pytest
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from worker.ingest.lean_client import LeanClientError, LeanEventsClient, parse_error
from worker.ingest.retry import ErrorKind, classify
from worker.ingest.sender import error_info

pytestmark = pytest.mark.integration

TRACKING_ID = "11111111-2222-3333-4444-555555555555"


def _client(endpoint_url: str) -> LeanEventsClient:
    session = botocore.session.get_session()
    session.set_credentials("AKIDEXAMPLE", "secret-example", "token-example")
    return LeanEventsClient(region="eu-west-1", endpoint_url=endpoint_url, max_connections=4,
                            connect_timeout_s=2, read_timeout_s=5, botocore_session=session)


def _request(n: int = 2) -> dict[str, Any]:
    events = [{"eventId": f"e{i}", "eventType": "view", "sentAt": 1_763_800_000.5 + i, "itemId": f"i{i}",
               "properties": json.dumps({"device": "ios"})} for i in range(n)]
    return {"trackingId": TRACKING_ID, "userId": "u1", "sessionId": "s1", "eventList": events}


def test_signature_matches_botocore_sigv4_and_body_is_the_wire_shape(unused_tcp_port: int) -> None:
    captured: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.Response:
        captured["headers"] = dict(request.headers)
        captured["body"] = await request.read()
        captured["path"] = request.path
        return web.Response(status=200)

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post("/events", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
        await site.start()
        try:
            async with _client(f"http://127.0.0.1:{unused_tcp_port}") as client:
                await client.put_events(**_request())
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
    headers, body = captured["headers"], captured["body"]
    assert captured["path"] == "/events"
    assert json.loads(body) == _request(), "sentAt stays epoch seconds, properties a JSON string"
    auth = headers["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/personalize/aws4_request" in auth, "signing name is personalize, not personalize-events"
    assert headers["X-Amz-Security-Token"] == "token-example"
    # Re-sign the captured request with botocore at the captured timestamp.
    url = f"http://127.0.0.1:{unused_tcp_port}/events"
    signed_names = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    replay = AWSRequest(method="POST", url=url, data=body,
                        headers={k: v for k, v in headers.items() if k.lower() in signed_names})
    replay.context["timestamp"] = headers["X-Amz-Date"]
    signer = SigV4Auth(Credentials("AKIDEXAMPLE", "secret-example", "token-example"), "personalize", "eu-west-1")
    canonical = signer.canonical_request(replay)
    expected = signer.signature(signer.string_to_sign(replay, canonical), replay)
    assert auth.endswith(f"Signature={expected}")


@pytest.mark.parametrize(
    ("status", "headers", "body", "code", "kind"),
    [
        (400, {"x-amzn-ErrorType": "ThrottlingException:http://internal"}, b"{}", "ThrottlingException",
         ErrorKind.THROTTLED),
        (400, {}, b'{"__type":"com.amazonaws.personalize#InvalidInputException","message":"bad"}',
         "InvalidInputException", ErrorKind.POISON),
        (404, {"x-amzn-ErrorType": "ResourceNotFoundException"}, b'{"message":"no tracker"}',
         "ResourceNotFoundException", ErrorKind.CONFIG_FAULT),
        (503, {}, b"<html>busy</html>", "HTTP503", ErrorKind.RETRYABLE),
        (429, {}, b"", "TooManyRequestsException", ErrorKind.THROTTLED),
    ],
)
def test_errors_parse_like_botocore(status: int, headers: dict[str, str], body: bytes, code: str,
                                    kind: ErrorKind) -> None:
    error = parse_error(status, headers, body)
    got_code, got_status, _ = error_info(error)
    assert (got_code, got_status) == (code, status)
    assert classify(got_code, got_status) is kind


def test_against_local_personalize(local_personalize: Any) -> None:
    lp = local_personalize(trackers=[TRACKING_ID])

    async def scenario() -> tuple[LeanClientError, LeanClientError]:
        async with _client(lp.endpoint_url) as client:
            await client.put_events(**_request(10))
            with pytest.raises(LeanClientError) as unknown:
                await client.put_events(**{**_request(), "trackingId": "nope"})
            lp.set_faults(throttle_rps=0)
            with pytest.raises(LeanClientError) as throttled:
                await client.put_events(**_request())
            lp.clear_faults()
            return unknown.value, throttled.value

    unknown, throttled = asyncio.run(scenario())
    assert error_info(unknown)[:2] == ("ResourceNotFoundException", 404)
    assert error_info(throttled)[:2] == ("ThrottlingException", 400)
    assert [e["eventId"] for e in lp.events(TRACKING_ID)] == [f"e{i}" for i in range(10)]


@pytest.fixture
def unused_tcp_port() -> int:
    from clickstream_devkit.processes import free_port

    return free_port()


@pytest.mark.parametrize(
    ("endpoint", "host"),
    [
        ("https://personalize-events.us-east-1.amazonaws.com", "personalize-events.us-east-1.amazonaws.com"),
        ("https://personalize-events.us-east-1.amazonaws.com:443/", "personalize-events.us-east-1.amazonaws.com"),
        ("http://127.0.0.1:8765", "127.0.0.1:8765"),
    ],
)
def test_signed_host_drops_only_the_default_port(endpoint: str, host: str) -> None:
    assert _client(endpoint)._host == host


class SlowStsCredentials:
    """Refreshable credentials whose refresh takes `delay_s` (a slow STS) or fails (STS down)."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.down = False
        self.calls = 0

    def get_frozen_credentials(self) -> Any:
        import time

        self.calls += 1
        if self.calls > 1:  # the first read is at start-up; later ones refresh
            time.sleep(self.delay_s)
            if self.down:
                raise ConnectionError("STS unreachable")
        return Credentials("AKIDEXAMPLE", "secret-example", f"token-{self.calls}").get_frozen_credentials()


def test_a_slow_or_failing_credential_refresh_never_blocks_the_event_loop(unused_tcp_port: int) -> None:
    """Signing read refreshable credentials on the event loop: a 2 s STS stalled every call by 2 s."""
    from worker.ingest.credentials import CredentialCache

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post("/events", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
        sts = SlowStsCredentials(delay_s=2.0)
        client = _client(f"http://127.0.0.1:{unused_tcp_port}")
        client._credentials = CredentialCache(sts, refresh_every_s=0.2)
        loop = asyncio.get_running_loop()
        worst_gap = 0.0
        try:
            async with client:
                began = loop.time()
                while loop.time() - began < 3.0:  # spans a 2 s refresh in the background thread
                    tick = loop.time()
                    await client.put_events(**_request())
                    await asyncio.sleep(0.01)
                    worst_gap = max(worst_gap, loop.time() - tick)
                sts.down = True  # the next refreshes fail: signing goes on with what it has
                deadline = loop.time() + 8.0
                while client._credentials.failures == 0 and loop.time() < deadline:
                    await client.put_events(**_request())
                    await asyncio.sleep(0.05)
                assert client._credentials.failures >= 1
                await client.put_events(**_request())
        finally:
            await runner.cleanup()
        assert worst_gap < 0.5, f"a call waited {worst_gap:.2f} s: the refresh ran on the event loop"
        assert sts.calls >= 2, "credentials were refreshed in the background"

    asyncio.run(scenario())


def test_a_session_token_with_a_line_break_is_a_credentials_fault_and_nothing_is_sent(unused_tcp_port: int) -> None:
    from worker.ingest.http_transport import InvalidHeaderValueError

    received: list[bytes] = []

    async def handler(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=200)

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post("/events", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
        session = botocore.session.get_session()
        session.set_credentials("AKIDEXAMPLE", "secret-example", "tok\r\nX-Injected: 1")
        client = LeanEventsClient(region="eu-west-1", endpoint_url=f"http://127.0.0.1:{unused_tcp_port}",
                                  max_connections=2, connect_timeout_s=2, read_timeout_s=5, botocore_session=session)
        try:
            async with client:
                with pytest.raises(InvalidHeaderValueError) as caught:
                    await client.put_events(**_request())
        finally:
            await runner.cleanup()
        code, status, _message = error_info(caught.value)
        assert classify(code, status) is ErrorKind.CONFIG_FAULT  # the topic stops; nothing is dead-lettered

    asyncio.run(scenario())
    assert received == []
