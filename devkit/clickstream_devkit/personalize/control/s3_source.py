"""Reading an import job's ``dataLocation`` from S3, and writing batch output, with boto3 (job threads).

``dataLocation`` is one object (``s3://bucket/data.csv``) or a folder: a prefix ending in
``/``, whose objects are all read, in key order (contract §8.4). The S3 endpoint is
``--s3-endpoint-url`` when given, else whatever boto3 resolves (``AWS_ENDPOINT_URL_S3``
or ``AWS_ENDPOINT_URL`` are honoured by boto3 itself), so tests point it at moto.
The stand-in does not assume the job's ``roleArn``; it reads with its own credentials.
"""

from __future__ import annotations

from typing import Any, Final

from clickstream_devkit.personalize.control.csv_import import ImportFailure

#: Largest total size read for one job (the real INCREMENTAL limit is 1 GB; a stand-in needs less).
MAX_TOTAL_BYTES: Final = 512 * 1024 * 1024


def split_location(location: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); raise ImportFailure for anything else."""
    scheme, _, rest = location.partition("://")
    if scheme != "s3":
        raise ImportFailure(f"Data location {location} is not supported by local-personalize: use an s3:// location.")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ImportFailure(f"Data location {location} names no bucket.")
    return bucket, key


def read_location(
    location: str, *, endpoint_url: str | None, region: str, max_bytes: int = MAX_TOTAL_BYTES
) -> list[tuple[str, bytes]]:
    """The object(s) at `location` as (``s3://`` URI, bytes) pairs; more than `max_bytes` in total fails.

    Sizes are checked before the bodies are read (the listing's ``Size``, the object's
    ``ContentLength``), so an oversized input costs no download.
    """
    import boto3  # noqa: PLC0415 - only import jobs need it
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    bucket, key = split_location(location)
    # A session per job: import jobs run in parallel threads, and boto3's default session is not thread-safe.
    client: Any = boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region)
    try:
        if key and not key.endswith("/"):
            response = client.get_object(Bucket=bucket, Key=key)
            _check_size(location, int(response.get("ContentLength") or 0), max_bytes)
            return [(location, bytes(response["Body"].read()))]
        sizes: dict[str, int] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            sizes.update((obj["Key"], int(obj.get("Size", 0))) for obj in page.get("Contents", []))
        keys = sorted(k for k in sizes if not k.endswith("/"))
        _check_size(location, sum(sizes[k] for k in keys), max_bytes)
        return [(f"s3://{bucket}/{k}", bytes(client.get_object(Bucket=bucket, Key=k)["Body"].read())) for k in keys]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise ImportFailure(
            f"Cannot read {location}: {error.get('Code', 'error')} {error.get('Message', '')}".strip()
        ) from None
    except BotoCoreError as exc:
        raise ImportFailure(f"Cannot read {location}: {exc}") from None


def _check_size(location: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise ImportFailure(f"The data at {location} is {size} bytes; this job reads at most {max_bytes} bytes.")


def write_object(uri: str, data: bytes, *, endpoint_url: str | None, region: str) -> None:
    """Put `data` at ``s3://bucket/key`` (a batch inference job's output); raises ImportFailure."""
    import boto3  # noqa: PLC0415 - only jobs need it
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    bucket, key = split_location(uri)
    client: Any = boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region)
    try:
        client.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/json")
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise ImportFailure(
            f"Cannot write {uri}: {error.get('Code', 'error')} {error.get('Message', '')}".strip()
        ) from None
    except BotoCoreError as exc:
        raise ImportFailure(f"Cannot write {uri}: {exc}") from None
