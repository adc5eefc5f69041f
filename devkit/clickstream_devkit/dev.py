"""`clickstream-worker dev`: the whole loop on one machine, no AWS, no Docker.

Starts the embedded Tansu broker and the local Personalize (``--fast``), provisions through
the real API (schemas, dataset group, datasets, event tracker, three solutions; see
dev_provision.py), runs the clickstream generator, the worker (in this process) and, once
enough interactions are stored to train on, the retraining scheduler, which trains, gates
and creates/updates the campaigns by itself. Progress is live (a redrawn block on a TTY,
plain lines otherwise); at the end it audits the run (every produced event is stored by
eventId or dead-lettered; non-zero exit if anything was lost) and prints the metrics of
every trained version and sample recommendations before and after retraining.

Every child process is stopped by PID on exit, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from clickstream_devkit.broker import EmbeddedBroker
from clickstream_devkit.dev_provision import (
    BASELINE,
    METRICS,
    REGION,
    ControlState,
    Provisioned,
    clients,
    metrics_rows,
    observe,
    provision,
    recommend,
    scheduler_section,
)
from clickstream_devkit.generate_cmd import GenerateError, GenerateReport, run_generate
from clickstream_devkit.personalize.process import LocalPersonalize
from clickstream_devkit.progress import ProgressView, Snapshot, control_lines, metric_total
from worker.app import Worker
from worker.config import WorkerSettings
from worker.config.scheduler import SchedulerSettings
from worker.kafka_admin import ensure_topics
from worker.observe.logging import configure_logging
from worker.schedule.service import Scheduler

TOPICS = {"clicks": 4, "items": 2, "users": 2}
#: Short group timeouts: joins on Tansu take ~3 s instead of ~20 s.
TANSU_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "max_poll_interval_ms": 10000}


@dataclass
class DevResult:
    report: GenerateReport | None = None
    stored_ids: set[str] = field(default_factory=set)
    delivered: float = 0.0
    dead_lettered: dict[str, float] = field(default_factory=dict)
    catalog_delivered: float = 0.0
    duplicates: int = 0
    same_content: int = 0

    @property
    def missing_ids(self) -> list[str]:
        """Valid events whose eventId the local Personalize does not hold."""
        return [] if self.report is None else [i for i in self.report.good_event_ids if i not in self.stored_ids]

    @property
    def lost(self) -> int:
        """Missing events not explained by the exact-duplicate rule: the generator can emit two
        views of one item in one session within the same millisecond, which Personalize (and
        the local one) keeps once, so their second eventId is never stored."""
        return max(0, len(self.missing_ids) - self.same_content)

    @property
    def dead_letter_total(self) -> float:
        return sum(self.dead_lettered.values())

    @property
    def ok(self) -> bool:
        if self.report is None:
            return False
        return self.lost == 0 and self.dead_letter_total >= self.report.bad


@contextlib.contextmanager
def _data_dir(path: str | None) -> Iterator[Path]:
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="clickstream-dev-") as tmp:
        yield Path(tmp)


def worker_settings(bootstrap: str, endpoint_url: str, p: Provisioned) -> WorkerSettings:
    return WorkerSettings.model_validate({
        "kafka": {"bootstrap_servers": bootstrap, "group_id": "clickstream-dev", "commit_interval_s": 1.0,
                  **TANSU_GROUP},
        "personalize": {"region": "us-east-1", "events_endpoint_url": endpoint_url},
        "delivery": {"linger_ms": 50, "drain_timeout_s": 20},
        "observability": {"http_host": "127.0.0.1", "http_port": 0},
        "topics": [
            {"name": "clicks", "dataset_type": "interactions", "tracking_id": p.tracking_id},
            {"name": "items", "dataset_type": "items", "dataset_arn": p.datasets["items"]},
            {"name": "users", "dataset_type": "users", "dataset_arn": p.datasets["users"]},
        ],
    })


class DevRun:
    """One `dev` session; `run()` returns the exit code."""

    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout) -> None:
        self.args = args
        self.out = out
        self.stop = threading.Event()
        self.generated = 0
        self.result = DevResult()
        self.control: Any = None
        self.runtime: Any = None
        self.provisioned = Provisioned("", {}, "", {}, {})
        self.state: ControlState | None = None
        self.before: tuple[str, list[str]] | None = None

    def _count(self) -> int:
        if self.args.duration is not None:
            return int(self.args.duration * self.args.rate)
        return int(self.args.events)

    def run(self) -> int:
        # The dev stack never talks to AWS: dummy credentials for the local Personalize (which
        # does not check signatures) so real ones from the environment are never used here.
        dummy = {"AWS_ACCESS_KEY_ID": "dev-local", "AWS_SECRET_ACCESS_KEY": "dev-local"}
        os.environ.update(dummy, AWS_EC2_METADATA_DISABLED="true")
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)
        with _data_dir(self.args.data_dir) as data_dir:
            log_path = data_dir / "worker.log"
            with log_path.open("a", encoding="utf-8") as log_stream:
                configure_logging(json=True, level="INFO", stream=log_stream)
                self.out.write(f"clickstream-worker dev: starting the local stack (logs: {log_path})\n")
                with EmbeddedBroker() as broker:
                    lp = LocalPersonalize(data_dir=data_dir / "personalize", extra_args=["--fast"],
                                          log_path=data_dir / "personalize.log")
                    try:
                        lp.start()
                        ensure_topics(broker.bootstrap, TOPICS)
                        self.control, self.runtime = clients(lp.endpoint_url)
                        self.provisioned = provision(self.control, f"dev-{int(time.time())}")
                        self.out.write(f"provisioned dataset group {self.provisioned.group_arn} "
                                       f"(3 datasets, event tracker, {len(self.provisioned.solutions)} solutions)\n")
                        return asyncio.run(self._main(broker, lp))
                    finally:
                        lp.stop()

    async def _main(self, broker: EmbeddedBroker, lp: LocalPersonalize) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        section = scheduler_section(
            self.provisioned, lp.endpoint_url, retrain_every_s=self.args.retrain_every, tick_s=self.args.tick,
            lease=TANSU_GROUP,
        )  # fmt: skip
        settings = worker_settings(broker.bootstrap, lp.endpoint_url, self.provisioned)
        worker = Worker(settings, handle_signals=False)
        scheduler: Scheduler | None = None
        worker_task = loop.create_task(worker.run())
        watcher = loop.create_task(self._watch())
        count = self._count()
        view = ProgressView(self.out, interactive=self.out.isatty(), expected=count,
                            header=f"broker {broker.bootstrap} · local Personalize {lp.endpoint_url}")
        generator = loop.run_in_executor(None, self._generate, broker.bootstrap, count)
        started = time.monotonic()
        finished_generating_at: float | None = None
        delivered_at: float | None = None
        while True:
            await asyncio.sleep(0.5)
            snap = self._snapshot(worker, started)
            view.extra_lines = control_lines(self.state)
            view.render(snap)
            if scheduler is None and self._enough_data(lp):
                scheduler = Scheduler(SchedulerSettings.model_validate(section), settings.kafka, region=REGION,
                                      registry=worker.metrics.registry, default_input_topics=["clicks"])  # fmt: skip
                await loop.run_in_executor(None, scheduler.start)
            if generator.done() and finished_generating_at is None:
                finished_generating_at = time.monotonic()
            if worker_task.done():
                break
            if self.stop.is_set() and generator.done():
                break
            if delivered_at is not None:
                # Delivered: with --events, wait (bounded) for trained and served versions.
                waited = time.monotonic() - delivered_at
                if self.args.duration is not None or waited > self.args.train_timeout:
                    break
                if self.state is not None and self.state.settled:
                    break
            elif finished_generating_at is not None and self.result.report is not None:
                # Unique events stored, not delivery counts: redeliveries would count twice.
                stored = int(lp.stats().get("stored", {}).get("events", 0))
                done = (stored >= self.result.report.good and snap.dead_lettered >= self.result.report.bad
                        and snap.inflight == 0)
                waited = time.monotonic() - finished_generating_at
                if done or waited > self.args.drain_timeout:
                    delivered_at = time.monotonic()
        self.stop.set()
        await generator
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        self.state = await loop.run_in_executor(None, self._observe_quietly)
        if scheduler is not None:
            await loop.run_in_executor(None, scheduler.stop)
        worker.request_stop()
        code = await worker_task
        final = self._snapshot(worker, started)
        view.extra_lines = control_lines(self.state)
        view.render(final, final=True)
        self._audit(worker, lp)
        self._summary(final, code)
        self._training_summary()
        return 0 if code == 0 and self.result.ok else 1

    def _enough_data(self, lp: LocalPersonalize) -> bool:
        """Training needs data: the scheduler starts once `--min-interactions` are stored."""
        return int(lp.stats().get("stored", {}).get("events", 0)) >= int(self.args.min_interactions)

    def _observe_quietly(self) -> ControlState | None:
        """The control plane's state; None (and the last state kept) if a call fails."""
        try:
            return observe(self.control, self.provisioned)
        except Exception:  # noqa: BLE001 - display only: a failed poll must not end the run
            return self.state

    async def _watch(self) -> None:
        """Refresh the training/campaign view every couple of seconds (cheap calls only)."""
        loop = asyncio.get_running_loop()
        while True:
            self.state = await loop.run_in_executor(None, self._observe_quietly)
            if self.before is None and self.state is not None:
                self.before = await loop.run_in_executor(None, self._sample)
            await asyncio.sleep(2.0)

    def _sample(self) -> tuple[str, list[str]] | None:
        """(served version, recommendations) of the user-personalization campaign, if it serves."""
        label = "user-personalization"
        serving = self.state.serving.get(label) if self.state else None
        if not serving:
            return None
        try:
            items = recommend(self.runtime, self.provisioned.campaigns[label], self.args.sample_user)
        except Exception:  # noqa: BLE001 - display only
            return None
        return serving, items

    def _generate(self, bootstrap: str, count: int) -> None:
        def progress(sent: int) -> None:
            self.generated = sent

        try:
            self.result.report = run_generate(
                bootstrap, "clicks", rate=self.args.rate, count=count, bad_fraction=self.args.bad_fraction,
                seed=self.args.seed, items_topic="items", users_topic="users", users=self.args.users,
                items=self.args.items, progress=progress, stop=self.stop,
            )
        except GenerateError as exc:
            self.result.report = exc.report
        if self.result.report is not None:
            self.generated = self.result.report.produced

    def _snapshot(self, worker: Worker, started: float) -> Snapshot:
        registry = worker.metrics.registry
        return Snapshot(
            elapsed_s=time.monotonic() - started,
            produced=self.generated,
            delivered=metric_total(registry, "clickstream_events_delivered_total", topic="clicks"),
            dead_lettered=metric_total(registry, "clickstream_events_dead_lettered_total", topic="clicks"),
            catalog=metric_total(registry, "clickstream_events_delivered_total", topic="items")
            + metric_total(registry, "clickstream_events_delivered_total", topic="users"),
            inflight=metric_total(registry, "clickstream_inflight_events"),
            calls=metric_total(registry, "clickstream_events_per_call_count", api="PutEvents"),
            events_in_calls=metric_total(registry, "clickstream_events_per_call_sum", api="PutEvents"),
            throttled=metric_total(registry, "clickstream_put_requests_total", outcome="throttled"),
        )

    def _audit(self, worker: Worker, lp: LocalPersonalize) -> None:
        registry = worker.metrics.registry
        self.result.stored_ids = {e["eventId"] for e in lp.events(self.provisioned.tracking_id)}
        self.result.delivered = metric_total(registry, "clickstream_events_delivered_total", topic="clicks")
        self.result.dead_lettered = {
            stage: metric_total(registry, "clickstream_events_dead_lettered_total", topic="clicks", stage=stage)
            for stage in ("mapping", "validation", "delivery")
        }
        stats = lp.stats()
        self.result.duplicates = int(stats.get("duplicate_events", 0))
        self.result.same_content = int(stats.get("same_content_events", 0))

    def _summary(self, snap: Snapshot, worker_code: int) -> None:
        r = self.result
        report = r.report
        produced = report.produced if report else 0
        good = report.good if report else 0
        stored_good = good - len(r.missing_ids)
        lines = [
            "",
            "summary",
            f"  produced            {produced:>10,}  ({good:,} valid, {report.bad if report else 0:,} malformed)",
            f"  delivered           {stored_good:>10,}  stored in the local Personalize, exactly once by eventId",
            f"  dead-lettered       {int(r.dead_letter_total):>10,}  "
            + ", ".join(f"{k} {int(v):,}" for k, v in r.dead_lettered.items() if v),
            f"  duplicates dropped  {r.duplicates:>10,}  (redelivered eventIds, and {r.same_content:,} identical "
            "events in the same millisecond, kept once like Personalize does)",
            f"  catalog updates     {int(snap.catalog):>10,}  items + users",
            f"  events per call     {snap.fill:>10.2f}",
            f"  lost                {r.lost:>10,}",
            f"  worker exit code    {worker_code:>10}",
        ]
        verdict = "OK: produced = delivered + dead-lettered, nothing lost" if r.ok else "FAILED: events were lost"
        lines.append(f"  {verdict}")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()


    def _training_summary(self) -> None:
        state = self.state
        lines = ["", "trainings"]
        if state is None:
            lines.append("  (the control plane could not be read)")
            self.out.write("\n".join(lines) + "\n")
            return
        lines.append(f"  versions ACTIVE     {state.active_count:>10,}")
        for label in self.provisioned.solutions:
            serving = state.serving.get(label)
            shown = serving.rsplit("/", 1)[-1] if serving else f"nothing ({state.campaign_status.get(label, '-')})"
            lines.append(f"  campaign {label:<21} serves {shown}")
        try:
            rows = metrics_rows(self.control, state)
        except Exception as exc:  # noqa: BLE001 - the counts above still stand
            rows = []
            lines.append(f"  (metrics unavailable: {exc})")
        lines += ["", "metrics of every trained version (offline, held-out interactions)"]
        header = f"  {'solution':<30} {'version':<22}" + "".join(f"{name:>13}" for name, _ in METRICS)
        lines.append(header)
        for label, version, metrics in rows:
            name = f"{label} (baseline)" if label == BASELINE else label
            served = (state.serving.get(label) or "").endswith(f"/{version}")
            lines.append(f"  {name:<30} {version:<22}"
                         + "".join(f"{metrics.get(key, float('nan')):>13.4f}" for _, key in METRICS)
                         + ("   served" if served else ""))
        if not rows:
            lines.append("  (no version reached ACTIVE)")
        lines += self._recommendation_lines()
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def _recommendation_lines(self) -> list[str]:
        user = self.args.sample_user
        lines = ["", f"sample recommendations for {user} (user-personalization campaign)"]
        after = self._sample()
        if self.before is None or after is None:
            return [*lines, "  (the campaign never served a version during this run)"]
        (v1, items1), (v2, items2) = self.before, after
        lines.append(f"  first served  {v1.rsplit('/', 1)[-1]:<22} {', '.join(items1) or '(none)'}")
        if v2 == v1:
            lines.append("  no retraining happened during this run: the campaign still serves its first version")
        else:
            lines.append(f"  after retrain {v2.rsplit('/', 1)[-1]:<22} {', '.join(items2) or '(none)'}")
        return lines


def main_dev(args: argparse.Namespace) -> int:
    return DevRun(args).run()
