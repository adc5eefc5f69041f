"""The leader's deletion steps and the archive purge, with S3 from moto (in process).

Personalize is a small fake here, on purpose: these tests pin the order of writes and calls
and the crash recovery (a job recorded STARTING whose creation may or may not have reached
Personalize), which a real server cannot be made to crash in between. The same code runs
against the local Personalize's real data deletion jobs in
tests/integration/test_privacy_deletion.py.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from worker.archive.purge import ArchivePurger, purge_body
from worker.config.privacy import PrivacySettings
from worker.privacy.jobs import DeletionJobs
from worker.privacy.ledger import COMPLETED, FAILED, PENDING, STARTING, Ledger, Record, encode, user_digest

GROUP = "arn:aws:personalize:us-east-1:123456789012:dataset-group/shop"
BUCKET = "privacy-bucket"
SETTINGS = PrivacySettings.model_validate({
    "deletion_topic": "forget", "dataset_groups": [GROUP], "propagation_s": 0, "suppress_for_s": 1000,
    "jobs": {"bucket": BUCKET, "role_arn": "arn:aws:iam::123456789012:role/p", "batch_wait_s": 0,
             "retry_initial_s": 50, "max_users_per_job": 10},
})  # fmt: skip


class FakePersonalize:
    """CreateDataDeletionJob / Describe / List, with a status the test moves forward."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.refuse: str | None = None

    def create_data_deletion_job(self, **kw: Any) -> dict[str, Any]:
        self.calls.append("create")
        if self.refuse:
            raise ClientError({"Error": {"Code": self.refuse, "Message": "no"}}, "CreateDataDeletionJob")
        if any(j["jobName"] == kw["jobName"] for j in self.jobs.values()):
            raise ClientError({"Error": {"Code": "ResourceAlreadyExistsException", "Message": "exists"}},
                              "CreateDataDeletionJob")  # fmt: skip
        arn = f"arn:aws:personalize:us-east-1:123456789012:data-deletion-job/{kw['jobName']}"
        self.jobs[arn] = {**kw, "dataDeletionJobArn": arn, "status": "PENDING"}
        return {"dataDeletionJobArn": arn}

    def describe_data_deletion_job(self, dataDeletionJobArn: str) -> dict[str, Any]:
        self.calls.append("describe")
        return {"dataDeletionJob": self.jobs[dataDeletionJobArn]}

    def list_data_deletion_jobs(self, **kw: Any) -> dict[str, Any]:
        self.calls.append("list")
        return {"dataDeletionJobs": [j for j in self.jobs.values() if j["datasetGroupArn"] == kw["datasetGroupArn"]]}


class Harness:
    def __init__(self, s3: Any, clock: list[float], archive: Any = None,
                 personalize: FakePersonalize | None = None, ledger: Ledger | None = None) -> None:  # fmt: skip
        self.ledger = ledger if ledger is not None else Ledger()
        self.personalize = personalize if personalize is not None else FakePersonalize()
        self.events: list[tuple[str, Mapping[str, Any]]] = []
        self.s3 = s3
        self.clock = clock
        self.jobs = DeletionJobs(SETTINGS, personalize=self.personalize, s3=s3, write=self.write,
                                 publish=lambda kind, data: self.events.append((kind, data)), archive=archive,
                                 clock=lambda: clock[0])  # fmt: skip

    def write(self, records: list[Record]) -> None:
        for record in records:
            self.ledger.apply(*encode(record))

    def request(self, *users: str) -> None:
        for u in users:
            self.write([(f"user/{user_digest(u)}", {"format": 1, "user_id": u, "requested_at": self.clock[0],
                                                     "recorded_at": self.clock[0], "forgotten_at": None})])

    def tick(self) -> list[str]:
        return [d.outcome for d in self.jobs.tick(self.ledger)]

    def only_job(self) -> Any:
        (job,) = self.ledger.jobs.values()
        return job


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_a_job_runs_to_completion_and_its_input_is_deleted(s3: Any) -> None:
    clock = [1000.0]
    h = Harness(s3, clock)
    h.request("alice", "bob,with comma")
    assert h.tick() == ["started"]
    job = h.only_job()
    assert (job.status, job.attempt) == (PENDING, 1) and job.job_arn.endswith(job.name)
    created = h.personalize.jobs[job.job_arn]
    assert created["dataSource"] == {"dataLocation": f"s3://{BUCKET}/{job.csv_key}"}
    body = s3.get_object(Bucket=BUCKET, Key=job.csv_key)["Body"].read().decode()
    assert sorted(r[0] for r in csv.reader(io.StringIO(body))) == ["USER_ID", "alice", "bob,with comma"]
    assert h.tick() == ["polled"], "unchanged status: nothing written"
    h.personalize.jobs[job.job_arn].update(status="COMPLETED", numDeleted=7)
    assert h.tick() == ["completed"]
    assert h.only_job().status == COMPLETED
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0, "the CSV of raw IDs is gone"
    assert h.tick() == ["forgotten", "forgotten"]
    assert all(u.user_id is None and u.forgotten_at == 1000.0 for u in h.ledger.users.values())
    assert [k for k, _ in h.events] == ["privacy.job.started", "privacy.job.completed", "privacy.user.forgotten",
                                        "privacy.user.forgotten"]  # fmt: skip
    assert h.events[1][1]["num_deleted"] == 7
    assert "alice" not in repr(h.events), "lifecycle events carry digests, not IDs"
    clock[0] = 2000.0
    assert h.tick() == ["expired", "expired"]
    assert not h.ledger.users and len(h.ledger.jobs) == 1, "the group's newest job stays"


class Crash(Exception):
    """The leader dies right after recording the job as STARTING."""


def _crash(*_args: object) -> None:
    raise Crash


