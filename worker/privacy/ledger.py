"""The privacy ledger: deletion requests and deletion jobs as every replica sees them (pure).

The state topic (compacted) holds two kinds of keyed JSON records, and this module folds
them into a `Ledger`:

* ``user/<digest>``: one deletion request — the user ID (until every dataset group has
  deleted the user; then it is removed from the record), when it was requested and when
  it was recorded. Written by whichever replica consumed the request (intake), and
  rewritten once by the scheduler's leader when the user is forgotten everywhere;
* ``job/<name>``: one data deletion job — its dataset group, the digests of its users,
  its status, and whether the S3 archive was purged of those users. Written only by the
  scheduler's leader.

A null value (tombstone) removes a record. Users are known by a keyed digest of their ID
(`user_digest`), so the ledger keeps no raw ID once a user is forgotten, and events are
matched against it without the raw IDs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

USER_PREFIX = "user/"
JOB_PREFIX = "job/"
FORMAT_VERSION = 1

#: Job statuses. STARTING: recorded by the leader before CreateDataDeletionJob answered (a
#: crash then leaves a job to look up by name). The others are Personalize's.
STARTING = "STARTING"
PENDING = "PENDING"
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
RUNNING = frozenset({STARTING, PENDING, IN_PROGRESS})


def user_digest(user_id: str, key: bytes = b"") -> str:
    """The ledger's name for a user: BLAKE2b-128 of the ID, keyed with `privacy.digest_key`."""
    return hashlib.blake2b(user_id.encode("utf-8"), key=key[:64], digest_size=16).hexdigest()


@dataclass(frozen=True)
class UserEntry:
    digest: str
    user_id: str | None  # None once forgotten in every dataset group
    requested_at: float
    recorded_at: float
    forgotten_at: float | None = None  # when the last job covering the user completed

    @property
    def key(self) -> str:
        return USER_PREFIX + self.digest

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, "user_id": self.user_id, "requested_at": self.requested_at,
                "recorded_at": self.recorded_at, "forgotten_at": self.forgotten_at}  # fmt: skip

    @classmethod
    def from_dict(cls, digest: str, data: Mapping[str, Any]) -> UserEntry:
        user_id = data.get("user_id")
        forgotten = data.get("forgotten_at")
        return cls(digest, None if user_id is None else str(user_id), float(data["requested_at"]),
                   float(data["recorded_at"]), None if forgotten is None else float(forgotten))  # fmt: skip


@dataclass(frozen=True)
class JobEntry:
    name: str
    group_arn: str
    digests: tuple[str, ...]
    status: str
    created_at: float
    updated_at: float
    csv_key: str
    job_arn: str | None = None
    attempt: int = 1  # consecutive failed jobs of this group before this one, plus one
    failure: str | None = None
    archive_purged: bool = False
    #: When the job was seen COMPLETED. Not `updated_at`, which later steps (the archive purge) move on:
    #: the scheduler trains once after this time, and a moving mark would make it train again.
    completed_at: float | None = None

    @property
    def key(self) -> str:
        return JOB_PREFIX + self.name

    @property
    def running(self) -> bool:
        return self.status in RUNNING

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION, "group_arn": self.group_arn, "digests": list(self.digests),
            "status": self.status, "created_at": self.created_at, "updated_at": self.updated_at,
            "csv_key": self.csv_key, "job_arn": self.job_arn, "attempt": self.attempt, "failure": self.failure,
            "archive_purged": self.archive_purged, "completed_at": self.completed_at,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> JobEntry:
        return cls(
            name=name, group_arn=str(data["group_arn"]), digests=tuple(str(d) for d in data["digests"]),
            status=str(data["status"]), created_at=float(data["created_at"]), updated_at=float(data["updated_at"]),
            csv_key=str(data["csv_key"]), job_arn=None if data.get("job_arn") is None else str(data["job_arn"]),
            attempt=int(data.get("attempt", 1)),
            failure=None if data.get("failure") is None else str(data["failure"]),
            archive_purged=bool(data.get("archive_purged", False)),
            completed_at=None if data.get("completed_at") is None else float(data["completed_at"]),
        )  # fmt: skip


Record = tuple[str, dict[str, Any] | None]
"""(key, JSON value or None for a tombstone): what is written to the state topic."""


