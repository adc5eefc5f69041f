"""Filter expressions: the documented grammar, parsed and checked against the datasets (pure).

Grammar (developer guide, "Filter expressions" and its examples; keywords, ``ItemID`` and
dataset names in any case, as the guide's own SDK example writes
``EXCLUDE itemId WHERE INTERACTIONS.EVENT_TYPE in ("Purchase")``)::

    filter      := expression ( "|" expression )*
    expression  := ( INCLUDE | EXCLUDE ) ItemID WHERE condition ( ( AND | OR ) condition )*
                   [ IF user_cond ( AND user_cond )* ]
    condition   := Items.FIELD ( IN | NOT IN ) list          categorical (string) field
                 | Items.FIELD ( = | < | > | <= | >= ) scalar numeric field
                 | Interactions.EVENT_TYPE ( IN | NOT IN ) list
    user_cond   := CurrentUser.FIELD ( IN | NOT IN ) list | CurrentUser.FIELD op scalar
    list        := "(" value ( "," value )* ")" | CurrentItem.FIELD | "(" CurrentItem.FIELD ")"
    value       := "quoted string" | $PARAMETER | CurrentItem.FIELD
    scalar      := number | $PARAMETER | CurrentItem.FIELD

Rules the guide states, enforced at CreateFilter (InvalidInputException, message naming
the position or the field): conditions joined by AND/OR use the dataset of the first
condition (Items and Interactions combine only through ``|``); Interactions conditions
can use EVENT_TYPE only; ``"*"`` (every event type) only in an EVENT_TYPE list; no
parameter after NOT IN; ``IF`` only with ``CurrentUser`` and only once, at the end,
extended with AND; no textual or boolean fields; ``CurrentItem`` only with related-items
recipes (checked at GetRecommendations, where the recipe is known); at most
`MAX_FIELDS_PER_FILTER` distinct dataset fields. AND binds tighter than OR (the guide
shows no mixed example; this is the usual reading). Grouping parentheses are not part of
the documented grammar and are refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

#: Distinct dataset fields in one filter (current guide: 10; older copies said 5).
MAX_FIELDS_PER_FILTER: Final = 10
ITEMS: Final = "ITEMS"
INTERACTIONS: Final = "INTERACTIONS"
CURRENT_ITEM: Final = "CURRENTITEM"
CURRENT_USER: Final = "CURRENTUSER"
USERS: Final = "USERS"
EVENT_TYPE: Final = "EVENT_TYPE"
ANY_EVENT_TYPE: Final = "*"

Action = Literal["INCLUDE", "EXCLUDE"]
FieldKind = Literal["categorical", "numeric", "textual", "boolean"]
COMPARISONS: Final = ("=", "<", ">", "<=", ">=")
_DATASETS: Final = frozenset({ITEMS, INTERACTIONS, CURRENT_ITEM, CURRENT_USER})
_KEYWORDS: Final = frozenset({"INCLUDE", "EXCLUDE", "ITEMID", "WHERE", "AND", "OR", "IN", "NOT", "IF"})
_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<param>\$[A-Za-z0-9_]+)
      | (?P<number>-?\d+(?:\.\d+)?(?![A-Za-z_]))
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
      | (?P<op><=|>=|<|>|=)
      | (?P<punct>[(),|])
    """,
    re.VERBOSE,
)


class FilterExpressionError(ValueError):
    """A malformed or inapplicable filter expression (InvalidInputException)."""


@dataclass(frozen=True)
class Ref:
    """``Dataset.FIELD``; `dataset` is upper case (ITEMS, INTERACTIONS, CURRENTITEM, CURRENTUSER)."""

    dataset: str
    field: str
    text: str


@dataclass(frozen=True)
class Param:
    name: str


@dataclass(frozen=True)
class Text:
    value: str


@dataclass(frozen=True)
class Number:
    value: float


Operand = Text | Number | Param | Ref


@dataclass(frozen=True)
class Condition:
    subject: Ref
    op: str  # IN, NOT IN, =, <, >, <=, >=
    operands: tuple[Operand, ...]


@dataclass(frozen=True)
class Expression:
    action: Action
    #: OR of AND-groups.
    where: tuple[tuple[Condition, ...], ...]
    #: The IF conditions on CurrentUser (all must hold), empty without IF.
    when: tuple[Condition, ...]
    text: str

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return (*(c for group in self.where for c in group), *self.when)

    @property
    def dataset(self) -> str:
        return self.where[0][0].subject.dataset

    @property
    def parameters(self) -> frozenset[str]:
        return frozenset(o.name for c in self.conditions for o in c.operands if isinstance(o, Param))


