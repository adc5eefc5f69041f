"""The naive baseline: poll -> parse -> validate -> one synchronous boto3 ``put_events`` per event.

This is the pattern of the AWS samples and of a Kafka Connect sink that calls the SDK
record by record. It uses the worker's own mapping and validation (`EventDecoder`), so the
comparison isolates the delivery pattern: one blocking SDK call per event, no batching, no
concurrency. Offsets are committed synchronously after each polled chunk is sent.

Run by the harness as ``python -m bench.baseline ...``; it creates ``--ready-file`` once the
group assigned it partitions and runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from kafka import ConsumerRebalanceListener, KafkaConsumer

from worker.config import TopicSettings
from worker.mapping import EventDecoder
from worker.records import DatasetType, Interaction, SourceRef
from worker.schemas import load_schema
from worker.validation import ValidationLimits


class _Ready(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, path: Path) -> None:
        self.path = path

    def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    def on_partitions_assigned(self, assigned: Any) -> None:
        if assigned:
            self.path.write_text("ready\n")


def interactions_decoder(tracking_id: str = "bench") -> EventDecoder:
    """The worker's decoder for a default Segment interactions topic (shipped schema, default limits)."""
    topic = TopicSettings(name="clicks", dataset_type=DatasetType.INTERACTIONS, tracking_id=tracking_id)
    return EventDecoder(DatasetType.INTERACTIONS, topic.effective_mapping, load_schema(topic.schema_path),
                        ValidationLimits(max_past_seconds=730 * 86_400, max_future_seconds=86_400))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--tracking-id", required=True)
    parser.add_argument("--group-id", required=True)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args(argv)

    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    decoder = interactions_decoder(args.tracking_id)
    client = boto3.client("personalize-events", region_name="us-east-1", endpoint_url=args.endpoint_url)
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap, group_id=args.group_id, enable_auto_commit=False,
        auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=1000,
        max_poll_interval_ms=60_000, max_poll_records=500,
    )
    consumer.subscribe([args.topic], listener=_Ready(Path(args.ready_file)))
    sent = rejected = 0
    try:
        while not stop[0]:
            polled = consumer.poll(timeout_ms=200)
            for tp, records in polled.items():
                for record in records:
                    decoded = decoder.decode(record.value, SourceRef(tp.topic, tp.partition, record.offset),
                                             time.time())
                    if not isinstance(decoded, Interaction):
                        rejected += 1
                        continue
                    request: dict[str, Any] = {"trackingId": args.tracking_id, "sessionId": decoded.session_id,
                                               "eventList": [decoded.event]}
                    if decoded.user_id is not None:
                        request["userId"] = decoded.user_id
                    client.put_events(**request)
                    sent += 1
            if polled:
                consumer.commit()
    finally:
        consumer.close()
        print(f"baseline: sent {sent}, rejected {rejected}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
