"""Delivered interactions -> Personalize-importable CSV, and the archive's object keys (pure).

The CSV follows the bulk-import rules (contract §6.1): a header row naming the schema's
fields **in schema order**, unquoted; one row per interaction; UTF-8; empty cells for
nulls; booleans lower-case. Values come from the wire ``Event`` of each
`worker.records.Interaction` — exactly what PutEvents sent:

==========================  =====================================================
column                      value
==========================  =====================================================
USER_ID                     ``userId``; for an anonymous event the ``sessionId``
                            (``anonymous="session"``, what PutEvents trains on for
                            a session without a user) or no row (``"skip"``)
ITEM_ID                     ``itemId`` (a row without one is skipped: the column is
                            required and an import would fail on it)
TIMESTAMP                   ``int(sentAt)``: epoch seconds, an Avro long
EVENT_TYPE / EVENT_VALUE    ``eventType`` / ``eventValue``
IMPRESSION                  ``impression`` joined with ``|``
RECOMMENDATION_ID           ``recommendationId``
EVENT_ATTRIBUTION_SOURCE    ``metricAttribution.eventAttributionSource``
custom columns              ``properties[camelCase(column)]`` (the mapping the worker
                            applied on the way in, reversed)
==========================  =====================================================

The same row therefore reaches the dataset through both paths; Personalize keeps one of
two interactions with the same timestamp and properties, so importing the archive on top
of the events the tracker already recorded does not double them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from worker.records import Interaction
from worker.schemas import DatasetSchema, property_key

Anonymous = Literal["session", "skip"]
Layout = Literal["flat", "hive"]

_Getter = Callable[[Interaction, Mapping[str, Any]], Any]


def _user(anonymous: Anonymous) -> _Getter:
    def get(i: Interaction, _: Mapping[str, Any]) -> Any:
        if i.user_id is not None:
            return i.user_id
        return i.session_id if anonymous == "session" else None

    return get


def _member(name: str) -> _Getter:
    return lambda i, _: i.event.get(name)


def _attribution(i: Interaction, _: Mapping[str, Any]) -> Any:
    source = i.event.get("metricAttribution")
    return source.get("eventAttributionSource") if isinstance(source, dict) else None


def _impression(i: Interaction, _: Mapping[str, Any]) -> Any:
    shown = i.event.get("impression")
    return "|".join(shown) if shown else None


def _timestamp(i: Interaction, _: Mapping[str, Any]) -> Any:
    return math.floor(float(i.event["sentAt"]))


def _property(key: str) -> _Getter:
    return lambda _, props: props.get(key)


def format_value(value: Any) -> str:
    """One cell: '' for null, lower-case booleans, integral floats without noise."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class ArchiveColumns:
    """The CSV layout of one interactions schema: header names and how to fill each cell."""

    names: tuple[str, ...]
    getters: tuple[_Getter, ...]
    #: Columns that must be non-empty for the row to be importable.
    required: frozenset[int]

    @classmethod
    def from_schema(cls, schema: DatasetSchema, anonymous: Anonymous = "session") -> ArchiveColumns:
        reserved: dict[str, _Getter] = {
            "USER_ID": _user(anonymous),
            "ITEM_ID": _member("itemId"),
            "TIMESTAMP": _timestamp,
            "EVENT_TYPE": _member("eventType"),
            "EVENT_VALUE": _member("eventValue"),
            "IMPRESSION": _impression,
            "RECOMMENDATION_ID": _member("recommendationId"),
            "EVENT_ATTRIBUTION_SOURCE": _attribution,
        }
        names, getters, required = [], [], set()
        for index, field in enumerate(schema.fields):
            names.append(field.name)
            getters.append(reserved.get(field.name) or _property(property_key(field.name)))
            if not field.nullable:
                required.add(index)
        return cls(tuple(names), tuple(getters), frozenset(required))

    def header(self) -> str:
        return ",".join(self.names)

    def row(self, interaction: Interaction) -> list[str] | None:
        """The cells of one interaction, or None when a required column would be empty."""
        raw_props = interaction.event.get("properties")
        props: Mapping[str, Any] = json.loads(raw_props) if raw_props else {}
        cells = [format_value(get(interaction, props)) for get in self.getters]
        if any(cells[i] == "" for i in self.required):
            return None
        return cells


@dataclass(frozen=True, slots=True)
class EncodedRows:
    """CSV body lines (no header) for a batch of interactions."""

    text: str
    rows: int
    skipped: int


def encode_rows(columns: ArchiveColumns, interactions: Iterable[Interaction]) -> EncodedRows:
    """CSV lines (RFC 4180 quoting where needed, ``\\n`` line ends) without the header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    rows = skipped = 0
    for interaction in interactions:
        cells = columns.row(interaction)
        if cells is None:
            skipped += 1
            continue
        writer.writerow(cells)
        rows += 1
    return EncodedRows(out.getvalue(), rows, skipped)


def object_body(columns: ArchiveColumns, lines: Iterable[str]) -> bytes:
    """A whole object: header, then the buffered lines, UTF-8."""
    return (columns.header() + "\n" + "".join(lines)).encode("utf-8")


def object_key(prefix: str, when: float, part_id: str, *, layout: Layout = "flat", gzip: bool = False) -> str:
    """Where an object written at `when` (epoch seconds, UTC) goes.

    ``flat``: ``<prefix>part-YYYYMMDDTHHMMSSZ-<id>.csv`` (sortable by time, all at the
    first level so one import of the folder reads them all); ``hive``:
    ``<prefix>dt=YYYY-MM-DD/hour=HH/part-<id>.csv``.
    """
    stamp = time.gmtime(when)
    suffix = ".csv.gz" if gzip else ".csv"
    if layout == "hive":
        return f"{prefix}dt={time.strftime('%Y-%m-%d', stamp)}/hour={stamp.tm_hour:02d}/part-{part_id}{suffix}"
    return f"{prefix}part-{time.strftime('%Y%m%dT%H%M%SZ', stamp)}-{part_id}{suffix}"
