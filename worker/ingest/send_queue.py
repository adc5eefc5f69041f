"""One lane's batches, and which of them is sent when the lane gets a token.

A lane is one (dataset group, API): the unit of Personalize's quota. Its batches are
chosen only when the rate limiter hands out a token, never before: a batch that waits
for the quota keeps **filling** meanwhile. Forming batches at linger time and queueing
them behind the limiter instead froze them at whatever they held when the linger ended,
so after a throttling storm the backlog went out as a long tail of 1-2-event calls.

When a token comes, `take` chooses:
  1. the oldest open batch if it has waited `max_wait_s` and no full batch opened
     before it (no batch waits behind full ones for ever: a bound on latency);
  2. else the oldest full batch (a call of 10 events costs the same token as a call of 1);
  3. else the oldest open batch whose linger has ended.

With ``ordered=True`` (catalog upserts: last write wins, so Kafka order must hold) at most
one batch per key is out at a time and a key's batches go in the order they were formed;
the caller reports the end of each with `done`.

Pure: time is passed in; no event loop. `lanes.Lane` drives it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

from worker.ingest.grouping import Batch, Batcher
from worker.records import SourceRef

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SendQueue(Generic[K, T]):
    """Open batches (a `Batcher`), full ones waiting for a token, and the choice between them."""

    def __init__(self, *, linger_s: float, max_wait_s: float, max_entries: int = 10, ordered: bool = False) -> None:
        if max_wait_s < linger_s:
            raise ValueError(f"max_wait_s ({max_wait_s}) must be >= linger_s ({linger_s})")
        self._batcher: Batcher[K, T] = Batcher(max_entries=max_entries, linger_s=linger_s)
        self._full: deque[Batch[K, T]] = deque()
        self._full_entries = 0
        self._max_wait_s = max_wait_s
        self._ordered = ordered
        self._busy: set[K] = set()

    @property
    def linger_s(self) -> float:
        return self._batcher.linger_s

    @property
    def ordered(self) -> bool:
        return self._ordered

    def add(self, key: K, payload: T, source: SourceRef, now: float, *, coalesce_id: str | None = None,
            size: int = 0) -> bool:
        """Add one record; True when it completed a batch (which can go at once)."""
        full = self._batcher.add(key, payload, source, now, coalesce_id=coalesce_id, size=size)
        if full is None:
            return False
        self._full.append(full)
        self._full_entries += len(full.entries)
        return True

    def ready_at(self) -> float | None:
        """When `take` will next return a batch (-inf: now); None while nothing can go."""
        if not self._ordered:
            if self._full:
                return -float("inf")
            return self._batcher.next_deadline()
        if any(batch.key not in self._busy for batch in self._full):
            return -float("inf")
        sendable = self._first_sendable_open()
        return None if sendable is None else sendable.opened_at + self._batcher.linger_s

    def _first_sendable_open(self) -> Batch[K, T] | None:
        """Ordered: the oldest open batch whose key has nothing out and no full batch waiting."""
        waiting = {batch.key for batch in self._full}
        for batch in self._batcher.in_opening_order():
            if batch.key not in self._busy and batch.key not in waiting:
                return batch
        return None

    def take(self, now: float) -> Batch[K, T] | None:
        """The batch to send with the token just granted (see the module docstring), removed."""
        batch = self._take_ordered(now) if self._ordered else self._take_unordered(now)
        if batch is not None and self._ordered:
            self._busy.add(batch.key)
        return batch

    def _take_unordered(self, now: float) -> Batch[K, T] | None:
        oldest = self._batcher.oldest()
        first_full = self._full[0] if self._full else None
        if oldest is not None and oldest.opened_at + self._max_wait_s <= now and (
                first_full is None or oldest.opened_at <= first_full.opened_at):
            return self._batcher.take(oldest.key)
        if first_full is not None:
            return self._pop_full(0)
        if oldest is not None and oldest.opened_at + self._batcher.linger_s <= now:
            return self._batcher.take(oldest.key)
        return None

    def _take_ordered(self, now: float) -> Batch[K, T] | None:
        for index, batch in enumerate(self._full):
            if batch.key not in self._busy:
                return self._pop_full(index)
        sendable = self._first_sendable_open()
        if sendable is not None and sendable.opened_at + self._batcher.linger_s <= now:
            return self._batcher.take(sendable.key)
        return None

    def _pop_full(self, index: int) -> Batch[K, T]:
        batch = self._full[index]
        del self._full[index]
        self._full_entries -= len(batch.entries)
        return batch

    def done(self, key: K) -> None:
        """Ordered: the batch of `key` that was out is finished; the key's next may go."""
        self._busy.discard(key)

    def flush(self) -> None:
        """Shutdown: every batch is due now (no more lingering, oldest first)."""
        self._batcher.linger_s = 0.0
        self._max_wait_s = 0.0

    def __len__(self) -> int:
        """Pending entries, open and full (coalesced updates count once)."""
        return len(self._batcher) + self._full_entries
