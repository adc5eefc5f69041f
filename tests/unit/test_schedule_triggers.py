"""Training triggers and guards (cron, interval, data volume, min interval, daily cap) and the
scheduler settings that configure them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from worker.config.solutions import Cadence, CampaignConfigSettings, SolutionSchedule
from worker.schedule.state import DAY_S
from worker.schedule.triggers import (
    daily_cap_hold,
    data_required_hold,
    min_interval_hold,
    next_due,
    starts_in_window,
    training_hold,
    volume_reached,
)

H = 3600.0
SOL = "arn:aws:personalize:us-east-1:123456789012:solution/shop"
NOW = datetime(2024, 6, 10, 12, tzinfo=UTC).timestamp()


def ts(*args: int, tz: str = "UTC") -> float:
    return datetime(*args, tzinfo=ZoneInfo(tz)).timestamp()


# -- next_due ---------------------------------------------------------------------------------

# (id, cadence, timezone, last training, expected next due)
DUE_CASES: list[tuple[str, dict[str, Any], str, float | None, float]] = [
    ("never-trained-due-now", {"interval_s": 7 * DAY_S}, "UTC", None, NOW),
    ("never-trained-cron-due-now", {"cron": "0 3 * * 0"}, "UTC", None, NOW),
    ("interval", {"interval_s": 7 * DAY_S}, "UTC", NOW - DAY_S, NOW + 6 * DAY_S),
    ("interval-fractional", {"interval_s": 90.5}, "UTC", NOW, NOW + 90.5),
    ("cron-weekly-from-monday", {"cron": "0 3 * * 0"}, "UTC", ts(2024, 6, 10, 12), ts(2024, 6, 16, 3)),
    ("cron-strictly-after-fire-time", {"cron": "0 3 * * 0"}, "UTC", ts(2024, 6, 16, 3), ts(2024, 6, 23, 3)),
    ("cron-just-before-fire-time", {"cron": "0 3 * * 0"}, "UTC", ts(2024, 6, 16, 2, 59), ts(2024, 6, 16, 3)),
    ("cron-daily-macro", {"cron": "@daily"}, "UTC", ts(2024, 6, 10, 12), ts(2024, 6, 11, 0)),
    ("cron-in-new-york", {"cron": "0 3 * * *"}, "America/New_York", ts(2024, 6, 10, 4), ts(2024, 6, 10, 7)),
    (
        "cron-across-dst-start-paris",
        {"cron": "0 3 * * 0"},
        "Europe/Paris",
        ts(2024, 3, 30, 12, tz="Europe/Paris"),
        ts(2024, 3, 31, 3, tz="Europe/Paris"),
    ),
    (
        "cron-after-dst-end-paris",
        {"cron": "30 4 * * *"},
        "Europe/Paris",
        ts(2024, 10, 26, 12, tz="Europe/Paris"),
        ts(2024, 10, 27, 4, 30, tz="Europe/Paris"),
    ),
]


@pytest.mark.parametrize(
    ("cadence", "tz", "last", "expected"), [c[1:] for c in DUE_CASES], ids=[c[0] for c in DUE_CASES]
)
def test_next_due(cadence: dict[str, Any], tz: str, last: float | None, expected: float) -> None:
    assert next_due(Cadence.model_validate(cadence), last, NOW, tz) == expected


def test_dst_offsets_really_differ() -> None:
    """Guard the two Paris cases above: they are only meaningful if the UTC offset changed."""
    before, after = ts(2024, 3, 30, 3, tz="Europe/Paris"), ts(2024, 3, 31, 3, tz="Europe/Paris")
    assert after - before == DAY_S - H


# -- data volume ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "threshold", "reached"),
    [(None, 1, False), (0, 1, False), (999, 1000, False), (1000, 1000, True), (10**9, 1000, True)],
)
def test_volume_reached(new: int | None, threshold: int, reached: bool) -> None:
    assert volume_reached(new, threshold) is reached
    assert (data_required_hold(new, threshold) is None) is reached


def test_data_required_hold_says_unknown() -> None:
    hold = data_required_hold(None, 500)
    assert hold is not None and hold.until is None and "unknown" in hold.reason


# -- min interval ----------------------------------------------------------------------------------

# (id, last start, min interval, held until (None = not held))
INTERVAL_CASES: list[tuple[str, float | None, float, float | None]] = [
    ("never-trained", None, H, None),
    ("disabled", NOW - 1, 0, None),
    ("too-recent", NOW - 600, H, NOW - 600 + H),
    ("exactly-elapsed", NOW - H, H, None),
    ("long-ago", NOW - 5 * H, H, None),
]


@pytest.mark.parametrize(
    ("last", "interval", "until"), [c[1:] for c in INTERVAL_CASES], ids=[c[0] for c in INTERVAL_CASES]
)
def test_min_interval(last: float | None, interval: float, until: float | None) -> None:
    hold = min_interval_hold(last, NOW, interval)
    assert (hold.until if hold else None) == until
    if hold:
        assert hold.guard == "min_interval"


# -- daily cap (rolling 24 h) ----------------------------------------------------------------------

# (id, start ages in hours, cap, held until (None = not held))
CAP_CASES: list[tuple[str, list[float], int, float | None]] = [
    ("none", [], 1, None),
    ("below-cap", [3.0], 2, None),
    ("at-cap", [20.0, 3.0], 2, NOW - 20 * H + DAY_S),
    ("over-cap-waits-for-enough-to-age-out", [23.0, 20.0, 3.0], 2, NOW - 20 * H + DAY_S),
    ("old-starts-ignored", [30.0, 25.0, 3.0], 2, None),
    ("exactly-24h-is-outside", [24.0, 3.0], 2, None),
    ("cap-one", [1.0], 1, NOW - H + DAY_S),
    ("unordered-input", [3.0, 20.0], 2, NOW - 20 * H + DAY_S),
]


@pytest.mark.parametrize(("ages", "cap", "until"), [c[1:] for c in CAP_CASES], ids=[c[0] for c in CAP_CASES])
def test_daily_cap(ages: list[float], cap: int, until: float | None) -> None:
    hold = daily_cap_hold([NOW - a * H for a in ages], NOW, cap)
    assert (hold.until if hold else None) == until
    if hold is not None:
        assert hold.guard == "daily_cap"
        # After `until` the cap really is released (the window has slid past enough starts).
        assert daily_cap_hold([NOW - a * H for a in ages], hold.until, cap) is None


def test_window_ignores_future_starts() -> None:
    assert starts_in_window([NOW + 10, NOW - 10, NOW - DAY_S], NOW) == [NOW - 10]


# -- training_hold combines the guards --------------------------------------------------------------


def _schedule(**kw: Any) -> SolutionSchedule:
    return SolutionSchedule.model_validate({"solution_arn": SOL, **kw})


@pytest.mark.parametrize(
    ("cfg", "starts", "new", "guard"),
    [
        (_schedule(max_trainings_per_day=1, min_interval_s=2 * H), [NOW - H], None, "daily_cap"),
        (_schedule(max_trainings_per_day=3, min_interval_s=2 * H), [NOW - H], None, "min_interval"),
        (_schedule(data_volume={"min_new_interactions": 5, "required": True}), [NOW - 5 * H], 4, "data_volume"),
        (_schedule(data_volume={"min_new_interactions": 5, "required": False}), [NOW - 5 * H], 4, None),
        (_schedule(data_volume={"min_new_interactions": 5, "required": True}), [NOW - 5 * H], 5, None),
        (_schedule(), [], None, None),
    ],
    ids=["cap-first", "then-min-interval", "then-data", "data-not-required", "data-enough", "free"],
)
def test_training_hold_order(cfg: SolutionSchedule, starts: list[float], new: int | None, guard: str | None) -> None:
    hold = training_hold(cfg, starts, new, NOW)
    assert (hold.guard if hold else None) == guard
    if hold:
        assert hold.reason


# -- settings --------------------------------------------------------------------------------------

YAML = """
solution_arn: arn:aws:personalize:eu-west-1:123456789012:solution/shop
timezone: Europe/Paris
campaigns:
  - arn: arn:aws:personalize:eu-west-1:123456789012:campaign/shop
    min_provisioned_tps: 5
    config:
      item_exploration_config: {explorationWeight: "0.3", explorationItemAgeCutOff: "30"}
      ranking_influence: {FRESHNESS: 0.4}
