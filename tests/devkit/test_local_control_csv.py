"""CSV import rules (csv_import) and the bulk store's FULL / INCREMENTAL semantics."""

from __future__ import annotations

from pathlib import Path

import pytest
from clickstream_devkit.personalize.control import bulk_store
from clickstream_devkit.personalize.control.bulk_store import BulkInteraction
from clickstream_devkit.personalize.control.csv_import import ImportFailure, parse_files

from worker.records import DatasetType
from worker.schemas import parse_schema

INTERACTIONS = parse_schema(
    '{"type": "record", "name": "Interactions", "fields": ['
    '{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},'
    '{"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},'
    '{"name": "EVENT_VALUE", "type": ["null", "float"]}], "version": "1.0"}'
)
ITEMS = parse_schema(
    '{"type": "record", "name": "Items", "fields": ['
    '{"name": "ITEM_ID", "type": "string"}, {"name": "GENRE", "type": "string", "categorical": true},'
    '{"name": "IN_STOCK", "type": ["null", "boolean"]}], "version": "1.0"}',
    DatasetType.ITEMS,
)
HEADER = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n"


def interactions_csv(n: int, header: str = HEADER) -> bytes:
    rows = "".join(f"u{i % 30},i{i % 50},{1_700_000_000 + i},click,{'' if i % 2 else '0.5'}\n" for i in range(n))
    return (header + rows).encode()


def test_interactions_are_typed() -> None:
    parsed = parse_files([("a.csv", interactions_csv(1000))], INTERACTIONS)
    assert parsed.count == 1000
    first, second = parsed.interactions[:2]
    assert first == BulkInteraction("u0", "i0", 1_700_000_000.0, "click", 0.5)
    assert second.event_value is None


def test_header_is_compared_ignoring_case_but_not_order() -> None:
    parsed = parse_files([("a.csv", interactions_csv(1000, HEADER.lower()))], INTERACTIONS)
    assert parsed.count == 1000
    swapped = "ITEM_ID,USER_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n"
    with pytest.raises(ImportFailure, match="does not match the schema fields"):
        parse_files([("a.csv", interactions_csv(1000, swapped))], INTERACTIONS)


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("u1,i1,yesterday,click,\n", "line 2, field TIMESTAMP: 'yesterday' is not a long"),
        ("u1,i1,1700000000,click,lots\n", "field EVENT_VALUE: 'lots' is not a float"),
        (",i1,1700000000,click,\n", "field USER_ID: empty value in a field that is not nullable"),
        ("u1,i1,1700000000\n", "line 2 has 3 values but the header has 5 columns"),
        (f"{'u' * 257},i1,1700000000,click,\n", "IDs have at most 256 characters"),
    ],
)
def test_first_bad_row_fails_the_job_naming_file_line_and_field(line: str, needle: str) -> None:
    content = (HEADER + line).encode() + interactions_csv(1000)[len(HEADER) :]
    with pytest.raises(ImportFailure) as caught:
        parse_files([("s3://b/data.csv", content)], INTERACTIONS)
    assert needle in caught.value.reason
    assert "s3://b/data.csv" in caught.value.reason


def test_too_few_interactions_fail_and_files_add_up() -> None:
    with pytest.raises(ImportFailure, match="999 interaction records; an import job needs at least 1000"):
        parse_files([("a.csv", interactions_csv(999))], INTERACTIONS)
    assert parse_files([("a.csv", interactions_csv(600)), ("b.csv", interactions_csv(400))], INTERACTIONS).count == 1000
    with pytest.raises(ImportFailure, match="No data files"):
        parse_files([], INTERACTIONS)
    with pytest.raises(ImportFailure, match="not UTF-8"):
        parse_files([("a.csv", b"\xff\xfe" + interactions_csv(1000))], INTERACTIONS)


def test_items_records_keep_column_names_and_check_booleans() -> None:
    content = b"ITEM_ID,GENRE,IN_STOCK\ni1,Drama|Comedy,true\ni2,Horror,\n"
    parsed = parse_files([("items.csv", content)], ITEMS)
    assert parsed.records == [
        ("i1", {"ITEM_ID": "i1", "GENRE": "Drama|Comedy", "IN_STOCK": "true"}),
        ("i2", {"ITEM_ID": "i2", "GENRE": "Horror", "IN_STOCK": None}),
    ]
    with pytest.raises(ImportFailure, match="lower-case true or false"):
        parse_files([("items.csv", b"ITEM_ID,GENRE,IN_STOCK\ni1,Drama,True\n")], ITEMS)
    with pytest.raises(ImportFailure, match="categorical values have at most 1000"):
        parse_files([("items.csv", f"ITEM_ID,GENRE,IN_STOCK\ni1,{'g' * 1001},\n".encode())], ITEMS)


def test_bulk_store_full_replaces_incremental_appends_and_reruns_are_idempotent(tmp_path: Path) -> None:
    path = bulk_store.init(tmp_path)
    row = BulkInteraction("u", "i", 1.0, "click", None)
    bulk_store.write_interactions(path, "ds", "job1", [row] * 3, full=True)
    bulk_store.write_interactions(path, "ds", "job2", [row] * 2, full=False)
    bulk_store.write_interactions(path, "ds", "job2", [row] * 2, full=False)  # the same job re-run after a crash
    assert len(bulk_store.read_interactions(path, "ds")) == 5
    bulk_store.write_interactions(path, "ds", "job3", [row], full=True)
    assert len(bulk_store.read_interactions(path, "ds")) == 1
    bulk_store.write_records(path, "items", "j1", [("a", {"G": "x"}), ("b", {"G": "y"})], full=True)
    bulk_store.write_records(path, "items", "j2", [("a", {"G": "z"})], full=False)
    assert bulk_store.read_records(path, "items") == {"a": {"G": "z"}, "b": {"G": "y"}}
    bulk_store.write_records(path, "items", "j3", [("c", {"G": "w"})], full=True)
    assert bulk_store.read_records(path, "items") == {"c": {"G": "w"}}
    assert bulk_store.counts(path) == {"ds": 1, "items": 1}
