"""The filter expression grammar and its evaluation (pure: no server, no processes).

Expressions are the developer guide's own examples where it has them.
"""

from __future__ import annotations

from typing import Any

import pytest
from clickstream_devkit.personalize.control.filter_eval import (
    MAX_INTERACTIONS_PER_EVENT_TYPE,
    FilterValuesError,
    Subject,
    bind,
    parse_values,
    recent_interactions,
)
from clickstream_devkit.personalize.control.filter_expr import (
    MAX_FIELDS_PER_FILTER,
    Condition,
    FieldKind,
    FilterExpressionError,
    Number,
    Param,
    Ref,
    Text,
    check,
    parse,
)

SCHEMAS: dict[str, dict[str, FieldKind]] = {
    "ITEMS": {"ITEM_ID": "categorical", "GENRE": "categorical", "CATEGORY": "categorical", "PRICE": "numeric",
              "CREATION_TIMESTAMP": "numeric", "DESCRIPTION": "textual", "IN_STOCK": "boolean",
              "STUDIO": "categorical"},
    "USERS": {"USER_ID": "categorical", "AGE": "numeric", "MEMBERSHIP": "categorical"},
    "INTERACTIONS": {"USER_ID": "categorical", "ITEM_ID": "categorical", "EVENT_TYPE": "categorical",
                     "TIMESTAMP": "numeric"},
}  # fmt: skip
ITEMS: dict[str, dict[str, str]] = {
    "i1": {"GENRE": "horror", "PRICE": "120", "STUDIO": "a", "CREATION_TIMESTAMP": "1000"},
    "i2": {"GENRE": "comedy|drama", "PRICE": "80", "STUDIO": "a", "CREATION_TIMESTAMP": "2000"},
    "i3": {"GENRE": "drama", "PRICE": "100", "STUDIO": "b", "CREATION_TIMESTAMP": "3000"},
    "i4": {"GENRE": "Horror", "PRICE": "not a number", "STUDIO": "b"},
    "i5": {},
}
ALL = [*ITEMS, "unknown"]


def kept(expression: str, values: dict[str, str] | None = None, **subject: Any) -> list[str]:
    parsed = parse(expression)
    check(parsed, SCHEMAS)
    bound = bind(parsed, values)
    context = Subject(items=subject.pop("items", ITEMS), **subject)
    blocked = bound.blocked(ALL, context)
    return [item for item in ALL if item not in blocked]


# -- parsing -------------------------------------------------------------------------------------


def test_the_guides_examples_parse() -> None:
    examples = [
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")',
        'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")',
        "EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($EVENT_TYPE)",
        'EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("shoe") AND Items.CATEGORY_L2 NOT IN ("boot")',
        "INCLUDE ItemID WHERE Items.PRICE <= $PRICE",
        "INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP < $DATE",
        "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE",
        "INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY) | INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN "
        '("favorite")',
        'INCLUDE ItemID WHERE Items.GENRE IN ($GENRE) | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", '
        '"stream")',
        "EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE) IF CurrentUser.AGE = $AGE",
        'EXCLUDE ItemID WHERE Items.NUMBER_OF_DOWNLOADS < 20 IF CurrentUser.AGE > 18 AND CurrentUser.AGE < 30',
        'EXCLUDE itemId WHERE INTERACTIONS.EVENT_TYPE in ("Purchase")',  # the guide's SDK example, any case
        'EXCLUDE ItemID WHERE Items.PRICE > 100 | EXCLUDE ItemID WHERE Items.GENRE IN ("horror")',
    ]
    for text in examples:
        assert parse(text).expressions


