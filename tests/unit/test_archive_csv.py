"""The archive's pure CSV encoder and object keys.

Rows are built from Interactions produced by the worker's own EventDecoder (so the test
covers the real wire Event shape, properties JSON included), then read back with the csv
module and checked column by column against the shipped interactions schema.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from worker.archive.csv import ArchiveColumns, encode_rows, format_value, object_body, object_key
from worker.config import DEFAULT_SCHEMA_DIR
from worker.config.mapping import default_mapping
from worker.mapping import EventDecoder
from worker.records import DatasetType, Interaction, SourceRef
from worker.schemas import load_schema, parse_schema
from worker.validation import ValidationLimits

SCHEMA = load_schema(DEFAULT_SCHEMA_DIR / "interactions.json")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


def decode(doc: dict[str, object], offset: int = 0) -> Interaction:
    decoder = EventDecoder(
        DatasetType.INTERACTIONS, default_mapping(DatasetType.INTERACTIONS), SCHEMA, ValidationLimits()
    )
    result = decoder.decode(json.dumps(doc).encode(), SourceRef("clicks", 0, offset), NOW)
    assert isinstance(result, Interaction), result
    return result


def segment(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "type": "track",
        "messageId": "m-1",
        "userId": "u-1",
        "anonymousId": "anon-1",
        "event": "purchase",
        "timestamp": "2026-03-01T11:59:58.750Z",
        "context": {"sessionId": "s-1"},
        "properties": {"productId": "i-9", "value": 12.5, "device": "ios"},
    }
    doc.update(overrides)
    return doc


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_header_follows_schema_field_order() -> None:
    columns = ArchiveColumns.from_schema(SCHEMA)
    assert columns.header() == ",".join(f.name for f in SCHEMA.fields)
    assert columns.header().startswith("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE")


def test_row_values_come_from_the_wire_event() -> None:
    interaction = decode(
        segment(properties={
            "productId": "i-9", "value": 12.5, "device": "ios",
            "recommendationId": "RID-1", "impression": ["i-9", "i-3"],
        })
    )  # fmt: skip
    columns = ArchiveColumns.from_schema(SCHEMA)
    encoded = encode_rows(columns, [interaction])
    [row] = parse(columns.header() + "\n" + encoded.text)
    assert row["USER_ID"] == "u-1"
    assert row["ITEM_ID"] == "i-9"
    assert row["TIMESTAMP"] == str(int(interaction.event["sentAt"]))  # whole seconds, floored
    assert row["TIMESTAMP"] == str(int(datetime(2026, 3, 1, 11, 59, 58, tzinfo=UTC).timestamp()))
    assert row["EVENT_TYPE"] == "purchase"
    assert float(row["EVENT_VALUE"]) == 12.5
    assert row["IMPRESSION"] == "i-9|i-3"
    assert row["RECOMMENDATION_ID"] == "RID-1"
    assert row["DEVICE"] == "ios"  # custom column: properties["device"] mapped back
    assert (encoded.rows, encoded.skipped) == (1, 0)


def test_nulls_are_empty_cells() -> None:
    interaction = decode(segment(properties={"productId": "i-9"}))
    columns = ArchiveColumns.from_schema(SCHEMA)
    [row] = parse(columns.header() + "\n" + encode_rows(columns, [interaction]).text)
    assert row["EVENT_VALUE"] == row["IMPRESSION"] == row["DEVICE"] == ""


def test_anonymous_events_use_the_session_or_are_skipped() -> None:
    anonymous = decode(segment(userId=None))
    assert anonymous.user_id is None
    with_session = ArchiveColumns.from_schema(SCHEMA, "session")
    [row] = parse(with_session.header() + "\n" + encode_rows(with_session, [anonymous]).text)
    assert row["USER_ID"] == "s-1"
    skipping = ArchiveColumns.from_schema(SCHEMA, "skip")
    encoded = encode_rows(skipping, [anonymous, decode(segment())])
    assert (encoded.rows, encoded.skipped) == (1, 1)


def test_event_without_item_is_skipped_because_item_id_is_required() -> None:
    # The decoder already rejects these for the shipped schema; a schema-less caller might not.
    no_item = Interaction("s", "u", {"eventId": "e", "eventType": "view", "sentAt": 10.0})
    encoded = encode_rows(ArchiveColumns.from_schema(SCHEMA), [no_item])
    assert (encoded.rows, encoded.skipped, encoded.text) == (0, 1, "")


def test_values_needing_quotes_survive_a_round_trip() -> None:
    tricky = 'a,"b"\nc'
    interaction = decode(segment(properties={"productId": "i-1", "device": tricky}))
    columns = ArchiveColumns.from_schema(SCHEMA)
    [row] = parse(columns.header() + "\n" + encode_rows(columns, [interaction]).text)
    assert row["DEVICE"] == tricky


def test_custom_boolean_and_numeric_columns() -> None:
    schema = parse_schema(json.dumps({
        "type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"}, {"name": "IS_MOBILE", "type": ["null", "boolean"]},
            {"name": "SCROLL_DEPTH", "type": ["null", "int"]},
        ],
        "version": "1.0",
    }))  # fmt: skip
    columns = ArchiveColumns.from_schema(schema)
    props = json.dumps({"isMobile": True, "scrollDepth": 70})
    interaction = Interaction("s", "u", {"eventId": "e", "eventType": "view", "sentAt": 10.9, "itemId": "i",
                                         "properties": props})  # fmt: skip
    assert columns.header() == "USER_ID,ITEM_ID,TIMESTAMP,IS_MOBILE,SCROLL_DEPTH"
    assert encode_rows(columns, [interaction]).text == "u,i,10,true,70\n"


@pytest.mark.parametrize(
    ("value", "text"), [(None, ""), (True, "true"), (False, "false"), (2.0, "2.0"), (0.1, "0.1"), (7, "7"), ("x", "x")]
)
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text


def test_object_body_has_one_header_then_the_lines() -> None:
    columns = ArchiveColumns.from_schema(SCHEMA)
    body = object_body(columns, ["a\n", "b\n"]).decode()
    assert body.splitlines() == [columns.header(), "a", "b"]


def test_object_keys_are_time_partitioned() -> None:
    when = datetime(2026, 3, 1, 7, 5, 9, tzinfo=UTC).timestamp()
    assert object_key("arch/", when, "abc") == "arch/part-20260301T070509Z-abc.csv"
    assert object_key("", when, "abc", gzip=True) == "part-20260301T070509Z-abc.csv.gz"
    assert object_key("arch/", when, "abc", layout="hive") == "arch/dt=2026-03-01/hour=07/part-abc.csv"
    later = object_key("arch/", when + 3600, "abc")
    assert later > object_key("arch/", when, "abc")  # lexical order is time order
