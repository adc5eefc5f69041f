"""Server-side request validation driven by botocore's own service model.

Part of the local Personalize, a development/test stand-in. botocore validates only
required members, types and *minimum* lengths/values on the client; the real service
also enforces ``max``, ``pattern`` and ``enum`` (contract §3). The emulator has to do
the same or an oversized batch that AWS rejects would sail through locally. Reading
the constraints from the installed botocore model, rather than re-typing them, keeps
the emulator in step with the SDK the worker actually uses, and the same walker will
serve the control-plane and runtime models later.

The model is compiled once into a tree of small checker callables (one per shape),
so validating a 10-event PutEvents body is a few dozen cheap calls. A checker raises
`_Invalid`; the path to the offending member is assembled only while that exception
propagates, so the success path never builds strings.

Semantics, chosen to match AWS JSON services:

* A JSON ``null`` member counts as absent; unknown members are ignored.
* String length is counted in code points (Smithy ``length``); list/map length in entries.
* Patterns are ECMAScript regexes and are *not* implicitly anchored (Smithy), so they
  are applied with ``re.search``; a trailing ``$`` is made strict (``\\Z``).
* Timestamps (no ``timestampFormat`` in these models) must be JSON numbers of epoch
  seconds, which is what botocore sends; booleans are never numbers.
* Members of ``sensitive`` shapes (and everything inside a sensitive structure, such as
  ``Event``) never have their value echoed in a message.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

#: Longest rendering of an offending (non-sensitive) value inside a message.
_MAX_VALUE_CHARS = 100

Check = Callable[[Any], None]


@dataclass(frozen=True, slots=True)
class Violation:
    """The first constraint a request breaks.

    `path` names the member with dots and zero-based list indexes
    (``eventList.0.properties``; ``""`` is the body itself). `rule` is a short stable
    identifier (``required``, ``type``, ``max_length``, ``pattern`` …) for statistics
    and tests; `constraint` is the AWS-style human sentence.
    """

    path: str
    rule: str
    constraint: str
    value: str | None = None

    @property
    def message(self) -> str:
        where = f"'{self.path}'" if self.path else "the request body"
        shown = f" '{self.value}'" if self.value is not None else ""
        return f"Validation error: value{shown} at {where} failed to satisfy constraint: {self.constraint}"


class _Invalid(Exception):  # noqa: N818 - internal control flow, never escapes this module
    def __init__(self, rule: str, constraint: str, value: str | None) -> None:
        super().__init__(constraint)
        self.rule = rule
        self.constraint = constraint
        self.value = value
        self.segments: list[str] = []  # innermost first; reversed once at the top

    def to_violation(self) -> Violation:
        return Violation(".".join(reversed(self.segments)), self.rule, self.constraint, self.value)


def load_service_model(service_name: str) -> ServiceModel:
    """The model botocore itself uses for `service_name` (e.g. ``personalize-events``)."""
    return botocore.session.get_session().get_service_model(service_name)


class RequestValidator:
    """Checks operation inputs of one service against its model; compiled once."""

    def __init__(self, service_model: ServiceModel) -> None:
        self._memo: dict[tuple[str, bool], Check] = {}
        self._checks: dict[str, Check] = {}
        for name in service_model.operation_names:
            operation: OperationModel = service_model.operation_model(name)
            if operation.input_shape is not None:
                self._checks[name] = self._compile(operation.input_shape, sensitive=False)

    @property
    def operations(self) -> frozenset[str]:
        return frozenset(self._checks)

    def validate(self, operation: str, body: Any) -> Violation | None:
        """Return the first violation in `body` (a decoded JSON value), or None."""
        try:
            self._checks[operation](body)
        except _Invalid as invalid:
            return invalid.to_violation()
        return None

    # -- compilation -------------------------------------------------------------

    def _compile(self, shape: Shape, *, sensitive: bool) -> Check:
        sensitive = sensitive or bool(shape.metadata.get("sensitive"))
        key = (shape.name, sensitive)
        existing = self._memo.get(key)
        if existing is not None:
            return existing
        check: Check
        if isinstance(shape, StructureShape):
            if shape.is_document_type:
                check = _accept_anything
            else:
                struct = _Struct(bool(shape.metadata.get("union")))
                self._memo[key] = struct  # before members: recursive shapes resolve to it
                struct.members = [
                    (name, name in shape.required_members, self._compile(member, sensitive=sensitive))
                    for name, member in shape.members.items()
                ]
                check = struct
        elif isinstance(shape, ListShape):
            check = _list_check(shape, self._compile(shape.member, sensitive=sensitive))
        elif isinstance(shape, MapShape):
            check = _map_check(
                shape,
                self._compile(shape.key, sensitive=sensitive),
                self._compile(shape.value, sensitive=sensitive),
            )
        else:
            check = _scalar_check(shape, sensitive)
        self._memo[key] = check
        return check


def _accept_anything(value: Any) -> None:
    """Document types are free-form JSON."""


class _Struct:
    """Structure checker; a class (not a closure) so recursive shapes can refer to it."""

    __slots__ = ("members", "union")

    def __init__(self, union: bool) -> None:
        self.union = union
        self.members: list[tuple[str, bool, Check]] = []

    def __call__(self, value: Any) -> None:
        if type(value) is not dict:
            raise _Invalid("type", "Member must be an object", None)
        present = 0
        for name, required, check in self.members:
            member = value.get(name)
            if member is None:
                if required:
                    invalid = _Invalid("required", "Member must not be null", None)
                    invalid.segments.append(name)
                    raise invalid
                continue
            present += 1
            try:
                check(member)
            except _Invalid as invalid:
                invalid.segments.append(name)
                raise
        if self.union and present != 1:
            raise _Invalid("union", "Exactly one member of the union must be set", None)


def _list_check(shape: ListShape, member_check: Check) -> Check:
    lo, hi = shape.metadata.get("min"), shape.metadata.get("max")

    def check(value: Any) -> None:
        if type(value) is not list:
            raise _Invalid("type", "Member must be a list", None)
        _check_count(len(value), lo, hi, "items")
        for index, item in enumerate(value):
            try:
                member_check(item)
            except _Invalid as invalid:
                invalid.segments.append(str(index))
                raise

    return check


def _map_check(shape: MapShape, key_check: Check, value_check: Check) -> Check:
    lo, hi = shape.metadata.get("min"), shape.metadata.get("max")

    def check(value: Any) -> None:
        if type(value) is not dict:
            raise _Invalid("type", "Member must be a map", None)
        _check_count(len(value), lo, hi, "entries")
        for key, item in value.items():
            try:
                key_check(key)
                if item is not None:
                    value_check(item)
            except _Invalid as invalid:
                invalid.segments.append(str(key))
                raise

    return check


def _check_count(count: int, lo: int | None, hi: int | None, unit: str) -> None:
    if lo is not None and count < lo:
        raise _Invalid(f"min_{unit}", f"Member must have length greater than or equal to {lo}", None)
    if hi is not None and count > hi:
        raise _Invalid(f"max_{unit}", f"Member must have length less than or equal to {hi}", None)


def _scalar_check(shape: Shape, sensitive: bool) -> Check:
    kind = shape.type_name
    if kind == "string":
        return _string_check(shape, sensitive)
    if kind in ("integer", "long"):
        return _number_check(shape, sensitive, integral=True)
    if kind in ("float", "double"):
        return _number_check(shape, sensitive, integral=False)
    if kind == "timestamp":
        return _timestamp_check
    if kind == "boolean":
        return _boolean_check
    if kind == "blob":
        return _blob_check
    raise ValueError(f"unsupported shape type {kind!r} in {shape.name}")


def _render(value: object, sensitive: bool) -> str | None:
    if sensitive:
        return None
    text = str(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[:_MAX_VALUE_CHARS] + "..."


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a Smithy (ECMAScript) pattern for `re.fullmatch`.

    Python's `re` lacks Unicode property classes (``\\p{L}``, ``\\p{ASCII}``, used by the
    control-plane tag shapes), so they are expanded to explicit ranges; a trailing ``$``
    becomes ``\\Z`` because Python's ``$`` also matches before a final newline.

    The whole value must match: the models anchor names only at the start
    (``^[a-zA-Z0-9][a-zA-Z0-9\\-_]*``), and a search would accept ``x/../../..`` as a name
    because ``x`` matches; the service validates the whole value.
    """
    pattern = _expand_unicode_properties(pattern)
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern, re.ASCII)


