"""Data deletion jobs: statuses, the queue, the documented limits and the input file (pure).

From the API reference (CreateDataDeletionJob, DataDeletionJob) and the developer guide
(delete-records, "Guidelines and requirements"):

* statuses ``PENDING`` > ``IN_PROGRESS`` > ``COMPLETED`` or ``FAILED`` (no ``CREATE``
  prefix, unlike the other resources); ``numDeleted`` is "the number of records deleted by
  a COMPLETED job", ``failureReason`` says why a FAILED one failed;
* "You can have a maximum of 5 deletion jobs with a status of PENDING for a dataset
  group": a sixth PENDING one is LimitExceededException (the code the service uses for
  its other "more than 5 ... PENDING" limits);
* jobs of one dataset group run one at a time, oldest first, and wait PENDING meanwhile
  (the reference's "one running job per dataset group"; five may be PENDING, so a second
  job is queued, not refused);
* the input is a CSV file "with a single USER_ID column"; "the maximum total size of one
  or more data deletion input files is 100 MB";
* the guide asks that no training, batch or import job (bulk or individual) run while a
  deletion job does. The service does not refuse them, and neither does the stand-in: it
  lists the import jobs and trainings of the group that overlapped the job (`overlapping`)
  in the inspection API, and records stored after the job started are not deleted
  (`erasure`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Final

from clickstream_devkit.personalize.control import resource as kinds
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.resource import Resource

PENDING: Final = "PENDING"
IN_PROGRESS: Final = "IN_PROGRESS"
COMPLETED: Final = "COMPLETED"
FAILED: Final = "FAILED"
#: Statuses in which a job still has work to do (and holds its dataset group).
BUSY: Final = frozenset({PENDING, IN_PROGRESS})
MAX_PENDING_PER_GROUP: Final = 5
#: "100 MB" of input in total, read as mebibytes (the larger reading: never refuse what AWS may accept).
MAX_INPUT_BYTES: Final = 100 * 1024 * 1024
MAX_USER_ID_CHARS: Final = 256
#: How many of a job's user IDs the inspection API shows.
SHOWN_USERS: Final = 1000


class DeletionFailure(Exception):  # noqa: N818 - it is the job's failureReason, not a bug
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_user_ids(files: Sequence[tuple[str, bytes]]) -> frozenset[str]:
    """The user IDs of the input files (each a CSV with one USER_ID column); raise `DeletionFailure`.

    The header is compared ignoring case and surrounding spaces, as for import jobs; blank
    lines are skipped; an ID has 1-256 characters; malformed quoting fails (strict CSV). A
    header-only file lists no users.
    """
    if not files:
        raise DeletionFailure("No data deletion input file found at the data location.")
    total = sum(len(content) for _, content in files)
    if total > MAX_INPUT_BYTES:
        raise DeletionFailure(f"The input files hold {total} bytes; a data deletion job reads at most 100 MB.")
    users: set[str] = set()
    for name, content in files:
        users.update(_file_user_ids(name, content))
    return frozenset(users)


def _file_user_ids(name: str, content: bytes) -> list[str]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DeletionFailure(f"{name}: the file is not UTF-8 ({exc.reason} at byte {exc.start}).") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise DeletionFailure(f"{name}: the file is empty; it needs a USER_ID header row.")
        if [h.strip().upper() for h in header] != ["USER_ID"]:
            raise DeletionFailure(f"{name}: the CSV header {header} must be a single USER_ID column.")
        out: list[str] = []
        for row in reader:
            if not row or (len(row) == 1 and row[0] == ""):
                continue
            where = f"{name}: line {reader.line_num}"
            if len(row) != 1:
                raise DeletionFailure(f"{where} has {len(row)} values; the file has a single USER_ID column.")
            if len(row[0]) > MAX_USER_ID_CHARS:
                raise DeletionFailure(f"{where}: a USER_ID has at most {MAX_USER_ID_CHARS} characters.")
            out.append(row[0])
        return out
    except csv.Error as exc:
        raise DeletionFailure(f"{name}: line {reader.line_num} is not valid CSV ({exc}).") from None


def pending_in_group(jobs: Iterable[Resource], group_arn: str) -> int:
    return sum(j.kind == kinds.DATA_DELETION_JOB and j.parent == group_arn and j.status == PENDING for j in jobs)


def may_start(job: Resource, jobs: Iterable[Resource]) -> bool:
    """A PENDING job starts when no job of its group runs and no older one of its group waits."""
    if job.status != PENDING:
        return False
    for other in jobs:
        if other.kind != kinds.DATA_DELETION_JOB or other.parent != job.parent or other.arn == job.arn:
            continue
        if other.status == IN_PROGRESS or (other.status == PENDING and other.sort_key() < job.sort_key()):
            return False
    return True


def waiting_in_group(jobs: Iterable[Resource], group_arn: str | None) -> list[Resource]:
    """The group's PENDING jobs, oldest first (the order they run in)."""
    waiting = [j for j in jobs if j.kind == kinds.DATA_DELETION_JOB and j.parent == group_arn and j.status == PENDING]
    return sorted(waiting, key=lambda j: j.sort_key())


def overlapping(job: Resource, resources: Iterable[Resource], until: float) -> list[str]:
    """Import jobs and trainings of the job's group that ran while it was PENDING or IN_PROGRESS.

    A resource's busy span runs from its creation to its last update once it is in a final
    status (still open while it is busy); the job's span from its creation to `until`.
    """
    group = job.parent
    resources = list(resources)
    datasets = {r.arn for r in resources if r.kind == kinds.DATASET and r.parent == group}
    out: list[str] = []
    for r in sorted(resources, key=lambda r: r.sort_key()):
        if r.kind == kinds.IMPORT_JOB and r.parent in datasets:
            label = "import job"
        elif r.kind == kinds.SOLUTION_VERSION and r.doc.get("datasetGroupArn") == group:
            label = "training"
        else:
            continue
        end = float("inf") if r.status in st.BUSY else r.updated
        if r.created <= until and end >= job.created:
            out.append(f"{label} {r.arn} ({r.status}) ran during the data deletion job")
    return out


def bulk_jobs_before(resources: Iterable[Resource], dataset_arns: Iterable[str], cutoff: float) -> frozenset[str]:
    """Import jobs of the datasets that were ACTIVE by `cutoff`: their bulk rows are the job's to delete."""
    wanted = set(dataset_arns)
    return frozenset(
        r.arn
        for r in resources
        if r.kind == kinds.IMPORT_JOB and r.parent in wanted and r.status == st.ACTIVE and r.updated <= cutoff
    )
