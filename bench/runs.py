"""One measured run: start the process(es) under test, feed them, wait until all is delivered, measure.

Two ways of feeding:

* **backlog**: the data was produced before anything started; the clock starts when the
  process is ready (group joined, partitions assigned) and stops at the last delivery.
  This is throughput: the process drains as fast as it can.
* **paced**: the process is ready first, then `clickstream-worker generate --rate R` produces
  live; events carry the wall time they were due, so ``receivedAt - sentAt`` at the local
  Personalize is the event-to-acknowledgement latency at that offered load.

CPU is counted from "ready" to "all delivered" for the process(es) under test, the local
Personalize and the broker alike, because on a 2-core machine they compete for the same cores.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import measure
from bench.processes import BaselineProc, Measured, WorkerProc, write_worker_config
from bench.procstat import machine_busy_s, sample, wait_until_quiet
from bench.stack import ITEMS, SEED, TRACKING_ID, USERS, Dataset, Stack, delivered_events, distinct_accepted, lp_get
from worker.app import EXIT_CONSUMER_WEDGED

#: "No quota": the worker's own limiter far above anything one machine reaches.
UNLIMITED_RPS = 1_000_000.0
NO_QUOTA: dict[str, Any] = {"default": {"put_events_rps": UNLIMITED_RPS}}
STATS_POLL_S = 0.5  # the stats call counts rows; polled slowly so it costs the server nothing
TIMELINE_POLL_S = 0.05  # while steps of a timeline are due, look more often


@dataclass(frozen=True)
class Step:
    """Something done to a running run, `at_s` seconds after every process owned partitions.

    ``faults``: set the local Personalize's faults (a quota, a storm); ``start``: one more worker
    process joins the group (a scale-out); ``stop``: worker `index` gets SIGTERM (a scale-in). The
    wall time each step was taken is in the result's ``timeline``, under its `label`.
    """

    at_s: float
    action: str
    label: str
    faults: dict[str, Any] | None = None
    index: int = 0


@dataclass
class RunSpec:
    """What to run and how to feed it."""

    name: str
    label: str
    kind: str = "worker"  # "worker" or "baseline"
    dataset: Dataset | None = None  # backlog runs
    rate: float | None = None  # paced runs: events/s offered
    seconds: float = 0.0  # paced runs: how long to offer it
    processes: int = 1
    delivery: dict[str, Any] = field(default_factory=dict)
    client: str | None = None
    consumer_overrides: dict[str, Any] = field(default_factory=dict)  # via bench.worker_variant
    transport: str | None = None  # "http1": the lean client on its former pool, via bench.worker_variant
    faults: dict[str, Any] | None = None
    topic_extra: dict[str, Any] = field(default_factory=dict)  # merged into the topic: format, registry
    quotas: dict[str, Any] = field(default_factory=lambda: dict(NO_QUOTA))  # the worker's `quotas` section
    timeline: list[Step] = field(default_factory=list)
    log_level: str = "WARNING"  # INFO: the quota runs count the workers' share and throttling lines
    timeout_s: float = 300.0
    quiet_timeout_s: float = 120.0  # how long to wait for other load to stop before starting (0: don't)


def _gen_command(stack: Stack, topic: str, rate: float, count: int, manifest: Path, seed: int) -> list[str]:
    return [
        sys.executable, "-m", "worker.cli", "generate", "--bootstrap", stack.bootstrap, "--topic", topic,
        "--rate", f"{rate:.1f}", "--count", str(count), "--seed", str(seed), "--users", str(USERS),
        "--items", str(ITEMS), "--manifest", str(manifest),
    ]  # fmt: skip


def _start_processes(stack: Stack, spec: RunSpec, topic: str, endpoint: str,
                     workdir: Path) -> tuple[list[Measured], str]:
    """The process(es) under test, and the consumer group the workers share."""
    group = f"bench-{spec.name}-{uuid.uuid4().hex[:6]}"
    if spec.kind == "baseline":
        return [BaselineProc(
            bootstrap=stack.bootstrap, topic=topic, endpoint_url=endpoint, tracking_id=TRACKING_ID,
            group_id=group, log_path=workdir / "baseline.log", ready_file=workdir / "baseline.ready",
        ).start()], group  # fmt: skip
    workers: list[Measured] = [_start_worker(stack, spec, topic, endpoint, workdir, index, group)
                               for index in range(spec.processes)]
    return workers, group


def _start_worker(stack: Stack, spec: RunSpec, topic: str, endpoint: str, workdir: Path, index: int,
                  group: str) -> WorkerProc:
    topics = spec.dataset.topic_trackers() if spec.dataset is not None else [(topic, TRACKING_ID)]
    config = write_worker_config(
        workdir / f"worker{index}.yaml", bootstrap=stack.bootstrap, endpoint_url=endpoint, topics=topics,
        group_id=group, quotas=spec.quotas, delivery=spec.delivery, client=spec.client,
        topic_extra=spec.topic_extra, log_level=spec.log_level,
    )  # fmt: skip
    worker = WorkerProc(config, workdir / f"worker{index}.log", spec.consumer_overrides, spec.transport)
    worker.start()
    return worker


def _wait_all_ready(procs: list[Measured], timeout_s: float = 90.0) -> tuple[float, float]:
    """(first ready, all ready at once); a worker is ready when it owns partitions."""
    first = math.inf
    deadline = time.monotonic() + timeout_s
    if isinstance(procs[0], BaselineProc):
        ready = procs[0].wait_ready(timeout_s)
        return ready, ready
    workers = [p for p in procs if isinstance(p, WorkerProc)]
    while time.monotonic() < deadline:
        states = []
        for worker in workers:
            if not worker.alive():
                raise RuntimeError(f"worker exited before ready:\n{worker.logs()}")
            states.append(worker.ready())
        if any(states):
            first = min(first, time.time())
        if all(states):
            return first, time.time()
        time.sleep(0.05)
    raise RuntimeError(f"workers not all ready after {timeout_s}s:\n{workers[0].logs()}")


def run(stack: Stack, spec: RunSpec, workdir: Path) -> dict[str, Any]:
    """Execute one run and return its measured result (JSON-ready)."""
    workdir.mkdir(parents=True, exist_ok=True)
    waited = wait_until_quiet(timeout_s=spec.quiet_timeout_s) if spec.quiet_timeout_s > 0 else 0.0
    trackers = [t for _topic, t in spec.dataset.topic_trackers()] if spec.dataset else [TRACKING_ID]
    server = stack.personalize(spec.name, trackers)
    procs: list[Measured] = []
    generator: Measured | None = None
    applied: list[dict[str, Any]] = []
    try:
        if spec.faults:
            server.set_faults(**spec.faults)
        topic = spec.dataset.topic if spec.dataset else stack.new_topic(f"live-{spec.name}")
        procs, group = _start_processes(stack, spec, topic, server.endpoint_url, workdir)
        started = time.time()
        first_ready, all_ready = _wait_all_ready(procs)
        for proc in procs:
            proc.take_mark()
        server_mark, broker_mark = sample(server.pid or 0), sample(stack.broker.pid or 0)
        machine_mark, self_mark, wall_mark = machine_busy_s(), sample(os.getpid()), time.monotonic()
        expected_ids: list[str]
        gen_report: dict[str, Any] = {}
        if spec.dataset is not None:
            expected_ids = spec.dataset.good_ids
        else:
            assert spec.rate is not None
            manifest = workdir / "manifest.json"
            count = int(spec.rate * spec.seconds)
            seed = SEED + 1 + zlib.crc32(spec.name.encode()) % 1000  # fresh IDs, reproducible
            generator = Measured(_gen_command(stack, topic, spec.rate, count, manifest, seed),
                                 workdir / "generate.log").start()
            generator.take_mark()
            while generator.alive():
                generator.take_last()
                time.sleep(0.2)
            if generator.proc is None or generator.proc.returncode != 0:
                raise RuntimeError(f"generator failed:\n{generator.logs()}")
            gen_report = json.loads(manifest.read_text())
            expected_ids = gen_report["good_event_ids"]
        timeline = Timeline(spec.timeline, started_at=time.monotonic(), applied=applied,
                            take=lambda step: _take_step(step, stack, spec, topic, server, workdir, procs, group))
        reached = _wait_delivered(server, len(expected_ids), spec.timeout_s, procs, timeline)
        for proc in procs:
            proc.take_last_if_alive()
        server_end, broker_end = sample(server.pid or 0), sample(stack.broker.pid or 0)
        machine_cpu, wall = machine_busy_s() - machine_mark, time.monotonic() - wall_mark
        harness_cpu = _delta(self_mark, sample(os.getpid())) or 0.0
        exit_codes = [proc.stop() for proc in procs]
        rows = delivered_events(server, None if spec.dataset and spec.dataset.tenants else TRACKING_ID)
        stats = lp_get(server, "/_local/stats")
    finally:
        for proc in procs:
            proc.kill()
        if generator is not None:
            generator.kill()
        stack.stop_personalize(server)
    result = _result(spec, rows, stats, expected_ids, procs, started, first_ready, all_ready, reached, exit_codes,
                     cpu=(_delta(server_mark, server_end), _delta(broker_mark, broker_end),
                          generator.cpu_since_mark() if generator else None),
                     gen_report=gen_report, load=(waited, machine_cpu, harness_cpu, wall))
    return _quota_figures(result, spec, rows, applied, first_ready, all_ready)


class Timeline:
    """The steps of a run, taken when due (see `Step`); each one's wall time is recorded in `applied`."""

    def __init__(self, steps: list[Step], *, started_at: float, applied: list[dict[str, Any]],
                 take: Callable[[Step], None]) -> None:
        self._steps = sorted(steps, key=lambda s: s.at_s)
        self._started_at = started_at
        self._applied = applied
        self._take = take

    def due(self) -> float | None:
        """Take every step that is due; seconds until the next one (None: nothing left)."""
        while self._steps:
            wait = self._started_at + self._steps[0].at_s - time.monotonic()
            if wait > 0:
                return wait
            step = self._steps.pop(0)
            self._take(step)
            self._applied.append({"label": step.label, "action": step.action, "at_s": step.at_s,
                                  "wall": time.time()})
        return None


