"""Avro binary payloads, read with fastavro against the writer's schema from the registry.

Logical types are read as their underlying type (`timestamp-millis` stays a long of epoch
milliseconds, `decimal` stays bytes): the mapping then treats the value like its JSON
counterpart, and `timestamp_unit` says what a number means. Converting to `datetime` first
would only be converted back.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import fastavro

from worker.decoding.framing import Framed
from worker.decoding.outcomes import DeserializationError, SchemaRef


class SchemaParseError(ValueError):
    """A registry schema this worker cannot use (malformed, or outside the supported subset)."""


def _plain(node: Any) -> Any:
    """The schema with every `logicalType` annotation removed (see the module docstring)."""
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


class AvroReader:
    """Decodes the Avro binary encoding of one writer schema (named references resolved first)."""

    format = "AVRO"

    def __init__(self, text: str, references: Sequence[str] = ()) -> None:
        named: dict[str, Any] = {}
        try:
            for ref in references:  # in dependency order: each may use the names defined before it
                fastavro.parse_schema(_plain(json.loads(ref)), named_schemas=named)
            self._schema = fastavro.parse_schema(_plain(json.loads(text)), named_schemas=named)
        except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException) as exc:
            raise SchemaParseError(f"not a usable Avro schema: {exc}") from None

    def read(self, framed: Framed) -> Any:
        return self.read_from(framed.body, 0, framed.ref)

    def read_from(self, data: bytes, start: int, ref: SchemaRef) -> Any:
        """The record encoded in `data[start:]` (the hot path: no copy of the payload)."""
        buffer = io.BytesIO(data)
        buffer.seek(start)
        try:
            obj = fastavro.schemaless_reader(buffer, self._schema, None)
        except (EOFError, ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError, OverflowError,
                MemoryError) as exc:
            raise DeserializationError("schema_mismatch", f"payload does not match Avro {ref.describe()}: "
                                       f"{type(exc).__name__}: {str(exc)[:120]}", ref) from None
        if buffer.tell() != len(data):
            raise DeserializationError("schema_mismatch", f"payload has {len(data) - buffer.tell()} bytes left "
                                       f"after the Avro record of {ref.describe()}", ref)
        return obj
