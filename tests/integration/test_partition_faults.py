"""A failure of one partition never takes down the worker or the group.

Two replicas run without the zstd codec (see codec_block/sitecustomize.py) while a
librdkafka producer writes zstd batches to partition 0 and plain batches to the other
partitions. Neither replica may die; the owner of partition 0 pauses it and reports it
(one error log naming topic, partition, offset, the exception and the fix; the stalled and
fetch-error metrics; /readyz failing with the partition named) while partitions 1-3 are
delivered in full, and nothing is committed past the failing batch. When the codec comes
back, the partition resumes by itself and every event is stored exactly once.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest

from tests.integration.scenario import Scenario
from tests.integration.worker_support import WorkerProcess, make_events, wait_for

pytestmark = pytest.mark.integration

CODEC_BLOCK_DIR = Path(__file__).resolve().parent / "codec_block"


def _produce_to_partition(bootstrap: str, topic: str, partition: int, values: list[bytes], codec: str) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "compression.codec": codec,
                                         "linger.ms": 200, "acks": "all"})
    try:
        for value in values:
            producer.produce(topic, value=value, partition=partition, headers=[("app", b"test")])
        assert producer.flush(30) == 0
    finally:
        producer.close()


def _error_lines(worker: WorkerProcess) -> list[dict[str, Any]]:
    lines = []
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event", "").startswith("partition paused"):
                lines.append(entry)
    return lines


def test_a_partition_that_cannot_be_decoded_is_paused_and_the_rest_flows(
    tmp_path: Path, broker: Any, kafka_topic: Any, local_personalize: Any
) -> None:
    scenario = Scenario(tmp_path, broker, kafka_topic, local_personalize, partitions=4)
    flag = tmp_path / "block-zstd"
    flag.touch()
    env = {"PYTHONPATH": str(CODEC_BLOCK_DIR), "CLICKSTREAM_TEST_BLOCK_ZSTD_FLAG": str(flag)}
    kafka = {"partition_retry_s": 1.0, "stall_after_s": 3.0}
    records, produced = make_events(400, 0.0, seed=11, run_id=scenario.run_id)
    values = [value for _key, value in records]
    poisoned, plain = values[:100], values[100:]
    _produce_to_partition(scenario.bootstrap, scenario.topic, 0, poisoned, "zstd")
    for p in (1, 2, 3):
        _produce_to_partition(scenario.bootstrap, scenario.topic, p, plain[(p - 1) * 100:p * 100], "none")
    poisoned_ids = {json.loads(v)["messageId"] for v in poisoned}
    plain_ids = set(produced.good_ids) - poisoned_ids
    workers = [scenario.worker(kafka=kafka, env=env).start() for _ in range(2)]
    try:
        wait_for(lambda: plain_ids <= set(scenario.stored_ids()), 90, message="partitions 1-3 delivered")
        wait_for(lambda: any(_error_lines(w) for w in workers), 30, message="the poisoned partition reported")
        assert not poisoned_ids & set(scenario.stored_ids())

        # More traffic on the healthy partitions keeps flowing while partition 0 is paused.
        more, more_produced = make_events(60, 0.0, seed=12, run_id=scenario.run_id + "b")
        _produce_to_partition(scenario.bootstrap, scenario.topic, 2, [v for _k, v in more], "none")
        wait_for(lambda: set(more_produced.good_ids) <= set(scenario.stored_ids()), 60,
                 message="new events on a healthy partition delivered meanwhile")

        owner = next(w for w in workers if _error_lines(w))
        errors = _error_lines(owner)
        assert len(errors) == 1, errors  # one error line, not one per retry
        error = errors[0]
        assert error["level"] == "error"
        assert (error["topic"], error["partition"], error["offset"]) == (scenario.topic, 0, 0)
        assert error["error_class"] == "UnsupportedCodecError"
        assert "zstandard" in error["fix"]
        wait_for(lambda: owner.metric("clickstream_partition_stalled", topic=scenario.topic, partition="0") == 1,
                 15, message="stalled metric")
        assert owner.metric("clickstream_partition_fetch_error", topic=scenario.topic, partition="0") == 1
        status, body = owner.probe("/readyz")
        assert status == 503
        assert f"{scenario.topic}-0" in body["partition_errors"]
        assert "UnsupportedCodecError" in body["partition_errors"][f"{scenario.topic}-0"]
        # Nothing committed past the failing batch; everything else committed to the end.
        wait_for(lambda: set(scenario.commit_lag()) == {0}, 15, message="healthy partitions committed to the end")
        assert scenario.commit_lag()[0] == (0, 100)
        assert all(w.proc is not None and w.proc.poll() is None for w in workers), "a replica died"

        # The cause goes away: the partition resumes by itself, no restart.
        flag.unlink()
        wait_for(lambda: poisoned_ids <= set(scenario.stored_ids()), 90, message="partition 0 resumed")
        wait_for(lambda: owner.probe("/readyz")[0] == 200, 30, message="ready again")
        assert owner.metric("clickstream_partition_fetch_error", topic=scenario.topic, partition="0") == 0
        wait_for(lambda: not scenario.commit_lag(), 30, message="partition 0 committed to its end")
        counts = Counter(scenario.stored_ids())
        assert set(counts) == set(produced.good_ids) | set(more_produced.good_ids)
        assert max(counts.values()) == 1
        for worker in workers:
            assert worker.terminate() == 0
    finally:
        for worker in workers:
            worker.kill()
