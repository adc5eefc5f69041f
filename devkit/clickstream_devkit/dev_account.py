"""What `dev` counts and waits for (pure: no I/O, unit-tested in tests/devkit/test_dev_audit.py).

Every produced event ends in exactly one of three places, and the run is over when each
is accounted for:

* **stored**: a valid event whose eventId the local Personalize holds;
* **same-content duplicate**: a valid event with its own eventId that repeats a stored
  event in every other member (two views of one item in one session in the same
  millisecond); Personalize keeps such events once, and so does the local one;
* **dead-lettered**: a malformed event (mapping or validation stage), or a valid one
  Personalize refused (delivery stage).

So ``produced = stored + same-content duplicates + dead-lettered``; anything else is lost.
Redeliveries (an eventId sent again after a retry or a rebalance, discarded by eventId)
are not events of their own and are reported apart.

Trainings: once delivery is accounted for, `dev` also waits (bounded by ``--train-timeout``)
until the control plane has settled — the scheduler's trainings finished and the campaign
updates they started done — but never for a training that cannot start (the scheduler
retrains only on new data).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from clickstream_devkit.dev_provision import IN_FLIGHT, ControlState
from clickstream_devkit.generate_cmd import GenerateReport

#: Stages whose dead letters are malformed input; "delivery" ones were valid events refused.
INPUT_STAGES = ("deserialization", "mapping", "validation")
STAGES = (*INPUT_STAGES, "delivery")


@dataclass(frozen=True)
class Tally:
    """Live counts from the generator, the worker's metrics and the local Personalize."""

    generating: bool
    good: int
    bad: int
    stored: int
    same_content: int
    dead_lettered: dict[str, float] = field(default_factory=dict)
    inflight: float = 0.0

    @property
    def dead_lettered_input(self) -> int:
        return int(sum(self.dead_lettered.get(stage, 0.0) for stage in INPUT_STAGES))

    @property
    def dead_lettered_delivery(self) -> int:
        return int(self.dead_lettered.get("delivery", 0.0))


def delivery_waits(t: Tally) -> list[str]:
    """What delivery still waits for; empty once every produced event is accounted for."""
    if t.generating:
        return ["the generator to finish producing"]
    waits = []
    valid_left = t.good - t.stored - t.same_content - t.dead_lettered_delivery
    if valid_left > 0:
        waits.append(f"{valid_left:,} valid events to be stored")
    bad_left = t.bad - t.dead_lettered_input
    if bad_left > 0:
        waits.append(f"{bad_left:,} malformed events to be dead-lettered")
    if t.inflight > 0:
        waits.append(f"{int(t.inflight):,} events in flight")
    return waits


def _campaign_busy(status: str) -> bool:
    """A campaign (or its latest update) still being created; FAILED and ACTIVE are final."""
    return "PENDING" in status or "IN_PROGRESS" in status or "STOPPING" in status


def control_waits(state: ControlState | None, *, scheduler_started: bool) -> list[str]:
    """What the trainings still wait for; empty once settled.

    Settled: no version in training, no campaign being created or updated, and every solution
    with an ACTIVE version has a campaign serving one (the first promotion is not gated).
    A campaign that serves an older version than the newest ACTIVE one is settled: the gate
    decided, and nothing will change it without new data.
    """
    if not scheduler_started:
        return []
    if state is None:
        return ["the control plane to answer"]
    if not any(state.versions.values()):
        return ["the scheduler's first training"]
    waits = []
    for label, versions in state.versions.items():
        waits += [f"training {label} {v.short} ({v.status})" for v in versions if v.status in IN_FLIGHT]
        status = state.campaign_status.get(label, "")
        if _campaign_busy(status):
            waits.append(f"campaign {label} ({status})")
        elif state.active(label) and not state.serving.get(label) and "FAILED" not in status:
            waits.append(f"campaign {label} to serve its first version")
    return waits


