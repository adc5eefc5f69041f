"""The shared fixtures themselves: local Personalize handle, moto S3, fake AWS env."""

from __future__ import annotations

import os
import time
import urllib.request
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from clickstream_devkit.personalize import process as lp_process

from tests.helpers import LocalPersonalizeError, pid_exists

TRACKING_ID = "fixture-tracker-0001"
ITEMS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/fixtures/ITEMS"

def events_client(endpoint_url: str) -> Any:
    no_retries = Config(retries={"mode": "standard", "max_attempts": 1})
    return boto3.client("personalize-events", endpoint_url=endpoint_url, region_name="us-east-1", config=no_retries)


def put_events(endpoint_url: str, n: int, prefix: str) -> None:
    client = events_client(endpoint_url)
    now = time.time()
    for i in range(n):
        client.put_events(
            trackingId=TRACKING_ID,
            userId=f"user-{i}",
            sessionId=f"session-{i}",
            eventList=[{"eventId": f"{prefix}-{i}", "eventType": "click", "sentAt": now, "itemId": f"item-{i}"}],
        )


def test_aws_env_is_fake_and_offline() -> None:
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"
    assert "AWS_PROFILE" not in os.environ
    credentials = boto3.session.Session().get_credentials()
    assert credentials is not None and credentials.access_key == "testing"


@pytest.mark.integration
def test_moto_s3_serves_s3_on_loopback(moto_s3: str) -> None:
    assert moto_s3.startswith("http://127.0.0.1:")
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    s3.create_bucket(Bucket="fixture-bucket")
    s3.put_object(Bucket="fixture-bucket", Key="a/b.csv", Body=b"USER_ID,ITEM_ID\n1,2\n")
    body = s3.get_object(Bucket="fixture-bucket", Key="a/b.csv")["Body"].read()
    assert body == b"USER_ID,ITEM_ID\n1,2\n"


@pytest.mark.integration
def test_local_personalize_handle_inspects_faults_restarts_and_kills(
    local_personalize: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    lp = local_personalize(trackers=[TRACKING_ID], datasets=[ITEMS_ARN])
    assert lp.endpoint_url == f"http://127.0.0.1:{lp.port}"
    with urllib.request.urlopen(f"{lp.endpoint_url}/_local/health", timeout=5) as response:
        assert response.status == 200
    first_pid = lp.pid
    assert first_pid is not None and pid_exists(first_pid)
    assert lp.events(TRACKING_ID) == []
    assert lp.items() == [] and lp.users() == []

    put_events(lp.endpoint_url, 5, "ev")
    monkeypatch.setattr(lp_process, "PAGE_SIZE", 2)  # force paging: 2 + 2 + 1
    assert sorted(e["eventId"] for e in lp.events(TRACKING_ID)) == [f"ev-{i}" for i in range(5)]
    assert isinstance(lp.stats(), dict)

    applied = lp.set_faults(throttle_rps=0)
    assert applied["throttle_rps"] == 0
    with pytest.raises(ClientError, match=r"ThrottlingException"):
        put_events(lp.endpoint_url, 1, "throttled")
    lp.clear_faults()
    put_events(lp.endpoint_url, 1, "after")

    lp.restart()
    assert lp.pid != first_pid and not pid_exists(first_pid)
    assert lp.endpoint_url == f"http://127.0.0.1:{lp.port}"
    assert len(lp.events(TRACKING_ID)) == 6  # persisted in the same data directory

    second_pid = lp.pid
    lp.kill()
    assert lp.pid is None and not pid_exists(second_pid)
    lp.start()
    assert len(lp.events(TRACKING_ID)) == 6


@pytest.mark.integration
def test_local_personalize_that_cannot_start_reports_its_output(local_personalize: Any) -> None:
    with pytest.raises(LocalPersonalizeError, match=r"(?s)exited with code.*not a Personalize ARN"):
        local_personalize(datasets=["not-an-arn"])
