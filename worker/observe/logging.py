"""Structured logging for the worker: one stream, JSON in containers, no personal data.

Why structlog over plain `logging`: every log line carries machine-readable fields
(topic, partition, api, outcome) that log pipelines index without regexes. Third-party
libraries (kafka-python, botocore, aiohttp) log through stdlib `logging`; their records
are routed through the same processors so they come out in the same format and pass
through the same redaction.

Two protections run on every record, including those from libraries:

* user and session identifiers are personal data; their values are replaced by a
  salted, stable hash (`redact_id`) so operators can still correlate lines about the
  same user without the log store holding the identifier;
* anything keyed like a credential (password, token, secret, SASL settings ...) is
  masked, recursively, so a logged client configuration cannot leak a secret.
"""

from __future__ import annotations

import hashlib
import json as _json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from worker.records import Rejection

#: Keys whose values identify a person (PutEvents' userId/sessionId, Segment's anonymousId).
USER_ID_KEYS: frozenset[str] = frozenset(
    {"user_id", "userId", "session_id", "sessionId", "anonymous_id", "anonymousId"}
)

#: A key containing any of these (case-insensitive) holds a credential.
CREDENTIAL_KEY_PARTS: tuple[str, ...] = (
    "secret",
    "password",
    "token",
    "credential",
    "authorization",
    "sasl",
    "api_key",
    "salt",
    "private_key",
    "signing_key",
    "origin_key",
)

#: Libraries that log chattily at INFO/DEBUG; held at WARNING unless asked otherwise.
NOISY_LIBRARIES: tuple[str, ...] = (
    "kafka",
    "botocore",
    "aiobotocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "aiohttp",
    "asyncio",
)

MASK = "***"

#: Reserved log key: identities (user, anonymous, session IDs) to blank from every string of
#: the line. Callers that log text which may quote a record (an error message echoing a
#: request, a rejected value) pass the record's identities here; the key never reaches output.
SCRUB_KEY = "scrub"

#: Log key for text that may quote a record verbatim (the start of an unparseable record, an
#: unexpected exception's text): omitted when redaction is on, because nothing in it can be
#: told apart from personal data.
RAW_EXCERPT_KEY = "raw_excerpt"

#: Identities shorter than this are not scrubbed from text: a one- or two-character ID
#: ("7") occurs in every timestamp and identifies nobody on its own.
MIN_SCRUB_CHARS = 3

#: AWS access key IDs are recognisable in free text (a message, an exception string).
_AWS_ACCESS_KEY_RE = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")

#: Marks the handler this module installs, so reconfiguring replaces only our own.
_HANDLER_MARK = "_clickstream_worker_handler"


def redact_id(value: str, salt: str) -> str:
    """Replace an identifier by a short stable hash.

    Same (salt, value) gives the same output, so lines about one user still line up;
    without the salt the hash of a guessable ID cannot be reversed by a dictionary of
    hashes made elsewhere. 16 hex digits (64 bits) make accidental collisions
    irrelevant at clickstream scale.
    """
    # surrogatepass: a malformed ID (lone surrogates from JSON escapes) must hash, not raise.
    digest = hashlib.sha256((salt + value).encode("utf-8", "surrogatepass")).hexdigest()
    return "h:" + digest[:16]


def _is_credential_key(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in CREDENTIAL_KEY_PARTS)


def scrub_text(text: str, identities: Iterable[str], salt: str) -> str:
    """`text` with every occurrence of each identity replaced by its `redact_id` hash."""
    for identity in sorted({i for i in identities if len(i) >= MIN_SCRUB_CHARS}, key=len, reverse=True):
        if identity in text:
            text = text.replace(identity, redact_id(identity, salt))
    return text


def omitted(value: object) -> str:
    """What a raw record excerpt becomes in a log line when redaction is on."""
    size = len(value) if isinstance(value, str | bytes) else 0
    return f"<omitted: {size} chars that may quote a record (observability.redact_user_ids)>"


