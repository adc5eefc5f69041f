"""RateController decisions on a fake clock: share, decrease, debounce, slow start, hold, evidence, decay."""

from __future__ import annotations

import math

import pytest

from worker.ingest.quota_control import ControlParams, RateController


def saturated_run(controller: RateController, start: float, seconds: float, step: float = 0.01) -> list[float]:
    """Work waits for tokens the whole time (the backlog case); the rate sampled every `step`."""
    rates = []
    t = start
    for _ in range(round(seconds / step)):
        t += step
        controller.on_saturated(t)
        rates.append(controller.rate_at(t))
    return rates


def idle_run(controller: RateController, start: float, seconds: float, step: float = 0.1) -> list[float]:
    return [controller.rate_at(start + step * (i + 1)) for i in range(round(seconds / step))]


# -- the share --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("quota", "fraction", "share"), [(1000, 0.25, 250), (10, 0.25, 2.5), (1000, 1 / 3, 1000 / 3),
                                                         (10, 1.0, 10)])
def test_starts_at_its_share_of_the_quota(quota: float, fraction: float, share: float) -> None:
    controller = RateController(quota, fraction)
    assert controller.share_rate == pytest.approx(share)
    assert controller.rate == pytest.approx(share)


def test_without_partitions_a_replica_keeps_a_floor_for_what_it_still_holds() -> None:
    controller = RateController(1000, 0.0)
    assert controller.share_rate == 0 and controller.rate == controller.floor == 10.0
    tiny = RateController(10, 1 / 200)  # 200 partitions: a share below 1 % of the quota
    assert tiny.floor == pytest.approx(0.05) == tiny.rate, "the floor never exceeds the share"


def test_a_rebalance_restarts_from_the_new_share() -> None:
    controller = RateController(1000, 0.5)
    saturated_run(controller, 0.0, 30.0)  # probed up meanwhile
    assert controller.rate > 500
    controller.set_share(0.25, 30.0)
    assert controller.rate == 250 and controller.fraction == 0.25
    controller.set_share(0.0, 31.0)
    assert controller.rate == controller.floor


@pytest.mark.parametrize("fraction", [-0.1, 1.01, math.nan])
def test_invalid_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        RateController(1000, fraction)
    with pytest.raises(ValueError, match="fraction"):
        RateController(1000, 0.5).set_share(fraction, 1.0)


@pytest.mark.parametrize("quota", [0, -5, math.inf, math.nan])
def test_invalid_quota(quota: float) -> None:
    with pytest.raises(ValueError, match="quota"):
        RateController(quota)


@pytest.mark.parametrize("kwargs", [{"decrease_factor": 1.0}, {"decrease_factor": 0.0}, {"min_fraction": 0.0},
                                    {"growth_per_s": 0.5}, {"hold_s": -1.0}, {"probe_per_s": 0.0},
                                    {"recover_per_s": -1.0}, {"evidence_s": -0.1}])
