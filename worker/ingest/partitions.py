"""Every partition's state in one object, the way aiokafka keeps a subscription state.

One `Partition` per partition this consumer owns (or owned until the rebalance in progress)
holds everything the consumer thread knows about it, so nothing has to be kept in step by
hand across parallel maps:

* **offsets in flight** and the commit position. Records finish out of order (calls run
  concurrently), so offset 7 can be done before 5; committing past an unfinished record
  would lose it on a crash. The safe position is the lowest offset still outstanding, or one
  past the last offset seen. Offsets are kept in arrival order (a deque) plus a dict of the
  ones not yet completed; completing the head pops it and every completed offset behind it,
  so each offset is pushed and popped once (O(1) amortised).
* **what a rebalance left to do**: a partition revoked with unfinished records that comes
  straight back must be rewound to the first of them (kafka-python kept its fetch position,
  but those records were forgotten at revocation and would be committed past).
* **why it is held** (`Hold`): a fetch fault (with its retry schedule), a re-created topic
  waiting for its old records to finish. Backpressure, draining and topic-wide
  configuration faults are the consumer's; `pause_reasons` combines them per partition.
* **progress**, for stall detection, and a position seen beyond the log end.

`Partitions` is the registry and the only owner. Pure: no Kafka client, time passed in; the
consumer thread holds a lock around it because rebalance callbacks run on kafka-python's
I/O thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

TP = tuple[str, int]
"""(topic, partition). `kafka.TopicPartition` is a namedtuple, so it hashes and compares
equal to the plain tuple and either can be used as a key."""

#: Longest wait between two retries of a faulted partition.
MAX_RETRY_S = 600.0


class PauseReason(StrEnum):
    """Why a partition is not fetched right now (several can hold at once)."""

    DRAINING = "draining"
    BACKPRESSURE = "backpressure"
    CONFIG_FAULT = "config_fault"
    FETCH_ERROR = "fetch_error"
    RECREATED = "recreated"
    PRIVACY = "privacy"  # the dataset group is paused while a data deletion job runs


class Change(StrEnum):
    """What an observation changed."""

    STALLED = "stalled"
    UNSTALLED = "unstalled"
    BEYOND_END = "beyond_end"


@dataclass(slots=True)
class FetchFault:
    """Why a partition is paused on a fetch failure, and when it is retried."""

    error: str
    message: str
    fix: str
    offset: int | None
    since: float
    retry_at: float
    delay_s: float
    attempts: int = 1

    def describe(self) -> str:
        where = f" at offset {self.offset}" if self.offset is not None else ""
        return f"{self.error}{where}: {self.message} (fix: {self.fix})"


@dataclass(frozen=True, slots=True)
class Observation:
    """One look at a partition: safe position (first unfinished record, or the fetch position
    when nothing is in flight), fetch position, high watermark, records in flight."""

    position: int | None
    fetch_position: int | None
    highwater: int | None
    inflight: int


def lag_of(obs: Observation, *, reset_to_earliest: bool) -> int | None:
    """Records between the safe position and the partition end.

    A fetch position beyond the end means the log was re-created or truncated: what is
    there now is unconsumed when the reset goes to the earliest offset (all of it), and
    nothing when it goes to the latest.
    """
    if obs.highwater is None:
        return None
    if obs.fetch_position is not None and obs.fetch_position > obs.highwater:
        return obs.highwater if reset_to_earliest else 0
    if obs.position is None:
        return None
    return max(0, obs.highwater - obs.position)


class Partition:
    """One partition's state (see the module docstring)."""

    __slots__ = ("assigned", "beyond_end_since", "committed", "fault", "lag", "last_seen", "moved_at", "order",
                 "progress_position", "recreated", "rewind_to", "seek_to", "sizes", "stalled")

    def __init__(self) -> None:
        #: Offsets in arrival order; may include completed ones behind the head.
        self.order: deque[int] = deque()
        #: Offsets not yet completed -> size in bytes (membership = "in flight").
        self.sizes: dict[int, int] = {}
        self.last_seen = -1
        #: Highest position acknowledged by `mark_committed`, None before the first.
        self.committed: int | None = None
        self.assigned = True
        #: Revoked with unfinished records: where they start (for a rewind if it comes back).
        self.rewind_to: int | None = None
        #: A seek owed to the consumer (applied on its thread, after the poll that assigned).
        self.seek_to: int | None = None
        self.recreated = False
        self.fault: FetchFault | None = None
        self.progress_position: int | None = None
        self.moved_at = 0.0
        self.stalled = False
        self.lag = 0
        self.beyond_end_since: float | None = None

    def position(self) -> int:
        return self.order[0] if self.order else self.last_seen + 1

    def known(self) -> bool:
        """Whether a position exists (something was handed out, or the fetch position advanced it)."""
        return bool(self.order) or self.last_seen >= 0

    def release_head(self) -> None:
        """Pop completed offsets at the head so `order[0]` is always outstanding."""
        order, sizes = self.order, self.sizes
        while order and order[0] not in sizes:
            order.popleft()

    def advanced(self) -> bool:
        return self.committed is None or self.position() > self.committed


