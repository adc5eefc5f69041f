"""Conformance of the local Personalize's request validation, generated from botocore's own models.

For every operation the stand-in serves (control plane, events, runtime) the cases are
derived from the installed service model, not typed by hand: a valid request built from
the input shape (required members only, plus a few semantic fixes such as a real
schema) must pass validation; for every ``max``, ``pattern`` and ``enum`` anywhere in
the input shape, the valid request with just that member violated must be answered
InvalidInputException (400), sent through unmodified boto3 clients, which check neither;
and for every required member, the raw request without it must be InvalidInputException
too (botocore refuses to send those, so they go over raw HTTP).
"""

from __future__ import annotations

import copy
import json
import string
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape
from clickstream_devkit.personalize.shape_validation import compile_pattern, load_service_model

from tests.devkit.test_local_personalize_lifecycle import NO_RETRY, SIMPLE_INTERACTIONS_SCHEMA, Clients
from tests.helpers import LocalPersonalize

pytestmark = pytest.mark.integration

ACCOUNT_ARN = "arn:aws:personalize:us-east-1:123456789012"
TRACKING_ID = "conformance-tracker"
ITEMS_ARN = f"{ACCOUNT_ARN}:dataset/Conf/ITEMS"
USERS_ARN = f"{ACCOUNT_ARN}:dataset/Conf/USERS"

