"""Observing the real state: boto3 ``personalize`` responses and Kafka offsets -> `Observation`.

The parse functions are pure (a response dict in, a frozen view out), so they are
unit-tested against the shapes botocore's service model defines. `PersonalizeObserver`
makes the calls of one tick:

* DescribeSolution (``performAutoTraining``, recipe, status);
* ListSolutionVersions, every page: the policy must see every version, or it could
  start a training while one is in flight;
* GetSolutionMetrics for every ACTIVE version (candidates and served versions alike).
  Metrics of an ACTIVE version never change, so they are cached (a follower fills its
  cache from the leader's published observations, so a failover does not refetch them);
  a failed fetch leaves ``metrics=None`` (the gate waits) and is retried next tick;
* DescribeCampaign per configured campaign (``latestCampaignUpdate`` included); a
  missing campaign is simply absent (its first promotion creates it);
* ListDatasetImportJobs of the archive dataset when an archive import is configured.

`VolumeCounter` counts records appended to the input topics since a point in time:
``offsets_for_times`` gives the first offset at or after it, ``end_offsets`` the end.
Anything with its two methods (`InteractionCounter`) can stand in for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

import structlog
from botocore.exceptions import BotoCoreError, ClientError
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from worker.config.solutions import SolutionSchedule
from worker.schedule.state import (
    ACTIVE,
    FULL,
    CampaignView,
    ImportView,
    Memory,
    Observation,
    SolutionView,
    UpdateView,
    VersionView,
)

log = structlog.get_logger(__name__)


class ObserveError(RuntimeError):
    """The tick cannot see enough to decide (e.g. DescribeSolution failed)."""


def epoch(value: Any) -> float | None:
    """botocore gives datetimes; the local stand-in or a test may give numbers."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError, else the exception's class name."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "ClientError")
    return type(exc).__name__


# -- pure parsing --------------------------------------------------------------------------


def solution_view(solution: Mapping[str, Any]) -> SolutionView:
    return SolutionView(
        arn=str(solution["solutionArn"]),
        status=str(solution.get("status", ACTIVE)),
        recipe_arn=solution.get("recipeArn"),
        perform_auto_training=bool(solution.get("performAutoTraining", False)),
        dataset_group_arn=solution.get("datasetGroupArn"),
    )


def version_view(summary: Mapping[str, Any], metrics: Mapping[str, float] | None = None) -> VersionView:
    """A ListSolutionVersions summary (or a DescribeSolutionVersion document)."""
    return VersionView(
        arn=str(summary["solutionVersionArn"]),
        status=str(summary["status"]),
        training_mode=str(summary.get("trainingMode") or FULL),
        created_at=epoch(summary.get("creationDateTime")) or 0.0,
        updated_at=epoch(summary.get("lastUpdatedDateTime")),
        failure_reason=summary.get("failureReason"),
        metrics=None if metrics is None else dict(metrics),
    )


def campaign_view(campaign: Mapping[str, Any]) -> CampaignView:
    update = campaign.get("latestCampaignUpdate")
    latest = None
    if update and update.get("solutionVersionArn"):
        latest = UpdateView(
            version_arn=str(update["solutionVersionArn"]),
            status=str(update.get("status", "")),
            created_at=epoch(update.get("creationDateTime")) or 0.0,
            failure_reason=update.get("failureReason"),
        )
    return CampaignView(
        arn=str(campaign["campaignArn"]),
        status=str(campaign.get("status", "")),
        version_arn=campaign.get("solutionVersionArn"),
        latest_update=latest,
        min_tps=campaign.get("minProvisionedTPS"),
        config=dict(campaign.get("campaignConfig") or {}),
        failure_reason=campaign.get("failureReason"),
    )


def import_view(job: Mapping[str, Any]) -> ImportView:
    return ImportView(
        arn=str(job["datasetImportJobArn"]),
        status=str(job.get("status", "")),
        created_at=epoch(job.get("creationDateTime")) or 0.0,
        import_mode=str(job.get("importMode") or FULL),
        updated_at=epoch(job.get("lastUpdatedDateTime")),
        failure_reason=job.get("failureReason"),
    )


