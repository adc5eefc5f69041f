"""`clickstream-worker generate` against the embedded broker: what it reports is what the topic holds."""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clickstream_devkit.broker import EmbeddedBroker
from clickstream_devkit.generate_cmd import (
    GenerateError,
    add_generate_arguments,
    main_generate,
    run_generate,
)
from clickstream_devkit.generator import ClickstreamGenerator
from kafka import KafkaConsumer, TopicPartition

from tests.helpers import free_port


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> dict[int, list[Any]]:
    """Every record of `topic` per partition, in offset order (no group: assign and seek)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=10_000)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert partitions, f"topic {topic} has no partitions"
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        out: dict[int, list[Any]] = defaultdict(list)
        got = 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=300).items():
                out[tp.partition].extend(records)
                got += len(records)
            if got >= expected:
                # one more short poll: anything beyond `expected` would be a duplicate
                for tp, records in consumer.poll(timeout_ms=500).items():
                    out[tp.partition].extend(records)
                break
        return out
    finally:
        consumer.close()


@pytest.mark.integration
def test_generate_produces_catalogue_profiles_and_events_as_reported(
    broker: EmbeddedBroker, kafka_topic: Callable[..., str], tmp_path: Path
) -> None:
    clicks, items, users = kafka_topic(4, "clicks"), kafka_topic(1, "items"), kafka_topic(1, "users")
    manifest = tmp_path / "manifest.json"
    sent: list[int] = []
    report = run_generate(
        broker.bootstrap,
        clicks,
        rate=None,
        count=2000,
        bad_fraction=0.1,
        seed=42,
        items_topic=items,
        users_topic=users,
        users=120,
        items=60,
        manifest_path=str(manifest),
        progress=sent.append,
    )
    assert sent == [1000, 2000]
    assert (report.produced, report.items, report.users, report.failed) == (2000, 60, 120, 0)
    assert report.good + report.bad == 2000 and 120 < report.bad < 290

    # The same generator, rebuilt from the report, says exactly what the topics must hold.
    truth = ClickstreamGenerator(
        seed=42, users=120, items=60, bad_fraction=0.1,
        start_time=report.start_time, events_per_second=report.events_per_second,
    )  # fmt: skip
    expected_catalog = [(r.key, r.value) for r in truth.catalog()]
    expected_users = [(r.key, r.value) for r in truth.user_profiles()]
    expected = list(truth.events(2000))
    # Unpaced runs are back-dated so the stream ends now, never in the future.
    last_stamp = report.start_time + 1999 / report.events_per_second
    assert last_stamp <= time.time() and report.start_time > time.time() - 3600

    partitions = read_topic(broker.bootstrap, clicks, 2000)
    received = [record for records in partitions.values() for record in records]
    assert sorted((r.key, r.value) for r in received) == sorted((r.key, r.value) for r in expected)
    # Keyed by visitor: each key lives in one partition, in generation order.
    order_by_key: dict[bytes, list[bytes]] = defaultdict(list)
    for record in expected:
        order_by_key[record.key].append(record.value)
    key_partition: dict[bytes, int] = {}
    for partition, records in partitions.items():
        for record in records:
            assert key_partition.setdefault(record.key, partition) == partition
        for key in {r.key for r in records}:
            assert [r.value for r in records if r.key == key] == order_by_key[key]
    assert len(partitions) > 1

    catalog = read_topic(broker.bootstrap, items, 60)[0]
    assert [(r.key, r.value) for r in catalog] == expected_catalog
    profiles = read_topic(broker.bootstrap, users, 120)[0]
    assert [(r.key, r.value) for r in profiles] == expected_users

    written = json.loads(manifest.read_text())
    assert written["good_event_ids"] == [r.event_id for r in expected if r.good]
    assert len(set(written["good_event_ids"])) == report.good
    assert written["bad_by_kind"] == dict(sorted(Counter(r.kind for r in expected if not r.good).items()))
    assert written["good_by_type"] == dict(sorted(Counter(r.kind for r in expected if r.good).items()))
    assert written["seed"] == 42 and written["produced"] == 2000


@pytest.mark.integration
def test_rate_paces_production_and_stamps_from_now(broker: EmbeddedBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic(2, "paced")
    began = time.time()
    report = run_generate(
        broker.bootstrap, topic, rate=400.0, count=400, bad_fraction=0.0, seed=3,
        items_topic=None, users_topic=None, users=20, items=20,
    )  # fmt: skip
    took = time.time() - began
    assert report.produced == report.good == 400 and report.items == report.users == 0
    assert 0.95 <= took < 10.0, took
    assert began <= report.start_time <= began + 5.0
    assert report.events_per_second == 400.0


@pytest.mark.integration
def test_cli_entry_prints_the_report_and_writes_the_manifest(
    broker: EmbeddedBroker, kafka_topic: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = kafka_topic(1, "cli")
    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    manifest = tmp_path / "m.json"
    args = parser.parse_args(
        ["--bootstrap", broker.bootstrap, "--topic", topic, "--count", "300", "--bad-fraction", "0.2",
         "--users", "30", "--items", "15", "--manifest", str(manifest)]
    )  # fmt: skip
    assert main_generate(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["produced"] == 300 and "good_event_ids" not in printed
    assert isinstance(printed["seed"], int)  # a fresh seed, reported so the run can be reproduced
    assert len(json.loads(manifest.read_text())["good_event_ids"]) == printed["good"]
    assert sum(len(v) for v in read_topic(broker.bootstrap, topic, 300).values()) == 300


def test_cli_entry_refuses_bad_arguments_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    unreachable = f"127.0.0.1:{free_port()}"
    for extra in (["--bad-fraction", "1.5"], ["--count", "-1"], ["--rate", "0"], ["--users", "0"]):
        args = parser.parse_args(["--bootstrap", unreachable, "--topic", "t", *extra])
        assert main_generate(args) == 2
        assert "clickstream-worker generate:" in capsys.readouterr().err


def test_unreachable_broker_fails_with_a_kafka_error(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    args = parser.parse_args(["--bootstrap", f"127.0.0.1:{free_port()}", "--topic", "t", "--count", "5"])
    assert main_generate(args, client_config={"bootstrap_timeout_ms": 500, "max_block_ms": 500}) == 1
    assert "Kafka error" in capsys.readouterr().err


@pytest.mark.integration
def test_unacknowledged_records_raise_with_a_partial_report(
    broker: EmbeddedBroker, kafka_topic: Callable[..., str]
) -> None:
    """Records too large for the producer fail; the report still says what did arrive."""
    topic = kafka_topic(1, "partial")
    with pytest.raises(GenerateError) as caught:
        # The 10 KB+ malformed kinds exceed this max_request_size, so some sends fail.
        run_generate(
            broker.bootstrap, topic, rate=None, count=600, bad_fraction=1.0, seed=8,
            items_topic=None, users_topic=None, users=10, items=10,
            client_config={"max_request_size": 8_000},
        )  # fmt: skip
    report = caught.value.report
    assert report.failed > 0 and 0 < report.produced < 600
    assert report.first_error is not None
