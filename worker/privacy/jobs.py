"""Carrying out the planner's steps (I/O): S3 inputs, data deletion jobs, archive purges, the ledger.

Run by the scheduler's leader each tick. Order inside a step is what makes it safe to
crash anywhere:

1. a new job is first recorded as STARTING (its users' digests) in the state topic;
2. then its CSV input is written to S3 and CreateDataDeletionJob is called;
3. then the job's ARN and status are recorded.

A leader that finds a STARTING job looks it up by name (ListDataDeletionJobs) and adopts
it, or creates it again from the ledger (the users' IDs are there until they are
forgotten), so a crash neither loses a deletion nor starts the same job twice. A job
that completed has its CSV input deleted from S3: after that the only copy of a forgotten
user's ID in our systems is gone (the ledger keeps a keyed digest).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from worker.config.privacy import PrivacySettings
from worker.privacy.ledger import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    STARTING,
    JobEntry,
    Ledger,
    Record,
    UserEntry,
    job_update,
)
from worker.privacy.planner import Expire, Forget, Hold, Limits, PollJob, PurgeArchive, StartJob, Step, plan

log = structlog.get_logger(__name__)

Publish = Callable[[str, Mapping[str, Any]], object]
"""Lifecycle events: (type suffix, data) -> published by the scheduler's publisher."""


