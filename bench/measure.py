"""Pure arithmetic over what the local Personalize stored: rates, latency percentiles, quota use.

Every delivered event comes back from ``GET /_local/events`` with its own ``sentAt`` (the
event timestamp the generator stamped when it produced it) and the server's ``receivedAt``
(wall clock when the PutEvents request that carried it was accepted). Same machine, same
clock, so ``receivedAt - sentAt`` is the event-to-acknowledgement latency. All events of
one request share one ``receivedAt``, which also lets the request rate be read back per
second without trusting any client-side counter.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

Row = tuple[str, float, float]  # (eventId, sentAt, receivedAt)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def latency_ms(rows: Sequence[Row]) -> dict[str, float]:
    """p50/p95/p99/max of receivedAt - sentAt, in milliseconds.

    sentAt has millisecond resolution (ISO-8601 ``.mmm``), so values below ~1 ms are noise.
    """
    values = sorted((received - sent) * 1000.0 for _, sent, received in rows)
    return {
        "p50": round(percentile(values, 50), 1),
        "p95": round(percentile(values, 95), 1),
        "p99": round(percentile(values, 99), 1),
        "max": round(values[-1], 1) if values else math.nan,
        "mean": round(sum(values) / len(values), 1) if values else math.nan,
    }


def end_to_end_rate(count: int, started: float, rows: Sequence[Row]) -> tuple[float, float]:
    """(events/s, seconds) from `started` (worker ready, or the first delivery if earlier) to the last delivery."""
    if not rows:
        return 0.0, math.nan
    first = min(r[2] for r in rows)
    last = max(r[2] for r in rows)
    start = min(started, first)
    seconds = last - start
    return (count / seconds if seconds > 0 else math.inf), seconds


def steady_rate(rows: Sequence[Row], start: float = -math.inf, low: float = 0.1, high: float = 0.9) -> float:
    """Events/s between the arrival of the `low` and the `high` fraction of all events (not before `start`).

    Leaves out what an end-to-end figure on a short run is dominated by: the first fetch
    and the first linger before anything is sent, and the tail where the last partitions
    drain alone. With several processes, `start` is when all of them owned partitions
    (joining one group rebalances once), so the window covers only time when all had work.
    """
    received = sorted(r[2] for r in rows)
    if len(received) < 2:
        return math.nan

    def at(fraction: float) -> float:
        return received[min(len(received) - 1, max(0, math.ceil(fraction * len(received)) - 1))]

    begin, end = max(start, at(low)), at(high)
    inside = sum(1 for t in received if begin <= t <= end)
    return inside / (end - begin) if end > begin else math.nan


def requests_per_second(rows: Sequence[Row]) -> list[int]:
    """Accepted requests in each whole second of the delivery window (one receivedAt per request)."""
    stamps = {r[2] for r in rows}
    if not stamps:
        return []
    origin = min(stamps)
    per_second = Counter(int(t - origin) for t in stamps)
    return [per_second.get(s, 0) for s in range(max(per_second) + 1)]


def quota_use(rows: Sequence[Row], quota_rps: float, started: float,
              steady_from: float | None = None) -> dict[str, Any]:
    """How much of a request quota the accepted requests used.

    ``steady``: accepted requests per second over the quota, between the arrival of the 10 % and
    the 90 % quantile of the events (as `steady_rate`), and not before `steady_from` (several
    processes: two seconds after all of them owned partitions, so the group's joins are over).
    That leaves out ramp-up and the tail where only the last partitions still have work.
    ``overall``: all requests over the time from `started` (the worker ready) to the last
    acceptance, so the first fetch counts against it: a conservative figure. Server-side
    timestamps can bunch when the server itself falls behind, which is why the window is not
    taken from the first acceptance. Either can exceed 1 by the service's burst allowance (the
    local Personalize's bucket starts full: one second of the quota).
    """
    per_second = requests_per_second(rows)
    if not per_second:
        return {"steady": 0.0, "overall": 0.0, "requests": 0, "per_second": []}
    stamps = sorted({r[2] for r in rows})
    first = stamps[0]
    seconds = stamps[-1] - min(started, first)
    received = sorted(r[2] for r in rows)
    begin = received[max(0, math.ceil(0.1 * len(received)) - 1)]
    end = received[max(0, math.ceil(0.9 * len(received)) - 1)]
    if steady_from is not None:
        begin = max(begin, steady_from)
    inside = bisect.bisect_right(stamps, end) - bisect.bisect_left(stamps, begin)
    return {
        "steady": round(inside / (end - begin) / quota_rps, 4) if end > begin else math.nan,
        "steady_window_s": round(end - begin, 2),
        "overall": round(len(stamps) / seconds / quota_rps, 4) if seconds > 0 else math.nan,
        "requests": len(stamps),
        "per_second": per_second,
    }


def lost(expected_ids: Sequence[str], rows: Sequence[Row]) -> int:
    """Expected event IDs that never reached the store."""
    stored = {r[0] for r in rows}
    return sum(1 for event_id in expected_ids if event_id not in stored)


def ideal_fill(keys: Sequence[tuple[str | None, str]], max_per_call: int = 10) -> float:
    """Events per call if every (userId, sessionId) group of the data went out in full calls of 10.

    The ceiling a keyed batcher can reach on this data, however long it lingers; what the
    worker reaches is compared with it to tell a batching problem from short sessions.
    """
    groups = Counter(keys)
    calls = sum(-(-n // max_per_call) for n in groups.values())
    return len(keys) / calls if calls else math.nan


def _in(rows: Sequence[Row], start: float, end: float) -> list[Row]:
    return [r for r in rows if start <= r[2] < end]


def events_per_call(rows: Sequence[Row]) -> float:
    """Events per accepted request among `rows` (the events of one request share its receivedAt)."""
    calls = len({r[2] for r in rows})
    return len(rows) / calls if calls else math.nan


def small_call_share(rows: Sequence[Row], at_most: int = 2) -> float:
    """Share of the accepted requests among `rows` that carried at most `at_most` events."""
    sizes = Counter(r[2] for r in rows)
    return sum(1 for n in sizes.values() if n <= at_most) / len(sizes) if sizes else math.nan


def storm_recovery(rows: Sequence[Row], storm_start: float, storm_end: float, *, pre_s: float = 8.0,
                   fraction: float = 0.9, window_s: float = 1.0, step_s: float = 0.1,
                   after_s: float = 10.0) -> dict[str, Any]:
    """How a throttling storm [storm_start, storm_end) hurt, and how fast it was over (wall times).

    ``recovery_s``: from the storm's end until events/s over the last `window_s` is back to
    `fraction` of the rate in the `pre_s` seconds before the storm (looked at every `step_s`);
    None if it never is. Events per call and the share of 1-2-event calls during the storm,
    in the first five seconds after it, and in the `after_s` seconds after it (the tail
    the issue was about).
    """
    before = _in(rows, storm_start - pre_s, storm_start)
    pre_rate = len(before) / pre_s
    stamps = sorted(r[2] for r in rows)
    recovery: float | None = None
    t = storm_end + window_s
    while t <= (stamps[-1] if stamps else t) + step_s:
        lo, hi = bisect.bisect_left(stamps, t - window_s), bisect.bisect_left(stamps, t)
        if hi - lo >= fraction * pre_rate * window_s:
            recovery = t - storm_end
            break
        t += step_s
    during = _in(rows, storm_start, storm_end)
    early, after = _in(rows, storm_end, storm_end + 5.0), _in(rows, storm_end, storm_end + after_s)
    return {
        "pre_storm_events_per_s": round(pre_rate, 1),
        "during_events_per_s": round(len(during) / (storm_end - storm_start), 1) if storm_end > storm_start else None,
        "recovery_s": None if recovery is None else round(recovery, 2),
        "events_per_call_before": round(events_per_call(before), 2),
        "events_per_call_during": round(events_per_call(during), 2),
        "events_per_call_first_5s_after": round(events_per_call(early), 2),
        "events_per_call_after": round(events_per_call(after), 2),
        "small_call_share_after": round(small_call_share(after), 4),
    }
