"""SendQueue: which batch goes with the next token (full first, none starved, catalog order kept)."""

from __future__ import annotations

import pytest

from worker.ingest.send_queue import SendQueue
from worker.records import SourceRef


def src(n: int) -> SourceRef:
    return SourceRef("t", 0, n)


def fill(queue: SendQueue[str, int], key: str, count: int, now: float, start: int = 0) -> bool:
    full = False
    for i in range(count):
        full = queue.add(key, start + i, src(start + i), now) or full
    return full


def test_nothing_is_ready_before_its_linger_ends() -> None:
    queue: SendQueue[str, int] = SendQueue(linger_s=0.05, max_wait_s=1.0)
    assert queue.ready_at() is None and queue.take(0.0) is None
    fill(queue, "a", 3, now=1.0)
    assert queue.ready_at() == pytest.approx(1.05)
    assert queue.take(1.04) is None
    batch = queue.take(1.05)
    assert batch is not None and batch.payloads() == [0, 1, 2]
    assert len(queue) == 0


def test_a_full_batch_is_ready_at_once_and_goes_before_older_partial_ones() -> None:
    queue: SendQueue[str, int] = SendQueue(linger_s=0.05, max_wait_s=1.0)
    fill(queue, "partial", 2, now=0.0)
    assert fill(queue, "busy", 10, now=0.1)
    assert queue.ready_at() == float("-inf")
    first = queue.take(0.2)
    assert first is not None and first.key == "busy" and len(first.entries) == 10, "10 events for one token"
    second = queue.take(0.2)
    assert second is not None and second.key == "partial"


def test_a_batch_waiting_for_a_token_keeps_filling() -> None:
    """The point of choosing at token time: the linger ended long ago, but the batch is not frozen."""
    queue: SendQueue[str, int] = SendQueue(linger_s=0.05, max_wait_s=5.0)
    fill(queue, "s", 2, now=0.0)
    fill(queue, "s", 5, now=0.5, start=2)  # no token until now
    batch = queue.take(0.6)
    assert batch is not None and len(batch.entries) == 7


def test_a_partial_batch_is_not_starved_by_a_stream_of_full_ones() -> None:
    queue: SendQueue[str, int] = SendQueue(linger_s=0.05, max_wait_s=1.0)
    fill(queue, "lonely", 1, now=0.0)
    taken = []
    for step in range(1, 30):
        now = step * 0.1
        fill(queue, f"busy-{step}", 10, now=now)
        batch = queue.take(now)
        assert batch is not None
        taken.append((round(now, 1), batch.key))
    assert ("1.0", "lonely") in [(f"{t:.1f}", k) for t, k in taken], "it goes once it has waited max_wait_s"
    assert taken[0][1] == "busy-1"


def test_full_batches_that_opened_before_a_starving_one_still_go_first() -> None:
    queue: SendQueue[str, int] = SendQueue(linger_s=0.05, max_wait_s=1.0)
    fill(queue, "old-full", 10, now=0.0)
    fill(queue, "later", 1, now=0.5)
    first, second = queue.take(3.0), queue.take(3.0)
    assert first is not None and second is not None
    assert [first.key, second.key] == ["old-full", "later"]


def test_ordered_one_batch_per_key_out_and_in_the_order_formed() -> None:
    """Catalog upserts: the key's second full batch and its open one wait until the first is done."""
    queue: SendQueue[str, int] = SendQueue(linger_s=0.0, max_wait_s=1.0, ordered=True)
    for i in range(25):  # ids 0..24: two full batches, then an open one of 5
        queue.add("items", i, src(i), 0.0, coalesce_id=str(i))
    fill(queue, "users", 1, now=0.0, start=100)
    first = queue.take(0.0)
    assert first is not None and first.payloads() == list(range(10))
    other = queue.take(0.0)
    assert other is not None and other.key == "users", "another key is not held up"
    assert queue.take(0.0) is None and queue.ready_at() is None, "items: one call at a time"
    queue.done("items")
    second = queue.take(0.0)
    assert second is not None and second.payloads() == list(range(10, 20))
    queue.done("items")
    third = queue.take(0.0)
    assert third is not None and third.payloads() == list(range(20, 25))


def test_ordered_coalesces_while_the_previous_call_is_out() -> None:
    queue: SendQueue[str, str] = SendQueue(linger_s=0.0, max_wait_s=1.0, ordered=True)
    queue.add("items", "v1", src(0), 0.0, coalesce_id="item-1")
    assert queue.take(0.0) is not None
    for n, value in enumerate(("v2", "v3", "v4"), start=1):  # updates of one item while the first call is out
        queue.add("items", value, src(n), 0.1, coalesce_id="item-1")
    queue.done("items")
    batch = queue.take(0.2)
    assert batch is not None and batch.payloads() == ["v4"] and len(batch.sources()) == 3


def test_flush_makes_everything_due_now_oldest_first() -> None:
    queue: SendQueue[str, int] = SendQueue(linger_s=10.0, max_wait_s=60.0)
    fill(queue, "a", 1, now=0.0)
    fill(queue, "b", 1, now=0.1)
    assert queue.take(1.0) is None
    queue.flush()
    assert queue.ready_at() == pytest.approx(0.0)
    keys = [batch.key for batch in (queue.take(1.0), queue.take(1.0)) if batch is not None]
    assert keys == ["a", "b"]


def test_max_wait_below_linger_is_refused() -> None:
    with pytest.raises(ValueError, match="max_wait_s"):
        SendQueue(linger_s=2.0, max_wait_s=1.0)


def test_len_counts_open_and_full_entries() -> None:
    queue: SendQueue[str, int] = SendQueue(linger_s=1.0, max_wait_s=1.0)
    fill(queue, "a", 13, now=0.0)
    assert len(queue) == 13
    queue.take(0.0)
    assert len(queue) == 3
