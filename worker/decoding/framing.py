"""Schema-registry wire formats: which schema a record names, and where its payload starts.

Confluent (Schema Registry serializers, Avro / Protobuf / JSON Schema):
  byte 0 = magic 0, bytes 1-4 = schema ID (big-endian int32), then the payload. Magic 1 is
  followed by a 16-byte schema GUID instead. Protobuf payloads start with the message-index
  array: a zigzag varint count, then that many zigzag varints (a lone 0 byte means [0]).
  Newer serializers may put the ID in the `__value_schema_id` header instead (same bytes:
  magic, ID or GUID, then for Protobuf the index array); the value is then the bare payload.
AWS Glue Schema Registry:
  byte 0 = header version 3, byte 1 = compression (0 none, 5 zlib), bytes 2-17 = the schema
  version UUID, then the payload (zlib-compressed when byte 1 is 5). Protobuf payloads start
  with an unsigned varint message index (see `protobuf.glue_message_order`).
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from worker.decoding.outcomes import DeserializationError, SchemaRef
from worker.records import Header

CONFLUENT_MAGIC_ID = 0
CONFLUENT_MAGIC_GUID = 1
CONFLUENT_VALUE_HEADER = "__value_schema_id"
GLUE_HEADER_VERSION = 3
GLUE_COMPRESSION_NONE = 0
GLUE_COMPRESSION_ZLIB = 5
GLUE_HEADER_BYTES = 18
#: A decompressed Glue payload larger than this is refused (a zlib bomb costs memory, not just CPU).
MAX_DECOMPRESSED_BYTES = 8 * 1024 * 1024
_MAX_INDEXES = 64


@dataclass(frozen=True, slots=True)
class Framed:
    """A record split into the schema it names and its payload.

    `indexes` holds the Confluent message-index bytes when they travelled in the header
    (None: for Protobuf they start the `body`).
    """

    ref: SchemaRef
    body: bytes
    indexes: bytes | None = None


def _id_prefix(data: bytes, where: str) -> tuple[SchemaRef, int]:
    if not data:
        raise DeserializationError("bad_magic_byte", f"{where} is empty: no Confluent schema ID",
                                   field="magicByte")
    magic = data[0]
    if magic == CONFLUENT_MAGIC_ID:
        if len(data) < 5:
            raise DeserializationError("truncated_frame", f"{where} ends inside the 4-byte schema ID",
                                       field="magicByte", value=data.hex())
        return SchemaRef("id", str(int.from_bytes(data[1:5], "big"))), 5
    if magic == CONFLUENT_MAGIC_GUID:
        if len(data) < 17:
            raise DeserializationError("truncated_frame", f"{where} ends inside the 16-byte schema GUID",
                                       field="magicByte", value=data.hex())
        return SchemaRef("guid", str(uuid.UUID(bytes=bytes(data[1:17])))), 17
    raise DeserializationError(
        "bad_magic_byte",
        f"{where} starts with byte 0x{magic:02x}, not the Confluent magic byte 0x00: not written by a "
        "Schema Registry serializer (is this topic's format right?)",
        field="magicByte", value=f"0x{magic:02x}",
    )


def confluent_frame(value: bytes, headers: Sequence[Header] = ()) -> Framed:
    """Split a Confluent-framed value; the `__value_schema_id` header wins over the prefix."""
    for name, header in headers:
        if name == CONFLUENT_VALUE_HEADER:
            ref, start = _id_prefix(header, f"header {CONFLUENT_VALUE_HEADER}")
            return Framed(ref, value, header[start:])
    ref, start = _id_prefix(value, "value")
    return Framed(ref, value[start:])


def glue_frame(value: bytes) -> Framed:
    """Split (and decompress) a Glue-framed value."""
    if len(value) < GLUE_HEADER_BYTES:
        raise DeserializationError("truncated_frame", f"value is {len(value)} bytes, shorter than the 18-byte "
                                   "Glue Schema Registry header", field="headerVersion")
    if value[0] != GLUE_HEADER_VERSION:
        raise DeserializationError(
            "bad_magic_byte",
            f"value starts with byte 0x{value[0]:02x}, not the Glue header version 0x03: not written by a "
            "Glue Schema Registry serializer (is this topic's format right?)",
            field="headerVersion", value=f"0x{value[0]:02x}",
        )
    ref = SchemaRef("glue", str(uuid.UUID(bytes=bytes(value[2:18]))))
    compression = value[1]
    body = value[GLUE_HEADER_BYTES:]
    if compression == GLUE_COMPRESSION_NONE:
        return Framed(ref, body)
    if compression != GLUE_COMPRESSION_ZLIB:
        raise DeserializationError("bad_compression", f"unknown Glue compression byte {compression} "
                                   "(0 none, 5 zlib)", ref)
    inflater = zlib.decompressobj()
    try:
        plain = inflater.decompress(body, MAX_DECOMPRESSED_BYTES)
    except zlib.error as exc:
        raise DeserializationError("bad_compression", f"zlib payload does not decompress: {exc}", ref) from None
    if inflater.unconsumed_tail:
        raise DeserializationError("too_large", f"payload decompresses to more than {MAX_DECOMPRESSED_BYTES} "
                                   "bytes", ref)
    if not inflater.eof:
        raise DeserializationError("bad_compression", "zlib payload is truncated", ref)
    return Framed(ref, plain)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 varint at `pos`: (value, next position)."""
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def read_zigzag(data: bytes, pos: int) -> tuple[int, int]:
    raw, pos = read_varint(data, pos)
    return (raw >> 1) ^ -(raw & 1), pos


def confluent_message_indexes(data: bytes, pos: int = 0) -> tuple[list[int], int]:
    """The Confluent Protobuf message-index array at `pos`: (path of indexes, next position)."""
    count, pos = read_zigzag(data, pos)
    if count == 0:
        return [0], pos
    if count < 0 or count > _MAX_INDEXES:
        raise ValueError(f"message-index count {count} out of range")
    indexes = []
    for _ in range(count):
        index, pos = read_zigzag(data, pos)
        if index < 0:
            raise ValueError(f"negative message index {index}")
        indexes.append(index)
    return indexes, pos


def zigzag_bytes(values: Sequence[int]) -> bytes:
    """Encode a Confluent message-index array (the inverse of `confluent_message_indexes`)."""
    if list(values) == [0]:
        return b"\x00"
    out = bytearray()
    for value in (len(values), *values):
        raw = (value << 1) ^ (value >> 63)
        while True:
            byte = raw & 0x7F
            raw >>= 7
            out.append(byte | (0x80 if raw else 0))
            if not raw:
                break
    return bytes(out)