def test_the_tree_has_actions_groups_operands_and_parameters() -> None:
    parsed = parse(
        'INCLUDE ItemID WHERE Items.GENRE IN ("a b", $G) AND Items.PRICE >= -2.5 OR Items.STUDIO NOT IN ("x\\"y") '
        "IF CurrentUser.AGE > $AGE | exclude itemid where interactions.event_type in ($T)"
    )
    first, second = parsed.expressions
    assert first.action == "INCLUDE" and second.action == "EXCLUDE"
    assert [len(group) for group in first.where] == [2, 1]  # AND binds tighter than OR
    genre = first.where[0][0]
    assert genre == Condition(Ref("ITEMS", "GENRE", "Items.GENRE"), "IN", (Text("a b"), Param("G")))
    assert first.where[0][1].operands == (Number(-2.5),)
    assert first.where[1][0].operands == (Text('x"y'),)
    assert first.when == (Condition(Ref("CURRENTUSER", "AGE", "CurrentUser.AGE"), ">", (Param("AGE"),)),)
    assert second.where[0][0].subject.dataset == "INTERACTIONS"
    assert parsed.parameters == {"G", "AGE", "T"}
    assert parsed.fields == {("ITEMS", "GENRE"), ("ITEMS", "PRICE"), ("ITEMS", "STUDIO"), ("USERS", "AGE"),
                             ("INTERACTIONS", "EVENT_TYPE")}  # fmt: skip
    assert not parsed.uses_current_item
    assert parse("INCLUDE ItemID WHERE Items.GENRE IN CurrentItem.GENRE").uses_current_item
    assert first.text.startswith("INCLUDE ItemID") and first.text.endswith("CurrentUser.AGE > $AGE")


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "the expression is empty"),
        ("   ", "the expression is empty"),
        ('REMOVE ItemID WHERE Items.GENRE IN ("a")', "expected INCLUDE or EXCLUDE at position 1, found 'REMOVE'"),
        ('EXCLUDE Items WHERE Items.GENRE IN ("a")', "expected ITEMID at position 9"),
        ('EXCLUDE ItemID Items.GENRE IN ("a")', "expected WHERE at position 16"),
        ('EXCLUDE ItemID WHERE GENRE IN ("a")', "expected a dataset field such as Items.GENRE at position 22"),
        ('EXCLUDE ItemID WHERE Items.GENRE ("a")', "expected IN, NOT IN, =, <, >, <= or >="),
        ('EXCLUDE ItemID WHERE Items.GENRE IN "a"', "expected '(' opening a list of values"),
        ('EXCLUDE ItemID WHERE Items.GENRE IN ("a" "b")', "expected ',' or ')'"),
        ('EXCLUDE ItemID WHERE Items.GENRE IN ("a",)', "expected a quoted string, a $PARAMETER or CurrentItem"),
        ("EXCLUDE ItemID WHERE Items.GENRE IN (horror)", "expected CurrentItem.<field>"),
        ("EXCLUDE ItemID WHERE Items.GENRE IN (1)", 'IN and NOT IN compare strings: write "1"'),
        ('EXCLUDE ItemID WHERE Items.PRICE > "100"', "=, <, >, <= and >= compare numbers"),
        ("EXCLUDE ItemID WHERE Items.PRICE > ", "found the end of the expression"),
        ('EXCLUDE ItemID WHERE Items.GENRE IN ("a', "unterminated string at position 38"),
        ('EXCLUDE ItemID WHERE Items.PRICE != 3', "unexpected character '!' at position 34"),
        ('EXCLUDE ItemID WHERE Items.GENRE IN ("a") EXCLUDE', "expected '|' or the end of the expression"),
        ('EXCLUDE ItemID WHERE (Items.GENRE IN ("a"))', "expected a dataset field"),
        ('EXCLUDE ItemID WHERE Items.GENRE IN ("a") |', "expected INCLUDE or EXCLUDE"),
        ('EXCLUDE ItemID WHERE CurrentUser.AGE > 3', "CurrentUser goes in an IF condition"),
        ('EXCLUDE ItemID WHERE CurrentItem.PRICE > 3', "CurrentItem is a value"),
        ('EXCLUDE ItemID WHERE Items.PRICE > 3 IF Items.AGE > 3', "an IF condition can only test CurrentUser"),
        ('EXCLUDE ItemID WHERE Items.PRICE > 3 IF CurrentUser.AGE > 3 OR CurrentUser.AGE < 1', "extended with AND"),
        ('EXCLUDE ItemID WHERE Items.PRICE > Items.PRICE', "expected CurrentItem.<field>"),
        ('EXCLUDE ActionID WHERE Actions.VALUE > 3', "ActionID filters (action recommendations, user segments)"),
        ('INCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("a")', "UserID filters"),
    ],
)
def test_malformed_expressions_say_where_and_what(expression: str, message: str) -> None:
    with pytest.raises(FilterExpressionError) as caught:
        parse(expression)
    assert message in str(caught.value)


