"""A registry schema -> the reader that decodes payloads written with it.

Schema types: AVRO (fastavro), PROTOBUF (`protobuf` + our .proto parser), JSON (JSON
Schema: the payload is UTF-8 JSON; the JSON Schema itself is not enforced — the dataset
schema validation that follows is the authority on what reaches Personalize).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from worker.decoding.avro import AvroReader, SchemaParseError
from worker.decoding.framing import Framed
from worker.decoding.outcomes import DeserializationError
from worker.decoding.protobuf import ProtobufReader

SCHEMA_TYPES = ("AVRO", "PROTOBUF", "JSON")


class Reader(Protocol):
    format: str

    def read(self, framed: Framed) -> Any: ...


class JsonReader:
    format = "JSON"

    def read(self, framed: Framed) -> Any:
        try:
            return json.loads(framed.body)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise DeserializationError("schema_mismatch", f"payload of JSON Schema {framed.ref.describe()} is "
                                       f"not UTF-8 JSON: {str(exc)[:120]}", framed.ref) from None


@dataclass(frozen=True, slots=True)
class RegistrySchema:
    """A schema as a registry returns it, with the schemas it references (dependencies first)."""

    schema_type: str  # AVRO | PROTOBUF | JSON
    text: str
    references: tuple[tuple[str, str], ...] = ()  # (reference name, schema text)


def build_reader(schema: RegistrySchema, flavor: str) -> Reader:
    """Parse a registry schema once; raise SchemaParseError when it cannot be used."""
    kind = schema.schema_type.upper()
    if kind == "AVRO":
        return AvroReader(schema.text, [text for _name, text in schema.references])
    if kind == "PROTOBUF":
        return ProtobufReader(schema.text, schema.references, flavor=flavor)
    if kind == "JSON":
        return JsonReader()
    raise SchemaParseError(f"schema type {schema.schema_type!r} is not supported ({', '.join(SCHEMA_TYPES)})")
