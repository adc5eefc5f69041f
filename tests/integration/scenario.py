"""The end-to-end scenario used by the pipeline tests: one topic, one local Personalize, N workers.

Every scenario ends with the same audit: each valid event is stored exactly once (by eventId)
in the local Personalize, each invalid one is in the DLQ with its original bytes and Kafka
Connect error headers, and the consumer group's committed offsets cover everything.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from tests.integration.worker_support import (
    Produced,
    WorkerProcess,
    commit_lag,
    free_port,
    make_events,
    produce,
    read_topic,
    wait_for,
    write_config,
)

TRACKING_ID = "11111111-2222-3333-4444-555555555555"
ITEMS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/demo/ITEMS"
USERS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/demo/USERS"


class Scenario:
    """One topic, one local Personalize, N workers sharing a group."""

    def __init__(self, tmp_path: Path, broker: Any, kafka_topic: Any, local_personalize: Any,
                 *, partitions: int = 4, delivery: dict[str, Any] | None = None) -> None:
        self.tmp = tmp_path
        self.bootstrap = broker.bootstrap
        self.topic = kafka_topic(partitions=partitions, prefix="clicks")
        self.lp = local_personalize(trackers=[TRACKING_ID], datasets=[ITEMS_ARN, USERS_ARN])
        self.group = f"g-{uuid.uuid4().hex[:8]}"
        self.delivery = delivery
        self.workers: list[WorkerProcess] = []
        self.run_id = uuid.uuid4().hex[:8]

    def worker(self, extra_topics: list[dict[str, Any]] | None = None, *, kafka: dict[str, Any] | None = None,
               env: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> WorkerProcess:
        n = len(self.workers)
        config = write_config(
            self.tmp / f"worker{n}.yaml", self.bootstrap, self.lp.endpoint_url,
            [{"name": self.topic, "dataset_type": "interactions", "tracking_id": TRACKING_ID},
             *(extra_topics or [])],
            group_id=self.group, http_port=free_port(), delivery=self.delivery, kafka=kafka, extra=extra,
        )
        process = WorkerProcess(config, self.tmp / f"worker{n}.log", env=env)
        self.workers.append(process)
        return process

    def produce(self, n: int, bad_fraction: float = 0.05, seed: int = 7) -> Produced:
        records, produced = make_events(n, bad_fraction, seed, self.run_id)
        produce(self.bootstrap, self.topic, records)
        return produced

    def stored_ids(self) -> list[str]:
        return [e["eventId"] for e in self.lp.events(TRACKING_ID)]

    def wait_delivered(self, produced: Produced, timeout_s: float = 120.0) -> None:
        want = set(produced.good_ids)

        def done() -> bool:
            return want.issubset(self.stored_ids())

        try:
            wait_for(done, timeout_s, interval_s=0.5, message="good events delivered")
        except AssertionError as exc:
            missing = len(want - set(self.stored_ids()))
            logs = "\n".join(w.logs()[-3000:] for w in self.workers)
            raise AssertionError(f"{missing} of {len(want)} events missing; stats={self.lp.stats()}\n{logs}") from exc

    def audit(self, produced: Produced, stages: tuple[str, ...] = ("mapping", "validation")) -> dict[str, Any]:
        """Exactly-once by eventId in Personalize; every bad record in the DLQ with headers."""
        ids = self.stored_ids()
        counts = Counter(ids)
        assert not [i for i, c in counts.items() if c > 1], "an eventId was stored twice"
        assert set(ids) == set(produced.good_ids)
        dlq = read_topic(self.bootstrap, f"{self.topic}.dlq", produced.bad_count, timeout_s=60)
        # At-least-once: a DLQ record may appear twice after a crash, never zero times.
        dlq_values = Counter(r.value for r in dlq)
        for value, n in Counter(produced.bad_values).items():
            assert dlq_values[value] >= n, f"bad record missing from DLQ: {value[:80]!r}"
        for record in dlq:
            headers = dict(record.headers)
            assert headers["__connect.errors.topic"].decode() == self.topic
            assert int(headers["__connect.errors.partition"]) >= 0
            assert int(headers["__connect.errors.offset"]) >= 0
            assert headers["__connect.errors.stage"].decode() in stages
            assert headers["__connect.errors.exception.class.name"]
            assert headers["__connect.errors.exception.message"]
            assert headers["app"] == b"test", "original headers are kept"
        return {"stored": len(ids), "dlq": len(dlq), "stats": self.lp.stats()}

    def committed_everything(self) -> bool:
        lagging = self.commit_lag()
        assert not lagging, f"committed offsets behind the end: {lagging}"
        return True

    def commit_lag(self) -> dict[int, tuple[int, int]]:
        """Partitions whose committed offset is behind the partition end: {partition: (committed, end)}."""
        return commit_lag(self.bootstrap, self.group, self.topic)

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.kill()