def encode(record: Record) -> tuple[bytes, bytes | None]:
    key, value = record
    return key.encode(), None if value is None else json.dumps(value, sort_keys=True).encode()


@dataclass
class Ledger:
    """Users and jobs by key; `apply` folds state-topic records in topic order."""

    users: dict[str, UserEntry] = field(default_factory=dict)
    jobs: dict[str, JobEntry] = field(default_factory=dict)
    unreadable: int = 0

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            self.unreadable += 1
            return
        name = key.decode("utf-8", "replace")
        try:
            data = None if value is None else json.loads(value)
            if data is not None and (not isinstance(data, dict) or int(data.get("format", 0)) > FORMAT_VERSION):
                raise ValueError("unknown format")
            if name.startswith(USER_PREFIX):
                digest = name[len(USER_PREFIX) :]
                if data is None:
                    self.users.pop(digest, None)
                else:
                    self.users[digest] = UserEntry.from_dict(digest, data)
            elif name.startswith(JOB_PREFIX):
                job = name[len(JOB_PREFIX) :]
                if data is None:
                    self.jobs.pop(job, None)
                else:
                    self.jobs[job] = JobEntry.from_dict(job, data)
            else:
                self.unreadable += 1
        except (ValueError, KeyError, TypeError):
            self.unreadable += 1

    def apply_all(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> Ledger:
        for key, value in records:
            self.apply(key, value)
        return self

    # -- what replicas ask -------------------------------------------------------------------

    def suppressed(self, digest: str, now: float, suppress_for_s: float) -> bool:
        """Whether this user's records must not be sent: requested, and not expired."""
        entry = self.users.get(digest)
        if entry is None:
            return False
        return entry.forgotten_at is None or now < entry.forgotten_at + suppress_for_s

    def running_job(self, group_arn: str) -> JobEntry | None:
        running = [j for j in self.jobs.values() if j.group_arn == group_arn and j.running]
        return min(running, key=lambda j: j.created_at) if running else None

    def jobs_of(self, group_arn: str) -> list[JobEntry]:
        """The group's jobs, oldest first."""
        return sorted((j for j in self.jobs.values() if j.group_arn == group_arn), key=lambda j: (j.created_at, j.name))

    def covered(self, group_arn: str, entry: UserEntry) -> JobEntry | None:
        """The COMPLETED job of this group that deleted the user after this request was
        recorded (a job from before a repeated request does not count)."""
        for job in reversed(self.jobs_of(group_arn)):
            if job.status == COMPLETED and job.created_at >= entry.recorded_at and entry.digest in job.digests:
                return job
        return None

    def last_completed(self, group_arn: str) -> float | None:
        """When the group's newest COMPLETED job finished (the scheduler trains after it)."""
        times = [j.completed_at if j.completed_at is not None else j.updated_at
                 for j in self.jobs_of(group_arn) if j.status == COMPLETED]
        return max(times, default=None)

    def counts(self, groups: Iterable[str], now: float, suppress_for_s: float) -> dict[str, int]:
        """Users by state, for metrics and `privacy status`: requested (in no job yet anywhere),
        in_job (some group's job runs for them), forgotten (every group done), expired."""
        groups = list(groups)
        in_jobs = {d for j in self.jobs.values() if j.running for d in j.digests}
        out = {"requested": 0, "in_job": 0, "partly_deleted": 0, "forgotten": 0, "expired": 0}
        for digest, entry in self.users.items():
            if entry.forgotten_at is not None:
                out["forgotten" if self.suppressed(digest, now, suppress_for_s) else "expired"] += 1
            elif digest in in_jobs:
                out["in_job"] += 1
            elif any(self.covered(g, entry) for g in groups):
                out["partly_deleted"] += 1
            else:
                out["requested"] += 1
        return out


def with_request(ledger: Ledger, user_id: str, digest: str, requested_at: float, now: float) -> Record | None:
    """The record the intake writes for a request; None when the user's request is already
    recorded and still open (the earliest request time is kept)."""
    entry = ledger.users.get(digest)
    if entry is not None and entry.forgotten_at is None and entry.user_id is not None:
        return None
    new = UserEntry(digest, user_id, requested_at, now)
    return new.key, new.to_dict()


def job_update(job: JobEntry, **changes: Any) -> Record:
    updated = replace(job, **changes)
    return updated.key, updated.to_dict()
