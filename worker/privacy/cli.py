"""``clickstream-worker privacy status`` and ``privacy forget USER_ID...``.

``forget`` publishes deletion requests to ``privacy.deletion_topic`` (what an application
would do); the workers record them, suppress the users' records and the scheduler's leader
deletes them. ``status`` reads the state topic: users by state, and per dataset group the
running job, the last completed one and the failures. Neither prints a user ID it did not
receive on its command line; the ledger holds digests.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from typing import Any, TextIO

from kafka import KafkaProducer

from worker.config import ConfigError, WorkerSettings, load_settings
from worker.config.privacy import PrivacySettings
from worker.privacy.ledger import FAILED, JobEntry, Ledger
from worker.privacy.planner import group_name
from worker.privacy.state_topic import read_ledger

EXIT_CONFIG = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="privacy_command", required=True)
    status = sub.add_parser("status", help="deletion requests and jobs, from the privacy state topic")
    status.add_argument("--config", "-c", help="YAML settings file (default: $WORKER_CONFIG)")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    forget = sub.add_parser("forget", help="publish deletion requests for these users")
    forget.add_argument("user_ids", nargs="+", metavar="USER_ID")
    forget.add_argument("--config", "-c", help="YAML settings file (default: $WORKER_CONFIG)")


def _load(args: argparse.Namespace, err: TextIO) -> tuple[WorkerSettings, PrivacySettings] | None:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"clickstream-worker: {exc}", file=err)
        return None
    if settings.privacy is None:
        print("clickstream-worker: no privacy section in the configuration; fix: add privacy.deletion_topic and "
              "privacy.dataset_groups (see `clickstream-worker config reference`)", file=err)  # fmt: skip
        return None
    return settings, settings.privacy


def main(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    loaded = _load(args, err)
    if loaded is None:
        return EXIT_CONFIG
    settings, privacy = loaded
    if args.privacy_command == "forget":
        return _forget(settings, privacy, args.user_ids, out, err)
    ledger = read_ledger(settings.kafka.client_config(), privacy.state_topic)
    doc = status_document(ledger, privacy, time.time())
    print(json.dumps(doc, indent=2) if args.json else render_status(doc), file=out)
    return 0


def _forget(settings: WorkerSettings, privacy: PrivacySettings, users: list[str], out: TextIO, err: TextIO) -> int:
    bad = [u for u in users if not 1 <= len(u) <= 256]
    if bad:
        print(f"clickstream-worker: {len(bad)} user ID(s) longer than 256 characters or empty; nothing published",
              file=err)  # fmt: skip
        return EXIT_CONFIG
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    producer = KafkaProducer(**settings.kafka.client_config(), acks="all", enable_idempotence=True)
    try:
        futures = [
            producer.send(privacy.deletion_topic, key=u.encode(), value=json.dumps({"userId": u, "requestedAt": now})
                          .encode())
            for u in users
        ]  # fmt: skip
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close(timeout=10)
    print(json.dumps({"published": len(users), "topic": privacy.deletion_topic, "requested_at": now}), file=out)
    return 0


def _job(job: JobEntry | None) -> dict[str, Any] | None:
    if job is None:
        return None
    return {"name": job.name, "status": job.status, "users": len(job.digests), "created_at": job.created_at,
            "updated_at": job.updated_at, "attempt": job.attempt, "failure": job.failure,
            "archive_purged": job.archive_purged}  # fmt: skip


def status_document(ledger: Ledger, privacy: PrivacySettings, now: float) -> dict[str, Any]:
    """What `status` shows (pure): counts by state and each group's jobs."""
    groups = []
    for group in privacy.dataset_groups:
        jobs = ledger.jobs_of(group)
        completed = [j for j in jobs if j.status == "COMPLETED"]
        failed = [j for j in jobs if j.status == FAILED]
        pending = [e for e in ledger.users.values()
                   if e.user_id is not None and e.forgotten_at is None
                   and ledger.covered(group, e) is None]  # fmt: skip
        groups.append({
            "dataset_group_arn": group,
            "running": _job(ledger.running_job(group)),
            "last_completed": _job(completed[-1] if completed else None),
            "failed_jobs": len(failed),
            "users_not_yet_deleted": len(pending),
        })  # fmt: skip
    return {
        "state_topic": privacy.state_topic,
        "users": ledger.counts(privacy.dataset_groups, now, privacy.suppress_for_s),
        "dataset_groups": groups,
        "unreadable_records": ledger.unreadable,
    }


def render_status(doc: dict[str, Any]) -> str:
    lines = [f"privacy state topic {doc['state_topic']}",
             "users: " + ", ".join(f"{k} {v}" for k, v in doc["users"].items())]  # fmt: skip
    for g in doc["dataset_groups"]:
        lines.append(f"dataset group {group_name(g['dataset_group_arn'])}: {g['users_not_yet_deleted']} user(s) "
                     f"not yet deleted, {g['failed_jobs']} failed job(s)")  # fmt: skip
        for label in ("running", "last_completed"):
            job = g[label]
            if job is not None:
                when = datetime.datetime.fromtimestamp(job["updated_at"], datetime.UTC).isoformat(timespec="seconds")
                extra = f", failure: {job['failure']}" if job["failure"] else ""
                lines.append(f"  {label.replace('_', ' ')}: {job['name']} {job['status']} ({job['users']} users, "
                             f"attempt {job['attempt']}, updated {when}{extra})")  # fmt: skip
    if doc["unreadable_records"]:
        lines.append(f"unreadable records in the state topic: {doc['unreadable_records']}")
    return "\n".join(lines)
