"""Mapping: configuration models, extraction, the EventDecoder facade, and the malformed corpus."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydantic
import pytest

from tests.unit.malformed_corpus import (
    CATALOG_CASES,
    DROP,
    INTERACTION_CASES,
    NOW,
    Case,
    enc,
    item,
    track,
    user,
)
from worker.config.mapping import (
    InteractionsMapping,
    ItemsMapping,
    MappingSpec,
    UsersMapping,
    default_mapping,
    parse_mapping,
)
from worker.mapping import (
    DEFAULT_MAX_RECORD_BYTES,
    EventDecoder,
    MappingConfigError,
    compile_paths,
    derived_event_id,
    extract,
)
from worker.records import CatalogUpdate, DatasetType, Interaction, Rejection, SourceRef, Stage
from worker.schemas import DatasetSchema, load_schema, parse_schema
from worker.validation import ValidationLimits

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
SRC = SourceRef("clicks", 3, 1234)
#: derived_event_id(SRC, 1700000000123, b"k", b"{}"), computed once; see the stability test.
PINNED_DERIVED_ID = "355d6f4ed34b08749bea6550d61d9b75493a591dcc4b4ee67e507503b16aa0c8"
INT, IT, U = DatasetType.INTERACTIONS, DatasetType.ITEMS, DatasetType.USERS


def schema(kind: DatasetType) -> DatasetSchema:
    return load_schema(SCHEMAS / f"{kind.value}.json", kind)


def interactions_schema(*custom: dict[str, Any]) -> DatasetSchema:
    fields = [
        {"name": "USER_ID", "type": "string"},
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
        {"name": "EVENT_TYPE", "type": "string"},
        *custom,
    ]
    return parse_schema(json.dumps({"type": "record", "name": "Interactions", "fields": fields}), INT)


def decoder(kind: DatasetType = INT, spec: Any = None, sch: DatasetSchema | None = None, **kw: Any) -> EventDecoder:
    return EventDecoder(kind, spec or default_mapping(kind), sch or schema(kind), ValidationLimits(), **kw)


def ok(result: object) -> Any:
    assert not isinstance(result, Rejection), result
    return result


def rejected(result: object) -> Rejection:
    assert isinstance(result, Rejection), result
    return result


# --- default Segment track mapping, end to end ---------------------------------------------


def test_default_track_event_end_to_end() -> None:
    doc = track(
        {
            "properties.recommendationId": "RID-1",
            "properties.impression": ["item-9", "item-1"],
            "properties.eventAttributionSource": "email campaign",
            "properties.unrelated": {"ignored": True},
        }
    )
    result = ok(decoder().decode(enc(doc), SRC, NOW))
    assert isinstance(result, Interaction)
    assert result.session_id == doc["context"]["sessionId"]
    assert result.user_id == doc["userId"]
    expected_sent_at = datetime.fromisoformat(doc["timestamp"]).timestamp()
    assert result.event == {
        "eventId": doc["messageId"],
        "eventType": doc["event"],
        "sentAt": expected_sent_at,
        "itemId": doc["properties"]["productId"],
        "eventValue": doc["properties"]["value"],
        "properties": json.dumps({"device": doc["properties"]["device"]}, separators=(",", ":")),
        "recommendationId": "RID-1",
        "impression": ["item-9", "item-1"],
        "metricAttribution": {"eventAttributionSource": "email campaign"},
    }
    assert result.event_id == doc["messageId"]


def test_optional_members_are_omitted_when_absent() -> None:
    doc = track({"properties.value": DROP, "properties.device": DROP})
    event = ok(decoder().decode(enc(doc), SRC, NOW)).event
    assert set(event) == {"eventId", "eventType", "sentAt", "itemId"}


def test_session_prefers_context_session_then_anonymous_id() -> None:
    d = decoder()
    assert ok(d.decode(enc(track()), SRC, NOW)).session_id == "sess-1"
    assert ok(d.decode(enc(track({"context.sessionId": DROP})), SRC, NOW)).session_id == "anon-1"
    anonymous = ok(d.decode(enc(track({"context.sessionId": DROP, "userId": DROP})), SRC, NOW))
    assert (anonymous.user_id, anonymous.session_id) == (None, "anon-1")


@pytest.mark.parametrize("fallback", [False, True])
def test_session_fallback_to_user_id(fallback: bool) -> None:
    spec = InteractionsMapping(session_id_fallback_to_user_id=fallback)
    result = decoder(spec=spec).decode(enc(track({"context.sessionId": DROP, "anonymousId": DROP})), SRC, NOW)
    if fallback:
        assert ok(result).session_id == "user-1"
    else:
        r = rejected(result)
        assert (r.stage, r.rule, r.field) == (Stage.MAPPING, "missing", "sessionId")
        assert "session_id_fallback_to_user_id" in r.message
    # with neither ID, the fallback cannot help
    none = decoder(spec=spec).decode(
        enc(track({"context.sessionId": DROP, "anonymousId": DROP, "userId": DROP})), SRC, NOW
    )
    assert rejected(none).field == "sessionId"


def test_item_id_falls_back_to_properties_item_id_and_integers_become_strings() -> None:
    doc = track({"properties.productId": DROP, "properties.itemId": 42, "userId": 7})
    result = ok(decoder().decode(enc(doc), SRC, NOW))
    assert (result.event["itemId"], result.user_id) == ("42", "7")


def test_custom_field_default_lookup_variants() -> None:
    d = decoder()
    for key in ("device", "DEVICE"):
        doc = track({"properties.device": DROP, f"properties.{key}": "tv"})
        assert json.loads(ok(d.decode(enc(doc), SRC, NOW)).event["properties"]) == {"device": "tv"}
    # a categorical list is joined with |
    doc = track({"properties.device": ["tv", "mobile"]})
    assert json.loads(ok(d.decode(enc(doc), SRC, NOW)).event["properties"]) == {"device": "tv|mobile"}


def test_impression_accepts_pipe_joined_string() -> None:
    doc = track({"properties.impression": "a|b|c"})
    assert ok(decoder().decode(enc(doc), SRC, NOW)).event["impression"] == ["a", "b", "c"]


def test_derived_event_id_is_deterministic_per_record() -> None:
    d = decoder()
    doc = enc(track({"messageId": DROP}))
    first = ok(d.decode(doc, SRC, NOW, key=b"k", timestamp_ms=1_700_000_000_123)).event_id
    again = ok(d.decode(doc, SRC, NOW, key=b"k", timestamp_ms=1_700_000_000_123)).event_id
    assert first == again == derived_event_id(SRC, 1_700_000_000_123, b"k", doc)
    assert len(first) <= 256 and int(first, 16) >= 0


def test_derived_event_id_differs_for_every_difference_in_the_record() -> None:
    doc = enc(track({"messageId": DROP}))
    base = derived_event_id(SRC, 1000, b"k", doc)
    others = [
        derived_event_id(SourceRef("clicks", 3, 1235), 1000, b"k", doc),
        derived_event_id(SourceRef("clicks", 4, 1234), 1000, b"k", doc),
        derived_event_id(SourceRef("clicks2", 3, 1234), 1000, b"k", doc),
        # A re-created topic: same position, a new record (another time or other bytes).
        derived_event_id(SRC, 1001, b"k", doc),
        derived_event_id(SRC, 1000, b"k", doc + b" "),
        derived_event_id(SRC, 1000, b"k2", doc),
        derived_event_id(SRC, 1000, None, doc),
        derived_event_id(SRC, 1000, b"", doc),
        derived_event_id(SRC, None, b"k", doc),
    ]
    assert base not in others and len(set(others)) == len(others)


def test_derived_event_id_has_no_key_value_boundary_ambiguity() -> None:
    assert derived_event_id(SRC, 1, b"ab", b"c") != derived_event_id(SRC, 1, b"a", b"bc")
    assert derived_event_id(SRC, 1, None, b"x") != derived_event_id(SRC, 1, b"x", None)


def test_a_same_position_after_topic_recreation_gets_a_new_event_id() -> None:
    """Offsets restart at 0 after a topic is re-created: position alone would reuse old IDs."""
    d = decoder()
    old = enc(track({"messageId": DROP, "event": "view"}))
    new = enc(track({"messageId": DROP, "event": "purchase"}))
    before = ok(d.decode(old, SRC, NOW, key=b"u1", timestamp_ms=1_000)).event_id
    after = ok(d.decode(new, SRC, NOW, key=b"u1", timestamp_ms=2_000)).event_id
    same_bytes_later = ok(d.decode(old, SRC, NOW, key=b"u1", timestamp_ms=2_000)).event_id
    assert len({before, after, same_bytes_later}) == 3


def test_derived_event_id_is_pinned() -> None:
    """SHA-256 over fixed inputs: the same in every process and release. Changing the derivation
    changes the IDs of every redelivery in flight, so it has to be a conscious decision."""
    assert derived_event_id(SRC, 1_700_000_000_123, b"k", b"{}") == PINNED_DERIVED_ID


# --- custom mapping configuration -------------------------------------------------------------


def test_custom_shape_mapping() -> None:
    spec = parse_mapping(
        INT,
        {
            "event_id": "id",
            "user_id": ["user.id"],
            "session_id": ["user.session"],
            "item_id": ["items.0.sku"],
            "event_type": "action",
            "event_value": ["rating"],
            "timestamp": ["ts"],
            "timestamp_unit": "milliseconds",
            "recommendation_id": [],
            "fields": {"DEVICE": ["meta.client.kind", "meta.device"]},
        },
    )
    doc = {
        "id": "e-77",
        "user": {"id": "u-9", "session": "s-9"},
        "items": [{"sku": "sku-1"}, {"sku": "sku-2"}],
        "action": "rate",
        "rating": 4,
        "ts": int(NOW * 1000) + 250,
        "meta": {"device": "kiosk"},
        "properties": {"recommendationId": "RID-ignored", "device": "ignored"},
    }
    result = ok(decoder(spec=spec).decode(enc(doc), SRC, NOW))
    assert (result.user_id, result.session_id) == ("u-9", "s-9")
    assert result.event == {
        "eventId": "e-77",
        "eventType": "rate",
        "sentAt": NOW + 0.25,
        "itemId": "sku-1",
        "eventValue": 4.0,
        "properties": '{"device":"kiosk"}',
    }


def test_allow_list_is_matched_before_renames() -> None:
    spec = InteractionsMapping(
        allowed_event_types=["Product Clicked", "Order Completed"],
        event_type_renames={"Product Clicked": "click", "Order Completed": "purchase"},
    )
    d = decoder(spec=spec)
    assert ok(d.decode(enc(track()), SRC, NOW)).event["eventType"] == "click"
    assert ok(d.decode(enc(track({"event": "Order Completed"})), SRC, NOW)).event["eventType"] == "purchase"
    for name in ("Signed In", "click"):
        r = rejected(d.decode(enc(track({"event": name})), SRC, NOW))
        assert (r.stage, r.rule, r.field, r.value) == (Stage.VALIDATION, "event_type_not_allowed", "eventType", name)


def test_renames_without_allow_list_pass_other_types() -> None:
    d = decoder(spec=InteractionsMapping(event_type_renames={"Product Clicked": "click"}))
    assert ok(d.decode(enc(track({"event": "Other"})), SRC, NOW)).event["eventType"] == "Other"


ISO_CASES = [
    ("2025-06-15T15:06:40Z", NOW),
    ("2025-06-15T15:06:40.123Z", NOW + 0.123),
    ("2025-06-15T17:06:40+02:00", NOW),
    ("2025-06-15T15:06:40", NOW),  # naive: taken as UTC
    ("2025-06-15 15:06:40.5+00:00", NOW + 0.5),
]


@pytest.mark.parametrize(("raw", "expected"), ISO_CASES)
def test_timestamp_unit_iso8601(raw: str, expected: float) -> None:
    result = ok(decoder().decode(enc(track({"timestamp": raw})), SRC, NOW))
    assert result.event["sentAt"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("unit", "raw", "expected"),
    [
        ("seconds", int(NOW) - 30, NOW - 30),
        ("seconds", NOW - 0.5, NOW - 0.5),
        ("milliseconds", int(NOW * 1000) - 1500, NOW - 1.5),
        ("milliseconds", NOW * 1000, NOW),
    ],
)
def test_timestamp_numeric_units(unit: str, raw: float, expected: float) -> None:
    d = decoder(spec=InteractionsMapping(timestamp_unit=unit))  # type: ignore[arg-type]
    assert ok(d.decode(enc(track({"timestamp": raw})), SRC, NOW)).event["sentAt"] == pytest.approx(expected)


def test_sent_at_window_uses_limits() -> None:
    tight = EventDecoder(INT, default_mapping(INT), schema(INT), ValidationLimits(max_past_seconds=60))
    old = datetime.fromtimestamp(NOW - 120, UTC).isoformat()
    r = rejected(tight.decode(enc(track({"timestamp": old})), SRC, NOW))
    assert (r.rule, r.field) == ("timestamp_window", "sentAt")
    assert not isinstance(decoder().decode(enc(track({"timestamp": old})), SRC, NOW), Rejection)


def test_max_record_bytes_is_configurable() -> None:
    doc = enc(track())
    assert DEFAULT_MAX_RECORD_BYTES == 1_000_000
    small = decoder(max_record_bytes=len(doc) - 1)
    assert rejected(small.decode(doc, SRC, NOW)).rule == "too_large"
    ok(decoder(max_record_bytes=len(doc)).decode(doc, SRC, NOW))


# --- items and users --------------------------------------------------------------------------


def test_default_item_mapping() -> None:
    doc = item()
    result = ok(decoder(IT).decode(enc(doc), SRC, NOW))
    assert isinstance(result, CatalogUpdate)
    assert result.entity_id == doc["itemId"]
    created = int(datetime.fromisoformat(doc["properties"]["creationTimestamp"]).timestamp())
    assert result.record == {
        "itemId": doc["itemId"],
        "properties": json.dumps(
            {"category": "shoes", "price": 9.5, "creationTimestamp": created, "description": "A shoe."},
            separators=(",", ":"),
        ),
    }


@pytest.mark.parametrize("created", [int(NOW) - 86_400, NOW - 86_400.7, "2025-06-14T15:06:40Z"])
def test_item_creation_timestamp_iso_or_epoch_seconds(created: object) -> None:
    doc = item({"properties.creationTimestamp": created})
    props = json.loads(ok(decoder(IT).decode(enc(doc), SRC, NOW)).record["properties"])
    assert props["creationTimestamp"] == int(NOW) - 86_400 - (1 if isinstance(created, float) else 0)


def test_item_id_alternatives() -> None:
    for path in ("properties.itemId", "properties.productId"):
        doc = item({"itemId": DROP, path: "p-5"})
        assert ok(decoder(IT).decode(enc(doc), SRC, NOW)).entity_id == "p-5"


def test_items_timestamp_units_in_milliseconds() -> None:
    spec = ItemsMapping(timestamp_units={"CREATION_TIMESTAMP": "milliseconds"})
    doc = item({"properties.creationTimestamp": int(NOW * 1000)})
    props = json.loads(ok(decoder(IT, spec).decode(enc(doc), SRC, NOW)).record["properties"])
    assert props["creationTimestamp"] == int(NOW)


def test_default_user_mapping_reads_identify_traits() -> None:
    doc = user({"traits.ageGroup": "25-34", "traits.email": "not-mapped@example.com"})
    result = ok(decoder(U).decode(enc(doc), SRC, NOW))
    assert result.entity_id == "user-1"
    assert result.record == {"userId": "user-1", "properties": '{"membership":"gold","ageGroup":"25-34"}'}


def test_users_custom_mapping() -> None:
    spec = UsersMapping(user_id=("id",), field_prefix="attrs", fields={"MEMBERSHIP": ("plan.tier",)})
    doc = {"id": 99, "plan": {"tier": "silver"}, "attrs": {"AGE_GROUP": "18-24"}}
    result = ok(decoder(U, spec).decode(enc(doc), SRC, NOW))
    assert result.record == {"userId": "99", "properties": '{"membership":"silver","ageGroup":"18-24"}'}


# --- configuration errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "data", "needle"),
    [
        (INT, {"user_idd": ["x"]}, "user_idd"),
        (INT, {"session_id": ["a..b"]}, "a..b"),
        (INT, {"item_id": [""]}, "bad field path"),
        (INT, {"event_type": []}, "event_type"),
        (INT, {"timestamp_unit": "auto"}, "timestamp_unit"),
        (INT, {"allowed_event_types": [""]}, "allowed_event_types"),
        (INT, {"event_type_renames": {"a": "x" * 257}}, "event_type_renames"),
        (INT, {"fields": {"DEVICE": []}}, "DEVICE"),
        (INT, {"kind": "users"}, "kind"),
        (IT, {"timestamp_units": {"CREATION_TIMESTAMP": "fortnights"}}, "timestamp_units"),
        (U, {"user_id": []}, "user_id"),
        (U, {"field_prefix": ".traits"}, "field_prefix"),
    ],
)
def test_bad_mapping_config_is_rejected_with_the_field_named(
    kind: DatasetType, data: dict[str, Any], needle: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        parse_mapping(kind, data)
    assert needle in str(info.value)


def test_single_path_string_is_accepted() -> None:
    spec = parse_mapping(INT, {"user_id": "user.id", "fields": {"DEVICE": "ctx.device"}})
    assert isinstance(spec, InteractionsMapping)
    assert spec.user_id == ("user.id",) and spec.fields == {"DEVICE": ("ctx.device",)}


def test_mapping_spec_union_uses_kind() -> None:
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(MappingSpec)
    assert isinstance(adapter.validate_python({"kind": "users", "user_id": ["id"]}), UsersMapping)
    assert isinstance(adapter.validate_python({"kind": "items"}), ItemsMapping)
    with pytest.raises(pydantic.ValidationError, match="kind: interactions"):
        adapter.validate_python({"user_id": ["id"]})


def test_decoder_rejects_mapping_that_does_not_fit_schema() -> None:
    with pytest.raises(MappingConfigError, match="DEVICES"):
        decoder(spec=InteractionsMapping(fields={"DEVICES": ("x",)}))
    with pytest.raises(MappingConfigError, match="USER_ID"):  # reserved columns are not custom fields
        decoder(spec=InteractionsMapping(fields={"USER_ID": ("x",)}))
    with pytest.raises(MappingConfigError, match="CATEGORY"):
        decoder(IT, ItemsMapping(timestamp_units={"CATEGORY": "seconds"}))
    with pytest.raises(MappingConfigError, match="mapping is for items"):
        EventDecoder(INT, ItemsMapping(), schema(INT), ValidationLimits())
    with pytest.raises(MappingConfigError, match="schema is for users"):
        EventDecoder(IT, ItemsMapping(), schema(U), ValidationLimits())


def test_extract_paths() -> None:
    doc = {"a": {"b": [{"c": 1}, {"c": None, "d": 2}]}, "s": "text"}
    assert extract(doc, compile_paths(["a.b.0.c"])) == 1
    assert extract(doc, compile_paths(["a.b.1.c", "a.b.1.d"])) == 2  # null is skipped
    assert extract(doc, compile_paths(["a.b.5.c", "s.x", "a.b.x", "zz"])) is None
    assert extract(doc, compile_paths(["s"])) == "text"
    assert extract(doc, compile_paths(["a.b.²"])) is None  # a non-ASCII digit is not a list index


# --- the malformed corpus ---------------------------------------------------------------------


def _decoders() -> dict[str, EventDecoder]:
    wide = interactions_schema(
        *({"name": f"C{n}", "type": ["null", "string"], "categorical": True} for n in range(1, 5)),
        {"name": "C5", "type": "int"},
    )
    forbidden = interactions_schema({"name": "SESSION_ID", "type": ["null", "string"], "categorical": True})
    return {
        "interactions": decoder(),
        "interactions_allow": decoder(spec=InteractionsMapping(allowed_event_types=["Product Clicked"])),
        "interactions_ms": decoder(spec=InteractionsMapping(timestamp_unit="milliseconds")),
        "interactions_seconds": decoder(spec=InteractionsMapping(timestamp_unit="seconds")),
        "interactions_forbidden": decoder(sch=forbidden),
        "interactions_wide": decoder(sch=wide),
        "items": decoder(IT),
        "users": decoder(U),
    }


DECODERS = _decoders()
ALL_CASES = INTERACTION_CASES + CATALOG_CASES
EXCEPTION_CLASS = {"mapping": "worker.mapping.MappingError", "validation": "worker.validation.ValidationError"}


def test_corpus_is_large_and_distinct() -> None:
    assert len(INTERACTION_CASES) >= 60
    assert len({c.name for c in ALL_CASES}) == len(ALL_CASES)
    assert len({(c.value, c.decoder) for c in ALL_CASES}) == len(ALL_CASES)


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.name for c in ALL_CASES])
def test_malformed_input_is_rejected_precisely(case: Case) -> None:
    result = DECODERS[case.decoder].decode(case.value, SRC, NOW)
    assert isinstance(result, Rejection), f"{case.name} was accepted: {result}"
    assert (result.stage.value, result.rule, result.field) == (case.stage, case.rule, case.field), result
    assert result.exception_class == EXCEPTION_CLASS[case.stage]
    assert result.message
    if result.value is not None:
        assert len(result.value) <= 200 + len("...(+99999999 chars)")
    assert f"[{case.stage}/{case.rule}]" in result.describe()


def test_corpus_controls_are_valid() -> None:
    """The base documents the corpus mutates are themselves accepted (so each case tests one thing)."""
    for name, doc in (
        ("interactions", track()),
        ("interactions_allow", track()),
        ("items", item()),
        ("users", user()),
        ("interactions_forbidden", track()),
        ("interactions_wide", track({"properties.c5": 1})),
    ):
        ok(DECODERS[name].decode(enc(doc), SRC, NOW))
    ok(DECODERS["interactions_seconds"].decode(enc(track({"timestamp": NOW})), SRC, NOW))
    ok(DECODERS["interactions_ms"].decode(enc(track({"timestamp": NOW * 1000})), SRC, NOW))


def test_random_bytes_never_raise() -> None:
    rng = random.Random(20240601)
    base = enc(track({"properties.impression": ["a", "b"], "properties.recommendationId": "R"}))
    decoders = list(DECODERS.values())
    for n in range(3000):
        if n % 3 == 0:
            value = rng.randbytes(rng.randint(0, 600))
        else:  # mutate a valid event so the decoder gets past JSON parsing now and then
            raw = bytearray(base)
            for _ in range(rng.randint(1, 4)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            value = bytes(raw)
        result = decoders[n % len(decoders)].decode(value, SRC, NOW)
        assert isinstance(result, (Interaction, CatalogUpdate, Rejection))
        if isinstance(result, Rejection):
            assert result.rule != "internal_error", result


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    scalars: list[Any] = [
        None,
        True,
        rng.randint(-(2**70), 2**70),
        rng.random() * 1e40,
        float("nan"),
        "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randint(0, 300))),
    ]
    if kind < 6:
        return scalars[kind]
    if kind < 8:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 6))]
    return {rng.choice(["productId", "value", "device", "x"]): _random_json(rng, depth + 1) for _ in range(3)}


def test_random_json_values_at_mapped_paths_never_raise() -> None:
    rng = random.Random(7)
    paths = [
        "event",
        "userId",
        "anonymousId",
        "messageId",
        "timestamp",
        "context.sessionId",
        "properties.productId",
        "properties.value",
        "properties.device",
        "properties.impression",
        "properties.recommendationId",
        "properties.eventAttributionSource",
        "properties",
        "context",
    ]
    catalog_paths = [
        "itemId",
        "userId",
        "properties.price",
        "properties.category",
        "properties.creationTimestamp",
        "traits.membership",
        "traits",
        "properties",
    ]
    for n in range(1500):
        name, base, choices = [
            ("interactions", track, paths),
            ("items", item, catalog_paths),
            ("users", user, catalog_paths),
        ][n % 3]
        doc = base({rng.choice(choices): _random_json(rng) for _ in range(rng.randint(1, 3))})
        result = DECODERS[name].decode(enc(doc), SRC, NOW)
        assert isinstance(result, (Interaction, CatalogUpdate, Rejection))
        if isinstance(result, Rejection):
            assert result.rule != "internal_error", (doc, result)


def test_decode_speed_for_a_typical_track_event() -> None:
    """Keeps the per-event cost in view; the bound is loose so slow CI machines pass."""
    d = decoder()
    value = enc(track({"properties.impression": ["item-1", "item-2"], "context.library": {"name": "js"}}))
    assert 300 <= len(value) <= 600
    rounds = 5000
    start = time.perf_counter()
    for offset in range(rounds):
        d.decode(value, SourceRef("clicks", 0, offset), NOW)
    per_event_us = (time.perf_counter() - start) / rounds * 1e6
    assert per_event_us < 200, per_event_us