full: {cron: "0 3 * * 0"}
update: {interval_s: 7200}
data_volume: {min_new_interactions: 50000, required: true}
min_interval_s: 1800
max_trainings_per_day: 3
stop_training_after_s: null
gate:
  max_relative_drop: 0.02
  floors: {precision_at_10: 0.05}
archive_import:
  dataset_arn: arn:aws:personalize:eu-west-1:123456789012:dataset/shop/INTERACTIONS
  data_location: s3://archive/clicks/
  role_arn: arn:aws:iam::123456789012:role/PersonalizeS3
"""


def test_settings_from_yaml() -> None:
    cfg = SolutionSchedule.model_validate(yaml.safe_load(YAML))
    assert cfg.full == Cadence(cron="0 3 * * 0")
    assert cfg.update is not None and cfg.update.interval_s == 7200
    assert cfg.data_volume is not None and cfg.data_volume.trigger and cfg.data_volume.required
    assert cfg.stop_training_after_s is None
    assert cfg.gate.metric == "normalized_discounted_cumulative_gain_at_10"
    assert cfg.archive_import is not None and cfg.archive_import.retry_failed_after_s == 3600
    assert cfg.campaigns[0].config.to_wire() == {
        "itemExplorationConfig": {"explorationWeight": "0.3", "explorationItemAgeCutOff": "30"},
        "rankingInfluence": {"FRESHNESS": 0.4},
    }


def test_settings_defaults() -> None:
    cfg = _schedule()
    assert cfg.full == Cadence(interval_s=7 * DAY_S)
    assert (cfg.update, cfg.data_volume, cfg.archive_import) == (None, None, None)
    assert (cfg.timezone, cfg.min_interval_s, cfg.max_trainings_per_day) == ("UTC", 3600, 2)
    assert cfg.stop_training_after_s == 12 * H
    assert (cfg.gate.max_relative_drop, cfg.gate.floors) == (0.05, {})
    assert cfg.allow_native_automation is False
    assert CampaignConfigSettings().to_wire() == {}


# (id, overrides, fragment of the error)
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("cadence-both", {"full": {"cron": "0 3 * * 0", "interval_s": 60}}, "exactly one of 'cron'"),
    ("cadence-neither", {"full": {}}, "exactly one of 'cron'"),
    ("cron-garbage", {"full": {"cron": "every sunday"}}, "invalid cron expression"),
    ("cron-six-fields", {"full": {"cron": "0 0 3 * * 0"}}, "use 5 fields"),
    ("cron-out-of-range", {"full": {"cron": "0 25 * * *"}}, "invalid cron expression"),
    ("interval-zero", {"update": {"interval_s": 0}}, "greater than 0"),
    ("bad-timezone", {"timezone": "Mars/Olympus"}, "unknown timezone"),
    ("solution-arn-is-campaign", {"solution_arn": SOL.replace("solution/", "campaign/")}, "solution ARN"),
    ("campaign-arn-wrong", {"campaigns": [{"arn": SOL}]}, "campaign ARN"),
    ("duplicate-campaign", {"campaigns": [{"arn": SOL.replace("solution", "campaign")}] * 2}, "listed twice"),
    (
        "tps-zero",
        {"campaigns": [{"arn": SOL.replace("solution", "campaign"), "min_provisioned_tps": 0}]},
        "greater than or equal to 1",
    ),
    (
        "sync-with-latest-rejected",
        {
            "campaigns": [
                {"arn": SOL.replace("solution", "campaign"), "config": {"syncWithLatestSolutionVersion": True}}
            ]
        },
        "syncWithLatestSolutionVersion is not supported",
    ),
    (
        "ranking-influence-range",
        {
            "campaigns": [
                {"arn": SOL.replace("solution", "campaign"), "config": {"ranking_influence": {"POPULARITY": 2}}}
            ]
        },
        "between 0 and 1",
    ),
    ("tolerance-above-one", {"gate": {"max_relative_drop": 1.5}}, "less than or equal to 1"),
    ("tolerance-negative", {"gate": {"max_relative_drop": -0.1}}, "greater than or equal to 0"),
    ("cap-zero", {"max_trainings_per_day": 0}, "greater than or equal to 1"),
    ("volume-zero", {"data_volume": {"min_new_interactions": 0}}, "greater than or equal to 1"),
    ("typo-is-an-error", {"min_interval": 60}, "Extra inputs are not permitted"),
    ("typo-in-gate", {"gate": {"tolerance": 0.1}}, "Extra inputs are not permitted"),
    (
        "import-bad-location",
        {
            "archive_import": {
                "dataset_arn": SOL.replace("solution/", "dataset/"),
                "data_location": "/tmp/x",
                "role_arn": "arn:aws:iam::123456789012:role/r",
            }
        },
        "data_location must look like",
    ),
    (
        "import-bad-role",
        {
            "archive_import": {
                "dataset_arn": SOL.replace("solution/", "dataset/"),
                "data_location": "s3://b/k",
                "role_arn": "role",
            }
        },
        "IAM role ARN",
    ),
    (
        "import-bad-prefix",
        {
            "archive_import": {
                "dataset_arn": SOL.replace("solution/", "dataset/"),
                "data_location": "s3://b/k",
                "role_arn": "arn:aws:iam::123456789012:role/r",
                "job_name_prefix": "-bad name",
            }
        },
        "job_name_prefix must match",
    ),
]


@pytest.mark.parametrize(("overrides", "fragment"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_settings_errors_name_the_problem(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        _schedule(**overrides)
    assert fragment in str(info.value)