# -- checks against the dataset group ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ('EXCLUDE ItemID WHERE Items.GENRE IN ("a") AND Interactions.EVENT_TYPE IN ("b")', "combine Items and"),
        ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("b") OR Items.GENRE IN ("a")', "dataset of the first"),
        ('EXCLUDE ItemID WHERE Interactions.ITEM_ID IN ("b")', "can only use EVENT_TYPE"),
        ("EXCLUDE ItemID WHERE Interactions.EVENT_TYPE > 3", "use IN or NOT IN with a list of event types"),
        ("EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN CurrentItem.GENRE", "use IN or NOT IN with a list"),
        ('EXCLUDE ItemID WHERE Items.PRICE IN ("3")', "PRICE is numeric; IN and NOT IN compare strings"),
        ("EXCLUDE ItemID WHERE Items.GENRE = 3", "= compares numbers but Items.GENRE is a string field"),
        ('EXCLUDE ItemID WHERE Items.GENRE IN ("*")', '"*" can only be used with Interactions.EVENT_TYPE'),
        ("EXCLUDE ItemID WHERE Items.GENRE NOT IN ($G)", "cannot be used with NOT IN"),
        ("EXCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ($T)", "cannot be used with NOT IN"),
        ('EXCLUDE ItemID WHERE Items.COLOUR IN ("red")', "the Items schema has no field COLOUR"),
        ('EXCLUDE ItemID WHERE Items.DESCRIPTION IN ("red")', "textual fields cannot be used in filters"),
        ("EXCLUDE ItemID WHERE Items.IN_STOCK = 1", "boolean fields cannot be used"),
        ('EXCLUDE ItemID WHERE Products.GENRE IN ("a")', "unknown dataset 'Products'"),
        ("EXCLUDE ItemID WHERE Items.PRICE < CurrentItem.GENRE", "Items.PRICE is numeric but CurrentItem.GENRE"),
        ("EXCLUDE ItemID WHERE Items.PRICE < 3 IF CurrentUser.HEIGHT > 3", "the Users schema has no field HEIGHT"),
    ],
)
def test_rules_against_the_schemas(expression: str, message: str) -> None:
    with pytest.raises(FilterExpressionError) as caught:
        check(parse(expression), SCHEMAS)
    assert message in str(caught.value)


def test_missing_datasets_and_the_field_limit() -> None:
    only_interactions = {"INTERACTIONS": SCHEMAS["INTERACTIONS"]}
    with pytest.raises(FilterExpressionError, match="has no Items dataset"):
        check(parse('EXCLUDE ItemID WHERE Items.GENRE IN ("a")'), only_interactions)
    with pytest.raises(FilterExpressionError, match="has no Interactions dataset"):
        check(parse('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("a")'), {"ITEMS": SCHEMAS["ITEMS"]})
    with pytest.raises(FilterExpressionError, match="has no Users dataset"):
        check(parse("EXCLUDE ItemID WHERE Items.PRICE < 3 IF CurrentUser.AGE > 3"), {"ITEMS": SCHEMAS["ITEMS"]})
    many = {f"F{i}": "categorical" for i in range(MAX_FIELDS_PER_FILTER + 1)}
    text = " AND ".join(f'Items.F{i} IN ("x")' for i in range(MAX_FIELDS_PER_FILTER + 1))
    with pytest.raises(FilterExpressionError, match=f"at most {MAX_FIELDS_PER_FILTER} distinct dataset fields"):
        check(parse(f"EXCLUDE ItemID WHERE {text}"), {"ITEMS": many})
    fewer = " AND ".join(f'Items.F{i} IN ("x")' for i in range(MAX_FIELDS_PER_FILTER))
    check(parse(f"EXCLUDE ItemID WHERE {fewer}"), {"ITEMS": many})
    check(parse('EXCLUDE ItemID WHERE items.genre IN ("a")'), SCHEMAS)  # field names in any case


