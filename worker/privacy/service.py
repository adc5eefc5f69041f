"""One process's privacy state: the followed ledger, its writer, its metrics.

Built once per process when ``privacy:`` is configured and shared by everything that
needs it: the worker's intake (records requests) and suppression (skips the users'
records), and the scheduler (holds trainings while a deletion job runs, runs the jobs as
leader). Wired in one direction: built first, handed to the worker and the scheduler.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from worker.config.privacy import PrivacySettings
from worker.privacy.ledger import COMPLETED, Ledger, user_digest
from worker.privacy.state_topic import LedgerFollower, StateWriter, ensure_state_topic
from worker.schedule.state import DeletionView

log = structlog.get_logger(__name__)

USER_STATES = ("requested", "in_job", "partly_deleted", "forgotten", "expired")


class PrivacyMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.users = Gauge("clickstream_privacy_users", "Users in the privacy ledger, by state.", ["state"], registry=r)
        self.job_running = Gauge(
            "clickstream_privacy_deletion_job_running", "1 while a data deletion job runs in the dataset group.",
            ["dataset_group"], registry=r,
        )  # fmt: skip
        self.requests = Counter(
            "clickstream_privacy_requests", "Deletion requests read, by outcome (recorded, repeated, rejected).",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.suppressed = Counter(
            "clickstream_privacy_records_suppressed", "Records of users whose deletion was requested, not sent.",
            ["topic", "action"], registry=r,
        )  # fmt: skip
        self.paused = Gauge(
            "clickstream_privacy_ingestion_paused",
            "1 while the dataset group's Put* traffic is paused for a deletion job (pause_ingestion_during_jobs).",
            ["dataset_group"], registry=r,
        )  # fmt: skip
        self.ledger_age = Gauge(
            "clickstream_privacy_ledger_read_timestamp_seconds", "When the state topic was last read to its end.",
            registry=r,
        )  # fmt: skip


class PrivacyState:
    """The ledger as this process follows it, and the way to write to it."""

    def __init__(
        self,
        settings: PrivacySettings,
        client_config: Mapping[str, Any],
        *,
        timeout_s: float = 10.0,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._config = dict(client_config)
        self._timeout_s = timeout_s
        self._key = settings.digest_key.get_secret_value().encode()
        self._clock = clock
        self.metrics = PrivacyMetrics(registry)
        self.writer = StateWriter(client_config, settings.state_topic, timeout_s=timeout_s)
        self.follower = LedgerFollower(client_config, settings.state_topic, timeout_s=timeout_s,
                                       on_change=self._changed)  # fmt: skip
        self._pause_listeners: list[Callable[[frozenset[str]], None]] = []

    @property
    def ledger(self) -> Ledger:
        return self.follower.ledger

    @property
    def ready(self) -> bool:
        return self.follower.ready.is_set()

    def digest(self, user_id: str) -> str:
        return user_digest(user_id, self._key)

    def suppressed(self, user_id: str | None) -> bool:
        """Whether this user's records must not be sent (requested, not yet expired)."""
        if user_id is None:
            return False
        ledger = self.follower.ledger
        if not ledger.users:
            return False
        return ledger.suppressed(self.digest(user_id), self._clock(), self.settings.suppress_for_s)

    def deletion_view(self, group_arn: str, *, archive: bool = False) -> DeletionView | None:
        """What the scheduler's policy needs about the group's deletion jobs (None: not a group of ours).

        With an `archive` (the bulk-import source) a completed job still holds trainings and imports
        until the archive is purged of its users: an import before the purge would bring them back."""
        if group_arn not in self.settings.dataset_groups:
            return None
        ledger = self.follower.ledger
        running = ledger.running_job(group_arn)
        if running is None and archive:
            unpurged = [j for j in ledger.jobs_of(group_arn) if j.status == COMPLETED and not j.archive_purged]
            if unpurged:
                return DeletionView(f"{unpurged[0].name} (archive purge)", ledger.last_completed(group_arn))
        return DeletionView(running.name if running else None, ledger.last_completed(group_arn))

    def paused_groups(self) -> frozenset[str]:
        """Groups whose Put* traffic waits for a running job (only with pause_ingestion_during_jobs)."""
        if not self.settings.pause_ingestion_during_jobs:
            return frozenset()
        ledger = self.follower.ledger
        return frozenset(g for g in self.settings.dataset_groups if ledger.running_job(g) is not None)

    def on_paused_groups(self, listener: Callable[[frozenset[str]], None]) -> None:
        """Call `listener` (on the follower's thread) with `paused_groups()` after every ledger change
        (and now): a pause must start when the job is recorded, however short the job."""
        self._pause_listeners.append(listener)
        listener(self.paused_groups())

    def caught_up(self) -> bool:
        """Whether the followed ledger includes every write this process made."""
        return self.follower.caught_up(self.writer.last_offset)

    def _changed(self, ledger: Ledger) -> None:  # follower thread: gauges only
        counts = ledger.counts(self.settings.dataset_groups, self._clock(), self.settings.suppress_for_s)
        for state in USER_STATES:
            self.metrics.users.labels(state=state).set(counts.get(state, 0))
        paused = self.paused_groups()
        for group in self.settings.dataset_groups:
            name = group.rsplit("/", 1)[-1]
            self.metrics.job_running.labels(dataset_group=name).set(1 if ledger.running_job(group) else 0)
            self.metrics.paused.labels(dataset_group=name).set(1 if group in paused else 0)
        self.metrics.ledger_age.set(self._clock())
        for listener in self._pause_listeners:
            listener(paused)

    # -- lifecycle -------------------------------------------------------------------------------

    def prepare(self) -> None:
        if ensure_state_topic(self._config, self.settings.state_topic, self._timeout_s):
            log.info("created the privacy state topic", topic=self.settings.state_topic)

    def start(self, wait_s: float | None = None) -> PrivacyState:
        """Follow the state topic; with `wait_s`, wait (bounded) for the first full read."""
        self.follower.start()
        if wait_s is not None and not self.follower.ready.wait(wait_s):
            log.warning("the privacy state topic was not read in time; suppression starts when it is",
                        topic=self.settings.state_topic, waited_s=wait_s)  # fmt: skip
        return self

    def stop(self) -> None:
        self.follower.stop()
        self.writer.close()
