"""One Kafka record, several interactions: when is the record done?

A GA4 row with N items becomes N interactions, which may land in different PutEvents
calls. Each travels under its own `PartRef` (the record's position plus the part number);
the record is complete when every part was delivered, or as soon as one part fails — then
the whole record (its original bytes) is dead-lettered once and completes when that write
is acknowledged. Parts still in flight after a failure are ignored when they finish:
their event IDs are deterministic, so a replay of the dead-lettered record cannot store
them twice. Pure state, owned by the event loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from worker.records import SourceRef


@dataclass(frozen=True, slots=True)
class PartRef(SourceRef):
    """Part `part` of the record at (topic, partition, offset)."""

    part: int = 0

    @property
    def record(self) -> SourceRef:
        return SourceRef(self.topic, self.partition, self.offset)


class FanoutTracker:
    """Counts down the parts of each fanned-out record."""

    def __init__(self) -> None:
        #: record -> [parts not yet reported, whether one failed]
        self._open: dict[SourceRef, list[int | bool]] = {}

    def open(self, record: SourceRef, parts: int) -> list[PartRef]:
        if parts < 1:
            raise ValueError("a fanned-out record has at least one part")
        self._open[record] = [parts, False]
        return [PartRef(record.topic, record.partition, record.offset, n) for n in range(parts)]

    def _report(self, part: PartRef) -> tuple[SourceRef, bool, bool] | None:
        """(record, failed before, last part) for a part of an open record; None if unknown."""
        record = part.record
        state = self._open.get(record)
        if state is None:
            return None
        left, failed = int(state[0]) - 1, bool(state[1])
        if left <= 0:
            del self._open[record]
        else:
            state[0] = left
        return record, failed, left <= 0

    def delivered(self, sources: Iterable[SourceRef]) -> list[SourceRef]:
        """The records these deliveries complete: plain sources as they are, a fanned-out record
        once its last part is delivered (and none failed)."""
        done: list[SourceRef] = []
        for source in sources:
            if not isinstance(source, PartRef):
                done.append(source)
                continue
            reported = self._report(source)
            if reported is not None and reported[2] and not reported[1]:
                done.append(reported[0])
        return done

    def failed(self, sources: Iterable[SourceRef]) -> list[SourceRef]:
        """The records to dead-letter for these failures: plain sources as they are, a fanned-out
        record the first time one of its parts fails."""
        out: list[SourceRef] = []
        for source in sources:
            if not isinstance(source, PartRef):
                out.append(source)
                continue
            state = self._open.get(source.record)
            first = state is not None and not state[1]
            if state is not None:
                state[1] = True
            reported = self._report(source)
            if reported is not None and first:
                out.append(reported[0])
        return out

    def __len__(self) -> int:
        return len(self._open)
