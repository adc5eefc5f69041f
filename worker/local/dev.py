"""`clickstream-worker dev`: the whole loop on one machine, no AWS, no Docker.

Starts the embedded Tansu broker and the local Personalize (development stand-ins), creates
the topics, runs the clickstream generator, the worker (in this process) and shows live
progress; at the end it audits the run: every produced event is either stored in the local
Personalize (by eventId) or dead-lettered, and exits non-zero if anything was lost.

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
from typing import TextIO

from worker.app import Worker
from worker.config import WorkerSettings
from worker.kafka_admin import ensure_topics
from worker.local.broker import EmbeddedBroker
from worker.local.generate_cmd import GenerateError, GenerateReport, run_generate
from worker.local.personalize.process import LocalPersonalize
from worker.local.progress import ProgressView, Snapshot, metric_total
from worker.observe.logging import configure_logging

DEV_TRACKING_ID = "00000000-dev0-4000-8000-000000000001"
ACCOUNT = "000000000000"
DEV_GROUP_ARN = f"arn:aws:personalize:us-east-1:{ACCOUNT}:dataset-group/dev"
ITEMS_ARN = f"arn:aws:personalize:us-east-1:{ACCOUNT}:dataset/dev/ITEMS"
USERS_ARN = f"arn:aws:personalize:us-east-1:{ACCOUNT}:dataset/dev/USERS"
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

    @property
    def lost_ids(self) -> list[str]:
        return [] if self.report is None else [i for i in self.report.good_event_ids if i not in self.stored_ids]

    @property
    def dead_letter_total(self) -> float:
        return sum(self.dead_lettered.values())

    @property
    def ok(self) -> bool:
        if self.report is None:
            return False
        return not self.lost_ids and self.dead_letter_total >= self.report.bad


@contextlib.contextmanager
def _data_dir(path: str | None) -> Iterator[Path]:
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="clickstream-dev-") as tmp:
        yield Path(tmp)


def worker_settings(bootstrap: str, endpoint_url: str) -> WorkerSettings:
    return WorkerSettings.model_validate({
        "kafka": {"bootstrap_servers": bootstrap, "group_id": "clickstream-dev", "commit_interval_s": 1.0,
                  **TANSU_GROUP},
        "personalize": {"region": "us-east-1", "events_endpoint_url": endpoint_url},
        "delivery": {"linger_ms": 50, "drain_timeout_s": 20},
        "observability": {"http_host": "127.0.0.1", "http_port": 0},
        "topics": [
            {"name": "clicks", "dataset_type": "interactions", "tracking_id": DEV_TRACKING_ID},
            {"name": "items", "dataset_type": "items", "dataset_arn": ITEMS_ARN},
            {"name": "users", "dataset_type": "users", "dataset_arn": USERS_ARN},
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
                    lp = LocalPersonalize(data_dir=data_dir / "personalize", trackers=[DEV_TRACKING_ID],
                                          datasets=[ITEMS_ARN, USERS_ARN], log_path=data_dir / "personalize.log")
                    try:
                        lp.start()
                        ensure_topics(broker.bootstrap, TOPICS)
                        return asyncio.run(self._main(broker, lp))
                    finally:
                        lp.stop()

    async def _main(self, broker: EmbeddedBroker, lp: LocalPersonalize) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        worker = Worker(worker_settings(broker.bootstrap, lp.endpoint_url), handle_signals=False)
        worker_task = loop.create_task(worker.run())
        count = self._count()
        view = ProgressView(self.out, interactive=self.out.isatty(), expected=count,
                            header=f"broker {broker.bootstrap} · local Personalize {lp.endpoint_url}")
        generator = loop.run_in_executor(None, self._generate, broker.bootstrap, count)
        started = time.monotonic()
        finished_generating_at: float | None = None
        while True:
            await asyncio.sleep(0.5)
            snap = self._snapshot(worker, started)
            view.render(snap)
            if generator.done() and finished_generating_at is None:
                finished_generating_at = time.monotonic()
            if worker_task.done():
                break
            if self.stop.is_set() and generator.done():
                break
            if finished_generating_at is not None and self.result.report is not None:
                # Unique events stored, not delivery counts: redeliveries would count twice.
                stored = int(lp.stats().get("stored", {}).get("events", 0))
                done = (stored >= self.result.report.good and snap.dead_lettered >= self.result.report.bad
                        and snap.inflight == 0)
                waited = time.monotonic() - finished_generating_at
                if done or waited > self.args.drain_timeout:
                    break
        self.stop.set()
        await generator
        worker.request_stop()
        code = await worker_task
        final = self._snapshot(worker, started)
        view.render(final, final=True)
        self._audit(worker, lp)
        self._summary(final, code)
        return 0 if code == 0 and self.result.ok else 1

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
        self.result.stored_ids = {e["eventId"] for e in lp.events(DEV_TRACKING_ID)}
        self.result.delivered = metric_total(registry, "clickstream_events_delivered_total", topic="clicks")
        self.result.dead_lettered = {
            stage: metric_total(registry, "clickstream_events_dead_lettered_total", topic="clicks", stage=stage)
            for stage in ("mapping", "validation", "delivery")
        }
        self.result.duplicates = int(lp.stats().get("duplicate_events", 0))

    def _summary(self, snap: Snapshot, worker_code: int) -> None:
        r = self.result
        report = r.report
        produced = report.produced if report else 0
        good = report.good if report else 0
        stored_good = good - len(r.lost_ids)
        lines = [
            "",
            "summary",
            f"  produced            {produced:>10,}  ({good:,} valid, {report.bad if report else 0:,} malformed)",
            f"  delivered           {stored_good:>10,}  stored in the local Personalize, exactly once by eventId",
            f"  dead-lettered       {int(r.dead_letter_total):>10,}  "
            + ", ".join(f"{k} {int(v):,}" for k, v in r.dead_lettered.items() if v),
            f"  duplicates dropped  {r.duplicates:>10,}  (redeliveries discarded by eventId)",
            f"  catalog updates     {int(snap.catalog):>10,}  items + users",
            f"  events per call     {snap.fill:>10.2f}",
            f"  lost                {len(r.lost_ids):>10,}",
            f"  worker exit code    {worker_code:>10}",
        ]
        verdict = "OK: produced = delivered + dead-lettered, nothing lost" if r.ok else "FAILED: events were lost"
        lines.append(f"  {verdict}")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()


def main_dev(args: argparse.Namespace) -> int:
    return DevRun(args).run()
