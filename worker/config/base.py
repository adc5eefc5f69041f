"""Shared pieces of the settings models: the base class, the error type and its formatting, endpoint checks."""

from __future__ import annotations

import ipaddress
import urllib.parse
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    SecretStr,
    ValidationError,
)


class ConfigError(Exception):
    """An invalid configuration; the message names each setting and how to fix it."""

class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

#: Parts of a setting's name that mark a secret: its value is never echoed in an error.
SECRET_NAME_PARTS = ("password", "secret", "salt", "token", "key", "credential", "sasl")

def _shown_input(loc: tuple[Any, ...], value: Any) -> str:
    """What an error may say about the offending input: never a secret, never a whole section.

    A section-level error (no topics, a duplicate topic, a DLQ clash) has the whole settings
    input as its `input`, secrets included: only its type is named.
    """
    if any(part in str(name).lower() for name in loc for part in SECRET_NAME_PARTS):
        return "<hidden: a secret>"
    if isinstance(value, SecretStr):
        return "<hidden: a secret>"
    if isinstance(value, dict | list | tuple):
        return f"<a {type(value).__name__} of {len(value)} entries>"
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."

def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: the dotted setting, what is wrong, how to fix it (never a secret)."""
    lines = ["invalid configuration:"]
    for error in exc.errors():
        loc = tuple(error["loc"])
        msg = error["msg"].removeprefix("Value error, ")
        if not loc or (len(loc) == 1 and error["type"] == "value_error"):
            # A rule over several settings: its message says what to change.
            where = "topics" if msg.startswith(("no input topics", "topics:")) else ".".join(map(str, loc))
            lines.append(f"  - {where or '(settings)'}: {msg}; fix: edit the config file given with --config FILE "
                         "(or WORKER_CONFIG)")
            continue
        name = ".".join(str(part) for part in loc)
        env = "WORKER_" + "__".join(str(p).upper() for p in loc if not isinstance(p, int))
        fix = {
            "missing": "add it to the config file",
            "extra_forbidden": "remove it (unknown setting; check the spelling against `config example`)",
        }.get(error["type"], "correct the value")
        also = "" if any(isinstance(p, int) for p in loc) or loc[0] == "topics" else f", or set {env}"
        # An unknown setting may be a misspelt secret ("pasword"): its value is never shown.
        shown = "a value, not shown" if error["type"] == "extra_forbidden" else _shown_input(loc, error.get("input"))
        lines.append(f"  - {name}: {msg} (got {shown}); fix: {fix}{also}")
    return "\n".join(lines)

def check_endpoint_security(url: str, *, allow_insecure_http: bool, what: str) -> None:
    """Refuse a plain-http endpoint off this machine unless `personalize.allow_insecure_http` is set."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or allow_insecure_http:
        return
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"{what} {url} is plain http to a host that is not this machine: signed requests carrying user IDs "
            "would cross the network unencrypted. Fix: use https, or set personalize.allow_insecure_http: true "
            "(WORKER_PERSONALIZE__ALLOW_INSECURE_HTTP=true) for a trusted network such as a compose stand-in"
        )


class _Frozen(BaseModel):
    """Scheduler and archive settings: unknown keys refused, and immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
