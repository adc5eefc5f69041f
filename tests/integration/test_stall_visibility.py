"""Stalls are visible: a position beyond the log end is reset with a warning, and a partition
with lag and no progress is reported (metric, warning, /readyz detail).

Partitions added to a topic are picked up at the next metadata refresh
(`kafka.metadata_max_age_ms`, 30 s by default); the embedded broker does not implement
CreatePartitions (kafka-python: IncompatibleBrokerVersion), so that path is covered by the
unit test that the setting reaches the consumer (tests/unit/test_consumer_config.py), not here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from tests.integration.scenario import TRACKING_ID, Scenario
from tests.integration.worker_support import (
    TANSU_CONSUMER,
    WorkerProcess,
    free_port,
    make_events,
    produce,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration


def _log_events(worker: WorkerProcess, text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in worker.log_path.read_text(errors="replace").splitlines()
            if line.startswith("{") and text in line]


def test_a_committed_position_beyond_the_log_end_is_reset_with_a_warning(
    tmp_path: Path, broker: Any, kafka_topic: Any, local_personalize: Any
) -> None:
    """E.g. a topic re-created while the group was away on a broker that kept its offsets,
    or an offset reset gone wrong: the broker has nothing at that position, ever."""
    scenario = Scenario(tmp_path, broker, kafka_topic, local_personalize, partitions=1)
    records, produced = make_events(50, 0.0, seed=3, run_id=scenario.run_id)
    produce(scenario.bootstrap, scenario.topic, records)
    tp = TopicPartition(scenario.topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=scenario.bootstrap, group_id=scenario.group,
                             enable_auto_commit=False, **TANSU_CONSUMER)
    try:
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(1000, "", -1)})
    finally:
        consumer.close()
    worker = scenario.worker(kafka={"stall_after_s": 4.0}).start()
    try:
        scenario.wait_delivered(produced, timeout_s=60)
        warnings = _log_events(worker, "beyond the end")
        assert warnings and warnings[0]["level"] == "warning"
        assert (warnings[0]["position"], warnings[0]["log_end"]) == (1000, 50)
        assert worker.metric("clickstream_offset_resets_total", topic=scenario.topic) == 1
        wait_for(lambda: not scenario.commit_lag(), 20, message="committed to the end")
        wait_for(lambda: worker.metric("clickstream_consumer_lag", topic=scenario.topic, partition="0") == 0, 20,
                 message="lag back to 0")
        assert worker.terminate() == 0
    finally:
        scenario.stop_all()


def test_a_partition_with_lag_and_no_progress_is_reported_stalled(
    tmp_path: Path, broker: Any, kafka_topic: Any, local_personalize: Any
) -> None:
    """A wrong tracking ID stops its topic (a configuration fault): lag builds, nothing moves."""
    topic = kafka_topic(partitions=2, prefix="stall")
    lp = local_personalize(trackers=[TRACKING_ID])
    records, _produced = make_events(40, 0.0, seed=5, run_id="stall")
    produce(broker.bootstrap, topic, records)
    config = write_config(
        tmp_path / "worker.yaml", broker.bootstrap, lp.endpoint_url,
        [{"name": topic, "dataset_type": "interactions", "tracking_id": "00000000-0000-4000-8000-00000000dead"}],
        group_id=f"g-{topic}", http_port=free_port(), kafka={"stall_after_s": 3.0},
        delivery={"config_fault_retry_s": 30.0},
    )
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        def stalled() -> set[str]:
            try:
                _status, body = worker.probe("/readyz")
            except OSError:
                return set()
            return set(body.get("stalled_partitions", {}))

        wait_for(lambda: stalled() == {f"{topic}-0", f"{topic}-1"}, 45, message=f"stalled partitions: {worker.logs()}")
        status, body = worker.probe("/readyz")
        assert status == 503  # the configuration fault fails readiness; the stall is listed with it
        for partition in ("0", "1"):
            detail = body["stalled_partitions"][f"{topic}-{partition}"]
            assert detail["lag"] > 0 and detail["no_progress_s"] >= 3.0
            assert worker.metric("clickstream_partition_stalled", topic=topic, partition=partition) == 1
        warnings = _log_events(worker, "partition stalled")
        assert {w["partition"] for w in warnings} == {0, 1}
        assert all(w["level"] == "warning" and w["lag"] > 0 for w in warnings)
        assert worker.terminate() == 0
    finally:
        worker.kill()
