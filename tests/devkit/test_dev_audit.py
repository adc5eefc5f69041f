"""What `dev` counts and waits for: the audit arithmetic, the done rule and the volume counter."""

from __future__ import annotations

import pytest
from clickstream_devkit.dev_account import DevResult, StoredVolume, Tally, control_waits, delivery_waits
from clickstream_devkit.dev_provision import ControlState, Version
from clickstream_devkit.generate_cmd import GenerateReport


def _result(stored: set[str], same_content: int, dead: float = 1.0, delivery: float = 0.0) -> DevResult:
    report = GenerateReport(topic="t", seed=1, requested=5, start_time=0.0, events_per_second=1.0,
                            produced=5, good=4, bad=1, good_event_ids=["a", "b", "c", "d"])  # fmt: skip
    return DevResult(report=report, stored_ids=stored, dead_lettered={"mapping": dead, "delivery": delivery},
                     same_content=same_content)  # fmt: skip


def test_everything_stored_is_ok_and_the_sum_holds() -> None:
    result = _result({"a", "b", "c", "d"}, same_content=0)
    assert (result.stored, result.lost, result.ok, result.accounted) == (4, 0, True, 5)
    expected = "  OK: produced 5 = stored + same-content dups + dead-lettered = 4 + 0 + 1; nothing lost"
    assert result.lines()[-1] == expected


def test_same_content_duplicates_are_a_term_of_their_own_not_losses() -> None:
    result = _result({"a", "b"}, same_content=2)
    assert (result.stored, result.lost, result.ok, result.accounted) == (2, 0, True, 5)
    assert "= 2 + 2 + 1; nothing lost" in result.lines()[-1]


def test_missing_events_beyond_the_same_content_ones_are_lost() -> None:
    result = _result({"a", "b"}, same_content=1)
    assert (result.lost, result.ok) == (1, False)
    assert result.lines()[-1].startswith("  FAILED: 1 valid events not stored, 0 malformed events not dead-lettered")


def test_valid_events_refused_at_delivery_are_dead_lettered_not_lost() -> None:
    result = _result({"a", "b", "c"}, same_content=0, delivery=1.0)
    assert (result.lost, result.ok, result.accounted) == (0, True, 5)


def test_a_missing_dead_letter_fails_the_audit() -> None:
    result = _result({"a", "b", "c", "d"}, same_content=0, dead=0.0)
    assert (result.undead, result.ok) == (1, False)


def test_stored_ids_that_the_generator_did_not_produce_do_not_count() -> None:
    assert _result({"a", "b", "c", "d", "zz"}, same_content=0).stored == 4


def test_a_dead_letter_repeated_by_a_redelivery_still_reads_ok_and_says_why_the_sum_is_over() -> None:
    result = _result({"a", "b", "c", "d"}, same_content=0, dead=2.0)
    assert result.ok
    assert "count twice" in result.lines()[-1]


def test_redeliveries_are_reported_apart() -> None:
    result = _result({"a", "b", "c", "d"}, same_content=0)
    result.redeliveries = 7
    line = next(line for line in result.lines() if "redeliveries" in line)
    assert line.split()[2] == "7" and "not events of their own" in line


def test_no_report_is_not_ok() -> None:
    assert not DevResult().ok


# -- the done rule ---------------------------------------------------------------------------


def _tally(**kw: object) -> Tally:
    base: dict[str, object] = {"generating": False, "good": 100, "bad": 5, "stored": 98, "same_content": 2,
                               "dead_lettered": {"mapping": 3.0, "validation": 2.0}, "inflight": 0.0}
    base.update(kw)
    return Tally(**base)  # type: ignore[arg-type]


def test_accounted_when_stored_plus_same_content_plus_dead_letters_cover_the_produced() -> None:
    assert delivery_waits(_tally()) == []


def test_same_content_duplicates_do_not_keep_the_run_waiting() -> None:
    """The old rule compared stored with valid: it could never hold with same-content duplicates."""
    assert delivery_waits(_tally(stored=98, same_content=2)) == []
    assert delivery_waits(_tally(stored=98, same_content=0)) == ["2 valid events to be stored"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"generating": True}, ["the generator to finish producing"]),
        ({"stored": 90}, ["8 valid events to be stored"]),
        ({"dead_lettered": {"mapping": 3.0}}, ["2 malformed events to be dead-lettered"]),
        ({"inflight": 12.0}, ["12 events in flight"]),
        ({"stored": 97, "dead_lettered": {"mapping": 3.0, "validation": 2.0, "delivery": 1.0}}, []),
        ({"dead_lettered": {"deserialization": 5.0}}, []),
    ],
)
def test_what_delivery_waits_for(change: dict[str, object], expected: list[str]) -> None:
    assert delivery_waits(_tally(**change)) == expected


