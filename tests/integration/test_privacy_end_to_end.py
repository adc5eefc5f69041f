"""Right to be forgotten, end to end: real broker, a real worker process (scheduler inside),
the local Personalize over HTTP, moto for S3.

Users A and B click; A's events and user record reach the local Personalize and the S3
archive. Then ``clickstream-worker privacy forget A`` (the documented command) publishes a
request; more events of A and B follow while the job runs. The worker records the request,
suppresses A's records (dead-lettered with stage ``suppressed``), its scheduler's leader
writes the CSV to S3 and runs CreateDataDeletionJob, purges the archive, marks A forgotten,
and trains a new FULL version (trigger ``data_deletion``). At the end A is gone from the
local Personalize and the archive; everything of B is there, nothing of B was lost; every
event of A is accounted for (delivered before the request, then deleted; or suppressed).

Run twice: with the default (only the forgotten users' records are held back) and with
``pause_ingestion_during_jobs`` (the group's traffic waits in Kafka while the job runs; the
worker stays ready). The audit table and the pause are written to build/test-results.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import unique_name
from tests.helpers import write_result
from tests.integration.scheduler_support import ROLE_ARN, make_lab, wait_status
from tests.integration.worker_support import WorkerProcess, free_port, produce, read_topic, wait_for, write_config

pytestmark = pytest.mark.integration

A, B = "user-forget-me", "user-keep-me"
BEFORE, DURING = 40, 30  # events per user before the request and while the job runs


def _event(user: str, n: int, phase: str) -> tuple[bytes, bytes]:
    value = {"messageId": f"{phase}-{user}-{n}", "userId": user, "anonymousId": f"anon-{user}", "event": "view",
             "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600 + n)),
             "properties": {"productId": f"item-{n % 15}"}}
    return user.encode(), json.dumps(value).encode()


def _identify(user: str) -> tuple[bytes, bytes]:
    return user.encode(), json.dumps({"type": "identify", "userId": user, "traits": {"membership": "gold"}}).encode()


def _archived(s3: Any, bucket: str) -> Counter[str]:
    rows: Counter[str] = Counter()
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix="interactions/").get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
        rows.update(row["USER_ID"] for row in csv.DictReader(io.StringIO(body)))
    return rows


def _pause_from_log(text: str) -> float:
    """Seconds between the worker's "paused" and "resuming" log lines (0 when it never paused)."""
    import datetime

    paused_at = resumed_at = None
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        when = entry.get("timestamp")
        if entry.get("event") == "dataset groups paused for data deletion jobs" and paused_at is None:
            paused_at = datetime.datetime.fromisoformat(when.replace("Z", "+00:00"))
        elif entry.get("event") == "deletion jobs done; resuming" and paused_at is not None:
            resumed_at = datetime.datetime.fromisoformat(when.replace("Z", "+00:00"))
    if paused_at is None:
        return 0.0
    assert resumed_at is not None, "paused and never resumed"
    return round((resumed_at - paused_at).total_seconds(), 3)


def _stored(lab: Any, users_arn: str) -> dict[str, dict[str, int]]:
    events = Counter(e.get("userId") for e in lab.server.events(lab.tracking_id))
    users = Counter(u.get("userId") for u in lab.server.users(users_arn))
    return {user: {"events": events[user], "user_records": users[user]} for user in (A, B)}


