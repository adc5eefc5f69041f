"""Personalize dataset schemas: parse an Avro schema and check it as CreateSchema would.

The worker derives its record validation from the same schema files that are handed to
`CreateSchema`, so a schema mistake must surface here, at start-up, with the offending
field and the fix, rather than as a stream of dead-lettered records or a failed import
job hours later. The local Personalize uses this module for its own CreateSchema, so it
must stay free of worker configuration.

Rules follow §6 of the API contract (reference/personalize-api-contract.md). Where the
contract is unsure, the check is permissive (never reject what Personalize may accept):

* Metadata caps (§6.3, gap #2): the current limits page says 25 user / 100 item metadata
  fields, the 2023 guide 5 / 50. We follow the newer page (§0 precedence: WEB is newer
  than DG for limits), and count only non-reserved fields against the caps.
* "At least one metadata field" (§6.2): any field besides the ID counts, so an Items
  schema with only ITEM_ID and CREATION_TIMESTAMP is accepted.
* Unions: only nullable unions of one type (`["null", T]` in either order) are accepted;
  the guide documents nothing else.
* Actions and Action interactions (the developer guide's current pages; the 2023 guide
  predates them): Actions allow at most 10 fields besides ACTION_ID, reserved ones included;
  Action interactions publish no cap. Personalize imports non-categorical action strings
  (it does not train on them), so a custom string field need not be categorical there, and
  the reserved TYPE field may or may not be. The local Personalize's CreateSchema applies
  the same rules (`clickstream_devkit.personalize.control.action_schemas`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from worker.records import DatasetType

#: `CreateSchema.schema` maximum length (M-CP).
MAX_SCHEMA_CHARS = 20_000
#: Avro primitive types Personalize accepts (§6.1). `null` only inside a nullable union.
ALLOWED_TYPES = frozenset({"string", "int", "long", "float", "double", "boolean"})
NUMERIC_TYPES = frozenset({"int", "long", "float", "double"})
_COMPLEX_TYPES = frozenset({"record", "array", "map", "enum", "fixed"})
#: Avro record name per dataset type (§6.1).
RECORD_NAMES: dict[DatasetType, str] = {
    DatasetType.INTERACTIONS: "Interactions",
    DatasetType.ITEMS: "Items",
    DatasetType.USERS: "Users",
    DatasetType.ACTIONS: "Actions",
    DatasetType.ACTION_INTERACTIONS: "ActionInteractions",
}
#: Metadata fields allowed beyond the reserved ones (§6.3; see the module docstring);
#: a type without an entry publishes no cap.
MAX_CUSTOM_FIELDS: dict[DatasetType, int] = {
    DatasetType.INTERACTIONS: 5,
    DatasetType.USERS: 25,
    DatasetType.ITEMS: 100,
}
#: Actions: "up to 10 columns" besides ACTION_ID, reserved ones included.
MAX_ACTION_COLUMNS = 10
#: Dataset types whose custom string fields may be non-categorical (imported, not trained on).
_PLAIN_STRINGS_ALLOWED = frozenset({DatasetType.ACTIONS, DatasetType.ACTION_INTERACTIONS})
MAX_TEXTUAL_FIELDS = 1


@dataclass(frozen=True, slots=True)
class ReservedField:
    """A reserved keyword of one dataset type and the only shape Personalize accepts for it."""

    avro_type: str
    required: bool
    nullable_allowed: bool
    #: The flag the field must carry; None: either.
    categorical: bool | None = False


_ID = ReservedField("string", required=True, nullable_allowed=False)
_OPT_STRING = ReservedField("string", required=False, nullable_allowed=True)
_OPT_LONG = ReservedField("long", required=False, nullable_allowed=True)
#: Reserved fields per dataset type (§6.2, custom dataset groups).
RESERVED: dict[DatasetType, dict[str, ReservedField]] = {
    DatasetType.INTERACTIONS: {
        "USER_ID": _ID,
        "ITEM_ID": _ID,
        "TIMESTAMP": ReservedField("long", required=True, nullable_allowed=False),
        "EVENT_TYPE": ReservedField("string", required=False, nullable_allowed=True),
        "EVENT_VALUE": ReservedField("float", required=False, nullable_allowed=True),
        "IMPRESSION": _OPT_STRING,
        "RECOMMENDATION_ID": _OPT_STRING,
        "EVENT_ATTRIBUTION_SOURCE": _OPT_STRING,
    },
    DatasetType.ITEMS: {
        "ITEM_ID": _ID,
        "CREATION_TIMESTAMP": ReservedField("long", required=False, nullable_allowed=True),
    },
    DatasetType.USERS: {"USER_ID": _ID},
    DatasetType.ACTIONS: {
        "ACTION_ID": _ID,
        "CREATION_TIMESTAMP": _OPT_LONG,
        "VALUE": _OPT_LONG,
        "TYPE": ReservedField("string", required=False, nullable_allowed=True, categorical=None),
        "EXPIRATION_TIMESTAMP": _OPT_LONG,
        "REPEAT_FREQUENCY": _OPT_LONG,
    },
    DatasetType.ACTION_INTERACTIONS: {
        "USER_ID": _ID,
        "ACTION_ID": _ID,
        "EVENT_TYPE": ReservedField("string", required=True, nullable_allowed=False),
        "TIMESTAMP": ReservedField("long", required=True, nullable_allowed=False),
        "IMPRESSION": _OPT_STRING,
        "RECOMMENDATION_ID": _OPT_STRING,
    },
}
#: The field that identifies a record of each dataset type.
ID_FIELDS: dict[DatasetType, str] = {
    DatasetType.INTERACTIONS: "USER_ID",
    DatasetType.ITEMS: "ITEM_ID",
    DatasetType.USERS: "USER_ID",
    DatasetType.ACTIONS: "ACTION_ID",
    DatasetType.ACTION_INTERACTIONS: "ACTION_ID",
}
#: Reserved long columns that hold epoch seconds (the mapping converts ISO-8601 into them).
TIME_FIELDS = frozenset({"TIMESTAMP", "CREATION_TIMESTAMP", "EXPIRATION_TIMESTAMP"})


class SchemaError(ValueError):
    """A schema Personalize would reject; `field` names the offending field when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"field {field}: {message}" if field else message)
        self.field = field