def test_a_crash_after_recording_starting_is_adopted_or_recreated(s3: Any) -> None:
    clock = [1000.0]
    h = Harness(s3, clock)
    h.request("alice")
    h.jobs._create = _crash  # type: ignore[method-assign,assignment]
    with pytest.raises(Crash):
        h.tick()
    job = h.only_job()
    assert job.status == STARTING and job.job_arn is None

    # Created in Personalize before the crash, but its ARN was never recorded: adopted by name.
    h.personalize.create_data_deletion_job(jobName=job.name, datasetGroupArn=GROUP, roleArn="r",
                                           dataSource={"dataLocation": "s3://x/y"})  # fmt: skip
    fresh = Harness(s3, clock, personalize=h.personalize, ledger=h.ledger)  # the next leader
    assert fresh.tick() == ["polled"]
    assert fresh.only_job().status == PENDING and fresh.only_job().job_arn is not None
    assert fresh.personalize.calls.count("create") == 1, "not created a second time"

    # Never reached Personalize: created from the IDs the ledger still holds.
    other = Harness(s3, clock)
    other.request("carol")
    other.jobs._create = _crash  # type: ignore[method-assign,assignment]
    with pytest.raises(Crash):
        other.tick()
    again = Harness(s3, clock, ledger=other.ledger)
    assert again.tick() == ["started"]
    assert again.only_job().status == PENDING and again.personalize.calls == ["list", "create"]
    body = s3.get_object(Bucket=BUCKET, Key=again.only_job().csv_key)["Body"].read()
    assert body == b"USER_ID\ncarol\n"


def test_a_refused_job_fails_backs_off_and_retries_the_same_users(s3: Any) -> None:
    clock = [1000.0]
    h = Harness(s3, clock)
    h.request("alice")
    h.personalize.refuse = "LimitExceededException"
    assert h.tick() == ["failed"]
    failed = h.only_job()
    assert failed.status == FAILED and failed.failure.startswith("LimitExceededException")
    assert h.events[-1][0] == "privacy.job.failed" and h.events[-1][1]["error_code"] == "LimitExceededException"
    h.personalize.refuse = None
    clock[0] = 1049.0
    assert h.tick() == ["held"]
    clock[0] = 1050.0
    assert h.tick() == ["started"]
    retry = next(j for j in h.ledger.jobs.values() if j.status == PENDING)
    assert retry.attempt == 2 and retry.digests == failed.digests


def test_a_job_failing_in_personalize_is_recorded_and_its_input_deleted(s3: Any) -> None:
    clock = [1000.0]
    h = Harness(s3, clock)
    h.request("alice")
    h.tick()
    job = h.only_job()
    h.personalize.jobs[job.job_arn].update(status="FAILED", failureReason="role cannot read the bucket")
    assert h.tick() == ["failed"]
    assert h.only_job().failure == "role cannot read the bucket"
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_s3_errors_are_reported_and_retried_next_tick(s3: Any) -> None:
    clock = [1000.0]
    s3.delete_bucket(Bucket=BUCKET)
    h = Harness(s3, clock)
    h.request("alice")
    assert h.tick() == ["error"]
    assert h.only_job().status == STARTING
    s3.create_bucket(Bucket=BUCKET)
    assert h.tick() == ["started"]


# -- the archive -----------------------------------------------------------------------------


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([["USER_ID", "ITEM_ID", "TIMESTAMP"], *rows])
    return out.getvalue().encode()


def test_purge_body_drops_only_the_forgotten_users_rows() -> None:
    body = _csv([["alice", "i1", "1"], ["bob", 'i,"2"', "2"], ["alice", "i3", "3"]])
    result = purge_body(body, lambda u: u == "alice", gzipped=False)
    assert (result.removed, result.kept) == (2, 1)
    assert result.body == _csv([["bob", 'i,"2"', "2"]])
    assert purge_body(body, lambda u: u == "carol", gzipped=False).body is None, "unchanged: not rewritten"
    zipped = purge_body(gzip.compress(body), lambda u: u == "bob", gzipped=True)
    assert zipped.body is not None
    assert gzip.decompress(zipped.body) == _csv([["alice", "i1", "1"], ["alice", "i3", "3"]])
    assert purge_body(b"A,B\n1,2\n", lambda u: True, gzipped=False).body is None, "no USER_ID column"


def test_the_archive_is_rewritten_without_the_users_and_the_job_marks_it(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="interactions/part-1.csv", Body=_csv([["alice", "i1", "1"], ["bob", "i2", "2"]]))
    s3.put_object(Bucket=BUCKET, Key="interactions/part-2.csv.gz", Body=gzip.compress(_csv([["bob", "i3", "3"]])))
    s3.put_object(Bucket=BUCKET, Key="interactions/notes.txt", Body=b"alice")
    purger = ArchivePurger(s3, BUCKET, "interactions/", user_digest)
    clock = [1000.0]
    h = Harness(s3, clock, archive=purger)
    h.request("alice")
    h.tick()
    job = h.only_job()
    h.personalize.jobs[job.job_arn]["status"] = "COMPLETED"
    assert h.tick() == ["completed"]
    assert h.tick() == ["purged"]
    assert s3.get_object(Bucket=BUCKET, Key="interactions/part-1.csv")["Body"].read() == _csv([["bob", "i2", "2"]])
    assert gzip.decompress(s3.get_object(Bucket=BUCKET, Key="interactions/part-2.csv.gz")["Body"].read()) == _csv(
        [["bob", "i3", "3"]])
    assert h.events[-1] == ("privacy.archive.purged", {"job": job.name, "objects_read": 2, "objects_rewritten": 1,
                                                       "rows_removed": 1})  # fmt: skip
    assert h.tick() == ["forgotten"], "forgotten only after the archive was purged"