def _state(versions: dict[str, list[tuple[str, str]]], serving: dict[str, str | None],
           status: dict[str, str]) -> ControlState:  # fmt: skip
    return ControlState(
        versions={label: [Version(f"arn:sv/{short}", st, 0.0) for short, st in vs] for label, vs in versions.items()},
        serving={label: (f"arn:sv/{v}" if v else None) for label, v in serving.items()},
        campaign_status=status,
    )


def test_nothing_to_wait_for_when_the_scheduler_never_started() -> None:
    assert control_waits(None, scheduler_started=False) == []


def test_a_started_scheduler_is_waited_for_until_it_trains() -> None:
    assert control_waits(None, scheduler_started=True) == ["the control plane to answer"]
    empty = _state({"up": []}, {"up": None}, {"up": "not created"})
    assert control_waits(empty, scheduler_started=True) == ["the scheduler's first training"]


def test_trainings_and_campaigns_in_progress_are_named() -> None:
    state = _state(
        {"up": [("v2", "CREATE IN_PROGRESS"), ("v1", "ACTIVE")], "sims": [("s1", "ACTIVE")], "pop": [("p1", "ACTIVE")]},
        {"up": "v1", "sims": None, "pop": "p1"},
        {"up": "ACTIVE", "sims": "CREATE PENDING", "pop": "ACTIVE, update CREATE IN_PROGRESS"},
    )
    assert control_waits(state, scheduler_started=True) == [
        "training up v2 (CREATE IN_PROGRESS)",
        "campaign sims (CREATE PENDING)",
        "campaign pop (ACTIVE, update CREATE IN_PROGRESS)",
    ]


def test_an_active_version_not_yet_served_is_waited_for() -> None:
    state = _state({"up": [("v1", "ACTIVE")]}, {"up": None}, {"up": "not created"})
    assert control_waits(state, scheduler_started=True) == ["campaign up to serve its first version"]


def test_settled_even_when_a_campaign_serves_an_older_version_than_the_newest_active() -> None:
    """The gate kept the older one: nothing changes that without new data, so nothing to wait for."""
    state = _state({"up": [("v2", "ACTIVE"), ("v1", "ACTIVE")]}, {"up": "v1"}, {"up": "ACTIVE"})
    assert control_waits(state, scheduler_started=True) == []


def test_failed_trainings_and_campaigns_are_final() -> None:
    state = _state({"up": [("v1", "CREATE FAILED")], "sims": [("s1", "ACTIVE")]}, {"up": None, "sims": None},
                   {"up": "not created", "sims": "CREATE FAILED"})  # fmt: skip
    assert control_waits(state, scheduler_started=True) == []


# -- the data-volume counter -----------------------------------------------------------------


def test_stored_volume_counts_interactions_stored_since_a_time() -> None:
    volume = StoredVolume()
    assert volume.count_since(["clicks"], None) is None, "unknown before the first sample"
    for at, stored in ((10.0, 0), (20.0, 1500), (30.0, 1800), (40.0, 4000)):
        volume.record(at, stored)
    assert volume.count_since(["clicks"], None) == 4000
    assert volume.count_since(["clicks"], 25.0) == 4000 - 1500, "counted from the last sample at or before"
    assert volume.count_since(["clicks"], 30.0) == 4000 - 1800
    assert volume.count_since(["clicks"], 5.0) == 4000, "before every sample: everything is new"
    assert volume.count_since(["clicks"], 99.0) == 0
    volume.record(35.0, 1)  # out of order: ignored
    assert volume.count_since(["clicks"], None) == 4000
    volume.close()


def test_the_dev_scheduler_retrains_only_on_new_data() -> None:
    """Its section validates as production settings and requires new interactions for every training."""
    from clickstream_devkit.dev_provision import Provisioned, scheduler_section

    from worker.config.scheduler import SchedulerSettings

    provisioned = Provisioned("arn:group", {}, "tid", {"up": "arn:aws:personalize:us-east-1:1:solution/up"},
                              {"up": "arn:aws:personalize:us-east-1:1:campaign/up"})  # fmt: skip
    section = scheduler_section(provisioned, "http://127.0.0.1:1", retrain_every_s=60, tick_s=2,
                                lease={}, min_new_interactions=1000)  # fmt: skip
    settings = SchedulerSettings.model_validate(section)
    volume = settings.solutions[0].data_volume
    assert volume is not None and (volume.min_new_interactions, volume.required, volume.trigger) == (1000, True, False)
