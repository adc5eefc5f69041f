"""``nextToken`` / ``maxResults`` pagination of the List* operations (pure).

Every List* operation of the real API pages with ``nextToken`` in and out and
``maxResults`` (1-100) as the limit (contract Appendix A, PAG). Lists here are ordered
newest first (creation time descending, then ARN), and a token is a keyset cursor: the
sort key of the last entry returned plus a fingerprint of the request's filter. A keyset
cursor does not skip or repeat entries when resources are created between two pages,
which an offset would. A token that does not decode, or that was issued for another
filter, is InvalidNextTokenException, as on the real service.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

from clickstream_devkit.personalize.errors import ApiError

INVALID_NEXT_TOKEN: Final = "InvalidNextTokenException"  # noqa: S105 - an error code
DEFAULT_MAX_RESULTS: Final = 100

T = TypeVar("T")
SortKey = tuple[float, str]


def _fingerprint(scope: str) -> str:
    return hashlib.blake2b(scope.encode(), digest_size=6).hexdigest()


def encode_token(key: SortKey, scope: str) -> str:
    raw = json.dumps([key[0], key[1], _fingerprint(scope)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_token(token: str, scope: str) -> SortKey:
    try:
        created, arn, fingerprint = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        key = (float(created), str(arn))
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise ApiError(INVALID_NEXT_TOKEN, "The nextToken is not valid", rule="bad_token") from None
    if fingerprint != _fingerprint(scope):
        raise ApiError(INVALID_NEXT_TOKEN, "The nextToken was issued for a different request", rule="bad_token")
    return key


def paginate(
    entries: Sequence[T],
    body: dict[str, Any],
    *,
    key: Callable[[T], SortKey],
    scope: str,
) -> tuple[list[T], str | None]:
    """One page of `entries` (any order in; newest first out) and the next token, if any.

    `scope` names the listing and its filter (e.g. ``"solutions|<groupArn>"``).
    """
    ordered = sorted(entries, key=lambda e: (-key(e)[0], key(e)[1]))
    limit = int(body.get("maxResults") or DEFAULT_MAX_RESULTS)
    token = body.get("nextToken")
    if token:
        created, arn = decode_token(token, scope)
        ordered = [e for e in ordered if (-key(e)[0], key(e)[1]) > (-created, arn)]
    page = ordered[:limit]
    next_token = encode_token(key(page[-1]), scope) if len(ordered) > limit else None
    return page, next_token


def listing(key: str, entries: list[dict[str, Any]], token: str | None) -> dict[str, Any]:
    """A List* reply: the result key, plus ``nextToken`` only when there is a next page."""
    out: dict[str, Any] = {key: entries}
    if token:
        out["nextToken"] = token
    return out
