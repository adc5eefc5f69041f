"""Turn run results into the summary (with the issue's targets checked), a Markdown table and a chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

#: The issue's targets, per worker process on a 2-core machine.
TARGET_EPS = 12_000.0
TARGET_SPEEDUP = 15.0
TARGET_QUOTA_USE = 0.95
TARGET_P99_HALF_MS = 500.0
TARGET_RSS_MB = 250.0
TARGET_SCALING = 1.8
#: The maintained HTTP client may cost at most this much worker CPU per event over the former
#: hand-written pool (security issue); above it the closing note carries the profile.
TARGET_CLIENT_CPU_RATIO = 1.2
#: Decoding Confluent-framed Avro may cut events/s by at most 25 % against JSON in the same run.
TARGET_AVRO_OVER_JSON = 0.75
#: Issue 12: one dataset group's quota shared by a fleet, recovery from throttling, many tenants.
TARGET_SHARED_USE = 0.97
TARGET_THROTTLED_SHARE = 0.01
TARGET_SKEWED_USE = 0.95
TARGET_RECOVERY_S = 5.0
TARGET_EVENTS_PER_CALL_AFTER_STORM = 4.5
TARGET_TENANTS_RATIO = 0.8
#: Not the issue's (it asks for the figures, not a bound): the whole run of a scale event, two rebalances
#: included, which stop every member's fetching for a few seconds (eager rebalancing).
TARGET_SCALE_EVENT_USE = 0.9
#: The runs that compare the shared quota with the static split: (scenario, run names).
QUOTA_SCENARIOS = ("quota_shared_4_replicas", "quota_shared_scale_event", "quota_shared_skewed", "throttle_recovery")
NONE = "\u2013"  # en dash: "not measured" in the table
TIMES = "\u00d7"


def _first(done: dict[str, list[dict[str, Any]]], scenario: str) -> dict[str, Any] | None:
    runs = done.get(scenario) or []
    return runs[0] if runs else None


def targets(done: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each target with the measured value and whether it was met (absent when not measured)."""
    out: dict[str, dict[str, Any]] = {}

    def check(name: str, value: float | None, target: float, *, at_most: bool = False) -> None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return
        met = value <= target if at_most else value >= target
        out[name] = {"value": round(value, 3), "target": target, "met": met, "rule": "<=" if at_most else ">="}

    base, full = _first(done, "baseline"), _first(done, "worker_full")
    if full:
        check("events_per_s_per_process", full["events_per_s"], TARGET_EPS)
    if full and base and base["events_per_s"]:
        check("speedup_vs_baseline", full["events_per_s"] / base["events_per_s"], TARGET_SPEEDUP)
    if quota := _first(done, "quota"):
        check("quota_utilisation_steady", quota["quota"]["steady"], TARGET_QUOTA_USE)
        check("quota_lost_events", float(quota["lost_events"]), 0.0, at_most=True)
    if half := _first(done, "latency_half"):
        check("p99_ms_half_load", half["latency_ms"]["p99"], TARGET_P99_HALF_MS, at_most=True)
    workers = [r for runs in done.values() for r in runs if r["kind"] == "worker"]
    if workers:
        check("rss_peak_mb", max(r["rss_peak_mb"] for r in workers), TARGET_RSS_MB, at_most=True)
    two = _first(done, "scaling")
    if two and full and full["steady_events_per_s"]:
        check("scaling_2_over_1", two["steady_events_per_s"] / full["steady_events_per_s"], TARGET_SCALING)
    net = {r["name"]: r for r in done.get("scaling") or []}
    if "scaling_net_1" in net and "scaling_net_2" in net and net["scaling_net_1"]["steady_events_per_s"]:
        check("scaling_2_over_1_network_bound",
              net["scaling_net_2"]["steady_events_per_s"] / net["scaling_net_1"]["steady_events_per_s"],
              TARGET_SCALING)
    clients = {r["name"]: r for r in done.get("client_compare") or []}
    shipped, former = clients.get("client_lean_aiohttp"), clients.get("client_lean_http1")
    if shipped and former and former.get("cpu_s_per_1000"):
        check("client_cpu_aiohttp_over_former_pool", shipped["cpu_s_per_1000"] / former["cpu_s_per_1000"],
              TARGET_CLIENT_CPU_RATIO, at_most=True)
    _quota_targets(done, check)
    formats = {r["name"]: r for r in done.get("avro_vs_json") or []}
    as_json, as_avro = formats.get("format_json"), formats.get("format_avro")
    if as_json and as_avro and as_json["events_per_s"]:
        check("avro_over_json", as_avro["events_per_s"] / as_json["events_per_s"], TARGET_AVRO_OVER_JSON)
    return out


def _shared(done: dict[str, list[dict[str, Any]]], scenario: str) -> dict[str, Any] | None:
    return next((r for r in done.get(scenario) or [] if r.get("scheme") == "shared"), None)


