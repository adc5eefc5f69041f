"""`clickstream-worker dev`: the whole loop on one machine, no AWS, no Docker.

Starts the embedded Tansu broker and the local Personalize (``--fast``), provisions through
the real API (schemas, dataset group, datasets, event tracker, three solutions; see
dev_provision.py), runs the clickstream generator, the worker (in this process) and, once
enough interactions are stored to train on, the retraining scheduler, which trains, gates
and creates/updates the campaigns by itself. Progress is live (a redrawn block on a TTY,
plain lines otherwise) and ends when its work does: every produced event accounted for
(stored, a same-content duplicate, or dead-lettered; dev_account.py) and the trainings the
scheduler started finished and served, saying what it waits for meanwhile. At the end it
audits the run (non-zero exit if anything was lost) and prints the metrics of every
trained version and sample recommendations before and after retraining. The logs stay in
`--data-dir` (or a kept temporary directory whose path is printed).

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
from pathlib import Path
from typing import Any, TextIO

from clickstream_devkit.broker import EmbeddedBroker
from clickstream_devkit.dev_account import STAGES, DevResult, StoredVolume, Tally, control_waits, delivery_waits
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
from clickstream_devkit.generate_cmd import GenerateError, run_generate
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


@contextlib.contextmanager
def _data_dir(path: str | None) -> Iterator[Path]:
    """The run's directory (logs, local Personalize data): `--data-dir`, or a new one that is
    kept after exit so the log path printed at the start still exists."""
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
        return
    yield Path(tempfile.mkdtemp(prefix="clickstream-dev-"))


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
        self.volume = StoredVolume()
        self.watch_every_s = 2.0

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
            try:
                with log_path.open("a", encoding="utf-8") as log_stream:
                    configure_logging(json=True, level="INFO", stream=log_stream)
                    self.out.write(f"clickstream-worker dev: starting the local stack (logs: {log_path})\n")
                    self.out.flush()
                    return self._run_stack(data_dir)
            finally:
                self.out.write(f"logs kept: {log_path} and {data_dir / 'personalize.log'}\n")
                self.out.flush()

    def _run_stack(self, data_dir: Path) -> int:
        with EmbeddedBroker() as broker:
            lp = LocalPersonalize(data_dir=data_dir / "personalize", extra_args=["--fast"],
                                  log_path=data_dir / "personalize.log")  # fmt: skip
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
            lease=TANSU_GROUP, min_new_interactions=self.args.retrain_min_new,
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
        generated_at: float | None = None
        accounted_at: float | None = None
        while True:
            await asyncio.sleep(0.5)
            stats = await loop.run_in_executor(None, lp.stats)
            snap = self._snapshot(worker, started, stats)
            self.volume.record(time.time(), snap.stored)
            if scheduler is None and snap.stored >= int(self.args.min_interactions):
                # Training needs data: the scheduler starts once --min-interactions are stored.
                scheduler = Scheduler(SchedulerSettings.model_validate(section), settings.kafka, region=REGION,
                                      registry=worker.metrics.registry, default_input_topics=["clicks"],
                                      volume=self.volume)  # fmt: skip
                await loop.run_in_executor(None, scheduler.start)
            now = time.monotonic()
            if generator.done() and generated_at is None:
                generated_at = now
            waits = delivery_waits(self._tally(worker, snap, generating=not generator.done()))
            if not waits and accounted_at is None:
                accounted_at = now
                self.watch_every_s = 0.5  # settle quickly: the control plane is all that is left
            if accounted_at is not None and self.args.duration is None:
                waits = control_waits(self.state, scheduler_started=scheduler is not None)
            view.status = f"waiting for: {'; '.join(waits)}" if waits else "done: every event accounted for"
            view.extra_lines = control_lines(self.state)
            view.render(snap)
            if worker_task.done() or (self.stop.is_set() and generator.done()) or not waits:
                break
            if accounted_at is not None and now - accounted_at > self.args.train_timeout:
                self.out.write(f"gave up after --train-timeout {self.args.train_timeout:g} s waiting for: "
                               f"{'; '.join(waits)}\n")
                break
            if accounted_at is None and generated_at is not None and now - generated_at > self.args.drain_timeout:
                self.out.write(f"gave up after --drain-timeout {self.args.drain_timeout:g} s waiting for: "
                               f"{'; '.join(waits)}\n")
                break
        self.stop.set()
        await generator
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        # The last look at the control plane, the scheduler's and the worker's shutdown, together.
        worker.request_stop()
        observed = loop.run_in_executor(None, self._observe_quietly)
        stopping = [loop.run_in_executor(None, scheduler.stop)] if scheduler is not None else []
        code = await worker_task
        await asyncio.gather(*stopping)
        self.state = await observed
        final = self._snapshot(worker, started, await loop.run_in_executor(None, lp.stats))
        view.extra_lines = control_lines(self.state)
        view.render(final, final=True)
        await loop.run_in_executor(None, self._audit, worker, lp)
        self._summary(final, code)
        self._training_summary()
        return 0 if code == 0 and self.result.ok else 1

    def _observe_quietly(self) -> ControlState | None:
        """The control plane's state; None (and the last state kept) if a call fails."""
        try:
            return observe(self.control, self.provisioned)
        except Exception:  # noqa: BLE001 - display only: a failed poll must not end the run
            return self.state

    async def _watch(self) -> None:
        """Refresh the training/campaign view (cheap calls only): every 2 s, every 0.5 s at the end."""
        loop = asyncio.get_running_loop()
        while True:
            self.state = await loop.run_in_executor(None, self._observe_quietly)
            if self.before is None and self.state is not None:
                self.before = await loop.run_in_executor(None, self._sample)
            await asyncio.sleep(self.watch_every_s)

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

    def _dead_lettered(self, worker: Worker) -> dict[str, float]:
        registry = worker.metrics.registry
        return {
            stage: metric_total(registry, "clickstream_events_dead_lettered_total", topic="clicks", stage=stage)
            for stage in STAGES
        }

    def _tally(self, worker: Worker, snap: Snapshot, *, generating: bool) -> Tally:
        report = self.result.report
        return Tally(
            generating=generating or report is None,
            good=report.good if report else 0,
            bad=report.bad if report else 0,
            stored=snap.stored,
            same_content=snap.same_content,
            dead_lettered=self._dead_lettered(worker),
            inflight=snap.inflight,
        )

    def _snapshot(self, worker: Worker, started: float, stats: dict[str, Any]) -> Snapshot:
        registry = worker.metrics.registry
        return Snapshot(
            elapsed_s=time.monotonic() - started,
            produced=self.generated,
            stored=int(stats.get("stored", {}).get("events", 0)),
            same_content=int(stats.get("same_content_events", 0)),
            dead_lettered=metric_total(registry, "clickstream_events_dead_lettered_total", topic="clicks"),
            catalog=metric_total(registry, "clickstream_events_delivered_total", topic="items")
            + metric_total(registry, "clickstream_events_delivered_total", topic="users"),
            inflight=metric_total(registry, "clickstream_inflight_events"),
            calls=metric_total(registry, "clickstream_events_per_call_count", api="PutEvents"),
            events_in_calls=metric_total(registry, "clickstream_events_per_call_sum", api="PutEvents"),
            throttled=metric_total(registry, "clickstream_put_requests_total", outcome="throttled"),
        )

    def _audit(self, worker: Worker, lp: LocalPersonalize) -> None:
        self.result.stored_ids = {e["eventId"] for e in lp.events(self.provisioned.tracking_id)}
        self.result.dead_lettered = self._dead_lettered(worker)
        stats = lp.stats()
        self.result.same_content = int(stats.get("same_content_events", 0))
        self.result.redeliveries = int(stats.get("duplicate_events", 0)) - self.result.same_content

    def _summary(self, snap: Snapshot, worker_code: int) -> None:
        lines = [
            "",
            "summary",
            *self.result.lines(),
            f"  catalog updates       {int(snap.catalog):>10,}  items + users",
            f"  events per call       {snap.fill:>10.2f}",
            f"  worker exit code      {worker_code:>10}",
        ]
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
