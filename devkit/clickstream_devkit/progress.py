"""Live progress for `dev`: a redrawn block on a terminal, plain lines otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from prometheus_client import CollectorRegistry

if TYPE_CHECKING:
    from clickstream_devkit.dev_provision import ControlState


def metric_total(registry: CollectorRegistry, sample_name: str, **labels: str) -> float:
    """Sum of every sample called `sample_name` whose labels include `labels`."""
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def control_lines(state: ControlState | None) -> list[str]:
    """Trainings (latest version status, ACTIVE count) and what each campaign serves (pure)."""
    if state is None:
        return ["  trainings     (waiting for the control plane)"]
    lines = []
    for label, versions in state.versions.items():
        latest = f"latest {versions[0].short} {versions[0].status}" if versions else "no training yet"
        serving = state.serving.get(label)
        campaign = f"serves {serving.rsplit('/', 1)[-1]}" if serving else state.campaign_status.get(label, "-")
        lines.append(f"  {label:<21} {len(state.active(label))} ACTIVE / {len(versions)} trained, {latest}; "
                     f"campaign {campaign}")
    return lines


@dataclass(frozen=True)
class Snapshot:
    elapsed_s: float
    produced: int
    stored: int  # unique valid events in the local Personalize (the summary's "stored")
    same_content: int
    dead_lettered: float
    catalog: float
    inflight: float
    calls: float
    events_in_calls: float
    throttled: float

    @property
    def fill(self) -> float:
        return self.events_in_calls / self.calls if self.calls else 0.0


class ProgressView:
    """Renders snapshots; rates are computed between consecutive renders."""

    def __init__(self, out: TextIO, *, interactive: bool, expected: int, header: str,
                 plain_every_s: float = 5.0) -> None:
        self._out = out
        self._interactive = interactive
        self._expected = expected
        self._header = header
        self._plain_every_s = plain_every_s
        self._previous: Snapshot | None = None
        self._last_plain = -1e9
        self._drawn_lines = 0
        self._printed_extra: list[str] = []
        self.extra_lines: list[str] = []
        #: What the run waits for (or that it is done); one line under the counters.
        self.status = ""
        self._printed_status = ""

    def _rate(self, now: Snapshot, attr: str) -> float:
        before = self._previous
        if before is None or now.elapsed_s <= before.elapsed_s:
            return 0.0
        return float(getattr(now, attr) - getattr(before, attr)) / (now.elapsed_s - before.elapsed_s)

    def lines(self, snap: Snapshot) -> list[str]:
        pct = 100.0 * snap.produced / self._expected if self._expected else 100.0
        return [
            f"clickstream-worker dev  ·  {snap.elapsed_s:6.1f}s  ·  {self._header}",
            f"  produced      {snap.produced:>10,}  {self._rate(snap, 'produced'):>8,.0f}/s   ({pct:5.1f}% of "
            f"{self._expected:,})",
            f"  stored        {snap.stored:>10,}  {self._rate(snap, 'stored'):>8,.0f}/s   "
            f"(+ {snap.same_content:,} same-content dups)",
            f"  dead-lettered {int(snap.dead_lettered):>10,}  {self._rate(snap, 'dead_lettered'):>8,.0f}/s",
            f"  in flight     {int(snap.inflight):>10,}   batch fill {snap.fill:4.1f} events/call   "
            f"throttled {int(snap.throttled):,}   catalog updates {int(snap.catalog):,}",
            *self.extra_lines,
            f"  {self.status}",
        ]

    def render(self, snap: Snapshot, *, final: bool = False) -> None:
        lines = self.lines(snap)
        if self._interactive:
            if self._drawn_lines:
                self._out.write(f"\x1b[{self._drawn_lines}F")
            self._out.write("".join(f"\x1b[2K{line}\n" for line in lines))
            self._drawn_lines = len(lines)
        elif final or snap.elapsed_s - self._last_plain >= self._plain_every_s:
            self._last_plain = snap.elapsed_s
            self._out.write(
                f"progress t={snap.elapsed_s:.1f}s produced={snap.produced} stored={snap.stored} "
                f"dead_lettered={int(snap.dead_lettered)} inflight={int(snap.inflight)} fill={snap.fill:.2f}\n"
            )
            if self.status and self.status != self._printed_status:
                # Plain mode: the status at the progress cadence, only when it changed.
                self._printed_status = self.status
                self._out.write(f"progress {self.status}\n")
        if not self._interactive and self.extra_lines != self._printed_extra:
            # Plain mode: control-plane lines only when they change (a log, not a scroll of repeats).
            self._printed_extra = list(self.extra_lines)
            self._out.write("".join(f"progress {line.strip()}\n" for line in self.extra_lines))
        self._out.flush()
        self._previous = snap