class RedactUserIds:
    """structlog processor: no user or session identifier reaches a log line.

    * values of identifier keys (`user_id`, `sessionId`, ...) are hashed, at any depth;
    * identities passed under `scrub` are replaced by their hashes inside every string;
    * excerpts of unparseable records (`raw_excerpt`) are omitted.
    """

    def __init__(self, salt: str, keys: Iterable[str] = USER_ID_KEYS) -> None:
        self._salt = salt
        self._keys = frozenset(keys)

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        scrub = event_dict.pop(SCRUB_KEY, None) or ()
        identities = tuple(str(i) for i in scrub if i is not None and not isinstance(i, bool))
        for key, value in event_dict.items():
            if key == RAW_EXCERPT_KEY and value is not None:
                event_dict[key] = omitted(value)
            else:
                event_dict[key] = self._walk(key, value, identities)
        return event_dict

    def _walk(self, key: object, value: Any, identities: tuple[str, ...]) -> Any:
        if (
            isinstance(key, str)
            and key in self._keys
            and isinstance(value, (str, int))
            and not isinstance(value, bool)
            and value != ""
        ):
            return redact_id(str(value), self._salt)
        if isinstance(value, str):
            return scrub_text(value, identities, self._salt) if identities else value
        if isinstance(value, Mapping):
            return {k: self._walk(k, v, identities) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._walk(None, v, identities) for v in value]
        return value


#: Rejected fields whose offending value identifies a person (hashed in logs when redaction is on).
IDENTITY_FIELDS = frozenset({"userId", "sessionId", "USER_ID", "anonymousId"})


def rejection_log_fields(rejection: Rejection) -> dict[str, object]:
    """A rejection as log fields that the redaction processor can make safe.

    The offending value goes under `user_id` when the field identifies a person (hashed),
    under `raw_excerpt` when it is the start of an unparseable record (omitted), and the
    identities found in the record ride along as `scrub` (blanked from every string).
    """
    details: dict[str, object] = dict(rejection.to_dict())
    value = details.pop("value")
    if value is not None:
        if rejection.field in IDENTITY_FIELDS:
            details["user_id"] = value
        elif rejection.field is None:
            details[RAW_EXCERPT_KEY] = value
        else:
            details["value"] = value
    details[SCRUB_KEY] = rejection.identities
    return details


def drop_redaction_hints(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor used when redaction is off: the `scrub` hint is not output."""
    event_dict.pop(SCRUB_KEY, None)
    return event_dict


def mask_credentials(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask values of credential-like keys, at any depth.

    Also blanks AWS access key IDs found inside any string, which catches keys that
    end up in messages or exception texts rather than under a tell-tale key.
    """
    for key, value in event_dict.items():
        event_dict[key] = _mask(key, value)
    return event_dict


def mask_access_keys(text: str) -> str:
    """`text` with AWS access key IDs blanked (they can surface in service error messages)."""
    return _AWS_ACCESS_KEY_RE.sub(MASK, text) if ("AKIA" in text or "ASIA" in text) else text


def _mask(key: object, value: Any) -> Any:
    if isinstance(key, str) and _is_credential_key(key) and value is not None:
        return MASK
    if isinstance(value, Mapping):
        return {k: _mask(k, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(None, v) for v in value]
    if isinstance(value, str):
        return mask_access_keys(value)
    return value


def _shared_processors(redact_user_ids: bool, redaction_salt: str) -> list[Processor]:
    """Processors applied to structlog and stdlib records alike (order matters:
    redaction runs last so it also sees fields added by earlier steps)."""
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    processors.append(RedactUserIds(redaction_salt) if redact_user_ids else drop_redaction_hints)
    processors.append(mask_credentials)
    return processors


def _json_dumps(obj: Any, **kwargs: Any) -> str:
    """Never fail a log call on an unserialisable value: fall back to its repr."""
    kwargs.setdefault("default", repr)
    return _json.dumps(obj, **kwargs)


def configure_logging(
    *,
    json: bool | None = None,
    level: str = "INFO",
    redact_user_ids: bool = True,
    redaction_salt: str = "",
    library_level: str = "WARNING",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and stdlib logging to write one format to stderr.

    `json=None` picks JSON lines when the stream is not a terminal (containers, log
    shippers) and a readable console rendering on a terminal. `library_level` holds the
    chatty client libraries back; `stream` exists for tests. Safe to call again: it
    replaces the handler it installed before and leaves other handlers alone.
    """
    out = stream if stream is not None else sys.stderr
    use_json = (not _isatty(out)) if json is None else json
    shared = _shared_processors(redact_user_ids, redaction_salt)

    renderer: Processor
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if use_json:
        final.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(serializer=_json_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_isatty(out))
    final.append(renderer)

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=final,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)

    # Python warnings (a deprecated setting's FutureWarning, ...) come out as log lines too.
    logging.captureWarnings(True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(library_level.upper())

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a later configure_logging call (tests, CLI flags) must take effect
        # on loggers created at import time.
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger named like a stdlib one (the module name by convention)."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
