"""The avro_vs_json scenario's data: the same seeded events as JSON and as Confluent-framed Avro.

The generator writes Segment `track` JSON; `TRACK_SCHEMA` describes exactly that shape, so
each event is re-encoded field for field (fastavro) and framed as a Confluent serializer
would (magic byte 0, big-endian schema ID, Avro binary). Both topics then hold the same
events in the same order, and the worker maps both with the same default (Segment) mapping.
"""

from __future__ import annotations

import io
import json
import struct
import time
from typing import Any

import fastavro
from clickstream_devkit.generate_cmd import BACKFILL_EVENTS_PER_SECOND
from clickstream_devkit.generator import ClickstreamGenerator, GeneratedRecord

_OPT_STRING: list[Any] = ["null", "string"]
TRACK_SCHEMA: dict[str, Any] = {
    "type": "record", "name": "Track", "namespace": "bench",
    "fields": [
        {"name": "type", "type": "string"},
        {"name": "messageId", "type": "string"},
        {"name": "userId", "type": _OPT_STRING, "default": None},
        {"name": "anonymousId", "type": "string"},
        {"name": "event", "type": "string"},
        {"name": "timestamp", "type": "string"},
        {"name": "context", "type": {"type": "record", "name": "Context",
                                     "fields": [{"name": "sessionId", "type": "string"}]}},
        {"name": "properties", "type": {"type": "record", "name": "Properties", "fields": [
            {"name": "productId", "type": "string"},
            {"name": "value", "type": ["null", "double"], "default": None},
            {"name": "device", "type": _OPT_STRING, "default": None},
            {"name": "recommendationId", "type": _OPT_STRING, "default": None},
            {"name": "impression", "type": ["null", {"type": "array", "items": "string"}], "default": None},
        ]}},
    ],
}


def realistic_records(seed: int, count: int, users: int, items: int) -> list[GeneratedRecord]:
    """The generator's realistic stream (interleaved sessions), as `clickstream-worker generate` backfills it."""
    generator = ClickstreamGenerator(seed=seed, users=users, items=items, bad_fraction=0.0,
                                     start_time=time.time() - count / BACKFILL_EVENTS_PER_SECOND,
                                     events_per_second=BACKFILL_EVENTS_PER_SECOND)
    return list(generator.events(count))


def confluent_avro(records: list[GeneratedRecord], schema_id: int) -> list[tuple[bytes, bytes]]:
    """(key, Confluent-framed Avro value) for each record."""
    parsed = fastavro.parse_schema(TRACK_SCHEMA)
    prefix = b"\x00" + struct.pack(">I", schema_id)
    out: list[tuple[bytes, bytes]] = []
    for record in records:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, json.loads(record.value))
        out.append((record.key, prefix + buffer.getvalue()))
    return out
