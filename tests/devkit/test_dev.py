"""`clickstream-worker dev` as a newcomer runs it: a subprocess, then its summary is checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _number(summary: str, label: str) -> int:
    match = re.search(rf"^\s*{label}\s+([\d,]+)", summary, re.MULTILINE)
    assert match, f"{label!r} missing from the summary:\n{summary}"
    return int(match.group(1).replace(",", ""))


def test_dev_runs_the_whole_loop_and_accounts_for_every_event(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "dev", "--events", "5000", "--data-dir", str(tmp_path / "dev")],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "progress t=" in out, "plain progress lines when stdout is not a TTY"
    produced = _number(out, "produced")
    delivered = _number(out, "delivered")
    dead = _number(out, "dead-lettered")
    assert produced == 5000
    assert delivered + dead == produced, out
    assert dead > 0, "the generator mixes in malformed events"
    assert _number(out, "lost") == 0
    assert "nothing lost" in out
    # Trained through the real API by the scheduler, and served: a campaign serves an ACTIVE version.
    assert _number(out, "versions ACTIVE") >= 1, out
    trained = set(re.findall(r"^\s+[a-z-]+(?: \(baseline\))?\s+([0-9a-f]{8})\s+[\d.]+", out, re.MULTILINE))
    served = set(re.findall(r"^\s+campaign \S+\s+serves ([0-9a-f]{8})$", out, re.MULTILINE))
    assert trained, f"no trained version in the metrics table:\n{out}"
    assert served & trained, f"no campaign serves a trained version:\n{out}"
    assert "popularity-count (baseline)" in out
    assert "progress user-personalization" in out, "training progress lines when not a TTY"