def _take_step(step: Step, stack: Stack, spec: RunSpec, topic: str, server: Any, workdir: Path,
               procs: list[Measured], group: str) -> None:
    if step.action == "faults":
        server.set_faults(**(step.faults or {}))
    elif step.action == "start":
        worker = _start_worker(stack, spec, topic, server.endpoint_url, workdir, len(procs), group)
        worker.take_mark()
        procs.append(worker)
    elif step.action == "stop":
        procs[step.index].terminate()
    else:
        raise ValueError(f"unknown step action {step.action!r}")


def _wait_delivered(server: Any, expected: int, timeout_s: float, procs: list[Measured],
                    timeline: Timeline | None = None) -> bool:
    deadline = time.monotonic() + timeout_s
    last_poll = 0.0
    while time.monotonic() < deadline:
        next_step = timeline.due() if timeline is not None else None
        if time.monotonic() - last_poll >= STATS_POLL_S:
            last_poll = time.monotonic()
            if distinct_accepted(server) >= expected:
                return True
            for proc in procs:
                if proc.stopped or proc.alive():
                    continue
                if proc.proc is not None and proc.proc.returncode == EXIT_CONSUMER_WEDGED:
                    proc.restart()  # what Kubernetes would do; counted in the result's `restarts`
                    continue
                return False
        time.sleep(min(STATS_POLL_S, TIMELINE_POLL_S if next_step is not None else STATS_POLL_S))
    return False