@dataclass(frozen=True)
class FilterExpression:
    expressions: tuple[Expression, ...]

    @property
    def parameters(self) -> frozenset[str]:
        return frozenset().union(*(e.parameters for e in self.expressions))

    @property
    def fields(self) -> frozenset[tuple[str, str]]:
        """Distinct (dataset, FIELD) pairs, CurrentItem counted as Items and CurrentUser as Users."""
        alias = {CURRENT_ITEM: ITEMS, CURRENT_USER: USERS}
        refs = [
            r
            for e in self.expressions
            for c in e.conditions
            for r in (c.subject, *(o for o in c.operands if isinstance(o, Ref)))
        ]
        return frozenset((alias.get(r.dataset, r.dataset), r.field) for r in refs)

    @property
    def uses_current_item(self) -> bool:
        return any(d == CURRENT_ITEM for e in self.expressions for c in e.conditions
                   for d in (c.subject.dataset, *(o.dataset for o in c.operands if isinstance(o, Ref))))  # fmt: skip


# -- tokens ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # string, param, number, name, keyword, op, punct, end
    text: str
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper()


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos] == '"':
                raise FilterExpressionError(f"Invalid filter expression: unterminated string at position {pos + 1}.")
            raise FilterExpressionError(
                f"Invalid filter expression: unexpected character {text[pos]!r} at position {pos + 1}."
            )
        kind = match.lastgroup or ""
        if kind != "space":
            value = match.group()
            if kind == "name" and value.upper() in _KEYWORDS:
                kind = "keyword"
            out.append(_Token(kind, value, pos))
        pos = match.end()
    out.append(_Token("end", "", len(text)))
    return out


def unquote(token: str) -> str:
    """The value of a ``"..."`` literal: backslash escapes the next character."""
    return re.sub(r"\\(.)", r"\1", token[1:-1])


