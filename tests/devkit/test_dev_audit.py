"""The `make dev` audit: missing eventIds explained by the exact-duplicate rule are not losses."""

from __future__ import annotations

from clickstream_devkit.dev import DevResult
from clickstream_devkit.generate_cmd import GenerateReport


def _result(stored: set[str], same_content: int, dead: float = 1.0) -> DevResult:
    report = GenerateReport(topic="t", seed=1, requested=5, start_time=0.0, events_per_second=1.0,
                            produced=5, good=4, bad=1, good_event_ids=["a", "b", "c", "d"])
    return DevResult(report=report, stored_ids=stored, dead_lettered={"mapping": dead}, same_content=same_content)


def test_everything_stored_is_ok() -> None:
    result = _result({"a", "b", "c", "d"}, same_content=0)
    assert (result.missing_ids, result.lost, result.ok) == ([], 0, True)


def test_missing_ids_explained_by_same_content_drops_are_not_lost() -> None:
    result = _result({"a", "b"}, same_content=2)
    assert (result.missing_ids, result.lost, result.ok) == (["c", "d"], 0, True)


def test_missing_ids_beyond_the_same_content_drops_are_lost() -> None:
    result = _result({"a", "b"}, same_content=1)
    assert (result.lost, result.ok) == (1, False)


def test_a_missing_dead_letter_fails_the_audit() -> None:
    assert not _result({"a", "b", "c", "d"}, same_content=0, dead=0.0).ok
