"""Registry-framed bytes -> a plain object, from cached schemas only (pure; never waits).

The cache holds, per schema a record may name, either its reader or why there is none:
the registry answered "not found" (kept `NOT_FOUND_TTL_S`, since a replica may lag behind
the primary) or the schema cannot be used (kept for good: a registered schema never
changes). A schema not in the cache makes `load` return `AwaitSchema`; the topic's gate
fetches it and decodes the record again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from worker.decoding.avro import AvroReader
from worker.decoding.framing import Framed, confluent_frame, glue_frame
from worker.decoding.outcomes import AwaitSchema, DeserializationError, Holder, SchemaRef
from worker.decoding.readers import Reader
from worker.records import Header

NOT_FOUND_TTL_S = 60.0


@dataclass(frozen=True, slots=True)
class Unavailable:
    """Why a schema cannot be used: rule `unknown_schema` (registry: not found) or `unusable_schema`."""

    rule: str
    message: str
    until: float = float("inf")


class SchemaCache:
    """Readers (or reasons) by schema reference; shared by every topic of one registry."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[SchemaRef, Reader | Unavailable] = {}
        self._clock = clock

    def get(self, ref: SchemaRef) -> Reader | Unavailable | None:
        entry = self._entries.get(ref)
        if isinstance(entry, Unavailable) and entry.until <= self._clock():
            del self._entries[ref]
            return None
        return entry

    def put(self, ref: SchemaRef, reader: Reader) -> None:
        self._entries[ref] = reader

    def not_found(self, ref: SchemaRef, message: str) -> None:
        self._entries[ref] = Unavailable("unknown_schema", message, self._clock() + NOT_FOUND_TTL_S)

    def unusable(self, ref: SchemaRef, message: str) -> None:
        self._entries[ref] = Unavailable("unusable_schema", message)

    def __len__(self) -> int:
        return len(self._entries)


class RegistryPayload:
    """Frames, looks up and reads one topic's records (`flavor`: "confluent" or "glue")."""

    def __init__(self, flavor: str, cache: SchemaCache, gate: Holder) -> None:
        if flavor not in ("confluent", "glue"):
            raise ValueError(f"unknown registry flavor {flavor!r}")
        self.flavor = flavor
        self.cache = cache
        self.gate = gate
        #: Confluent prefix (magic 0 + 4-byte ID) -> (Avro reader, ref): the per-record hot path skips
        #: framing objects. Only readers are kept here, and a cached reader never changes.
        self._avro_by_prefix: dict[bytes, tuple[AvroReader, SchemaRef]] = {}

    def frame(self, value: bytes, headers: Sequence[Header]) -> Framed:
        return confluent_frame(value, headers) if self.flavor == "confluent" else glue_frame(value)

    def load(self, value: bytes, headers: Sequence[Header] = ()) -> Any:
        """The decoded object, or `AwaitSchema`; raises DeserializationError for undecodable bytes."""
        if self.gate.holding:  # earlier records wait for a schema: keep Kafka order behind them
            return AwaitSchema(self.gate, None)
        if not headers and (fast := self._avro_by_prefix.get(value[:5])) is not None:
            return fast[0].read_from(value, 5, fast[1])
        framed = self.frame(value, headers)
        entry = self.cache.get(framed.ref)
        if entry is None:
            return AwaitSchema(self.gate, framed.ref)
        if isinstance(entry, Unavailable):
            raise DeserializationError(entry.rule, entry.message, framed.ref)
        if isinstance(entry, AvroReader) and framed.ref.kind == "id" and not headers:
            self._avro_by_prefix[value[:5]] = (entry, framed.ref)
        return entry.read(framed)