# -- filterValues -----------------------------------------------------------------------------------


def test_filter_values_are_quoted_lists_or_numbers() -> None:
    assert parse_values("G", '"horror","comedy"') == (Text("horror"), Text("comedy"))
    assert parse_values("G", ' "a b" , "c\\"d" ') == (Text("a b"), Text('c"d'))
    assert parse_values("P", "100") == (Number(100.0),)
    assert parse_values("P", "-2.5") == (Number(-2.5),)
    ten = ",".join(f'"v{i}"' for i in range(10))
    assert len(parse_values("G", ten)) == 10
    for bad, message in (
        ("horror", "is not a comma-separated list"),
        ('"a",', "is not a comma-separated list"),
        ("", "is not a comma-separated list"),
        ('"a" "b"', "is not a comma-separated list"),
        (ten + ',"v10"', "at most 10"),
    ):
        with pytest.raises(FilterValuesError, match=message):
            parse_values("G", bad)


def test_binding_needs_include_parameters_and_drops_incomplete_excludes() -> None:
    parsed = parse("INCLUDE ItemID WHERE Items.GENRE IN ($G) | EXCLUDE ItemID WHERE Items.PRICE > $P")
    with pytest.raises(FilterValuesError, match="missing: \\$G"):
        bind(parsed, {"P": "10"})
    bound = bind(parsed, {"G": '"drama"', "UNUSED": "ignored"})
    assert len(bound.includes) == 1 and bound.excludes == ()
    with pytest.raises(FilterValuesError, match="must be one number"):
        bind(parsed, {"G": '"drama"', "P": '"cheap"'})
    with pytest.raises(FilterValuesError, match="must be one number"):
        bind(parsed, {"G": '"drama"', "P": "1,2"})
    assert bind(parsed, {"G": '"drama"', "P": '"10"'}).excludes  # a quoted number is still a number


# -- evaluation ----------------------------------------------------------------------------------------


def test_items_conditions() -> None:
    assert kept('EXCLUDE ItemID WHERE Items.GENRE IN ("horror")') == ["i2", "i3", "i4", "i5", "unknown"]
    assert kept('INCLUDE ItemID WHERE Items.GENRE IN ("drama")') == ["i2", "i3"]  # multi-valued "comedy|drama"
    assert kept('INCLUDE ItemID WHERE Items.GENRE NOT IN ("drama")') == ["i1", "i4", "i5", "unknown"]
    assert kept("EXCLUDE ItemID WHERE Items.PRICE > 100") == ["i2", "i3", "i4", "i5", "unknown"]
    assert kept("INCLUDE ItemID WHERE Items.PRICE >= 100") == ["i1", "i3"]
    assert kept("INCLUDE ItemID WHERE Items.PRICE <= 100") == ["i2", "i3"]
    assert kept("INCLUDE ItemID WHERE Items.PRICE < 100") == ["i2"]
    assert kept("INCLUDE ItemID WHERE Items.PRICE = 80") == ["i2"]
    assert kept('INCLUDE ItemID WHERE Items.STUDIO IN ("a") AND Items.PRICE < 100') == ["i2"]
    assert kept('INCLUDE ItemID WHERE Items.STUDIO IN ("b") OR Items.PRICE < 100') == ["i2", "i3", "i4"]
    assert kept('INCLUDE ItemID WHERE Items.GENRE IN ("x") OR Items.STUDIO IN ("a") AND Items.PRICE > 100') == ["i1"]


