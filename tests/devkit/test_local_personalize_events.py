"""The local Personalize's ``personalize-events`` data plane, driven by real boto3 over HTTP.

The server runs as a real subprocess (``python -m clickstream_devkit.personalize``) on a port
the OS picks; every test talks to it through an unmodified botocore client or raw HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError
from botocore.model import ListShape, Shape, StructureShape
from clickstream_devkit.personalize.shape_validation import load_service_model

REPO_ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"^local-personalize listening on (http://\S+)")
ACCOUNT = "arn:aws:personalize:us-east-1:123456789012"
ITEMS_ARN = f"{ACCOUNT}:dataset/Shop/ITEMS"
USERS_ARN = f"{ACCOUNT}:dataset/Shop/users"  # the type segment is case-insensitive
TRACKERS = ("trk-main", "trk-dedupe", "trk-batch", "trk-faults", "trk-legacy")


# -- server process --------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[str]
    url: str

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        """Raw HTTP: (status, headers, decoded body or None)."""
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, head, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, head, raw = error.code, error.headers, error.read()
        return status, head, (json.loads(raw) if raw else None)

    def get(self, path: str, **query: str) -> Any:
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        status, _, payload = self.call("GET", path + suffix)
        assert status == 200, payload
        return payload

    def faults(self, **settings: Any) -> Any:
        status, _, payload = self.call("POST", "/_local/faults", json.dumps(settings).encode())
        assert status == 200, payload
        return payload


def start_server(data_dir: Path, *args: str) -> Server:
    cmd = [sys.executable, "-m", "clickstream_devkit.personalize", "--port", "0", "--data-dir", str(data_dir), *args]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            match = READY.match(proc.stdout.readline())
            if match:
                return Server(proc, match.group(1))
        if proc.poll() is not None:
            break
    stop_server(proc)
    raise RuntimeError("local Personalize did not print its ready line")


def stop_server(proc: subprocess.Popen[str]) -> int:
    """SIGTERM by PID, SIGKILL if it lingers; returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


def registration_args() -> list[str]:
    args: list[str] = []
    for tracking_id in TRACKERS:
        args += ["--tracker", tracking_id]
    return [*args, "--dataset", ITEMS_ARN, "--dataset", USERS_ARN]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("local-personalize"), *registration_args())
    try:
        yield running
    finally:
        stop_server(running.proc)


@pytest.fixture(autouse=True)
def no_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "server" in request.fixturenames:
        request.getfixturevalue("server").faults()


def make_client(url: str, **retries: Any) -> Any:
    config = Config(retries=retries or {"mode": "standard", "total_max_attempts": 1})
    return boto3.client(
        "personalize-events",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=config,
    )


@pytest.fixture(scope="module")
def client(server: Server) -> Any:
    return make_client(server.url)


def event(n: int, **extra: Any) -> dict[str, Any]:
    return {"eventType": "click", "sentAt": 1_700_000_000 + n + 0.25, "eventId": f"ev-{n}", "itemId": f"i{n}", **extra}


def put_events_body(tracking_id: str = "trk-main", events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "trackingId": tracking_id,
        "userId": "user-1",
        "sessionId": "session-1",
        "eventList": events if events is not None else [event(0)],
    }


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


# -- success path ------------------------------------------------------------------------


def test_valid_batch_is_stored_with_every_field(server: Server, client: Any) -> None:
    events = [
        event(
            n,
            eventValue=float(n),
            properties=json.dumps({"device": "ios", "n": n}),
            recommendationId=f"RID-{n:036d}",
            impression=[f"i{n}", "i99"],
            metricAttribution={"eventAttributionSource": "campaign A"},
        )
        for n in range(10)
    ]
    before = time.time()
    response = client.put_events(**put_events_body("trk-batch", events))
    meta = response["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == 200 and meta["HTTPHeaders"]["content-length"] == "0"
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["RequestId"])
    assert "development stand-in" in meta["HTTPHeaders"]["server"]

    stored = server.get("/_local/events", trackingId="trk-batch")
    assert [row["eventId"] for row in stored] == [f"ev-{n}" for n in range(10)]
    row = stored[3]
    assert row["userId"] == "user-1" and row["sessionId"] == "session-1" and row["itemId"] == "i3"
    assert row["eventType"] == "click" and row["eventValue"] == 3.0
    assert row["sentAt"] == pytest.approx(1_700_000_003.25)
    assert json.loads(row["properties"]) == {"device": "ios", "n": 3}
    assert row["recommendationId"] == f"RID-{3:036d}" and row["impression"] == ["i3", "i99"]
    assert before <= row["receivedAt"] <= time.time()
    paged = server.get("/_local/events", trackingId="trk-batch", limit="2", offset="8")
    assert [r["eventId"] for r in paged] == ["ev-8", "ev-9"]


