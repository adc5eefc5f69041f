"""Raw event bytes -> Personalize wire record: the mapping configuration and the decoder.

Which JSON fields feed which Personalize member is configuration, per topic, so an
application with its own event shape only writes a mapping, never code. A field path is
a dot path into the JSON object (`context.sessionId`, `items.0.id` for a list index);
each mapped member takes a list of paths tried in order, and the first non-null wins.

Default shapes (what `default_mapping` reads without any configuration):

* interactions: a Segment / RudderStack **track** event::

    {"type": "track", "messageId": "m-1", "userId": "u1", "anonymousId": "a1",
     "event": "Product Clicked", "timestamp": "2024-05-01T12:00:00.000Z",
     "context": {"sessionId": "s1"},
     "properties": {"productId": "i9", "value": 4.5, "recommendationId": "RID-...",
                    "impression": ["i1", "i9"], "device": "mobile"}}

  messageId -> eventId, userId -> userId, context.sessionId then anonymousId ->
  sessionId, event -> eventType, timestamp (ISO-8601) -> sentAt, properties.productId or
  properties.itemId -> itemId, properties.value -> eventValue; every custom schema
  column is looked up in `properties.<camelCase>`, `properties.<COLUMN>`,
  `properties.<lowercase>`.
* items::

    {"itemId": "i9", "properties": {"category": "shoes", "price": 9.5,
                                    "creationTimestamp": "2024-05-01T12:00:00Z"}}

  itemId is also accepted at properties.itemId / properties.productId; columns are read
  from `properties.*` as above; CREATION_TIMESTAMP may be ISO-8601 or epoch seconds.
* users: a Segment **identify** call::

    {"type": "identify", "userId": "u1", "traits": {"membership": "gold"}}

  with columns read from `traits.*`.
* actions: like items, keyed by ``actionId`` (also at properties.actionId); the time
  columns (CREATION_TIMESTAMP, EXPIRATION_TIMESTAMP) may be ISO-8601 or epoch seconds.
* action interactions: a Segment **track** event naming the action (`worker.action_mapping`).

The path and conversion helpers live in `worker.fieldpaths` (re-exported here).

Decoding never raises: every failure becomes a `Rejection` with stage MAPPING (nothing
usable could be extracted) or VALIDATION (a value breaks a schema or API rule). It runs
for every event, so it avoids per-call pydantic work: paths are compiled once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from worker.action_mapping import ActionInteractionReader
from worker.config.mapping import (
    ActionInteractionsMapping,
    ActionsMapping,
    AnyMapping,
    InteractionsMapping,
    ItemsMapping,
    TimestampUnit,
    UsersMapping,
)
from worker.decoding.outcomes import AwaitSchema, DeserializationError, Fanout, ShapeError
from worker.decoding.payload import RegistryPayload
from worker.decoding.presets import IDENTITY_KEYS as PRESET_IDENTITY_KEYS
from worker.decoding.shapes import SHAPES
from worker.fieldpaths import (
    MappingConfigError,
    MappingError,
    Path,
    as_id,
    column_paths,
    compile_paths,
    derived_event_id,
    event_type_of,
    extract,
    parse_impression,
    to_epoch_seconds,
    whole_seconds,
)
from worker.records import (
    CatalogUpdate,
    DatasetType,
    Decoded,
    Header,
    Interaction,
    Rejection,
    SourceRef,
    Stage,
    truncate,
)
from worker.schemas import ID_FIELDS, TIME_FIELDS, DatasetSchema
from worker.validation import (
    CatalogValidator,
    InteractionValidator,
    Rule,
    ValidationError,
    ValidationLimits,
)

__all__ = [  # the path helpers moved to worker.fieldpaths; callers still import them from here
    "DEFAULT_MAX_RECORD_BYTES", "IDENTITY_KEYS", "DecodeResult", "EventDecoder", "MappingConfigError", "MappingError",
    "Path", "as_id", "compile_paths", "derived_event_id", "extract", "to_epoch_seconds",
]

#: Raw values larger than this are rejected before JSON parsing: a memory and CPU guard
#: (a 10 KB event limit means nothing legitimate comes close).
DEFAULT_MAX_RECORD_BYTES = 1_000_000

#: What `EventDecoder.decode` returns: one record, a rejection, several interactions from one
#: record (GA4 items), or "wait for this schema" (registry formats).
DecodeResult = Decoded | Fanout | AwaitSchema


class EventDecoder:
    """Bytes of one Kafka record value -> Interaction | CatalogUpdate | Rejection.

    Built once per topic; `decode` is pure and never raises.
    """

    def __init__(
        self,
        dataset_type: DatasetType,
        spec: AnyMapping,
        schema: DatasetSchema,
        limits: ValidationLimits,
        *,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        payload: RegistryPayload | None = None,
    ) -> None:
        """`payload`: how a schema-registry topic's bytes are read (None: JSON, or the preset's text form)."""
        if max_record_bytes < 1:
            raise MappingConfigError(f"max_record_bytes must be positive, not {max_record_bytes}")
        self.max_record_bytes = max_record_bytes
        if schema.dataset_type is not dataset_type:
            raise MappingConfigError(f"schema is for {schema.dataset_type.value}, topic feeds {dataset_type.value}")
        if spec.kind != dataset_type.value:
            raise MappingConfigError(f"mapping is for {spec.kind}, topic feeds {dataset_type.value}")
        self.dataset_type = dataset_type
        self.limits = limits
        self.payload = payload
        shape = SHAPES[spec.preset]
        if shape.explode is not None and dataset_type is not DatasetType.INTERACTIONS:
            raise MappingConfigError(f"preset {spec.preset} yields interactions; this topic feeds {dataset_type.value}")
        self._text, self._normalize, self._explode = shape.text, shape.normalize, shape.explode
        self._identity_keys = compile_paths(PRESET_IDENTITY_KEYS[spec.preset])
        self._actions: ActionInteractionReader | None = None
        self.identity_paths: tuple[Path, ...] = ()
        if isinstance(spec, InteractionsMapping):
            self._init_interactions(spec, schema)
        elif isinstance(spec, ActionInteractionsMapping):
            self._actions = ActionInteractionReader(spec, schema, limits)
            self.identity_paths = (*self._actions.identity_paths, *self._identity_keys)
        else:
            self._init_catalog(spec, schema)

    def _init_interactions(self, spec: InteractionsMapping, schema: DatasetSchema) -> None:
        self.validator = InteractionValidator(schema, self.limits)
        self.spec = spec
        c = compile_paths
        self.p_event_id, self.p_user, self.p_session = c(spec.event_id), c(spec.user_id), c(spec.session_id)
        self.p_item, self.p_type, self.p_value = c(spec.item_id), c(spec.event_type), c(spec.event_value)
        self.p_time, self.p_rec = c(spec.timestamp), c(spec.recommendation_id)
        self.p_impression, self.p_source = c(spec.impression), c(spec.event_attribution_source)
        self.allowed = frozenset(spec.allowed_event_types)
        self.renames = dict(spec.event_type_renames)
        self.columns = column_paths(spec, [f.name for f in schema.custom], spec.field_prefix)
        self.identity_paths = (*self.p_user, *self.p_session, *self._identity_keys)

    def _init_catalog(self, spec: ItemsMapping | UsersMapping | ActionsMapping, schema: DatasetSchema) -> None:
        self.catalog = CatalogValidator(schema, self.limits)
        id_field = ID_FIELDS[schema.dataset_type]
        self.id_key = schema.property_key(id_field)
        if isinstance(spec, ItemsMapping | ActionsMapping):
            self.p_id = compile_paths(spec.item_id if isinstance(spec, ItemsMapping) else spec.action_id)
            self.identity_paths = ()  # item and action IDs are not personal data
        else:
            self.p_id = compile_paths(spec.user_id)  # a users record's ID is
            self.identity_paths = (*self.p_id, *self._identity_keys)
        names = [f.name for f in schema.fields if f.name != id_field]
        self.columns = column_paths(spec, names, spec.field_prefix)
        units: dict[str, TimestampUnit] = {
            f.name: "iso8601_or_seconds" for f in schema.fields if f.reserved and f.name in TIME_FIELDS
        }
        for name, unit in spec.timestamp_units.items():
            f = schema.field(name)
            if f is None or f.avro_type not in ("int", "long"):
                raise MappingConfigError(f"timestamp_units names {name!r}, which is not an int/long column")
            units[name] = unit
        self.units = units

    def decode(
        self,
        value: bytes | None,
        source: SourceRef,
        now: float,
        *,
        key: bytes | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[Header] = (),
    ) -> DecodeResult:
        """Map and validate one record value; every failure is returned as a Rejection.

        `key` and `timestamp_ms` are the Kafka record's: with `source` and the value they
        derive the eventId of an event that carries none (`derived_event_id`). A rejection
        of a record that parsed carries the identities found in it, so logs can scrub them.
        `headers` matter for registry formats (a schema ID may travel in a header). A record
        whose schema is not cached yet returns `AwaitSchema`; a GA4 row with several items
        returns a `Fanout`.
        """
        obj: dict[str, Any] | None = None
        try:
            loaded = self._load(value, headers)
            if isinstance(loaded, AwaitSchema):
                return loaded
            obj = loaded if self._normalize is None else self._normalize(loaded)
            if self.dataset_type is DatasetType.INTERACTIONS:
                if self._explode is not None:
                    return self._exploded(obj, source, now, key=key, timestamp_ms=timestamp_ms, value=value)
                return self._interaction(obj, source, now, key=key, timestamp_ms=timestamp_ms, value=value)
            if self._actions is not None:
                return self._actions.read(obj, source, now, key=key, timestamp_ms=timestamp_ms, value=value)
            return self._catalog(obj, now)
        except (ShapeError, ValidationError, DeserializationError) as exc:
            rejection = exc.rejection()
        except Exception as exc:  # noqa: BLE001 - "never raise": one odd record must not stop a partition
            rejection = Rejection(
                stage=Stage.MAPPING,
                rule="internal_error",
                message=f"unexpected {type(exc).__name__}: {truncate(str(exc))}",
                exception_class=f"{type(exc).__module__}.{type(exc).__qualname__}",
            )
        if obj is None:
            return rejection
        return replace(rejection, identities=self._identities(obj))

    def _identities(self, obj: dict[str, Any]) -> tuple[str, ...]:
        """Every user, anonymous and session ID value in a parsed record (string leaves, any type)."""
        found: list[str] = []
        for value in (extract(obj, (path,)) for path in self.identity_paths):
            _string_leaves(value, found)
        return tuple(dict.fromkeys(found))

    def _load(self, value: bytes | None, headers: Sequence[Header]) -> dict[str, Any] | AwaitSchema:
        """The record as an object: JSON (or the preset's text form), or read through the registry."""
        payload = self.payload
        if payload is None:
            return self._parse(value)
        if value is None:
            raise MappingError("tombstone", None, "record value is null (a tombstone)")
        if len(value) > self.max_record_bytes:
            raise MappingError("too_large", None,
                               f"value is {len(value)} bytes, at most {self.max_record_bytes} are parsed")
        loaded = payload.load(value, headers)
        if isinstance(loaded, AwaitSchema) or type(loaded) is dict:
            return loaded
        raise DeserializationError("not_object", f"the decoded value is a {type(loaded).__name__}; a record "
                                   "(Avro record, Protobuf message, JSON object) is needed", field="value")

    def _parse(self, value: bytes | None) -> dict[str, Any]:
        if value is None:
            raise MappingError("tombstone", None, "record value is null (a tombstone)")
        size = len(value)
        if size > self.max_record_bytes:
            raise MappingError("too_large", None, f"value is {size} bytes, at most {self.max_record_bytes} are parsed")
        if not value.strip():
            raise MappingError("empty", None, "record value is empty")
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MappingError("not_utf8", None, f"value is not UTF-8 ({exc.reason} at byte {exc.start})") from None
        if self._text is not None and not text.lstrip().startswith("{"):
            return self._text(text.rstrip("\r\n"))
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise MappingError("not_json", None, f"value is not JSON: {truncate(str(exc), 120)}", text) from None
        if type(obj) is not dict:
            raise MappingError("not_object", None, f"JSON root is {type(obj).__name__}, an object is needed", text)
        return obj

    def _opt_id(self, field: str, obj: dict[str, Any], paths: tuple[Path, ...]) -> str | None:
        raw = extract(obj, paths)
        return None if raw is None else as_id(field, raw)

    def _exploded(
        self,
        obj: dict[str, Any],
        source: SourceRef,
        now: float,
        *,
        key: bytes | None,
        timestamp_ms: int | None,
        value: bytes | None,
    ) -> Interaction | Fanout:
        """One interaction per exploded row; row k's eventId is `<the record's eventId>-<k>`.

        The record's eventId is its own (the configured `event_id` paths) or the derived one,
        so every redelivery gives each row the same ID and no two rows share one. Any row
        that fails rejects the whole record: it is dead-lettered as the unit it arrived as.
        """
        rows, exploded = self._explode(obj) if self._explode is not None else ([obj], False)
        if not exploded:
            return self._interaction(rows[0], source, now, key=key, timestamp_ms=timestamp_ms, value=value)
        base = self._opt_id("eventId", obj, self.p_event_id) or derived_event_id(source, timestamp_ms, key, value)
        built = [
            self._interaction(row, source, now, key=key, timestamp_ms=timestamp_ms, value=value,
                              event_id=f"{base}-{index}")
            for index, row in enumerate(rows)
        ]
        return built[0] if len(built) == 1 else Fanout(tuple(built))

    def _interaction(
        self,
        obj: dict[str, Any],
        source: SourceRef,
        now: float,
        *,
        key: bytes | None,
        timestamp_ms: int | None,
        value: bytes | None,
        event_id: str | None = None,
    ) -> Interaction:
        event_type = event_type_of(obj, self.p_type, self.allowed, self.renames)
        raw_time = extract(obj, self.p_time)
        if raw_time is None:
            raise MappingError("missing", "sentAt", "no timestamp at the configured paths")
        sent_at = to_epoch_seconds("sentAt", raw_time, self.spec.timestamp_unit)
        user_id = self._opt_id("userId", obj, self.p_user)
        session_id = self._opt_id("sessionId", obj, self.p_session)
        if session_id is None:
            if user_id is None:
                raise MappingError("missing", "sessionId", "the event has neither a userId nor a sessionId")
            if not self.spec.session_id_fallback_to_user_id:
                raise MappingError(
                    "missing",
                    "sessionId",
                    "no sessionId (PutEvents requires one); set session_id_fallback_to_user_id to use the userId",
                )
            session_id = user_id
        if event_id is None:
            event_id = self._opt_id("eventId", obj, self.p_event_id) or derived_event_id(
                source, timestamp_ms, key, value)
        return self.validator.build(
            event_id=event_id,
            event_type=event_type,
            sent_at=round(sent_at, 3),
            session_id=session_id,
            user_id=user_id,
            item_id=self._opt_id("itemId", obj, self.p_item),
            event_value=self._number("eventValue", extract(obj, self.p_value)),
            recommendation_id=self._opt_id("recommendationId", obj, self.p_rec),
            impression=parse_impression(extract(obj, self.p_impression)),
            attribution_source=self._opt_id("metricAttribution.eventAttributionSource", obj, self.p_source),
            values={name: extract(obj, paths) for name, paths in self.columns.items()},
            now=now,
        )

    @staticmethod
    def _number(field: str, raw: Any) -> float | None:
        if raw is None or (type(raw) in (int, float)):
            return raw  # type: ignore[no-any-return]
        raise MappingError(Rule.WRONG_TYPE.value, field, f"expected a number, got {type(raw).__name__}", raw)

    def _catalog(self, obj: dict[str, Any], now: float) -> CatalogUpdate:
        raw_id = extract(obj, self.p_id)
        if raw_id is None:
            raise MappingError("missing", self.id_key, f"no {self.id_key} at the configured paths")
        entity_id = as_id(self.id_key, raw_id)
        values: dict[str, Any] = {}
        units = self.units
        for name, paths in self.columns.items():
            raw = extract(obj, paths)
            if raw is not None and name in units:
                raw = whole_seconds(name, to_epoch_seconds(name, raw, units[name]))
            values[name] = raw
        return self.catalog.build(entity_id, values, now)


#: Identity fields of Segment-shaped events, scrubbed from logs even when not mapped (other
#: presets: `worker.decoding.presets.IDENTITY_KEYS`).
IDENTITY_KEYS = PRESET_IDENTITY_KEYS["segment"]
_MAX_LEAVES = 64


def _string_leaves(value: Any, out: list[str]) -> None:
    """Collect scalar leaves as strings (an ID may arrive wrong-typed: a number, a list, an object)."""
    if len(out) >= _MAX_LEAVES or value is None or isinstance(value, bool):
        return
    if isinstance(value, str | int | float):
        out.append(str(value))
    elif isinstance(value, dict):
        for item in value.values():
            _string_leaves(item, out)
    elif isinstance(value, list):
        for item in value:
            _string_leaves(item, out)
