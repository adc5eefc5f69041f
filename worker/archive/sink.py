"""The archive sink: every delivered interaction, buffered and written to S3 as CSV objects.

Contract with the pipeline (all on the event-loop thread):

* ``add_nowait(interactions)`` after PutEvents acknowledged them (a plain callback can call
  it); ``await add(...)`` does the same and waits for the write it triggered;
* an object is written when ``flush_rows`` rows are buffered or the oldest buffered row
  is ``flush_seconds`` old (a timer task started on first use);
* ``await close()`` at shutdown writes what is left.

Rows are encoded to CSV when they arrive (cheap; the interaction objects are not kept);
S3 writes run in a worker thread with boto3 (the event loop never blocks on S3), one at
a time so objects appear in order. A failed write keeps its rows and retries on the next
flush; while S3 keeps failing the buffer is capped at ``max_buffer_rows`` and the oldest
rows are dropped and counted (``clickstream_archive_rows_dropped_total``): the archive is a
secondary copy — the events already reached Personalize — so it must never stall ingestion.
"""

from __future__ import annotations

import asyncio
import gzip as gzip_lib
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import boto3
import structlog
from botocore.config import Config
from prometheus_client import CollectorRegistry, Counter

from worker.archive.csv import ArchiveColumns, encode_rows, object_body, object_key
from worker.config.archive import ArchiveSettings
from worker.config.privacy import DeletionJobSettings
from worker.records import Interaction
from worker.schemas import DatasetSchema, load_schema

log = structlog.get_logger(__name__)


class ArchiveMetrics:
    """Counters of the archive sink, on the worker's registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.rows = Counter("clickstream_archive_rows", "Interactions written to the S3 archive.", registry=r)
        self.skipped = Counter(
            "clickstream_archive_rows_skipped", "Interactions not archivable (no item, or anonymous with skip).",
            registry=r,
        )  # fmt: skip
        self.dropped = Counter(
            "clickstream_archive_rows_dropped", "Rows dropped because S3 kept failing and the buffer was full.",
            registry=r,
        )  # fmt: skip
        self.objects = Counter("clickstream_archive_objects", "Objects written to S3.", registry=r)
        self.failures = Counter("clickstream_archive_write_failures", "Failed S3 object writes.", registry=r)


def s3_client(settings: ArchiveSettings | DeletionJobSettings) -> Any:
    """The archive's boto3 S3 client, standard retries and bounded timeouts (the sink retries whole
    flushes on top); the privacy jobs write their CSV inputs and purge the archive through it too."""
    return boto3.client(
        "s3",
        region_name=settings.region,
        endpoint_url=settings.s3_endpoint_url,
        config=Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=30),
    )


class ArchiveSink:
    """Buffers CSV rows and writes them to S3 by size and by age."""

    def __init__(
        self,
        settings: ArchiveSettings,
        *,
        schema: DatasetSchema | None = None,
        client: Any = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        if schema is None:
            from worker.config import DEFAULT_SCHEMA_DIR  # noqa: PLC0415 - worker.config may import this package

            schema = load_schema(settings.schema_file or DEFAULT_SCHEMA_DIR / "interactions.json")
        self.columns = ArchiveColumns.from_schema(schema, settings.anonymous)
        self.metrics = ArchiveMetrics(registry)
        self._client = client
        self._clock = clock
        self._lines: deque[tuple[str, int]] = deque()  # (CSV text, row count), oldest first
        self._rows = 0
        self._oldest: float | None = None
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._closed = False
        #: Keys of the objects written, in order (for logs, tests and the status command).
        self.written: list[str] = []

    @property
    def buffered_rows(self) -> int:
        return self._rows

    # -- intake -------------------------------------------------------------------------------

    def add_nowait(self, interactions: Iterable[Interaction]) -> None:
        """Buffer delivered interactions; schedule a write when the size threshold is reached."""
        if self._closed:
            raise RuntimeError("the archive sink is closed")
        encoded = encode_rows(self.columns, interactions)
        if encoded.skipped:
            self.metrics.skipped.inc(encoded.skipped)
        if encoded.rows:
            self._lines.append((encoded.text, encoded.rows))
            self._rows += encoded.rows
            if self._oldest is None:
                self._oldest = self._clock()
            self._trim()
        self._ensure_timer()
        if self._rows >= self.settings.flush_rows:
            task = asyncio.get_running_loop().create_task(self.flush())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def add(self, interactions: Iterable[Interaction]) -> None:
        """`add_nowait`, then wait for the write it triggered (if any)."""
        self.add_nowait(interactions)
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def _trim(self) -> None:
        """Drop the oldest chunks while over the cap (only grows while S3 fails)."""
        while self._rows > self.settings.max_buffer_rows and len(self._lines) > 1:
            _, rows = self._lines.popleft()
            self._rows -= rows
            self.metrics.dropped.inc(rows)
            log.error("archive buffer full; dropped the oldest rows", rows=rows, cap=self.settings.max_buffer_rows)

    # -- writing ------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write everything buffered as one object (no-op when empty). Never raises for S3 errors."""
        async with self._lock:
            if not self._lines:
                return
            chunks = list(self._lines)
            self._lines.clear()
            rows, self._rows, oldest, self._oldest = self._rows, 0, self._oldest, None
            key = object_key(
                self.settings.prefix, self._clock(), uuid.uuid4().hex,
                layout=self.settings.layout, gzip=self.settings.gzip,
            )  # fmt: skip
            body = object_body(self.columns, (text for text, _ in chunks))
            try:
                await asyncio.to_thread(self._put, key, body)
            except Exception as exc:  # noqa: BLE001 - any S3/network failure: keep the rows, retry later
                self.metrics.failures.inc()
                self._lines.extendleft(reversed(chunks))
                self._rows += rows
                self._oldest = min(t for t in (oldest, self._oldest, self._clock()) if t is not None)
                self._trim()
                log.warning("archive write failed; rows kept for the next flush", key=key, rows=rows, error=str(exc))
                return
            self.written.append(key)
            self.metrics.rows.inc(rows)
            self.metrics.objects.inc()
            log.info("archive object written", bucket=self.settings.bucket, key=key, rows=rows, bytes=len(body))

    def _put(self, key: str, body: bytes) -> None:
        if self._client is None:
            self._client = s3_client(self.settings)
        extra: dict[str, Any] = {"ContentType": "text/csv"}
        if self.settings.gzip:
            body = gzip_lib.compress(body, compresslevel=6)
            extra["ContentEncoding"] = "gzip"
            extra["ContentType"] = "application/gzip"
        self._client.put_object(Bucket=self.settings.bucket, Key=key, Body=body, **extra)

    def _ensure_timer(self) -> None:
        if self._timer is None or self._timer.done():
            self._timer = asyncio.get_running_loop().create_task(self._age_loop(), name="archive-age-flush")

    async def _age_loop(self) -> None:
        """Flush when the oldest buffered row reaches ``flush_seconds``."""
        period = self.settings.flush_seconds
        while not self._closed:
            oldest = self._oldest
            delay = period if oldest is None else max(0.05, oldest + period - self._clock())
            await asyncio.sleep(min(delay, period))
            if self._oldest is not None and self._clock() - self._oldest >= period:
                await self.flush()

    async def close(self) -> None:
        """Write what is buffered and stop the timer. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        await self.flush()
