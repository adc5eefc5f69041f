"""Deletion requests parsed from the deletion topic, and the CSV input of a deletion job (pure)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from worker.config.privacy import DeletionRequestMapping, PrivacySettings
from worker.privacy.jobs import csv_input
from worker.privacy.requests import DeletionRequest, RequestParser
from worker.records import Rejection

PARSER = RequestParser(DeletionRequestMapping())


def test_the_default_shape_and_its_alternatives() -> None:
    got = PARSER.parse(b'{"userId": "u-1", "requestedAt": "2025-12-01T10:00:00Z"}', 5)
    assert got == DeletionRequest("u-1", 1_764_583_200.0)
    assert PARSER.parse(b'{"user_id": 42, "timestamp": 1764583200000}', None) == DeletionRequest(
        "42", 1_764_583_200.0)
    assert PARSER.parse(b'{"userId": "u-2"}', 1_764_583_200_500) == DeletionRequest("u-2", 1_764_583_200.5), \
        "no request time: the record's timestamp"


def test_a_configured_mapping() -> None:
    parser = RequestParser(DeletionRequestMapping.model_validate(
        {"user_id": "subject.id", "requested_at": "at", "timestamp_unit": "seconds"}))
    assert parser.parse(b'{"subject": {"id": "x"}, "at": 1700000000}', None) == DeletionRequest("x", 1.7e9)


@pytest.mark.parametrize(
    ("value", "stage", "rule"),
    [
        (b"not json", "mapping", "not_json"),
        (b"[1, 2]", "mapping", "not_object"),
        (None, "mapping", "not_object"),
        (b'{"requestedAt": "2026-12-01T10:00:00Z"}', "validation", "required"),
        (b'{"userId": ""}', "validation", "max_length"),
        (json.dumps({"userId": "x" * 257}).encode(), "validation", "max_length"),
        (b'{"userId": {"id": 1}}', "mapping", "wrong_type"),
        (b'{"userId": "u", "requestedAt": "yesterday"}', "mapping", "bad_timestamp"),
        (b'{"userId": "u", "requestedAt": true}', "mapping", "wrong_type"),
    ],
)
def test_bad_requests_are_rejected_with_stage_and_rule(value: bytes | None, stage: str, rule: str) -> None:
    got = PARSER.parse(value, 1000)
    assert isinstance(got, Rejection), got
    assert (got.stage.value, got.rule) == (stage, rule), got


def test_no_request_time_anywhere_is_rejected() -> None:
    got = PARSER.parse(b'{"userId": "u"}', None)
    assert isinstance(got, Rejection) and (got.rule, got.field) == ("required", "requestedAt")


def test_the_job_input_is_one_user_id_column_quoted_where_needed() -> None:
    ids = ["plain", "with,comma", 'with "quote"', "line\nbreak", "ünïcode"]
    body = csv_input(ids)
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    assert rows == [["USER_ID"], *[[i] for i in ids]]
    assert body.startswith(b"USER_ID\nplain\n")


def test_settings_name_the_problem() -> None:
    group = "arn:aws:personalize:us-east-1:123456789012:dataset-group/g"
    base = {"deletion_topic": "forget", "dataset_groups": [group]}
    assert PrivacySettings.model_validate(base).jobs is None
    for bad, needle in (
        ({"dataset_groups": ["shop"]}, "not dataset group ARNs"),
        ({"dataset_groups": [group, group]}, "listed twice"),
        ({"state_topic": "forget"}, "must differ"),
        ({"jobs": {"bucket": "Bad_Bucket", "role_arn": "arn:aws:iam::123456789012:role/r"}}, "bucket"),
        ({"jobs": {"bucket": "good-bucket", "role_arn": "role/r"}}, "IAM role ARN"),
    ):
        with pytest.raises(ValueError, match=needle):
            PrivacySettings.model_validate({**base, **bad})
