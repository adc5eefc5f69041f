"""The audit's dead-letter check must catch what it claims to (no processes: fast)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.faults.audit import BASE_STAGES, AuditRow, BadRecord, FaultReport, Truth, check_dead_letters

pytestmark = pytest.mark.faults

TOPIC = "clicks"


@dataclass
class FakeRecord:
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int = 0
    offset: int = 0


def dead_letter(value: bytes | None, stage: str = "mapping", rule: str = "not_json", message: str = "bad",
                topic: str = TOPIC) -> FakeRecord:
    return FakeRecord(value, [
        ("__connect.errors.topic", topic.encode()),
        ("__connect.errors.stage", stage.encode()),
        ("__connect.errors.rule", rule.encode()),
        ("__connect.errors.exception.message", message.encode()),
    ])


TRUTH = Truth(valid_ids=["a"], invalid=[BadRecord(b"x", "x", "mapping", "not_json"), BadRecord(b"", "empty")])


def test_complete_dead_letters_pass_and_duplicates_are_tolerated() -> None:
    dlq = [dead_letter(b"x"), dead_letter(b"x"), dead_letter(b"", rule="empty")]
    by_stage, problems = check_dead_letters(dlq, TRUTH, TOPIC, BASE_STAGES)
    assert problems == []
    assert by_stage == {"mapping": 3}


@pytest.mark.parametrize(
    ("dlq", "expected"),
    [
        ([dead_letter(b"x")], "dead-lettered 0x"),
        ([dead_letter(b"x", rule="empty"), dead_letter(b"")], "expected ('mapping', 'not_json', None)"),
        ([dead_letter(b"x"), dead_letter(b"", message="")], "no reason"),
        ([dead_letter(b"x"), dead_letter(b"", stage="delivery")], "stage 'delivery' not expected"),
        ([dead_letter(b"x"), dead_letter(b"", topic="other")], "__connect.errors.topic='other'"),
    ],
)
def test_each_kind_of_dead_letter_problem_is_reported(dlq: list[FakeRecord], expected: str) -> None:
    _, problems = check_dead_letters(dlq, TRUTH, TOPIC, BASE_STAGES)
    assert any(expected in p for p in problems), problems


def test_report_renders_a_markdown_table_and_json(tmp_path: Path) -> None:
    report = FaultReport()
    report.add(AuditRow("s", 3, 2, 1, 1, 2, 0, {"mapping": 1}, 0, 0, True, 1.3))
    assert "| s | 3 | 2 | 1 (1) | 2 | 0 | mapping=1 | 0 | 0 | yes | 1.3 | ok |" in report.markdown()
    path = report.write(tmp_path / "sub" / "faults.json")
    assert '"scenario": "s"' in path.read_text()
