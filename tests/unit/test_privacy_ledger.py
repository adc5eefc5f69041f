"""The privacy ledger and the deletion planner (pure): records in, steps out."""

from __future__ import annotations

import json

import pytest

from worker.privacy.ledger import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    STARTING,
    JobEntry,
    Ledger,
    UserEntry,
    encode,
    job_update,
    user_digest,
    with_request,
)
from worker.privacy.planner import (
    Expire,
    Forget,
    Hold,
    Limits,
    PollJob,
    PurgeArchive,
    StartJob,
    backoff_s,
    job_name,
    plan,
    plan_group,
)

G1 = "arn:aws:personalize:us-east-1:123456789012:dataset-group/shop"
G2 = "arn:aws:personalize:us-east-1:123456789012:dataset-group/news"
LIMITS = Limits(max_users_per_job=3, batch_wait_s=60, propagation_s=10, retry_initial_s=100, retry_max_s=1000,
                suppress_for_s=5000, prefix="del/")  # fmt: skip


def user(name: str, recorded_at: float = 0.0, forgotten_at: float | None = None) -> UserEntry:
    return UserEntry(user_digest(name), None if forgotten_at is not None else name, recorded_at, recorded_at,
                     forgotten_at)  # fmt: skip


def job(name: str, group: str, users: list[str], status: str, created: float, updated: float | None = None,
        **kw: object) -> JobEntry:  # fmt: skip
    return JobEntry(name, group, tuple(user_digest(u) for u in users), status, created,
                    created if updated is None else updated, f"del/{name}.csv", **kw)  # type: ignore[arg-type]


def ledger(*entries: UserEntry | JobEntry) -> Ledger:
    out = Ledger()
    for e in entries:
        out.apply(*encode((e.key, e.to_dict())))
    return out


# -- digests and records ---------------------------------------------------------------------


def test_digests_are_keyed_stable_and_do_not_contain_the_id() -> None:
    a = user_digest("alice")
    assert a == user_digest("alice") and len(a) == 32 and "alice" not in a
    assert user_digest("alice", b"k1") != user_digest("alice", b"k2") != a
    assert user_digest("bob") != a


def test_records_round_trip_and_tombstones_remove() -> None:
    u = user("alice", 5.0)
    j = job("j1", G1, ["alice"], PENDING, 7.0, job_arn="arn:job/j1")
    book = ledger(u, j)
    assert book.users == {u.digest: u} and book.jobs == {"j1": j}
    book.apply(u.key.encode(), None)
    book.apply(j.key.encode(), None)
    assert not book.users and not book.jobs


@pytest.mark.parametrize(
    ("key", "value"),
    [(None, b"{}"), (b"user/x", b"not json"), (b"user/x", b"[1]"), (b"user/x", b"{}"),
     (b"other/x", b'{"format": 1}'), (b"user/x", json.dumps({"format": 99}).encode())],
)  # fmt: skip
def test_unreadable_records_are_counted_not_fatal(key: bytes | None, value: bytes) -> None:
    book = Ledger()
    book.apply(key, value)
    assert book.unreadable == 1 and not book.users and not book.jobs


def test_suppressed_from_the_request_until_the_window_after_forgetting_ends() -> None:
    book = ledger(user("alice", 0.0), user("bob", 0.0, forgotten_at=100.0))
    assert book.suppressed(user_digest("alice"), 10**9, 5000)
    assert book.suppressed(user_digest("bob"), 5099, 5000)
    assert not book.suppressed(user_digest("bob"), 5100, 5000)
    assert not book.suppressed(user_digest("carol"), 0, 5000)


def test_a_repeated_open_request_keeps_the_first_and_a_request_after_forgetting_opens_a_new_one() -> None:
    alice = user_digest("alice")
    book = ledger(user("alice", 3.0))
    assert with_request(book, "alice", alice, requested_at=9.0, now=9.0) is None
    forgotten = ledger(user("alice", 3.0, forgotten_at=50.0))
    key, value = with_request(forgotten, "alice", alice, requested_at=60.0, now=61.0) or ("", None)
    assert key == f"user/{alice}" and value is not None
    assert (value["user_id"], value["requested_at"], value["recorded_at"], value["forgotten_at"]) == (
        "alice", 60.0, 61.0, None)