_UNICODE_PROPERTY = re.compile(r"\\p\{(\w+)\}")


def _expand_unicode_properties(pattern: str) -> str:
    out: list[str] = []
    index, in_class = 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            match = _UNICODE_PROPERTY.match(pattern, index)
            if match is None:
                out.append(pattern[index : index + 2])
                index += 2
                continue
            body = _property_ranges(match.group(1))
            out.append(body if in_class else f"[{body}]")
            index = match.end()
            continue
        if char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        out.append(char)
        index += 1
    return "".join(out)


@functools.cache
def _property_ranges(name: str) -> str:
    """Character-class body for a Unicode property: ``ASCII`` or a general category (``L``, ``Lu``)."""
    if name == "ASCII":
        return r"\x00-\x7f"
    if not (1 <= len(name) <= 2 and name[0] in "CLMNPSZ"):
        raise ValueError(f"unsupported Unicode property \\p{{{name}}} in a model pattern")
    runs: list[str] = []
    start = -1
    for code in range(sys.maxunicode + 2):
        inside = code <= sys.maxunicode and unicodedata.category(chr(code)).startswith(name)
        if inside and start < 0:
            start = code
        elif not inside and start >= 0:
            runs.append(f"\\U{start:08x}-\\U{code - 1:08x}")
            start = -1
    return "".join(runs)


