"""`validate FILE|-`: the offline check runs the live decoder over JSON lines."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit.malformed_corpus import DROP, NOW, enc, track
from worker.config.mapping import default_mapping
from worker.mapping import EventDecoder
from worker.records import DatasetType
from worker.schemas import load_schema
from worker.validate_cmd import open_input, run_validate
from worker.validation import ValidationLimits

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.fixture
def decoder() -> EventDecoder:
    kind = DatasetType.INTERACTIONS
    return EventDecoder(kind, default_mapping(kind), load_schema(SCHEMAS / "interactions.json"), ValidationLimits())


def run(lines: list[bytes], decoder: EventDecoder) -> tuple[int, list[dict[str, Any]]]:
    out = io.StringIO()
    code = run_validate(lines, decoder, out, now=NOW)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def test_reports_each_invalid_line_and_a_summary(decoder: EventDecoder) -> None:
    lines = [
        enc(track()) + b"\n",
        b"\n",  # blank lines are skipped but still counted for line numbers
        b"not json\r\n",
        enc(track({"userId": "u" * 300})) + b"\n",
        b"   \n",
        enc(track({"messageId": DROP})),  # last line without newline; derived eventId is fine
    ]
    code, records = run(lines, decoder)
    assert code == 1
    *invalid, summary = records
    assert [(r["line"], r["stage"], r["rule"], r["field"]) for r in invalid] == [
        (3, "mapping", "not_json", None),
        (4, "validation", "max_length", "userId"),
    ]
    assert all(r["message"] for r in invalid)
    assert invalid[1]["value"].startswith("u" * 200)
    assert summary == {
        "summary": {
            "events": 4,
            "valid": 2,
            "invalid": 2,
            "by_rule": {"mapping/not_json": 1, "validation/max_length": 1},
        }
    }


def test_all_valid_returns_zero(decoder: EventDecoder) -> None:
    code, records = run([enc(track({"messageId": f"m-{n}"})) + b"\n" for n in range(5)], decoder)
    assert code == 0
    assert records == [{"summary": {"events": 5, "valid": 5, "invalid": 0, "by_rule": {}}}]


def test_empty_input_returns_zero(decoder: EventDecoder) -> None:
    assert run([], decoder) == (0, [{"summary": {"events": 0, "valid": 0, "invalid": 0, "by_rule": {}}}])


def test_non_utf8_line_is_reported_not_raised(decoder: EventDecoder) -> None:
    code, records = run([b"\xff\xfe\xfd\n"], decoder)
    assert code == 1 and records[0]["rule"] == "not_utf8"


def test_open_input_reads_a_file_as_bytes(tmp_path: Path, decoder: EventDecoder) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(enc(track()) + b"\n" + b"\xff\n" + enc(track()) + b"\n")
    lines = list(open_input(str(path)))
    assert len(lines) == 3 and all(isinstance(line, bytes) for line in lines)
    code, records = run(lines, decoder)
    assert code == 1 and [r.get("line") for r in records[:-1]] == [2]


def test_open_input_dash_reads_stdin_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    data = enc(track()) + b"\n\xff\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert list(open_input("-")) == [enc(track()) + b"\n", b"\xff\n"]


def test_open_input_missing_file_raises_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        list(open_input(str(tmp_path / "absent.jsonl")))