def test_covered_only_by_a_completed_job_created_after_the_request() -> None:
    alice = user("alice", 100.0)
    assert ledger(alice, job("old", G1, ["alice"], COMPLETED, 50.0)).covered(G1, alice) is None
    assert ledger(alice, job("run", G1, ["alice"], IN_PROGRESS, 150.0)).covered(G1, alice) is None
    done = job("new", G1, ["alice"], COMPLETED, 150.0)
    assert ledger(alice, done).covered(G1, alice) == done
    assert ledger(alice, done).covered(G2, alice) is None


def test_counts_by_state() -> None:
    book = ledger(user("a"), user("b"), user("c"), user("d", forgotten_at=10.0), user("e", forgotten_at=1.0),
                  job("j", G1, ["b"], IN_PROGRESS, 5.0), job("k", G1, ["c"], COMPLETED, 5.0))  # fmt: skip
    assert book.counts([G1, G2], now=5003.0, suppress_for_s=5000) == {
        "requested": 1, "in_job": 1, "partly_deleted": 1, "forgotten": 1, "expired": 1}


# -- the planner -----------------------------------------------------------------------------


def test_nothing_to_do_without_requests() -> None:
    assert plan(Ledger(), [G1], 100.0, LIMITS, archive=True) == []


def test_a_request_waits_for_propagation_then_for_the_batch_window() -> None:
    book = ledger(user("alice", 100.0))
    assert plan_group(book, G1, 105.0, LIMITS) == [], "not every replica suppresses it yet"
    assert plan_group(book, G1, 120.0, LIMITS) == [Hold(G1, "collecting requests into one job", 160.0)]
    (start,) = plan_group(book, G1, 160.0, LIMITS)
    assert isinstance(start, StartJob)
    assert [u.user_id for u in start.users] == ["alice"] and start.attempt == 1 and start.group_arn == G1
    assert start.csv_key == f"del/shop/{start.name}.csv" and start.name.startswith("forget-shop-160-")


def test_a_full_batch_starts_at_once_oldest_first_and_the_rest_waits_for_the_next_job() -> None:
    book = ledger(*(user(f"u{i}", 100.0 + i) for i in range(5)))
    (start,) = plan_group(book, G1, 115.0, LIMITS)
    assert isinstance(start, StartJob) and [u.user_id for u in start.users] == ["u0", "u1", "u2"]


def test_one_job_at_a_time_per_group_and_groups_are_independent() -> None:
    running = job("j1", G1, ["alice"], IN_PROGRESS, 200.0)
    book = ledger(user("alice", 100.0), user("bob", 150.0), running)
    assert plan_group(book, G1, 1000.0, LIMITS) == [PollJob(running)]
    (start,) = plan_group(book, G2, 1000.0, LIMITS)
    assert isinstance(start, StartJob) and {u.user_id for u in start.users} == {"alice", "bob"}


@pytest.mark.parametrize("status", [STARTING, PENDING, IN_PROGRESS])
def test_every_running_status_is_polled(status: str) -> None:
    running = job("j1", G1, ["alice"], status, 200.0)
    assert plan_group(ledger(user("alice", 100.0), running), G1, 300.0, LIMITS) == [PollJob(running)]


def test_failed_jobs_back_off_doubling_and_then_retry_the_same_users() -> None:
    first = job("j1", G1, ["alice"], FAILED, 200.0, updated=300.0)
    book = ledger(user("alice", 100.0), first)
    (hold,) = plan_group(book, G1, 350.0, LIMITS)
    assert isinstance(hold, Hold) and hold.until == 400.0
    (retry,) = plan_group(book, G1, 400.0, LIMITS)
    assert isinstance(retry, StartJob) and retry.attempt == 2 and [u.user_id for u in retry.users] == ["alice"]
    second = job("j2", G1, ["alice"], FAILED, 400.0, updated=500.0)
    (hold,) = plan_group(ledger(user("alice", 100.0), first, second), G1, 600.0, LIMITS)
    assert isinstance(hold, Hold) and hold.until == 700.0
    assert [backoff_s(n, LIMITS) for n in (1, 2, 3, 4, 5)] == [100, 200, 400, 800, 1000]