def test_event_without_id_gets_a_generated_one(server: Server, client: Any) -> None:
    body = put_events_body("trk-main", [{"eventType": "view", "sentAt": 1_700_000_500 + i} for i in range(2)])
    client.put_events(**body)
    rows = [r for r in server.get("/_local/events", trackingId="trk-main") if r["eventType"] == "view"]
    assert len(rows) == 2 and all(rows) and rows[0]["eventId"] != rows[1]["eventId"]


def test_event_id_and_exact_duplicates_are_counted_not_stored(server: Server, client: Any) -> None:
    before = server.get("/_local/stats")
    client.put_events(**put_events_body("trk-dedupe", [event(1), event(2)]))
    # Same eventId as before with different content, and a repeat inside one batch.
    client.put_events(**put_events_body("trk-dedupe", [event(1, eventType="buy"), event(3), event(3)]))
    # Different eventId, but the same row as ev-2 (same user, item, type, sentAt, properties).
    client.put_events(**put_events_body("trk-dedupe", [{**event(2), "eventId": "ev-2-copy"}]))
    # Same row but shown from a recommendation: a different event, kept.
    shown = {**event(2), "eventId": "ev-2-rec", "recommendationId": "RID-1"}
    client.put_events(**put_events_body("trk-dedupe", [shown]))
    rows = server.get("/_local/events", trackingId="trk-dedupe")
    assert [(r["eventId"], r["eventType"]) for r in rows] == [
        ("ev-1", "click"), ("ev-2", "click"), ("ev-3", "click"), ("ev-2-rec", "click")
    ]
    after = server.get("/_local/stats")
    assert after["accepted_events"] - before["accepted_events"] == 7
    assert after["duplicate_events"] - before["duplicate_events"] == 3
    # Of those, only ev-2-copy had a new eventId (an audit by eventId must not call it lost).
    assert after["same_content_events"] - before["same_content_events"] == 1
    # ev-2-copy redelivered: a duplicate of its eventId, not a second same-content event.
    client.put_events(**put_events_body("trk-dedupe", [{**event(2), "eventId": "ev-2-copy"}]))
    again = server.get("/_local/stats")
    assert again["same_content_events"] == after["same_content_events"]
    assert again["duplicate_events"] - after["duplicate_events"] == 1
    # The same eventId on another tracker is a different event.
    client.put_events(**put_events_body("trk-main", [event(1)]))
    assert any(r["eventId"] == "ev-1" for r in server.get("/_local/events", trackingId="trk-main"))


def test_legacy_item_id_and_event_value_inside_properties(server: Server, client: Any) -> None:
    legacy = {"eventType": "rate", "sentAt": 1_700_001_000, "eventId": "legacy-1"}
    legacy["properties"] = json.dumps({"itemId": "from-props", "eventValue": "4.5"})
    both = {**legacy, "eventId": "legacy-2", "itemId": "top", "eventValue": 1.0, "sentAt": 1_700_001_001}
    client.put_events(**put_events_body("trk-legacy", [legacy, both]))
    rows = {r["eventId"]: r for r in server.get("/_local/events", trackingId="trk-legacy")}
    assert (rows["legacy-1"]["itemId"], rows["legacy-1"]["eventValue"]) == ("from-props", 4.5)
    assert (rows["legacy-2"]["itemId"], rows["legacy-2"]["eventValue"]) == ("top", 1.0)


# -- validation ----------------------------------------------------------------------------

LONG = "x" * 257
ARN_MAX = f"{ACCOUNT}:dataset/{'g' * 240}/ITEMS"