class Partitions:
    """The registry of `Partition` objects: offsets, rebalances, holds, faults and stalls."""

    def __init__(self, *, stall_after_s: float = 60.0, retry_s: float = 30.0, confirm_s: float = 5.0,
                 reset_to_earliest: bool = True, max_retry_s: float = MAX_RETRY_S) -> None:
        self.stall_after_s = stall_after_s
        self.retry_s = retry_s
        self.confirm_s = confirm_s
        self.reset_to_earliest = reset_to_earliest
        self.max_retry_s = max_retry_s
        self._parts: dict[TP, Partition] = {}
        self._count = 0
        self._bytes = 0

    def _get(self, tp: TP) -> Partition:
        part = self._parts.get(tp)
        if part is None:
            part = self._parts[tp] = Partition()
        return part

    # -- offsets ------------------------------------------------------------------------------

    def add(self, tp: TP, offset: int, size: int = 0) -> None:
        """Record that `offset` was handed to the pipeline.

        Offsets of one partition normally arrive in increasing order (gaps are fine:
        compaction and transaction markers leave holes). An offset at or below the last one
        seen means the consumer was rewound (a seek, or a reset by the client): Kafka will
        redeliver everything from there, so outstanding offsets at or above it are forgotten
        (they are about to be re-added) and the ones below keep blocking the commit. A
        completion of a forgotten copy is ignored or, once the redelivered copy has been
        re-added, counts for it: either way the record was delivered at least once.
        """
        part = self._get(tp)
        if not part.assigned:  # handed out again after a revocation: a fresh start
            part = self._parts[tp] = Partition()
        if part.known() and offset <= part.last_seen:
            self._forget_from(part, offset)
        part.order.append(offset)
        part.sizes[offset] = size
        part.last_seen = offset
        self._count += 1
        self._bytes += size

    def _forget_from(self, part: Partition, offset: int) -> None:
        order, sizes = part.order, part.sizes
        while order and order[-1] >= offset:
            dropped = order.pop()
            size = sizes.pop(dropped, None)
            if size is not None:
                self._count -= 1
                self._bytes -= size

    def complete(self, tp: TP, offset: int) -> bool:
        """Mark `offset` done. False (and nothing changes) for a revoked partition or an offset
        that is unknown or already completed: late or duplicate completions are harmless."""
        part = self._parts.get(tp)
        if part is None or not part.assigned:
            return False
        size = part.sizes.pop(offset, None)
        if size is None:
            return False
        self._count -= 1
        self._bytes -= size
        if part.order[0] == offset:
            part.release_head()
        return True

    def advance(self, tp: TP, position: int) -> None:
        """The consumer's fetch position is `position` and nothing of `tp` is in flight.

        Every offset below it was handed out and finished, or was never a record
        (transaction markers, aborted batches skipped under read_committed, compacted gaps):
        the commit may pass them. Without this a partition whose last offset is a marker
        would show a lag of one forever.
        """
        part = self._get(tp)
        if not part.sizes and position - 1 > part.last_seen:
            part.order.clear()
            part.last_seen = position - 1

    def committable(self) -> dict[TP, int]:
        """Positions of assigned partitions that advanced past the last `mark_committed`."""
        return {tp: p.position() for tp, p in self._parts.items() if p.assigned and p.known() and p.advanced()}

    def mark_committed(self, positions: Mapping[TP, int]) -> None:
        """Remember acknowledged commits; never lowers the mark, ignores unknown partitions."""
        for tp, pos in positions.items():
            part = self._parts.get(tp)
            if part is not None and (part.committed is None or pos > part.committed):
                part.committed = pos

    def position(self, tp: TP) -> int | None:
        """Current safe commit position (committed or not); None when unknown."""
        part = self._parts.get(tp)
        return part.position() if part is not None and part.known() else None

    def last_seen(self, tp: TP) -> int | None:
        part = self._parts.get(tp)
        return None if part is None or part.last_seen < 0 else part.last_seen

    def reset(self, tp: TP) -> None:
        """`tp`'s position was reset (a re-created or truncated log): forget its offsets and its
        committed mark, so the next commit may legitimately go backwards. Holds stay."""
        part = self._parts.get(tp)
        if part is None:
            return
        self._drop_inflight(part)
        part.order.clear()
        part.last_seen = -1
        part.committed = None
        part.progress_position, part.stalled, part.beyond_end_since = None, False, None

    def inflight_count(self, tp: TP | None = None) -> int:
        """Outstanding offsets, in total or for one partition (0 if unknown)."""
        if tp is None:
            return self._count
        part = self._parts.get(tp)
        return 0 if part is None else len(part.sizes)

    def inflight_bytes(self) -> int:
        return self._bytes

    def _drop_inflight(self, part: Partition) -> None:
        self._count -= len(part.sizes)
        self._bytes -= sum(part.sizes.values())
        part.sizes.clear()

    # -- rebalances -----------------------------------------------------------------------------

    def assigned(self) -> set[TP]:
        return {tp for tp, p in self._parts.items() if p.assigned}

    def revoke(self, tps: Iterable[TP]) -> dict[TP, int]:
        """Partitions taken away. Returns the positions that advanced past the last commit (for
        a best-effort last commit); in-flight records will be redelivered to the new owner.
        A partition revoked with unfinished records remembers where they start, in case the
        same rebalance hands it straight back (see `assign`)."""
        final: dict[TP, int] = {}
        for tp in tps:
            part = self._parts.get(tp)
            if part is None or not part.assigned:
                continue
            if part.known() and part.advanced():
                final[tp] = part.position()
            inflight = bool(part.sizes)
            rewind = part.position() if inflight else None
            self._drop_inflight(part)
            fresh = self._parts[tp] = Partition()
            fresh.assigned = False
            fresh.rewind_to = rewind
        return final

    def assign(self, tps: Iterable[TP]) -> list[TP]:
        """Partitions handed to us. One that came straight back with unfinished records owes a
        seek to the first of them (returned; applied by `take_seeks`). Partitions revoked and
        not handed back are forgotten now."""
        back = []
        for tp in tps:
            part = self._parts.get(tp)
            if part is not None and not part.assigned:
                part.assigned = True
                if part.rewind_to is not None:
                    part.seek_to, part.rewind_to = part.rewind_to, None
                    back.append(tp)
            elif part is None:
                self._parts[tp] = Partition()
        for tp in [tp for tp, p in self._parts.items() if not p.assigned]:
            del self._parts[tp]
        return back

    def take_seeks(self) -> dict[TP, int]:
        """Seeks owed after a rebalance, each handed out once."""
        seeks = {}
        for tp, part in self._parts.items():
            if part.seek_to is not None:
                seeks[tp], part.seek_to = part.seek_to, None
        return seeks

    def seek_pending(self, tp: TP) -> bool:
        part = self._parts.get(tp)
        return part is not None and part.seek_to is not None

    # -- holds ----------------------------------------------------------------------------------

    def pause_reasons(
        self, tp: TP, *, draining: bool = False, backpressure: bool = False,
        stopped_topics: frozenset[str] = frozenset(), held_topics: frozenset[str] = frozenset(),
    ) -> set[PauseReason]:
        """Every reason `tp` must not be fetched now (empty: fetch it)."""
        reasons = set()
        if draining:
            reasons.add(PauseReason.DRAINING)
        if backpressure:
            reasons.add(PauseReason.BACKPRESSURE)
        if tp[0] in stopped_topics:
            reasons.add(PauseReason.CONFIG_FAULT)
        if tp[0] in held_topics:
            reasons.add(PauseReason.PRIVACY)
        part = self._parts.get(tp)
        if part is not None and part.fault is not None:
            reasons.add(PauseReason.FETCH_ERROR)
        if part is not None and part.recreated:
            reasons.add(PauseReason.RECREATED)
        return reasons

    def mark_recreated(self, topic: str) -> list[TP]:
        """The topic was deleted and re-created: hold its assigned partitions until their old
        records finish (`finish_recreated` once each is reset). Returns the partitions held."""
        held = sorted(tp for tp, p in self._parts.items() if p.assigned and tp[0] == topic)
        for tp in held:
            self._parts[tp].recreated = True
        return held

    def recreated(self, tp: TP) -> bool:
        part = self._parts.get(tp)
        return part is not None and part.recreated

    def finish_recreated(self, tp: TP) -> None:
        part = self._parts.get(tp)
        if part is not None:
            part.recreated = False

    # -- fetch faults ---------------------------------------------------------------------------

    @property
    def faults(self) -> dict[TP, FetchFault]:
        return {tp: p.fault for tp, p in self._parts.items() if p.fault is not None}

    def fault(self, tp: TP, *, error: str, message: str, fix: str, offset: int | None, now: float) -> bool:
        """Record a fetch fault; True when it is new (the caller logs it once). A repeated
        failure doubles the retry delay up to `max_retry_s`."""
        part = self._get(tp)
        current = part.fault
        if current is not None:
            current.delay_s = min(current.delay_s * 2, self.max_retry_s)
            current.retry_at = now + current.delay_s
            current.attempts += 1
            current.message = message
            return False
        part.fault = FetchFault(error, message, fix, offset, since=now, retry_at=now + self.retry_s,
                                delay_s=self.retry_s)
        return True

    def due_retries(self, now: float) -> list[TP]:
        return sorted(tp for tp, p in self._parts.items() if p.fault is not None and p.fault.retry_at <= now)

    def recovered(self, tp: TP) -> FetchFault | None:
        part = self._parts.get(tp)
        if part is None:
            return None
        fault, part.fault = part.fault, None
        return fault

    # -- progress -------------------------------------------------------------------------------

    def observe(self, tp: TP, obs: Observation, now: float) -> list[Change]:
        """Update `tp` from one observation; returns what changed.

        Stalled: lag and a safe position that has not moved for `stall_after_s`, or a fetch
        fault. Beyond the end: a fetch position past the high watermark on two observations
        `confirm_s` apart with nothing in flight (Kafka would answer OFFSET_OUT_OF_RANGE and
        the client reset; some brokers, the embedded Tansu among them, answer with nothing).
        """
        part = self._get(tp)
        if part.moved_at == 0.0 and part.progress_position is None:
            part.progress_position, part.moved_at = obs.position, now
        changes: list[Change] = []
        lag = lag_of(obs, reset_to_earliest=self.reset_to_earliest)
        part.lag = lag or 0
        if obs.position != part.progress_position or not lag:
            part.progress_position, part.moved_at = obs.position, now
        stalled = part.fault is not None or (bool(lag) and now - part.moved_at >= self.stall_after_s)
        if stalled != part.stalled:
            part.stalled = stalled
            changes.append(Change.STALLED if stalled else Change.UNSTALLED)
        beyond = (obs.fetch_position is not None and obs.highwater is not None
                  and obs.fetch_position > obs.highwater and part.fault is None)
        if not beyond:
            part.beyond_end_since = None
        elif part.beyond_end_since is None:
            part.beyond_end_since = now
        elif now - part.beyond_end_since >= self.confirm_s and obs.inflight == 0:
            part.beyond_end_since = None
            changes.append(Change.BEYOND_END)
        return changes

    def stalled(self) -> dict[TP, tuple[int, float]]:
        """Stalled partitions -> (lag, when the position last moved), at the last observation."""
        return {tp: (p.lag, p.moved_at) for tp, p in self._parts.items() if p.stalled}
