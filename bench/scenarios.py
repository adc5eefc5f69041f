"""The benchmark plan: which runs make up each scenario, at which size for each mode.

Scenarios (``--only`` takes these names, comma-separated):

baseline           naive consumer, one synchronous boto3 put_events per event (small backlog: it is slow)
worker_full        `clickstream-worker run`, defaults, draining a large realistic backlog; also "1 process"
worker_botocore    the same with ``personalize.client: botocore`` (when the build has that option)
client_compare     one backlog drained by the lean client on aiohttp (shipped), on its former hand-written
                   HTTP pool (bench.http1_pool, a variant) and by aiobotocore: events/s and CPU per 1,000 events
worker_dense       the same backlog regrouped so each visitor's events are contiguous ("dense sessions")
worker_long        SYNTHETIC: dense, with sessions 5x longer, so batches are nearly full (fill upper bound)
latency_full       paced at 100 % of worker_full's measured rate: latency at full load
latency_half       paced at 50 %: latency at half load; also with fetch_min_bytes 64 KiB (default 1)
quota              local Personalize throttling at 1,000 req/s, worker at its 1,000 req/s default
scaling            2 worker processes in one group on worker_full's backlog (compared with worker_full),
                   and 1 vs 2 processes network-bound (20 ms emulated AWS round trip, concurrency 8)
sweep_linger       linger_ms over LINGER (backlog: events/s, fill; full mode also paced latency at 50 %)
sweep_concurrency  max_concurrency over CONCURRENCY (backlog)
avro_vs_json       the same events as JSON and as Confluent-framed Avro (loopback registry stand-in),
                   alternating runs, AVRO_PAIRS pairs: avro events/s over JSON events/s
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.avro_data import TRACK_SCHEMA, confluent_avro, realistic_records
from bench.processes import client_option_supported
from bench.registry_stub import LoopbackRegistry
from bench.runs import RunSpec, run
from bench.stack import ITEMS, SEED, USERS, Dataset, Stack

DEFAULT_LINGER_MS = 50.0
DEFAULT_CONCURRENCY = 64
QUOTA_RPS = 1000.0
NET_LATENCY_MS = 20.0  # emulated round trip to AWS in the network-bound scaling runs
NET_CONCURRENCY = 8
FALLBACK_FULL_RATE = 10_000.0
AVRO_PAIRS = 3  # alternating JSON/Avro runs: the median of each is compared
FOREIGN_LOAD_WARN = 0.1  # cores used by processes outside the run: above this a result is flagged


@dataclass(frozen=True)
class Sizes:
    baseline: int
    full: int
    botocore: int
    dense: int
    paced_s: float
    quota: int
    sweep: int
    linger: tuple[float, ...]
    concurrency: tuple[int, ...]
    sweep_latency: bool
    repeats: int = 1  # headline runs (baseline, worker_full, scaling_2) are repeated; the median is quoted


SIZES: dict[str, Sizes] = {
    "tiny": Sizes(baseline=300, full=3_000, botocore=2_000, dense=3_000, paced_s=3.0, quota=3_000, sweep=2_000,
                  linger=(0.0, 50.0), concurrency=(8, 64), sweep_latency=False),
    "quick": Sizes(baseline=1_500, full=40_000, botocore=20_000, dense=30_000, paced_s=6.0, quota=20_000,
                   sweep=15_000, linger=(0.0, 10.0, 50.0, 200.0), concurrency=(8, 32, 64, 128),
                   sweep_latency=False),
    "full": Sizes(baseline=3_000, full=200_000, botocore=100_000, dense=200_000, paced_s=30.0, quota=60_000,
                  sweep=50_000, linger=(0.0, 10.0, 50.0, 200.0), concurrency=(8, 32, 64, 128),
                  sweep_latency=True, repeats=3),
}

SCENARIOS = ("baseline", "worker_full", "worker_botocore", "client_compare", "worker_dense", "worker_long",
             "latency_full", "latency_half", "quota", "scaling", "sweep_linger", "sweep_concurrency", "avro_vs_json")


@dataclass
class Context:
    stack: Stack
    sizes: Sizes
    workdir: Path
    results_dir: Path
    done: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    quiet_timeout_s: float = 120.0
    _data: dict[tuple[int, str], Dataset] = field(default_factory=dict)

    def backlog(self, count: int, layout: str = "realistic") -> Dataset:
        """Produce each (size, layout) once; every run on it drains the same seeded events."""
        key = (count, layout)
        if key not in self._data:
            self._data[key] = self.stack.backlog(count, layout)
        return self._data[key]

    def run(self, spec: RunSpec) -> dict[str, Any]:
        spec.quiet_timeout_s = self.quiet_timeout_s
        result = run(self.stack, spec, self.workdir / spec.name)
        print(f"  {spec.name}: {_brief(result)}", flush=True)
        return result

    def run_median(self, spec: RunSpec) -> dict[str, Any]:
        """Run `repeats` times; return the run with the median events/s, carrying every repeat's figures."""
        runs = [self.run(spec) for _ in range(self.sizes.repeats)]
        if len(runs) == 1:
            return runs[0]
        key = "steady_events_per_s" if spec.processes > 1 else "events_per_s"
        median = sorted(runs, key=lambda r: float(r[key]))[len(runs) // 2]
        median["repeats"] = [{k: r[k] for k in ("events_per_s", "steady_events_per_s", "cpu_s_per_1000",
                                                 "foreign_cpu_cores")} for r in runs]
        return median

    def full_rate(self) -> float:
        """worker_full's events/s from this session, else from the last saved result."""
        runs = self.done.get("worker_full")
        if not runs:
            saved = self.results_dir / "worker_full.json"
            if saved.exists():
                runs = json.loads(saved.read_text()).get("runs")
        return float(runs[0]["events_per_s"]) if runs else FALLBACK_FULL_RATE


def _brief(r: dict[str, Any]) -> str:
    text = f"{r['events_per_s']:.0f} ev/s, {r['events_per_call']} ev/call, {r['cpu_s_per_1000']:.3f} cpu-s/1k"
    if "latency_ms" in r:
        lat = r["latency_ms"]
        text += f", p50/p95/p99 {lat['p50']}/{lat['p95']}/{lat['p99']} ms (offered {r['offered_events_per_s']:.0f})"
    if "quota" in r:
        q = r["quota"]
        text += (f", quota use {q['steady']:.1%} steady ({q['overall']:.1%} from ready), "
                 f"throttled {r['throttled']}, lost {r['lost_events']}")
    if (r.get("foreign_cpu_cores") or 0.0) > FOREIGN_LOAD_WARN:
        text += f"  [other processes used {r['foreign_cpu_cores']} cores meanwhile]"
    return text + ("" if r["complete"] else "  [INCOMPLETE]")


# -- scenarios ---------------------------------------------------------------------------


def baseline(ctx: Context) -> list[dict[str, Any]]:
    data = ctx.backlog(ctx.sizes.baseline)
    return [ctx.run_median(RunSpec("baseline", "naive baseline (sync boto3, 1 event/call)", kind="baseline",
                                   dataset=data))]


def worker_full(ctx: Context) -> list[dict[str, Any]]:
    data = ctx.backlog(ctx.sizes.full)
    return [ctx.run_median(RunSpec("worker_full", "worker, full load (backlog, defaults)", dataset=data))]


def worker_botocore(ctx: Context) -> list[dict[str, Any]]:
    if not client_option_supported():
        print("  worker_botocore: skipped (this build has no personalize.client option)")
        return []
    data = ctx.backlog(ctx.sizes.botocore)
    return [ctx.run(RunSpec("worker_botocore", "worker, aiobotocore client (backlog)", dataset=data,
                            client="botocore"))]


def client_compare(ctx: Context) -> list[dict[str, Any]]:
    """The lean client on aiohttp (shipped) vs on its former hand-written pool vs aiobotocore, same data."""
    data = ctx.backlog(ctx.sizes.full)
    return [
        ctx.run(RunSpec("client_lean_aiohttp", "worker, lean client on aiohttp (shipped)", dataset=data)),
        ctx.run(RunSpec("client_lean_http1", "worker, lean client on the former hand-written pool (variant)",
                        dataset=data, transport="http1")),
        ctx.run(RunSpec("client_aiobotocore", "worker, aiobotocore client", dataset=data, client="botocore")),
    ]


def worker_dense(ctx: Context) -> list[dict[str, Any]]:
    data = ctx.backlog(ctx.sizes.dense, "dense")
    return [ctx.run(RunSpec("worker_dense", "worker, DENSE sessions (backlog, regrouped data)", dataset=data))]


def worker_long(ctx: Context) -> list[dict[str, Any]]:
    data = ctx.backlog(ctx.sizes.dense, "long")
    return [ctx.run(RunSpec("worker_long", "worker, SYNTHETIC long sessions (near-full batches)", dataset=data))]


def latency_full(ctx: Context) -> list[dict[str, Any]]:
    rate = ctx.full_rate()
    return [ctx.run(RunSpec("latency_full", "worker, paced at 100% of full-load rate", rate=rate,
                            seconds=ctx.sizes.paced_s))]


def latency_half(ctx: Context) -> list[dict[str, Any]]:
    rate = ctx.full_rate() / 2
    return [
        ctx.run(RunSpec("latency_half", "worker, paced at 50% of full-load rate", rate=rate,
                        seconds=ctx.sizes.paced_s)),
        ctx.run(RunSpec("latency_half_minbytes64k", "worker + fetch_min_bytes 64 KiB (variant), paced 50%",
                        rate=rate, seconds=ctx.sizes.paced_s, consumer_overrides={"fetch_min_bytes": 65_536})),
    ]


def quota(ctx: Context) -> list[dict[str, Any]]:
    data = ctx.backlog(ctx.sizes.quota)
    spec = RunSpec("quota", "worker vs 1,000 req/s quota (throttling local Personalize)", dataset=data,
                   delivery={"put_events_rps": QUOTA_RPS}, faults={"throttle_rps": QUOTA_RPS})
    return [ctx.run(spec)]


def scaling(ctx: Context) -> list[dict[str, Any]]:
    """Two processes in one group, CPU-bound (as worker_full) and network-bound.

    CPU-bound, one process already takes about a core and the local Personalize most of
    the other, so a second process has no core to run on: that ratio measures the machine.
    Network-bound is how a worker meets real AWS (tens of ms per call): each call waits
    `NET_LATENCY_MS` in the local Personalize (asyncio.sleep, no CPU) and each process
    keeps `NET_CONCURRENCY` calls in flight, so one process is limited by its own window
    and a second one adds its own if nothing is shared (partitions split by the group,
    no global lock, no single hot connection).
    """
    data = ctx.backlog(ctx.sizes.full)
    out = [ctx.run_median(RunSpec("scaling_2", "worker x2 processes, one group (backlog)", dataset=data,
                                  processes=2))]
    net_data = ctx.backlog(ctx.sizes.sweep)
    delivery = {"max_concurrency": NET_CONCURRENCY}
    faults = {"latency_ms": NET_LATENCY_MS}
    for processes in (1, 2):
        out.append(ctx.run(RunSpec(
            f"scaling_net_{processes}",
            f"worker x{processes}, network-bound ({NET_LATENCY_MS:g} ms per call, concurrency {NET_CONCURRENCY})",
            dataset=net_data, processes=processes, delivery=delivery, faults=faults)))
    return out


def sweep_linger(ctx: Context) -> list[dict[str, Any]]:
    data = ctx.backlog(ctx.sizes.sweep)
    out = []
    for linger in ctx.sizes.linger:
        delivery = {"linger_ms": linger, "max_concurrency": DEFAULT_CONCURRENCY}
        out.append(ctx.run(RunSpec(f"linger_{linger:g}", f"linger {linger:g} ms (backlog)", dataset=data,
                                   delivery=delivery)))
        if ctx.sizes.sweep_latency:
            out.append(ctx.run(RunSpec(f"linger_{linger:g}_paced", f"linger {linger:g} ms, paced 50%",
                                       rate=ctx.full_rate() / 2, seconds=ctx.sizes.paced_s / 2,
                                       delivery=delivery)))
    return out


def sweep_concurrency(ctx: Context) -> list[dict[str, Any]]:
    data = ctx.backlog(ctx.sizes.sweep)
    return [
        ctx.run(RunSpec(f"concurrency_{c}", f"max_concurrency {c} (backlog)", dataset=data,
                        delivery={"linger_ms": DEFAULT_LINGER_MS, "max_concurrency": c}))
        for c in ctx.sizes.concurrency
    ]


def avro_vs_json(ctx: Context) -> list[dict[str, Any]]:
    """The same seeded events drained as JSON and as Confluent-framed Avro, runs alternating.

    The Avro topic's schema is served by `bench.registry_stub` on loopback (fetched once per
    run: the worker caches it), so the difference is the decoding itself. Each encoding runs
    `AVRO_PAIRS` times, alternating, and the run with its median events/s is reported; the
    ratio is `targets.avro_over_json`.
    """
    count = ctx.sizes.full
    records = realistic_records(SEED + 7, count, USERS, ITEMS)
    ids = [r.event_id for r in records if r.event_id is not None]
    registry = LoopbackRegistry().start()
    try:
        schema_id = registry.register("bench-avro-value", json.dumps(TRACK_SCHEMA))
        as_json = ctx.stack.backlog_of("json", [(r.key, r.value) for r in records], ids, "realistic-json")
        as_avro = ctx.stack.backlog_of("avro", confluent_avro(records, schema_id), ids, "realistic-avro")
        extra = {"format": "confluent", "registry": {"url": registry.url}}
        json_runs: list[dict[str, Any]] = []
        avro_runs: list[dict[str, Any]] = []
        for _ in range(AVRO_PAIRS):
            json_runs.append(ctx.run(RunSpec("format_json", "worker, JSON values (same events as Avro)",
                                             dataset=as_json)))
            avro_runs.append(ctx.run(RunSpec("format_avro", "worker, Confluent-framed Avro values",
                                             dataset=as_avro, topic_extra=extra)))
    finally:
        registry.stop()
    out = []
    for runs in (json_runs, avro_runs):
        median = sorted(runs, key=lambda r: float(r["events_per_s"]))[len(runs) // 2]
        median["repeats"] = [{k: r[k] for k in ("events_per_s", "steady_events_per_s", "cpu_s_per_1000",
                                                 "foreign_cpu_cores")} for r in runs]
        out.append(median)
    return out


RUNNERS: dict[str, Callable[[Context], list[dict[str, Any]]]] = {
    "baseline": baseline,
    "worker_full": worker_full,
    "worker_botocore": worker_botocore,
    "client_compare": client_compare,
    "worker_dense": worker_dense,
    "worker_long": worker_long,
    "latency_full": latency_full,
    "latency_half": latency_half,
    "quota": quota,
    "scaling": scaling,
    "sweep_linger": sweep_linger,
    "sweep_concurrency": sweep_concurrency,
    "avro_vs_json": avro_vs_json,
}