def _quota_targets(done: dict[str, list[dict[str, Any]]], check: Any) -> None:
    if four := _shared(done, "quota_shared_4_replicas"):
        check("quota_shared_4_replicas_utilisation", four["quota"]["steady"], TARGET_SHARED_USE)
        check("quota_shared_4_replicas_throttled_share", four["throttled_share"], TARGET_THROTTLED_SHARE,
              at_most=True)
        check("quota_shared_4_replicas_lost_events", float(four["lost_events"]), 0.0, at_most=True)
    if scale := _shared(done, "quota_shared_scale_event"):
        check("quota_shared_scale_event_utilisation", scale["quota"]["overall"], TARGET_SCALE_EVENT_USE)
        check("quota_shared_scale_event_throttled_share", scale["throttled_share"], TARGET_THROTTLED_SHARE,
              at_most=True)
        check("quota_shared_scale_event_lost_events", float(scale["lost_events"]), 0.0, at_most=True)
    if skewed := _shared(done, "quota_shared_skewed"):
        check("quota_shared_skewed_utilisation", skewed["quota"]["steady"], TARGET_SKEWED_USE)
        check("quota_shared_skewed_lost_events", float(skewed["lost_events"]), 0.0, at_most=True)
    if (storm := _shared(done, "throttle_recovery")) and "storm" in storm:
        recovery = storm["storm"]["recovery_s"]
        check("throttle_recovery_s", float("inf") if recovery is None else recovery, TARGET_RECOVERY_S,
              at_most=True)
        check("throttle_recovery_events_per_call", storm["storm"]["events_per_call_after"],
              TARGET_EVENTS_PER_CALL_AFTER_STORM)
        check("throttle_recovery_lost_events", float(storm["lost_events"]), 0.0, at_most=True)
    tenants = {r["name"]: r for r in done.get("tenants_50") or []}
    one, many = tenants.get("tenants_1"), tenants.get("tenants_50")
    if one and many and one["events_per_s"]:
        check("tenants_50_ratio", many["events_per_s"] / one["events_per_s"], TARGET_TENANTS_RATIO)


