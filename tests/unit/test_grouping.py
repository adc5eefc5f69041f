"""Batcher: grouping by key, size limit, linger, coalescing, split, and many keys."""

from __future__ import annotations

import random
import time

import pytest

from worker.ingest.grouping import Batch, Batcher, Entry
from worker.records import SourceRef

Key = tuple[str, str, str]


def src(offset: int, partition: int = 0, topic: str = "clicks") -> SourceRef:
    return SourceRef(topic, partition, offset)


def test_groups_by_key_preserving_order() -> None:
    b: Batcher[str, str] = Batcher(max_entries=10, linger_s=1.0)
    for i, key in enumerate("abcabcaab"):
        assert b.add(key, f"{key}{i}", src(i), now=0.0) is None
    assert len(b) == 9
    assert b.open_batches == 3
    batches = {batch.key: batch for batch in b.drain()}
    assert batches["a"].payloads() == ["a0", "a3", "a6", "a7"]
    assert batches["b"].payloads() == ["b1", "b4", "b8"]
    assert batches["c"].payloads() == ["c2", "c5"]
    assert [s.offset for s in batches["a"].sources()] == [0, 3, 6, 7]
    assert len(b) == 0
    assert b.open_batches == 0


def test_full_batch_is_returned_and_removed() -> None:
    b: Batcher[str, int] = Batcher(max_entries=10, linger_s=1.0)
    emitted = []
    for i in range(25):
        out = b.add("k", i, src(i), now=i * 0.001)
        if out is not None:
            emitted.append(out)
            assert len(out.entries) == 10
    assert [batch.payloads() for batch in emitted] == [list(range(10)), list(range(10, 20))]
    assert emitted[1].opened_at == pytest.approx(0.010)  # the next batch opened at its first add
    assert len(b) == 5
    assert b.open_batches == 1
    (rest,) = b.drain()
    assert rest.payloads() == list(range(20, 25))


def test_max_entries_one_emits_every_add() -> None:
    b: Batcher[str, int] = Batcher(max_entries=1, linger_s=10.0)
    out = b.add("k", 1, src(1), now=0.0)
    assert out is not None
    assert out.payloads() == [1]
    assert len(b) == 0
    assert b.next_deadline() is None


def test_linger_expiry_oldest_first() -> None:
    b: Batcher[str, int] = Batcher(max_entries=10, linger_s=0.05)
    assert b.next_deadline() is None
    b.add("a", 1, src(1), now=1.00)
    b.add("b", 2, src(2), now=1.03)
    b.add("a", 3, src(3), now=1.04)  # joins a's batch; does not extend its linger
    assert b.next_deadline() == pytest.approx(1.05)
    assert b.due(1.049) == []
    (first,) = b.due(1.05)
    assert first.key == "a"
    assert first.payloads() == [1, 3]
    assert first.opened_at == 1.00
    assert b.next_deadline() == pytest.approx(1.08)
    b.add("a", 4, src(4), now=1.06)  # a fresh batch for "a", behind "b"
    assert [batch.key for batch in b.due(10.0)] == ["b", "a"]
    assert b.next_deadline() is None
    assert len(b) == 0


def test_due_at_next_deadline_returns_that_batch() -> None:
    """The sender sleeps until next_deadline() and then calls due() with it: no off-by-epsilon."""
    b: Batcher[str, int] = Batcher(max_entries=10, linger_s=0.07)
    for i, now in enumerate((0.1, 0.2, 0.30000000000000004, 1e9 + 0.1)):
        b.add(str(i), i, src(i), now=now)
        deadline = b.next_deadline()
        assert deadline is not None
        assert [batch.key for batch in b.due(deadline)] == [str(i)]


def test_linger_zero_makes_everything_due_at_once() -> None:
    b: Batcher[str, int] = Batcher(max_entries=10, linger_s=0.0)
    b.add("a", 1, src(1), now=5.0)
    b.add("b", 2, src(2), now=5.0)
    assert b.next_deadline() == 5.0
    assert [batch.key for batch in b.due(5.0)] == ["a", "b"]


