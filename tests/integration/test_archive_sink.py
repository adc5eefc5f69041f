"""The S3 archive sink against moto, and the scheduler importing the archive before FULL training.

The sink is fed Interactions decoded by the worker's own decoder from generator records;
the objects are read back from moto with boto3 and parsed as CSV. The import scenario
gives the local Personalize no events at all: a version can only become ACTIVE if the
CreateDatasetImportJob the scheduler ran read the archive from S3.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from prometheus_client import CollectorRegistry

from tests.helpers import LocalPersonalize
from tests.integration.scheduler_support import ROLE_ARN, Harness, acted, generated_interactions, make_lab
from worker.archive import ArchiveSettings, ArchiveSink
from worker.config.solutions import SolutionSchedule
from worker.schedule.state import ACTIVE, FULL, INCREMENTAL

pytestmark = pytest.mark.integration


def s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def new_bucket(endpoint: str) -> str:
    name = f"archive-{uuid.uuid4().hex[:12]}"
    s3(endpoint).create_bucket(Bucket=name)
    return name


def read_objects(endpoint: str, bucket: str, prefix: str) -> dict[str, list[dict[str, str]]]:
    client = s3(endpoint)
    out = {}
    for obj in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        if obj["Key"].endswith(".gz"):
            body = gzip.decompress(body)
        out[obj["Key"]] = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    return out


def test_sink_flushes_by_size_and_age(moto_s3: str) -> None:
    bucket = new_bucket(moto_s3)
    settings = ArchiveSettings(bucket=bucket, prefix="clicks", flush_rows=500, flush_seconds=0.5,
                               s3_endpoint_url=moto_s3, region="us-east-1")  # fmt: skip
    interactions = generated_interactions(3, 1300)

    async def run() -> ArchiveSink:
        sink = ArchiveSink(settings)
        await sink.add(interactions[:600])  # over flush_rows: written now
        assert len(sink.written) == 1 and sink.buffered_rows == 0
        sink.add_nowait(interactions[600:700])  # under flush_rows: written by age
        await asyncio.sleep(1.2)
        assert len(sink.written) == 2
        sink.add_nowait(interactions[700:])
        await sink.close()  # the rest
        return sink

    sink = asyncio.run(run())
    objects = read_objects(moto_s3, bucket, "clicks/")
    assert sorted(objects) == sorted(sink.written) and len(objects) == 3
    rows = [row for key in sink.written for row in objects[key]]
    assert len(rows) == len(interactions)  # every generator user is identified or has a session
    expected = [(i.user_id or i.session_id, i.event["itemId"], str(int(i.event["sentAt"]))) for i in interactions]
    assert [(r["USER_ID"], r["ITEM_ID"], r["TIMESTAMP"]) for r in rows] == expected
    header = next(iter(objects.values()))[0].keys()
    assert list(header)[:4] == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"]
    assert all(key.startswith("clicks/part-") and key.endswith(".csv") for key in objects)


def test_sink_keeps_rows_when_s3_fails_and_gzips(moto_s3: str) -> None:
    bucket = f"missing-{uuid.uuid4().hex[:10]}"
    settings = ArchiveSettings(bucket=bucket, prefix="", gzip=True, flush_rows=10_000, flush_seconds=60,
                               s3_endpoint_url=moto_s3, region="us-east-1")  # fmt: skip
    interactions = generated_interactions(4, 200)
    registry = CollectorRegistry()

    async def run() -> ArchiveSink:
        sink = ArchiveSink(settings, registry=registry)
        sink.add_nowait(interactions)
        await sink.flush()  # NoSuchBucket: nothing written, nothing lost
        assert sink.written == [] and sink.buffered_rows == len(interactions)
        s3(moto_s3).create_bucket(Bucket=bucket)
        await sink.close()
        return sink

    asyncio.run(run())
    assert registry.get_sample_value("clickstream_archive_write_failures_total") == 1.0
    assert registry.get_sample_value("clickstream_archive_rows_total") == len(interactions)
    [(key, rows)] = read_objects(moto_s3, bucket, "").items()
    assert key.endswith(".csv.gz") and len(rows) == len(interactions)


def test_scheduler_imports_the_archive_before_full_training(
    local_personalize: Callable[..., LocalPersonalize], moto_s3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_s3)  # the local Personalize reads S3 from moto
    lab = make_lab(local_personalize, with_data=0)  # no events: training data can only come from S3
    bucket = new_bucket(moto_s3)
    settings = ArchiveSettings(bucket=bucket, prefix="interactions", flush_rows=100_000, s3_endpoint_url=moto_s3,
                               region="us-east-1")  # fmt: skip

    async def archive(seed: int, count: int) -> None:
        sink = ArchiveSink(settings)
        sink.add_nowait(generated_interactions(seed, count))
        await sink.close()

    asyncio.run(archive(1, 3000))
    solution = lab.solution()
    cfg = SolutionSchedule.model_validate({
        "solution_arn": solution, "full": {"interval_s": 1}, "min_interval_s": 0, "max_trainings_per_day": 2,
        "archive_import": {"dataset_arn": lab.dataset_arn, "data_location": settings.data_location,
                           "role_arn": ROLE_ARN, "job_name_prefix": "archive"},
    })  # fmt: skip
    h = Harness(lab, [cfg])
    first = h.until(acted("import"))
    assert first.decision.action.mode == FULL  # type: ignore[union-attr]
    train = h.until(acted("train"), timeout_s=60)
    assert "is ACTIVE" in train.decision.reason  # type: ignore[union-attr]  # trained only after the import
    h.until(lambda r: any(v.status == ACTIVE for v in r.observation.versions), timeout_s=60)  # type: ignore[union-attr]
    assert h.events("import.succeeded")

    asyncio.run(archive(2, 1500))  # new rows arrive; the next FULL imports again, INCREMENTAL now
    second = h.until(acted("import"), timeout_s=30)
    assert second.decision.action.mode == INCREMENTAL  # type: ignore[union-attr]
    h.until(acted("train"), timeout_s=60)
    jobs = lab.control.list_dataset_import_jobs(datasetArn=lab.dataset_arn)["datasetImportJobs"]
    assert sorted(j["importMode"] for j in jobs) == [FULL, INCREMENTAL]
    assert all(j["status"] == ACTIVE for j in jobs)
