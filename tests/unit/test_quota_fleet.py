"""The rate controller in a fleet: replicas sharing one dataset group's quota on a simulated clock.

Each replica runs the real `Limiter` (bucket + `RateController`); the service is a token bucket
with one second of burst, as the local Personalize's. See `quota_fleet` for the model. These are
properties of the control law (convergence, fairness, recovery), checked exactly and in well under
a second each; real processes against the real local Personalize are the benchmarks' job.
"""

from __future__ import annotations

import io

import pytest

from tests.helpers import write_result
from tests.unit.quota_fleet import Fleet
from worker.observe.logging import configure_logging

QUOTA = 1000.0
RESULTS: dict[str, dict[str, float]] = {}


@pytest.fixture(autouse=True)
def _quiet_logs() -> None:
    configure_logging(json=True, stream=io.StringIO())


@pytest.fixture(scope="module", autouse=True)
def _write_table() -> object:
    yield None
    write_result("quota_fleet_model", RESULTS)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_four_replicas_with_a_backlog_use_the_quota_and_are_rarely_throttled(seed: int) -> None:
    fleet = Fleet(QUOTA, seed=seed)
    for _ in range(4):
        fleet.add(0.25)
    out = fleet.run(60)
    use, throttled = out.utilisation(QUOTA, 5, 59), out.throttled_share(5, 59)
    RESULTS[f"even_4_seed{seed}"] = {"utilisation": round(use, 4), "throttled_share": round(throttled, 4)}
    assert use >= 0.97
    assert throttled <= 0.01
    assert max(out.by_replica.values()) <= 1.1 * min(out.by_replica.values()), "equal partitions, equal use"


def test_sixteen_replicas_share_as_well_as_four() -> None:
    fleet = Fleet(QUOTA, seed=4)
    for _ in range(16):
        fleet.add(1 / 16)
    out = fleet.run(40)
    RESULTS["even_16"] = {"utilisation": round(out.utilisation(QUOTA, 5, 39), 4),
                          "throttled_share": round(out.throttled_share(5, 39), 4)}
    assert out.utilisation(QUOTA, 5, 39) >= 0.97
    assert out.throttled_share(5, 39) <= 0.01


def test_uneven_partition_counts_share_in_proportion() -> None:
    fleet = Fleet(QUOTA, seed=5)
    two, one = fleet.add(2 / 3), fleet.add(1 / 3)
    out = fleet.run(40)
    assert out.utilisation(QUOTA, 5, 39) >= 0.97
    assert out.by_replica[two.name] / out.by_replica[one.name] == pytest.approx(2.0, rel=0.1)


def _skewed(static: bool) -> tuple[float, int | None]:
    """One replica's partition has a backlog; from t = 10 s the other three have 30 calls/s of work each."""
    fleet = Fleet(QUOTA, seed=6)
    own = QUOTA / 4 if static else None
    hot = fleet.add(0.25 if not static else 1.0, own_quota=own)
    cold = [fleet.add(0.25 if not static else 1.0, own_quota=own) for _ in range(3)]
    for replica in cold:
        fleet.at(10.0, lambda r=replica: fleet.set_demand(r, ready=0, demand_rps=30.0))
    out = fleet.run(60)
    ramp = next((s - 10 for s in range(10, 60) if out.rates[hot.name][s] >= 0.9 * (QUOTA - 90)), None)
    return out.utilisation(QUOTA, 20, 59), ramp


def test_a_hot_partition_takes_what_idle_replicas_leave() -> None:
    use, ramp = _skewed(static=False)
    static_use, _ = _skewed(static=True)
    RESULTS["skewed"] = {"utilisation": round(use, 4), "ramp_s": ramp or -1, "static_split_utilisation":
                         round(static_use, 4)}
    assert ramp is not None and ramp <= 8, "the hot replica borrows the idle quota within seconds"
    assert use >= 0.95
    assert static_use <= 0.4, "the static split strands it (the comparison can fail)"


def test_a_replica_joining_and_leaving_keeps_the_quota_used_and_unexceeded() -> None:
    fleet = Fleet(QUOTA, seed=7)
    for _ in range(3):
        fleet.add(1 / 3)

    def join() -> None:
        fleet.add(0.25)
        fleet.rebalance({0: 0.25, 1: 0.25, 2: 0.25, 3: 0.25})

    fleet.at(20.0, join)
    fleet.at(40.0, lambda: fleet.rebalance({0: 1 / 3, 1: 1 / 3, 3: 1 / 3}))  # replica 2 leaves
    out = fleet.run(60)
    RESULTS["scale_event"] = {"utilisation": round(out.utilisation(QUOTA, 3, 59), 4),
                              "throttled_share": round(out.throttled_share(3, 59), 4)}
    assert out.utilisation(QUOTA, 3, 59) >= 0.97
    assert out.throttled_share(3, 59) <= 0.01


def test_after_a_throttling_storm_the_rate_is_back_within_seconds() -> None:
    fleet = Fleet(QUOTA, seed=8)
    fleet.add(1.0)
    fleet.at(10.0, lambda: fleet.service.set_rps(100.0, fleet.clock.now))
    fleet.at(40.0, lambda: fleet.service.set_rps(QUOTA, fleet.clock.now))
    out = fleet.run(60)
    before = sum(out.accepted_per_s[5:10]) / 5
    recovered = next(s - 40 for s in range(40, 60) if out.accepted_per_s[s] >= 0.9 * before)
    during = sum(out.accepted_per_s[15:40]) / 25
    RESULTS["storm"] = {"recovery_s": recovered, "throttled_share_during": round(out.throttled_share(10, 40), 4),
                        "accepted_per_s_during": round(during, 1)}
    assert recovered <= 3
    assert during >= 90, "the storm's own quota is used meanwhile"
    assert out.throttled_share(10, 40) <= 0.3, "no hammering at the old rate during the storm"


def test_ten_requests_per_second_over_four_replicas() -> None:
    """PutItems' quota: 2.5/s each. Paced exactly, shared evenly, throttled rarely."""
    fleet = Fleet(10.0, seed=9)
    for _ in range(4):
        fleet.add(0.25)
    out = fleet.run(200)
    RESULTS["fractional_10_over_4"] = {"utilisation": round(out.utilisation(10.0, 5, 199), 4),
                                       "throttled_share": round(out.throttled_share(5, 199), 4)}
    assert out.utilisation(10.0, 5, 199) >= 0.95
    assert out.throttled_share(5, 199) <= 0.02
    for calls in out.by_replica.values():
        assert calls / 200 == pytest.approx(2.5, rel=0.1)
