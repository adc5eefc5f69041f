"""`clickstream-worker dev` as a newcomer runs it: a subprocess, then its summary is checked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clickstream_devkit.processes import stop_process

pytestmark = pytest.mark.integration
RESULTS = Path(__file__).resolve().parents[2] / "build" / "test-results"


def _number(summary: str, label: str) -> int:
    match = re.search(rf"^\s*{label}\s+([\d,]+)", summary, re.MULTILINE)
    assert match, f"{label!r} missing from the summary:\n{summary}"
    return int(match.group(1).replace(",", ""))


def test_dev_runs_the_whole_loop_and_accounts_for_every_event(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    data_dir = tmp_path / "dev"
    cmd = [sys.executable, "-m", "worker.cli", "dev", "--events", "5000", "--data-dir", str(data_dir)]
    lines: list[tuple[float, str]] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:  # timestamped as they arrive: when was everything accounted for?
                lines.append((time.monotonic(), line))
            proc.wait(timeout=300)
        finally:
            stop_process(proc)
        exited = time.monotonic()
        stderr = proc.stderr.read() if proc.stderr else ""
    out = "".join(line for _, line in lines)
    assert proc.returncode == 0, out[-3000:] + stderr[-3000:]
    assert "progress t=" in out, "plain progress lines when stdout is not a TTY"
    produced = _number(out, "produced")
    stored = _number(out, "stored")
    same = _number(out, "same-content dups")
    dead = _number(out, "dead-lettered")
    assert produced == 5000
    assert stored + same + dead == produced, out
    assert dead > 0, "the generator mixes in malformed events"
    assert _number(out, "lost") == 0
    assert "OK: produced 5,000 = stored + same-content dups + dead-lettered" in out
    assert "progress waiting for: " in out, "says what it waits for"
    # Ends soon after everything is accounted for (it once idled for minutes); the bound is loose
    # on purpose (a busy CI machine), the measured value goes to the results file.
    done_at = next(t for t, line in lines if line.startswith("progress done: every event accounted for"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dev_end.json").write_text(json.dumps({"events": 5000, "accounted_to_exit_s": exited - done_at}))
    assert exited - done_at < 30, f"{exited - done_at:.1f} s from 'done' to exit"
    # The log stays where it was announced.
    assert f"logs kept: {data_dir / 'worker.log'}" in out
    assert (data_dir / "worker.log").stat().st_size > 0
    # Trained through the real API by the scheduler, and served: a campaign serves an ACTIVE version.
    assert _number(out, "versions ACTIVE") >= 1, out
    trained = set(re.findall(r"^\s+[a-z-]+(?: \(baseline\))?\s+([0-9a-f]{8})\s+[\d.]+", out, re.MULTILINE))
    served = set(re.findall(r"^\s+campaign \S+\s+serves ([0-9a-f]{8})$", out, re.MULTILINE))
    assert trained, f"no trained version in the metrics table:\n{out}"
    assert served & trained, f"no campaign serves a trained version:\n{out}"
    assert "popularity-count (baseline)" in out
    assert "progress user-personalization" in out, "training progress lines when not a TTY"
