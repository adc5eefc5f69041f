"""Batch inference input and output formats (pure: no server, no S3)."""

from __future__ import annotations

import json

import pytest
from clickstream_devkit.personalize.control.batch_io import (
    BatchInputError,
    Query,
    output_line,
    output_uri,
    parse_input,
    parse_line,
)


def test_the_documented_inputs_per_recipe_type() -> None:
    users = parse_input(b'{"userId": "4638"}\n\n{"userId": "663"}\n', "USER_PERSONALIZATION")
    assert [(q.user_id, q.error) for q in users] == [("4638", None), ("663", None)]
    related = parse_input(b'{"itemId": "105"}\r\n{"itemId": "106", "userId": "u"}', "RELATED_ITEMS")
    assert [(q.item_id, q.user_id) for q in related] == [("105", None), ("106", "u")]
    ranking = parse_line('{"userId": "891", "itemList": ["27", "886", "101"]}', "PERSONALIZED_RANKING")
    assert ranking.item_list == ("27", "886", "101") and ranking.error is None
    line = '{"userId": "5","filterValues":{"GENRES":"\\"horror\\",\\"comedy\\""}}'
    filtered = parse_line(line, "USER_PERSONALIZATION")
    assert filtered.filter_values == {"GENRES": '"horror","comedy"'}


@pytest.mark.parametrize(
    ("line", "recipe_type", "message"),
    [
        ("not json", "USER_PERSONALIZATION", "not valid JSON"),
        ('["u1"]', "USER_PERSONALIZATION", "must be a JSON object"),
        ('{"itemId": "1"}', "USER_PERSONALIZATION", "userId is required"),
        ('{"userId": "1"}', "RELATED_ITEMS", "itemId is required"),
        ('{"userId": "1"}', "PERSONALIZED_RANKING", "itemList is required"),
        ('{"userId": 7}', "USER_PERSONALIZATION", "userId must be a string"),
        ('{"userId": ""}', "USER_PERSONALIZATION", "userId must be a string"),
        ('{"userId": "' + "u" * 257 + '"}', "USER_PERSONALIZATION", "userId must be a string"),
        ('{"userId": "1", "itemList": []}', "PERSONALIZED_RANKING", "itemList must be a list"),
        ('{"userId": "1", "itemList": [1]}', "PERSONALIZED_RANKING", "itemList must be a list"),
        ('{"userId": "1", "filterValues": {"G": 3}}', "USER_PERSONALIZATION", "filterValues must map"),
    ],
)
def test_a_bad_line_becomes_an_error_line(line: str, recipe_type: str, message: str) -> None:
    query = parse_line(line, recipe_type)
    assert query.error is not None and message in query.error
    out = json.loads(output_line(query, None))
    assert out["output"] is None and message in out["error"]
    assert out["input"] == (json.loads(line) if line.startswith("{") else line)  # not an object: the line's text


def test_an_undecodable_file_fails_the_job() -> None:
    with pytest.raises(BatchInputError, match="not UTF-8"):
        parse_input(b'{"userId": "\xff"}', "USER_PERSONALIZATION")


def test_output_lines_have_the_documented_shape() -> None:
    query = Query({"userId": "4638"}, user_id="4638")
    line = output_line(query, [("63992", 0.01522384), ("115149", 0.0069081)])
    assert line == (
        '{"input":{"userId":"4638"},"output":{"recommendedItems":["63992","115149"],"scores":[0.0152238,0.0069081]},'
        '"error":null}'
    )
    failed = json.loads(output_line(query, None, "Could not find filter"))
    assert failed == {"input": {"userId": "4638"}, "output": None, "error": "Could not find filter"}


def test_output_objects_are_named_after_the_input() -> None:
    assert output_uri("s3://in/batch/users.json", "s3://out/results/") == "s3://out/results/users.json.out"
    assert output_uri("s3://in/users.json", "s3://out/results") == "s3://out/results/users.json.out"
    assert output_uri("s3://in/a.jsonl", "s3://out/") == "s3://out/a.jsonl.out"
