"""Which offset each partition may commit while records finish out of order.

The async side delivers records concurrently, so offset 7 can be done before offset 5.
Kafka only stores one position per partition, and committing past an unfinished record
would lose it on a crash. The safe position is therefore one past the highest offset
below which *everything* is done: the lowest offset still outstanding, or one past the
last offset seen when nothing is outstanding.

Per partition we keep the outstanding offsets in arrival order (a deque, increasing)
plus a dict of the ones not yet completed. Completing the head pops it and every
already-completed offset behind it; completing anything else only removes it from the
dict, so the deque keeps a stale entry that blocks nothing once the head passes it.
Each offset is pushed and popped once: O(1) amortised per add/complete.

Pure state; the consumer thread and the async side share one instance under the
caller's lock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

TP = tuple[str, int]
"""(topic, partition). `kafka.TopicPartition` is a namedtuple, so it hashes and compares
equal to the plain tuple and either can be used as a key."""


class _PartitionState:
    """Offsets of one partition that were handed out and not yet released by the head."""

    __slots__ = ("committed", "last_seen", "order", "sizes")

    def __init__(self) -> None:
        #: Offsets in arrival order; may include completed ones behind the head.
        self.order: deque[int] = deque()
        #: Offsets not yet completed -> size in bytes (membership = "in flight").
        self.sizes: dict[int, int] = {}
        self.last_seen = -1
        #: Highest position acknowledged by `mark_committed`, None before the first.
        self.committed: int | None = None

    def position(self) -> int:
        return self.order[0] if self.order else self.last_seen + 1

    def release_head(self) -> None:
        """Pop completed offsets at the head so `order[0]` is always outstanding."""
        order, sizes = self.order, self.sizes
        while order and order[0] not in sizes:
            order.popleft()

    def advanced(self) -> bool:
        return self.committed is None or self.position() > self.committed


class OffsetTracker:
    """Per-partition in-flight offsets; commit position = one past the highest contiguous done offset.

    Not thread-safe: the caller holds a lock.

    Rewinds: offsets of one partition normally arrive in increasing order (gaps are
    fine: compaction and transaction markers leave holes). An `add` of an offset at or
    below the last one seen means the consumer was rewound (a seek, or a partition
    coming back without a `revoke`): Kafka will redeliver everything from that offset
    on. The tracker then forgets the outstanding offsets at or above it — they are
    about to be re-added — and keeps the ones below it, which still block the commit.
    A completion of a forgotten copy is ignored, or, once the redelivered copy has been
    re-added, counts for it; either way the record was delivered at least once. The
    position can move backwards after a rewind, but `committable` only reports
    positions above the last committed one, so a commit never goes backwards.
    """

    def __init__(self) -> None:
        self._parts: dict[TP, _PartitionState] = {}
        self._count = 0
        self._bytes = 0

    def add(self, tp: TP, offset: int, size: int = 0) -> None:
        """Record that `offset` was handed to the pipeline (see the class doc for rewinds)."""
        state = self._parts.get(tp)
        if state is None:
            state = self._parts[tp] = _PartitionState()
        elif offset <= state.last_seen:
            self._forget_from(state, offset)
        state.order.append(offset)
        state.sizes[offset] = size
        state.last_seen = offset
        self._count += 1
        self._bytes += size

    def _forget_from(self, state: _PartitionState, offset: int) -> None:
        """Drop outstanding offsets >= `offset` (a rewind); amortised by their own adds."""
        order, sizes = state.order, state.sizes
        while order and order[-1] >= offset:
            dropped = order.pop()
            size = sizes.pop(dropped, None)
            if size is not None:
                self._count -= 1
                self._bytes -= size

    def complete(self, tp: TP, offset: int) -> bool:
        """Mark `offset` done. False (and nothing changes) for a revoked partition or an
        offset that is unknown or already completed, so late or duplicate completions
        from the async side are harmless."""
        state = self._parts.get(tp)
        if state is None:
            return False
        size = state.sizes.pop(offset, None)
        if size is None:
            return False
        self._count -= 1
        self._bytes -= size
        if state.order[0] == offset:
            state.release_head()
        return True

    def advance(self, tp: TP, position: int) -> None:
        """The consumer's fetch position for `tp` is `position` and nothing of `tp` is in flight.

        Every offset below the fetch position was either handed out (and, with nothing
        outstanding, finished) or was never a record: transaction control markers, batches
        of aborted transactions skipped under read_committed, compacted gaps. Moving the
        safe position up to it lets the commit pass them; without this, a partition whose
        last offset is a commit marker would show a lag of one forever.
        """
        state = self._parts.get(tp)
        if state is None:
            state = self._parts[tp] = _PartitionState()
        if not state.sizes and position - 1 > state.last_seen:
            state.order.clear()
            state.last_seen = position - 1

    def reset(self, tp: TP) -> None:
        """Forget `tp` entirely, committed mark included: its position was reset (the log was
        re-created or truncated), so the next commit may legitimately go backwards."""
        self.revoke([tp])

    def last_seen(self, tp: TP) -> int | None:
        state = self._parts.get(tp)
        return None if state is None or state.last_seen < 0 else state.last_seen

    def committable(self) -> dict[TP, int]:
        """Positions that advanced past the last `mark_committed`, for a commit."""
        return {tp: state.position() for tp, state in self._parts.items() if state.advanced()}

    def mark_committed(self, positions: Mapping[TP, int]) -> None:
        """Remember acknowledged commits. Unknown (revoked) partitions are ignored and a
        late acknowledgement of an older position never lowers the mark."""
        for tp, pos in positions.items():
            state = self._parts.get(tp)
            if state is not None and (state.committed is None or pos > state.committed):
                state.committed = pos

    def position(self, tp: TP) -> int | None:
        """Current safe commit position (committed or not); None for an unknown partition."""
        state = self._parts.get(tp)
        return None if state is None else state.position()

    def revoke(self, tps: Iterable[TP]) -> dict[TP, int]:
        """Forget partitions (rebalance). Returns the final positions of those whose
        position advanced past the last commit, for a best-effort last commit; the
        in-flight records of a revoked partition will be redelivered to its new owner."""
        final: dict[TP, int] = {}
        for tp in tps:
            state = self._parts.pop(tp, None)
            if state is None:
                continue
            if state.advanced():
                final[tp] = state.position()
            self._count -= len(state.sizes)
            self._bytes -= sum(state.sizes.values())
        return final

    def inflight_count(self, tp: TP | None = None) -> int:
        """Outstanding offsets, in total or for one partition (0 if unknown)."""
        if tp is None:
            return self._count
        state = self._parts.get(tp)
        return 0 if state is None else len(state.sizes)

    def inflight_bytes(self) -> int:
        """Sum of the sizes given to `add` for outstanding offsets (backpressure)."""
        return self._bytes

    def partitions(self) -> set[TP]:
        return set(self._parts)
