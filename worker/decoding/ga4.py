"""GA4 BigQuery export rows: flatten `event_params`, derive the session, one row per item.

Schema: developers.google.com/analytics/bigquery/event-schema. `event_params` is a repeated
{key, value: {string_value | int_value | float_value | double_value}} record; `ga_session_id`
is one of them. The JSON export writes INT64 columns as strings ("1631285116932001"), so
`event_timestamp` and `int_value`s given as digit strings are read as integers.
"""

from __future__ import annotations

from typing import Any

from worker.decoding.outcomes import ShapeError

_VALUE_KEYS = ("string_value", "int_value", "float_value", "double_value")


def _int_or_same(value: Any) -> Any:
    if type(value) is str and value.lstrip("-").isdigit():
        return int(value)
    return value


def flatten_params(params: Any) -> dict[str, Any]:
    """[{key, value: {..._value}}] -> {key: the first non-null typed value}."""
    out: dict[str, Any] = {}
    if params is None:
        return out
    if type(params) is not list:
        raise ShapeError("wrong_type", "event_params", "expected a list of {key, value} records", params)
    for entry in params:
        if type(entry) is not dict or type(entry.get("key")) is not str:
            raise ShapeError("wrong_type", "event_params", "expected {key, value} records", entry)
        value = entry.get("value")
        if type(value) is not dict:
            continue
        for name in _VALUE_KEYS:
            found = value.get(name)
            if found is not None:
                out[entry["key"]] = _int_or_same(found) if name == "int_value" else found
                break
    return out


def session_key(owner: Any, ga_session_id: Any) -> str | None:
    """GA4 session IDs are unique per user only (they are the session's start time in seconds):
    GA4's own guidance pairs them with user_pseudo_id. None when either part is missing."""
    if owner is None or ga_session_id is None or isinstance(ga_session_id, bool):
        return None
    return f"{owner}-{ga_session_id}"


def rows(row: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """(rows to map, exploded): one row per entry of `items`, else the row itself."""
    params = flatten_params(row.get("event_params"))
    base = {**row, "$params": params, "event_timestamp": _int_or_same(row.get("event_timestamp"))}
    session = session_key(row.get("user_pseudo_id") or row.get("user_id"), params.get("ga_session_id"))
    if session is not None:
        base["$session_id"] = session
    items = row.get("items")
    if items is None or items == []:
        return [base], False
    if type(items) is not list or not all(type(item) is dict for item in items):
        raise ShapeError("wrong_type", "items", "expected a list of item records", items)
    return [{**base, "$item": item, "$item_index": index} for index, item in enumerate(items)], True
