"""Pure decoding: registry framings, Avro and Protobuf readers, the .proto parser, the schema cache.

Wire bytes are written by independent encoders where one exists here: fastavro's writer for
Avro, the protobuf runtime for messages (from descriptors built by hand with descriptor_pb2,
not by our parser), and the framings byte by byte from their documentation.
"""

from __future__ import annotations

import io
import json
import struct
import uuid
import zlib
from typing import Any

import fastavro
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from worker.decoding.avro import AvroReader, SchemaParseError
from worker.decoding.framing import (
    Framed,
    confluent_frame,
    confluent_message_indexes,
    glue_frame,
    read_varint,
    zigzag_bytes,
)
from worker.decoding.outcomes import AwaitSchema, DeserializationError, SchemaRef
from worker.decoding.payload import NOT_FOUND_TTL_S, RegistryPayload, SchemaCache
from worker.decoding.proto_text import parse_proto
from worker.decoding.protobuf import ProtobufReader, well_known_proto
from worker.decoding.readers import JsonReader, RegistrySchema, build_reader
from worker.records import Stage

AVRO_SCHEMA = {
    "type": "record", "name": "Track", "namespace": "shop",
    "fields": [
        {"name": "messageId", "type": "string"},
        {"name": "userId", "type": ["null", "string"], "default": None},
        {"name": "event", "type": {"type": "enum", "name": "Kind", "symbols": ["view", "purchase"]}},
        {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "properties", "type": {"type": "record", "name": "Props", "fields": [
            {"name": "productId", "type": "string"}, {"name": "value", "type": ["null", "double"]}]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
}
RECORD = {"messageId": "m1", "userId": "u1", "event": "purchase", "timestamp": 1_700_000_000_123,
          "properties": {"productId": "p9", "value": 4.5}, "tags": ["a"]}


def avro_bytes(schema: Any, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


def confluent(schema_id: int, payload: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + payload


def glue(version: uuid.UUID, payload: bytes, *, compress: bool = False) -> bytes:
    return bytes([3, 5 if compress else 0]) + version.bytes + (zlib.compress(payload) if compress else payload)


# -- framing ----------------------------------------------------------------------------------

def test_confluent_prefix_frame() -> None:
    framed = confluent_frame(confluent(42, b"payload"))
    assert framed == Framed(SchemaRef("id", "42"), b"payload", None)


def test_confluent_guid_prefix_and_header_frames() -> None:
    guid = uuid.uuid4()
    assert confluent_frame(b"\x01" + guid.bytes + b"x").ref == SchemaRef("guid", str(guid))
    header = b"\x00" + struct.pack(">I", 7) + zigzag_bytes([1, 0])
    framed = confluent_frame(b"bare payload", [("other", b"x"), ("__value_schema_id", header)])
    assert framed.ref == SchemaRef("id", "7") and framed.body == b"bare payload"
    assert framed.indexes is not None and confluent_message_indexes(framed.indexes)[0] == [1, 0]


@pytest.mark.parametrize(("value", "rule"), [
    (b"", "bad_magic_byte"),
    (b'{"json": true}', "bad_magic_byte"),
    (b"\x00\x00\x01", "truncated_frame"),
    (b"\x01" + b"\x00" * 5, "truncated_frame"),
])
def test_confluent_undecodable_frames(value: bytes, rule: str) -> None:
    with pytest.raises(DeserializationError) as caught:
        confluent_frame(value)
    rejection = caught.value.rejection()
    assert (rejection.stage, rejection.rule) == (Stage.DESERIALIZATION, rule)


def test_glue_frames_plain_and_zlib() -> None:
    version = uuid.uuid4()
    assert glue_frame(glue(version, b"abc")) == Framed(SchemaRef("glue", str(version)), b"abc")
    assert glue_frame(glue(version, b"abc" * 100, compress=True)).body == b"abc" * 100


@pytest.mark.parametrize(("value", "rule"), [
    (b"\x03\x00short", "truncated_frame"),
    (b"\x00" * 20, "bad_magic_byte"),
    (bytes([3, 9]) + b"\x00" * 16 + b"x", "bad_compression"),
    (bytes([3, 5]) + b"\x00" * 16 + b"not zlib", "bad_compression"),
    (bytes([3, 5]) + b"\x00" * 16 + zlib.compress(b"x" * 1000)[:-4], "bad_compression"),
])
def test_glue_undecodable_frames(value: bytes, rule: str) -> None:
    with pytest.raises(DeserializationError) as caught:
        glue_frame(value)
    assert caught.value.rule == rule


def test_glue_zlib_bomb_is_refused() -> None:
    with pytest.raises(DeserializationError, match="decompresses to more than"):
        glue_frame(glue(uuid.uuid4(), b"\x00" * (9 * 1024 * 1024), compress=True))


@pytest.mark.parametrize("indexes", [[0], [1], [2, 0], [0, 3, 1], [130]])
def test_message_index_arrays_round_trip(indexes: list[int]) -> None:
    encoded = zigzag_bytes(indexes) + b"rest"
    assert confluent_message_indexes(encoded) == (indexes, len(encoded) - 4)


def test_message_index_edge_cases() -> None:
    assert zigzag_bytes([0]) == b"\x00"  # the documented short form of [0]
    assert confluent_message_indexes(b"\x02\x02") == ([1], 2)  # count 1 (zigzag 2), index 1 (zigzag 2)
    with pytest.raises(ValueError, match="varint"):
        confluent_message_indexes(b"\x04\x02")  # count 2, one index missing
    with pytest.raises(ValueError, match="out of range"):
        confluent_message_indexes(b"\x01")  # count -1
    assert read_varint(b"\xac\x02", 0) == (300, 2)


# -- Avro -------------------------------------------------------------------------------------

def test_avro_reader_reads_logical_types_as_their_base_type() -> None:
    reader = AvroReader(json.dumps(AVRO_SCHEMA))
    obj = reader.read(Framed(SchemaRef("id", "1"), avro_bytes(AVRO_SCHEMA, RECORD)))
    assert obj == RECORD  # timestamp-millis stays epoch milliseconds


def test_avro_reader_rejects_a_payload_of_another_schema() -> None:
    reader = AvroReader(json.dumps(AVRO_SCHEMA))
    other = {"type": "record", "name": "X", "fields": [{"name": "n", "type": "long"}]}
    for payload in (avro_bytes(other, {"n": 5}), b"", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
                    avro_bytes(AVRO_SCHEMA, RECORD) + b"trailing"):
        with pytest.raises(DeserializationError) as caught:
            reader.read(Framed(SchemaRef("id", "1"), payload))
        assert caught.value.rule == "schema_mismatch" and caught.value.rejection().value == "1"


def test_avro_named_references_resolve() -> None:
    props = {"type": "record", "name": "Props", "namespace": "shop",
             "fields": [{"name": "productId", "type": "string"}]}
    main = {"type": "record", "name": "Track", "namespace": "shop",
            "fields": [{"name": "event", "type": "string"}, {"name": "properties", "type": "shop.Props"}]}
    reader = build_reader(RegistrySchema("AVRO", json.dumps(main), (("shop.Props", json.dumps(props)),)), "confluent")
    payload = avro_bytes({**main, "fields": [main["fields"][0], {"name": "properties", "type": props}]},
                         {"event": "view", "properties": {"productId": "p"}})
    assert reader.read(Framed(SchemaRef("id", "2"), payload)) == {"event": "view", "properties": {"productId": "p"}}


@pytest.mark.parametrize("text", ["not json", '{"type": "record"}', '{"type": "nonsense"}'])
def test_unusable_avro_schemas(text: str) -> None:
    with pytest.raises(SchemaParseError):
        AvroReader(text)


# -- Protobuf ---------------------------------------------------------------------------------

PROTO = """
// clickstream events, as a team would register them
syntax = "proto3";
package shop.events;
import "google/protobuf/timestamp.proto";
option java_multiple_files = true;

message Envelope { string note = 1; }

message Track {
  string message_id = 1;
  string user_id = 2;
  optional string anonymous_id = 3;
  string event = 4;
  google.protobuf.Timestamp timestamp = 5;
  Properties properties = 6;
  map<string, string> context = 7;
  repeated string tags = 8 [packed = false];
  Kind kind = 9;
  oneof value { int64 big = 10; double score = 11; }
  reserved 20 to 25; reserved "legacy";
  message Properties { string product_id = 1; double value = 2; }
  enum Kind { KIND_UNSPECIFIED = 0; VIEW = 1; PURCHASE = 2 [deprecated = true]; }
}
service Ignored { rpc Get (Track) returns (Track); }
"""


def handmade_track_file() -> descriptor_pb2.FileDescriptorProto:
    """PROTO's messages, written directly as a descriptor (independent of our parser)."""
    fdp = descriptor_pb2.FileDescriptorProto(name="hand.proto", package="shop.events", syntax="proto3",
                                             dependency=["google/protobuf/timestamp.proto"])
    fdp.message_type.add(name="Envelope").field.add(name="note", number=1, type=9, label=1)
    track = fdp.message_type.add(name="Track")
    f = descriptor_pb2.FieldDescriptorProto
    for name, number, ftype, type_name, label in (
        ("message_id", 1, f.TYPE_STRING, "", f.LABEL_OPTIONAL), ("user_id", 2, f.TYPE_STRING, "", f.LABEL_OPTIONAL),
        ("event", 4, f.TYPE_STRING, "", f.LABEL_OPTIONAL),
        ("timestamp", 5, f.TYPE_MESSAGE, ".google.protobuf.Timestamp", f.LABEL_OPTIONAL),
        ("properties", 6, f.TYPE_MESSAGE, ".shop.events.Track.Properties", f.LABEL_OPTIONAL),
        ("tags", 8, f.TYPE_STRING, "", f.LABEL_REPEATED),
        ("kind", 9, f.TYPE_ENUM, ".shop.events.Track.Kind", f.LABEL_OPTIONAL),
    ):
        track.field.add(name=name, number=number, type=ftype, label=label, **({"type_name": type_name}
                                                                              if type_name else {}))
    props = track.nested_type.add(name="Properties")
    props.field.add(name="product_id", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    props.field.add(name="value", number=2, type=f.TYPE_DOUBLE, label=f.LABEL_OPTIONAL)
    kind = track.enum_type.add(name="Kind")
    for name, number in (("KIND_UNSPECIFIED", 0), ("VIEW", 1), ("PURCHASE", 2)):
        kind.value.add(name=name, number=number)
    return fdp


def handmade_track(**fields: Any) -> Any:
    from google.protobuf import timestamp_pb2

    pool = descriptor_pool.DescriptorPool()
    ts = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(ts)
    pool.Add(ts)
    pool.Add(handmade_track_file())
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.events.Track"))
    return cls(**fields)


def test_proto_parser_matches_a_handmade_descriptor_on_the_wire() -> None:
    msg = handmade_track(message_id="m1", user_id="u1", event="view", tags=["a", "b"], kind=2)
    msg.timestamp.seconds, msg.timestamp.nanos = 1_700_000_000, 250_000_000
    msg.properties.product_id, msg.properties.value = "p9", 4.5
    reader = ProtobufReader(PROTO, flavor="confluent")
    obj = reader.read(Framed(SchemaRef("id", "3"), zigzag_bytes([1]) + msg.SerializeToString()))
    assert obj == {"message_id": "m1", "user_id": "u1", "event": "view", "timestamp": "2023-11-14T22:13:20.250000Z",
                   "properties": {"product_id": "p9", "value": 4.5}, "tags": ["a", "b"], "kind": "PURCHASE"}


def test_proto_parser_builds_maps_oneofs_and_proto3_optional() -> None:
    timestamp = well_known_proto("google/protobuf/timestamp.proto")
    fdp = parse_proto(PROTO, "x.proto", [timestamp])
    track = next(m for m in fdp.message_type if m.name == "Track")
    fields = {f.name: f for f in track.field}
    assert fields["anonymous_id"].proto3_optional
    assert [o.name for o in track.oneof_decl] == ["value", "_anonymous_id"]  # synthetic oneofs last
    assert fields["big"].oneof_index == 0 and fields["anonymous_id"].oneof_index == 1
    entry = next(n for n in track.nested_type if n.name == "ContextEntry")
    assert entry.options.map_entry and fields["context"].type_name == ".shop.events.Track.ContextEntry"
    assert fields["kind"].type_name == ".shop.events.Track.Kind"


def test_protobuf_reader_maps_oneofs_and_presence() -> None:
    reader = ProtobufReader(PROTO, flavor="confluent")
    from google.protobuf import message_factory as factory

    cls = factory.GetMessageClass(reader.file.message_types_by_name["Track"])
    msg = cls(event="view", big=2**40, anonymous_id="")
    msg.context["sessionId"] = "s1"
    obj = reader.read(Framed(SchemaRef("id", "3"), zigzag_bytes([1]) + msg.SerializeToString()))
    assert obj == {"event": "view", "anonymous_id": "", "context": {"sessionId": "s1"}, "big": 2**40}


def test_protobuf_message_index_paths_and_glue_numbering() -> None:
    confluent_reader = ProtobufReader(PROTO, flavor="confluent")
    nested = confluent_reader.file.message_types_by_name["Track"].nested_types_by_name["Properties"]
    cls = message_factory.GetMessageClass(nested)
    body = cls(product_id="p").SerializeToString()
    # [1, 1]: the second top-level message (Track), then its second nested type (Properties; ContextEntry is first).
    assert confluent_reader.read(Framed(SchemaRef("id", "3"), zigzag_bytes([1, 1]) + body)) == {"product_id": "p"}
    glue_reader = ProtobufReader(PROTO, flavor="glue")
    order = [d.full_name for d in glue_reader._glue]
    assert order == ["shop.events.Envelope", "shop.events.Track", "shop.events.Track.ContextEntry",
                     "shop.events.Track.Properties"]
    assert glue_reader.read(Framed(SchemaRef("glue", "v"), bytes([3]) + body)) == {"product_id": "p"}


@pytest.mark.parametrize("payload", [zigzag_bytes([5]) + b"", zigzag_bytes([1]) + b"\xff\xff\xff",
                                     b"\x04\x02"])
def test_protobuf_payload_mismatches(payload: bytes) -> None:
    reader = ProtobufReader(PROTO, flavor="confluent")
    with pytest.raises(DeserializationError) as caught:
        reader.read(Framed(SchemaRef("id", "3"), payload))
    assert caught.value.rule == "schema_mismatch"


def test_protobuf_references_resolve_imports() -> None:
    common = 'syntax = "proto3"; package common; message Money { string currency = 1; double amount = 2; }'
    main = 'syntax = "proto3"; import "common.proto"; message Order { common.Money total = 1; string id = 2; }'
    reader = build_reader(RegistrySchema("PROTOBUF", main, (("common.proto", common),)), "confluent")
    assert isinstance(reader, ProtobufReader)
    cls = message_factory.GetMessageClass(reader.file.message_types_by_name["Order"])
    msg = cls(id="o1")
    msg.total.currency, msg.total.amount = "EUR", 9.5
    obj = reader.read(Framed(SchemaRef("id", "4"), b"\x00" + msg.SerializeToString()))
    assert obj == {"total": {"currency": "EUR", "amount": 9.5}, "id": "o1"}


@pytest.mark.parametrize(("text", "match"), [
    ('syntax = "proto3"; message A { B b = 1; }', "unknown type"),
    ('syntax = "proto3"; import "other.proto"; message A {}', "neither a schema reference"),
    ('edition = "2023"; message A {}', "editions"),
    ('syntax = "proto2"; message A { optional group G = 1 { } }', "groups"),
    ('syntax = "proto2"; message A { extensions 100 to 199; } extend A { optional int32 x = 100; }', "top level"),
    ('syntax = "proto3"; message A { string s = one; }', "number"),
    ('syntax = "proto3"; message A { string s = 1;', "ends unexpectedly"),
    ('syntax = "proto3"; message A { string s = 1; } @', "unexpected character"),
])
def test_proto_outside_the_subset_is_a_clear_parse_error(text: str, match: str) -> None:
    with pytest.raises(SchemaParseError, match=match):
        ProtobufReader(text, flavor="confluent")


def test_proto2_required_and_enum_top_level() -> None:
    text = 'syntax = "proto2"; enum Color { RED = 0; GREEN = 1; } message A { required string id = 1; ' \
           'optional Color color = 2 [default = GREEN]; repeated int32 n = 3; }'
    fdp = parse_proto(text, "a.proto", [])
    fields = {f.name: f for f in fdp.message_type[0].field}
    assert fields["id"].label == descriptor_pb2.FieldDescriptorProto.LABEL_REQUIRED
    assert fields["color"].type_name == ".Color" and not fields["color"].proto3_optional


# -- JSON Schema payloads, readers, cache and payload ------------------------------------------

def test_json_schema_payloads() -> None:
    reader = build_reader(RegistrySchema("JSON", '{"type": "object"}'), "confluent")
    assert isinstance(reader, JsonReader)
    assert reader.read(Framed(SchemaRef("id", "5"), b'{"a": 1}')) == {"a": 1}
    with pytest.raises(DeserializationError, match="not UTF-8 JSON"):
        reader.read(Framed(SchemaRef("id", "5"), b"\xff{"))


def test_unknown_schema_type_is_unusable() -> None:
    with pytest.raises(SchemaParseError, match="not supported"):
        build_reader(RegistrySchema("THRIFT", "x"), "confluent")


class Gate:
    def __init__(self, holding: bool = False) -> None:
        self.holding = holding

    def hold(self, raw: Any, ref: Any, listener: Any) -> None:
        raise AssertionError("not used here")


def test_payload_reads_cached_schemas_and_asks_for_missing_ones() -> None:
    now = [100.0]
    cache = SchemaCache(clock=lambda: now[0])
    gate = Gate()
    payload = RegistryPayload("confluent", cache, gate)  # type: ignore[arg-type]
    value = confluent(1, avro_bytes(AVRO_SCHEMA, RECORD))
    wait = payload.load(value)
    assert isinstance(wait, AwaitSchema) and wait.ref == SchemaRef("id", "1") and wait.gate is gate
    cache.put(SchemaRef("id", "1"), AvroReader(json.dumps(AVRO_SCHEMA)))
    assert payload.load(value) == RECORD
    gate.holding = True  # earlier records wait: this one queues behind them, whatever its schema
    assert payload.load(value) == AwaitSchema(gate, None)  # type: ignore[arg-type]


def test_not_found_is_remembered_for_a_while_and_unusable_for_good() -> None:
    now = [100.0]
    cache = SchemaCache(clock=lambda: now[0])
    payload = RegistryPayload("glue", cache, Gate())  # type: ignore[arg-type]
    version = uuid.uuid4()
    ref = SchemaRef("glue", str(version))
    cache.not_found(ref, "Glue has no schema version")
    with pytest.raises(DeserializationError) as caught:
        payload.load(glue(version, b"x"))
    rejection = caught.value.rejection()
    assert (rejection.stage, rejection.rule, rejection.field, rejection.value) == (
        Stage.DESERIALIZATION, "unknown_schema", "schemaId", str(version))
    now[0] += NOT_FOUND_TTL_S
    assert cache.get(ref) is None  # asked again after the TTL (a lagging replica may know it by then)
    cache.unusable(ref, "cannot be used")
    now[0] += 10**9
    with pytest.raises(DeserializationError, match="cannot be used"):
        payload.load(glue(version, b"x"))