def quota_comparison(done: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Shared scheme against the static split, scenario by scenario (same data, same run of the bench)."""
    rows = []
    for scenario in QUOTA_SCENARIOS:
        for r in done.get(scenario) or []:
            storm = r.get("storm") or {}
            rows.append({
                "scenario": scenario, "scheme": r.get("scheme"), "processes": r["processes"],
                "utilisation_steady": (r.get("quota") or {}).get("steady"),
                "utilisation_overall": (r.get("quota") or {}).get("overall"),
                "throttled_share": r.get("throttled_share"), "lost_events": r["lost_events"],
                "events_per_call": r["events_per_call"], "recovery_s": storm.get("recovery_s"),
                "events_per_call_after_storm": storm.get("events_per_call_after"),
                "small_call_share_after_storm": storm.get("small_call_share_after"),
                "seconds": r["seconds"], "complete": r["complete"], "restarts": r.get("restarts", 0),
            })
    return rows


def quota_markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    lines = ["| scenario | scheme | quota use steady | quota use whole run | calls throttled | lost | events/call "
             "| recovery s | events/call after storm |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        def pct(value: Any) -> str:
            return NONE if value is None else f"{value:.1%}"
        lines.append(f"| {row['scenario']} | {row['scheme']} | {pct(row['utilisation_steady'])} | "
                     f"{pct(row['utilisation_overall'])} | {pct(row['throttled_share'])} | {row['lost_events']} | "
                     f"{_fmt(row['events_per_call'], 2)} | {_fmt(row['recovery_s'], 1)} | "
                     f"{_fmt(row['events_per_call_after_storm'], 2)} |")
    return "\n".join(lines)


def headline_eps(r: dict[str, Any]) -> float:
    """The events/s a run is quoted with: end to end (ready to last delivery) for one process
    draining a backlog; the steady window when all had work for several processes; the
    achieved rate for a paced run."""
    if r["feed"] == "paced":
        return float(r.get("achieved_events_per_s") or r["events_per_s"])
    if r["processes"] > 1:
        return float(r["steady_events_per_s"])
    return float(r["events_per_s"])


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NONE
    return f"{value:,.{digits}f}"


def markdown(done: dict[str, list[dict[str, Any]]], machine: dict[str, Any], checks: dict[str, Any]) -> str:
    base = _first(done, "baseline")
    base_eps = base["events_per_s"] if base else None
    lines = [
        f"Machine: {machine['nproc']} cores ({machine['cpu_model']}), {machine['mem_gb']} GB, "
        f"Python {machine['python']}; broker, local Personalize and worker share these cores.",
        "",
        f"| run | feed | events | events/s | steady events/s | {TIMES} baseline | events/call (data's ceiling) | "
        "worker CPU s/1k ev | local-P CPU s/1k ev | peak RSS MB | latency p50/p95/p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for runs in done.values():
        for r in runs:
            eps = headline_eps(r)
            speed = f"{eps / base_eps:.1f}{TIMES}" if base_eps and r["kind"] == "worker" else NONE
            lat = r.get("latency_ms")
            lat_text = f"{_fmt(lat['p50'])} / {_fmt(lat['p95'])} / {_fmt(lat['p99'])}" if lat else NONE
            label = r["label"] + ("" if r["complete"] else " **INCOMPLETE**")
            if r.get("repeats"):
                label += f" (median of {len(r['repeats'])}: " + " / ".join(
                    _fmt(x["steady_events_per_s"] if r["processes"] > 1 else x["events_per_s"]) for x in r["repeats"]
                ) + ")"
            if (r.get("foreign_cpu_cores") or 0.0) > 0.1:
                label += f" (other load {r['foreign_cpu_cores']} cores)"
            if "quota" in r:
                q = r["quota"]
                label += (f" \u2014 quota use {q['steady']:.1%} steady, {q['overall']:.1%} from ready, "
                          f"throttled {r['throttled']}, lost {r['lost_events']}")
            fill = _fmt(r["events_per_call"], 2)
            if r.get("ideal_events_per_call"):
                fill += f" ({r['ideal_events_per_call']:.2f})"
            lines.append(
                f"| {label} | {r['feed']} | {r['delivered_events']:,} | {_fmt(eps)} | "
                f"{_fmt(r.get('steady_events_per_s'))} | {speed} | "
                f"{fill} | {_fmt(r['cpu_s_per_1000'], 3)} | "
                f"{_fmt(r['server_cpu_s_per_1000'], 3)} | {_fmt(r['rss_peak_mb'])} | {lat_text} |"
            )
    comparison = quota_markdown(quota_comparison(done))
    if comparison:
        lines += ["", comparison]
    if checks:
        lines += ["", "| target | measured | target | met |", "|---|---:|---:|---|"]
        for name, c in checks.items():
            lines.append(f"| {name} | {c['value']:,} | {c['rule']} {c['target']:,} | {'yes' if c['met'] else 'NO'} |")
    return "\n".join(lines)


def chart(done: dict[str, list[dict[str, Any]]], machine: dict[str, Any], path: Path) -> bool:
    """Throughput by configuration (baseline beside) and latency of the paced runs; False without matplotlib."""
    try:
        import matplotlib  # noqa: PLC0415 - optional: the `bench` extra

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
        import matplotlib.ticker  # noqa: PLC0415
    except ImportError:
        return False
    runs = [r for rs in done.values() for r in rs]
    throughput = [r for r in runs if r["feed"] == "backlog"]
    paced = [r for r in runs if r["feed"] == "paced"]
    fig, axes = plt.subplots(1, 2, figsize=(15, max(4.5, 0.42 * max(len(throughput), len(paced)) + 1.5)))
    ax = axes[0]
    names = [r["label"] for r in throughput]
    values = [headline_eps(r) for r in throughput]
    palette = {"realistic": "#4c72b0", "dense": "#55a868", "long": "#dd8452"}
    colors = ["#c44e52" if r["kind"] == "baseline" else palette.get(r["layout"], "#4c72b0") for r in throughput]
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks(range(len(values)), names, fontsize=8)
    ax.invert_yaxis()
    for i, (v, r) in enumerate(zip(values, throughput, strict=True)):
        ax.text(v, i, f" {v:,.0f}  ({r['events_per_call']} ev/call)", va="center", fontsize=7)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _pos: f"{x / 1000:g}k"))
    ax.axvline(TARGET_EPS, color="grey", linestyle="--", linewidth=1)
    ax.text(TARGET_EPS, len(values) - 0.4, " target", fontsize=7, color="grey")
    ax.set_xlabel("events/s (red: naive baseline; green: dense-sessions data; orange: synthetic long sessions)",
                  fontsize=8)
    ax.set_title("Throughput, draining a pre-produced backlog")
    ax = axes[1]
    if paced:
        width = 0.27
        for k, (q, color) in enumerate((("p50", "#8fb9e0"), ("p95", "#4c72b0"), ("p99", "#1f3d66"))):
            ax.barh([i + (k - 1) * width for i in range(len(paced))], [r["latency_ms"][q] for r in paced],
                    height=width, color=color, label=q)
        ax.set_yticks(range(len(paced)),
                      [f"{r['label']}\n(offered {r['offered_events_per_s']:,.0f}/s)" for r in paced], fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ticks = [t for t in (10, 30, 100, 300, 1000, 3000, 10000, 30000)
                 if t <= 2 * max(r["latency_ms"]["p99"] for r in paced)]
        ax.set_xticks(ticks, [f"{t // 1000}k" if t >= 1000 else str(t) for t in ticks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.axvline(TARGET_P99_HALF_MS, color="grey", linestyle="--", linewidth=1)
        ax.legend(fontsize=8)
    ax.set_xlabel("event timestamp \u2192 acknowledged, ms (log scale)", fontsize=8)
    ax.set_title("Latency under paced live load")
    fig.suptitle(f"clickstream-worker benchmark — {machine['nproc']} cores, {machine['cpu_model']}, "
                 f"Python {machine['python']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
