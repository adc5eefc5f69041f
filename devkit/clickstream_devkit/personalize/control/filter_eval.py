"""Applying a filter to candidate items: ``filterValues`` binding and evaluation (pure).

``filterValues`` (GetRecommendations, GetPersonalizedRanking, batch input lines): one entry
per placeholder parameter, keyed by the parameter name without ``$`` in matching case,
whose value lists the values separated by commas, each string in double quotes
(``{"GENRES": "\\"horror\\",\\"comedy\\""}``); a number for a comparison (``"100"``, quotes
optional). At most `MAX_VALUES_PER_PARAMETER` values per parameter. An INCLUDE expression
needs every one of its parameters; an EXCLUDE expression whose parameters are not all
given is left out (the guide: "Amazon Personalize doesn't use that portion of the
expression"; the stand-in reads "portion" as the whole ``|``-separated expression). Keys
that name no parameter of the filter are ignored.

Evaluation follows the guide:

* ``Exclude A | Exclude B`` removes what A or B matches; ``Include A | Include B`` keeps what
  A or B matches; ``Include A | Exclude B`` keeps what A matches minus what B matches, in any
  order of the expressions;
* an Items condition tests the item's own metadata: IN holds when any of its ``|``-separated
  categorical values is listed (exact, case-sensitive), NOT IN is its negation, comparisons
  are numeric; an item without the field (or without an Items record) fails IN and every
  comparison and passes NOT IN;
* an Interactions condition holds for the items the user interacted with under a listed
  event type (case-insensitive, the one place the guide ignores case; ``"*"`` = any type),
  NOT IN for those interacted with under any other type; only the user's
  `MAX_INTERACTIONS_PER_EVENT_TYPE` most recent interactions per event type count;
* ``CurrentItem.FIELD`` is the value of the request's ``itemId`` (related-items recipes);
* an ``IF CurrentUser...`` condition decides whether its expression applies at all: when it
  does not hold (or the user has no Users record), the expression filters nothing.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from clickstream_devkit.personalize.control.filter_expr import (
    ANY_EVENT_TYPE,
    CURRENT_USER,
    INTERACTIONS,
    Condition,
    Expression,
    FilterExpression,
    Number,
    Param,
    Ref,
    Text,
    unquote,
)

MAX_VALUES_PER_PARAMETER: Final = 10
MAX_INTERACTIONS_PER_EVENT_TYPE: Final = 100
_VALUE = re.compile(r'\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?)\s*(,|\Z)')
_COMPARE: Final[dict[str, Callable[[float, float], bool]]] = {
    "=": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}

Metadata = Mapping[str, str]
ItemTest = Callable[[str], bool]


class FilterValuesError(ValueError):
    """``filterValues`` that do not fit the filter (InvalidInputException)."""


@dataclass(frozen=True)
class Subject:
    """What a filter is evaluated against, for one request."""

    #: Item ID -> {FIELD (upper case): value} from the Items dataset.
    items: Mapping[str, Metadata] = field(default_factory=dict)
    #: Event type (lower case) -> the items of the user's recent interactions of that type.
    interactions: Mapping[str, frozenset[str]] = field(default_factory=dict)
    current_item: Metadata | None = None
    current_user: Metadata | None = None


def recent_interactions(rows: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    """(event type, item) oldest first -> per lower-cased type, the items of the most recent 100."""
    by_type: dict[str, list[str]] = {}
    for event_type, item in rows:
        by_type.setdefault(event_type.lower(), []).append(item)
    return {t: frozenset(items[-MAX_INTERACTIONS_PER_EVENT_TYPE:]) for t, items in by_type.items()}


def parse_values(name: str, raw: str) -> tuple[Text | Number, ...]:
    """One ``filterValues`` entry: comma-separated quoted strings or numbers."""
    values: list[Text | Number] = []
    pos = 0
    while True:
        match = _VALUE.match(raw, pos)
        if match is None:
            raise FilterValuesError(
                f'filterValues.{name}: {raw!r} is not a comma-separated list of values in double quotes, e.g. '
                '"\\"comedy\\",\\"drama\\"".'
            )
        token = match.group(1)
        values.append(Text(unquote(token)) if token.startswith('"') else Number(float(token)))
        pos = match.end()
        if match.group(2) != ",":
            break
    if len(values) > MAX_VALUES_PER_PARAMETER:
        raise FilterValuesError(
            f"filterValues.{name} has {len(values)} values; a parameter takes at most {MAX_VALUES_PER_PARAMETER}."
        )
    return tuple(values)


@dataclass(frozen=True)
class BoundFilter:
    """A filter with its parameter values, ready to test items."""

    includes: tuple[Expression, ...]
    excludes: tuple[Expression, ...]
    values: Mapping[str, tuple[Text | Number, ...]]

    def blocked(self, items: Iterable[str], subject: Subject) -> set[str]:
        """The items among `items` the filter removes for `subject`."""
        includes = [self._test(e, subject) for e in self.includes if self._applies(e, subject)]
        excludes = [self._test(e, subject) for e in self.excludes if self._applies(e, subject)]
        if not includes and not excludes:
            return set()
        return {
            item
            for item in items
            if (includes and not any(test(item) for test in includes)) or any(test(item) for test in excludes)
        }

    def allows(self, item: str, subject: Subject) -> bool:
        return not self.blocked((item,), subject)

    def _applies(self, expression: Expression, subject: Subject) -> bool:
        user = subject.current_user
        return all(user is not None and self._condition(c, subject, user)("") for c in expression.when)

    def _test(self, expression: Expression, subject: Subject) -> ItemTest:
        groups = [[self._condition(c, subject, None) for c in group] for group in expression.where]
        return lambda item: any(all(test(item) for test in group) for group in groups)

    def _condition(self, condition: Condition, subject: Subject, user: Metadata | None) -> ItemTest:
        """A test of one item (`user`: the record a CurrentUser condition reads instead of the item's)."""
        if condition.subject.dataset == INTERACTIONS:
            return _event_type_test(condition, self._strings(condition.operands, subject), subject)
        name = condition.subject.field

        def record(item: str) -> Metadata | None:
            return user if condition.subject.dataset == CURRENT_USER else subject.items.get(item)

        if condition.op in ("IN", "NOT IN"):
            wanted = self._strings(condition.operands, subject)
            negate = condition.op == "NOT IN"

            def listed(item: str) -> bool:
                fields = record(item)
                raw = None if fields is None else fields.get(name)
                hit = raw is not None and not wanted.isdisjoint(raw.split("|"))
                return hit != negate

            return listed
        bound = self._number(condition.operands[0], subject)
        compare = _COMPARE[condition.op]

        def compared(item: str) -> bool:
            fields = record(item)
            value = _as_number(None if fields is None else fields.get(name))
            return value is not None and bound is not None and compare(value, bound)

        return compared

    def _strings(self, operands: Sequence[object], subject: Subject) -> frozenset[str]:
        out: set[str] = set()
        for operand in operands:
            if isinstance(operand, Text):
                out.add(operand.value)
            elif isinstance(operand, Param):
                out.update(_text(v) for v in self.values[operand.name])
            elif isinstance(operand, Ref):
                raw = (subject.current_item or {}).get(operand.field)
                if raw is not None:
                    out.update(raw.split("|"))
        return frozenset(out)

    def _number(self, operand: object, subject: Subject) -> float | None:
        if isinstance(operand, Number):
            return operand.value
        if isinstance(operand, Param):
            return _as_number(_text(self.values[operand.name][0]))
        if isinstance(operand, Ref):
            return _as_number((subject.current_item or {}).get(operand.field))
        return None


def _event_type_test(condition: Condition, types: frozenset[str], subject: Subject) -> ItemTest:
    wanted = {t.lower() for t in types}
    every = ANY_EVENT_TYPE in wanted
    listed = condition.op == "IN"
    chosen = [items for t, items in subject.interactions.items() if (every or t in wanted) == listed]
    matched = frozenset().union(*chosen)
    return matched.__contains__


def _text(value: Text | Number) -> str:
    return value.value if isinstance(value, Text) else f"{value.value:g}"


def _as_number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def bind(expression: FilterExpression, filter_values: Mapping[str, str] | None) -> BoundFilter:
    """Attach the request's parameter values (raises FilterValuesError; see the module docstring)."""
    given = filter_values or {}
    values: dict[str, tuple[Text | Number, ...]] = {}
    for name in expression.parameters:
        if name in given:
            values[name] = parse_values(name, given[name])
    includes: list[Expression] = []
    excludes: list[Expression] = []
    for expr in expression.expressions:
        missing = sorted(expr.parameters - values.keys())
        if missing and expr.action == "INCLUDE":
            raise FilterValuesError(
                "filterValues must give a value for every parameter of an INCLUDE expression; missing: "
                + ", ".join(f"${m}" for m in missing)
                + "."
            )
        if missing:
            continue
        _check_value_kinds(expr, values)
        (includes if expr.action == "INCLUDE" else excludes).append(expr)
    return BoundFilter(tuple(includes), tuple(excludes), values)


def _check_value_kinds(expr: Expression, values: Mapping[str, tuple[Text | Number, ...]]) -> None:
    for condition in expr.conditions:
        for operand in condition.operands:
            if not isinstance(operand, Param) or condition.op in ("IN", "NOT IN"):
                continue
            given = values[operand.name]
            if len(given) != 1 or _as_number(_text(given[0])) is None:
                raise FilterValuesError(
                    f"filterValues.{operand.name} must be one number: {condition.subject.text} {condition.op} "
                    f"${operand.name} compares numbers."
                )
