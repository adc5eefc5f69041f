"""Partitions against hand-worked cases and a brute-force reference model."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import pytest
from kafka.structs import TopicPartition

from worker.ingest.partitions import TP, Partitions

A: TP = ("clicks", 0)
B: TP = ("clicks", 1)
C: TP = ("items", 0)


# --- hand-worked cases ---------------------------------------------------------------------------


def test_in_order_completion_advances_one_by_one() -> None:
    t = Partitions()
    for off in range(5):
        t.add(A, off)
    assert t.position(A) == 0
    for off in range(5):
        assert t.complete(A, off)
        assert t.position(A) == off + 1
    assert t.inflight_count() == 0


def test_out_of_order_completion_blocks_at_the_gap() -> None:
    t = Partitions()
    for off in range(10, 15):
        t.add(A, off)
    assert t.complete(A, 12)
    assert t.complete(A, 14)
    assert t.position(A) == 10  # 10 still outstanding
    assert t.complete(A, 10)
    assert t.position(A) == 11  # 11 still outstanding, 12 done behind it
    assert t.complete(A, 11)
    assert t.position(A) == 13  # jumps over the already-done 12
    assert t.complete(A, 13)
    assert t.position(A) == 15  # 14 was done: one past the last seen
    assert t.inflight_count(A) == 0


def test_gaps_in_offsets_are_skipped() -> None:
    """Compaction and transaction markers leave holes: they never block the commit."""
    t = Partitions()
    for off in (3, 7, 8, 20):
        t.add(A, off)
    assert t.position(A) == 3
    t.complete(A, 3)
    assert t.position(A) == 7
    t.complete(A, 8)
    t.complete(A, 7)
    assert t.position(A) == 20
    t.complete(A, 20)
    assert t.position(A) == 21


def test_complete_rejects_unknown_duplicate_and_revoked() -> None:
    t = Partitions()
    t.add(A, 0)
    t.add(A, 1)
    assert not t.complete(B, 0)  # never seen partition
    assert not t.complete(A, 5)  # never seen offset
    assert t.complete(A, 1)
    assert not t.complete(A, 1)  # duplicate, out of order
    assert t.complete(A, 0)
    assert not t.complete(A, 0)  # duplicate, already released
    assert t.position(A) == 2
    t.add(B, 0)
    t.revoke([B])
    assert not t.complete(B, 0)
    assert t.inflight_count() == 0


def test_committable_reports_only_advanced_positions() -> None:
    t = Partitions()
    t.add(A, 0)
    t.add(B, 100)
    assert t.committable() == {A: 0, B: 100}  # nothing committed yet: every partition
    t.mark_committed({A: 0, B: 100})
    assert t.committable() == {}
    t.complete(B, 100)
    assert t.committable() == {B: 101}
    t.mark_committed({B: 101})
    assert t.committable() == {}
    assert t.position(B) == 101  # position is reported regardless of commits


def test_mark_committed_never_lowers_and_ignores_unknown() -> None:
    t = Partitions()
    for off in range(3):
        t.add(A, off)
        t.complete(A, off)
    t.mark_committed({A: 3, C: 9})
    t.mark_committed({A: 1})  # a late ack of an older commit
    assert t.committable() == {}
    assert C not in t.assigned()


def test_revoke_returns_final_advanced_positions_and_forgets() -> None:
    t = Partitions()
    for off in range(4):
        t.add(A, off, size=10)
        t.add(B, off, size=1)
    t.add(C, 0, size=100)
    t.complete(A, 0)
    t.complete(A, 1)
    t.complete(A, 3)
    t.mark_committed({C: 0})
    assert t.revoke([A, C, ("nope", 0)]) == {A: 2}  # C did not advance past its commit
    assert t.assigned() == {B}
    assert t.position(A) is None
    assert t.inflight_count() == 4
    assert t.inflight_count(A) == 0
    assert t.inflight_bytes() == 4


def test_readd_after_revoke_starts_fresh() -> None:
    t = Partitions()
    for off in range(5):
        t.add(A, off)
    t.complete(A, 0)
    t.mark_committed({A: 1})
    t.revoke([A])
    # The partition comes back (possibly from an older committed offset).
    t.add(A, 1)
    assert t.position(A) == 1
    assert t.committable() == {A: 1}  # commit state was forgotten with the partition
    assert t.complete(A, 1)
    assert t.committable() == {A: 2}


def test_rewind_drops_outstanding_at_and_above_and_keeps_below() -> None:
    t = Partitions()
    for off in range(10):
        t.add(A, off, size=1)
    t.complete(A, 0)
    t.complete(A, 6)
    t.mark_committed({A: 1})
    t.add(A, 4, size=1)  # seek back to 4: 4..9 will be redelivered
    assert t.inflight_count(A) == 4  # 1, 2, 3 and the new 4
    assert t.inflight_bytes() == 4
    assert t.position(A) == 1
    for off in (1, 2, 3):
        t.complete(A, off)
    assert t.position(A) == 4
    assert not t.complete(A, 6)  # the forgotten copy of 6 completing late
    t.add(A, 5)
    t.complete(A, 5)
    t.complete(A, 4)
    assert t.position(A) == 6


def test_rewind_below_commit_never_reports_a_lower_position() -> None:
    t = Partitions()
    for off in range(5):
        t.add(A, off)
        t.complete(A, off)
    t.mark_committed({A: 5})
    t.add(A, 2)
    assert t.position(A) == 2
    assert t.committable() == {}
    for off in range(2, 7):
        if off > 2:
            t.add(A, off)
        t.complete(A, off)
    assert t.committable() == {A: 7}


def test_duplicate_add_of_outstanding_offset_counts_once() -> None:
    t = Partitions()
    t.add(A, 0, size=5)
    t.add(A, 0, size=5)
    assert t.inflight_count() == 1
    assert t.inflight_bytes() == 5
    assert t.complete(A, 0)
    assert not t.complete(A, 0)
    assert t.position(A) == 1


def test_sizes_are_tracked_per_outstanding_offset() -> None:
    t = Partitions()
    t.add(A, 0, size=100)
    t.add(A, 1, size=20)
    t.add(B, 0, size=3)
    assert t.inflight_bytes() == 123
    t.complete(A, 1)  # out of order still releases its bytes
    assert t.inflight_bytes() == 103
    assert t.inflight_count() == 2
    assert t.inflight_count(A) == 1
    assert t.inflight_count(C) == 0
    t.complete(A, 0)
    t.complete(B, 0)
    assert t.inflight_bytes() == 0


def test_kafka_topic_partition_is_interchangeable_with_tuples() -> None:
    t = Partitions()
    t.add(TopicPartition("clicks", 0), 7)
    assert t.complete(("clicks", 0), 7)
    assert t.position(TopicPartition("clicks", 0)) == 8
    assert t.committable() == {("clicks", 0): 8}
    assert t.revoke([("clicks", 0)]) == {TopicPartition("clicks", 0): 8}


def test_advance_moves_past_offsets_that_were_never_records() -> None:
    """A transaction marker at offset 3 (and an aborted batch 4-6 skipped under read_committed):
    the consumer's fetch position is 7 although the last record handed out was 2."""
    t = Partitions()
    for offset in (0, 1, 2):
        t.add(A, offset)
        t.complete(A, offset)
    assert t.position(A) == 3
    t.advance(A, 7)
    assert t.position(A) == 7 and t.committable() == {A: 7}
    t.add(A, 8)  # the next record after a marker at 7
    assert t.position(A) == 8