def _delta(a: Any, b: Any) -> float | None:
    return None if a is None or b is None else round(b.cpu_s - a.cpu_s, 3)


def _result(
    spec: RunSpec, rows: list[measure.Row], stats: dict[str, Any], expected_ids: list[str], procs: list[Measured],
    started: float, first_ready: float, all_ready: float, reached: bool, exit_codes: list[int | None], *,
    cpu: tuple[float | None, float | None, float | None], gen_report: dict[str, Any],
    load: tuple[float, float, float, float],
) -> dict[str, Any]:
    delivered = len(rows)
    not_stored = measure.lost(expected_ids, rows)
    duplicates = int(stats.get("duplicate_events", 0))
    same_content = int(stats.get("same_content_events", duplicates))
    throttled = int(stats.get("throttled", 0))
    rejected = sum(int(v) for v in stats.get("rejected", {}).values())
    requests = int(stats.get("requests", {}).get("PutEvents", 0))
    ok_requests = max(0, requests - throttled - rejected)
    worker_cpu = [round(p.cpu_since_mark(), 3) for p in procs]
    server_cpu, broker_cpu, generator_cpu = cpu
    eps, seconds = measure.end_to_end_rate(delivered, first_ready, rows)
    per_k = 1000.0 / delivered if delivered else math.nan
    result: dict[str, Any] = {
        "name": spec.name,
        "label": spec.label,
        "kind": spec.kind,
        "feed": "backlog" if spec.dataset else "paced",
        "layout": spec.dataset.layout if spec.dataset else "realistic",
        "processes": len(procs),
        "client": spec.client,
        "consumer_overrides": spec.consumer_overrides or None,
        "transport": spec.transport,
        "delivery": spec.delivery,
        "faults": spec.faults,
        "expected_events": len(expected_ids),
        "delivered_events": delivered,
        "complete": reached,
        "restarts": sum(p.restarts for p in procs),  # workers restarted after a wedged consumer exited
        # Not stored: expected IDs absent from the store. The local Personalize also drops exact
        # duplicates (same user, item, type, value, sentAt, properties): at paced rates above
        # 1,000/s two anonymous views of one item can share a millisecond. Those are counted in
        # same_content_events (part of duplicate_events); "lost" is what they do not explain.
        "not_stored_events": not_stored,
        "duplicate_events": duplicates,
        "same_content_events": same_content,
        "lost_events": max(0, not_stored - same_content),
        "ready_after_s": round(first_ready - started, 2),
        "seconds": round(seconds, 3),
        "events_per_s": round(eps, 1),
        "steady_events_per_s": round(measure.steady_rate(rows, all_ready), 1),
        "put_events_requests": requests,
        "ok_requests": ok_requests,
        "throttled": throttled,
        "rejected": rejected,
        "events_per_call": round(int(stats.get("accepted_events", 0)) / ok_requests, 2) if ok_requests else None,
        "ideal_events_per_call": spec.dataset.ideal_fill if spec.dataset and spec.kind == "worker" else None,
        "cpu_s": {"workers": worker_cpu, "local_personalize": server_cpu, "broker": broker_cpu,
                  "generator": generator_cpu},
        "cpu_s_per_1000": round(sum(worker_cpu) * per_k, 4),
        "server_cpu_s_per_1000": round(server_cpu * per_k, 4) if server_cpu is not None else None,
        "rss_peak_mb": round(max((p.last.rss_peak_mb for p in procs if p.last), default=math.nan), 1),
        "rss_peak_mb_each": [round(p.last.rss_peak_mb, 1) if p.last else None for p in procs],
        "exit_codes": exit_codes,
    }
    waited, machine_cpu, harness_cpu, wall = load
    ours = sum(worker_cpu) + (server_cpu or 0.0) + (broker_cpu or 0.0) + (generator_cpu or 0.0)
    result["run_cpu_cores"] = round(ours / wall, 2) if wall > 0 else None  # every process of the run, in cores
    # Whatever else the machine did meanwhile (another test suite, a build): non-zero means contaminated.
    result["foreign_cpu_cores"] = round(max(0.0, machine_cpu - ours - harness_cpu) / wall, 2) if wall > 0 else None
    result["waited_for_quiet_s"] = round(waited, 1)
    if spec.rate is not None:
        window = max(r[2] for r in rows) - min(r[2] for r in rows) if rows else math.nan
        result.update({
            "offered_events_per_s": round(spec.rate, 1),
            "achieved_events_per_s": round(delivered / window, 1) if window and window > 0 else None,
            "latency_ms": measure.latency_ms(rows),
            "producer_lag_s": round(float(gen_report.get("elapsed_s", 0.0)) - spec.seconds, 3),
        })
    if spec.faults and spec.faults.get("throttle_rps"):
        result["quota"] = {"rps": spec.faults["throttle_rps"],
                           **measure.quota_use(rows, float(spec.faults["throttle_rps"]), first_ready)}
    return result


def _quota_figures(result: dict[str, Any], spec: RunSpec, rows: list[measure.Row], applied: list[dict[str, Any]],
                   first_ready: float, all_ready: float) -> dict[str, Any]:
    """What a run against a per-group quota (`quota_rps`) shows: use of the quota, the share of calls
    throttled, and, for a storm in the timeline, how fast it was over."""
    result["quotas"] = spec.quotas
    if applied:
        result["timeline"] = applied
    group_quota = (spec.faults or {}).get("quota_rps", {}).get("PutEvents")
    if group_quota:
        result["quota"] = {"rps": group_quota,
                           **measure.quota_use(rows, float(group_quota), first_ready, steady_from=all_ready + 2.0)}
        requests = result["put_events_requests"]
        result["throttled_share"] = round(result["throttled"] / requests, 5) if requests else None
    marks = {step["label"]: step["wall"] for step in applied}
    if "storm" in marks and "storm_end" in marks:
        result["storm"] = {"seconds": round(marks["storm_end"] - marks["storm"], 2),
                           **measure.storm_recovery(rows, marks["storm"], marks["storm_end"])}
    return result