# (operation, model path with list index 0, rule, request) - every max/pattern in the model.
VIOLATIONS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("PutEvents", "trackingId", "max", put_events_body(LONG)),
    ("PutEvents", "userId", "max", {**put_events_body(), "userId": LONG}),
    ("PutEvents", "sessionId", "max", {**put_events_body(), "sessionId": LONG}),
    ("PutEvents", "eventList", "max", put_events_body(events=[event(n) for n in range(11)])),
    ("PutEvents", "eventList.0.eventId", "max", put_events_body(events=[event(0, eventId=LONG)])),
    ("PutEvents", "eventList.0.eventType", "max", put_events_body(events=[event(0, eventType=LONG)])),
    ("PutEvents", "eventList.0.itemId", "max", put_events_body(events=[event(0, itemId=LONG)])),
    ("PutEvents", "eventList.0.properties", "max", put_events_body(events=[event(0, properties="p" * 1025)])),
    ("PutEvents", "eventList.0.recommendationId", "max", put_events_body(events=[event(0, recommendationId="r" * 41)])),
    ("PutEvents", "eventList.0.impression", "max", put_events_body(events=[event(0, impression=["i"] * 26)])),
    ("PutEvents", "eventList.0.impression.0", "max", put_events_body(events=[event(0, impression=[LONG])])),
    (
        "PutEvents",
        "eventList.0.metricAttribution.eventAttributionSource",
        "max",
        put_events_body(events=[event(0, metricAttribution={"eventAttributionSource": "a" * 1025})]),
    ),
    (
        "PutEvents",
        "eventList.0.metricAttribution.eventAttributionSource",
        "pattern",
        put_events_body(events=[event(0, metricAttribution={"eventAttributionSource": "    "})]),
    ),
    ("PutItems", "datasetArn", "max", {"datasetArn": ARN_MAX + "x" * 20, "items": [{"itemId": "i"}]}),
    ("PutItems", "datasetArn", "pattern", {"datasetArn": "arn:aws:s3:::bucket", "items": [{"itemId": "i"}]}),
    ("PutItems", "items", "max", {"datasetArn": ITEMS_ARN, "items": [{"itemId": f"i{n}"} for n in range(11)]}),
    ("PutItems", "items.0.itemId", "max", {"datasetArn": ITEMS_ARN, "items": [{"itemId": LONG}]}),
    (
        "PutItems",
        "items.0.properties",
        "max",
        {"datasetArn": ITEMS_ARN, "items": [{"itemId": "i", "properties": "p" * 32001}]},
    ),
    ("PutUsers", "datasetArn", "max", {"datasetArn": ARN_MAX + "x" * 20, "users": [{"userId": "u"}]}),
    ("PutUsers", "datasetArn", "pattern", {"datasetArn": "", "users": [{"userId": "u"}]}),
    ("PutUsers", "users", "max", {"datasetArn": USERS_ARN, "users": [{"userId": f"u{n}"} for n in range(11)]}),
    ("PutUsers", "users.0.userId", "max", {"datasetArn": USERS_ARN, "users": [{"userId": LONG}]}),
    (
        "PutUsers",
        "users.0.properties",
        "max",
        {"datasetArn": USERS_ARN, "users": [{"userId": "u", "properties": "p" * 24001}]},
    ),
]
METHODS = {"PutEvents": "put_events", "PutItems": "put_items", "PutUsers": "put_users"}


def model_constraints(shape: Shape, path: str) -> Iterator[tuple[str, str]]:
    for kind in ("max", "pattern", "enum"):
        if kind in shape.metadata:
            yield path, kind
    if isinstance(shape, StructureShape):
        for name, member in shape.members.items():
            yield from model_constraints(member, f"{path}.{name}" if path else name)
    elif isinstance(shape, ListShape):
        yield from model_constraints(shape.member, f"{path}.0")


def test_violation_cases_cover_every_max_and_pattern_in_the_model() -> None:
    model = load_service_model("personalize-events")
    expected = {
        (operation, path, kind)
        for operation in METHODS
        for path, kind in model_constraints(model.operation_model(operation).input_shape, "")
    }
    assert {(op, path, kind) for op, path, kind, _ in VIOLATIONS} == expected