#: The operations the stand-in serves, per service (the ones the worker, scheduler and tests use).
OPERATIONS: dict[str, tuple[str, ...]] = {
    "personalize": (
        "CreateSchema", "DescribeSchema", "ListSchemas",
        "CreateDatasetGroup", "DescribeDatasetGroup", "ListDatasetGroups",
        "CreateDataset", "DescribeDataset", "ListDatasets",
        "CreateEventTracker", "DescribeEventTracker", "ListEventTrackers",
        "CreateDatasetImportJob", "DescribeDatasetImportJob", "ListDatasetImportJobs",
        "ListRecipes", "DescribeRecipe",
        "CreateSolution", "DescribeSolution", "ListSolutions",
        "CreateSolutionVersion", "DescribeSolutionVersion", "ListSolutionVersions",
        "StopSolutionVersionCreation", "GetSolutionMetrics",
        "CreateCampaign", "UpdateCampaign", "DescribeCampaign", "ListCampaigns",
        "DescribeAlgorithm",
        "CreateFilter", "DescribeFilter", "ListFilters",
        "CreateBatchInferenceJob", "DescribeBatchInferenceJob", "ListBatchInferenceJobs",
        "DeleteCampaign", "DeleteSolution", "DeleteEventTracker", "DeleteFilter", "DeleteDataset", "DeleteSchema",
        "DeleteDatasetGroup",
        "CreateDataDeletionJob", "DescribeDataDeletionJob", "ListDataDeletionJobs",
    ),
    "personalize-events": ("PutEvents", "PutItems", "PutUsers", "PutActions", "PutActionInteractions"),
    "personalize-runtime": ("GetRecommendations", "GetPersonalizedRanking"),
}  # fmt: skip
#: Semantic fixes so the valid request is valid beyond its shape.
OVERRIDES: dict[str, dict[str, Any]] = {
    "CreateSchema": {"schema": SIMPLE_INTERACTIONS_SCHEMA},
    "CreateSolution": {"recipeArn": "arn:aws:personalize:::recipe/aws-user-personalization"},
    "CreateDatasetImportJob": {"dataSource": {"dataLocation": "s3://bucket/data.csv"}},
    "CreateFilter": {"filterExpression": 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'},
    "PutEvents": {"trackingId": TRACKING_ID},
    "PutItems": {"datasetArn": ITEMS_ARN},
    "PutUsers": {"datasetArn": USERS_ARN},
    "PutActions": {"datasetArn": f"{ACCOUNT_ARN}:dataset/Conf/ACTIONS"},
    "PutActionInteractions": {
        "actionInteractions": [{"actionId": "a1", "sessionId": "s1", "timestamp": 1_700_000_000, "eventType": "Viewed"}]
    },
    "CreateDataDeletionJob": {"dataSource": {"dataLocation": "s3://bucket/users.csv"}},
    "GetRecommendations": {"campaignArn": f"{ACCOUNT_ARN}:campaign/none", "userId": "u1"},
}
#: Answers that show a request passed validation (the resources it names need not exist).
ACCEPTED = {"ResourceNotFoundException", "ResourceInUseException", "ResourceAlreadyExistsException"}

GOOD_STRINGS = (
    "n1",
    f"{ACCOUNT_ARN}:resource/n1",
    "arn:aws:iam::123456789012:role/personalize",
    "arn:aws:kms:us-east-1:123456789012:key/k1",
    "s3://bucket/key.csv",
    "rate(7 days)",
    "Interactions",
)
BAD_STRINGS = ("!bad", "-bad", " ", "bad value", ":", "é", "s3:/x", "arn:nope")

Segment = tuple[str, Any]  # ("member", name) | ("index", 0) | ("key", None) | ("value", key)


def _letters(i: int) -> str:
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = string.ascii_lowercase[r] + out
    return out


def valid_string(shape: Shape) -> str:
    if shape.enum:
        return str(shape.enum[0])
    lo, hi = shape.metadata.get("min", 0), shape.metadata.get("max", 10**6)
    raw = shape.metadata.get("pattern")
    pattern = compile_pattern(raw) if raw else None
    for candidate in GOOD_STRINGS:
        if lo <= len(candidate) <= hi and (pattern is None or pattern.search(candidate)):
            return candidate
    raise AssertionError(f"no valid sample for {shape.name} (pattern {raw})")


def valid_value(shape: Shape, depth: int = 0) -> Any:
    assert depth < 12, f"recursive shape {shape.name}"
    if isinstance(shape, StructureShape):
        return {name: valid_value(shape.members[name], depth + 1) for name in shape.required_members}
    if isinstance(shape, ListShape):
        return [valid_value(shape.member, depth + 1) for _ in range(max(shape.metadata.get("min", 0), 1))]
    if isinstance(shape, MapShape):
        n = shape.metadata.get("min", 0)
        return {valid_key(shape, i): valid_value(shape.value, depth + 1) for i in range(n)}
    kind = shape.type_name
    if kind == "string":
        return valid_string(shape)
    if kind in ("integer", "long"):
        return max(shape.metadata.get("min", 1), 1)
    if kind in ("float", "double"):
        return max(float(shape.metadata.get("min", 0.5)), 0.5) if "max" not in shape.metadata else 0.5
    if kind == "boolean":
        return True
    if kind == "timestamp":
        return 1_700_000_000.5
    raise AssertionError(f"unsupported shape {shape.name} ({kind})")


def valid_key(shape: MapShape, i: int) -> str:
    key = shape.key
    if key.enum:
        return str(key.enum[i % len(key.enum)])
    return valid_string(key) + _letters(i) if i else valid_string(key)


def bad_pattern_value(shape: Shape) -> str | None:
    lo, hi = shape.metadata.get("min", 0), shape.metadata.get("max", 10**6)
    pattern = compile_pattern(shape.metadata["pattern"])
    return next((b for b in BAD_STRINGS if lo <= len(b) <= hi and pattern.search(b) is None), None)


@dataclass(frozen=True)
class Case:
    service: str
    operation: str
    path: tuple[Segment, ...]
    rule: str
    value: Any

    @property
    def id(self) -> str:
        where = ".".join(str(name if kind == "member" else 0 if kind == "index" else kind) for kind, name in self.path)
        return f"{self.operation}:{where}:{self.rule}"


def violations(
    shape: Shape, path: tuple[Segment, ...] = (), depth: int = 0
) -> Iterator[tuple[tuple[Segment, ...], str, Any]]:
    """(path, rule, violating value) for every max / pattern / enum reachable in `shape`."""
    meta = shape.metadata
    if isinstance(shape, StructureShape):
        for name, member in shape.members.items():
            yield from violations(member, (*path, ("member", name)), depth + 1)
        return
    if isinstance(shape, ListShape):
        if "max" in meta:
            yield path, "max", [valid_value(shape.member)] * (meta["max"] + 1)
        yield from violations(shape.member, (*path, ("index", 0)), depth + 1)
        return
    if isinstance(shape, MapShape):
        if "max" in meta:
            yield path, "max", {valid_key(shape, i): valid_value(shape.value) for i in range(meta["max"] + 1)}
        for rule, bad_key in _scalar_violations(shape.key):
            yield path, f"key-{rule}", {bad_key: valid_value(shape.value)}
        yield from violations(shape.value, (*path, ("value", valid_key(shape, 0))), depth + 1)
        return
    for rule, value in _scalar_violations(shape):
        yield path, rule, value


def _scalar_violations(shape: Shape) -> Iterator[tuple[str, Any]]:
    meta = shape.metadata
    if shape.type_name == "string":
        if "max" in meta:
            yield "max", "a" * (meta["max"] + 1)
        if "pattern" in meta:
            bad = bad_pattern_value(shape)
            if bad is not None:  # e.g. \p{ASCII}{0,1500} unanchored matches every string
                yield "pattern", bad
        if shape.enum:
            yield "enum", "NOT_A_VALID_VALUE"
    elif shape.type_name in ("integer", "long", "float", "double") and "max" in meta:
        yield "max", meta["max"] + 1


def set_path(body: dict[str, Any], shape: StructureShape, path: tuple[Segment, ...], value: Any) -> None:
    """Put `value` at `path`, creating valid parents on the way; ``_DELETE`` removes the member."""
    container: Any = body
    current: Shape = shape
    for i, (kind, name) in enumerate(path):
        last = i == len(path) - 1
        if kind == "member":
            assert isinstance(current, StructureShape)
            current = current.members[name]
            key: Any = name
        elif kind == "index":
            assert isinstance(current, ListShape)
            current = current.member
            key = 0
        else:
            assert isinstance(current, MapShape)
            current = current.value
            key = name
        if last:
            if value is _DELETE:
                del container[key]
            else:
                container[key] = value
            return
        if kind == "index":
            if not container:
                container.append(valid_value(current))
        elif key not in container:
            container[key] = valid_value(current)
        container = container[key]


_DELETE = object()


def base_request(operation: OperationModel) -> dict[str, Any]:
    assert isinstance(operation.input_shape, StructureShape)
    body = valid_value(operation.input_shape)
    body.update(copy.deepcopy(OVERRIDES.get(operation.name, {})))
    return body


def required_paths(shape: Shape, path: tuple[Segment, ...] = ()) -> Iterator[tuple[Segment, ...]]:
    if isinstance(shape, StructureShape):
        for name, member in shape.members.items():
            if name in shape.required_members:
                yield (*path, ("member", name))
            yield from required_paths(member, (*path, ("member", name)))
    elif isinstance(shape, ListShape):
        yield from required_paths(shape.member, (*path, ("index", 0)))
    elif isinstance(shape, MapShape):
        yield from required_paths(shape.value, (*path, ("value", "k")))


MODELS: dict[str, ServiceModel] = {name: load_service_model(name) for name in OPERATIONS}
CASES = [
    Case(service, name, path, rule, value)
    for service, names in OPERATIONS.items()
    for name in names
    for path, rule, value in violations(MODELS[service].operation_model(name).input_shape)
]
REQUIRED = [
    (service, name, path)
    for service, names in OPERATIONS.items()
    for name in names
    for path in required_paths(MODELS[service].operation_model(name).input_shape)
]


@pytest.fixture(scope="module")  # one server for every case: validation is stateless
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    lp = LocalPersonalize(
        data_dir=tmp_path_factory.mktemp("conformance") / "data",
        trackers=[TRACKING_ID],
        datasets=[ITEMS_ARN, USERS_ARN],
        extra_args=["--fast"],
    ).start()
    try:
        yield lp
    finally:
        lp.stop()


@pytest.fixture(scope="module")
def clients(server: Any) -> Clients:
    return Clients(server, config=NO_RETRY)


def client_for(clients: Clients, service: str) -> Any:
    return {"personalize": clients.cp, "personalize-events": clients.ev, "personalize-runtime": clients.rt}[service]


def test_cases_cover_every_constraint_kind_of_every_operation() -> None:
    assert {op for names in OPERATIONS.values() for op in names} == {c.operation for c in CASES}
    assert len(CASES) > 150
    kinds = {c.rule for c in CASES}
    assert {"max", "pattern", "enum", "key-pattern", "key-enum"} <= kinds
    assert any(c.operation == "CreateSolution" and len(c.path) >= 4 for c in CASES)  # deep nesting is reached


@pytest.mark.parametrize(("service", "operation"), [(s, o) for s, ops in OPERATIONS.items() for o in ops])
def test_valid_request_is_accepted(clients: Clients, service: str, operation: str) -> None:
    body = base_request(MODELS[service].operation_model(operation))
    try:
        getattr(client_for(clients, service), xform_name(operation))(**body)
    except ClientError as error:
        assert error.response["Error"]["Code"] in ACCEPTED, error.response["Error"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_violated_maximum_pattern_and_enum_is_invalid_input(clients: Clients, case: Case) -> None:
    operation = MODELS[case.service].operation_model(case.operation)
    body = base_request(operation)
    assert isinstance(operation.input_shape, StructureShape)
    set_path(body, operation.input_shape, case.path, case.value)
    with pytest.raises(ClientError) as caught:
        getattr(client_for(clients, case.service), xform_name(case.operation))(**body)
    response = caught.value.response
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "InvalidInputException",
        400,
    ), response["Error"]


@pytest.mark.parametrize(("service", "operation", "path"), REQUIRED, ids=str)
def test_each_missing_required_member_is_invalid_input(server: Any, service: str, operation: str, path: Any) -> None:
    model = MODELS[service].operation_model(operation)
    body = base_request(model)
    assert isinstance(model.input_shape, StructureShape)
    set_path(body, model.input_shape, path, _DELETE)
    if service == "personalize":
        url, headers = (
            server.endpoint_url + "/",
            {
                "X-Amz-Target": f"AmazonPersonalize.{operation}",
                "Content-Type": "application/x-amz-json-1.1",
            },
        )
    else:
        url, headers = server.endpoint_url + model.http["requestUri"], {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, payload = response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        status, payload = error.code, json.loads(error.read())
    assert (status, payload.get("__type")) == (400, "InvalidInputException"), payload
    assert "Member must not be null" in payload["message"]