def test_the_guides_combination_rules() -> None:
    horror = 'Items.GENRE IN ("horror")'
    pricey = "Items.PRICE > 90"
    assert kept(f"EXCLUDE ItemID WHERE {horror} | EXCLUDE ItemID WHERE {pricey}") == ["i2", "i4", "i5", "unknown"]
    assert kept(f"INCLUDE ItemID WHERE {horror} | INCLUDE ItemID WHERE {pricey}") == ["i1", "i3"]
    assert kept(f"INCLUDE ItemID WHERE {pricey} | EXCLUDE ItemID WHERE {horror}") == ["i3"]
    assert kept(f"EXCLUDE ItemID WHERE {horror} | INCLUDE ItemID WHERE {pricey}") == ["i3"]  # order does not matter


def test_interactions_conditions_read_the_users_recent_history() -> None:
    history = recent_interactions([("purchase", "i1"), ("Click", "i2"), ("click", "i3"), ("view", "i4")])
    assert history == {"purchase": frozenset({"i1"}), "click": frozenset({"i2", "i3"}), "view": frozenset({"i4"})}
    exclude_bought = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("Purchase")'  # case-insensitive types
    assert kept(exclude_bought, interactions=history) == ["i2", "i3", "i4", "i5", "unknown"]
    assert kept('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")', interactions=history) == ["i1", "i2", "i3",
                                                                                                   "i4"]  # fmt: skip
    assert kept('INCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ("click")', interactions=history) == ["i1", "i4"]
    assert kept("EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($T)", {"T": '"click","view"'},
                interactions=history) == ["i1", "i5", "unknown"]  # fmt: skip
    assert kept(exclude_bought) == ALL  # a user without history loses nothing
    # Only the most recent interactions per event type count.
    rows = [("click", f"old-{k}") for k in range(MAX_INTERACTIONS_PER_EVENT_TYPE)] + [("click", "i1")]
    assert "old-0" not in recent_interactions(rows)["click"] and "i1" in recent_interactions(rows)["click"]


def test_current_item_and_current_user() -> None:
    current = ITEMS["i3"]  # drama, 100
    assert kept("INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE",
                current_item=current) == ["i2"]  # fmt: skip
    assert kept("INCLUDE ItemID WHERE Items.GENRE IN (CurrentItem.GENRE)", current_item=ITEMS["i2"]) == ["i2", "i3"]
    assert kept("INCLUDE ItemID WHERE Items.PRICE > CurrentItem.PRICE", current_item=None) == []
    adult = {"AGE": "40", "MEMBERSHIP": "gold"}
    child = {"AGE": "12"}
    rule = 'EXCLUDE ItemID WHERE Items.GENRE IN ("horror") IF CurrentUser.AGE < 18'
    assert kept(rule, current_user=child) == ["i2", "i3", "i4", "i5", "unknown"]
    assert kept(rule, current_user=adult) == ALL
    assert kept(rule) == ALL  # no Users record: the IF does not hold
    gold = 'INCLUDE ItemID WHERE Items.PRICE > 90 IF CurrentUser.MEMBERSHIP IN ("gold") AND CurrentUser.AGE > $A'
    assert kept(gold, {"A": "30"}, current_user=adult) == ["i1", "i3"]
    assert kept(gold, {"A": "50"}, current_user=adult) == ALL


def test_parameters_feed_lists_and_comparisons() -> None:
    assert kept("INCLUDE ItemID WHERE Items.GENRE IN ($G)", {"G": '"horror","drama"'}) == ["i1", "i2", "i3"]
    assert kept("INCLUDE ItemID WHERE Items.PRICE <= $P", {"P": "100"}) == ["i2", "i3"]
    assert kept("INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP < $DATE", {"DATE": "2500"}) == ["i1", "i2"]
    assert kept("EXCLUDE ItemID WHERE Items.PRICE > $P", {}) == ALL  # an EXCLUDE without its value filters nothing
