"""Forgetting users in the S3 archive: every object rewritten without their rows.

Personalize's data deletion job touches nothing outside Personalize, so our own copy of
the interactions — the archive — is purged after each job: every object under the
archive prefix is read, the rows whose USER_ID belongs to a forgotten user (matched by
the ledger's keyed digest) are dropped, and the object is written back under the same key
(same encoding, same compression) only if a row was dropped. Rows written later cannot
hold those users: the worker suppresses their events from the moment the request is
recorded, and the archive sink skips suppressed users at flush time too.

`purge_body` is pure (bytes in, bytes out); `ArchivePurger` lists and rewrites objects.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Purged:
    body: bytes | None  # None: nothing to remove, leave the object as it is
    removed: int
    kept: int


def purge_body(body: bytes, is_forgotten: Callable[[str], bool], *, gzipped: bool) -> Purged:
    """The object without the rows of forgotten users (header kept, row encoding unchanged)."""
    text = (gzip.decompress(body) if gzipped else body).decode("utf-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or "USER_ID" not in header:
        return Purged(None, 0, 0)
    user = header.index("USER_ID")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    removed = kept = 0
    for row in reader:
        if len(row) > user and is_forgotten(row[user]):
            removed += 1
            continue
        writer.writerow(row)
        kept += 1
    if not removed:
        return Purged(None, 0, kept)
    data = (",".join(header) + "\n" + out.getvalue()).encode("utf-8")
    return Purged(gzip.compress(data) if gzipped else data, removed, kept)


class ArchivePurger:
    """Rewrites the archive's objects without the rows of the given users (by digest)."""

    def __init__(self, s3: Any, bucket: str, prefix: str, digest: Callable[[str], str]) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self._digest = digest

    def purge(self, digests: set[str]) -> dict[str, int]:
        counts = {"objects_read": 0, "objects_rewritten": 0, "rows_removed": 0}
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                key = str(obj["Key"])
                if not key.endswith((".csv", ".csv.gz")):
                    continue
                counts["objects_read"] += 1
                body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                result = purge_body(body, lambda u: self._digest(u) in digests, gzipped=key.endswith(".gz"))
                if result.body is None:
                    continue
                # Same key: an object that still held the rows is replaced whole (S3 writes are atomic).
                self._s3.put_object(Bucket=self.bucket, Key=key, Body=result.body)
                counts["objects_rewritten"] += 1
                counts["rows_removed"] += result.removed
        log.info("archive purged of forgotten users", users=len(digests), **counts)
        return counts
