"""What decoding a record can yield besides one record or a rejection.

* `Fanout`: several interactions from one Kafka record (a GA4 row with several `items`);
  the pipeline completes the record only when every one of them is delivered.
* `AwaitSchema`: the record names a registry schema that is not cached yet; the topic's
  gate holds the record (and every later record of the topic, to keep Kafka order) until
  the registry answers. Nothing is dead-lettered or committed meanwhile.
* `DeserializationError`: the bytes cannot be decoded (wrong magic byte, a schema the
  registry does not have, a payload that does not match its schema): a rejection with
  stage `deserialization`, the rule and the schema ID.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from worker.records import Interaction, RawRecord, Rejection, Stage, truncate
from worker.validation import render


@dataclass(frozen=True, slots=True)
class SchemaRef:
    """A schema as a record names it: a Confluent ID or GUID, or a Glue schema version UUID."""

    kind: str  # "id" | "guid" (Confluent) | "glue"
    key: str

    def describe(self) -> str:
        return {"id": "schema ID", "guid": "schema GUID", "glue": "schema version"}[self.kind] + f" {self.key}"


class DeserializationError(Exception):
    """The record's bytes cannot be turned into an object; becomes a `deserialization` rejection."""

    def __init__(self, rule: str, message: str, ref: SchemaRef | None = None, *, field: str | None = None,
                 value: object = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.ref = ref
        self.field = field
        self.value = value

    def rejection(self) -> Rejection:
        if self.ref is not None:
            field: str | None = "schemaId"
            value: str | None = self.ref.key
        else:
            field, value = self.field, None if self.value is None else truncate(self.value)
        return Rejection(
            stage=Stage.DESERIALIZATION,
            rule=self.rule,
            message=self.message,
            field=field,
            value=value,
            exception_class="worker.decoding.DeserializationError",
        )


class ShapeError(Exception):
    """A vendor shape cannot be read (a GA4 `event_params` that is not a list, a Snowplow line with
    the wrong column count, ...): a `mapping` rejection, like any mapping failure."""

    def __init__(self, rule: str, field: str | None, message: str, value: object = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.field = field
        self.message = message
        self.value = value

    def rejection(self) -> Rejection:
        return Rejection(
            stage=Stage.MAPPING,
            rule=self.rule,
            message=self.message,
            field=self.field,
            value=None if self.value is None else render(self.value),
            exception_class="worker.mapping.MappingError",
        )


@dataclass(frozen=True, slots=True)
class Fanout:
    """Two or more interactions decoded from one record, in source order."""

    interactions: tuple[Interaction, ...]


class HoldListener(Protocol):
    """What a gate reports to (the pipeline): faults of the topic, and records to decode again."""

    def config_fault(self, target: Any, message: str) -> None: ...

    def config_recovered(self, target: Any) -> None: ...

    def requeue(self, records: list[RawRecord]) -> None: ...


class Holder(Protocol):
    """A topic's schema gate, as the pure decoder and the pipeline see it."""

    @property
    def holding(self) -> bool: ...

    def hold(self, raw: RawRecord, ref: SchemaRef | None, listener: HoldListener) -> None: ...


@dataclass(frozen=True, slots=True)
class AwaitSchema:
    """Decode this record again once `ref` is known (None: it queues behind earlier held records)."""

    gate: Holder
    ref: SchemaRef | None
