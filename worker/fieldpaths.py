"""Dot paths into a parsed record and the conversions every mapping shares (pure).

`worker.mapping` (items, users, interactions) and `worker.action_mapping` (actions, action
interactions) both read records through these, so a path, an ID, a time or a derived event
ID means the same on every topic.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from worker.config.mapping import AnyMapping, TimestampUnit
from worker.decoding.outcomes import ShapeError
from worker.records import SourceRef
from worker.schemas import property_key
from worker.validation import Rule, ValidationError


class MappingConfigError(ValueError):
    """A mapping that does not fit its schema (unknown column, wrong dataset type)."""


class MappingError(ShapeError):
    """Nothing usable could be extracted: not JSON, not an object, missing or wrong-typed path."""


Path = tuple[str, ...]


def compile_paths(paths: Sequence[str]) -> tuple[Path, ...]:
    return tuple(tuple(p.split(".")) for p in paths)


def extract(obj: Any, paths: tuple[Path, ...]) -> Any:
    """The first non-null value found at one of `paths`; None when none holds one.

    A path through something that is not an object (or a list, for a numeric segment)
    simply finds nothing, so the next path is tried.
    """
    for path in paths:
        cur = obj
        for seg in path:
            if type(cur) is dict:
                cur = cur.get(seg)
            elif type(cur) is list and seg.isascii() and seg.isdigit() and int(seg) < len(cur):
                cur = cur[int(seg)]
            else:
                cur = None
            if cur is None:
                break
        if cur is not None:
            return cur
    return None


def as_id(field: str, raw: Any) -> str:
    """IDs are strings; integers are accepted and written in decimal (common for user IDs)."""
    if type(raw) is str:
        return raw
    if type(raw) is int:
        return str(raw)
    raise MappingError(Rule.WRONG_TYPE.value, field, f"expected a string, got {type(raw).__name__}", raw)


def to_epoch_seconds(field: str, raw: Any, unit: TimestampUnit) -> float:
    """Convert a source time to epoch seconds; naive ISO-8601 times are taken as UTC."""
    if unit == "iso8601" or (unit.startswith("iso8601_or_") and isinstance(raw, str)):
        if not isinstance(raw, str):
            raise MappingError(
                Rule.WRONG_TYPE.value, field, f"expected an ISO-8601 string (timestamp unit {unit})", raw
            )
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise MappingError("bad_timestamp", field, "not an ISO-8601 date-time", raw) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise MappingError(
            Rule.WRONG_TYPE.value, field, f"expected a number of epoch {unit} (timestamp unit {unit})", raw
        )
    try:
        if unit in ("milliseconds", "iso8601_or_milliseconds"):
            return raw / 1000
        return raw / 1_000_000 if unit == "microseconds" else float(raw)
    except OverflowError:
        raise ValidationError(Rule.OUT_OF_RANGE, field, "timestamp is too large", raw) from None


def derived_event_id(
    source: SourceRef, timestamp_ms: int | None = None, key: bytes | None = None, value: bytes | None = None
) -> str:
    """A stable eventId derived from the record itself (64 hex chars, same in every process).

    Inputs: topic, partition, offset, the record's timestamp and SHA-256 digests of its key
    and value, all of which travel with the record (a redelivery, and a `dlq replay` that
    keeps the original key, value and timestamp, get the same ID). Position alone is not
    enough: after a topic is deleted and re-created (offsets restart at 0), or with two
    clusters feeding one tracker, new records take positions old ones had, and Personalize
    keeps only the first event with a given eventId. Two records get the same ID only when
    they sit at the same position with the same timestamp, key and value bytes — copies of
    one record. Cluster and topic IDs are deliberately left out: they come from metadata,
    not from the record, so a redelivery could see a different value and get a new ID.
    """
    digest = hashlib.sha256(b"clickstream-event-id/2\x00")
    digest.update(f"{source.topic}\x00{source.partition}\x00{source.offset}\x00{timestamp_ms}\x00".encode())
    for part in (key, value):
        # Length-prefixed so no key/value split can collide with another; None differs from b"".
        digest.update(b"\xff" if part is None else len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def column_paths(
    spec: AnyMapping, columns: Sequence[str], prefix: str
) -> dict[str, Any]:
    known = set(columns)
    unknown = sorted(set(spec.fields) - known)
    if unknown:
        raise MappingConfigError(
            f"mapping `fields` names {unknown}, which are not mappable columns of the schema; known: {sorted(known)}"
        )
    out: dict[str, Any] = {}
    for column in columns:
        paths = spec.fields.get(column)
        if paths is None:
            candidates = (property_key(column), column, column.lower())
            paths = tuple(dict.fromkeys(f"{prefix}.{c}" for c in candidates))
        out[column] = compile_paths(paths)
    return out


def parse_impression(raw: Any) -> list[str] | None:
    """An impression given as a list of IDs or one string joined with |."""
    if raw is None:
        return None
    if type(raw) is str:
        return raw.split("|") if raw else None
    if type(raw) is list:
        return [as_id("impression", v) for v in raw]
    raise MappingError(
        Rule.WRONG_TYPE.value,
        "impression",
        f"expected a list or |-joined string, got {type(raw).__name__}",
        raw,
    )


def whole_seconds(field: str, seconds: float) -> int:
    """Time columns are Avro longs: floor to whole seconds (sub-second precision is dropped)."""
    if not math.isfinite(seconds):
        raise ValidationError(Rule.NOT_FINITE, field, "must be a finite time", seconds)
    return int(seconds // 1)


def event_type_of(obj: Any, paths: tuple[Path, ...], allowed: frozenset[str] | set[str],
                  renames: Mapping[str, str]) -> str:
    """The event type at `paths`: required, within `allowed` (when set), then renamed. Shared by
    events and action interactions, which read their types the same way."""
    raw_type = extract(obj, paths)
    if raw_type is None:
        raise MappingError("missing", "eventType", "no event type at the configured paths")
    event_type = as_id("eventType", raw_type)
    if allowed and event_type not in allowed:
        raise ValidationError(Rule.EVENT_TYPE_NOT_ALLOWED, "eventType", "is not in allowed_event_types", event_type)
    return renames.get(event_type, event_type)
