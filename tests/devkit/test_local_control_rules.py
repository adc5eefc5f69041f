"""Pure rules of the local Personalize's control plane: ARNs, statuses, pagination, timing, faults."""

from __future__ import annotations

import pytest
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.arns import (
    RequestContext,
    dataset_arn,
    dataset_group_arn,
    new_short_id,
    region_from_authorization,
    resource_name,
    solution_arn,
    solution_version_arn,
    split_latest,
)
from clickstream_devkit.personalize.control.pagination import decode_token, encode_token, paginate
from clickstream_devkit.personalize.control.timing import DEFAULT_STEP_SECONDS, FAST_STEP_SECONDS, Timing
from clickstream_devkit.personalize.errors import ApiError
from clickstream_devkit.personalize.faults import FaultInjector, parse_settings

CTX = RequestContext(region="eu-west-1", account="111122223333", now=0.0)


def test_arn_formats_follow_the_developer_guide() -> None:
    group = dataset_group_arn(CTX, "Shop")
    assert group == "arn:aws:personalize:eu-west-1:111122223333:dataset-group/Shop"
    assert dataset_arn(group, "items") == "arn:aws:personalize:eu-west-1:111122223333:dataset/Shop/ITEMS"
    assert dataset_arn(group, "Interactions").endswith(":dataset/Shop/INTERACTIONS")
    version = solution_version_arn(solution_arn(CTX, "up"), "0a1b2c3d")
    assert version == "arn:aws:personalize:eu-west-1:111122223333:solution/up/0a1b2c3d"
    assert resource_name(version) == "up"
    assert split_latest(solution_arn(CTX, "up") + "/$LATEST") == solution_arn(CTX, "up")
    assert split_latest(version) is None
    ids = {new_short_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 8 and int(i, 16) >= 0 for i in ids)


def test_region_comes_from_the_sigv4_credential_scope() -> None:
    header = (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/ap-southeast-2/personalize/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc"
    )
    assert region_from_authorization(header) == "ap-southeast-2"
    assert region_from_authorization(None, "us-west-2") == "us-west-2"
    assert region_from_authorization("Bearer x", "us-west-2") == "us-west-2"


def test_status_transitions() -> None:
    assert st.next_status(st.PENDING) == st.IN_PROGRESS
    assert st.next_status(st.IN_PROGRESS) == st.ACTIVE
    assert st.next_status(st.STOPPING) == st.STOPPED
    assert all(st.next_status(s) is None for s in st.TERMINAL)
    assert st.stop_transition(st.PENDING) == st.STOPPED
    assert st.stop_transition(st.IN_PROGRESS) == st.STOPPING
    assert st.stop_transition(st.ACTIVE) is None
    assert " " in st.PENDING and " " in st.IN_PROGRESS and " " in st.FAILED


def test_pagination_walks_every_entry_once_newest_first() -> None:
    entries = [(float(i % 4), f"arn-{i:02d}") for i in range(11)]  # ties in time, broken by ARN
    seen: list[tuple[float, str]] = []
    body: dict[str, object] = {"maxResults": 3}
    pages = 0
    while True:
        page, token = paginate(entries, body, key=lambda e: e, scope="x")
        seen.extend(page)
        pages += 1
        if token is None:
            break
        body = {"maxResults": 3, "nextToken": token}
    assert pages == 4
    assert sorted(seen) == sorted(entries)
    assert seen == sorted(entries, key=lambda e: (-e[0], e[1]))


def test_pagination_tokens_are_checked() -> None:
    token = encode_token((1.0, "a"), "solutions|g1")
    assert decode_token(token, "solutions|g1") == (1.0, "a")
    for bad, scope in ((token, "solutions|g2"), ("not-base64!!", "solutions|g1"), ("eyJ4IjoxfQ==", "solutions|g1")):
        with pytest.raises(ApiError) as caught:
            decode_token(bad, scope)
        assert caught.value.code == "InvalidNextTokenException"


def test_timing_options() -> None:
    assert Timing.from_options(fast=False, transition_seconds=None).step_seconds == DEFAULT_STEP_SECONDS
    assert Timing.from_options(fast=True, transition_seconds=None).step_seconds == FAST_STEP_SECONDS
    assert Timing.from_options(fast=True, transition_seconds=3.5).step_seconds == 3.5
    with pytest.raises(ValueError, match="transition-seconds"):
        Timing.from_options(fast=False, transition_seconds=-1)


def test_control_faults_parse_count_down_and_keep_the_old_shape() -> None:
    assert parse_settings({}).to_dict() == {"throttle_rps": None, "error_rate": 0.0, "latency_ms": 0.0}
    settings = parse_settings({"fail_next_trainings": 2, "training_seconds": 5, "control_throttle_rps": 0})
    assert settings.to_dict()["fail_next_trainings"] == 2
    faults = FaultInjector()
    faults.configure(settings)
    assert [faults.take_training_failure() for _ in range(3)] == [True, True, False]
    assert "fail_next_trainings" not in faults.settings.to_dict()
    assert faults.settings.training_seconds == 5.0
    assert not faults.take_campaign_update_failure()
    with pytest.raises(ApiError) as caught:
        faults.check_control()
    assert (caught.value.code, caught.value.status) == ("LimitExceededException", 400)
    for bad in ({"fail_next_trainings": -1}, {"fail_next_campaign_updates": 1.5}, {"training_seconds": "x"}):
        with pytest.raises(ValueError):
            parse_settings(bad)


@pytest.mark.parametrize("payload", [
    {"latency_ms": 3_600_000}, {"latency_ms": float("inf")}, {"latency_ms": float("nan")}, {"throttle_rps": 1e300},
    {"error_rate": 1.5}, {"error_rate": -0.1}, {"training_seconds": 1e9}, {"control_throttle_rps": float("nan")},
    {"fail_next_trainings": 10**9}, {"fail_next_campaign_updates": -1}, {"latency_ms": "100"}, {"error_rate": None},
])
def test_fault_values_are_bounded_and_finite(payload: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        parse_settings(payload)


def test_fault_values_at_their_bounds_are_accepted() -> None:
    settings = parse_settings({"latency_ms": 60_000, "throttle_rps": 0, "error_rate": 1.0, "training_seconds": 3600,
                               "fail_next_trainings": 1000})
    assert settings.latency_ms == 60_000.0 and settings.error_rate == 1.0