# -- parser ----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self._text = text
        self._tokens = _tokens(text)
        self._i = 0

    @property
    def _peek(self) -> _Token:
        return self._tokens[self._i]

    def _next(self) -> _Token:
        token = self._tokens[self._i]
        self._i += 1
        return token

    def _fail(self, expected: str, token: _Token | None = None) -> FilterExpressionError:
        token = token or self._peek
        found = "the end of the expression" if token.kind == "end" else repr(token.text)
        return FilterExpressionError(
            f"Invalid filter expression: expected {expected} at position {token.pos + 1}, found {found}."
        )

    def _keyword(self, *words: str) -> _Token:
        token = self._peek
        if token.kind != "keyword" or token.upper not in words:
            raise self._fail(" or ".join(words))
        return self._next()

    def _at_keyword(self, word: str) -> bool:
        return self._peek.kind == "keyword" and self._peek.upper == word

    def parse(self) -> FilterExpression:
        expressions = [self._expression()]
        while self._peek.text == "|":
            self._next()
            expressions.append(self._expression())
        if self._peek.kind != "end":
            raise self._fail("'|' or the end of the expression")
        return FilterExpression(tuple(expressions))

    def _expression(self) -> Expression:
        start = self._peek.pos
        action: Action = "INCLUDE" if self._keyword("INCLUDE", "EXCLUDE").upper == "INCLUDE" else "EXCLUDE"
        subject = self._peek
        if subject.kind == "name" and subject.upper in {"ACTIONID", "USERID"}:
            raise FilterExpressionError(
                f"Invalid filter expression: {subject.text} filters (action recommendations, user segments) are not "
                "supported by local-personalize (development stand-in); use ItemID."
            )
        self._keyword("ITEMID")
        self._keyword("WHERE")
        groups = [[self._condition(where=True)]]
        while self._at_keyword("AND") or self._at_keyword("OR"):
            if self._next().upper == "OR":
                groups.append([])
            groups[-1].append(self._condition(where=True))
        when: list[Condition] = []
        if self._at_keyword("IF"):
            self._next()
            when.append(self._condition(where=False))
            while self._at_keyword("AND"):
                self._next()
                when.append(self._condition(where=False))
            if self._at_keyword("OR") or self._at_keyword("IF"):
                raise self._fail("AND, '|' or the end of the expression (an IF condition is extended with AND only)")
        end = self._peek.pos
        return Expression(action, tuple(tuple(g) for g in groups), tuple(when), self._text[start:end].strip())

    def _condition(self, *, where: bool) -> Condition:
        token = self._peek
        if token.kind != "name" or "." not in token.text:
            raise self._fail("a dataset field such as Items.GENRE" if where else "a CurrentUser field")
        subject = _ref(self._next())
        if subject.dataset not in _DATASETS:
            raise FilterExpressionError(
                f"Invalid filter expression: unknown dataset {token.text.partition('.')[0]!r} in {token.text}; use "
                "Items, Interactions, CurrentItem or CurrentUser."
            )
        if where and subject.dataset not in {ITEMS, INTERACTIONS}:
            hint = (
                "CurrentUser goes in an IF condition at the end"
                if subject.dataset == CURRENT_USER
                else "CurrentItem is a value, e.g. Items.GENRE IN CurrentItem.GENRE"
            )
            raise FilterExpressionError(
                f"Invalid filter expression: {subject.text} cannot be filtered on after WHERE; use Items.<field> or "
                f"Interactions.EVENT_TYPE ({hint})."
            )
        if not where and subject.dataset != CURRENT_USER:
            raise FilterExpressionError(
                f"Invalid filter expression: an IF condition can only test CurrentUser fields, not {subject.text}."
            )
        if self._at_keyword("NOT"):
            self._next()
            self._keyword("IN")
            return Condition(subject, "NOT IN", self._list())
        if self._at_keyword("IN"):
            self._next()
            return Condition(subject, "IN", self._list())
        if self._peek.kind == "op":
            op = self._next().text
            return Condition(subject, op, (self._scalar(),))
        raise self._fail("IN, NOT IN, =, <, >, <= or >=")

    def _list(self) -> tuple[Operand, ...]:
        if self._peek.kind == "name":  # Items.GENRE IN CurrentItem.GENRE (the guide's form)
            return (self._current_item(),)
        if self._peek.text != "(":
            raise self._fail("'(' opening a list of values")
        self._next()
        values = [self._value()]
        while self._peek.text == ",":
            self._next()
            values.append(self._value())
        if self._peek.text != ")":
            raise self._fail("',' or ')'")
        self._next()
        return tuple(values)

    def _value(self) -> Operand:
        token = self._peek
        if token.kind == "string":
            return Text(unquote(self._next().text))
        if token.kind == "param":
            return Param(self._next().text[1:])
        if token.kind == "name":
            return self._current_item()
        if token.kind == "number":
            raise self._fail('a quoted string (IN and NOT IN compare strings: write "' + token.text + '")')
        raise self._fail("a quoted string, a $PARAMETER or CurrentItem.<field>")

    def _scalar(self) -> Operand:
        token = self._peek
        if token.kind == "number":
            return Number(float(self._next().text))
        if token.kind == "param":
            return Param(self._next().text[1:])
        if token.kind == "name":
            return self._current_item()
        if token.kind == "string":
            raise self._fail("a number (=, <, >, <= and >= compare numbers; use IN for strings)")
        raise self._fail("a number, a $PARAMETER or CurrentItem.<field>")

    def _current_item(self) -> Ref:
        token = self._next()
        ref = _ref(token) if "." in token.text else None
        if ref is None or ref.dataset != CURRENT_ITEM:
            raise self._fail("CurrentItem.<field>", token)
        return ref


def _ref(token: _Token) -> Ref:
    dataset, _, name = token.text.partition(".")
    return Ref(dataset.upper(), name.upper(), token.text)


def parse(text: str) -> FilterExpression:
    """The syntax tree of `text` (raises FilterExpressionError); see the module docstring."""
    if not text.strip():
        raise FilterExpressionError("Invalid filter expression: the expression is empty.")
    return _Parser(text).parse()


# -- checks against the dataset group ------------------------------------------------------------