def test_coalescing_last_write_wins_and_keeps_all_sources() -> None:
    b: Batcher[str, dict[str, str]] = Batcher(max_entries=10, linger_s=1.0)
    b.add("items", {"itemId": "x", "v": "1"}, src(1), now=0.0, coalesce_id="x", size=10)
    b.add("items", {"itemId": "y", "v": "1"}, src(2), now=0.0, coalesce_id="y", size=10)
    b.add("items", {"itemId": "x", "v": "2"}, src(3), now=0.0, coalesce_id="x", size=30)
    b.add("users", {"userId": "x", "v": "1"}, src(4), now=0.0, coalesce_id="x")  # other key: separate
    assert len(b) == 3
    items, users = b.drain()
    assert items.payloads() == [{"itemId": "x", "v": "2"}, {"itemId": "y", "v": "1"}]  # x keeps slot 0
    assert items.entries[0].sources == [src(1), src(3)]
    assert items.entries[0].size == 30
    assert sorted(s.offset for s in items.sources()) == [1, 2, 3]
    assert items.size == 40
    assert users.payloads() == [{"userId": "x", "v": "1"}]


def test_coalesced_updates_do_not_fill_the_batch() -> None:
    b: Batcher[str, int] = Batcher(max_entries=3, linger_s=1.0)
    for i in range(20):
        assert b.add("k", i, src(i), now=0.0, coalesce_id="same") is None
    assert len(b) == 1
    (batch,) = b.drain()
    assert batch.payloads() == [19]
    assert [s.offset for s in batch.sources()] == list(range(20))


def test_coalescing_only_within_the_open_batch() -> None:
    b: Batcher[str, str] = Batcher(max_entries=2, linger_s=1.0)
    assert b.add("k", "x1", src(1), now=0.0, coalesce_id="x") is None
    full = b.add("k", "y1", src(2), now=0.0, coalesce_id="y")
    assert full is not None
    # x1 is already on its way: x2 starts a new entry in a new batch, the old batch is untouched.
    assert b.add("k", "x2", src(3), now=0.1, coalesce_id="x") is None
    assert full.payloads() == ["x1", "y1"]
    assert b.add("k", "y2", src(4), now=0.1, coalesce_id="y") is not None
    b.add("k", "x3", src(5), now=0.2, coalesce_id="x")
    (due,) = b.due(2.0)
    assert due.payloads() == ["x3"]
    assert due.sources() == [src(5)]


def test_mixing_coalesced_and_plain_entries() -> None:
    b: Batcher[str, str] = Batcher(max_entries=4, linger_s=1.0)
    b.add("k", "a", src(1), now=0.0)
    b.add("k", "x1", src(2), now=0.0, coalesce_id="x")
    b.add("k", "b", src(3), now=0.0)
    b.add("k", "x2", src(4), now=0.0, coalesce_id="x")
    out = b.add("k", "c", src(5), now=0.0)
    assert out is not None
    assert out.payloads() == ["a", "x2", "b", "c"]
    assert out.entries[1].sources == [src(2), src(4)]


def test_split_halves_in_order() -> None:
    entries = [Entry(i, [src(i)], size=i) for i in range(5)]
    batch = Batch("k", entries, opened_at=3.0)
    left, right = batch.split()
    assert left.payloads() == [0, 1]
    assert right.payloads() == [2, 3, 4]
    assert left.key == right.key == "k"
    assert left.opened_at == right.opened_at == 3.0
    assert left.sources() + right.sources() == batch.sources()
    ll, lr = left.split()
    assert (ll.payloads(), lr.payloads()) == ([0], [1])
    with pytest.raises(ValueError, match="split"):
        ll.split()
    with pytest.raises(ValueError):
        Batch("k", [], 0.0).split()


def test_now_going_backwards_keeps_order_and_loses_nothing() -> None:
    b: Batcher[str, int] = Batcher(max_entries=10, linger_s=0.05)
    b.add("a", 1, src(1), now=10.0)
    b.add("b", 2, src(2), now=9.0)  # clock stepped back
    b.add("c", 3, src(3), now=10.01)
    assert b.next_deadline() == pytest.approx(10.05)
    assert b.due(9.06) == []  # b is not released ahead of a
    released = b.due(10.05)
    assert [batch.key for batch in released] == ["a", "b"]
    # b counts as opened at the latest time seen, so "due() returns every batch with
    # opened_at + linger_s <= now" stays true of what is left behind.
    assert released[1].opened_at == 10.0
    assert [batch.key for batch in b.due(10.06)] == ["c"]


