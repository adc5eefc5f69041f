"""The retraining policy: one table of observed states -> the one action, plus a lifecycle walk.

Each table row builds an Observation (versions, campaigns, imports, memory at a fixed
`now`) and a configuration, then checks the action type, its key fields, and a fragment
of the human reason. Rows are grouped by the precedence rule they exercise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from worker.config.solutions import SolutionSchedule
from worker.schedule.decisions import (
    Blocked,
    Decision,
    Import,
    Nothing,
    Promote,
    Refuse,
    Rollback,
    Stop,
    Train,
    Wait,
)
from worker.schedule.policy import UNLISTED_GRACE_S, check_conflicts, decide
from worker.schedule.state import (
    ACTIVE,
    CREATE_FAILED,
    CREATE_IN_PROGRESS,
    CREATE_PENDING,
    CREATE_STOPPED,
    CREATE_STOPPING,
    FULL,
    UPDATE,
    CampaignView,
    DeletionView,
    ImportView,
    Memory,
    Observation,
    SolutionView,
    TrainingStart,
    UpdateView,
    VersionView,
)

H = 3600.0
D = 86400.0
NOW = datetime(2024, 6, 10, 12, 0, tzinfo=UTC).timestamp()  # a Monday, 12:00 UTC
ACCOUNT = "arn:aws:personalize:us-east-1:123456789012"
SOL = f"{ACCOUNT}:solution/shop"
CAMP = f"{ACCOUNT}:campaign/shop"
CAMP2 = f"{ACCOUNT}:campaign/shop-eu"
DATASET = f"{ACCOUNT}:dataset/shop/INTERACTIONS"
ROLE = "arn:aws:iam::123456789012:role/personalize"
UP = "arn:aws:personalize:::recipe/aws-user-personalization"
UP2 = "arn:aws:personalize:::recipe/aws-user-personalization-v2"
SIMS = "arn:aws:personalize:::recipe/aws-sims"
METRIC = "normalized_discounted_cumulative_gain_at_10"
ARCHIVE = {"dataset_arn": DATASET, "data_location": "s3://bucket/archive/", "role_arn": ROLE}


def V(n: int) -> str:
    return f"{SOL}/v{n}"


def IMP(n: int) -> str:
    return f"{ACCOUNT}:dataset-import-job/archive-{n}"


def version(
    n: int,
    status: str = ACTIVE,
    mode: str = FULL,
    age: float = 2 * D,
    ndcg: float | None = 0.30,
    metrics: dict[str, float] | None = None,
    reason: str | None = None,
) -> VersionView:
    """Version n, created `age` seconds before NOW; ndcg=None means metrics not observed."""
    if metrics is None and ndcg is not None:
        metrics = {METRIC: ndcg, "precision_at_10": 0.12}
    return VersionView(V(n), status, mode, NOW - age, None, reason, metrics)


def campaign(
    serving: int | None = 1,
    status: str = ACTIVE,
    update: UpdateView | None = None,
    arn: str = CAMP,
    sync: bool = False,
    reason: str | None = None,
) -> CampaignView:
    config = {"syncWithLatestSolutionVersion": True} if sync else {}
    return CampaignView(arn, status, V(serving) if serving else None, update, 1, config, reason)


def update(n: int, status: str, reason: str | None = None) -> UpdateView:
    return UpdateView(V(n), status, NOW - 600, reason)


def imp(n: int, status: str, age: float, mode: str = FULL) -> ImportView:
    return ImportView(IMP(n), status, NOW - age, mode, NOW - age + 300, "bad file" if status == CREATE_FAILED else None)


def world(
    versions: tuple[VersionView, ...] = (version(1),),
    campaigns: tuple[CampaignView, ...] = (campaign(1),),
    *,
    recipe: str = UP,
    auto: bool = False,
    solution_status: str = ACTIVE,
    imports: tuple[ImportView, ...] = (),
    new: int | None = None,
    memory: Memory | None = None,
    now: float = NOW,
) -> Observation:
    return Observation(
        now=now,
        solution=SolutionView(SOL, solution_status, recipe, auto),
        versions=versions,
        campaigns=campaigns,
        imports=imports,
        new_interactions=new,
        memory=memory if memory is not None else Memory(promoted={CAMP: frozenset({V(1)})}),
    )


def deleted(*, running: str | None = None, completed_age: float | None = None,
            versions: tuple[VersionView, ...] = (version(1, age=2 * D),), **kw: Any) -> Observation:
    """A world whose dataset group has a running data deletion job and/or one that completed."""
    completed = None if completed_age is None else NOW - completed_age
    return replace(world(versions, **kw), deletion=DeletionView(running, completed))


def schedule(**overrides: Any) -> SolutionSchedule:
    base: dict[str, Any] = {
        "solution_arn": SOL,
        "campaigns": [
            {"arn": CAMP, "min_provisioned_tps": 3, "config": {"enable_metadata_with_recommendations": True}}
        ],
        "full": {"interval_s": 7 * D},
        "min_interval_s": H,
        "max_trainings_per_day": 2,
        "stop_training_after_s": 12 * H,
    }
    base.update(overrides)
    return SolutionSchedule.model_validate(base)


BASE = schedule()
TWO_CAMPAIGNS = schedule(campaigns=[{"arn": CAMP, "min_provisioned_tps": 3}, {"arn": CAMP2, "min_provisioned_tps": 7}])
WITH_UPDATE = schedule(update={"interval_s": 2 * H})
VOLUME_TRIGGER = schedule(data_volume={"min_new_interactions": 10_000})
VOLUME_REQUIRED = schedule(data_volume={"min_new_interactions": 1_000, "trigger": False, "required": True})
WITH_ARCHIVE = schedule(archive_import=ARCHIVE)
FLOORS = schedule(gate={"floors": {METRIC: 0.2, "precision_at_10": 0.1}})
STRICT = schedule(gate={"max_relative_drop": 0.0})


def mem(
    promoted: dict[str, set[int]] | None = None,
    previous: dict[str, int | None] | None = None,
    refused: tuple[int, ...] = (),
    starts: tuple[tuple[str, float], ...] = (),
    retry_after: float | None = None,
) -> Memory:
    return Memory(
        refused={V(n): "regression" for n in refused},
        promoted={c: frozenset(V(n) for n in ns) for c, ns in (promoted or {CAMP: {1}}).items()},
        previous_serving={c: (V(n) if n else None) for c, n in (previous or {}).items()},
        training_starts=tuple(TrainingStart(a, t) for a, t in starts),
        last_error="ResourceInUseException: campaign busy" if retry_after else None,
        retry_after=retry_after,
    )


@dataclass
class Case:
    id: str
    obs: Observation
    expect: type
    fields: dict[str, Any] = field(default_factory=dict)
    cfg: SolutionSchedule = BASE
    reason: str = ""
    alert: str | None = None


FULL_DUE = (version(1, age=8 * D),)  # v1 served, FULL interval of 7 days elapsed

CASES = [
    # -- steady state, first training, schedule -------------------------------------------------
    Case("steady-nothing-due", world(), Nothing, {"next_check_at": NOW - 2 * D + 7 * D}, reason="no training due"),
    Case("first-training-no-versions", world((), ()), Train, {"mode": FULL, "trigger": "first"}),
    Case("full-interval-due", world(FULL_DUE), Train, {"mode": FULL, "trigger": "schedule", "solution_arn": SOL}),
    Case(
        "full-cadence-disabled-not-due",
        world(FULL_DUE),
        Nothing,
        {"next_check_at": None},
        cfg=schedule(full=None),
    ),
    # -- adopt in-flight trainings (never duplicate) ------------------------------------------------
    Case(
        "pending-adopted", world((*FULL_DUE, version(2, CREATE_PENDING, age=60, ndcg=None))), Wait, {"on": "training"}
    ),
    Case(
        "in-progress-adopted-at-startup",
        world((*FULL_DUE, version(2, CREATE_IN_PROGRESS, age=3 * H, ndcg=None))),
        Wait,
        {"on": "training"},
        reason="adopting",
    ),
    Case(
        "update-in-progress-adopted",
        world((version(1), version(2, CREATE_IN_PROGRESS, UPDATE, age=H, ndcg=None))),
        Wait,
        {"on": "training"},
        cfg=WITH_UPDATE,
    ),
    Case(
        "stopping-overlong-is-waited-not-restopped",
        world((*FULL_DUE, version(2, CREATE_STOPPING, age=13 * H, ndcg=None))),
        Wait,
        {"on": "training"},
    ),
    Case(
        "started-but-not-listed-yet",
        world(FULL_DUE, memory=mem(starts=((V(2), NOW - 120),))),
        Wait,
        {"on": "training", "until": NOW - 120 + UNLISTED_GRACE_S},
        reason="not listed yet",
    ),
    # -- stop overlong ----------------------------------------------------------------------------
    Case(
        "stop-overlong-in-progress",
        world((*FULL_DUE, version(2, CREATE_IN_PROGRESS, age=13 * H))),
        Stop,
        {"version_arn": V(2)},
    ),
    Case(
        "stop-overlong-pending", world((*FULL_DUE, version(2, CREATE_PENDING, age=12 * H))), Stop, {"version_arn": V(2)}
    ),
    Case(
        "stop-oldest-of-two-overlong",
        world((*FULL_DUE, version(3, CREATE_IN_PROGRESS, age=14 * H), version(2, CREATE_IN_PROGRESS, age=20 * H))),
        Stop,
        {"version_arn": V(2)},
    ),
    Case(
        "stop-disabled-waits",
        world((*FULL_DUE, version(2, CREATE_IN_PROGRESS, age=40 * H))),
        Wait,
        {"on": "training"},
        cfg=schedule(stop_training_after_s=None),
    ),
    Case(
        "in-progress-under-timeout-waits",
        world((*FULL_DUE, version(2, CREATE_IN_PROGRESS, age=11 * H))),
        Wait,
        {"on": "training"},
    ),
    # -- failed / stopped trainings, min interval, daily cap --------------------------------------------
    Case(
        "failed-recently-held-by-min-interval",
        world((*FULL_DUE, version(2, CREATE_FAILED, age=30 * 60, ndcg=None, reason="too few users"))),
        Nothing,
        {"next_check_at": NOW - 30 * 60 + H},
        reason="min_interval_s",
        alert="too few users",
    ),
    Case(
        "failed-retried-after-min-interval",
        world((*FULL_DUE, version(2, CREATE_FAILED, age=2 * H, ndcg=None, reason="too few users"))),
        Train,
        {"mode": FULL, "trigger": "schedule"},
        alert="failed",
    ),
    Case(
        "stopped-retried",
        world((*FULL_DUE, version(2, CREATE_STOPPED, age=3 * H, ndcg=None))),
        Train,
        {"mode": FULL},
    ),
    Case(
        "daily-cap-reached",
        world((*FULL_DUE, version(2, CREATE_FAILED, age=20 * H, ndcg=None), version(3, CREATE_STOPPED, age=5 * H))),
        Nothing,
        {"next_check_at": NOW - 20 * H + D},
        reason="max_trainings_per_day=2",
    ),
    Case(
        "daily-cap-ignores-starts-older-than-24h",
        world((*FULL_DUE, version(2, CREATE_FAILED, age=25 * H, ndcg=None), version(3, CREATE_STOPPED, age=5 * H))),
        Train,
        {"mode": FULL},
    ),
    Case(
        "daily-cap-counts-remembered-unlisted-starts",
        world(FULL_DUE, memory=mem(starts=((V(8), NOW - 6 * H), (V(9), NOW - 3 * H)))),
        Nothing,
        {"next_check_at": NOW - 6 * H + D},
        reason="max_trainings_per_day",
    ),
    Case(
        "min-interval-after-recent-update",
        world((*FULL_DUE, version(2, mode=UPDATE, age=20 * 60)), campaigns=(campaign(2),), memory=mem({CAMP: {1, 2}})),
        Nothing,
        {"next_check_at": NOW - 20 * 60 + H},
        reason="held",
    ),
    # -- data volume -------------------------------------------------------------------------------
    Case(
        "volume-trigger-fires", world(new=50_000), Train, {"mode": FULL, "trigger": "data_volume"}, cfg=VOLUME_TRIGGER
    ),
    Case("volume-trigger-exact-threshold", world(new=10_000), Train, {"trigger": "data_volume"}, cfg=VOLUME_TRIGGER),
    Case("volume-trigger-below", world(new=9_999), Nothing, cfg=VOLUME_TRIGGER),
    Case("volume-trigger-unknown", world(new=None), Nothing, cfg=VOLUME_TRIGGER),
    Case(
        "volume-required-not-enough",
        world(FULL_DUE, new=10),
        Nothing,
        {"next_check_at": None},
        cfg=VOLUME_REQUIRED,
        reason="data_volume.required",
    ),
    Case("volume-required-unknown", world(FULL_DUE, new=None), Nothing, cfg=VOLUME_REQUIRED, reason="unknown"),
    Case("volume-required-met", world(FULL_DUE, new=1_000), Train, {"trigger": "schedule"}, cfg=VOLUME_REQUIRED),
    Case("volume-required-does-not-trigger", world(new=1_000_000), Nothing, cfg=VOLUME_REQUIRED),
    # -- data deletion (worker.privacy): trainings wait for a running job, a FULL follows it ----------
    Case("deletion-completed-trains-full", deleted(completed_age=H), Train, {"mode": FULL, "trigger": "data_deletion"},
         reason="data deletion job completed"),
    Case("deletion-completed-ignores-required-data", deleted(completed_age=H, new=0), Train,
         {"trigger": "data_deletion"}, cfg=VOLUME_REQUIRED),
    Case("deletion-completed-respects-min-interval", deleted(completed_age=60, versions=(version(1, age=600),)),
         Nothing, reason="held"),
    Case("deletion-already-retrained", deleted(completed_age=3 * D), Nothing, reason="no training due"),
    Case("deletion-retrain-failed-retries", deleted(completed_age=D, versions=(
        version(1, age=2 * D), version(2, status=CREATE_FAILED, age=12 * H, ndcg=None))), Train,
         {"trigger": "data_deletion"}),
    Case("deletion-running-holds-a-due-training", deleted(running="forget-shop-1", versions=FULL_DUE), Nothing,
         {"next_check_at": None}, reason="data deletion job forget-shop-1 runs"),
    Case("deletion-running-holds-the-first-training", deleted(running="forget-shop-1", versions=(), campaigns=()),
         Nothing, reason="held: data deletion job"),
    Case("deletion-running-promotes-anyway", deleted(running="j", versions=(version(2, age=H), version(1))),
         Promote, {"version_arn": V(2)}),
    # -- UPDATE trainings ----------------------------------------------------------------------------
    Case("update-due-user-personalization", world(), Train, {"mode": UPDATE, "trigger": "schedule"}, cfg=WITH_UPDATE),
    Case("update-due-up-v2-recipe", world(recipe=UP2), Train, {"mode": UPDATE}, cfg=WITH_UPDATE),
    Case(
        "update-due-hrnn-coldstart",
        world(recipe="arn:aws:personalize:::recipe/aws-hrnn-coldstart"),
        Train,
        {"mode": UPDATE},
        cfg=WITH_UPDATE,
    ),
    Case("update-never-for-sims", world(recipe=SIMS), Nothing, cfg=WITH_UPDATE),
    Case("update-needs-a-full-first", world((), ()), Train, {"mode": FULL, "trigger": "first"}, cfg=WITH_UPDATE),
    Case(
        "update-after-failed-full-only-trains-full",
        world((version(1, CREATE_FAILED, age=5 * H, ndcg=None),), ()),
        Train,
        {"mode": FULL, "trigger": "first"},
        cfg=WITH_UPDATE,
    ),
    Case("full-wins-when-both-due", world(FULL_DUE), Train, {"mode": FULL}, cfg=WITH_UPDATE),
    Case(
        "update-anchored-on-latest-active-version",
        world((version(1), version(2, mode=UPDATE, age=H)), campaigns=(campaign(2),), memory=mem({CAMP: {1, 2}})),
        Nothing,
        {"next_check_at": NOW - H + 2 * H},
        cfg=schedule(update={"interval_s": 2 * H}, min_interval_s=0),
    ),
    # -- cron + timezone ---------------------------------------------------------------------------
    Case(
        "cron-due",
        world(
            (VersionView(V(1), ACTIVE, FULL, datetime(2024, 6, 2, 4, tzinfo=UTC).timestamp(), metrics={METRIC: 0.3}),)
        ),
        Train,
        {"mode": FULL, "trigger": "schedule"},
        cfg=schedule(full={"cron": "0 3 * * 0"}),
    ),
    Case(
        "cron-not-due",
        world((VersionView(V(1), ACTIVE, FULL, datetime(2024, 6, 9, 3, 30, tzinfo=UTC).timestamp(), metrics={}),)),
        Nothing,
        {"next_check_at": datetime(2024, 6, 16, 3, tzinfo=UTC).timestamp()},
        cfg=schedule(full={"cron": "0 3 * * 0"}),
    ),
    Case(
        "cron-in-new-york-due",
        world((VersionView(V(1), ACTIVE, FULL, datetime(2024, 6, 10, 4, tzinfo=UTC).timestamp(), metrics={}),)),
        Train,
        {"mode": FULL},
        cfg=schedule(full={"cron": "0 3 * * *"}, timezone="America/New_York"),
    ),
    Case(
        "same-cron-in-utc-not-due",
        world((VersionView(V(1), ACTIVE, FULL, datetime(2024, 6, 10, 4, tzinfo=UTC).timestamp(), metrics={}),)),
        Nothing,
        {"next_check_at": datetime(2024, 6, 11, 3, tzinfo=UTC).timestamp()},
        cfg=schedule(full={"cron": "0 3 * * *"}),
    ),
    # -- promotion gate ----------------------------------------------------------------------------
    Case(
        "promote-equal-metric",
        world((version(1, age=3 * D), version(2, age=H))),
        Promote,
        {"campaign_arn": CAMP, "version_arn": V(2), "min_tps": 3, "previous_version_arn": V(1), "create": False},
        reason="promoting",
    ),
    Case(
        "promote-within-tolerance",
        world((version(1, age=3 * D, ndcg=0.30), version(2, age=H, ndcg=0.288))),
        Promote,
        {"version_arn": V(2), "config": {"enableMetadataWithRecommendations": True}},
    ),
    Case(
        "refuse-regression",
        world((version(1, age=3 * D, ndcg=0.30), version(2, age=H, ndcg=0.27))),
        Refuse,
        {"version_arn": V(2), "campaign_arn": CAMP},
        reason="regression",
    ),
    Case(
        "refuse-any-drop-when-strict",
        world((version(1, age=3 * D, ndcg=0.30), version(2, age=H, ndcg=0.2999))),
        Refuse,
        {"version_arn": V(2)},
        cfg=STRICT,
    ),
    Case(
        "refused-version-not-retried",
        world((version(1, age=3 * D), version(2, age=H)), memory=mem(refused=(2,))),
        Nothing,
    ),
    Case(
        "older-unrefused-candidate-gated-after-newer-refused",
        world((version(1, age=3 * D), version(2, age=5 * H), version(3, age=H)), memory=mem(refused=(3,))),
        Promote,
        {"version_arn": V(2)},
    ),
    Case(
        "candidate-metrics-not-observed-waits",
        world((version(1, age=3 * D), version(2, age=H, ndcg=None))),
        Wait,
        {"on": "metrics"},
    ),
    Case(
        "candidate-without-metrics-refused",
        world((version(1, age=3 * D), version(2, age=H, ndcg=None, metrics={}))),
        Refuse,
        {"version_arn": V(2)},
        reason="no metrics",
    ),
    Case(
        "candidate-missing-gate-metric-refused",
        world((version(1, age=3 * D), version(2, age=H, ndcg=None, metrics={"coverage": 0.5}))),
        Refuse,
        {"version_arn": V(2)},
        reason=METRIC,
    ),
    Case(
        "served-metrics-not-observed-waits",
        world((version(1, age=3 * D, ndcg=None), version(2, age=H))),
        Wait,
        {"on": "metrics"},
    ),
    Case(
        "served-lacks-metric-gates-on-floors-only",
        world((version(1, age=3 * D, ndcg=None, metrics={"coverage": 0.4}), version(2, age=H, ndcg=0.25))),
        Promote,
        {"version_arn": V(2)},
        cfg=FLOORS,
        reason="floors only",
    ),
    Case(
        "first-version-creates-campaign",
        world((version(1, age=H),), (), memory=Memory()),
        Promote,
        {"version_arn": V(1), "create": True, "previous_version_arn": None},
        cfg=FLOORS,
        reason="does not exist yet",
    ),
    Case(
        "first-version-below-floor-refused",
        world((version(1, age=H, ndcg=0.1),), (), memory=Memory()),
        Refuse,
        {"version_arn": V(1)},
        cfg=FLOORS,
        reason="below floor",
    ),
    Case(
        "failed-campaign-gets-floors-only-update",
        world((version(1, age=3 * D), version(2, age=H, ndcg=0.01)), (campaign(1, CREATE_FAILED, reason="boom"),)),
        Promote,
        {"version_arn": V(2), "create": False, "previous_version_arn": None},
        alert="CREATE FAILED",
    ),
    Case(
        "campaign-being-created-waits",
        world((version(1, age=3 * D), version(2, age=H)), (campaign(1, CREATE_IN_PROGRESS),)),
        Wait,
        {"on": "campaign"},
    ),
    Case(
        "candidate-older-than-served-ignored",
        world(
            (version(1, age=3 * D), version(2, age=2 * D), version(3, age=D)), (campaign(3),), memory=mem({CAMP: {1}})
        ),
        Nothing,
    ),
    Case(
        "promote-while-next-training-runs",
        world((version(1, age=3 * D), version(2, age=2 * H), version(3, CREATE_IN_PROGRESS, age=H, ndcg=None))),
        Promote,
        {"version_arn": V(2)},
    ),
    # -- campaign update in flight / failed / rollback ----------------------------------------------
    Case(
        "update-in-flight-blocks-promotion",
        world((version(1, age=3 * D), version(2, age=2 * H)), (campaign(1, update=update(3, CREATE_IN_PROGRESS)),)),
        Wait,
        {"on": "campaign_update"},
    ),
    Case(
        "update-pending-blocks-promotion",
        world((version(1, age=3 * D), version(2, age=2 * H)), (campaign(1, update=update(2, CREATE_PENDING)),)),
        Wait,
        {"on": "campaign_update"},
    ),
    Case(
        "training-may-start-during-campaign-update",
        world(FULL_DUE, (campaign(1, update=update(1, CREATE_IN_PROGRESS)),)),
        Train,
        {"mode": FULL},
    ),
    Case(
        "rollback-failed-update",
        world(
            (version(1, age=3 * D), version(2, age=2 * H)),
            (campaign(1, update=update(2, CREATE_FAILED, "insufficient capacity")),),
            memory=mem({CAMP: {1, 2}}, {CAMP: 1}),
        ),
        Rollback,
        {"campaign_arn": CAMP, "to_version_arn": V(1), "failed_version_arn": V(2), "min_tps": 3},
        alert="rolling back",
    ),
    Case(
        "failed-update-nothing-to-roll-back-to",
        world(
            (version(2, age=2 * H),),
            (campaign(None, CREATE_FAILED, update=update(2, CREATE_FAILED)),),
            memory=mem({CAMP: {2}}, {CAMP: None}),
        ),
        Nothing,
        alert="nothing to roll back to",
    ),
    Case(
        "failed-rollback-freezes-campaign",
        world(
            (version(1, age=3 * D), version(2, age=5 * H), version(3, age=H)),
            (campaign(1, update=update(1, CREATE_FAILED)),),
            memory=mem({CAMP: {1, 2}}, {CAMP: 1}),
        ),
        Nothing,
        alert="manual action needed",
    ),
    Case(
        "foreign-failed-update-alerts-and-gates-normally",
        world(
            (version(1, age=3 * D), version(2, age=H)), (campaign(1, update=update(2, CREATE_FAILED)),), memory=mem()
        ),
        Promote,
        {"version_arn": V(2)},
        alert="not issued by the scheduler",
    ),
    Case(
        "rolled-back-version-not-promoted-again",
        world(
            (version(1, age=3 * D), version(2, age=2 * H)),
            (campaign(1, update=update(1, ACTIVE)),),
            memory=mem({CAMP: {1, 2}}, {CAMP: 1}),
        ),
        Nothing,
    ),
    # -- several campaigns: one action per tick, configuration order ------------------------------------
    Case(
        "second-campaign-promoted-when-first-is-current",
        world(
            (version(1, age=3 * D), version(2, age=H)),
            (campaign(2), campaign(1, arn=CAMP2)),
            memory=mem({CAMP: {1, 2}}),
        ),
        Promote,
        {"campaign_arn": CAMP2, "version_arn": V(2), "min_tps": 7, "previous_version_arn": V(1)},
        cfg=TWO_CAMPAIGNS,
    ),
    Case(
        "first-campaign-in-config-order-first",
        world((version(1, age=3 * D), version(2, age=H)), (campaign(1, arn=CAMP2), campaign(1))),
        Promote,
        {"campaign_arn": CAMP},
        cfg=TWO_CAMPAIGNS,
    ),
    Case(
        "rollback-on-second-beats-promotion-on-first",
        world(
            (version(1, age=3 * D), version(2, age=5 * H), version(3, age=H)),
            (campaign(2), campaign(1, arn=CAMP2, update=update(2, CREATE_FAILED))),
            memory=mem({CAMP: {1, 2}, CAMP2: {1, 2}}, {CAMP: 1, CAMP2: 1}),
        ),
        Rollback,
        {"campaign_arn": CAMP2, "to_version_arn": V(1), "min_tps": 7},
        cfg=TWO_CAMPAIGNS,
    ),
    Case(
        "busy-first-campaign-does-not-block-second",
        world(
            (version(1, age=3 * D), version(2, age=H)),
            (campaign(1, update=update(1, CREATE_IN_PROGRESS)), campaign(1, arn=CAMP2)),
        ),
        Promote,
        {"campaign_arn": CAMP2},
        cfg=TWO_CAMPAIGNS,
    ),
    # -- conflicts with native automation --------------------------------------------------------------
    Case("auto-training-blocks", world(FULL_DUE, auto=True), Blocked, reason="performAutoTraining"),
    Case(
        "sync-with-latest-blocks",
        world(FULL_DUE, (campaign(1, sync=True),)),
        Blocked,
        reason="syncWithLatestSolutionVersion",
    ),
    Case(
        "conflicts-allowed-proceeds",
        world(FULL_DUE, (campaign(1, sync=True),), auto=True),
        Train,
        {"mode": FULL},
        cfg=schedule(allow_native_automation=True),
    ),
    # -- solution state, retry-after ----------------------------------------------------------------
    Case("solution-being-created-waits", world((), (), solution_status=CREATE_IN_PROGRESS), Wait, {"on": "solution"}),
    Case("solution-failed-blocks", world((), (), solution_status=CREATE_FAILED), Blocked, reason="CREATE FAILED"),
    Case(
        "retry-after-in-future-waits",
        world(FULL_DUE, memory=mem(retry_after=NOW + 90)),
        Wait,
        {"on": "backoff", "until": NOW + 90},
        reason="ResourceInUseException",
    ),
    Case("retry-after-elapsed-proceeds", world(FULL_DUE, memory=mem(retry_after=NOW - 1)), Train, {"mode": FULL}),
    Case(
        "retry-after-outranks-stop",
        world((*FULL_DUE, version(2, CREATE_IN_PROGRESS, age=30 * H)), memory=mem(retry_after=NOW + 60)),
        Wait,
        {"on": "backoff"},
    ),
    # -- archive import before FULL ---------------------------------------------------------------
    Case(
        "import-before-first-full",
        world((), ()),
        Import,
        {"mode": FULL, "dataset_arn": DATASET, "job_name": f"scheduler-import-{int(NOW)}", "role_arn": ROLE},
        cfg=WITH_ARCHIVE,
    ),
    Case(
        "incremental-import-after-earlier-import",
        world(FULL_DUE, imports=(imp(1, ACTIVE, 9 * D),)),
        Import,
        {"mode": "INCREMENTAL", "data_location": "s3://bucket/archive/"},
        cfg=WITH_ARCHIVE,
    ),
    Case(
        "import-in-progress-waits",
        world(FULL_DUE, imports=(imp(1, CREATE_IN_PROGRESS, H),)),
        Wait,
        {"on": "import"},
        cfg=WITH_ARCHIVE,
    ),
    Case(
        "fresh-active-import-trains",
        world(FULL_DUE, imports=(imp(1, ACTIVE, 9 * D), imp(2, ACTIVE, 2 * H, "INCREMENTAL"))),
        Train,
        {"mode": FULL},
        cfg=WITH_ARCHIVE,
        reason="archive import",
    ),
    Case(
        "failed-import-retried-later",
        world(FULL_DUE, imports=(imp(1, ACTIVE, 9 * D), imp(2, CREATE_FAILED, H))),
        Wait,
        {"on": "import_retry", "until": NOW - H + 300 + 3600},
        cfg=WITH_ARCHIVE,
        alert="import job",
    ),
    Case(
        "failed-import-reimported-after-delay",
        world(FULL_DUE, imports=(imp(1, ACTIVE, 9 * D), imp(2, CREATE_FAILED, 3 * H))),
        Import,
        {"mode": "INCREMENTAL"},
        cfg=WITH_ARCHIVE,
    ),
    Case(
        "first-import-failed-retries-full",
        world((), (), imports=(imp(1, CREATE_FAILED, 3 * H),)),
        Import,
        {"mode": FULL},
        cfg=WITH_ARCHIVE,
    ),
    Case(
        "import-in-flight-blocks-full-even-without-archive-config",
        world(FULL_DUE, imports=(imp(1, CREATE_PENDING, 60),)),
        Wait,
        {"on": "import"},
    ),
    Case(
        "update-trains-during-import",
        world(imports=(imp(1, CREATE_IN_PROGRESS, H),)),
        Train,
        {"mode": UPDATE},
        cfg=schedule(archive_import=ARCHIVE, update={"interval_s": 2 * H}),
    ),
    Case(
        "no-import-when-cap-holds-training",
        world((*FULL_DUE, version(2, CREATE_FAILED, age=3 * H), version(3, CREATE_FAILED, age=2 * H))),
        Nothing,
        cfg=WITH_ARCHIVE,
        reason="max_trainings_per_day",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_policy_table(case: Case) -> None:
    decision = decide(case.obs, case.cfg)
    assert isinstance(decision.action, case.expect), (decision.action, decision.reason)
    for name, expected in case.fields.items():
        assert getattr(decision.action, name) == expected, (name, decision.action, decision.reason)
    assert decision.reason.strip(), "every decision explains itself"
    assert case.reason in decision.reason, decision.reason
    if case.alert is not None:
        assert any(case.alert in a for a in decision.alerts), decision.alerts
    json.dumps(decision.to_dict())  # publishable as a lifecycle event


def test_table_is_large_and_ids_unique() -> None:
    assert len(CASES) >= 50
    assert len({c.id for c in CASES}) == len(CASES)


def test_never_trains_while_any_version_is_in_flight() -> None:
    """Across every status x mode x age, an in-flight version means wait or stop, never train."""
    for status in (CREATE_PENDING, CREATE_IN_PROGRESS, CREATE_STOPPING):
        for mode in (FULL, UPDATE):
            for age in (0.0, H, 11.9 * H, 12 * H, 100 * H):
                obs = world((*FULL_DUE, version(9, status, mode, age=age, ndcg=None)), new=10**9)
                decision = decide(obs, schedule(update={"interval_s": 60}, data_volume={"min_new_interactions": 1}))
                assert isinstance(decision.action, Wait | Stop), (status, mode, age, decision)
                if isinstance(decision.action, Stop):
                    assert status != CREATE_STOPPING and age >= 12 * H


def test_refusal_carries_metrics_and_gate_details() -> None:
    decision = decide(world((version(1, age=3 * D, ndcg=0.30), version(2, age=H, ndcg=0.24))), BASE)
    assert isinstance(decision.action, Refuse)
    assert decision.action.metrics[METRIC] == pytest.approx(0.24)
    gate = decision.details["gate"]
    assert gate["served"] == pytest.approx(0.30)
    assert gate["threshold"] == pytest.approx(0.285)
    assert gate["relative_change"] == pytest.approx(-0.2)


def test_conflicts_reported_with_blocking_flag() -> None:
    obs = world(campaigns=(campaign(1, sync=True), campaign(1, arn=CAMP2)), auto=True)
    refused = check_conflicts(obs, allow=False)
    assert [(c.resource_arn, c.setting, c.blocking) for c in refused] == [
        (SOL, "performAutoTraining", True),
        (CAMP, "syncWithLatestSolutionVersion", True),
    ]
    assert all(not c.blocking for c in check_conflicts(obs, allow=True))
    assert check_conflicts(world(), allow=False) == []
    blocked = decide(obs, BASE)
    assert isinstance(blocked.action, Blocked)
    assert len(blocked.action.conflicts) == 2


def test_update_cadence_for_unsupported_recipe_leaves_a_note() -> None:
    decision = decide(world(recipe=SIMS), WITH_UPDATE)
    assert isinstance(decision.action, Nothing)
    assert any("does not support UPDATE" in n for n in decision.details["notes"])


def test_update_before_first_full_leaves_a_note() -> None:
    decision = decide(world((), ()), WITH_UPDATE)
    assert decision.action == Train(SOL, FULL, "first")
    assert decision.details["notes"] == ["UPDATE waits for the first ACTIVE FULL version"]


# -- Memory: the transitions the reconciler applies ---------------------------------------------------


def test_record_error_backs_off_exponentially_and_caps() -> None:
    memory = Memory()
    delays = []
    for _ in range(8):
        memory = memory.record_error("LimitExceededException", now=NOW)
        assert memory.retry_after is not None
        delays.append(memory.retry_after - NOW)
    assert delays == [30, 60, 120, 240, 480, 960, 1800, 1800]
    cleared = memory.record_training(V(5), NOW)
    assert (cleared.retry_after, cleared.last_error, cleared.consecutive_errors) == (None, None, 0)


def test_memory_round_trips_through_json_and_prunes() -> None:
    memory = (
        Memory()
        .record_training(V(1), NOW - 2 * D)
        .record_training(V(2), NOW - H)
        .record_promotion(CAMP, V(2), V(1))
        .record_promotion(CAMP2, V(2), None)
        .record_refusal(V(3), "regression")
        .record_error("ResourceInUseException", NOW)
    )
    restored = Memory.from_dict(json.loads(json.dumps(memory.to_dict())))
    assert restored == memory
    assert restored.promoted_to(CAMP) == {V(2)}
    assert restored.previous_serving == {CAMP: V(1), CAMP2: None}
    assert [s.version_arn for s in restored.pruned(NOW).training_starts] == [V(2)]


# -- a whole lifecycle, tick by tick ---------------------------------------------------------------


def test_lifecycle_walk() -> None:
    """Bootstrap -> train -> promote (create) -> retrain -> refuse -> retrain -> promote -> rollback.

    The "world" is edited the way Personalize would change it after each action, and the
    memory the way the reconciler would record it.
    """
    cfg = schedule(gate={"floors": {METRIC: 0.1}})
    now = NOW
    memory = Memory()
    versions: list[VersionView] = []
    campaigns: list[CampaignView] = []

    def tick() -> Decision:
        return decide(world(tuple(versions), tuple(campaigns), memory=memory, now=now), cfg)

    # 1. nothing exists: first FULL training.
    d = tick()
    assert isinstance(d.action, Train) and d.action.trigger == "first"
    memory = memory.record_training(V(1), now)
    # 2. not listed yet -> wait; then listed pending -> wait (a restart here adopts it).
    now += 30
    assert isinstance(tick().action, Wait)
    versions.append(VersionView(V(1), CREATE_PENDING, FULL, now - 30))
    now += 2 * H
    assert tick().action == Wait("training")
    # 3. ACTIVE with metrics -> create the campaign (floors only).
    versions[0] = replace(versions[0], status=ACTIVE, metrics={METRIC: 0.2})
    d = tick()
    assert isinstance(d.action, Promote) and d.action.create and d.action.version_arn == V(1)
    memory = memory.record_promotion(CAMP, V(1), d.action.previous_version_arn)
    campaigns.append(campaign(1, CREATE_IN_PROGRESS))
    assert tick().action == Wait("campaign")
    campaigns[0] = campaign(1)
    d = tick()
    assert isinstance(d.action, Nothing)
    # 4. a week later: retrain; v2 is worse -> refused and never retried.
    now += 7 * D
    d = tick()
    assert isinstance(d.action, Train) and d.action.trigger == "schedule"
    memory = memory.record_training(V(2), now)
    versions.append(VersionView(V(2), ACTIVE, FULL, now, metrics={METRIC: 0.1}))
    now += 3 * H
    d = tick()
    assert isinstance(d.action, Refuse) and d.action.version_arn == V(2)
    memory = memory.record_refusal(V(2), d.action.reason)
    assert isinstance(tick().action, Nothing)
    # 5. v2 is ACTIVE, so the FULL schedule restarts from it: next week v3 passes the gate.
    now += 7 * D
    d = tick()
    assert isinstance(d.action, Train)
    memory = memory.record_training(V(3), now)
    versions.append(VersionView(V(3), ACTIVE, FULL, now, metrics={METRIC: 0.21}))
    now += 3 * H
    d = tick()
    assert isinstance(d.action, Promote) and d.action.version_arn == V(3) and d.action.previous_version_arn == V(1)
    memory = memory.record_promotion(CAMP, V(3), V(1))
    # 6. the update fails -> roll back to v1, then settle; v3 is not promoted again.
    campaigns[0] = campaign(1, update=UpdateView(V(3), CREATE_FAILED, now, "capacity"))
    d = tick()
    assert d.action == Rollback(CAMP, V(1), V(3), 3, {"enableMetadataWithRecommendations": True}, d.action.reason)
    assert d.alerts
    campaigns[0] = campaign(1, update=UpdateView(V(1), CREATE_IN_PROGRESS, now))
    assert tick().action == Wait("campaign_update")
    campaigns[0] = campaign(1, update=UpdateView(V(1), ACTIVE, now))
    assert isinstance(tick().action, Nothing)
