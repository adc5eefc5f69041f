"""Actions and Action interactions schemas, checked as CreateSchema would (pure).

`worker.schemas` knows the three item-side dataset types only (its `DatasetType` has no
member for the two action types), so the stand-in's CreateSchema checks these two here,
with the same conventions and messages as `worker.schemas.parse_schema`: flat Avro
records, the primitive types, nullable unions of one type, unique names (compared ignoring
case and underscores), reserved keywords upper case and of their required type. Once
`worker.schemas` learns the two types this module can delegate to it.

Rules from the developer guide's current pages (custom-datasets-and-schemas,
action-dataset-requirements, action-interactions-dataset-requirements, actions-datasets):

* Actions (record name ``Actions``): ACTION_ID (string) is required; reserved keywords
  CREATION_TIMESTAMP (long), VALUE (long, null), TYPE (string, null), EXPIRATION_TIMESTAMP
  (long, null), REPEAT_FREQUENCY (long, null); at least one metadata field; "the maximum
  number of columns is 10" / "you can add up to 10 columns", read permissively as at most
  10 fields besides ACTION_ID.
* Action interactions (record name ``ActionInteractions``, as in the guide's example):
  USER_ID, ACTION_ID, EVENT_TYPE (string) and TIMESTAMP (long) are required; IMPRESSION and
  RECOMMENDATION_ID (string, null) are reserved. No field cap is published.

Where the guide is silent the check is permissive, like `worker.schemas`: a reserved
field may be nullable unless it is required (CREATION_TIMESTAMP is listed as ``long`` but,
as for Items, a null is accepted); TYPE may or may not be categorical; a custom string
field need not be categorical (the guide says Personalize imports non-categorical action
strings but does not train on them); ``textual`` is an Items-only flag and is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

from worker.schemas import ALLOWED_TYPES, MAX_SCHEMA_CHARS, SchemaError, SchemaField

ACTIONS: Final = "actions"
ACTION_INTERACTIONS: Final = "action_interactions"
#: Avro record name -> dataset type (the lower-case CreateDataset ``datasetType``).
RECORD_NAMES: Final = {"Actions": ACTIONS, "ActionInteractions": ACTION_INTERACTIONS}
#: Fields an Actions schema may have besides ACTION_ID.
MAX_ACTION_COLUMNS: Final = 10


@dataclass(frozen=True, slots=True)
class _Reserved:
    avro_type: str
    required: bool
    #: True or False: the flag the field must carry; None: either.
    categorical: bool | None = False


_REQUIRED_STRING = _Reserved("string", required=True)
_OPTIONAL_STRING = _Reserved("string", required=False)
_OPTIONAL_LONG = _Reserved("long", required=False)
RESERVED: Final[dict[str, dict[str, _Reserved]]] = {
    ACTIONS: {
        "ACTION_ID": _REQUIRED_STRING,
        "CREATION_TIMESTAMP": _OPTIONAL_LONG,
        "VALUE": _OPTIONAL_LONG,
        "TYPE": _Reserved("string", required=False, categorical=None),
        "EXPIRATION_TIMESTAMP": _OPTIONAL_LONG,
        "REPEAT_FREQUENCY": _OPTIONAL_LONG,
    },
    ACTION_INTERACTIONS: {
        "USER_ID": _REQUIRED_STRING,
        "ACTION_ID": _REQUIRED_STRING,
        "EVENT_TYPE": _REQUIRED_STRING,
        "TIMESTAMP": _Reserved("long", required=True),
        "IMPRESSION": _OPTIONAL_STRING,
        "RECOMMENDATION_ID": _OPTIONAL_STRING,
    },
}


@dataclass(frozen=True)
class ActionSchema:
    """A checked Actions or Action interactions schema."""

    dataset_type: str
    fields: tuple[SchemaField, ...]
    text: str

    @property
    def name(self) -> str:
        return next(name for name, kind in RECORD_NAMES.items() if kind == self.dataset_type)

    @cached_property
    def by_name(self) -> dict[str, SchemaField]:
        return {f.name: f for f in self.fields}

    @property
    def custom(self) -> tuple[SchemaField, ...]:
        return tuple(f for f in self.fields if not f.reserved)


def record_name(text: str) -> str | None:
    """The record ``name`` of a schema text, or None when it has none (the text is not checked)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return None
    name = doc.get("name") if isinstance(doc, dict) else None
    return name if isinstance(name, str) else None


def is_action_schema(text: str) -> bool:
    return record_name(text) in RECORD_NAMES


