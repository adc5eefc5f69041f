"""PartitionWatch: fetch faults with backoff, stalls, positions beyond the end (pure, no I/O)."""

from __future__ import annotations

import pytest

from worker.ingest.partitions import MAX_RETRY_S, Change, Observation, Partitions, lag_of

TP0 = ("clicks", 0)
TP1 = ("clicks", 1)


def watch(**kw: float) -> Partitions:
    return Partitions(stall_after_s=kw.get("stall", 60.0), retry_s=kw.get("retry", 30.0),
                          confirm_s=kw.get("confirm", 5.0))


def obs(position: int | None, high: int | None, *, fetch: int | None = None, inflight: int = 0) -> Observation:
    return Observation(position, position if fetch is None else fetch, high, inflight)


# -- lag ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("o", "earliest", "lag"), [
    (obs(10, 15), True, 5),
    (obs(15, 15), True, 0),
    (obs(None, 15), True, None),  # no position known yet
    (obs(10, None), True, None),  # no fetch answered yet
    (obs(100, 3), True, 3),  # beyond the end: the whole new log is unconsumed ...
    (obs(100, 3), False, 0),  # ... unless the reset goes to the latest offset
    (obs(5, 9, fetch=8), True, 4),  # in flight: the safe position counts, not the fetch position
])
def test_lag(o: Observation, earliest: bool, lag: int | None) -> None:
    assert lag_of(o, reset_to_earliest=earliest) == lag


# -- faults ---------------------------------------------------------------------------------------


def test_a_fault_is_new_once_and_retries_back_off_exponentially_up_to_a_cap() -> None:
    w = watch(retry=30.0)
    assert w.fault(TP0, error="UnsupportedCodecError", message="no zstd", fix="install", offset=7, now=0.0)
    assert w.faults[TP0].retry_at == 30.0
    assert w.due_retries(29.9) == [] and w.due_retries(30.0) == [TP0]
    delays = []
    for attempt in range(1, 12):
        assert not w.fault(TP0, error="UnsupportedCodecError", message="still", fix="install", offset=7, now=0.0)
        delays.append(w.faults[TP0].delay_s)
        assert w.faults[TP0].attempts == attempt + 1
    assert delays[:4] == [60.0, 120.0, 240.0, 480.0]
    assert max(delays) == MAX_RETRY_S
    assert w.faults[TP0].offset == 7 and w.faults[TP0].message == "still"


def test_recovery_clears_the_fault_and_a_new_one_starts_over() -> None:
    w = watch(retry=10.0)
    w.fault(TP0, error="E", message="m", fix="f", offset=1, now=0.0)
    w.fault(TP0, error="E", message="m", fix="f", offset=1, now=0.0)
    assert w.recovered(TP0) is not None and TP0 not in w.faults
    assert w.recovered(TP0) is None
    assert w.fault(TP0, error="E", message="m", fix="f", offset=1, now=100.0)
    assert w.faults[TP0].retry_at == 110.0


def test_fault_description_names_offset_exception_and_fix() -> None:
    w = watch()
    w.fault(TP0, error="CorruptRecordError", message="crc", fix="reset past it", offset=42, now=0.0)
    assert w.faults[TP0].describe() == "CorruptRecordError at offset 42: crc (fix: reset past it)"


# -- stalls ---------------------------------------------------------------------------------------


def test_lag_without_progress_for_stall_after_s_is_a_stall_and_progress_ends_it() -> None:
    w = watch(stall=60.0)
    assert w.observe(TP0, obs(10, 50), 0.0) == []
    assert w.observe(TP0, obs(10, 60), 59.0) == []  # more lag, still no progress
    assert w.observe(TP0, obs(10, 60), 60.0) == [Change.STALLED]
    assert w.stalled() == {TP0: (50, 0.0)}
    assert w.observe(TP0, obs(10, 60), 70.0) == []  # reported once
    assert w.observe(TP0, obs(11, 60), 71.0) == [Change.UNSTALLED]
    assert w.stalled() == {}


def test_no_lag_is_never_a_stall_however_long_nothing_moves() -> None:
    w = watch(stall=1.0)
    for t in range(0, 100, 5):
        assert w.observe(TP0, obs(40, 40), float(t)) == []


def test_progress_resets_the_stall_clock() -> None:
    w = watch(stall=10.0)
    w.observe(TP0, obs(0, 100), 0.0)
    for t in range(1, 50):
        assert w.observe(TP0, obs(t, 100), float(t)) == []


def test_lag_appearing_after_an_idle_time_starts_its_clock_then() -> None:
    w = watch(stall=10.0)
    w.observe(TP0, obs(5, 5), 0.0)
    w.observe(TP0, obs(5, 5), 100.0)  # idle, caught up
    assert w.observe(TP0, obs(5, 9), 105.0) == []  # lag appears: no stall yet
    assert w.observe(TP0, obs(5, 9), 110.0) == [Change.STALLED]


def test_a_faulted_partition_is_stalled_at_once_and_recovers_with_progress() -> None:
    w = watch(stall=60.0)
    w.observe(TP0, obs(3, 9), 0.0)
    w.fault(TP0, error="E", message="m", fix="f", offset=3, now=1.0)
    assert w.observe(TP0, obs(3, 9), 2.0) == [Change.STALLED]
    w.recovered(TP0)
    assert w.observe(TP0, obs(9, 9), 3.0) == [Change.UNSTALLED]


def test_partitions_are_independent_and_revocation_drops_state() -> None:
    w = watch(stall=5.0)
    w.observe(TP0, obs(0, 10), 0.0)
    w.observe(TP1, obs(0, 10), 0.0)
    assert w.observe(TP0, obs(0, 10), 5.0) == [Change.STALLED]
    assert w.observe(TP1, obs(1, 10), 5.0) == []
    w.fault(TP0, error="E", message="m", fix="f", offset=0, now=5.0)
    w.revoke([TP0])
    assert TP0 not in w.faults and TP0 not in w.stalled()
    assert w.observe(TP0, obs(0, 10), 6.0) == []  # a fresh clock


# -- beyond the end -------------------------------------------------------------------------------


def test_a_position_beyond_the_end_is_reported_once_confirmed_and_nothing_is_in_flight() -> None:
    w = watch(confirm=5.0)
    assert w.observe(TP0, obs(100, 3), 0.0) == []
    assert w.observe(TP0, obs(100, 3, inflight=2), 6.0) == []  # old records still in flight: wait
    assert w.observe(TP0, obs(100, 3), 7.0) == [Change.BEYOND_END]
    assert w.observe(TP0, obs(100, 3), 8.0) == []  # the clock starts over after a report


def test_a_transient_beyond_end_reading_is_not_reported() -> None:
    """The high watermark of one response can lag the position for a moment."""
    w = watch(confirm=5.0)
    w.observe(TP0, obs(51, 50), 0.0)
    assert w.observe(TP0, obs(51, 51), 3.0) == []
    assert w.observe(TP0, obs(51, 50), 6.0) == []  # a new first sighting, not a confirmation
    assert w.observe(TP0, obs(51, 52), 12.0) == []


def test_a_faulted_partition_is_never_reported_beyond_end() -> None:
    w = watch(confirm=1.0)
    w.fault(TP0, error="E", message="m", fix="f", offset=100, now=0.0)
    w.observe(TP0, obs(100, 3), 0.0)
    assert Change.BEYOND_END not in w.observe(TP0, obs(100, 3), 10.0)