@pytest.mark.parametrize(("operation", "path", "kind", "request_body"), VIOLATIONS, ids=lambda v: str(v)[:60])
def test_max_and_pattern_violations_are_invalid_input(
    server: Server, client: Any, operation: str, path: str, kind: str, request_body: dict[str, Any]
) -> None:
    with pytest.raises(client.exceptions.InvalidInputException) as excinfo:
        getattr(client, METHODS[operation])(**request_body)
    code, status, message = error_of(excinfo)
    assert (code, status) == ("InvalidInputException", 400)
    assert f"'{path}'" in message
    assert ("regular expression" if kind == "pattern" else "less than or equal to") in message


def test_botocore_checks_minimums_client_side(client: Any) -> None:
    """Why the minimum checks below bypass the SDK: it never sends such a request."""
    with pytest.raises(ParamValidationError):
        client.put_events(**put_events_body(""))


@pytest.mark.parametrize(
    ("body", "code", "path"),
    [
        ({**put_events_body(), "trackingId": ""}, "InvalidInputException", "trackingId"),
        ({**put_events_body(), "eventList": []}, "InvalidInputException", "eventList"),
        ({"trackingId": "trk-main", "eventList": [event(0)]}, "InvalidInputException", "sessionId"),
        (put_events_body(events=[{"eventType": "x"}]), "InvalidInputException", "eventList.0.sentAt"),
        (put_events_body(events=[event(0, sentAt="yesterday")]), "SerializationException", "eventList.0.sentAt"),
        (put_events_body(events=[event(0, impression=[])]), "InvalidInputException", "eventList.0.impression"),
    ],
)
def test_raw_requests_the_sdk_would_refuse(server: Server, body: dict[str, Any], code: str, path: str) -> None:
    status, headers, payload = server.call("POST", "/events", json.dumps(body).encode())
    assert (status, headers["x-amzn-ErrorType"], payload["__type"]) == (400, code, code)
    assert f"'{path}'" in payload["message"]
    assert headers["Content-Type"].startswith("application/json") and headers["x-amzn-RequestId"]


def test_body_that_is_not_json_is_a_serialization_error(server: Server) -> None:
    for raw in (b"{not json", b'{"trackingId": NaN}', b"\xff\xfe"):
        status, headers, payload = server.call("POST", "/events", raw)
        assert (status, headers["x-amzn-ErrorType"], payload["__type"]) == (
            400,
            "SerializationException",
            "SerializationException",
        )


def test_oversized_body_is_rejected_in_aws_format(server: Server) -> None:
    status, headers, payload = server.call("POST", "/events", b" " * (5 * 1024 * 1024))
    assert (status, headers["x-amzn-ErrorType"], payload["__type"]) == (
        413,
        "RequestEntityTooLargeException",
        "RequestEntityTooLargeException",
    )


def test_unknown_path_and_control_plane_targets(server: Server) -> None:
    status, headers, payload = server.call("POST", "/no-such-operation", b"{}")
    assert (status, headers["x-amzn-ErrorType"], payload["__type"]) == (
        404,
        "UnknownOperationException",
        "UnknownOperationException",
    )
    target = {"X-Amz-Target": "AmazonPersonalize.CreateRecommender", "Content-Type": "application/x-amz-json-1.1"}
    status, headers, payload = server.call("POST", "/", b"{}", target)
    assert (status, payload["__type"]) == (400, "UnknownOperationException")
    assert headers["Content-Type"].startswith("application/x-amz-json-1.1")


@pytest.mark.parametrize(
    ("properties", "needle"),
    [
        ("{not json", "Error parsing properties json"),
        ('["a", "b"]', "Error parsing properties json"),
        ('{"UserId": "u2"}', "Invalid key 'UserId'"),
        ('{"sessionid": "s"}', "Invalid key 'sessionid'"),
        ('{"eventType": "x"}', "Invalid key"),
        ('{"TIMESTAMP": 1}', "Invalid key"),
        ('{"recommendationId": "r"}', "Invalid key"),
        ('{"impression": "a|b"}', "Invalid key"),
    ],
)
def test_bad_properties_reject_the_whole_batch(server: Server, client: Any, properties: str, needle: str) -> None:
    before = server.get("/_local/stats")["stored"]["events"]
    events = [event(1000 + n) for n in range(9)] + [event(1009, properties=properties)]
    with pytest.raises(client.exceptions.InvalidInputException) as excinfo:
        client.put_events(**put_events_body("trk-main", events))
    assert needle in error_of(excinfo)[2] and "eventList.9.properties" in error_of(excinfo)[2]
    assert server.get("/_local/stats")["stored"]["events"] == before