def parse_action_schema(text: str) -> ActionSchema:
    """Check an Actions / ActionInteractions schema text; raise `SchemaError` naming the field and the fix."""
    if len(text) > MAX_SCHEMA_CHARS:
        raise SchemaError(
            f"schema is {len(text)} chars; CreateSchema accepts at most {MAX_SCHEMA_CHARS}: remove fields or whitespace"
        )
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SchemaError(f"schema is not JSON ({exc}): write the Avro schema as a JSON object") from exc
    if not isinstance(doc, dict) or doc.get("type") != "record":
        raise SchemaError('schema must be an Avro record: {"type": "record", "name": ..., "fields": [...]}')
    name = doc.get("name")
    kind = RECORD_NAMES.get(name) if isinstance(name, str) else None
    if kind is None:
        raise SchemaError(f"record name {name!r} is not an action dataset type: use one of {sorted(RECORD_NAMES)}")
    raw_fields = doc.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise SchemaError('schema needs a non-empty "fields" list of {"name": ..., "type": ...} objects')
    reserved = RESERVED[kind]
    fields = tuple(_field(i, raw, reserved) for i, raw in enumerate(raw_fields))
    _check_unique(fields)
    _check_dataset(kind, fields, reserved)
    return ActionSchema(dataset_type=kind, fields=fields, text=text)


def _field(index: int, raw: object, reserved: dict[str, _Reserved]) -> SchemaField:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise SchemaError(f'fields[{index}] must be an object with a string "name" and a "type"')
    name: str = raw["name"]
    plain = name.replace("_", "")
    if not name or not name.isascii() or not (name[0].isalpha() or name[0] == "_") or not plain.isalnum():
        raise SchemaError("names must be ASCII alphanumeric (A-Z, a-z, 0-9, _) and start with a letter", name)
    avro_type, nullable = _type(name, raw.get("type"))
    categorical, textual = _flag(name, raw, "categorical"), _flag(name, raw, "textual")
    if textual:
        raise SchemaError('"textual" is allowed only in Items schemas: use "categorical": true or drop the flag', name)
    if name.upper() in reserved and name not in reserved:
        raise SchemaError(f"reserved field names are upper case: rename it to {name.upper()}", name)
    spec = reserved.get(name)
    if spec is not None:
        if avro_type != spec.avro_type:
            raise SchemaError(f'reserved field must have type "{spec.avro_type}", not "{avro_type}"', name)
        if nullable and spec.required:
            raise SchemaError(f'reserved field is required and cannot be nullable: use "{spec.avro_type}"', name)
        if spec.categorical is not None and categorical != spec.categorical:
            raise SchemaError('reserved field has the wrong categorical flag: remove "categorical": true', name)
        return SchemaField(name, avro_type, nullable, categorical, textual=False, reserved=True)
    if categorical and avro_type != "string":
        raise SchemaError(f'"categorical" applies to string fields only, this one is {avro_type}: drop the flag', name)
    return SchemaField(name, avro_type, nullable, categorical, textual=False, reserved=False)


def _type(name: str, raw: object) -> tuple[str, bool]:
    """(the one non-null Avro type, nullable) or raise."""
    given: list[object] = raw if isinstance(raw, list) else [raw]
    options = [t for t in given if isinstance(t, str)]
    if not options or len(options) != len(given):
        raise SchemaError('"type" must be a primitive type such as "string" or a union such as ["null", "long"]', name)
    for t in options:
        if t != "null" and t not in ALLOWED_TYPES:
            allowed = sorted(ALLOWED_TYPES)
            raise SchemaError(f"unsupported Avro type {t!r} (schemas are flat): use one of {allowed}", name)
    others = [t for t in options if t != "null"]
    if len(others) != 1 or len(options) > 2:
        raise SchemaError(f'type {raw} is not allowed: use one type or a nullable union such as ["null", "long"]', name)
    return others[0], len(options) == 2


def _flag(name: str, raw: dict[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise SchemaError(f'"{key}" must be true or false, not {value!r}', name)
    return value


def _check_unique(fields: tuple[SchemaField, ...]) -> None:
    seen: dict[str, str] = {}
    for f in fields:
        norm = f.name.replace("_", "").lower()
        if norm in seen:
            raise SchemaError(
                f"duplicates {seen[norm]!r} (names are compared ignoring case and underscores): rename one", f.name
            )
        seen[norm] = f.name


def _check_dataset(kind: str, fields: tuple[SchemaField, ...], reserved: dict[str, _Reserved]) -> None:
    names = {f.name for f in fields}
    record = next(name for name, k in RECORD_NAMES.items() if k == kind)
    for name, spec in reserved.items():
        if spec.required and name not in names:
            field = f'{{"name": "{name}", "type": "{spec.avro_type}"}}'
            raise SchemaError(f"{record} schemas require it: add {field}", name)
    if kind != ACTIONS:
        return
    others = [f for f in fields if f.name != "ACTION_ID"]
    if not others:
        raise SchemaError(
            'Actions schemas need at least one metadata field besides ACTION_ID: add e.g. {"name": "VALUE", '
            '"type": ["null", "long"]} or a categorical string field',
            "ACTION_ID",
        )
    if len(others) > MAX_ACTION_COLUMNS:
        raise SchemaError(
            f"{len(others)} fields besides ACTION_ID; Actions allows at most {MAX_ACTION_COLUMNS}: remove some",
            others[MAX_ACTION_COLUMNS].name,
        )
