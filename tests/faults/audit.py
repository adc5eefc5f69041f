"""The one audit every fault scenario ends with, and the table of its results.

Whatever the fault, the end state must be the same: every valid event stored exactly once
(by eventId) in the local Personalize, every invalid one in the dead-letter topic with
its reason (Kafka Connect's stage and exception-message headers, plus the worker's rule),
nothing stored that was never produced, and the surviving workers healthy. The audit
measures all of that first and records a row, then asserts, so a failing scenario still
shows up in the table with the numbers that made it fail.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers import LocalPersonalize
from tests.integration.worker_support import WorkerProcess, read_topic

BASE_STAGES = ("mapping", "validation")
STAGE_HEADER = "__connect.errors.stage"
MESSAGE_HEADER = "__connect.errors.exception.message"
RULE_HEADER = "__connect.errors.rule"
FIELD_HEADER = "__connect.errors.field"
TOPIC_HEADER = "__connect.errors.topic"


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A malformed input and, when known, the rejection the worker must give it."""

    value: bytes | None
    name: str
    stage: str | None = None
    rule: str | None = None
    field: str | None = None


@dataclass
class Truth:
    """What a scenario produced (broker-acknowledged): valid event IDs and invalid records."""

    valid_ids: list[str] = field(default_factory=list)
    invalid: list[BadRecord] = field(default_factory=list)

    def __add__(self, other: Truth) -> Truth:
        return Truth(self.valid_ids + other.valid_ids, self.invalid + other.invalid)

    @property
    def produced(self) -> int:
        return len(self.valid_ids) + len(self.invalid)


@dataclass
class AuditRow:
    scenario: str
    produced: int
    valid: int
    invalid: int
    distinct_invalid: int
    stored: int
    duplicates_discarded: int
    dlq_by_stage: dict[str, int]
    lost: int
    unexpected: int
    healthy: bool
    seconds: float
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


COLUMNS = ("Scenario", "Produced", "Valid", "Invalid (distinct)", "Stored", "Duplicates discarded",
           "DLQ by stage", "Lost", "Unexpected", "Healthy", "Seconds", "Result")


class FaultReport:
    """Rows of one session; written as JSON and printed as a Markdown table at the end."""

    def __init__(self) -> None:
        self.rows: list[AuditRow] = []
        self.started = time.time()

    def add(self, row: AuditRow) -> None:
        self.rows.append(row)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"started": self.started, "finished": time.time(), "rows": [r.as_dict() for r in self.rows]}
        path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        return path

    def markdown(self) -> str:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for r in self.rows:
            stages = " ".join(f"{k}={v}" for k, v in sorted(r.dlq_by_stage.items())) or "-"
            cells = [r.scenario, r.produced, r.valid, f"{r.invalid} ({r.distinct_invalid})", r.stored,
                     r.duplicates_discarded, stages, r.lost, r.unexpected, "yes" if r.healthy else "NO",
                     f"{r.seconds:.1f}", "ok" if r.ok else "FAILED"]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        return "\n".join(lines)


def _headers(record: Any) -> dict[str, str]:
    return {k: (v or b"").decode("utf-8", "replace") for k, v in (record.headers or ())}


