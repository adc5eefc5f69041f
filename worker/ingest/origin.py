"""The replay origin header, and why the worker trusts it only when it is authenticated.

`dlq replay` re-publishes a dead-lettered record with `clickstream.origin` =
``topic:partition:offset`` of its *first* position, so an event without an ID of its own
keeps the ID derived from that position: a record replayed after a delivery that did in
fact reach Personalize is deduplicated there instead of becoming a second training row.

Any producer on an input topic can set the same header, though, and the worker would
derive the event ID from whatever position it names. The header is therefore honoured
only with `clickstream.origin.mac`: an HMAC-SHA256, under the key that `dlq replay` and the
worker share (`dlq.replay_origin_key`), over the origin and digests of the record's key and
value, so a valid pair copied onto other content does not verify. Without a valid MAC the
header is ignored (and counted): the record gets the ID of its own position.

Pure functions; no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from enum import StrEnum

from worker.records import Header, SourceRef

ORIGIN_HEADER = "clickstream.origin"
ORIGIN_MAC_HEADER = "clickstream.origin.mac"


class OriginCheck(StrEnum):
    """What the origin headers of a record amount to."""

    NONE = "none"  # no origin header: a record like any other
    VERIFIED = "verified"
    UNAUTHENTICATED = "unauthenticated"  # no MAC, or no key configured to check it with
    INVALID = "invalid"  # a MAC that does not verify, or an unparseable origin


def format_origin(source: SourceRef) -> str:
    return f"{source.topic}:{source.partition}:{source.offset}"


def parse_origin(value: str) -> tuple[str, int, int] | None:
    """Parse `topic:partition:offset` (Kafka topic names cannot contain ':')."""
    parts = value.rsplit(":", 2)
    if len(parts) != 3 or not parts[0]:
        return None
    try:
        partition, offset = int(parts[1]), int(parts[2])
    except ValueError:
        return None
    return (parts[0], partition, offset) if partition >= 0 and offset >= 0 else None


def origin_mac(secret: bytes, origin: str, key: bytes | None, value: bytes | None) -> str:
    """HMAC-SHA256 (hex) over the origin and the digests of the record's key and value."""
    message = b"clickstream-origin/1\x00" + origin.encode()
    for part in (key, value):
        message += b"\x00-" if part is None else b"\x00" + hashlib.sha256(part).digest()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def check_origin(
    headers: Sequence[Header], secret: bytes | None, key: bytes | None, value: bytes | None
) -> tuple[OriginCheck, SourceRef | None]:
    """The origin a record may be identified by, if its headers prove it."""
    origin = mac = None
    for name, raw in headers:
        if name == ORIGIN_HEADER:
            origin = raw.decode("utf-8", "replace")
        elif name == ORIGIN_MAC_HEADER:
            mac = raw.decode("ascii", "replace")
    if origin is None:
        return OriginCheck.NONE, None
    if not secret or mac is None:
        return OriginCheck.UNAUTHENTICATED, None
    parsed = parse_origin(origin)
    if parsed is None or not hmac.compare_digest(mac, origin_mac(secret, origin, key, value)):
        return OriginCheck.INVALID, None
    return OriginCheck.VERIFIED, SourceRef(*parsed)