def count_since_from_offsets(
    starts: Mapping[Any, Any], ends: Mapping[Any, int], since_ms: int | None, beginnings: Mapping[Any, int]
) -> int:
    """Records after `since_ms` summed over partitions (pure).

    ``starts`` is what ``offsets_for_times`` returned: None (or, on Tansu, an entry with a
    negative timestamp) means no record at or after the time, i.e. nothing new there.
    Without a time (``since_ms`` None) everything retained counts.
    """
    total = 0
    for tp, end in ends.items():
        if since_ms is None:
            start = beginnings.get(tp, 0)
        else:
            found = starts.get(tp)
            if found is None or getattr(found, "timestamp", 0) < 0 or found.offset < 0:
                continue
            start = found.offset
        total += max(0, end - start)
    return total


# -- calls -----------------------------------------------------------------------------------


class PersonalizeObserver:
    """One boto3 ``personalize`` client; builds an `Observation` per solution per tick."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._metrics: dict[str, dict[str, float]] = {}

    def observe(
        self,
        cfg: SolutionSchedule,
        memory: Memory,
        now: float,
        *,
        new_interactions: int | None = None,
    ) -> Observation:
        """Everything `decide` needs; raises ObserveError when the solution cannot be seen."""
        try:
            solution = solution_view(self.client.describe_solution(solutionArn=cfg.solution_arn)["solution"])
            versions = self.versions(cfg.solution_arn)
        except (ClientError, BotoCoreError) as exc:
            raise ObserveError(f"cannot observe {cfg.solution_arn}: {error_code(exc)}: {exc}") from exc
        campaigns = tuple(c for c in (self.campaign(s.arn) for s in cfg.campaigns) if c is not None)
        imports = self.imports(cfg.archive_import.dataset_arn) if cfg.archive_import is not None else ()
        return Observation(
            now=now,
            solution=solution,
            versions=versions,
            campaigns=campaigns,
            imports=imports,
            new_interactions=new_interactions,
            memory=memory,
        )

    def versions(self, solution_arn: str) -> tuple[VersionView, ...]:
        summaries: list[Mapping[str, Any]] = []
        for page in self.client.get_paginator("list_solution_versions").paginate(solutionArn=solution_arn):
            summaries.extend(page.get("solutionVersions", []))
        views = []
        for listed in summaries:
            summary = listed
            if summary.get("trainingMode") is None:  # older listings lack it: ask the version itself
                with contextlib.suppress(ClientError, BotoCoreError):
                    arn = summary["solutionVersionArn"]
                    summary = self.client.describe_solution_version(solutionVersionArn=arn)["solutionVersion"]
            metrics = self.metrics(str(summary["solutionVersionArn"])) if summary.get("status") == ACTIVE else None
            views.append(version_view(summary, metrics))
        return tuple(sorted(views, key=lambda v: (v.created_at, v.arn)))

    def remember_metrics(self, versions: Iterable[VersionView]) -> None:
        """Take the metrics of ACTIVE versions from an observation made elsewhere (the leader's).

        They never change once a version is ACTIVE, so a replica that becomes leader need not
        fetch them all again; everything else it observes afresh.
        """
        for v in versions:
            if v.status == ACTIVE and v.metrics is not None:
                self._metrics.setdefault(v.arn, dict(v.metrics))

    def metrics(self, version_arn: str) -> dict[str, float] | None:
        cached = self._metrics.get(version_arn)
        if cached is not None:
            return cached
        try:
            reply = self.client.get_solution_metrics(solutionVersionArn=version_arn)
        except (ClientError, BotoCoreError) as exc:
            log.info("solution metrics not available yet", version=version_arn, error=error_code(exc))
            return None
        metrics = {str(k): float(v) for k, v in (reply.get("metrics") or {}).items()}
        self._metrics[version_arn] = metrics
        return metrics

    def campaign(self, campaign_arn: str) -> CampaignView | None:
        try:
            return campaign_view(self.client.describe_campaign(campaignArn=campaign_arn)["campaign"])
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise ObserveError(f"cannot describe campaign {campaign_arn}: {error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise ObserveError(f"cannot describe campaign {campaign_arn}: {exc}") from exc

    def imports(self, dataset_arn: str) -> tuple[ImportView, ...]:
        jobs: list[ImportView] = []
        try:
            for page in self.client.get_paginator("list_dataset_import_jobs").paginate(datasetArn=dataset_arn):
                jobs.extend(import_view(j) for j in page.get("datasetImportJobs", []))
        except (ClientError, BotoCoreError) as exc:
            raise ObserveError(f"cannot list import jobs of {dataset_arn}: {error_code(exc)}") from exc
        return tuple(sorted(jobs, key=lambda j: (j.created_at, j.arn)))


class InteractionCounter(Protocol):
    """What the data-volume rule reads: new interactions since a time (None when unknown)."""

    def count_since(self, topics: Iterable[str], since: float | None) -> int | None: ...

    def close(self) -> None: ...


class VolumeCounter:
    """Records appended to the input topics since a time, from offsets (no consumer group).

    Counts every record (malformed ones too), which is what "new data since the last
    training" can mean without reading the data. With Tansu the end offsets may lag by
    the last batch (see kafka-python-3.md); `probe_end` corrects that by fetching from
    the reported end minus one and taking the highest offset seen.
    """

    def __init__(self, client_config: Mapping[str, Any], *, timeout_s: float = 10.0, probe_end: bool = True) -> None:
        self._config = dict(client_config)
        self.timeout_ms = max(1000, int(timeout_s * 1000))
        self.probe_end = probe_end
        self._consumer: Any = None

    def _partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                **{**self._config, "request_timeout_ms": self.timeout_ms}, group_id=None, enable_auto_commit=False,
                allow_auto_create_topics=False,
            )  # fmt: skip
        tps: list[TopicPartition] = []
        for topic in topics:
            tps.extend(TopicPartition(topic, p) for p in sorted(self._consumer.partitions_for_topic(topic)))
        return tps

    def count_since(self, topics: Iterable[str], since: float | None) -> int | None:
        """Records after `since` (epoch seconds; None = all retained); None when unknown."""
        try:
            tps = self._partitions(topics)
            if not tps:
                return None
            consumer, timeout = self._consumer, self.timeout_ms
            ends = dict(consumer.end_offsets(tps, timeout_ms=timeout))
            if self.probe_end:
                ends = self._probe(ends)
            since_ms = None if since is None else max(0, int(since * 1000))
            starts: dict[Any, Any] = {}
            beginnings: dict[Any, int] = {}
            if since_ms is None:
                beginnings = dict(consumer.beginning_offsets(tps, timeout_ms=timeout))
            else:
                # A copy: offsets_for_times rewrites the dict it is given.
                starts = dict(consumer.offsets_for_times(dict.fromkeys(tps, since_ms), timeout_ms=timeout))
            return count_since_from_offsets(starts, ends, since_ms, beginnings)
        except (KafkaError, OSError, ValueError) as exc:
            log.warning("cannot count new interactions from offsets", error=str(exc))
            self.close()
            return None

    def _probe(self, ends: dict[Any, int]) -> dict[Any, int]:
        """Fetch from end-1 per partition; the highest offset returned + 1 is the true end."""
        consumer = self._consumer
        probe = [tp for tp, end in ends.items() if end > 0]
        if not probe:
            return ends
        consumer.assign(probe)
        for tp in probe:
            consumer.seek(tp, ends[tp] - 1)
        corrected = dict(ends)
        pending = set(probe)
        for _ in range(5):
            for tp, records in consumer.poll(timeout_ms=200, max_records=100_000).items():
                if records:
                    corrected[tp] = max(corrected[tp], records[-1].offset + 1)
                    pending.discard(tp)
            if not pending:
                break
        consumer.assign([])
        return corrected

    def close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close(autocommit=False, timeout_ms=2000)
            self._consumer = None
