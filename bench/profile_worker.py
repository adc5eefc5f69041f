"""Where the worker's CPU goes at full load: ``python -m bench.profile_worker [--events N] [--client lean|botocore]``.

py-spy is not available here, so this runs `worker.app.Worker` in-process with one
`cProfile.Profile` per thread (the event loop, the consumer thread, kafka-python's I/O
threads). cProfile's default timer is wall time, so time spent blocked (``epoll``,
lock waits, ``sleep``: `WAITS`) is taken out of every total; what remains is CPU.
Deterministic profiling inflates small, frequently called functions (about 2x overall
here); the shares are indicative, the unprofiled CPU per event comes from
``python -m bench.run``.

Writes ``bench/results/profile_<client>.txt`` (per-thread totals, categories, top
functions) and ``profile_<client>.json`` (the numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import cProfile
import json
import os
import pstats
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.processes import aws_env, write_worker_config
from bench.runs import NO_QUOTA
from bench.stack import TRACKING_ID, Stack, accepted

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_PROFILES: list[tuple[str, cProfile.Profile]] = []
_MONITOR = "bench-profile-monitor"

#: Inclusive (cumulative) CPU of these functions, matched as (file suffix, function name).
#: They overlap (a call contains its signing); each is a share of all profiled CPU. Only
#: functions that never block belong here: a cumulative time cannot have waits taken out
#: (coroutines are fine: cProfile stops their clock while they are suspended).
INCLUSIVE: dict[str, tuple[str, str]] = {
    "aiobotocore _make_api_call (whole SDK call)": ("aiobotocore/client.py", "_make_api_call"),
    "botocore parameter validation": ("botocore/validate.py", "validate"),
    "botocore serialisation": ("botocore/serialize.py", "serialize_to_request"),
    "botocore timestamp conversion (sentAt)": ("botocore/serialize.py", "_convert_timestamp_to_str"),
    "dateutil parsing": ("dateutil/parser/_parser.py", "parse"),
    "botocore user-agent": ("botocore/useragent.py", "to_string"),
    "botocore SigV4 signing": ("botocore/auth.py", "add_auth"),
    "botocore event hooks (emit)": ("botocore/hooks.py", "emit"),
    "botocore response parsing": ("botocore/parsers.py", "parse"),
    "lean client call": ("worker/ingest/lean_client.py", "_call"),
    "lean client signing": ("worker/ingest/lean_client.py", "_signed_headers"),
    "json.dumps (request bodies)": ("json/__init__.py", "dumps"),
    "json.loads (event values)": ("json/__init__.py", "loads"),
    "worker decode (map + validate)": ("worker/mapping.py", "decode"),
    "worker validation": ("worker/validation.py", "validate"),
    "pipeline._decode (decode + batch)": ("worker/ingest/pipeline.py", "_decode"),
    "sender.deliver": ("worker/ingest/sender.py", "deliver"),
    "kafka record parsing": ("kafka/record/default_records.py", "_read_msg"),
    "consumer completions": ("worker/ingest/consumer.py", "_apply_completions"),
    "aiohttp client request": ("aiohttp/client.py", "_request"),
    "HTTP transport post (lean client)": ("worker/ingest/http_transport.py", "post"),
    "prometheus metrics": ("prometheus_client/metrics.py", "observe"),
}

#: Built-ins that block rather than compute (wall time, not CPU).
WAITS = ("of 'select.epoll' objects", "of 'select.poll' objects", "select.select", "of '_thread.lock' objects",
         "of '_thread.RLock' objects", "of '_queue.SimpleQueue' objects", "time.sleep")

#: Exclusive CPU grouped by where the code lives (first match wins).
PACKAGES = (
    ("aiobotocore", "aiobotocore/"), ("botocore", "botocore/"), ("dateutil", "dateutil/"),
    ("aiohttp", "aiohttp/"), ("yarl/multidict", "yarl/"), ("yarl/multidict", "multidict/"),
    ("kafka-python", "kafka/"), ("asyncio", "asyncio/"), ("json", "json/"),
    ("worker.mapping/validation", "worker/mapping.py"), ("worker.mapping/validation", "worker/validation.py"),
    ("worker.ingest", "worker/ingest/"), ("worker (other)", "worker/"), ("prometheus_client", "prometheus_client/"),
    ("structlog", "structlog/"), ("ssl/socket/selectors", "selectors.py"), ("ssl/socket/selectors", "socket.py"),
    ("threading/queue", "threading.py"), ("threading/queue", "queue.py"), ("hashlib/hmac", "hmac.py"),
    ("hashlib/hmac", "hashlib.py"), ("urllib", "urllib/"), ("http.client/email", "http/"),
    ("http.client/email", "email/"),
)


def _install_thread_profiling() -> None:
    """Profile every thread started from now on, subclasses with their own `run` included.

    `threading.setprofile` installs a hook in each new thread; its first call swaps itself
    for a fresh `cProfile.Profile`, which is how one profiler per thread is had without
    touching the worker's classes.
    """

    def start(frame: Any, event: str, arg: Any) -> None:
        thread = threading.current_thread()
        sys.setprofile(None)
        if thread.name == _MONITOR:
            return
        profile = cProfile.Profile()
        _PROFILES.append((thread.name, profile))
        profile.enable()

    threading.setprofile(start)


def _is_wait(key: tuple[str, int, str]) -> bool:
    return key[0] == "~" and any(marker in key[2] for marker in WAITS)


def _package(filename: str) -> str:
    path = filename.replace("\\", "/")
    for name, marker in PACKAGES:
        if marker in path:
            return name
    return "other"


def analyse(stats: pstats.Stats) -> dict[str, Any]:
    """Totals, exclusive CPU by package (built-ins charged to their callers), inclusive CPU of key calls."""
    raw: dict[Any, Any] = {key: entry for key, entry in stats.stats.items()  # type: ignore[attr-defined]
                           if not _is_wait(key)}
    total = sum(entry[2] for entry in raw.values())
    by_package: dict[str, float] = defaultdict(float)
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, callers) in raw.items():
        if filename == "~" and callers:  # a C built-in: charge it to whoever called it
            for (caller_file, _l, _n), caller_entry in callers.items():
                by_package[_package(caller_file) + " (C calls)"] += caller_entry[2]
        else:
            by_package[_package(filename)] += tottime
    inclusive: dict[str, float] = {}
    for label, (suffix, func) in INCLUSIVE.items():
        inclusive[label] = sum(entry[3] for (filename, _l, name), entry in raw.items()
                               if name == func and filename.replace("\\", "/").endswith(suffix))
    top = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:40]
    return {
        "total_cpu_s": round(total, 3),
        "by_package_pct": {k: round(100 * v / total, 1) for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])
                           if v / total >= 0.002},
        "inclusive_pct": {k: round(100 * v / total, 1) for k, v in inclusive.items() if v > 0},
        "top_exclusive": [
            {"function": f"{Path(f).name}:{line}:{name}" if f != "~" else name, "tottime_s": round(e[2], 3),
             "pct": round(100 * e[2] / total, 1), "calls": e[1]}
            for (f, line, name), e in top
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--client", choices=["lean", "botocore"], default=None, help="default: the worker's default")
    parser.add_argument("--layout", choices=["realistic", "dense"], default="realistic")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    os.environ.update({k: v for k, v in aws_env().items() if k.startswith("AWS_")})
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS"):
        os.environ.pop(name, None)

    from worker.app import Worker  # noqa: PLC0415 - after the environment is set
    from worker.config import load_settings  # noqa: PLC0415
    from worker.observe.logging import configure_logging  # noqa: PLC0415

    workdir = Path(tempfile.mkdtemp(prefix="clickstream-profile-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    with Stack(workdir) as stack:
        data = stack.backlog(args.events, args.layout)
        server = stack.personalize("profile")
        config = write_worker_config(workdir / "worker.yaml", bootstrap=stack.bootstrap,
                                     endpoint_url=server.endpoint_url, topics=[(data.topic, TRACKING_ID)],
                                     group_id="bench-profile", quotas=NO_QUOTA, client=args.client)
        settings = load_settings(config)
        configure_logging(json=True, level="WARNING", redact_user_ids=True, redaction_salt="")
        worker = Worker(settings, handle_signals=False)
        loop_box: list[asyncio.AbstractEventLoop] = []
        finished: dict[str, float] = {}

        def monitor() -> None:
            while not loop_box:
                time.sleep(0.05)
            finished["start"] = time.monotonic()
            while accepted(server) < args.events:
                time.sleep(0.5)
            finished["end"] = time.monotonic()
            loop_box[0].call_soon_threadsafe(worker.request_stop)

        async def run_worker() -> int:
            loop_box.append(asyncio.get_running_loop())
            return await worker.run()

        _install_thread_profiling()
        threading.Thread(target=monitor, name=_MONITOR, daemon=True).start()
        main_profile = cProfile.Profile()
        main_profile.enable()
        asyncio.run(run_worker())
        main_profile.disable()
    per_thread: dict[str, float] = {"MainThread (event loop)": _total(main_profile)}
    stats = pstats.Stats(main_profile)
    for name, profile in _PROFILES:
        per_thread[name] = per_thread.get(name, 0.0) + _total(profile)
        stats.add(profile)
    client = args.client or _default_client()
    result = {"events": args.events, "layout": args.layout, "client": client,
              "wall_s": round(finished.get("end", 0) - finished.get("start", 0), 2),
              "per_thread_cpu_s": {k: round(v, 3) for k, v in per_thread.items() if v >= 0.005},
              **analyse(stats)}
    result["profiled_cpu_ms_per_1000_events"] = round(1000 * result["total_cpu_s"] / args.events * 1000, 1)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"profile_{client}.json").write_text(json.dumps(result, indent=1) + "\n")
    text = render(result)
    (args.results_dir / f"profile_{client}.txt").write_text(text)
    print(text)
    return 0


def _default_client() -> str:
    from worker.config import PersonalizeSettings  # noqa: PLC0415

    field = PersonalizeSettings.model_fields.get("client")
    return str(field.default) if field is not None else "botocore"


def _total(profile: cProfile.Profile) -> float:
    """CPU of one thread: exclusive time of everything but the blocking built-ins."""
    profile.create_stats()
    entries = profile.stats.items()
    return float(sum(entry[2] for key, entry in entries if not _is_wait(key)))


def render(result: dict[str, Any]) -> str:
    lines = [f"worker profile: {result['events']:,} events ({result['layout']}), client {result['client']}, "
             f"{result['wall_s']} s wall under cProfile; {result['total_cpu_s']} CPU-s profiled "
             f"({result['profiled_cpu_ms_per_1000_events']} ms per 1,000 events, profiler overhead included)",
             "", "CPU by thread (s):"]
    lines += [f"  {k:40s} {v:8.3f}" for k, v in result["per_thread_cpu_s"].items()]
    lines += ["", "Exclusive CPU by package (% of all profiled CPU; C built-ins charged to their caller):"]
    lines += [f"  {k:40s} {v:5.1f} %" for k, v in result["by_package_pct"].items()]
    lines += ["", "Inclusive CPU of key calls (% of all profiled CPU; these overlap):"]
    lines += [f"  {k:48s} {v:5.1f} %" for k, v in result["inclusive_pct"].items()]
    lines += ["", "Top functions by exclusive CPU:"]
    lines += [f"  {e['pct']:5.1f} %  {e['tottime_s']:7.3f} s  {e['calls']:>9,}  {e['function']}"
              for e in result["top_exclusive"][:30]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