def test_unknown_tracker_is_resource_not_found(server: Server, client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException) as excinfo:
        client.put_events(**put_events_body("no-such-tracker"))
    assert error_of(excinfo)[:2] == ("ResourceNotFoundException", 404)
    assert server.get("/_local/stats")["rejected"]["ResourceNotFoundException/unknown_tracker"] >= 1


# -- faults --------------------------------------------------------------------------------


def test_throttling_is_a_retried_throttling_exception(server: Server, client: Any) -> None:
    assert server.faults(throttle_rps=0)["throttle_rps"] == 0
    before = server.get("/_local/stats")
    with pytest.raises(ClientError) as excinfo:
        client.put_events(**put_events_body("trk-faults"))
    code, status, message = error_of(excinfo)
    assert (code, status, message) == ("ThrottlingException", 400, "Rate exceeded")
    retrying = make_client(server.url, mode="standard", total_max_attempts=2)
    with pytest.raises(ClientError) as excinfo:
        retrying.put_events(**put_events_body("trk-faults"))
    assert excinfo.value.response["ResponseMetadata"]["RetryAttempts"] == 1
    after = server.get("/_local/stats")
    assert after["throttled"] - before["throttled"] == 3
    assert after["accepted_events"] == before["accepted_events"]
    assert server.get("/_local/events", trackingId="trk-faults") == []


def test_throttle_rate_is_a_token_bucket(server: Server) -> None:
    server.faults(throttle_rps=5)
    body = json.dumps(put_events_body("trk-faults", [{"eventType": "t", "sentAt": 1_700_002_000}])).encode()
    statuses = [server.call("POST", "/events", body)[0] for _ in range(15)]
    assert statuses[:5] == [200] * 5 and statuses.count(400) >= 8
    time.sleep(0.5)  # refills about 2.5 tokens
    assert server.call("POST", "/events", body)[0] == 200


def test_injected_errors_are_500_internal_failure(server: Server, client: Any) -> None:
    server.faults(error_rate=1.0)
    before = server.get("/_local/stats")
    with pytest.raises(ClientError) as excinfo:
        client.put_events(**put_events_body("trk-faults"))
    assert error_of(excinfo)[:2] == ("InternalFailure", 500)
    retrying = make_client(server.url, mode="standard", total_max_attempts=2)
    with pytest.raises(ClientError):
        retrying.put_items(datasetArn=ITEMS_ARN, items=[{"itemId": "never"}])
    after = server.get("/_local/stats")
    assert after["injected_errors"] - before["injected_errors"] == 3
    assert after["stored"] == before["stored"]


def test_latency_and_fault_settings_round_trip(server: Server, client: Any) -> None:
    assert server.faults(latency_ms=300) == {"throttle_rps": None, "error_rate": 0.0, "latency_ms": 300.0}
    assert server.get("/_local/faults")["latency_ms"] == 300.0
    started = time.monotonic()
    client.put_events(**put_events_body("trk-faults", [event(2000)]))
    assert time.monotonic() - started >= 0.3
    assert server.faults() == {"throttle_rps": None, "error_rate": 0.0, "latency_ms": 0.0}
    started = time.monotonic()
    client.put_events(**put_events_body("trk-faults", [event(2001)]))
    assert time.monotonic() - started < 0.3
    for bad in ({"error_rate": 2}, {"latency_ms": -1}, {"bogus": 1}):
        assert server.call("POST", "/_local/faults", json.dumps(bad).encode())[0] == 400


# -- items and users -------------------------------------------------------------------------


