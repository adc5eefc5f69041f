"""The S3 archive sink: every delivered interaction written as Personalize-importable CSV."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from worker.config.base import _Frozen

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def _bucket_name(value: str) -> str:
    if not _BUCKET.match(value):
        raise ValueError(f"not a valid S3 bucket name: {value!r}")
    return value


def _key_prefix(value: str) -> str:
    value = value.strip("/")
    return f"{value}/" if value else ""


#: An S3 bucket name (checked); a key prefix (normalised to "folder/", or "" for the root).
S3Bucket = Annotated[str, AfterValidator(_bucket_name)]
S3Prefix = Annotated[str, AfterValidator(_key_prefix)]

class ArchiveSettings(_Frozen):
    """The S3 archive of delivered interactions (the bulk path of Personalize).

    Objects are CSV with a header in the interactions schema's field order. With the
    default ``flat`` layout every object sits directly under `prefix`, because a
    Personalize import of a folder reads only the files at its first level; ``hive``
    writes ``prefix/dt=YYYY-MM-DD/hour=HH/`` folders (handy for Athena, but then import
    one folder at a time).
    """

    bucket: S3Bucket = Field(description="S3 bucket the archive is written to.")
    prefix: S3Prefix = Field("interactions/", description="Key prefix (a folder); '' for the bucket root.")
    gzip: bool = Field(False, description="gzip each object (.csv.gz).")
    flush_rows: int = Field(50_000, ge=1, description="Write an object once this many rows are buffered.")
    flush_seconds: float = Field(300.0, gt=0, description="Write buffered rows at least this often.")
    max_buffer_rows: int = Field(
        500_000, ge=1, description="While S3 fails, keep at most this many rows; older ones are dropped (and counted)."
    )
    layout: Literal["flat", "hive"] = Field(
        "flat", description="flat: prefix/part-...; hive: prefix/dt=/hour=/part-..."
    )
    anonymous: Literal["session", "skip"] = Field(
        "session",
        description="Events without a userId: 'session' writes the sessionId as USER_ID (what PutEvents "
        "trains on for anonymous sessions); 'skip' leaves them out.",
    )
    schema_file: Path | None = Field(None, description="Interactions schema; default schemas/interactions.json.")
    s3_endpoint_url: str | None = Field(None, description="Override (AWS_ENDPOINT_URL_S3 works too).")
    region: str | None = Field(None, description="Default: AWS_REGION / AWS_DEFAULT_REGION.")

    @model_validator(mode="after")
    def _check_buffer(self) -> ArchiveSettings:
        if self.max_buffer_rows < self.flush_rows:
            raise ValueError("max_buffer_rows must be at least flush_rows")
        return self

    @property
    def data_location(self) -> str:
        """What CreateDatasetImportJob's dataSource.dataLocation should name (a folder)."""
        return f"s3://{self.bucket}/{self.prefix}"
