"""Protobuf payloads: descriptors from the registry's .proto text, messages to plain objects.

Which message of the schema a record holds is named in the record: Confluent writes a path
of indexes (top-level message, then nested ones), Glue one index into the schema's messages
listed breadth-first and sorted by full name (its serializer's `MessageIndexFinder`).
Decoded messages become dicts keyed by the .proto field names; unset proto3 fields are
absent (so a mapping path finds nothing), enums are their value names, 64-bit integers stay
integers, `google.protobuf.Timestamp` becomes an ISO-8601 string.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf import (  # type: ignore[import-untyped]  # no stubs: `types-protobuf` is not installed
    descriptor,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    empty_pb2,
    message,
    message_factory,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)

from worker.decoding.avro import SchemaParseError
from worker.decoding.framing import Framed, confluent_message_indexes, read_varint
from worker.decoding.outcomes import DeserializationError
from worker.decoding.proto_text import parse_proto

#: Imports every schema may use without a registry reference.
WELL_KNOWN = {m.DESCRIPTOR.name: m.DESCRIPTOR for m in (timestamp_pb2, duration_pb2, wrappers_pb2, struct_pb2,
                                                        empty_pb2)}
_TIMESTAMP = "google.protobuf.Timestamp"
FD = descriptor.FieldDescriptor


def well_known_proto(name: str) -> descriptor_pb2.FileDescriptorProto | None:
    file = WELL_KNOWN.get(name)
    if file is None:
        return None
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    return proto


def glue_message_order(file: descriptor.FileDescriptor) -> list[descriptor.Descriptor]:
    """The Glue serializer's message numbering: breadth-first, then sorted by full name."""
    queue = list(file.message_types_by_name.values())
    found: list[descriptor.Descriptor] = []
    while queue:
        current = queue.pop(0)
        found.append(current)
        queue.extend(current.nested_types)
    return sorted(found, key=lambda d: d.full_name)


class ProtobufReader:
    """Decodes messages of one .proto file; `flavor` is the registry's framing ("confluent" | "glue")."""

    format = "PROTOBUF"

    def __init__(self, text: str, references: Sequence[tuple[str, str]] = (), *, flavor: str,
                 name: str = "schema.proto") -> None:
        """`references`: (import name, .proto text) of every file it imports, in dependency order."""
        self.flavor = flavor
        pool = descriptor_pool.DescriptorPool()
        added: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        try:
            for ref_name, ref_text in references:
                added[ref_name] = self._add(pool, added, ref_text, ref_name)
            file_proto = self._add(pool, added, text, name)
            self.file = pool.FindFileByName(file_proto.name)
        except SchemaParseError:
            raise
        except (TypeError, ValueError, KeyError) as exc:
            raise SchemaParseError(f"not a usable Protobuf schema: {exc}") from None
        self._top = list(self.file.message_types_by_name.values())
        self._glue = glue_message_order(self.file) if flavor == "glue" else []
        self._classes: dict[str, type[message.Message]] = {}

    @staticmethod
    def _add(pool: descriptor_pool.DescriptorPool, added: dict[str, descriptor_pb2.FileDescriptorProto],
             text: str, name: str) -> descriptor_pb2.FileDescriptorProto:
        deps = []
        from worker.decoding.proto_text import imports_of  # noqa: PLC0415 - keeps the import graph flat

        for dependency in imports_of(text):
            proto = added.get(dependency)
            if proto is None:
                proto = well_known_proto(dependency)
                if proto is None:
                    raise SchemaParseError(f".proto imports {dependency!r}, which is neither a schema reference "
                                           "nor a supported well-known type")
                pool.Add(proto)
                added[dependency] = proto
            deps.append(proto)
        proto = parse_proto(text, name, deps)
        pool.Add(proto)
        return proto

    def _descriptor(self, indexes: list[int]) -> descriptor.Descriptor:
        if self.flavor == "glue":
            return self._glue[indexes[0]]
        current = self._top[indexes[0]]
        for index in indexes[1:]:
            current = current.nested_types[index]
        return current

    def read(self, framed: Framed) -> Any:
        body = framed.body
        try:
            if self.flavor == "glue":
                index, start = read_varint(body, 0)
                indexes = [index]
            elif framed.indexes is not None:
                indexes, _ = confluent_message_indexes(framed.indexes)
                start = 0
            else:
                indexes, start = confluent_message_indexes(body)
            desc = self._descriptor(indexes)
        except (ValueError, IndexError):
            raise DeserializationError("schema_mismatch", f"message index does not name a message of Protobuf "
                                       f"{framed.ref.describe()}", framed.ref) from None
        cls = self._classes.get(desc.full_name)
        if cls is None:
            cls = self._classes[desc.full_name] = message_factory.GetMessageClass(desc)
        msg = cls()
        try:
            msg.ParseFromString(body[start:])
        except (message.DecodeError, ValueError, RuntimeError) as exc:
            raise DeserializationError("schema_mismatch", f"payload does not match Protobuf message "
                                       f"{desc.full_name} of {framed.ref.describe()}: {str(exc)[:120]}",
                                       framed.ref) from None
        return to_plain(msg)


def to_plain(msg: message.Message) -> Any:
    """A message as plain Python values (see the module docstring)."""
    if msg.DESCRIPTOR.full_name == _TIMESTAMP:
        seconds = msg.seconds + msg.nanos / 1e9
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    out: dict[str, Any] = {}
    for fld, value in msg.ListFields():
        out[fld.name] = _plain_field(fld, value)
    return out


def _plain_field(fld: Any, value: Any) -> Any:
    if fld.message_type is not None and fld.message_type.GetOptions().map_entry:
        value_field = fld.message_type.fields_by_name["value"]
        return {key: _plain_value(value_field, item) for key, item in value.items()}
    if _repeated(fld):
        return [_plain_value(fld, item) for item in value]
    return _plain_value(fld, value)


def _repeated(fld: Any) -> bool:
    flag = getattr(fld, "is_repeated", None)  # protobuf >= 6; `label` is gone in 7
    return bool(flag) if flag is not None else fld.label == FD.LABEL_REPEATED


def _plain_value(fld: Any, value: Any) -> Any:
    if fld.type == FD.TYPE_MESSAGE:
        return to_plain(value)
    if fld.type == FD.TYPE_ENUM:
        known = fld.enum_type.values_by_number.get(value)
        return known.name if known is not None else value
    return value
