"""Per-partition health: fetch faults, stalls and positions beyond the log end.

Pure state and decisions (time is passed in); the consumer thread feeds it observations
and carries out what it decides. Three conditions are tracked per assigned partition:

* **fetch fault**: fetching or decoding the partition's records failed in a way that
  concerns that partition only (a compression codec this process lacks, a batch that fails
  its CRC, ...). The partition is paused and reported; the others keep flowing. It is
  retried after `retry_s`, doubling up to `max_retry_s`, until a retry succeeds.
* **stall**: the partition has lag but its safe position (what would be committed) has not
  moved for `stall_after_s`. Whatever the cause (a fault, a configuration fault, a stuck
  delivery), an operator wants to know.
* **beyond end**: the fetch position lies past the high watermark. Kafka answers such a
  fetch with OFFSET_OUT_OF_RANGE and the client resets; some brokers (the embedded Tansu)
  answer with nothing, forever. Seen on two observations `confirm_s` apart, with nothing of
  the partition in flight, it is reported for a reset with `auto_offset_reset`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from worker.ingest.offsets import TP

#: Longest wait between two retries of a faulted partition.
MAX_RETRY_S = 600.0


@dataclass(slots=True)
class FetchFault:
    """Why a partition is paused, and when it is retried."""

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


class Change(StrEnum):
    """What an observation changed."""

    STALLED = "stalled"
    UNSTALLED = "unstalled"
    BEYOND_END = "beyond_end"


@dataclass(slots=True)
class _Progress:
    position: int | None = None
    moved_at: float = 0.0
    stalled: bool = False
    beyond_end_since: float | None = None
    lag: int = 0


@dataclass(frozen=True, slots=True)
class Observation:
    """One look at a partition: safe position (first unfinished record or the fetch position
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


@dataclass
class PartitionWatch:
    """Faults, stalls and beyond-end detection for the partitions of one consumer."""

    stall_after_s: float
    retry_s: float
    confirm_s: float = 5.0
    reset_to_earliest: bool = True
    max_retry_s: float = MAX_RETRY_S
    faults: dict[TP, FetchFault] = field(default_factory=dict)
    _progress: dict[TP, _Progress] = field(default_factory=dict)

    # -- faults ---------------------------------------------------------------------------

    def fault(self, tp: TP, *, error: str, message: str, fix: str, offset: int | None, now: float) -> bool:
        """Record a fetch fault; True when it is new (the caller logs it once)."""
        current = self.faults.get(tp)
        if current is not None:
            current.delay_s = min(current.delay_s * 2, self.max_retry_s)
            current.retry_at = now + current.delay_s
            current.attempts += 1
            current.message = message
            return False
        self.faults[tp] = FetchFault(error, message, fix, offset, since=now, retry_at=now + self.retry_s,
                                     delay_s=self.retry_s)
        return True

    def due_retries(self, now: float) -> list[TP]:
        return sorted(tp for tp, fault in self.faults.items() if fault.retry_at <= now)

    def recovered(self, tp: TP) -> FetchFault | None:
        return self.faults.pop(tp, None)

    # -- progress -------------------------------------------------------------------------

    def observe(self, tp: TP, obs: Observation, now: float) -> list[Change]:
        """Update `tp` from one observation; returns what changed."""
        progress = self._progress.get(tp)
        if progress is None:
            progress = self._progress[tp] = _Progress(position=obs.position, moved_at=now)
        changes: list[Change] = []
        lag = lag_of(obs, reset_to_earliest=self.reset_to_earliest)
        progress.lag = lag or 0
        if obs.position != progress.position or not lag:
            progress.position, progress.moved_at = obs.position, now
        stalled = tp in self.faults or (bool(lag) and now - progress.moved_at >= self.stall_after_s)
        if stalled != progress.stalled:
            progress.stalled = stalled
            changes.append(Change.STALLED if stalled else Change.UNSTALLED)
        beyond = (obs.fetch_position is not None and obs.highwater is not None
                  and obs.fetch_position > obs.highwater and tp not in self.faults)
        if not beyond:
            progress.beyond_end_since = None
        elif progress.beyond_end_since is None:
            progress.beyond_end_since = now
        elif now - progress.beyond_end_since >= self.confirm_s and obs.inflight == 0:
            progress.beyond_end_since = None
            changes.append(Change.BEYOND_END)
        return changes

    def stalled(self) -> dict[TP, tuple[int, float]]:
        """Stalled partitions -> (lag, seconds since the position last moved), at the last observation."""
        return {tp: (p.lag, p.moved_at) for tp, p in self._progress.items() if p.stalled}

    def forget(self, tps: Iterable[TP]) -> None:
        """Partitions revoked or reset: start their watch afresh when they come back."""
        for tp in tps:
            self.faults.pop(tp, None)
            self._progress.pop(tp, None)
