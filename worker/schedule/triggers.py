"""When a training is due, and the guards that hold a due training back (pure; time passed in).

Triggers say *whether* to train: a cadence (cron via croniter, or a fixed interval)
anchored on the last successful training, and the data-volume trigger. Guards say *not
yet*: the minimum interval between two training starts, the daily cap, and the optional
"enough new data" requirement. Each guard reports when it will release, so the policy can
tell the operator (and the reconciler's sleep) when to look again.

Choices, documented once here:

* Cron expressions are evaluated in the schedule's IANA timezone (UTC by default), so
  "03:00 every Sunday" follows daylight-saving changes like a human expects.
* The daily cap counts training starts in a **rolling 24-hour window**, not calendar days:
  a cap of 2 can never become 4 trainings around midnight, and no timezone is involved.
  Starts come from both the listed versions (any status, any mode, automatic ones too:
  they all cost) and the trainings we remember starting (the listing may lag), unioned by
  version ARN.
* An unknown number of new interactions (None) never satisfies the data-volume rule:
  it neither triggers a training nor lets a training that requires new data start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from croniter import croniter

from worker.config.solutions import Cadence, SolutionSchedule
from worker.schedule.state import DAY_S


def next_due(cadence: Cadence, last_training_at: float | None, now: float, timezone: str = "UTC") -> float:
    """When the next training of this cadence is due (may be in the past = overdue).

    Without a previous training it is due now. With one, it is the first cron fire time
    strictly after it, or ``interval_s`` after it.
    """
    if last_training_at is None:
        return now
    if cadence.interval_s is not None:
        return last_training_at + cadence.interval_s
    assert cadence.cron is not None  # guaranteed by Cadence's validator
    start = datetime.fromtimestamp(last_training_at, ZoneInfo(timezone))
    return float(croniter(cadence.cron, start).get_next(float))


def volume_reached(new_interactions: int | None, threshold: int) -> bool:
    """The data-volume rule; unknown (None) is never enough."""
    return new_interactions is not None and new_interactions >= threshold


def starts_in_window(starts: Iterable[float], now: float, window_s: float = DAY_S) -> list[float]:
    """Start times inside the rolling window ending now, oldest first."""
    return sorted(t for t in starts if now - window_s < t <= now)


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a due training may not start yet, and when that changes (None = not predictable)."""

    guard: str
    reason: str
    until: float | None


def min_interval_hold(last_start: float | None, now: float, min_interval_s: float) -> Hold | None:
    """Held while the previous training (of any mode or outcome) started too recently."""
    if last_start is None or min_interval_s <= 0:
        return None
    until = last_start + min_interval_s
    if now >= until:
        return None
    return Hold(
        "min_interval",
        f"the last training started {human_duration(now - last_start)} ago; min_interval_s={min_interval_s:g} "
        f"allows the next one in {human_duration(until - now)}",
        until,
    )


def daily_cap_hold(starts: Iterable[float], now: float, cap: int) -> Hold | None:
    """Held while ``cap`` trainings already started within the last 24 h."""
    recent = starts_in_window(starts, now)
    if len(recent) < cap:
        return None
    # The window frees a slot when enough of the oldest starts age out of it.
    until = recent[len(recent) - cap] + DAY_S
    return Hold(
        "daily_cap",
        f"{len(recent)} trainings started in the last 24 h (max_trainings_per_day={cap}); "
        f"next slot in {human_duration(until - now)}",
        until,
    )


def data_required_hold(new_interactions: int | None, threshold: int) -> Hold | None:
    """Held until enough new interactions have been delivered since the last training."""
    if volume_reached(new_interactions, threshold):
        return None
    seen = "an unknown number of" if new_interactions is None else f"only {new_interactions}"
    return Hold(
        "data_volume",
        f"{seen} new interactions since the last training; data_volume.required needs {threshold}",
        None,
    )


def training_hold(
    cfg: SolutionSchedule, starts: Iterable[float], new_interactions: int | None, now: float,
    *, needs_new_data: bool = True,
) -> Hold | None:  # fmt: skip
    """The first guard holding a due training back, checked cheapest-to-explain first.

    Order: daily cap (cost), minimum interval, then the new-data requirement (not for a
    training after a data deletion: removed data is the change it trains on).
    """
    times = list(starts)
    hold = daily_cap_hold(times, now, cfg.max_trainings_per_day)
    if hold is None:
        hold = min_interval_hold(max(times, default=None), now, cfg.min_interval_s)
    if hold is None and needs_new_data and cfg.data_volume is not None and cfg.data_volume.required:
        hold = data_required_hold(new_interactions, cfg.data_volume.min_new_interactions)
    return hold


def human_duration(seconds: float) -> str:
    """A short human duration: 45s, 12m, 3.5h, 6.9d."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * DAY_S:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / DAY_S:.1f}d"
