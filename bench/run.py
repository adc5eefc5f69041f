"""Benchmark entry point: ``python -m bench.run [--quick] [--only NAME[,NAME...]]``.

Starts one embedded broker, produces seeded data before any timing, runs each scenario
against a fresh local Personalize (no quota unless the scenario sets one), and writes
``bench/results/<scenario>.json``, ``summary.json`` and ``chart.png``; then prints a
Markdown table. Modes: full (~10 min), ``--quick`` (~3 min), ``--tiny`` (seconds; the
smoke test). See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.procstat import machine
from bench.scenarios import RUNNERS, SCENARIOS, SIZES, Context
from bench.stack import Stack

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller backlogs and shorter paced runs (~3 min)")
    size.add_argument("--tiny", action="store_true", help="a few thousand events (smoke test only)")
    parser.add_argument("--only", help=f"comma-separated scenarios: {', '.join(SCENARIOS)}")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--quiet-timeout", type=float, default=120.0,
                        help="before each run, wait up to this long for other processes to go idle (0: never)")
    parser.add_argument("--keep-workdir", action="store_true", help="keep logs and data directories")
    return parser.parse_args(argv)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    # SIGINT/SIGTERM unwind through every `finally`, which stops each process started here
    # by PID (also when started in the background, where SIGINT would be ignored).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    only = [s.strip() for s in args.only.split(",")] if args.only else list(SCENARIOS)
    unknown = [s for s in only if s not in RUNNERS]
    if unknown:
        print(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    results_dir: Path = args.results_dir
    results_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="clickstream-bench-"))
    info = machine()
    began = time.monotonic()
    print(f"bench ({mode}): {', '.join(only)}; machine {info['nproc']} cores {info['cpu_model']}, "
          f"Python {info['python']}; work dir {workdir}", flush=True)
    failed: dict[str, str] = {}
    finished: dict[str, list[dict[str, Any]]] = {}
    try:
        with Stack(workdir) as stack:
            ctx = Context(stack, SIZES[mode], workdir, results_dir, done=finished,
                          quiet_timeout_s=args.quiet_timeout)
            for name in SCENARIOS:  # always in plan order: latency runs need worker_full's rate
                if name not in only:
                    continue
                print(f"[{time.monotonic() - began:6.1f}s] {name}", flush=True)
                try:
                    runs = RUNNERS[name](ctx)
                except Exception as exc:  # noqa: BLE001 - one broken scenario must not lose the others
                    failed[name] = f"{type(exc).__name__}: {exc}"
                    print(f"  {name} FAILED: {failed[name][:2000]}", flush=True)
                    continue
                if runs:
                    ctx.done[name] = runs
                    _write(results_dir / f"{name}.json", {"scenario": name, "mode": mode, "machine": info,
                                                          "runs": runs})
    finally:
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    done = _merge_saved(results_dir, finished, only, mode)
    checks = report.targets(done)
    summary = {"mode": mode, "machine": info, "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "duration_s": round(time.monotonic() - began, 1), "targets": checks, "failed": failed,
               "quota_comparison": report.quota_comparison(done), "scenarios": done}
    _write(results_dir / "summary.json", summary)
    charted = report.chart(done, info, results_dir / "chart.png")
    print()
    print(report.markdown(done, info, checks))
    if not charted:
        print("\n(chart.png not written: install matplotlib, e.g. pip install 'clickstream-worker[bench]')")
    print(f"\nresults in {results_dir} ({time.monotonic() - began:.0f}s)")
    return 1 if failed else 0


def _merge_saved(
    results_dir: Path, done: dict[str, list[dict[str, Any]]], only: list[str], mode: str
) -> dict[str, list[dict[str, Any]]]:
    """This session's scenarios, plus saved ones of the same mode that were not re-run, so
    summary.json and the chart cover the whole plan after ``--only``."""
    merged: dict[str, list[dict[str, Any]]] = {}
    for name in SCENARIOS:
        if name in done:
            merged[name] = done[name]
        elif name not in only and (path := results_dir / f"{name}.json").exists():
            saved = json.loads(path.read_text())
            if saved.get("mode") == mode:
                merged[name] = saved["runs"]
    return merged


def _write(path: Path, payload: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
