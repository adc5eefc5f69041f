"""Data deletion rules of the local Personalize: what is removed (pure `erasure`), the jobs' queue,
limits and input files (pure `data_deletion`), and the stores' erasure on a temp dir (no server)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from clickstream_devkit.personalize.action_store import ActionInteractionRow
from clickstream_devkit.personalize.control import bulk_store
from clickstream_devkit.personalize.control import data_deletion as dd
from clickstream_devkit.personalize.control import resource as kinds
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.bulk_store import BulkInteraction
from clickstream_devkit.personalize.control.deletion import blocker, cascade
from clickstream_devkit.personalize.control.resource import Resource
from clickstream_devkit.personalize.control.training_data import session_links, user_key
from clickstream_devkit.personalize.erasure import ErasureCounts, StoredRow, owners, select
from clickstream_devkit.personalize.store import EventRow, Store

ARN = "arn:aws:personalize:us-east-1:123456789012"
GROUP = f"{ARN}:dataset-group/g"
OTHER_GROUP = f"{ARN}:dataset-group/other"
INTERACTIONS = f"{ARN}:dataset/g/INTERACTIONS"
USERS = f"{ARN}:dataset/g/USERS"


def stored(key: int, user: str | None, session: str, at: float = 1.0) -> StoredRow:
    return StoredRow(key, user, session, at)


# -- erasure: whose a row is, which rows go ------------------------------------------------------------


def test_owners_follow_the_anonymous_session_rule() -> None:
    rows = [
        stored(1, None, "s1"),  # anonymous before the session names its user: still the user's
        stored(2, "ann", "s1"),
        stored(3, None, "s1"),
        stored(4, "bob", "s1"),  # a second user in the session keeps only their own rows
        stored(5, None, "s2"),  # a session that never names a user is its own
        stored(6, "bob", "s3"),
    ]
    assert owners(rows) == ["ann", "ann", "ann", "bob", "s2", "bob"]


def test_owners_match_what_the_training_reads() -> None:
    """The same attribution as `training_data.user_key`, on random sessions (seeded)."""
    rng = random.Random(7)
    for _ in range(50):
        rows = [stored(i, rng.choice([None, None, "a", "b", "c"]), rng.choice(["s1", "s2", "s3", "s4"]))
                for i in range(rng.randint(0, 30))]  # fmt: skip
        events = [(r.user_id, r.session_id, "i", "click", None, 0.0) for r in rows]
        links = session_links(events)
        assert owners(rows) == [user_key(r.user_id, r.session_id, links) for r in rows]


def test_select_removes_up_to_the_cutoff_and_counts_the_rest() -> None:
    rows = [stored(1, "ann", "s1", 1.0), stored(2, None, "s1", 2.0), stored(3, "ann", "s9", 3.0),
            stored(4, "bob", "s2", 1.0), stored(5, None, "s5", 1.0)]  # fmt: skip
    assert select(rows, frozenset({"ann"}), cutoff=2.0) == select(rows, frozenset({"ann", "zed"}), 2.0)
    chosen = select(rows, frozenset({"ann"}), cutoff=2.0)
    assert (chosen.delete, chosen.kept) == ((1, 2), 1)  # the cutoff itself is included
    assert select(rows, frozenset({"s5"}), 9.0).delete == (5,)  # an anonymous session is a user of its own
    assert select(rows, frozenset(), 9.0).delete == ()
    assert select([], frozenset({"ann"}), 9.0).kept == 0


def test_erasure_counts() -> None:
    total = ErasureCounts(events=3, users=1).plus(ErasureCounts(action_interactions=2, bulk_interactions=4,
                                                                bulk_users=1, kept=5))  # fmt: skip
    assert total.total == 11
    assert total.to_dict() == {"events": 3, "actionInteractions": 2, "users": 1, "bulkInteractions": 4,
                               "bulkUsers": 1, "keptAfterCutoff": 5}  # fmt: skip


# -- the input file -------------------------------------------------------------------------------------


def test_user_ids_from_one_or_more_files() -> None:
    files = [("a.csv", b"\xef\xbb\xbfUSER_ID\nu1\n\nu2\nu1\n"), ("b.csv", b" user_id \r\nu3\r\n"),
             ("c.csv", b"USER_ID\n")]  # fmt: skip
    assert dd.parse_user_ids(files) == frozenset({"u1", "u2", "u3"})
    assert dd.parse_user_ids([("q.csv", b'USER_ID\n"a,b"\n')]) == frozenset({"a,b"})  # quoting is CSV's
    assert dd.parse_user_ids([("m.csv", b"USER_ID\n" + b"x" * 256 + b"\n")]) == frozenset({"x" * 256})


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        ([], "No data deletion input file"),
        ([("a.csv", b"")], "a.csv: the file is empty"),
        ([("a.csv", b"USER\nu1\n")], "must be a single USER_ID column"),
        ([("a.csv", b"USER_ID,ITEM_ID\nu1,i1\n")], "must be a single USER_ID column"),
        ([("a.csv", b"USER_ID\nu1\nu2,x\n")], "a.csv: line 3 has 2 values"),
        ([("a.csv", b"USER_ID\n" + b"x" * 257 + b"\n")], "line 2: a USER_ID has at most 256"),
        ([("ok.csv", b"USER_ID\nu\n"), ("b.csv", b"USER_ID\n\xff\n")], "b.csv: the file is not UTF-8"),
        ([("a.csv", b'USER_ID\n"open\n')], "a.csv: line 2 is not valid CSV"),
    ],
)
def test_input_failures_name_the_file_and_line(files: list[tuple[str, bytes]], needle: str) -> None:
    with pytest.raises(dd.DeletionFailure) as caught:
        dd.parse_user_ids(files)
    assert needle in caught.value.reason


def test_input_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert dd.MAX_INPUT_BYTES == 100 * 1024 * 1024
    monkeypatch.setattr(dd, "MAX_INPUT_BYTES", 20)
    assert dd.parse_user_ids([("a", b"USER_ID\nu1\n"), ("b", b"USER_ID\n")]) == frozenset({"u1"})  # 19 bytes
    with pytest.raises(dd.DeletionFailure, match="21 bytes; a data deletion job reads at most 100 MB"):
        dd.parse_user_ids([("a", b"USER_ID\nu1\n"), ("b", b"USER_ID\nx\n")])


# -- the queue and the limits ------------------------------------------------------------------------------


def job(name: str, status: str, created: float, group: str = GROUP) -> Resource:
    return Resource(f"{ARN}:data-deletion-job/{name}", kinds.DATA_DELETION_JOB, group, status, created, created,
                    {"jobName": name})  # fmt: skip


def test_one_job_per_group_at_a_time_oldest_first() -> None:
    first, second, third = job("a", dd.PENDING, 1.0), job("b", dd.PENDING, 2.0), job("c", dd.PENDING, 2.0)
    elsewhere = job("x", dd.IN_PROGRESS, 0.0, OTHER_GROUP)
    jobs = [third, second, first, elsewhere]
    assert [dd.may_start(j, jobs) for j in (first, second, third)] == [True, False, False]
    first.status = dd.IN_PROGRESS
    assert not dd.may_start(second, jobs) and not dd.may_start(first, jobs)  # only a PENDING job starts
    first.status = dd.COMPLETED
    assert [dd.may_start(j, jobs) for j in (second, third)] == [True, False]  # same time: the ARN decides
    second.status = dd.FAILED
    assert dd.may_start(third, jobs)
    assert [j.doc["jobName"] for j in dd.waiting_in_group(jobs, GROUP)] == ["c"]


def test_pending_jobs_are_counted_per_group() -> None:
    jobs = [job(f"p{i}", dd.PENDING, i) for i in range(4)] + [job("r", dd.IN_PROGRESS, 9.0),
                                                              job("o", dd.PENDING, 1.0, OTHER_GROUP)]  # fmt: skip
    jobs.append(Resource(f"{ARN}:dataset-import-job/i", kinds.IMPORT_JOB, GROUP, "PENDING", 0.0, 0.0, {}))
    assert dd.pending_in_group(jobs, GROUP) == 4
    assert dd.pending_in_group(jobs, OTHER_GROUP) == 1


def res(arn: str, kind: str, parent: str | None, status: str | None, created: float, updated: float,
        **doc: Any) -> Resource:  # fmt: skip
    return Resource(arn, kind, parent, status, created, updated, dict(doc))


def test_overlapping_imports_and_trainings_of_the_group() -> None:
    deletion = job("d", dd.COMPLETED, 10.0)
    resources = [
        deletion,
        res(INTERACTIONS, kinds.DATASET, GROUP, st.ACTIVE, 0.0, 0.0),
        res(f"{ARN}:dataset/other/INTERACTIONS", kinds.DATASET, OTHER_GROUP, st.ACTIVE, 0.0, 0.0),
        res(f"{ARN}:dataset-import-job/before", kinds.IMPORT_JOB, INTERACTIONS, st.ACTIVE, 1.0, 5.0),
        res(f"{ARN}:dataset-import-job/across", kinds.IMPORT_JOB, INTERACTIONS, st.ACTIVE, 8.0, 12.0),
        res(f"{ARN}:dataset-import-job/running", kinds.IMPORT_JOB, INTERACTIONS, st.IN_PROGRESS, 2.0, 2.0),
        res(f"{ARN}:dataset-import-job/after", kinds.IMPORT_JOB, INTERACTIONS, st.ACTIVE, 30.0, 31.0),
        res(f"{ARN}:dataset-import-job/elsewhere", kinds.IMPORT_JOB, f"{ARN}:dataset/other/INTERACTIONS",
            st.IN_PROGRESS, 11.0, 11.0),
        res(f"{ARN}:solution/s/1", kinds.SOLUTION_VERSION, f"{ARN}:solution/s", st.FAILED, 11.0, 13.0,
            datasetGroupArn=GROUP),
        res(f"{ARN}:solution/s/2", kinds.SOLUTION_VERSION, f"{ARN}:solution/s", st.ACTIVE, 0.0, 9.0,
            datasetGroupArn=GROUP),
    ]  # fmt: skip
    assert dd.overlapping(deletion, resources, until=20.0) == [
        f"import job {ARN}:dataset-import-job/running (CREATE IN_PROGRESS) ran during the data deletion job",
        f"import job {ARN}:dataset-import-job/across (ACTIVE) ran during the data deletion job",
        f"training {ARN}:solution/s/1 (CREATE FAILED) ran during the data deletion job",
    ]


def test_bulk_rows_of_imports_finished_by_the_cutoff_are_the_jobs() -> None:
    resources = [
        res(f"{ARN}:dataset-import-job/a", kinds.IMPORT_JOB, INTERACTIONS, st.ACTIVE, 0.0, 4.0),
        res(f"{ARN}:dataset-import-job/b", kinds.IMPORT_JOB, INTERACTIONS, st.ACTIVE, 0.0, 6.0),
        res(f"{ARN}:dataset-import-job/c", kinds.IMPORT_JOB, INTERACTIONS, st.IN_PROGRESS, 0.0, 1.0),
        res(f"{ARN}:dataset-import-job/d", kinds.IMPORT_JOB, USERS, st.ACTIVE, 0.0, 5.0),
        res(f"{ARN}:dataset-import-job/e", kinds.IMPORT_JOB, f"{ARN}:dataset/x/USERS", st.ACTIVE, 0.0, 1.0),
    ]
    assert dd.bulk_jobs_before(resources, [INTERACTIONS, USERS], cutoff=5.0) == {
        f"{ARN}:dataset-import-job/a", f"{ARN}:dataset-import-job/d"}  # fmt: skip


def test_a_running_deletion_job_holds_its_group_and_its_datasets() -> None:
    group = res(GROUP, kinds.DATASET_GROUP, None, st.ACTIVE, 0.0, 0.0)
    dataset = res(INTERACTIONS, kinds.DATASET, GROUP, st.ACTIVE, 0.0, 0.0, datasetType="Interactions")
    deletion = job("d", dd.PENDING, 1.0)
    elsewhere = job("e", dd.PENDING, 1.0, OTHER_GROUP)
    for status in (dd.PENDING, dd.IN_PROGRESS):
        deletion.status = status
        held = f"data deletion job {deletion.arn} ({status})"
        assert held in (blocker(group, [group, deletion, elsewhere]) or "")
        assert held in (blocker(dataset, [group, dataset, deletion, elsewhere]) or "")
    for status in (dd.COMPLETED, dd.FAILED):
        deletion.status = status
        assert blocker(group, [group, deletion, elsewhere]) is None
        assert blocker(dataset, [group, dataset, deletion, elsewhere]) is None
    assert [r.arn for r in cascade(group, [group, dataset, deletion, elsewhere])] == [deletion.arn]


# -- the stores ------------------------------------------------------------------------------------------------


def event(event_id: str, user: str | None, session: str) -> EventRow:
    return EventRow(event_id, user, session, f"item-{event_id}", "click", None, 1.7e9, None, None, None, None)


def test_store_erases_events_users_and_action_interactions(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.insert_events("t", [event("e1", "ann", "s1"), event("e2", None, "s1"), event("e3", "bob", "s2")], 1.0)
    store.insert_events("t", [event("e4", "ann", "s1")], 5.0)  # after the cutoff
    store.register_dataset(USERS, "Users", GROUP)
    store.upsert_users(USERS, [("ann", None), ("bob", None)])
    assert store.erase_events("t", frozenset({"ann"}), cutoff=2.0) == (2, 1)
    assert [e["eventId"] for e in store.list_events("t", 10, 0)] == ["e3", "e4"]
    assert store.erase_events("t", frozenset({"ann"}), cutoff=2.0) == (0, 1)  # idempotent
    # The erased rows are forgotten by the dedupe memory: the same event sent again is new data.
    assert store.insert_events("t", [event("e1", "ann", "s1")], 6.0).stored == 1
    assert store.erase_users(USERS, frozenset({"ann", "zed"}), cutoff=float("inf")) == (1, 0)
    assert store.erase_users(USERS, frozenset({"bob"}), cutoff=0.0) == (0, 1)  # written after the cutoff
    assert [u["userId"] for u in store.list_catalog("users", None, 10, 0)] == ["bob"]

    tables = store.actions
    tables.register_tracker("at", None, GROUP)
    rows = [ActionInteractionRow(f"a{i}", user, "s1", "x", "Taken", 1.7e9, None, None, None)
            for i, user in enumerate(["ann", None, "bob"])]  # fmt: skip
    tables.insert_interactions("at", rows, 1.0)
    assert tables.erase("at", frozenset({"ann"}), cutoff=1.0) == (2, 0)
    assert [r["eventId"] for r in tables.list_interactions("at", 10, 0)] == ["a2"]
    assert tables.insert_interactions("at", rows[:1], 2.0) == 1
    store.close()


def test_bulk_store_erases_rows_of_the_listed_jobs_only(tmp_path: Path) -> None:
    path = bulk_store.init(tmp_path)
    row = BulkInteraction("ann", "i1", 1.0, "click", None)
    bob = BulkInteraction("bob", "i1", 1.0, None, None)
    bulk_store.write_interactions(path, INTERACTIONS, "job-1", [row, row, bob], full=True)
    bulk_store.write_interactions(path, INTERACTIONS, "job-2", [row], full=False)  # still running at the cutoff
    bulk_store.write_records(path, USERS, "job-3", [("ann", {"USER_ID": "ann"}), ("bob", {"USER_ID": "bob"})],
                             full=True)  # fmt: skip
    erased = bulk_store.erase_users(path, INTERACTIONS, USERS, frozenset({"ann"}), frozenset({"job-1", "job-3"}))
    assert (erased.interactions, erased.users, erased.kept) == (2, 1, 1)
    assert [r.user_id for r in bulk_store.read_interactions(path, INTERACTIONS)] == ["bob", "ann"]
    assert set(bulk_store.read_records(path, USERS)) == {"bob"}
    again = bulk_store.erase_users(path, INTERACTIONS, None, frozenset({"ann"}), frozenset({"job-1", "job-2"}))
    assert (again.interactions, again.users, again.kept) == (1, 0, 0)
    assert bulk_store.counts(path) == {INTERACTIONS: 1, USERS: 1}