def check_dead_letters(
    dlq: Sequence[Any], truth: Truth, topic: str, allowed_stages: Collection[str]
) -> tuple[Counter[str], list[str]]:
    """(DLQ records by stage, problems): each invalid input present with its reason.

    At-least-once: an invalid record may be dead-lettered more than once (after a crash),
    never fewer times than it was produced.
    """
    problems: list[str] = []
    by_stage: Counter[str] = Counter()
    by_value: dict[bytes | None, list[dict[str, str]]] = defaultdict(list)
    for record in dlq:
        headers = _headers(record)
        stage = headers.get(STAGE_HEADER, "")
        by_stage[stage or "(none)"] += 1
        by_value[record.value].append(headers)
        where = f"DLQ record {record.partition}/{record.offset} ({(record.value or b'')[:60]!r})"
        if headers.get(TOPIC_HEADER) != topic:
            problems.append(f"{where}: {TOPIC_HEADER}={headers.get(TOPIC_HEADER)!r}, expected {topic!r}")
        if stage not in allowed_stages:
            problems.append(f"{where}: stage {stage!r} not expected here (allowed: {sorted(allowed_stages)})")
        if not headers.get(MESSAGE_HEADER):
            problems.append(f"{where}: no reason in {MESSAGE_HEADER}")
    wanted = Counter(b.value for b in truth.invalid)
    for value, count in wanted.items():
        if len(by_value.get(value, ())) < count:
            problems.append(f"invalid record dead-lettered {len(by_value.get(value, ()))}x, produced {count}x: "
                            f"{(value or b'')[:80]!r}")
    for bad in {b.value: b for b in truth.invalid}.values():
        for headers in by_value.get(bad.value, ()):
            got = (headers.get(STAGE_HEADER), headers.get(RULE_HEADER), headers.get(FIELD_HEADER))
            if (bad.stage and got[0] != bad.stage) or (bad.rule and got[1] != bad.rule) or \
                    (bad.field and got[2] != bad.field):
                problems.append(f"{bad.name}: rejected as stage/rule/field={got}, expected "
                                f"{(bad.stage, bad.rule, bad.field)}; reason: {headers.get(MESSAGE_HEADER)!r}")
    return by_stage, problems


def worker_healthy(worker: WorkerProcess) -> bool:
    if worker.proc is None or worker.proc.poll() is not None:
        return False
    try:
        return worker.probe("/healthz")[0] == 200
    except OSError:
        return False


def audit(
    report: FaultReport,
    scenario: str,
    truth: Truth,
    *,
    lp: LocalPersonalize,
    tracking_id: str,
    bootstrap: str,
    topic: str,
    workers: Sequence[WorkerProcess],
    started: float,
    extra_stages: Collection[str] = (),
    notes: dict[str, Any] | None = None,
) -> AuditRow:
    """Measure, record a row in `report`, then assert the end state (see the module docstring)."""
    listing = [e["eventId"] for e in lp.events(tracking_id)]
    counts = Counter(listing)
    stored = set(counts)
    valid = set(truth.valid_ids)
    problems: list[str] = []
    if len(valid) != len(truth.valid_ids):
        problems.append("the scenario produced the same eventId twice (test bug)")
    twice = [i for i, n in counts.items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} eventIds stored more than once, e.g. {twice[:3]}")
    lost, unexpected = valid - stored, stored - valid
    if lost:
        problems.append(f"{len(lost)} valid events not stored, e.g. {sorted(lost)[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} stored events never produced, e.g. {sorted(unexpected)[:3]}")
    dlq = read_topic(bootstrap, f"{topic}.dlq", len(truth.invalid), timeout_s=60)
    by_stage, dlq_problems = check_dead_letters(dlq, truth, topic, {*BASE_STAGES, *extra_stages})
    problems += dlq_problems
    healthy = bool(workers) and all(worker_healthy(w) for w in workers)
    if not healthy:
        problems.append("a worker is not alive and healthy (/healthz) at the end")
    stats = lp.stats()
    row = AuditRow(
        scenario=scenario,
        produced=truth.produced,
        valid=len(truth.valid_ids),
        invalid=len(truth.invalid),
        distinct_invalid=len({b.value for b in truth.invalid}),
        stored=len(stored),
        duplicates_discarded=int(stats["duplicate_events"]),
        dlq_by_stage=dict(by_stage),
        lost=len(lost),
        unexpected=len(unexpected),
        healthy=healthy,
        seconds=round(time.monotonic() - started, 1),
        ok=not problems,
        problems=problems[:50],
        notes={"throttled": stats["throttled"], "injected_errors": stats["injected_errors"], **(notes or {})},
    )
    report.add(row)
    if problems:
        logs = "\n".join(f"--- {w.log_path.name}\n{w.logs()[-2500:]}" for w in workers)
        raise AssertionError(f"audit of {scenario!r} failed:\n  " + "\n  ".join(problems[:30]) + f"\n{logs}")
    return row