def property_key(name: str) -> str:
    """The camelCase `properties` key of a column (§5.3): NUMBER_OF_RATINGS -> numberOfRatings.

    Upper-case words are lower-cased and capitalised; words already in mixed case keep
    their inner capitals, so a column named `deviceType` stays `deviceType`.
    """
    parts = [p for p in name.split("_") if p]
    if not parts:
        return name
    words = [p.lower() if p.isupper() or p.isdigit() else p for p in parts]
    head = words[0][:1].lower() + words[0][1:]
    return head + "".join(w[:1].upper() + w[1:] for w in words[1:])


@dataclass(frozen=True, slots=True)
class SchemaField:
    """One column: its single Avro type, nullability, and the Personalize flags."""

    name: str
    avro_type: str
    nullable: bool
    categorical: bool
    textual: bool
    reserved: bool

    @property
    def types(self) -> tuple[str, ...]:
        """The Avro type(s) as written: `("null", T)` for a nullable field."""
        return ("null", self.avro_type) if self.nullable else (self.avro_type,)

    @property
    def key(self) -> str:
        """The camelCase key this column has inside a wire `properties` object."""
        return property_key(self.name)


@dataclass(frozen=True)
class DatasetSchema:
    """A checked Personalize schema. Immutable; build it with `parse_schema` or `load_schema`."""

    dataset_type: DatasetType
    fields: tuple[SchemaField, ...]
    text: str

    @property
    def name(self) -> str:
        return RECORD_NAMES[self.dataset_type]

    @cached_property
    def by_name(self) -> dict[str, SchemaField]:
        return {f.name: f for f in self.fields}

    @property
    def custom(self) -> tuple[SchemaField, ...]:
        """Metadata fields: every field that is not a reserved keyword of this dataset type."""
        return tuple(f for f in self.fields if not f.reserved)

    def field(self, name: str) -> SchemaField | None:
        return self.by_name.get(name)

    def property_key(self, field: SchemaField | str) -> str:
        return property_key(field if isinstance(field, str) else field.name)