def test_advance_never_passes_records_in_flight_nor_goes_backwards() -> None:
    t = Partitions()
    t.add(A, 0)
    t.advance(A, 5)
    assert t.position(A) == 0  # offset 0 is still outstanding
    t.complete(A, 0)
    t.advance(A, 1)
    t.advance(A, 0)  # an older reading
    assert t.position(A) == 1
    t.advance(A, 4)
    t.mark_committed({A: 4})
    t.advance(A, 4)
    assert t.committable() == {}


def test_advance_on_an_unknown_partition_starts_it_at_the_fetch_position() -> None:
    """A partition assigned with nothing to consume: committing its position is harmless."""
    t = Partitions()
    t.advance(B, 12)
    assert t.position(B) == 12 and t.committable() == {B: 12} and t.last_seen(B) == 11


def test_reset_forgets_the_committed_mark_so_the_commit_may_go_backwards() -> None:
    """After a re-created topic restarts at 0, offsets below the old commit are new records."""
    t = Partitions()
    t.add(A, 99)
    t.complete(A, 99)
    t.mark_committed({A: 100})
    t.reset(A)
    assert t.position(A) is None and t.last_seen(A) is None
    t.add(A, 0)
    t.complete(A, 0)
    assert t.committable() == {A: 1}


def test_last_seen() -> None:
    t = Partitions()
    assert t.last_seen(A) is None
    t.add(A, 4)
    t.add(A, 9)
    assert t.last_seen(A) == 9


def test_unknown_partition_queries() -> None:
    t = Partitions()
    assert t.position(A) is None
    assert t.committable() == {}
    assert t.revoke([A]) == {}
    assert t.assigned() == set()
    assert t.inflight_count() == 0
    assert t.inflight_bytes() == 0


# --- random permutations against a brute-force reference ----------------------------------------


def brute_position(added: list[int], done: set[int]) -> int:
    """One past the highest offset below which every added offset is done."""
    for off in sorted(added):
        if off not in done:
            return off
    return max(added) + 1


