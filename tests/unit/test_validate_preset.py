"""`clickstream-worker validate --preset NAME FILE`: a vendor's file checked offline with the preset alone."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.unit.test_presets import GA4_PURCHASE, SNOWPLOW_TSV
from worker.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, object]]]:
    code = main(["validate", *args])
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines()]


def test_snowplow_tsv_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKER_CONFIG", raising=False)
    path = tmp_path / "enriched.tsv"
    path.write_text(SNOWPLOW_TSV + "\nnot\tenough\tcolumns\n")
    code, lines = run(capsys, "--preset", "snowplow", str(path))
    assert code == 1
    assert [(r["line"], r["stage"], r["rule"]) for r in lines[:-1]] == [
        (1, "validation", "timestamp_window"),  # a 2013 event: older than validation.max_past_days
        (2, "mapping", "snowplow_tsv"),
    ]
    assert lines[-1]["summary"]["events"] == 2


def test_ga4_rows_count_as_records(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKER_CONFIG", raising=False)
    recent = {**GA4_PURCHASE, "event_timestamp": str(int(time.time() * 1e6) - 60_000_000)}
    path = tmp_path / "ga4.jsonl"
    path.write_text(json.dumps(recent) + "\n")
    code, lines = run(capsys, "--preset", "ga4", str(path))
    assert code == 0 and lines == [{"summary": {"events": 1, "valid": 1, "invalid": 0, "by_rule": {}}}]


def test_a_preset_without_a_mapping_for_the_dataset_type_is_a_config_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKER_CONFIG", raising=False)
    path = tmp_path / "x.jsonl"
    path.write_text("{}\n")
    assert main(["validate", "--preset", "ga4", "--dataset-type", "items", str(path)]) == 2
    assert "has no mapping for this topic's dataset type" in capsys.readouterr().err
