"""Helpers for test_foreign_producers: producers nobody on this team wrote, and a raw reader.

* `produce_confluent` / `produce_confluent_transactional`: librdkafka (confluent-kafka);
  `produce_kafka_python`: kafka-python's own `KafkaProducer`.
* `read_partition_raw`: one Fetch request (v4, isolation_level=read_committed) over a plain
  socket, decoded with kafka-python's protocol classes and record parser. No consumer logic
  runs on top of it, so what it returns is exactly what the broker stored and serves: every
  record batch with its attributes (compression codec, transactional / control flags,
  producer ID), the control records, the high watermark, the last stable offset and the
  aborted-transactions list of the response. That is how the tests prove a codec was really
  applied on the wire and what the broker does with transactions.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import confluent_kafka
from kafka import KafkaProducer
from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.record import MemoryRecords

#: Kafka's record-batch attribute codes (bits 0-2 of the batch attributes).
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
CODEC_NAMES = {code: name for name, code in CODECS.items()}

HEADERS = [("app", b"test")]

#: librdkafka logs through this logger (captured by pytest) instead of writing to stderr.
RDKAFKA_LOG = logging.getLogger("tests.foreign_producers.rdkafka")


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def bad_values(tag: str, per_kind: int = 2) -> list[bytes]:
    """Malformed records, each distinct (so each can be found in the DLQ by its bytes)."""
    out: list[bytes] = []
    for i in range(per_kind):
        mid = f"{tag}-bad-{i}"
        base = {"type": "track", "messageId": mid, "userId": "u1", "anonymousId": "a1", "event": "view",
                "timestamp": iso(time.time() - 60), "properties": {"productId": "p1"}}
        out += [
            f"not json at all {mid}".encode(),
            b"\xff\xfe\x00" + mid.encode(),  # not UTF-8
            json.dumps([base]).encode(),  # a JSON array holding a valid event
            json.dumps([1, 2, mid]).encode(),  # a JSON array of scalars
            json.dumps({k: v for k, v in base.items() if k != "event"}).encode(),  # no event type
            json.dumps({k: v for k, v in base.items() if k != "timestamp"}).encode(),  # no timestamp
            json.dumps({k: v for k, v in base.items() if k not in ("userId", "anonymousId")}).encode(),  # no ids
        ]
    return out


def interleave(good: Sequence[tuple[bytes, bytes]], bad: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
    """`good` with the `bad` values spread evenly through it (keys bad-<n>)."""
    out = list(good)
    step = max(1, len(good) // (len(bad) + 1))
    for j, value in reversed(list(enumerate(bad))):
        out.insert(min(len(out), (j + 1) * step), (f"bad-{j}".encode(), value))
    return out


# -- producers ------------------------------------------------------------------------


def _confluent_config(bootstrap: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "linger.ms": 500, "acks": "all", "logger": RDKAFKA_LOG, **extra}


def _send_confluent(producer: Any, topic: str, records: Iterable[tuple[bytes, bytes]], errors: list[str]) -> None:
    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=HEADERS, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                producer.poll(0.1)
        producer.poll(0)


def produce_confluent(bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes]],
                      extra: dict[str, Any]) -> None:
    producer = confluent_kafka.Producer(_confluent_config(bootstrap, extra))
    errors: list[str] = []
    try:
        _send_confluent(producer, topic, records, errors)
        left = producer.flush(30)
    finally:
        producer.close()
    assert left == 0 and not errors, f"librdkafka producer {extra}: {left} unflushed, errors {errors[:3]}"


def produce_confluent_transactional(bootstrap: str, topic: str,
                                    transactions: Sequence[tuple[bool, Sequence[tuple[bytes, bytes]]]]) -> None:
    """One transaction per entry: (commit?, records). Aborted ones are flushed first, so
    their records really reach the broker's log before the abort marker."""
    producer = confluent_kafka.Producer(_confluent_config(bootstrap, {"transactional.id": f"tx-{topic}"}))
    errors: list[str] = []
    try:
        producer.init_transactions(30)
        for commit, records in transactions:
            producer.begin_transaction()
            _send_confluent(producer, topic, records, errors)
            assert producer.flush(30) == 0
            if commit:
                producer.commit_transaction(30)
            else:
                producer.abort_transaction(30)
    finally:
        producer.close()
    assert not errors, f"transactional producer: {errors[:3]}"