def csv_input(user_ids: list[str]) -> bytes:
    """The job's input: a CSV with one USER_ID column (quoted where needed), UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["USER_ID"])
    writer.writerows([u] for u in user_ids)
    return out.getvalue().encode("utf-8")


def limits_of(settings: PrivacySettings) -> Limits:
    jobs = settings.jobs
    if jobs is None:
        raise ValueError("privacy.jobs is not configured")
    return Limits(
        max_users_per_job=jobs.max_users_per_job, batch_wait_s=jobs.batch_wait_s,
        propagation_s=settings.propagation_s, retry_initial_s=jobs.retry_initial_s, retry_max_s=jobs.retry_max_s,
        suppress_for_s=settings.suppress_for_s, prefix=jobs.prefix,
    )  # fmt: skip


class ArchivePurge(Protocol):
    """What purging needs (worker.archive.purge.ArchivePurger implements it)."""

    def purge(self, digests: set[str]) -> Mapping[str, int]: ...


@dataclass(frozen=True)
class Done:
    step: Step
    outcome: str  # "started", "polled", "completed", "failed", "purged", "forgotten", "expired", "held", "error"
    detail: str = ""


def _error(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return str(error.get("Code", "ClientError")), str(error.get("Message", ""))[:500]
    return type(exc).__name__, str(exc)[:500]


class DeletionJobs:
    """One leader's deletion work; `tick(ledger)` runs the steps the planner gives."""

    def __init__(
        self,
        settings: PrivacySettings,
        *,
        personalize: Any,
        s3: Any,
        write: Callable[[list[Record]], object],
        publish: Publish,
        archive: ArchivePurge | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if settings.jobs is None:
            raise ValueError("privacy.jobs is not configured")
        self.settings = settings
        self.bucket = settings.jobs.bucket
        self.role_arn = settings.jobs.role_arn
        self.limits = limits_of(settings)
        self._personalize = personalize
        self._s3 = s3
        self._write = write
        self._publish = publish
        self._archive = archive
        self._clock = clock

    def tick(self, ledger: Ledger) -> list[Done]:
        now = self._clock()
        done = []
        for step in plan(ledger, self.settings.dataset_groups, now, self.limits, archive=self._archive is not None):
            try:
                done.append(self._run(step, ledger, now))
            except (ClientError, BotoCoreError, OSError) as exc:
                code, message = _error(exc)
                log.warning("privacy step failed; retried next tick", step=type(step).__name__, error_code=code,
                            error=message)  # fmt: skip
                done.append(Done(step, "error", f"{code}: {message}"))
        return done

    # -- steps -----------------------------------------------------------------------------------

    def _run(self, step: Step, ledger: Ledger, now: float) -> Done:
        if isinstance(step, StartJob):
            job = JobEntry(step.name, step.group_arn, tuple(u.digest for u in step.users), STARTING, now, now,
                           step.csv_key, attempt=step.attempt)  # fmt: skip
            self._write([(job.key, job.to_dict())])
            return self._create(job, list(step.users), now)
        if isinstance(step, PollJob):
            return self._poll(step.job, ledger, now)
        if isinstance(step, PurgeArchive):
            assert self._archive is not None
            counts = self._archive.purge(set(step.job.digests))
            self._write([job_update(step.job, archive_purged=True, updated_at=now)])
            self._publish("privacy.archive.purged", {"job": step.job.name, **counts})
            return Done(step, "purged", ", ".join(f"{k}={v}" for k, v in counts.items()))
        if isinstance(step, Forget):
            entry = step.entry
            forgotten = UserEntry(entry.digest, None, entry.requested_at, entry.recorded_at, forgotten_at=now)
            self._write([(forgotten.key, forgotten.to_dict())])
            self._publish("privacy.user.forgotten", {"user_digest": entry.digest, "requested_at": entry.requested_at})
            return Done(step, "forgotten")
        if isinstance(step, Expire):
            self._write([(step.key, None)])
            return Done(step, "expired")
        assert isinstance(step, Hold)
        return Done(step, "held", step.reason)

    def _create(self, job: JobEntry, users: list[UserEntry], now: float) -> Done:
        ids = [u.user_id for u in users if u.user_id is not None]
        self._s3.put_object(Bucket=self.bucket, Key=job.csv_key, Body=csv_input(ids), ContentType="text/csv")
        try:
            arn = self._personalize.create_data_deletion_job(
                jobName=job.name, datasetGroupArn=job.group_arn, roleArn=self.role_arn,
                dataSource={"dataLocation": f"s3://{self.bucket}/{job.csv_key}"},
            )["dataDeletionJobArn"]  # fmt: skip
        except ClientError as exc:
            code, message = _error(exc)
            if code == "ResourceAlreadyExistsException":
                found = self._find(job)
                if found is not None:
                    return self._record(job, found, now)
            # Refused (a job started outside this scheduler runs, a limit, bad input...): the
            # group backs off and the same users go into the next job.
            self._write([job_update(job, status=FAILED, failure=f"{code}: {message}", updated_at=now)])
            self._publish("privacy.job.failed", {"job": job.name, "dataset_group_arn": job.group_arn,
                                                 "error_code": code, "users": len(job.digests)})  # fmt: skip
            return Done(StartJob(job.group_arn, job.name, tuple(users), job.attempt, job.csv_key), "failed", code)
        self._write([job_update(job, status=PENDING, job_arn=str(arn), updated_at=now)])
        self._publish("privacy.job.started", {"job": job.name, "dataset_group_arn": job.group_arn,
                                              "job_arn": arn, "users": len(ids), "attempt": job.attempt})  # fmt: skip
        log.info("data deletion job started", job=job.name, dataset_group=job.group_arn, users=len(ids))
        return Done(PollJob(job), "started", str(arn))

    def _find(self, job: JobEntry) -> Mapping[str, Any] | None:
        """The job of this name in its dataset group, as Personalize lists it."""
        token = None
        while True:
            kwargs = {"datasetGroupArn": job.group_arn, **({"nextToken": token} if token else {})}
            page = self._personalize.list_data_deletion_jobs(**kwargs)
            for summary in page.get("dataDeletionJobs", []):
                if summary.get("jobName") == job.name:
                    return dict(summary)
            token = page.get("nextToken")
            if not token:
                return None

    def _record(self, job: JobEntry, found: Mapping[str, Any], now: float) -> Done:
        status = str(found.get("status", PENDING))
        self._write([job_update(job, status=status, job_arn=str(found["dataDeletionJobArn"]), updated_at=now,
                                failure=found.get("failureReason"),
                                completed_at=now if status == COMPLETED else None)])  # fmt: skip
        return Done(PollJob(job), "polled", status)

    def _poll(self, job: JobEntry, ledger: Ledger, now: float) -> Done:
        if job.job_arn is None:  # recorded STARTING, then the leader changed or crashed
            found = self._find(job)
            if found is not None:
                return self._record(job, found, now)
            users = [ledger.users[d] for d in job.digests if d in ledger.users]
            return self._create(job, users, now)
        described = self._personalize.describe_data_deletion_job(dataDeletionJobArn=job.job_arn)["dataDeletionJob"]
        status = str(described["status"])
        if status == job.status or status not in (PENDING, IN_PROGRESS, COMPLETED, FAILED):
            return Done(PollJob(job), "polled", status)
        failure = described.get("failureReason")
        self._write([job_update(job, status=status, updated_at=now, failure=failure,
                                completed_at=now if status == COMPLETED else None)])
        data = {"job": job.name, "dataset_group_arn": job.group_arn, "job_arn": job.job_arn, "users": len(job.digests)}
        if status == COMPLETED:
            self._s3.delete_object(Bucket=self.bucket, Key=job.csv_key)  # our last copy of the raw IDs
            self._publish("privacy.job.completed", {**data, "num_deleted": described.get("numDeleted")})
            log.info("data deletion job completed", job=job.name, num_deleted=described.get("numDeleted"))
            return Done(PollJob(job), "completed", str(described.get("numDeleted")))
        if status == FAILED:
            self._s3.delete_object(Bucket=self.bucket, Key=job.csv_key)  # the next attempt writes its own
            self._publish("privacy.job.failed", {**data, "failure_reason": failure})
            log.warning("data deletion job failed; retried after a backoff", job=job.name, failure_reason=failure)
            return Done(PollJob(job), "failed", str(failure))
        return Done(PollJob(job), "polled", status)