@dataclass
class DevResult:
    """The end-of-run audit: what the generator produced against where each event ended."""

    report: GenerateReport | None = None
    stored_ids: set[str] = field(default_factory=set)
    dead_lettered: dict[str, float] = field(default_factory=dict)
    #: eventIds sent again (retries, rebalances) and discarded by eventId: not events of their own.
    redeliveries: int = 0
    #: Valid events with their own eventId that repeat a stored event in every other member.
    same_content: int = 0

    @property
    def produced(self) -> int:
        return self.report.produced if self.report else 0

    @property
    def stored(self) -> int:
        """Valid events whose eventId the local Personalize holds."""
        return sum(1 for i in self.report.good_event_ids if i in self.stored_ids) if self.report else 0

    @property
    def dead_letter_total(self) -> int:
        return int(sum(self.dead_lettered.values()))

    @property
    def accounted(self) -> int:
        return self.stored + self.same_content + self.dead_letter_total

    @property
    def lost(self) -> int:
        """Valid events neither stored, nor a same-content duplicate, nor refused at delivery."""
        if self.report is None:
            return 0
        missing = self.report.good - self.stored
        return max(0, missing - self.same_content - int(self.dead_lettered.get("delivery", 0.0)))

    @property
    def undead(self) -> int:
        """Malformed events that never reached the dead-letter topic."""
        if self.report is None:
            return 0
        return max(0, self.report.bad - int(sum(self.dead_lettered.get(s, 0.0) for s in INPUT_STAGES)))

    @property
    def ok(self) -> bool:
        return self.report is not None and self.lost == 0 and self.undead == 0

    def lines(self) -> list[str]:
        """The summary block: every term named, and the sum that must hold."""
        report = self.report
        good, bad = (report.good, report.bad) if report else (0, 0)
        stages = ", ".join(f"{stage} {int(n):,}" for stage, n in self.dead_lettered.items() if n) or "none"
        lines = [
            f"  produced              {self.produced:>10,}  ({good:,} valid, {bad:,} malformed)",
            f"  stored                {self.stored:>10,}  valid events in the local Personalize, once each by eventId",
            f"  same-content dups     {self.same_content:>10,}  valid events identical to a stored one in every "
            "member but eventId (same millisecond), kept once like Personalize does",
            f"  dead-lettered         {self.dead_letter_total:>10,}  {stages}",
            f"  lost                  {self.lost + self.undead:>10,}",
            f"  redeliveries dropped  {self.redeliveries:>10,}  eventIds sent again (retries, rebalances), "
            "discarded by eventId; not events of their own",
        ]
        total = f"{self.stored:,} + {self.same_content:,} + {self.dead_letter_total:,}"
        if self.ok and self.accounted == self.produced:
            lines.append(f"  OK: produced {self.produced:,} = stored + same-content dups + dead-lettered "
                         f"= {total}; nothing lost")
        elif self.ok:
            # Possible only when a redelivered malformed record is dead-lettered twice.
            lines.append(f"  OK: nothing lost (stored + same-content dups + dead-lettered = {total} "
                         f"= {self.accounted:,}; dead letters repeated by a redelivery count twice)")
        else:
            lines.append(f"  FAILED: {self.lost:,} valid events not stored, {self.undead:,} malformed events "
                         f"not dead-lettered (produced {self.produced:,}, accounted {total} = {self.accounted:,})")
        return lines


class StoredVolume:
    """The scheduler's data-volume counter for `dev`: interactions stored since a time.

    Fed with (time, stored count) samples of the local Personalize, so "new data since the
    last training" is exactly what the trainings would see. Used instead of the production
    `VolumeCounter`, whose offset lookups by time Tansu answers wrongly (see
    ../shared/reference/kafka-python-3.md on ListOffsets).
    """

    def __init__(self) -> None:
        self._times: list[float] = []
        self._counts: list[int] = []
        self._lock = threading.Lock()

    def record(self, at: float, stored: int) -> None:
        with self._lock:
            if self._times and at < self._times[-1]:
                return
            self._times.append(at)
            self._counts.append(stored)

    def count_since(self, topics: Iterable[str], since: float | None) -> int | None:
        del topics  # one tracker in dev: every stored interaction counts
        with self._lock:
            if not self._counts:
                return None
            now = self._counts[-1]
            if since is None:
                return now
            before = bisect.bisect_right(self._times, since)
            return now - (self._counts[before - 1] if before else 0)

    def close(self) -> None:
        """Nothing to release (the samples are in memory)."""