def produce_kafka_python(bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes]], codec: str) -> None:
    """kafka-python sends a batch uncompressed when compressing would not make it smaller:
    a long linger and a large batch size put each partition's records (many similar JSON
    events) in one big batch, which every codec shrinks. The caller still checks the wire."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=1000,
                             batch_size=512 * 1024, acks="all")
    try:
        futures = [producer.send(topic, key=key, value=value, headers=HEADERS) for key, value in records]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=10)
    finally:
        producer.close(timeout=10)


# -- raw reader -----------------------------------------------------------------------


@dataclass
class Batch:
    base_offset: int
    last_offset: int
    codec: int
    transactional: bool
    control: bool
    producer_id: int
    base_sequence: int
    #: Data batches: (offset, key, value, headers); control batches: (offset, "commit"/"abort").
    records: list[Any] = field(default_factory=list)


@dataclass
class PartitionLog:
    partition: int
    high_watermark: int = 0
    last_stable_offset: int = 0
    #: The aborted-transactions lists of the read_committed fetch responses (None entries kept).
    aborted_transactions: list[Any] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)

    @property
    def data_batches(self) -> list[Batch]:
        return [b for b in self.batches if not b.control]

    @property
    def data_end(self) -> int:
        """One past the last offset a consumer can see: control markers are never handed out."""
        data = self.data_batches
        return data[-1].last_offset + 1 if data else 0

    def markers(self) -> list[tuple[int, str]]:
        return [r for b in self.batches if b.control for r in b.records]


def _fetch(bootstrap: str, topic: str, partition: int, offset: int, timeout_s: float,
           max_bytes: int = 64 * 1024 * 1024) -> Any:
    host, port = bootstrap.rsplit(":", 1)
    request = FetchRequest(
        replica_id=-1, max_wait_ms=10, min_bytes=1, max_bytes=max_bytes, isolation_level=1,
        topics=[FetchRequest.FetchTopic(topic=topic, partitions=[FetchRequest.FetchTopic.FetchPartition(
            partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes)])],
    )
    request.with_header(correlation_id=1, client_id="foreign-producers-raw")
    payload = request.encode(version=4, header=True, framed=True)
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(payload)
        size = struct.unpack(">i", _recv(sock, 4))[0]
        return FetchResponse.decode(_recv(sock, size), version=4, header=True)


def _recv(sock: socket.socket, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("broker closed the connection mid-response")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_partition_raw(bootstrap: str, topic: str, partition: int, timeout_s: float = 10.0) -> PartitionLog:
    log = PartitionLog(partition)
    offset = 0
    deadline = time.monotonic() + timeout_s
    while True:
        assert time.monotonic() < deadline, f"raw read of {topic}-{partition} did not finish"
        response = _fetch(bootstrap, topic, partition, offset, timeout_s)
        data = response.responses[0].partitions[0]
        assert data.error_code == 0, f"fetch {topic}-{partition}@{offset}: error {data.error_code}"
        log.high_watermark, log.last_stable_offset = data.high_watermark, data.last_stable_offset
        log.aborted_transactions.append(data.aborted_transactions)
        records = MemoryRecords(bytes(data.records or b""))
        fetched = 0
        while (batch := records.next_batch()) is not None:
            fetched += 1
            item = Batch(batch.base_offset, batch.last_offset, batch.compression_type, batch.is_transactional,
                         batch.is_control_batch, batch.producer_id, batch.base_sequence)
            for record in batch:
                if batch.is_control_batch:
                    item.records.append((record.offset, "abort" if record.abort else "commit"))
                else:
                    item.records.append((record.offset, record.key, record.value, list(record.headers)))
            log.batches.append(item)
            offset = batch.last_offset + 1
        if offset >= log.high_watermark or not fetched:
            return log


def high_watermark(bootstrap: str, topic: str, partition: int, timeout_s: float = 10.0) -> int:
    """The partition's end as a fetch response states it (the embedded broker's ListOffsets
    answer for "latest" is not reliable: it has been seen to report 1 for 100 records)."""
    data = _fetch(bootstrap, topic, partition, 0, timeout_s, max_bytes=1024).responses[0].partitions[0]
    assert data.error_code == 0, f"fetch {topic}-{partition}: error {data.error_code}"
    return int(data.high_watermark)


def read_topic_raw(bootstrap: str, topic: str, partitions: int) -> list[PartitionLog]:
    return [read_partition_raw(bootstrap, topic, p) for p in range(partitions)]


def read_committed_with_librdkafka(bootstrap: str, topic: str, partitions: int,
                                   timeout_s: float = 20.0) -> list[bytes]:
    """Every value a librdkafka consumer with isolation.level=read_committed receives up to
    the end of each partition (no group: partitions assigned from the beginning, so no group
    join is waited for)."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"probe-{topic}", "isolation.level": "read_committed",
        "enable.auto.commit": False, "enable.partition.eof": True, "logger": RDKAFKA_LOG,
    })
    values: list[bytes] = []
    at_eof: set[int] = set()
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                         for p in range(partitions)])
        deadline = time.monotonic() + timeout_s
        while len(at_eof) < partitions:
            assert time.monotonic() < deadline, f"librdkafka did not reach the end of {topic}"
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    at_eof.add(int(message.partition() or 0))
                    continue
                raise AssertionError(f"librdkafka consumer: {error}")
            values.append(message.value() or b"")
    finally:
        consumer.close()
    return values
