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

Sharing one dataset group's quota (issue 12). Network-bound: the local Personalize adds NET_LATENCY_MS
per call and enforces GROUP_QUOTA requests/s per dataset group (`quota_rps`); each scenario runs the
shared scheme (`quotas.sharing: partitions`, the group's whole quota) and the static split (`sharing:
static`, quota / N per replica) on the same data, one after the other:
quota_shared_4_replicas   4 worker processes draining a backlog: quota use in steady seconds, calls throttled
quota_shared_scale_event  3 processes, a 4th joins at a third of the run, one leaves (SIGTERM) at two thirds
                          (KEDA-like): quota use and calls throttled over the whole run (static: quota / 4)
quota_shared_skewed       4 processes, one partition holds half the backlog: quota use in steady seconds
throttle_recovery         1 process; 10 s in, the group's quota drops to a tenth for STORM_S s: seconds until
                          events/s is back to 90 % of the pre-storm rate, events per call after the storm
tenants_50                the same events in 50 topics of one partition (50 trackers = 50 dataset groups,
                          50 lanes) and in one topic of 50 partitions (one tracker), alternating:
                          events/s of 50 over events/s of one (CPU-bound, no quota)
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
from bench.runs import RunSpec, Step, run
from bench.stack import ITEMS, SEED, USERS, Dataset, Stack

DEFAULT_LINGER_MS = 50.0
DEFAULT_CONCURRENCY = 64
QUOTA_RPS = 1000.0
NET_LATENCY_MS = 20.0  # emulated round trip to AWS in the network-bound scaling runs
NET_CONCURRENCY = 8
FALLBACK_FULL_RATE = 10_000.0
AVRO_PAIRS = 3  # alternating JSON/Avro runs: the median of each is compared
GROUP_QUOTA = 1000.0  # PutEvents requests/s of the dataset group, enforced by the local Personalize
SHARED_PROCESSES = 4
STORM_QUOTA = 100.0  # the group's quota during the storm: a tenth
TENANTS = 50
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
    shared: int = 3_000  # backlog of the quota-sharing runs (about 5 events per call at 1,000 calls/s)
    storm_pre_s: float = 2.0  # throttle_recovery: seconds at the full quota before the storm
    storm_s: float = 2.0  # and of the storm itself (the issue's: 30 s)
    storm_events: int = 3_000  # backlog of throttle_recovery: enough to outlast the storm by 10 s and more
    tenants_events: int = 2_000
    tenant_pairs: int = 1


SIZES: dict[str, Sizes] = {
    "tiny": Sizes(baseline=300, full=3_000, botocore=2_000, dense=3_000, paced_s=3.0, quota=3_000, sweep=2_000,
                  linger=(0.0, 50.0), concurrency=(8, 64), sweep_latency=False),
    "quick": Sizes(baseline=1_500, full=40_000, botocore=20_000, dense=30_000, paced_s=6.0, quota=20_000,
                   sweep=15_000, linger=(0.0, 10.0, 50.0, 200.0), concurrency=(8, 32, 64, 128),
                   sweep_latency=False, shared=60_000, storm_pre_s=5.0, storm_s=10.0, storm_events=100_000,
                   tenants_events=30_000),
    "full": Sizes(baseline=3_000, full=200_000, botocore=100_000, dense=200_000, paced_s=30.0, quota=60_000,
                  sweep=50_000, linger=(0.0, 10.0, 50.0, 200.0), concurrency=(8, 32, 64, 128),
                  sweep_latency=True, repeats=3, shared=200_000, storm_pre_s=10.0, storm_s=30.0,
                  storm_events=200_000, tenants_events=100_000, tenant_pairs=2),
}

SCENARIOS = ("baseline", "worker_full", "worker_botocore", "client_compare", "worker_dense", "worker_long",
             "latency_full", "latency_half", "quota", "scaling", "sweep_linger", "sweep_concurrency", "avro_vs_json",
             "quota_shared_4_replicas", "quota_shared_scale_event", "quota_shared_skewed", "throttle_recovery",
             "tenants_50")


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
    if r.get("throttled_share") is not None:
        text += f", {r['throttled_share']:.2%} of calls throttled"
    if "storm" in r:
        storm = r["storm"]
        text += (f", storm: back to 90 % in {storm['recovery_s']} s, {storm['events_per_call_after']} ev/call "
                 f"after ({storm['small_call_share_after']:.0%} of calls 1-2 events)")
    if r.get("restarts"):
        text += f", {r['restarts']} worker restart(s) after a wedged consumer"
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
                   quotas={"default": {"put_events_rps": QUOTA_RPS}}, faults={"throttle_rps": QUOTA_RPS})
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


# -- sharing one dataset group's quota (issue 12) -----------------------------------------------------------

SHARED = {"sharing": "partitions", "default": {"put_events_rps": GROUP_QUOTA}}
NET_FAULTS = {"latency_ms": NET_LATENCY_MS, "quota_rps": {"PutEvents": GROUP_QUOTA}}


def static_split(replicas: int) -> dict[str, Any]:
    """The old advice: each replica paces at the group's quota / replicas, whatever the assignment."""
    return {"sharing": "static", "default": {"put_events_rps": GROUP_QUOTA / replicas}}


def _pair(ctx: Context, name: str, label: str, static_n: int, **kwargs: Any) -> list[dict[str, Any]]:
    """The shared scheme, then the static split, on the same data and setting."""
    shared = ctx.run(RunSpec(name, f"{label}, shared quota", quotas=SHARED, **kwargs))
    shared["scheme"] = "shared"
    static = ctx.run(RunSpec(f"{name}_static", f"{label}, static quota / {static_n}", quotas=static_split(static_n),
                             **kwargs))
    static["scheme"] = f"static / {static_n}"
    return [shared, static]


def _expected_s(events: int, events_per_call: float = 5.0) -> float:
    """About how long a backlog takes at the group's quota."""
    return events / (GROUP_QUOTA * events_per_call)


def quota_shared_4_replicas(ctx: Context) -> list[dict[str, Any]]:
    data = ctx.backlog(ctx.sizes.shared)
    return _pair(ctx, "quota_shared_4", f"{SHARED_PROCESSES} workers, one group at {GROUP_QUOTA:g} req/s",
                 SHARED_PROCESSES, dataset=data, processes=SHARED_PROCESSES, faults=NET_FAULTS)


def quota_shared_scale_event(ctx: Context) -> list[dict[str, Any]]:
    data = ctx.backlog(ctx.sizes.shared)
    third = _expected_s(ctx.sizes.shared) / 3
    timeline = [Step(third, "start", "replica_joins"), Step(2 * third, "stop", "replica_leaves", index=0)]
    return _pair(ctx, "quota_shared_scale", "3 workers, +1 at 1/3, -1 at 2/3", SHARED_PROCESSES,
                 dataset=data, processes=3, faults=NET_FAULTS, timeline=timeline)


def quota_shared_skewed(ctx: Context) -> list[dict[str, Any]]:
    data = ctx.stack.backlog_skewed(ctx.sizes.shared, hot_share=0.5)
    return _pair(ctx, "quota_skewed", f"{SHARED_PROCESSES} workers, one partition holds half", SHARED_PROCESSES,
                 dataset=data, processes=SHARED_PROCESSES, faults=NET_FAULTS)


def throttle_recovery(ctx: Context) -> list[dict[str, Any]]:
    data = ctx.backlog(ctx.sizes.storm_events)
    pre, storm = ctx.sizes.storm_pre_s, ctx.sizes.storm_s
    timeline = [Step(pre, "faults", "storm", faults={**NET_FAULTS, "quota_rps": {"PutEvents": STORM_QUOTA}}),
                Step(pre + storm, "faults", "storm_end", faults=NET_FAULTS)]
    return _pair(ctx, "throttle_recovery", f"1 worker, quota to {STORM_QUOTA:g} req/s for {storm:g} s", 1,
                 dataset=data, faults=NET_FAULTS, timeline=timeline)


def tenants_50(ctx: Context) -> list[dict[str, Any]]:
    """The same events for one tenant and for 50, alternating runs; the median of each is compared."""
    one, many = ctx.stack.backlog_tenants(ctx.sizes.tenants_events, TENANTS)
    ones: list[dict[str, Any]] = []
    manys: list[dict[str, Any]] = []
    for _ in range(ctx.sizes.tenant_pairs):
        ones.append(ctx.run(RunSpec("tenants_1", f"worker, 1 topic of {TENANTS} partitions, 1 tracker",
                                    dataset=one)))
        manys.append(ctx.run(RunSpec(f"tenants_{TENANTS}", f"worker, {TENANTS} topics, {TENANTS} trackers/groups",
                                     dataset=many)))
    out = []
    for runs in (ones, manys):
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
    "quota_shared_4_replicas": quota_shared_4_replicas,
    "quota_shared_scale_event": quota_shared_scale_event,
    "quota_shared_skewed": quota_shared_skewed,
    "throttle_recovery": throttle_recovery,
    "tenants_50": tenants_50,
}