def test_a_success_resets_the_backoff() -> None:
    book = ledger(user("bob", 600.0), job("j1", G1, ["alice"], FAILED, 200.0, updated=300.0),
                  job("j2", G1, ["alice"], COMPLETED, 400.0, updated=500.0))  # fmt: skip
    (start,) = plan_group(book, G1, 700.0, LIMITS)
    assert isinstance(start, StartJob) and start.attempt == 1


def test_forgotten_once_every_group_deleted_the_user_and_the_archive_was_purged() -> None:
    alice = user("alice", 100.0)
    g1 = job("j1", G1, ["alice"], COMPLETED, 200.0)
    g2 = job("j2", G2, ["alice"], COMPLETED, 200.0)
    assert plan(ledger(alice, g1, g2), [G1, G2], 300.0, LIMITS, archive=True) == [PurgeArchive(g1), PurgeArchive(g2)]
    purged = [job_update(g1, archive_purged=True), job_update(g2, archive_purged=True)]
    book = ledger(alice, g1, g2)
    for key, value in purged:
        book.apply(*encode((key, value)))
    assert plan(book, [G1, G2], 300.0, LIMITS, archive=True) == [Forget(alice)]
    assert plan(ledger(alice, g1, g2), [G1, G2], 300.0, LIMITS, archive=False) == [Forget(alice)]
    assert plan(ledger(alice, g1), [G1, G2], 300.0, LIMITS, archive=False)[-1] != Forget(alice), "G2 not done"


def test_expiry_of_users_and_of_jobs_nobody_needs_except_each_groups_newest() -> None:
    gone = user("old", 0.0, forgotten_at=100.0)
    j1 = job("j1", G1, ["old"], COMPLETED, 50.0, archive_purged=True)
    j2 = job("j2", G1, ["other"], COMPLETED, 60.0, archive_purged=True)
    steps = plan(ledger(gone, j1, j2), [G1], 5100.0, LIMITS, archive=True)
    assert steps == [Expire(gone.key), Expire(j1.key)], "j2 is the group's newest job: kept"
    assert plan(ledger(gone, j1, j2), [G1], 5099.0, LIMITS, archive=True) == [Expire(j1.key)]


def test_job_names_fit_personalize_rules() -> None:
    long_group = "arn:aws:personalize:us-east-1:123456789012:dataset-group/" + "g" * 80
    name = job_name(long_group, 1_700_000_000.5, ["d1", "d2"])
    assert len(name) <= 63 and name.startswith("forget-ggg") and name.split("-")[2] == "1700000000"
    assert job_name(G1, 1.0, ["d1"]) != job_name(G1, 1.0, ["d2"])


def test_the_completion_time_does_not_move_when_later_steps_update_the_job() -> None:
    """Regression: the archive purge rewrote `updated_at`, moving `last_completed` past the FULL
    training the completion had started, so the scheduler trained a second time."""
    completed = job("j1", G1, ["a"], COMPLETED, 100, 150, completed_at=150.0)
    purged_key, purged = job_update(completed, archive_purged=True, updated_at=400)
    state = ledger(completed)
    state.apply(*encode((purged_key, purged)))
    assert state.jobs["j1"].archive_purged and state.jobs["j1"].updated_at == 400
    assert state.last_completed(G1) == 150.0


def test_a_job_recorded_before_completion_times_existed_falls_back_to_its_update_time() -> None:
    old = job("j0", G1, ["a"], COMPLETED, 100, 120)
    data = old.to_dict()
    del data["completed_at"]
    state = Ledger()
    state.apply(old.key.encode(), json.dumps(data).encode())
    assert state.last_completed(G1) == 120
