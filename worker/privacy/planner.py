"""What the scheduler's leader does next for deletions, from the ledger alone (pure).

Per dataset group, one data deletion job at a time (Personalize's safe reading: one
running job per group, at most five pending): while one runs it is polled; otherwise the
users recorded at least ``propagation_s`` ago (every replica suppresses them by then) and
not yet deleted from that group form the next job — once the oldest has waited
``batch_wait_s`` or ``max_users_per_job`` are waiting. After a failed job the group backs
off (``retry_initial_s``, doubling per consecutive failure, at most ``retry_max_s``) and the
same users go into the next job.

Across groups: a user deleted from every group, with the archive purged of them, is
*forgotten* (their ID removed from the ledger; the digest keeps suppressing their
records for ``suppress_for_s``); then the entry expires. A job whose users are all gone
from the ledger is removed too (the newest job of each group stays: the scheduler trains
after it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from worker.privacy.ledger import COMPLETED, FAILED, JobEntry, Ledger, UserEntry

#: Personalize job names: 1-63 characters, [a-zA-Z0-9][a-zA-Z0-9-_]*.
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


@dataclass(frozen=True)
class Limits:
    max_users_per_job: int
    batch_wait_s: float
    propagation_s: float
    retry_initial_s: float
    retry_max_s: float
    suppress_for_s: float
    prefix: str = ""  # S3 key prefix of the CSV inputs


@dataclass(frozen=True)
class StartJob:
    group_arn: str
    name: str
    users: tuple[UserEntry, ...]
    attempt: int
    csv_key: str


@dataclass(frozen=True)
class PollJob:
    job: JobEntry


@dataclass(frozen=True)
class PurgeArchive:
    job: JobEntry


@dataclass(frozen=True)
class Forget:
    entry: UserEntry


@dataclass(frozen=True)
class Expire:
    key: str


@dataclass(frozen=True)
class Hold:
    """Nothing to do for the group until `until` (None: until a new request arrives)."""

    group_arn: str
    reason: str
    until: float | None = None


Step = StartJob | PollJob | PurgeArchive | Forget | Expire | Hold


def group_name(group_arn: str) -> str:
    return group_arn.rsplit("/", 1)[-1]


def job_name(group_arn: str, now: float, digests: Sequence[str]) -> str:
    """`forget-<group>-<epoch s>-<8 hex of the users>`: unique per group and second, ≤ 63 chars."""
    tag = hashlib.sha256("\n".join(digests).encode()).hexdigest()[:8]
    group = "".join(c for c in group_name(group_arn) if c in _NAME_CHARS)[:32]
    return f"forget-{group}-{int(now)}-{tag}"


def backoff_s(failures: int, limits: Limits) -> float:
    return min(limits.retry_max_s, limits.retry_initial_s * 2.0 ** max(0, failures - 1))


def _trailing_failures(jobs: Sequence[JobEntry]) -> list[JobEntry]:
    out: list[JobEntry] = []
    for job in reversed(jobs):
        if job.status != FAILED:
            break
        out.append(job)
    return out


def plan_group(ledger: Ledger, group_arn: str, now: float, limits: Limits) -> list[Step]:
    running = ledger.running_job(group_arn)
    if running is not None:
        return [PollJob(running)]
    pending = sorted(
        (
            e
            for e in ledger.users.values()
            if e.user_id is not None
            and e.forgotten_at is None
            and e.recorded_at + limits.propagation_s <= now
            and ledger.covered(group_arn, e) is None
        ),
        key=lambda e: (e.recorded_at, e.digest),
    )
    if not pending:
        return []
    failures = _trailing_failures(ledger.jobs_of(group_arn))
    if failures:
        until = failures[0].updated_at + backoff_s(len(failures), limits)
        if now < until:
            return [Hold(group_arn, f"{len(failures)} failed deletion job(s); retrying after a backoff", until)]
    oldest = pending[0].recorded_at
    if len(pending) < limits.max_users_per_job and now < oldest + limits.batch_wait_s:
        return [Hold(group_arn, "collecting requests into one job", oldest + limits.batch_wait_s)]
    users = tuple(pending[: limits.max_users_per_job])
    name = job_name(group_arn, now, [u.digest for u in users])
    return [StartJob(group_arn, name, users, len(failures) + 1, f"{limits.prefix}{group_name(group_arn)}/{name}.csv")]


def plan(ledger: Ledger, groups: Sequence[str], now: float, limits: Limits, *, archive: bool) -> list[Step]:
    """Every step due now: jobs per group, archive purges, forgetting, expiry."""
    steps: list[Step] = []
    for group in groups:
        steps += plan_group(ledger, group, now, limits)
        if archive:
            steps += [PurgeArchive(j) for j in ledger.jobs_of(group) if j.status == COMPLETED and not j.archive_purged]
    for entry in sorted(ledger.users.values(), key=lambda e: e.digest):
        if entry.forgotten_at is None:
            covering = [ledger.covered(g, entry) for g in groups]
            if groups and all(j is not None and (j.archive_purged or not archive) for j in covering):
                steps.append(Forget(entry))
        elif now >= entry.forgotten_at + limits.suppress_for_s:
            steps.append(Expire(entry.key))
    steps += [Expire(j.key) for j in _finished_jobs(ledger, groups)]
    return steps


def _finished_jobs(ledger: Ledger, groups: Sequence[str]) -> list[JobEntry]:
    """Jobs no user entry needs any more, except each group's newest job."""
    open_digests = {d for d, e in ledger.users.items() if e.forgotten_at is None}
    newest = {jobs[-1].name for g in groups if (jobs := ledger.jobs_of(g))}
    return [
        j
        for j in sorted(ledger.jobs.values(), key=lambda j: j.name)
        if not j.running and j.name not in newest and not (set(j.digests) & open_digests)
    ]
