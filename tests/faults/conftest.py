"""Fixtures of the fault-injection suite and its end-of-session audit table.

The audit is written as JSON to ``$FAULTS_REPORT`` (default ``build/test-results/faults.json``)
and as a Markdown table beside it (``.md``), one row per scenario that reached its audit;
pytest's output gets one line saying how many scenarios lost anything and where the table is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clickstream_devkit.broker import EmbeddedBroker

from tests.faults.audit import FaultReport
from tests.faults.stack import TRACKING_ID, FaultStack
from tests.helpers import REPO_ROOT

REPORT_ENV = "FAULTS_REPORT"
DEFAULT_REPORT = REPO_ROOT / "build" / "test-results" / "faults.json"
_REPORT_KEY = pytest.StashKey[FaultReport]()


def _report(config: pytest.Config) -> FaultReport:
    if _REPORT_KEY not in config.stash:
        config.stash[_REPORT_KEY] = FaultReport()
    return config.stash[_REPORT_KEY]


@pytest.fixture(scope="session")
def fault_report(request: pytest.FixtureRequest) -> FaultReport:
    return _report(request.config)


@pytest.fixture
def fault_stack(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    broker: EmbeddedBroker,
    kafka_topic: Callable[..., str],
    local_personalize: Callable[..., Any],
    fault_report: FaultReport,
) -> Iterator[Callable[..., FaultStack]]:
    """Factory: ``fault_stack("name", partitions=4, delivery={...})`` on the session broker."""
    created: list[FaultStack] = []

    def make(name: str, *, partitions: int = 4, delivery: dict[str, Any] | None = None) -> FaultStack:
        lp = local_personalize(trackers=[TRACKING_ID])
        topic = kafka_topic(partitions=partitions, prefix="faults")
        stack = FaultStack(name, tmp_path, broker.bootstrap, topic, lp, fault_report, delivery=delivery)
        created.append(stack)
        return stack

    yield make
    for stack in created:
        stack.close()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report = config.stash.get(_REPORT_KEY, None)
    if report is None or not report.rows:
        return
    path = report.write(Path(os.environ.get(REPORT_ENV) or DEFAULT_REPORT))
    table = path.with_suffix(".md")
    table.write_text(report.markdown() + "\n", encoding="utf-8")
    failed = sum(not row.ok for row in report.rows)
    terminalreporter.write_line(
        f"fault-injection audit: {len(report.rows)} scenarios, {failed} failed, "
        f"{sum(row.lost for row in report.rows)} events lost (table: {table})"
    )
