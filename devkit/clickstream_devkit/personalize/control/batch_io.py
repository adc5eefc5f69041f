"""Batch inference input and output, as the developer guide documents them (pure).

Input: JSON Lines, one query per line, by recipe type (DG "Preparing batch input data")::

    {"userId": "4638"}                                          USER_PERSONALIZATION
    {"itemId": "105"}                                           RELATED_ITEMS
    {"userId": "891", "itemList": ["27", "886", "101"]}         PERSONALIZED_RANKING

each optionally with ``"filterValues": {"GENRES": "\\"horror\\",\\"comedy\\""}`` for a job
whose filter has parameters (DG "Filtering batch recommendations"); related-items queries
may add ``userId`` for Interactions filters. Blank lines are skipped.

Output: for an input object named ``<name>``, the object ``<name>.out`` under the job's
output path, one line per query in input order::

    {"input": {"userId": "4638"}, "output": {"recommendedItems": [...], "scores": [...]}, "error": null}

A query that cannot be answered (not JSON, a missing ``userId``, an unknown filter
parameter value …) still gets its line, with ``"output": null`` and ``error`` saying why,
and the job still succeeds -- DescribeBatchInferenceJob's ``numResults`` doc counts "the
error messages generated for failed input records". The input echoed back is the parsed
object (or, for a line that is not a JSON object, the line's text).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

MAX_ID_LENGTH: Final = 256
MAX_ITEM_LIST: Final = 500
OUTPUT_SUFFIX: Final = ".out"
_REQUIRED: Final = {"RELATED_ITEMS": ("itemId",), "PERSONALIZED_RANKING": ("userId", "itemList")}


class BatchInputError(ValueError):
    """The input file as a whole is unusable (the job fails)."""


@dataclass(frozen=True)
class Query:
    #: What the output line echoes as ``input``.
    echo: Any
    user_id: str | None = None
    item_id: str | None = None
    item_list: tuple[str, ...] = ()
    filter_values: dict[str, str] | None = None
    #: Why the line cannot be answered (None: it can).
    error: str | None = None


def parse_input(data: bytes, recipe_type: str) -> list[Query]:
    """Every non-blank line of one input object, as a query (or an error line)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BatchInputError(f"The input is not UTF-8 text: {exc}") from None
    return [parse_line(line, recipe_type) for line in text.splitlines() if line.strip()]


def parse_line(line: str, recipe_type: str) -> Query:
    try:
        record = json.loads(line)
    except ValueError:
        return Query(line, error="The input line is not valid JSON.")
    if not isinstance(record, dict):
        return Query(line, error="The input line must be a JSON object.")
    problem = _check(record, recipe_type)
    if problem is not None:
        return Query(record, error=problem)
    return Query(
        record,
        user_id=record.get("userId"),
        item_id=record.get("itemId"),
        item_list=tuple(record.get("itemList") or ()),
        filter_values=record.get("filterValues"),
    )


def _check(record: dict[str, Any], recipe_type: str) -> str | None:
    needed = _REQUIRED.get(recipe_type, ("userId",))
    for key in needed:
        if key not in record:
            return f"{key} is required for a solution version of recipe type {recipe_type}."
    for key in ("userId", "itemId"):
        if key in record and not _is_id(record[key]):
            return f"{key} must be a string of 1 to {MAX_ID_LENGTH} characters."
    items = record.get("itemList")
    if items is not None and (
        not isinstance(items, list) or not items or len(items) > MAX_ITEM_LIST or not all(_is_id(i) for i in items)
    ):
        return f"itemList must be a list of 1 to {MAX_ITEM_LIST} item IDs."
    values = record.get("filterValues")
    if values is not None and (
        not isinstance(values, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())
    ):
        return "filterValues must map parameter names to strings."
    return None


def _is_id(value: object) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= MAX_ID_LENGTH


def output_line(query: Query, ranked: Sequence[tuple[str, float]] | None, error: str | None = None) -> str:
    """One output line (see the module docstring)."""
    reason = error if error is not None else query.error
    output = None
    if reason is None and ranked is not None:
        output = {"recommendedItems": [item for item, _ in ranked], "scores": [round(float(s), 7) for _, s in ranked]}
    return json.dumps({"input": query.echo, "output": output, "error": reason}, separators=(",", ":"))


def output_uri(input_uri: str, output_path: str) -> str:
    """``s3://in/users.json`` + ``s3://out/results/`` -> ``s3://out/results/users.json.out``."""
    name = input_uri.rstrip("/").rsplit("/", 1)[-1]
    folder = output_path if output_path.endswith("/") else output_path + "/"
    return folder + name + OUTPUT_SUFFIX
