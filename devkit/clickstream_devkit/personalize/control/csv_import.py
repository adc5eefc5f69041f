"""Bulk CSV files checked against the dataset's schema, as CreateDatasetImportJob does (pure).

Rules (contract §6.1, §6.3, §7): UTF-8; a header row that names the schema's fields in the
schema's order (names compared ignoring case; headers are not quoted); one value per
column; types as the schema says (``long``/``int`` integers, ``float``/``double`` finite
numbers, ``boolean`` lower-case ``true``/``false``); an empty value only in a nullable
field; IDs 1-256 characters; categorical values at most 1000 characters including the
``|`` separators. An Item interactions import needs at least 1000 records.

The first offending row fails the whole job with a reason naming the file, the line and
the field, which is the only way to fix a 100,000-line file.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Final

from clickstream_devkit.personalize.control.bulk_store import BulkInteraction
from worker.records import DatasetType
from worker.schemas import ID_FIELDS, DatasetSchema, SchemaField

MIN_INTERACTION_RECORDS: Final = 1000
MAX_ID_CHARS: Final = 256
MAX_CATEGORICAL_CHARS: Final = 1000

Value = str | int | float | bool | None


class ImportFailure(Exception):  # noqa: N818 - it is the job's failureReason, not a bug
    """The job's failureReason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ParsedData:
    """What one import job read: interactions (Interactions datasets) or records (Items/Users)."""

    interactions: list[BulkInteraction] = field(default_factory=list)
    records: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.interactions) + len(self.records)


def parse_files(files: list[tuple[str, bytes]], schema: DatasetSchema) -> ParsedData:
    """Parse every (name, content) file into one result; raise `ImportFailure` on the first problem."""
    if not files:
        raise ImportFailure("No data files found at the data location.")
    parsed = ParsedData()
    for name, content in files:
        parse_into(parsed, name, content, schema)
    if schema.dataset_type is DatasetType.INTERACTIONS and parsed.count < MIN_INTERACTION_RECORDS:
        raise ImportFailure(
            f"Import job has {parsed.count} interaction records; an import job needs at least "
            f"{MIN_INTERACTION_RECORDS} item interaction records."
        )
    return parsed


def parse_into(parsed: ParsedData, name: str, content: bytes, schema: DatasetSchema) -> None:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFailure(f"{name}: the file is not UTF-8 ({exc.reason} at byte {exc.start}).") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFailure(f"{name}: the file is empty; it needs a header row.") from None
    except csv.Error as exc:
        raise ImportFailure(f"{name}: line 1 is not valid CSV ({exc}).") from None
    _check_header(name, header, schema)
    id_field = ID_FIELDS[schema.dataset_type]
    try:
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and row[0] == ""):
                continue  # blank line
            if len(row) != len(schema.fields):
                raise ImportFailure(
                    f"{name}: line {line} has {len(row)} values but the header has {len(schema.fields)} columns."
                )
            values = {f.name: _convert(name, line, f, raw, id_field) for f, raw in zip(schema.fields, row, strict=True)}
            if schema.dataset_type is DatasetType.INTERACTIONS:
                parsed.interactions.append(_interaction(values))
            else:
                record_id = str(values[id_field])
                parsed.records.append(
                    (
                        record_id,
                        {f.name: row[i] if values[f.name] is not None else None for i, f in enumerate(schema.fields)},
                    )
                )
    except csv.Error as exc:
        raise ImportFailure(f"{name}: line {reader.line_num} is not valid CSV ({exc}).") from None


def _check_header(name: str, header: list[str], schema: DatasetSchema) -> None:
    expected = [f.name for f in schema.fields]
    if [h.strip().upper() for h in header] != [e.upper() for e in expected]:
        raise ImportFailure(
            f"{name}: the CSV header {header} does not match the schema fields {expected} "
            "(names are compared ignoring case; the columns must be in the schema's order)."
        )


def _convert(name: str, line: int, spec: SchemaField, raw: str, id_field: str) -> Value:
    where = f"{name}: line {line}, field {spec.name}"
    if raw == "":
        if spec.nullable:
            return None
        raise ImportFailure(f"{where}: empty value in a field that is not nullable.")
    kind = spec.avro_type
    if kind == "string":
        if spec.name in (id_field, "ITEM_ID", "USER_ID") and len(raw) > MAX_ID_CHARS:
            raise ImportFailure(f"{where}: IDs have at most {MAX_ID_CHARS} characters, this one has {len(raw)}.")
        if spec.categorical and len(raw) > MAX_CATEGORICAL_CHARS:
            raise ImportFailure(
                f"{where}: categorical values have at most {MAX_CATEGORICAL_CHARS} characters, this one has {len(raw)}."
            )
        return raw
    if kind in ("int", "long"):
        try:
            return int(raw)
        except ValueError:
            raise ImportFailure(f"{where}: {raw[:50]!r} is not a {kind}.") from None
    if kind in ("float", "double"):
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ImportFailure(f"{where}: {raw[:50]!r} is not a {kind}.")
        return number
    if raw not in ("true", "false"):
        raise ImportFailure(f"{where}: {raw[:50]!r} is not a boolean (write lower-case true or false).")
    return raw == "true"


def _interaction(values: dict[str, Value]) -> BulkInteraction:
    event_type = values.get("EVENT_TYPE")
    event_value = values.get("EVENT_VALUE")
    timestamp = values["TIMESTAMP"]
    assert isinstance(timestamp, int)  # the schema makes TIMESTAMP a long: _convert checked it
    assert event_value is None or isinstance(event_value, float)  # EVENT_VALUE is a float
    return BulkInteraction(
        user_id=str(values["USER_ID"]),
        item_id=str(values["ITEM_ID"]),
        timestamp=float(timestamp),
        event_type=None if event_type is None else str(event_type),
        event_value=event_value,
    )
