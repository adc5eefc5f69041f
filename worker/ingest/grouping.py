"""Group records into API calls: one batch per key, sent when full or when its linger ends.

PutEvents takes up to 10 events that share (trackingId, userId, sessionId); PutItems and
PutUsers take up to 10 records per dataset. Waiting a few milliseconds for a batch to
fill cuts the request count — and the request rate is the quota — at a small latency
cost. Items and users are coalesced by ID inside the open batch (last write wins), so a
burst of updates to one entity costs one slot, while every source offset still gets
completed or dead-lettered with it.

Many keys (tens of thousands of sessions) can be open at once, so finding due batches
must not scan them all. Batches open in non-decreasing time order, so an ordered dict
keyed by batch key holds them oldest first: `due` pops from the front until the first
batch that is not due, and removing a full batch from the middle is O(1).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from worker.records import SourceRef

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@dataclass(slots=True)
class Entry(Generic[T]):
    """One record of a call, and every source it stands for (several when coalesced)."""

    payload: T
    sources: list[SourceRef]
    size: int = 0


@dataclass(slots=True)
class Batch(Generic[K, T]):
    """The entries of one future API call; `opened_at` is when its linger started."""

    key: K
    entries: list[Entry[T]]
    opened_at: float

    def sources(self) -> list[SourceRef]:
        """All sources of all entries, coalesced ones included: what to complete or dead-letter."""
        return [src for entry in self.entries for src in entry.sources]

    def payloads(self) -> list[T]:
        return [entry.payload for entry in self.entries]

    def split(self) -> tuple[Batch[K, T], Batch[K, T]]:
        """Halves, in order, for bisecting a batch the service rejected as invalid."""
        if len(self.entries) < 2:
            raise ValueError(f"cannot split a batch of {len(self.entries)} entries")
        mid = len(self.entries) // 2
        return (
            Batch(self.key, self.entries[:mid], self.opened_at),
            Batch(self.key, self.entries[mid:], self.opened_at),
        )

    @property
    def size(self) -> int:
        """Sum of the entry sizes (bytes, as given to `Batcher.add`)."""
        return sum(entry.size for entry in self.entries)


class Batcher(Generic[K, T]):
    """Open batches per key, emitted when they reach `max_entries` or their linger ends.

    Time is passed in (`now`) so the logic is testable and independent of the loop.
    Assumption: `now` never decreases between calls (a monotonic clock). If it does go
    backwards, a newly opened batch counts as opened at the latest time seen instead,
    which keeps the open batches in deadline order — no batch is emitted out of order
    or lost; one opened during the backward step lingers longer by the size of the step.
    Not thread-safe: it belongs to the event loop.
    """

    def __init__(self, max_entries: int = 10, linger_s: float = 0.05) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        if linger_s < 0:
            raise ValueError("linger_s must be >= 0")
        self.max_entries = max_entries
        self.linger_s = linger_s
        self._open: OrderedDict[K, Batch[K, T]] = OrderedDict()
        #: key -> coalesce_id -> index of its entry in the open batch.
        self._coalesce: dict[K, dict[str, int]] = {}
        self._pending = 0
        self._latest_open = float("-inf")

    def add(
        self,
        key: K,
        payload: T,
        source: SourceRef,
        now: float,
        *,
        coalesce_id: str | None = None,
        size: int = 0,
    ) -> Batch[K, T] | None:
        """Append to the open batch for `key`, opening it at `now` if there is none.

        With `coalesce_id`, an entry of the OPEN batch with the same id is replaced
        instead (payload and size replaced, source appended, position kept): the last
        write wins, as it would on the service, and the request carries one record
        per entity. A batch already emitted is never touched.
        Returns the batch, removed from the open set, once it holds `max_entries`.
        """
        batch = self._open.get(key)
        if batch is None:
            self._latest_open = max(self._latest_open, now)
            batch = self._open[key] = Batch(key, [], self._latest_open)
        if coalesce_id is not None:
            index = self._coalesce.setdefault(key, {})
            at = index.get(coalesce_id)
            if at is not None:
                entry = batch.entries[at]
                entry.payload = payload
                entry.sources.append(source)
                entry.size = size
                return None
            index[coalesce_id] = len(batch.entries)
        batch.entries.append(Entry(payload, [source], size))
        self._pending += 1
        if len(batch.entries) >= self.max_entries:
            self._remove(key)
            return batch
        return None

    def _remove(self, key: K) -> Batch[K, T]:
        batch = self._open.pop(key)
        self._coalesce.pop(key, None)
        self._pending -= len(batch.entries)
        return batch

    def due(self, now: float) -> list[Batch[K, T]]:
        """Remove and return batches whose linger ended (opened_at + linger_s <= now), oldest first."""
        out: list[Batch[K, T]] = []
        for batch in self._open.values():
            if batch.opened_at + self.linger_s > now:
                break
            out.append(batch)
        for batch in out:
            self._remove(batch.key)
        return out

    def oldest(self) -> Batch[K, T] | None:
        """The open batch opened first (the next to become due), without removing it."""
        for batch in self._open.values():
            return batch
        return None

    def take(self, key: K) -> Batch[K, T]:
        """Remove and return the open batch of `key` (KeyError if none is open)."""
        return self._remove(key)

    def in_opening_order(self) -> list[Batch[K, T]]:
        """The open batches, oldest first (a copy: the caller may take from the batcher meanwhile)."""
        return list(self._open.values())

    def next_deadline(self) -> float | None:
        """When the oldest open batch is due; None if nothing is open (sleep until input)."""
        for batch in self._open.values():
            return batch.opened_at + self.linger_s
        return None

    def drain(self) -> list[Batch[K, T]]:
        """Remove and return every open batch, oldest first (shutdown, or linger 0)."""
        out = list(self._open.values())
        self._open.clear()
        self._coalesce.clear()
        self._pending = 0
        return out

    def __len__(self) -> int:
        """Pending entries (coalesced updates count once)."""
        return self._pending

    @property
    def open_batches(self) -> int:
        return len(self._open)