def load_schema(path: str | Path, expected: DatasetType | None = None) -> DatasetSchema:
    """Read and check a schema file; errors name the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"cannot read schema file {p}: {exc}") from exc
    try:
        return parse_schema(text, expected)
    except SchemaError as exc:
        raise SchemaError(f"{p}: {exc}", exc.field) from exc


def parse_schema(text: str, expected: DatasetType | None = None) -> DatasetSchema:
    """Parse a schema string and apply every CreateSchema rule; raise `SchemaError`.

    `expected` pins the dataset type (the record name must then match); without it the
    type is taken from the record name.
    """
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
    dataset_type = _dataset_type(doc.get("name"), expected)
    raw_fields = doc.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise SchemaError('schema needs a non-empty "fields" list of {"name": ..., "type": ...} objects')
    reserved = RESERVED[dataset_type]
    fields = tuple(_parse_field(i, raw, dataset_type, reserved) for i, raw in enumerate(raw_fields))
    _check_names(fields)
    _check_dataset_rules(dataset_type, fields, reserved)
    return DatasetSchema(dataset_type=dataset_type, fields=fields, text=text)


def _dataset_type(name: object, expected: DatasetType | None) -> DatasetType:
    by_name = {v: k for k, v in RECORD_NAMES.items()}
    if expected is not None:
        if name != RECORD_NAMES[expected]:
            raise SchemaError(
                f'record name is {name!r} but this is a {expected.value} schema: set "name": "{RECORD_NAMES[expected]}"'
            )
        return expected
    if not isinstance(name, str) or name not in by_name:
        raise SchemaError(f"record name {name!r} is not a supported dataset type: use one of {sorted(by_name)}")
    return by_name[name]


def _parse_field(index: int, raw: object, dataset_type: DatasetType, reserved: dict[str, ReservedField]) -> SchemaField:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise SchemaError(f'fields[{index}] must be an object with a string "name" and a "type"')
    name: str = raw["name"]
    if not name or not (name[0].isalpha() or name[0] == "_") or not name.replace("_", "").isalnum():
        raise SchemaError("names must be alphanumeric (A-Z, a-z, 0-9, _) and start with a letter", name)
    if not name.isascii():
        raise SchemaError("names must be ASCII alphanumeric", name)
    avro_type, nullable = _parse_type(name, raw.get("type"))
    categorical = _flag(name, raw, "categorical")
    textual = _flag(name, raw, "textual")
    if name.upper() in reserved and name not in reserved:
        raise SchemaError(f"reserved field names are upper case: rename it to {name.upper()}", name)
    spec = reserved.get(name)
    if spec is not None:
        _check_reserved(name, spec, avro_type, nullable=nullable, categorical=categorical, textual=textual)
        return SchemaField(name, avro_type, nullable, categorical, textual, reserved=True)
    if categorical and textual:
        raise SchemaError('a field is either "categorical" or "textual", not both: drop one', name)
    if textual and dataset_type is not DatasetType.ITEMS:
        raise SchemaError(
            f'"textual" is allowed only in Items schemas, not {dataset_type.value}: use "categorical": true instead',
            name,
        )
    if (categorical or textual) and avro_type != "string":
        flag = "categorical" if categorical else "textual"
        raise SchemaError(f'"{flag}" applies to string fields only, this one is {avro_type}: drop the flag', name)
    if avro_type == "string" and not (categorical or textual) and dataset_type not in _PLAIN_STRINGS_ALLOWED:
        fix = '"categorical": true or "textual": true' if dataset_type is DatasetType.ITEMS else ('"categorical": true')
        raise SchemaError(f"a custom string field needs {fix}, otherwise Personalize ignores it", name)
    return SchemaField(name, avro_type, nullable, categorical, textual, reserved=False)


def _parse_type(name: str, raw: object) -> tuple[str, bool]:
    """Return (the one non-null Avro type, nullable) or raise."""
    if isinstance(raw, str):
        _check_type_name(name, raw)
        if raw == "null":
            raise SchemaError('"null" alone is not a column type: use ["null", "<type>"]', name)
        return raw, False
    if isinstance(raw, list):
        if not all(isinstance(t, str) for t in raw):
            raise SchemaError("nested types inside a union are not allowed: use flat primitive types", name)
        for t in raw:
            _check_type_name(name, t)
        others = [t for t in raw if t != "null"]
        if len(raw) != 2 or len(others) != 1:
            raise SchemaError(f'union {raw} is not allowed: only nullable unions such as ["null", "string"] are', name)
        return others[0], True
    if isinstance(raw, dict):
        kind = raw.get("type")
        what = f'"{kind}"' if isinstance(kind, str) else "complex"
        raise SchemaError(
            f"{what} types are not allowed (schemas are flat: no records, arrays, maps or enums): "
            "use a primitive type; join multiple categorical values with | in a string",
            name,
        )
    raise SchemaError('"type" is missing or not an Avro type: use e.g. "string" or ["null", "float"]', name)


def _check_type_name(name: str, t: str) -> None:
    if t == "null" or t in ALLOWED_TYPES:
        return
    if t in _COMPLEX_TYPES:
        raise SchemaError(
            f'"{t}" types are not allowed (schemas are flat): use a primitive type; '
            "join multiple categorical values with | in a string",
            name,
        )
    raise SchemaError(f"unsupported Avro type {t!r}: use one of {sorted(ALLOWED_TYPES)}", name)


def _flag(name: str, raw: dict[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise SchemaError(f'"{key}" must be true or false, not {value!r}', name)
    return value


def _check_reserved(
    name: str, spec: ReservedField, avro_type: str, *, nullable: bool, categorical: bool, textual: bool
) -> None:
    if avro_type != spec.avro_type:
        raise SchemaError(f'reserved field must have type "{spec.avro_type}", not "{avro_type}"', name)
    if nullable and not spec.nullable_allowed:
        raise SchemaError(f'reserved field is required and cannot be nullable: use "{spec.avro_type}"', name)
    if spec.categorical is not None and categorical != spec.categorical:
        fix = 'set "categorical": true' if spec.categorical else 'remove "categorical": true'
        raise SchemaError(f"reserved field has the wrong categorical flag: {fix}", name)
    if textual:
        raise SchemaError('reserved fields cannot be "textual": remove the flag', name)


def _check_names(fields: tuple[SchemaField, ...]) -> None:
    seen: dict[str, str] = {}
    for f in fields:
        norm = f.name.replace("_", "").lower()
        if norm in seen:
            other = seen[norm]
            raise SchemaError(
                f"duplicates {other!r} (names are compared ignoring case and underscores): rename one",
                f.name,
            )
        seen[norm] = f.name


def _check_dataset_rules(
    dataset_type: DatasetType, fields: tuple[SchemaField, ...], reserved: dict[str, ReservedField]
) -> None:
    names = {f.name for f in fields}
    for name, spec in reserved.items():
        if spec.required and name not in names:
            raise SchemaError(
                f'{RECORD_NAMES[dataset_type]} schemas require it: add {{"name": "{name}", '
                f'"type": "{spec.avro_type}"}}',
                name,
            )
    custom = [f for f in fields if not f.reserved]
    id_field = ID_FIELDS[dataset_type]
    if not dataset_type.is_event_stream and not any(f.name != id_field for f in fields):
        raise SchemaError(
            f"{RECORD_NAMES[dataset_type]} schemas need at least one metadata field besides {id_field}: "
            'add e.g. {"name": "CATEGORY", "type": "string", "categorical": true}',
            id_field,
        )
    if dataset_type is DatasetType.ACTIONS:
        others = [f for f in fields if f.name != id_field]
        if len(others) > MAX_ACTION_COLUMNS:
            raise SchemaError(
                f"{len(others)} fields besides ACTION_ID; Actions allows at most {MAX_ACTION_COLUMNS}: remove some",
                others[MAX_ACTION_COLUMNS].name,
            )
    cap = MAX_CUSTOM_FIELDS.get(dataset_type)
    if cap is not None and len(custom) > cap:
        raise SchemaError(
            f"{len(custom)} metadata fields; {RECORD_NAMES[dataset_type]} allows at most {cap} "
            "besides the reserved ones: remove some",
            custom[cap].name,
        )
    textual = [f for f in fields if f.textual]
    if len(textual) > MAX_TEXTUAL_FIELDS:
        raise SchemaError(
            f"at most {MAX_TEXTUAL_FIELDS} textual field per schema ({[f.name for f in textual]}): "
            'make the others "categorical" or drop them',
            textual[MAX_TEXTUAL_FIELDS].name,
        )
