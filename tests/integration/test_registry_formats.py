"""End to end: schema-registry formats through a real worker, the embedded broker and the local Personalize.

One worker consumes three topics:
* Confluent-framed Avro (registry over TLS with basic auth),
* Confluent-framed Protobuf (same registry; .proto text, message-index array, field-name overrides),
* Glue-framed Avro (moto's Glue schema registry; half the records zlib-compressed).

The Confluent registry is `bench.registry_stub.LoopbackRegistry`: no Confluent-compatible registry
server can be installed here, so a minimal in-process loopback server serves the documented REST
endpoints (GET /schemas/ids/{id}, subjects/versions) and is stopped by this test. The records are
framed byte by byte from the wire-format documentation (magic byte, big-endian schema ID,
message indexes; Glue header version, compression byte, version UUID) around payloads written by
fastavro's and protobuf's own encoders.

Checked: every good record is stored exactly once; undecodable ones (wrong magic byte, a schema
ID the registry answers 404 for, a payload that does not match its schema, an unknown Glue
version) are in the DLQ with stage `deserialization`, the rule and the schema ID; during a
registry outage the affected topic is paused, `/readyz` fails naming it, nothing of it is
dead-lettered or stored, the other topics keep flowing, and it recovers by itself.
"""

from __future__ import annotations

import io
import json
import struct
import time
import uuid
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import fastavro
import pytest
from google.protobuf import message_factory
from kafka import KafkaProducer

from bench.registry_stub import LoopbackRegistry
from tests.helpers import SENTINEL_USER, make_certificates
from tests.integration.worker_support import (
    WorkerProcess,
    commit_lag,
    free_port,
    read_topic,
    wait_for,
    write_config,
)
from worker.decoding.framing import zigzag_bytes
from worker.decoding.protobuf import ProtobufReader

pytestmark = pytest.mark.integration

TRACKING_ID = "22222222-3333-4444-5555-666666666666"
TRACK_AVRO = {
    "type": "record", "name": "Track", "namespace": "shop.events",
    "fields": [
        {"name": "messageId", "type": "string"},
        {"name": "userId", "type": ["null", "string"], "default": None},
        {"name": "anonymousId", "type": "string"},
        {"name": "event", "type": "string"},
        {"name": "timestamp", "type": "string"},
        {"name": "properties", "type": {"type": "record", "name": "Properties", "fields": [
            {"name": "productId", "type": "string"}, {"name": "value", "type": ["null", "double"], "default": None}]}},
    ],
}
TRACK_AVRO_V2 = {**TRACK_AVRO, "fields": [*TRACK_AVRO["fields"], {"name": "channel", "type": "string",
                                                                   "default": "web"}]}
TRACK_PROTO = """
syntax = "proto3";
package shop.events;
import "google/protobuf/timestamp.proto";
message Envelope { string note = 1; }
message Track {
  string message_id = 1;
  string user_id = 2;
  string anonymous_id = 3;
  string event = 4;
  google.protobuf.Timestamp timestamp = 5;
  Properties properties = 6;
  message Properties { string product_id = 1; double value = 2; }
}
"""
PROTO_MAPPING = {"event_id": ["message_id"], "user_id": ["user_id"], "session_id": ["anonymous_id"],
                 "item_id": ["properties.product_id"], "event_type": ["event"], "timestamp": ["timestamp"],
                 "event_value": ["properties.value"]}


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def event(run: str, n: int) -> dict[str, Any]:
    return {"messageId": f"{run}-{n}", "userId": f"{SENTINEL_USER}-{n % 7}", "anonymousId": f"anon-{n % 5}",
            "event": "view", "timestamp": iso(time.time() - 60), "properties": {"productId": f"p-{n}", "value": 1.5}}