@pytest.mark.parametrize("pause", [False, True], ids=["default", "pause_ingestion"])
def test_a_forgotten_user_is_suppressed_deleted_purged_and_the_model_retrained(
    tmp_path: Path, broker: Any, kafka_topic: Any, local_personalize: Any, moto_s3: str, pause: bool
) -> None:
    lab = make_lab(lambda extra_args=(): local_personalize(extra_args=[*extra_args, "--s3-endpoint-url", moto_s3]),
                   with_data=1500)
    cp = lab.control
    users_schema = cp.create_schema(name="users", schema=(Path(__file__).parents[2] / "schemas" / "users.json")
                                    .read_text())["schemaArn"]
    users_arn = cp.create_dataset(name="shop-users", schemaArn=users_schema, datasetGroupArn=lab.group_arn,
                                  datasetType="Users")["datasetArn"]
    wait_status(lambda: cp.describe_dataset(datasetArn=users_arn)["dataset"], "ACTIVE")
    solution = lab.solution("aws-user-personalization")
    first = cp.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    wait_status(lambda: cp.describe_solution_version(solutionVersionArn=first)["solutionVersion"], "ACTIVE", 120)

    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    bucket = f"privacy-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    clicks, users, forget = (kafka_topic(partitions=2, prefix=n) for n in ("clicks", "users", "forget"))
    state = unique_name("privacy-state")
    control = unique_name("control")
    port = free_port()
    config = write_config(
        tmp_path / "worker.yaml", broker.bootstrap, lab.server.endpoint_url,
        [{"name": clicks, "dataset_type": "interactions", "tracking_id": lab.tracking_id, "dataset_group": "shop"},
         {"name": users, "dataset_type": "users", "dataset_arn": users_arn}],
        group_id=unique_name("g"), http_port=port,
        extra={
            "archive": {"bucket": bucket, "flush_seconds": 0.5, "s3_endpoint_url": moto_s3, "region": "us-east-1"},
            "privacy": {"deletion_topic": forget, "state_topic": state, "dataset_groups": [lab.group_arn],
                        "propagation_s": 1.0, "pause_ingestion_during_jobs": pause,
                        "jobs": {"bucket": bucket, "role_arn": ROLE_ARN, "batch_wait_s": 0.5,
                                 "s3_endpoint_url": moto_s3, "region": "us-east-1"}},
            "scheduler": {"enabled": True, "tick_interval_s": 0.5, "control_topic": control, "group_id": control,
                          "personalize_endpoint_url": lab.server.endpoint_url, "kafka_timeout_s": 5,
                          "solutions": [{"solution_arn": solution, "full": None, "min_interval_s": 0,
                                         "max_trainings_per_day": 10}]},
        },
    )
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        worker.wait_ready(60)
        ready = worker.probe("/readyz")[1]
        assert ready["privacy_ledger_read"] is True, ready

        # 1. Both users click and identify; everything reaches Personalize and the archive.
        produce(broker.bootstrap, clicks, [_event(u, n, "before") for n in range(BEFORE) for u in (A, B)])
        produce(broker.bootstrap, users, [_identify(A), _identify(B)])
        wait_for(lambda: _stored(lab, users_arn) == {u: {"events": BEFORE, "user_records": 1} for u in (A, B)}, 60,
                 message="the first events and user records are stored")
        wait_for(lambda: _archived(s3, bucket) == {A: BEFORE, B: BEFORE}, 30, message="the archive has them")
        before = _stored(lab, users_arn)

        # 2. The documented command publishes the request; more events of both users follow at once.
        forgot = subprocess.run([sys.executable, "-m", "worker.cli", "privacy", "forget", A, "--config", str(config)],
                                capture_output=True, text=True, timeout=60, check=False)
        assert forgot.returncode == 0, forgot.stderr
        assert json.loads(forgot.stdout)["published"] == 1
        requested = time.monotonic()
        wait_for(lambda: worker.metric("clickstream_privacy_requests_total", outcome="recorded") == 1, 30,
                 message="the request is recorded in the state topic")
        produce(broker.bootstrap, clicks, [_event(u, n, "during") for n in range(DURING) for u in (A, B)])
        produce(broker.bootstrap, users, [_identify(A)])

        # 3. Paused or not, the worker stays ready; the job runs and completes; A is forgotten.
        ready_throughout = True
        while True:
            jobs = lab.server.data_deletions(lab.group_arn)
            done = [j for j in jobs if j.get("status") == "COMPLETED"]
            status = json.loads(subprocess.run(
                [sys.executable, "-m", "worker.cli", "privacy", "status", "--json", "--config", str(config)],
                capture_output=True, text=True, timeout=60, check=True).stdout)
            if done and status["users"].get("forgotten") == 1:
                break
            ready_throughout = ready_throughout and worker.probe("/readyz")[0] == 200
            assert time.monotonic() - requested < 120, (jobs, status, worker.logs())
            time.sleep(0.5)
        assert ready_throughout, "readiness stays healthy while a deletion job runs"
        assert len(done) == 1 and done[0]["status"] == "COMPLETED"
        group = status["dataset_groups"][0]
        assert group["last_completed"]["users"] == 1 and group["users_not_yet_deleted"] == 0

        # 4. B's events of the job's time arrive (with the pause: after it); the archive is purged of A;
        #    a FULL version is trained after the deletion.
        wait_for(lambda: _stored(lab, users_arn)[B]["events"] == BEFORE + DURING, 60,
                 message="every event of B is delivered")
        wait_for(lambda: A not in _archived(s3, bucket), 30, message="the archive is purged of A")
        wait_for(lambda: _archived(s3, bucket)[B] == BEFORE + DURING, 30, message="the archive has all of B")

        def retrained() -> bool:
            versions = cp.list_solution_versions(solutionArn=solution)["solutionVersions"]
            return any(v["solutionVersionArn"] != first and v.get("trainingMode", "FULL") == "FULL"
                       for v in versions)
        wait_for(retrained, 60, message="a FULL version is trained after the deletion")
        time.sleep(2.0)  # four scheduler ticks: the completion must not start a second training
        versions = cp.list_solution_versions(solutionArn=solution)["solutionVersions"]
        assert len(versions) == 2, versions

        after = _stored(lab, users_arn)
        assert worker.metric("clickstream_privacy_ingestion_paused", dataset_group="shop") == 0, "resumed"
        assert worker.metric("clickstream_privacy_users", state="forgotten") == 1
        dead = read_topic(broker.bootstrap, f"{clicks}.dlq", expected=DURING, timeout_s=30)
        dead_users = read_topic(broker.bootstrap, f"{users}.dlq", expected=1, timeout_s=30)

        def suppressed_of(records: list[Any]) -> Counter[str]:
            stage = [r for r in records if dict(r.headers).get("__connect.errors.stage") == b"suppressed"]
            return Counter(json.loads(r.value)["userId"] for r in stage)

        suppressed = suppressed_of(dead)
        suppressed_users = suppressed_of(dead_users)
    finally:
        worker.kill()
    log_text = worker.log_path.read_text(errors="replace")
    paused_s = _pause_from_log(log_text)

    # A: nothing left anywhere; every event accounted for. B: complete, nothing suppressed.
    assert after[A] == {"events": 0, "user_records": 0}
    assert after[B] == {"events": BEFORE + DURING, "user_records": 1}
    assert suppressed[B] == 0 and suppressed[A] == DURING, suppressed
    assert suppressed_users == Counter({A: 1})
    assert before[A]["events"] + suppressed[A] == BEFORE + DURING
    assert A not in log_text, "no raw user ID in the worker's logs (redaction is on by default)"
    if pause:
        assert paused_s > 0, "the group's ingestion was paused while the job ran"
    else:
        assert paused_s == 0
    rows = [{"user": label, "events_produced": BEFORE + DURING, "user_records_produced": 2 if label == "A" else 1,
             "stored_before_deletion": before[user]["events"], "suppressed": suppressed[user] + suppressed_users[user],
             "deleted": before[user]["events"] + before[user]["user_records"] - after[user]["events"]
             - after[user]["user_records"] if label == "A" else 0,
             "remaining": after[user]["events"] + after[user]["user_records"]}
            for label, user in (("A", A), ("B", B))]
    write_result(f"privacy_end_to_end_{'pause' if pause else 'default'}",
                 {"pause_ingestion_during_jobs": pause, "paused_s": paused_s, "users": rows})
