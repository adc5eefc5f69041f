"""The leader's published observation: encoding, compaction, freshness, and what `status` shows (pure)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from worker.schedule.control_topic import Record
from worker.schedule.memory_store import SolutionState, states_of
from worker.schedule.snapshot import (
    KEY_PREFIX,
    MAX_IMPORTS,
    STALE_GRACE_S,
    STALE_TICKS,
    Claim,
    Snapshot,
    SnapshotIndex,
    compact,
    decode,
    decode_claim,
    describe_freshness,
    encode,
    encode_claim,
    freshness,
    stale_after,
    status_source,
)
from worker.schedule.snapshot_board import InMemorySnapshotBoard, index_of
from worker.schedule.state import (
    ACTIVE,
    CREATE_FAILED,
    CREATE_IN_PROGRESS,
    CampaignView,
    ImportView,
    Memory,
    Observation,
    SolutionView,
    UpdateView,
    VersionView,
)

SOL = "arn:aws:personalize:us-east-1:123456789012:solution/shop"
CAMP = "arn:aws:personalize:us-east-1:123456789012:campaign/shop"
T = 1_800_000_000.0


def version(n: int, status: str = ACTIVE, **kw: object) -> VersionView:
    return VersionView(f"{SOL}/v{n:03d}", status, created_at=T + n, **kw)  # type: ignore[arg-type]


def observation(versions: int = 2) -> Observation:
    memory = Memory().record_training(f"{SOL}/v001", T + 1).record_refusal(f"{SOL}/v000", "worse")
    memory = memory.record_promotion(CAMP, f"{SOL}/v000", None)
    return Observation(
        now=T + 100,
        solution=SolutionView(SOL, ACTIVE, "arn:aws:personalize:::recipe/aws-user-personalization", False),
        versions=tuple(version(n, metrics={"precision_at_5": 0.25} if n == 0 else None) for n in range(versions)),
        campaigns=(
            CampaignView(
                CAMP, ACTIVE, f"{SOL}/v000", UpdateView(f"{SOL}/v001", CREATE_IN_PROGRESS, T + 50, None),
                min_tps=2, config={"itemExplorationConfig": {"explorationWeight": "0.3"}},
            ),
        ),
        imports=(ImportView("arn:job/1", CREATE_FAILED, T, "FULL", T + 5, "no such bucket"),),
        new_interactions=1234,
        memory=memory,
    )


def snapshot(**kw: object) -> Snapshot:
    base = Snapshot(SOL, "pod-a/7", 12, T + 101, 60.0, observation(), decision="wait", reason="training runs",
                    alerts=("import failed",), action="CreateSolutionVersion done")  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


# -- encoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "snap",
    [snapshot(), snapshot(observation=None, decision=None, reason=None, alerts=(), action=None, error="AccessDenied"),
     snapshot(released=True, error="throttled", omitted_versions=3, generation=None)],
)  # fmt: skip
def test_a_snapshot_survives_the_control_topic_unchanged(snap: Snapshot) -> None:
    key, value = encode(snap)
    assert key == f"{KEY_PREFIX}{SOL}".encode()
    assert decode(key, value) == (SOL, snap)


def test_decoding_skips_other_records_and_reads_tombstones_and_newer_fields() -> None:
    key, value = encode(snapshot())
    assert decode(f"memory/{SOL}".encode(), value) is None
    assert decode(None, value) is None
    assert decode(key, None) == (SOL, None)  # tombstone: the snapshot is gone
    assert decode(key, b"not json") is None
    assert decode(key, b"[1, 2]") is None
    data = json.loads(value)
    assert decode(key, json.dumps({**data, "format": 99}).encode()) is None  # a newer writer's format
    data["future_field"] = 1
    data["observation"]["versions"][0]["future_field"] = "x"  # additions of a newer minor version are ignored
    assert decode(key, json.dumps(data).encode()) == (SOL, snapshot())
    del data["published_at"]
    assert decode(key, json.dumps(data).encode()) is None


def records(*pairs: tuple[bytes, bytes | None]) -> list[Record]:
    return [Record(key, value, offset) for offset, (key, value) in enumerate(pairs)]


def test_memory_and_snapshot_records_share_the_topic_without_mixing() -> None:
    first, second = snapshot(), snapshot(published_at=T + 200)
    memory = (f"memory/{SOL}".encode(), json.dumps(SolutionState(baselined=True).to_dict()).encode())
    log = records(encode(first), memory, encode(second))
    assert index_of(log).snapshots == {SOL: second}  # the last one wins
    assert index_of([*log, Record(encode(first)[0], None, 9)]).snapshots == {}  # a tombstone removes it
    assert states_of(log) == {SOL: SolutionState(baselined=True)}


def test_claims_give_generations_and_fence_a_deposed_leaders_late_writes() -> None:
    key, value = encode_claim("pod-b/2", T)
    assert decode_claim(key, value, 42) == Claim("pod-b/2", T, 42)
    assert decode_claim(key, None, 1) is None and decode_claim(b"other", value, 1) is None
    assert decode_claim(key, b"{}", 1) is None and decode_claim(key, b"nope", 1) is None
    old = snapshot(generation=0, published_at=T + 1)
    log = records(encode_claim("pod-a/1", T), encode(old), encode_claim("pod-b/2", T + 2))
    index = index_of(log)
    assert index.snapshots == {SOL: old}  # the last view stays until the new leader publishes
    assert index.leader == Claim("pod-b/2", T + 2, 2)
    late = snapshot(generation=0, published_at=T + 3)  # the old leader had not noticed it was deposed
    new = snapshot(generation=2, replica="pod-b/2", published_at=T + 4)
    index.apply(*encode(late), 3)
    assert index.snapshots == {SOL: old} and index.superseded == 1
    index.apply(*encode(new), 4)
    index.apply(*encode(snapshot(generation=None, published_at=T + 5)), 5)  # no claim: accepted as written
    assert index.snapshots[SOL].published_at == T + 5
    index.apply(*encode_claim("pod-z/9", T), 1)  # an older claim read late changes nothing
    assert index.leader == Claim("pod-b/2", T + 2, 2)
    assert SnapshotIndex().leader is None


def test_the_in_memory_board_keeps_the_latest_per_solution() -> None:
    board = InMemorySnapshotBoard()
    board.publish(snapshot())
    board.publish(snapshot(published_at=T + 300))
    assert board.latest() == {SOL: snapshot(published_at=T + 300)} and len(board.published) == 2


# -- compaction -------------------------------------------------------------------------------


def test_compaction_keeps_the_newest_versions_and_those_campaigns_refer_to() -> None:
    obs = replace(observation(versions=60), imports=tuple(ImportView(f"arn:job/{n}", ACTIVE, T + n) for n in range(9)))
    small, omitted = compact(obs, max_versions=50)
    kept = {v.arn for v in small.versions}
    assert f"{SOL}/v000" in kept and f"{SOL}/v001" in kept  # served, and the one being deployed
    assert {f"{SOL}/v{n:03d}" for n in range(10, 60)} <= kept
    assert len(kept) == 52 and omitted == 8
    assert [j.arn for j in small.imports] == [f"arn:job/{n}" for n in range(9 - MAX_IMPORTS, 9)]
    assert compact(observation(versions=3)) == (observation(versions=3), 0)
    _, value = encode(snapshot(observation=compact(observation(versions=500))[0]))
    assert len(value) < 60_000  # far below Kafka's default 1 MB message limit


# -- freshness and what status shows -----------------------------------------------------------


def test_freshness_by_republication_time() -> None:
    snap = snapshot()
    limit = snap.published_at + stale_after(snap.tick_interval_s)
    assert stale_after(60.0) == STALE_TICKS * 60.0 + STALE_GRACE_S
    assert freshness(snap, snap.published_at) == "fresh"
    assert freshness(snap, limit) == "fresh"
    assert freshness(snap, limit + 0.001) == "stale"
    assert freshness(replace(snap, released=True), snap.published_at) == "released"
    assert freshness(replace(snap, released=True), limit + 10) == "released"
    assert freshness(replace(snap, observation=None, error="denied"), snap.published_at) == "unobserved"
    assert freshness(replace(snap, error="throttled"), snap.published_at) == "fresh"  # last good view + error
    assert snap.age(T + 130) == 30.0 and snap.observed_at == T + 100
    assert replace(snap, observation=None).age(T) is None


FRESH_AT = T + 110
STALE_AT = T + 101 + stale_after(60.0) + 1


@pytest.mark.parametrize(
    ("snap", "now", "mode", "kind"),
    [
        (snapshot(), FRESH_AT, "auto", "leader"),
        (snapshot(), FRESH_AT, "live", "live"),
        (snapshot(), FRESH_AT, "published", "leader"),
        (snapshot(), STALE_AT, "auto", "live"),
        (snapshot(), STALE_AT, "published", "leader"),
        (snapshot(released=True), FRESH_AT, "auto", "live"),
        (snapshot(released=True), FRESH_AT, "published", "leader"),
        (snapshot(error="throttled"), FRESH_AT, "auto", "leader"),
        (snapshot(observation=None, error="denied"), FRESH_AT, "auto", "live"),
        (snapshot(observation=None, error="denied"), FRESH_AT, "published", "none"),
        (None, FRESH_AT, "auto", "live"),
        (None, FRESH_AT, "published", "none"),
        (None, FRESH_AT, "live", "live"),
    ],
)
def test_status_shows_the_leader_view_while_fresh_else_observes_live(
    snap: Snapshot | None, now: float, mode: str, kind: str
) -> None:
    assert status_source(snap, now, mode)[0] == kind


def test_status_says_where_a_view_comes_from() -> None:
    text = describe_freshness(snapshot(), FRESH_AT)
    assert text == "observed 10 s ago by the leader (replica pod-a/7, lease generation 12)"
    assert "its latest attempt failed: throttled" in describe_freshness(snapshot(error="throttled"), FRESH_AT)
    assert "which has stopped" in describe_freshness(snapshot(released=True), FRESH_AT)
    stale = describe_freshness(snapshot(), STALE_AT)
    assert "the leader may be down" in stale and f"stale after {stale_after(60.0):.0f} s" in stale
    assert "lease generation" not in describe_freshness(snapshot(generation=None), FRESH_AT)
    assert status_source(None, T)[1] == "no leader has published an observation of this solution"
    assert "denied" in status_source(snapshot(observation=None, error="denied"), FRESH_AT)[1]