def _string_check(shape: Shape, sensitive: bool) -> Check:
    lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
    raw_pattern: str | None = shape.metadata.get("pattern")
    pattern = compile_pattern(raw_pattern) if raw_pattern is not None else None
    enum = frozenset(shape.enum) if shape.enum else None

    def check(value: Any) -> None:
        if type(value) is not str:
            raise _Invalid("type", "Member must be of type string", None)
        length = len(value)
        if lo is not None and length < lo:
            raise _Invalid(
                "min_length",
                f"Member must have length greater than or equal to {lo}",
                _render(value, sensitive),
            )
        if hi is not None and length > hi:
            raise _Invalid(
                "max_length", f"Member must have length less than or equal to {hi}", _render(value, sensitive)
            )
        if pattern is not None and pattern.fullmatch(value) is None:
            raise _Invalid(
                "pattern",
                f"Member must satisfy regular expression pattern: {raw_pattern}",
                _render(value, sensitive),
            )
        if enum is not None and value not in enum:
            raise _Invalid(
                "enum",
                f"Member must satisfy enum value set: [{', '.join(shape.enum)}]",
                _render(value, sensitive),
            )

    return check


def _number_check(shape: Shape, sensitive: bool, *, integral: bool) -> Check:
    lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
    allowed: tuple[type, ...] = (int,) if integral else (int, float)
    type_name = "integer" if integral else "number"

    def check(value: Any) -> None:
        if type(value) not in allowed:  # exact type: bool is an int subclass
            raise _Invalid("type", f"Member must be of type {type_name}", None)
        if lo is not None and value < lo:
            raise _Invalid(
                "min_value",
                f"Member must have value greater than or equal to {lo}",
                _render(value, sensitive),
            )
        if hi is not None and value > hi:
            raise _Invalid("max_value", f"Member must have value less than or equal to {hi}", _render(value, sensitive))

    return check


def _timestamp_check(value: Any) -> None:
    if type(value) not in (int, float):
        raise _Invalid("type", "Member must be a timestamp in epoch seconds (a JSON number)", None)


def _boolean_check(value: Any) -> None:
    if type(value) is not bool:
        raise _Invalid("type", "Member must be of type boolean", None)


def _blob_check(value: Any) -> None:
    if type(value) is not str:
        raise _Invalid("type", "Member must be a base64-encoded string", None)
