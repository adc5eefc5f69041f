"""Partitions across rebalances and holds: rewinds, seeks, pause reasons, re-created topics."""

from __future__ import annotations

from worker.ingest.partitions import Partitions, PauseReason

A = ("clicks", 0)
B = ("clicks", 1)
C = ("items", 0)


def test_a_partition_revoked_with_unfinished_records_is_rewound_when_it_comes_straight_back() -> None:
    p = Partitions()
    p.assign([A, B])
    for offset in range(5):
        p.add(A, offset)
        p.add(B, offset)
    for offset in range(5):
        p.complete(B, offset)
    p.complete(A, 0)
    p.complete(A, 1)  # 2, 3, 4 of A still in flight
    final = p.revoke([A, B])
    assert final == {A: 2, B: 5}  # what may be committed on the way out
    assert p.inflight_count() == 0 and p.assigned() == set()
    assert not p.complete(A, 2), "a completion after revocation does not count"
    back = p.assign([A, C])
    assert back == [A]
    assert p.take_seeks() == {A: 2} and p.take_seeks() == {}
    assert p.assigned() == {A, C}, "B was not handed back: forgotten"


def test_a_partition_revoked_with_nothing_in_flight_owes_no_seek() -> None:
    p = Partitions()
    p.assign([A])
    p.add(A, 0)
    p.complete(A, 0)
    p.revoke([A])
    assert p.assign([A]) == [] and p.take_seeks() == {}
    assert p.position(A) is None  # a fresh start: the fetch position comes from the broker


def test_seek_pending_until_taken() -> None:
    p = Partitions()
    p.assign([A])
    p.add(A, 7)
    p.revoke([A])
    p.assign([A])
    assert p.seek_pending(A)
    p.take_seeks()
    assert not p.seek_pending(A)


def test_pause_reasons_combine_the_consumer_and_the_partition() -> None:
    p = Partitions()
    p.assign([A, B, C])
    assert p.pause_reasons(A) == set()
    assert p.pause_reasons(A, draining=True, backpressure=True) == {PauseReason.DRAINING, PauseReason.BACKPRESSURE}
    assert p.pause_reasons(C, stopped_topics=frozenset({"items"})) == {PauseReason.CONFIG_FAULT}
    p.fault(A, error="UnsupportedCodecError", message="zstd", fix="install", offset=0, now=0.0)
    assert p.pause_reasons(A) == {PauseReason.FETCH_ERROR}
    assert p.mark_recreated("clicks") == [A, B]
    assert p.pause_reasons(B) == {PauseReason.RECREATED}
    assert p.pause_reasons(A) == {PauseReason.FETCH_ERROR, PauseReason.RECREATED}
    p.finish_recreated(B)
    p.recovered(A)
    p.finish_recreated(A)
    assert p.pause_reasons(A) == p.pause_reasons(B) == set()


def test_reset_forgets_offsets_and_the_commit_mark_but_not_holds() -> None:
    p = Partitions()
    p.assign([A])
    p.add(A, 99)
    p.mark_committed({A: 100})
    p.fault(A, error="E", message="m", fix="f", offset=99, now=0.0)
    p.reset(A)
    assert p.position(A) is None and p.inflight_count() == 0
    assert A in p.faults
    p.add(A, 0)
    p.complete(A, 0)
    assert p.committable() == {A: 1}, "after a reset the commit may go backwards"


def test_revocation_drops_faults_and_holds() -> None:
    p = Partitions()
    p.assign([A])
    p.fault(A, error="E", message="m", fix="f", offset=0, now=0.0)
    p.mark_recreated("clicks")
    p.revoke([A])
    p.assign([A])
    assert p.faults == {} and not p.recreated(A), "the next owner finds out for itself"