def avro(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


def confluent(schema_id: int, payload: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + payload


def glue(version: str, payload: bytes, *, compress: bool) -> bytes:
    return bytes([3, 5 if compress else 0]) + uuid.UUID(version).bytes + (zlib.compress(payload) if compress
                                                                         else payload)


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    for n, value in enumerate(values):
        producer.send(topic, key=f"k-{n}".encode(), value=value, headers=[("app", b"test")])
    producer.flush(timeout=60)
    producer.close()


@pytest.fixture
def registry(tmp_path: Path) -> Any:
    ca, cert, key = make_certificates(tmp_path)
    server = LoopbackRegistry(username="api-key", password="api-secret", tls=(cert, key)).start()
    try:
        yield server, ca
    finally:
        server.stop()


def test_confluent_avro_protobuf_and_glue_avro_are_delivered_and_failures_are_handled(
    tmp_path: Path, broker: Any, kafka_topic: Any, local_personalize: Any, moto_s3: str, registry: Any,
) -> None:
    server, ca = registry
    lp = local_personalize(trackers=[TRACKING_ID])
    avro_topic, proto_topic, glue_topic = (kafka_topic(partitions=2, prefix=p) for p in ("avro", "proto", "glue"))
    run = uuid.uuid4().hex[:8]

    # -- schemas ------------------------------------------------------------------------------
    avro_id = server.register(f"{avro_topic}-value", json.dumps(TRACK_AVRO))
    proto_id = server.register(f"{proto_topic}-value", TRACK_PROTO, "PROTOBUF")
    glue_client = boto3.client("glue", region_name="us-east-1", endpoint_url=moto_s3)
    registry_name = f"reg-{run}"
    glue_client.create_registry(RegistryName=registry_name)
    glue_version = glue_client.create_schema(
        RegistryId={"RegistryName": registry_name}, SchemaName=f"track-{run}", DataFormat="AVRO",
        Compatibility="BACKWARD", SchemaDefinition=json.dumps(TRACK_AVRO))["SchemaVersionId"]

    # -- records ------------------------------------------------------------------------------
    good: list[str] = []
    avro_values = []
    for n in range(40):
        doc = event(f"{run}-avro", n)
        good.append(doc["messageId"])
        avro_values.append(confluent(avro_id, avro(TRACK_AVRO, doc)))
    bad_avro = [json.dumps(event(run, 999)).encode(),                         # not framed: bad_magic_byte
                confluent(4242, avro(TRACK_AVRO, event(run, 998))),         # 404 from the registry
                confluent(avro_id, b"\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")]  # schema_mismatch
    track_cls = message_factory.GetMessageClass(
        ProtobufReader(TRACK_PROTO, flavor="confluent").file.message_types_by_name["Track"])
    proto_values = []
    for n in range(20):
        doc = event(f"{run}-proto", n)
        good.append(doc["messageId"])
        msg = track_cls(message_id=doc["messageId"], user_id=doc["userId"], anonymous_id=doc["anonymousId"],
                        event="view")
        msg.timestamp.FromSeconds(int(time.time()) - 60)
        msg.properties.product_id, msg.properties.value = doc["properties"]["productId"], 2.5
        proto_values.append(confluent(proto_id, zigzag_bytes([1]) + msg.SerializeToString()))
    glue_values = []
    for n in range(20):
        doc = event(f"{run}-glue", n)
        good.append(doc["messageId"])
        glue_values.append(glue(glue_version, avro(TRACK_AVRO, doc), compress=n % 2 == 0))
    bad_glue = [glue(str(uuid.uuid4()), avro(TRACK_AVRO, event(run, 997)), compress=False)]

    config = write_config(
        tmp_path / "worker.yaml", broker.bootstrap, lp.endpoint_url,
        [
            {"name": avro_topic, "dataset_type": "interactions", "tracking_id": TRACKING_ID, "format": "confluent",
             "registry": {"url": server.url, "username": "api-key", "password": "api-secret",
                          "ca_file": str(ca), "retry_max_s": 1.0}},
            {"name": proto_topic, "dataset_type": "interactions", "tracking_id": TRACKING_ID,
             "format": "confluent", "mapping": PROTO_MAPPING,
             "registry": {"url": server.url, "username": "api-key", "password": "api-secret", "ca_file": str(ca)}},
            {"name": glue_topic, "dataset_type": "interactions", "tracking_id": TRACKING_ID, "format": "glue",
             "registry": {"region": "us-east-1", "endpoint_url": moto_s3}},
        ],
        group_id=f"g-{run}", http_port=free_port(),
    )
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        produce(broker.bootstrap, avro_topic, avro_values[:20] + bad_avro + avro_values[20:])
        produce(broker.bootstrap, proto_topic, proto_values)
        produce(broker.bootstrap, glue_topic, glue_values[:10] + bad_glue + glue_values[10:])
        worker.wait_ready()

        def stored() -> Counter[str]:
            return Counter(e["eventId"] for e in lp.events(TRACKING_ID))

        wait_for(lambda: set(good) <= set(stored()), 60, message="all good records delivered")

        # -- a registry outage: schema v2 is new to the worker and the registry is down ------------
        v2_id = server.register(f"{avro_topic}-value", json.dumps(TRACK_AVRO_V2))
        server.down = True
        held = [event(f"{run}-held", n) for n in range(10)]
        produce(broker.bootstrap, avro_topic, [confluent(v2_id, avro(TRACK_AVRO_V2, {**d, "channel": "app"}))
                                               for d in held])
        during = [event(f"{run}-during", n) for n in range(5)]  # the protobuf topic's schema is cached
        for doc in during:
            msg = track_cls(message_id=doc["messageId"], user_id=doc["userId"], anonymous_id=doc["anonymousId"],
                            event="view")
            msg.timestamp.FromSeconds(int(time.time()) - 60)
            msg.properties.product_id = doc["properties"]["productId"]
            produce(broker.bootstrap, proto_topic, [confluent(proto_id, zigzag_bytes([1]) + msg.SerializeToString())])

        def faulted() -> bool:
            status, body = worker.probe("/readyz")
            return status == 503 and avro_topic in body.get("configuration_faults", {})

        wait_for(faulted, 30, message="readiness fails naming the topic while the registry is down")
        _status, body = worker.probe("/readyz")
        assert "schema registry unavailable" in body["configuration_faults"][avro_topic]
        wait_for(lambda: {d["messageId"] for d in during} <= set(stored()), 30,
                 message="other topics keep flowing during the outage")
        time.sleep(2)
        assert not {d["messageId"] for d in held} & set(stored()), "held records are not delivered"
        assert worker.metric("clickstream_config_fault", topic=avro_topic) == 1
        assert worker.metric("clickstream_events_dead_lettered_total", topic=avro_topic) == len(bad_avro)

        server.down = False
        wait_for(lambda: {d["messageId"] for d in held} <= set(stored()), 60, message="held records delivered")
        wait_for(lambda: worker.probe("/readyz")[0] == 200, 30, message="ready again")

        # -- audit --------------------------------------------------------------------------------
        counts = stored()
        expected = set(good) | {d["messageId"] for d in held + during}
        assert set(counts) == expected and max(counts.values()) == 1, "every good record exactly once"
        dlq = read_topic(broker.bootstrap, f"{avro_topic}.dlq", len(bad_avro), timeout_s=30)
        rows = sorted((h["__connect.errors.stage"], h["__connect.errors.exception.message"].split("]")[0] + "]",
                       h["__connect.errors.field"]) for h in (
            {k: v.decode() for k, v in r.headers} for r in dlq))
        assert rows == [
            ("deserialization", "[deserialization/bad_magic_byte]", "magicByte"),
            ("deserialization", "[deserialization/schema_mismatch]", "schemaId"),
            ("deserialization", "[deserialization/unknown_schema]", "schemaId"),
        ]
        assert sorted(r.value for r in dlq) == sorted(bad_avro), "original bytes"
        unknown = next(r for r in dlq if b"unknown_schema" in dict(r.headers)["__connect.errors.exception.message"])
        assert b"4242" in dict(unknown.headers)["__connect.errors.exception.message"]
        glue_dlq = read_topic(broker.bootstrap, f"{glue_topic}.dlq", 1, timeout_s=30)
        assert [dict(r.headers)["__connect.errors.stage"] for r in glue_dlq] == [b"deserialization"]
        assert b"unknown_schema" in dict(glue_dlq[0].headers)["__connect.errors.exception.message"]
        assert worker.metric("clickstream_config_fault", topic=avro_topic) == 0
        assert worker.terminate() == 0
        for topic in (avro_topic, proto_topic, glue_topic):
            assert not commit_lag(broker.bootstrap, f"g-{run}", topic), f"{topic} committed to the end"
        assert any(path.startswith("GET /schemas/ids/") for path in server.requests)
    finally:
        worker.kill()