def check(expression: FilterExpression, schemas: Mapping[str, Mapping[str, FieldKind]]) -> None:
    """The rules the guide states (module docstring), against the group's datasets.

    `schemas` maps ITEMS / USERS / INTERACTIONS to {FIELD (upper case): kind}; a missing
    key means the dataset group has no dataset of that type.
    """
    for expr in expression.expressions:
        dataset = expr.dataset
        for group in expr.where:
            for condition in group:
                if condition.subject.dataset != dataset:
                    raise FilterExpressionError(
                        f"Invalid filter expression: conditions joined with AND or OR must use the dataset of the "
                        f"first condition ({_dataset_name(dataset)}), but {condition.subject.text} does not; combine "
                        "Items and Interactions conditions with '|'."
                    )
                _check_condition(condition, schemas)
        for condition in expr.when:
            _check_condition(condition, schemas)
    fields = expression.fields
    if len(fields) > MAX_FIELDS_PER_FILTER:
        raise FilterExpressionError(
            f"A filter can use at most {MAX_FIELDS_PER_FILTER} distinct dataset fields; this one uses {len(fields)}."
        )


def _check_condition(condition: Condition, schemas: Mapping[str, Mapping[str, FieldKind]]) -> None:
    subject = condition.subject
    if subject.dataset == INTERACTIONS:
        if INTERACTIONS not in schemas:
            raise FilterExpressionError(f"The dataset group has no Interactions dataset to filter on ({subject.text}).")
        if subject.field != EVENT_TYPE:
            raise FilterExpressionError(
                f"Invalid filter expression: Interactions filters can only use EVENT_TYPE, not {subject.text}."
            )
        if condition.op not in ("IN", "NOT IN") or any(isinstance(o, Ref) for o in condition.operands):
            raise FilterExpressionError(
                f'Invalid filter expression: use IN or NOT IN with a list of event types for {subject.text}, e.g. '
                f'{subject.text} IN ("purchase").'
            )
    else:
        kind = _field_kind(subject, schemas)
        _check_operator(condition, kind)
        for operand in condition.operands:
            if isinstance(operand, Ref):
                other = _field_kind(operand, schemas)
                if other != kind:
                    raise FilterExpressionError(
                        f"Invalid filter expression: {subject.text} is {kind} but {operand.text} is {other}."
                    )
            if isinstance(operand, Text) and operand.value == ANY_EVENT_TYPE:
                raise FilterExpressionError(
                    f'Invalid filter expression: "*" can only be used with Interactions.EVENT_TYPE, not {subject.text}.'
                )
    if condition.op == "NOT IN" and any(isinstance(o, Param) for o in condition.operands):
        raise FilterExpressionError(
            f"Invalid filter expression: a placeholder parameter cannot be used with NOT IN ({subject.text}); use IN "
            "with the opposite action (INCLUDE/EXCLUDE) instead."
        )


def _check_operator(condition: Condition, kind: FieldKind) -> None:
    subject = condition.subject
    if condition.op in ("IN", "NOT IN") and kind != "categorical":
        raise FilterExpressionError(
            f"Invalid filter expression: {subject.text} is numeric; IN and NOT IN compare strings, use =, <, >, <= "
            "or >= for numbers."
        )
    if condition.op in COMPARISONS and kind != "numeric":
        raise FilterExpressionError(
            f"Invalid filter expression: {condition.op} compares numbers but {subject.text} is a string field; use IN "
            "or NOT IN."
        )


def _field_kind(ref: Ref, schemas: Mapping[str, Mapping[str, FieldKind]]) -> FieldKind:
    dataset = {CURRENT_ITEM: ITEMS, CURRENT_USER: USERS}.get(ref.dataset, ref.dataset)
    if dataset not in (ITEMS, USERS):
        raise FilterExpressionError(
            f"Invalid filter expression: unknown dataset {ref.text.partition('.')[0]!r} in {ref.text}; use Items, "
            "Interactions, CurrentItem or CurrentUser."
        )
    fields = schemas.get(dataset)
    if fields is None:
        raise FilterExpressionError(
            f"The dataset group has no {_dataset_name(dataset)} dataset, which {ref.text} refers to."
        )
    kind = fields.get(ref.field)
    if kind is None:
        raise FilterExpressionError(f"{ref.text}: the {_dataset_name(dataset)} schema has no field {ref.field}.")
    if kind in ("textual", "boolean"):
        raise FilterExpressionError(
            f"{ref.text}: {kind} fields cannot be used in filters (use a categorical string or a number field)."
        )
    return kind


def _dataset_name(dataset: str) -> str:
    return {ITEMS: "Items", USERS: "Users", INTERACTIONS: "Interactions"}.get(dataset, dataset)