def test_items_and_users_upsert_last_write_wins(server: Server, client: Any) -> None:
    client.put_items(
        datasetArn=ITEMS_ARN,
        items=[{"itemId": "sku-1", "properties": '{"genre": "a"}'}, {"itemId": "sku-2"}],
    )
    client.put_items(
        datasetArn=ITEMS_ARN,
        items=[
            {"itemId": "sku-1", "properties": '{"genre": "b"}'},
            {"itemId": "sku-1", "properties": '{"genre": "c"}'},
        ],
    )
    items = {r["itemId"]: r for r in server.get("/_local/items", datasetArn=ITEMS_ARN)}
    assert json.loads(items["sku-1"]["properties"]) == {"genre": "c"} and items["sku-2"]["properties"] is None
    client.put_users(datasetArn=USERS_ARN, users=[{"userId": "u-1", "properties": '{"tier": "gold"}'}])
    client.put_users(datasetArn=USERS_ARN, users=[{"userId": "u-1", "properties": '{"tier": "silver"}'}])
    users = server.get("/_local/users", datasetArn=USERS_ARN)
    assert [(u["userId"], json.loads(u["properties"])) for u in users] == [("u-1", {"tier": "silver"})]
    stats = server.get("/_local/stats")
    assert stats["items"] >= 4 and stats["users"] >= 2 and stats["requests"]["PutUsers"] >= 2


def test_dataset_errors(server: Server, client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException) as excinfo:
        client.put_items(datasetArn=f"{ACCOUNT}:dataset/Other/ITEMS", items=[{"itemId": "i"}])
    assert error_of(excinfo)[1] == 404
    with pytest.raises(client.exceptions.InvalidInputException) as excinfo:
        client.put_users(datasetArn=ITEMS_ARN, users=[{"userId": "u"}])
    assert "PutUsers accepts only a dataset of type USERS" in error_of(excinfo)[2]
    with pytest.raises(client.exceptions.InvalidInputException) as excinfo:
        client.put_items(datasetArn=ITEMS_ARN, items=[{"itemId": "i", "properties": "genre=a"}])
    assert "Error parsing properties json at 'items.0.properties'" in error_of(excinfo)[2]
    with pytest.raises(client.exceptions.InvalidInputException) as excinfo:
        client.put_actions(datasetArn=ITEMS_ARN, actions=[{"actionId": "a"}])
    assert "not supported" in error_of(excinfo)[2]


# -- durability --------------------------------------------------------------------------------


def test_restart_keeps_data_and_registrations(tmp_path: Path) -> None:
    first = start_server(tmp_path, "--tracker", "trk-keep", "--dataset", ITEMS_ARN)
    try:
        client = make_client(first.url)
        client.put_events(**put_events_body("trk-keep", [event(1), event(2)]))
        client.put_items(datasetArn=ITEMS_ARN, items=[{"itemId": "kept", "properties": '{"a": "1"}'}])
    finally:
        assert stop_server(first.proc) == 0  # SIGTERM is a clean exit

    second = start_server(tmp_path)  # no registrations on the command line this time
    try:
        client = make_client(second.url)
        assert [r["eventId"] for r in second.get("/_local/events", trackingId="trk-keep")] == ["ev-1", "ev-2"]
        assert [r["itemId"] for r in second.get("/_local/items")] == ["kept"]
        assert {t["trackingId"] for t in second.get("/_local/trackers")} == {"trk-keep"}
        datasets = second.get("/_local/datasets")
        assert [(d["datasetArn"], d["datasetType"]) for d in datasets] == [(ITEMS_ARN, "ITEMS")]
        assert datasets[0]["datasetGroupArn"] == f"{ACCOUNT}:dataset-group/Shop"
        # The dedupe memory survives too: ev-2 is still a duplicate after the restart.
        client.put_events(**put_events_body("trk-keep", [event(2), event(3)]))
        stats = second.get("/_local/stats")
        assert (stats["accepted_events"], stats["duplicate_events"], stats["stored"]["events"]) == (2, 1, 3)
        os.kill(second.proc.pid, signal.SIGKILL)  # a crash: what was acknowledged must survive
        second.proc.wait(timeout=5)
    finally:
        stop_server(second.proc)

    third = start_server(tmp_path)
    try:
        assert [r["eventId"] for r in third.get("/_local/events", trackingId="trk-keep")] == ["ev-1", "ev-2", "ev-3"]
    finally:
        stop_server(third.proc)


def test_bad_registration_fails_at_startup(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "clickstream_devkit.personalize", "--port", "0", "--data-dir", str(tmp_path)]
    result = subprocess.run(
        [*cmd, "--dataset", f"{ACCOUNT}:dataset/Shop/SOMETHING"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "ITEMS or USERS" in result.stderr