def test_invalid_params(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ControlParams(**kwargs)  # type: ignore[arg-type]


# -- decrease ---------------------------------------------------------------------------------------


def test_decrease_sequence_and_floor() -> None:
    controller = RateController(100, 1.0)
    got = []
    t = 0.0
    for _ in range(16):  # throttled again as soon as the last decrease's debounce ends (a backlog all along)
        controller.on_throttled(t)
        got.append(controller.rate)
        wait = max(0.3, 1.0 / controller.rate) + 0.001
        saturated_run(controller, t, wait, step=0.001)
        t += wait
    assert got[:4] == pytest.approx([70.0, 49.0, 34.3, 24.01], rel=0.01)
    assert got[-1] == 1.0, "never below 1 % of the quota"


def test_a_borrowed_rate_falls_back_to_the_share_not_below() -> None:
    controller = RateController(1000, 0.25)
    saturated_run(controller, 0.0, 8.0)
    assert controller.rate == 1000, "the others left their quota unused: it borrowed all of it"
    got, t = [], 8.0
    for _ in range(6):  # the backlog goes on; throttled again each time the debounce ends
        controller.on_throttled(t)
        got.append(controller.rate)
        saturated_run(controller, t, 0.301, step=0.001)
        t += 0.301
    assert got == pytest.approx([700, 490, 343, 250, 175, 122.5], rel=1e-3), "down to the share, then below it"


def test_throttles_within_the_debounce_count_once() -> None:
    controller = RateController(1000, 1.0)
    decreased = [controller.on_throttled(t / 1000) for t in range(0, 290, 5)]  # 58 throttles within 0.29 s
    assert decreased.count(True) == 1 and controller.rate == 700
    assert controller.on_throttled(0.31)
    assert controller.rate == pytest.approx(490)


def test_the_debounce_is_longer_at_low_rates() -> None:
    """At 1.4/s the next paced call is 0.7 s away: a throttle before then answers an older call."""
    controller = RateController(2, 1.0)
    assert controller.on_throttled(0.0) and controller.rate == pytest.approx(1.4)
    assert not controller.on_throttled(0.5)
    assert controller.on_throttled(0.72)


def test_nothing_grows_while_throttles_are_ignored() -> None:
    controller = RateController(1000, 1.0)
    controller.on_throttled(0.0)
    rates = saturated_run(controller, 0.0, 0.29)
    assert set(rates) == {700.0}


# -- increase ---------------------------------------------------------------------------------------


def test_after_a_storm_the_share_comes_back_within_seconds_and_speeds_up() -> None:
    controller = RateController(1000, 1.0)
    t = 0.0
    while controller.rate > 100:  # a storm drove it to a tenth
        controller.on_throttled(t)
        t += 0.31
    start = controller.rate
    rates = saturated_run(controller, t, 4.0)
    at = {round(s, 1): r for s, r in zip([0.01 * (i + 1) for i in range(len(rates))], rates, strict=True)}
    first_gain = at[1.0] - start
    second_gain = at[2.0] - at[1.0]
    assert second_gain > 2 * first_gain, "a slow start: the slope grows while throttling stays away"
    recovered = next(i for i, r in enumerate(rates) if r >= 900) * 0.01
    assert recovered <= 3.0
    assert rates[-1] == 1000.0


def test_during_a_storm_the_slow_start_stays_gentle() -> None:
    """Throttled every time the rate passes 100: the rate must hover near it, not bounce to the share."""
    controller = RateController(1000, 1.0)
    t, late = 0.0, []
    for _ in range(3000):
        t += 0.01
        controller.on_saturated(t)
        rate = controller.rate_at(t)
        if rate > 100 and controller.on_throttled(t) and t > 10:
            late.append(rate)
    assert len(late) > 10, "throttled again and again: the storm goes on"
    assert max(late) < 130, "each slow start overshoots the storm's rate by little"


def test_no_increase_without_a_backlog() -> None:
    controller = RateController(1000, 0.25)
    assert idle_run(controller, 0.0, 60.0) == [250.0] * 600


def test_probing_waits_for_the_hold_after_a_throttle() -> None:
    controller = RateController(1000, 0.25)
    controller.on_throttled(0.0)  # at the share: 175
    rates = saturated_run(controller, 0.0, 4.0)
    reached = next(i for i, r in enumerate(rates) if r == 250.0)
    assert reached * 0.01 < 1.5
    assert max(rates[: 200]) == 250.0, "no probing within hold_s (2 s) of the throttle"
    assert rates[-1] > 250.0, "probing after the hold"


def test_the_hold_is_a_number_of_own_calls_at_low_rates() -> None:
    """10 requests/s over 4 replicas: 2.5/s each; a probe that fails costs about one call in 200."""
    controller = RateController(10, 0.25)
    controller.on_throttled(0.0)
    rates = saturated_run(controller, 0.0, 85.0, step=0.1)
    assert max(rates[: 790]) == 2.5, "held at the share for 200 / 2.5 = 80 s"
    assert rates[-1] > 2.5


def test_probing_is_slow_until_idle_quota_is_proven_then_fast() -> None:
    """Without evidence the rate climbs linearly at `probe_per_s` of the share per second; once this
    replica has sent a whole second of its share above it without a throttle, the slope grows."""
    controller = RateController(1000, 0.25)
    rates = saturated_run(controller, 0.0, 6.0)
    slope = ControlParams().probe_per_s * 250
    evidence_at = math.sqrt(2 * 250 / slope)  # borrowed = slope * t^2 / 2 reaches one second of the share
    assert rates[99] == pytest.approx(250 + slope * 1.0, rel=0.01)
    just_before = round(evidence_at * 100) - 2
    assert rates[just_before] == pytest.approx(250 + slope * (just_before + 1) / 100, rel=0.01)
    assert rates[just_before + 100] - rates[just_before] > 3 * slope, "accelerating after the evidence"
    assert rates[-1] == 1000.0, "bounded by the group's quota"


def test_a_fleet_that_uses_its_share_is_throttled_before_any_replica_speeds_up() -> None:
    """Four replicas probing together drain the service's one-second burst (1000 calls) when each
    has borrowed 250: exactly when the evidence would start; the slope is still the slow one."""
    controller = RateController(1000, 0.25)
    slope = ControlParams().probe_per_s * 250
    t_drain = math.sqrt(2 * 1000 / (4 * slope))  # four replicas at +slope/s each: 1000 borrowed
    rates = saturated_run(controller, 0.0, t_drain - 0.02)
    assert rates[-1] == pytest.approx(250 + slope * (t_drain - 0.02), rel=0.01)


def test_a_borrowed_rate_is_given_back_when_the_backlog_ends() -> None:
    controller = RateController(1000, 0.25)
    saturated_run(controller, 0.0, 8.0)
    high = controller.rate
    assert high > 400
    rates = idle_run(controller, 8.0, 20.0)
    # The last wait for a token counts for 0.5 s (saturated_s); then the borrowed part decays, tau 2 s.
    assert rates[24] - 250 == pytest.approx((high - 250) * math.exp(-1.0), rel=0.02)
    assert rates[-1] < 255


def test_a_rate_cut_by_an_old_storm_is_restored_while_idle() -> None:
    controller = RateController(1000, 1.0)
    for t in (0.0, 0.4, 0.8):
        controller.on_throttled(t)
    assert controller.rate < 400
    assert idle_run(controller, 0.8, 20.0)[-1] > 995


def test_a_clock_step_backwards_changes_nothing() -> None:
    controller = RateController(1000, 0.25)
    saturated_run(controller, 0.0, 5.0)
    before = controller.rate
    controller.on_saturated(1.0)
    assert controller.rate_at(1.0) == before


def test_the_quota_can_change_keeping_the_position() -> None:
    controller = RateController(1000, 0.5)
    controller.on_throttled(0.0)
    controller.set_quota(2000, 0.1)
    assert controller.quota == 2000 and controller.share_rate == 1000 and controller.rate == pytest.approx(700)
    with pytest.raises(ValueError):
        controller.set_quota(0, 0.2)
