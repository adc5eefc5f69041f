"""`clickstream-worker validate FILE|-`: check sample events offline with the live decoder.

Running the exact decoder the worker runs (same mapping, schema and limits) means a
clean `validate` predicts a clean dead-letter topic; nothing here talks to Kafka or AWS.
Output is JSON lines so it can be piped into `jq` or a CI check: one line per invalid
event, then one summary line.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TextIO

from worker.mapping import EventDecoder
from worker.observe.logging import RedactUserIds, rejection_log_fields
from worker.records import Rejection, SourceRef


def open_input(path: str) -> Iterable[bytes]:
    """Lines of `path` as bytes (undecoded, as Kafka would hand them over); `-` is stdin."""
    if path == "-":
        return iter(sys.stdin.buffer)
    return _file_lines(path)


def _file_lines(path: str) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        yield from handle


def run_validate(
    lines: Iterable[bytes],
    decoder: EventDecoder,
    out: TextIO,
    now: float,
    source_topic: str = "validate",
    *,
    redaction_salt: str | None = None,
) -> int:
    """Decode every non-blank line; report the invalid ones; return 1 if any, else 0.

    The line number doubles as the Kafka offset, so derived event IDs are reproducible.
    With `redaction_salt` set, each report goes through the same redaction as the
    worker's logs: identifier values hashed, excerpts of unparseable lines omitted, the
    line's user and session IDs blanked from every message.
    """
    redact = None if redaction_salt is None else RedactUserIds(redaction_salt)
    events = invalid = 0
    rules: Counter[str] = Counter()
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        events += 1
        result = decoder.decode(line, SourceRef(source_topic, 0, number), now)
        if isinstance(result, Rejection):
            invalid += 1
            rules[f"{result.stage.value}/{result.rule}"] += 1
            report = result.to_dict() if redact is None else redact(None, "validate", rejection_log_fields(result))
            out.write(json.dumps({"line": number, **report}, ensure_ascii=False) + "\n")
    summary = {"summary": {"events": events, "valid": events - invalid, "invalid": invalid, "by_rule": dict(rules)}}
    out.write(json.dumps(summary) + "\n")
    return 1 if invalid else 0