def test_backwards_batch_behind_a_removed_full_one_keeps_its_clamped_deadline() -> None:
    b: Batcher[str, int] = Batcher(max_entries=2, linger_s=0.05)
    b.add("a", 1, src(1), now=10.0)
    b.add("b", 2, src(2), now=9.0)
    assert b.add("a", 3, src(3), now=10.0) is not None  # a leaves from the front
    assert b.next_deadline() == pytest.approx(10.05)
    (left,) = b.drain()
    assert left.opened_at + b.linger_s > 9.06  # consistent with next_deadline


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError):
        Batcher(max_entries=0)
    with pytest.raises(ValueError):
        Batcher(linger_s=-1.0)


def test_many_keys_due_and_deadline_do_not_scan_every_key() -> None:
    """50k open sessions; 20k due() polls with nothing due, then staggered expiry."""
    n = 50_000
    b: Batcher[Key, int] = Batcher(max_entries=10, linger_s=0.05)
    for i in range(n):
        b.add(("tracker", f"user{i}", f"session{i}"), i, src(i), now=i * 1e-6)
    assert b.open_batches == n
    started = time.perf_counter()
    for _ in range(20_000):
        assert b.due(0.049) == []
        assert b.next_deadline() == pytest.approx(0.05)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, elapsed  # a per-call scan would be 1e9 steps
    released: list[int] = []
    now = 0.05
    while b.open_batches:
        now += 0.001
        released.extend(batch.payloads()[0] for batch in b.due(now))
    assert released == list(range(n))  # oldest first, each exactly once


@pytest.mark.parametrize("seed", range(25))
def test_random_workload_invariants(seed: int) -> None:
    """Every source comes out exactly once, in per-key order, within the limits."""
    rng = random.Random(seed)
    max_entries = rng.randrange(1, 11)
    linger = rng.choice((0.0, 0.01, 0.05))
    b: Batcher[str, tuple[int, str | None]] = Batcher(max_entries=max_entries, linger_s=linger)
    keys = [f"k{i}" for i in range(rng.randrange(1, 30))]
    emitted: list[tuple[float, Batch[str, tuple[int, str | None]]]] = []
    added: list[tuple[str, int]] = []
    now = 0.0
    for offset in range(rng.randrange(50, 500)):
        now += rng.choice((0.0, 0.0, 0.001, 0.02))
        key = rng.choice(keys)
        cid = rng.choice((None, None, "e1", "e2", "e3"))
        out = b.add(key, (offset, cid), src(offset), now=now, coalesce_id=cid)
        added.append((key, offset))
        if out is not None:
            emitted.append((now, out))
        if rng.random() < 0.2:
            deadline = b.next_deadline()
            due = b.due(now)
            if deadline is None or deadline > now:
                assert due == []
            emitted.extend((now, batch) for batch in due)
            assert all(batch.opened_at + linger <= now for batch in due)
            assert [x.opened_at for x in due] == sorted(x.opened_at for x in due)
    emitted.extend((now, batch) for batch in b.drain())
    assert len(b) == 0

    seen = sorted(s.offset for _, batch in emitted for s in batch.sources())
    assert seen == list(range(len(added)))
    per_key_sources: dict[str, list[int]] = {}
    for _, batch in emitted:
        assert 1 <= len(batch.entries) <= max_entries
        ids = [p[1] for p in batch.payloads() if p[1] is not None]
        assert len(ids) == len(set(ids))  # coalesced: one entry per id per batch
        for entry in batch.entries:
            # The payload is the last write among the entry's sources.
            assert entry.payload[0] == max(s.offset for s in entry.sources)
            assert all(s.offset in {o for k, o in added if k == batch.key} for s in entry.sources)
        per_key_sources.setdefault(batch.key, []).extend(
            min(s.offset for s in entry.sources) for entry in batch.entries
        )
    for key, firsts in per_key_sources.items():
        assert firsts == sorted(firsts), key  # entries keep per-key arrival order
