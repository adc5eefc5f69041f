"""Per-preset record shapes: what happens between "bytes parsed" and "fields mapped".

* `text`: a non-JSON line format (Snowplow's TSV); JSON objects are still accepted.
* `normalize`: vendor quirks made uniform (Amplitude's -1 "no session", the Kafka
  connector's stringified `properties`, Snowplow's self-describing event data).
* `explode`: one record -> several rows (GA4: one per entry of `items`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker.decoding import ga4, snowplow
from worker.decoding.outcomes import ShapeError

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Shape:
    text: Callable[[str], Row] | None = None
    normalize: Callable[[Row], Row] | None = None
    explode: Callable[[Row], tuple[list[Row], bool]] | None = None


def amplitude(event: Row) -> Row:
    """`$session_id`: Amplitude session IDs are the session's start in epoch ms, unique per device
    only, and -1 means "no session"; the key pairs them with the device (or user) ID."""
    session = event.get("session_id")
    if isinstance(session, bool) or not isinstance(session, int | str) or str(session) in ("", "-1"):
        return event
    owner = event.get("device_id") or event.get("user_id")
    if owner is not None:
        event["$session_id"] = f"{owner}-{session}"
    return event


def connector(record: Row) -> Row:
    """aws/personalize-kafka-connector records: `properties` is a JSON string, `sentAt` may be a
    string of epoch milliseconds (the connector parses it with Long.parseLong)."""
    props = record.get("properties")
    if type(props) is str:
        try:
            parsed = json.loads(props) if props.strip() else {}
        except ValueError:
            raise ShapeError("bad_properties", "properties", "is not a JSON object string", props) from None
        if type(parsed) is not dict:
            raise ShapeError("bad_properties", "properties", "is not a JSON object string", props)
        record["properties"] = parsed
    sent = record.get("sentAt")
    if type(sent) is str and sent.strip().lstrip("-").isdigit():
        record["sentAt"] = int(sent)
    return record


SHAPES: dict[str, Shape] = {
    "segment": Shape(),
    "rudderstack": Shape(),
    "snowplow": Shape(text=snowplow.parse_tsv, normalize=snowplow.event_data),
    "amplitude": Shape(normalize=amplitude),
    "ga4": Shape(explode=ga4.rows),
    "personalize-connector": Shape(normalize=connector),
}