@pytest.mark.parametrize("seed", range(40))
def test_random_completion_order_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    offsets: list[int] = []
    off = rng.randrange(0, 1000)
    for _ in range(rng.randrange(1, 200)):
        offsets.append(off)
        off += rng.choice((1, 1, 1, 2, 5, 50))  # mostly contiguous, some gaps
    t = Partitions()
    for o in offsets:
        t.add(A, o, size=o % 7)
    order = offsets[:]
    rng.shuffle(order)
    done: set[int] = set()
    for o in order:
        assert t.complete(A, o)
        done.add(o)
        assert t.position(A) == brute_position(offsets, done)
        assert t.inflight_count(A) == len(offsets) - len(done)
        assert t.inflight_bytes() == sum(x % 7 for x in offsets if x not in done)
    assert t.position(A) == offsets[-1] + 1


@dataclass
class RefPartition:
    outstanding: dict[int, int] = field(default_factory=dict)  # offset -> size
    last_seen: int = -1
    committed: int | None = None

    def position(self) -> int:
        return min(self.outstanding) if self.outstanding else self.last_seen + 1


class Reference:
    """The documented semantics, written the slow and obvious way."""

    def __init__(self) -> None:
        self.parts: dict[TP, RefPartition] = {}

    def add(self, tp: TP, offset: int, size: int) -> None:
        part = self.parts.setdefault(tp, RefPartition())
        if offset <= part.last_seen:
            part.outstanding = {o: s for o, s in part.outstanding.items() if o < offset}
        part.outstanding[offset] = size
        part.last_seen = offset

    def complete(self, tp: TP, offset: int) -> bool:
        part = self.parts.get(tp)
        return part is not None and part.outstanding.pop(offset, None) is not None

    def committable(self) -> dict[TP, int]:
        return {tp: p.position() for tp, p in self.parts.items() if p.committed is None or p.position() > p.committed}

    def mark_committed(self, positions: dict[TP, int]) -> None:
        for tp, pos in positions.items():
            if tp in self.parts:
                old = self.parts[tp].committed
                self.parts[tp].committed = pos if old is None else max(old, pos)

    def revoke(self, tps: list[TP]) -> dict[TP, int]:
        final = {tp: pos for tp, pos in self.committable().items() if tp in tps}
        for tp in tps:
            self.parts.pop(tp, None)
        return final


def assert_same(t: Partitions, ref: Reference) -> None:
    assert t.assigned() == set(ref.parts)
    for tp, part in ref.parts.items():
        assert t.position(tp) == part.position()
        assert t.inflight_count(tp) == len(part.outstanding)
    assert t.inflight_count() == sum(len(p.outstanding) for p in ref.parts.values())
    assert t.inflight_bytes() == sum(sum(p.outstanding.values()) for p in ref.parts.values())
    assert t.committable() == ref.committable()


@pytest.mark.parametrize("seed", range(60))
def test_random_operations_match_reference(seed: int) -> None:
    rng = random.Random(1000 + seed)
    tps: list[TP] = [A, B, C]
    t, ref = Partitions(), Reference()
    next_offset = {tp: rng.randrange(0, 50) for tp in tps}
    for _ in range(600):
        op = rng.random()
        tp = rng.choice(tps)
        if op < 0.45:
            if rng.random() < 0.03 and tp in ref.parts:  # rewind (seek back)
                last = ref.parts[tp].last_seen
                offset = rng.randrange(max(0, last - 20), last + 1)
            else:
                offset = next_offset[tp]
            size = rng.randrange(0, 100)
            t.add(tp, offset, size)
            ref.add(tp, offset, size)
            next_offset[tp] = offset + rng.choice((1, 1, 1, 3))
        elif op < 0.85:
            part = ref.parts.get(tp)
            if part and part.outstanding and rng.random() < 0.9:
                offset = rng.choice(list(part.outstanding))
            else:
                offset = rng.randrange(0, next_offset[tp] + 5)  # unknown or duplicate
            assert t.complete(tp, offset) == ref.complete(tp, offset)
        elif op < 0.95:
            positions = t.committable()
            assert positions == ref.committable()
            if rng.random() < 0.8:  # sometimes the commit fails and is not marked
                t.mark_committed(positions)
                ref.mark_committed(positions)
        else:
            revoked = rng.sample(tps, rng.randrange(1, 3))
            assert t.revoke(revoked) == ref.revoke(revoked)
            for r in revoked:  # the partition may come back from an earlier offset
                next_offset[r] = max(0, next_offset[r] - rng.randrange(0, 10))
        assert_same(t, ref)


def test_operations_are_amortised_constant_time() -> None:
    """200k offsets completed in reverse (worst case for the gap logic) stays linear."""
    n = 200_000
    t = Partitions()
    started = time.perf_counter()
    for off in range(n):
        t.add(A, off, size=1)
    for off in range(n - 1, -1, -1):
        t.complete(A, off)
        if off % 1000 == 0:
            t.committable()
    elapsed = time.perf_counter() - started
    assert t.position(A) == n
    assert t.inflight_count() == 0
    assert elapsed < 5.0, elapsed
