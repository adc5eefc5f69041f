"""The synthetic clickstream: determinism, realistic structure, and agreement with the real decoder."""

from __future__ import annotations

import json
import random
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from clickstream_devkit.generator import (
    BAD_KINDS,
    EVENT_TYPES,
    P_CART,
    P_CLICK,
    P_PURCHASE,
    ClickstreamGenerator,
    GeneratedRecord,
    category_names,
)

from worker.config import DEFAULT_SCHEMA_DIR
from worker.config.mapping import default_mapping
from worker.mapping import EventDecoder
from worker.records import CatalogUpdate, DatasetType, Interaction, Rejection, SourceRef
from worker.schemas import load_schema
from worker.validation import ValidationLimits

START = 1_800_000_000.0  # 2027-01-15T08:00:00Z
SOURCE = SourceRef("clicks", 0, 0)
RID = re.compile(r"^RID-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@cache
def decoder(dataset_type: DatasetType) -> EventDecoder:
    """The worker's default mapping over the shipped schema: exactly what `run` uses unconfigured."""
    schema = load_schema(DEFAULT_SCHEMA_DIR / f"{dataset_type.value}.json")
    return EventDecoder(dataset_type, default_mapping(dataset_type), schema, ValidationLimits())


def make(**overrides: Any) -> ClickstreamGenerator:
    args: dict[str, Any] = {"seed": 11, "start_time": START, **overrides}
    return ClickstreamGenerator(**args)


def doc(record: GeneratedRecord) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(record.value)
    return parsed


@pytest.fixture(scope="module")
def stream() -> tuple[ClickstreamGenerator, list[GeneratedRecord]]:
    """50k good events from a default-sized world, shared by the distribution tests."""
    gen = make()
    return gen, list(gen.events(50_000))


# -- determinism ---------------------------------------------------------------------------


def _everything(gen: ClickstreamGenerator, count: int) -> list[GeneratedRecord]:
    return gen.catalog() + gen.user_profiles() + list(gen.events(count))


def test_same_seed_gives_byte_identical_records() -> None:
    first = _everything(make(bad_fraction=0.2), 5000)
    second = _everything(make(bad_fraction=0.2), 5000)
    assert first == second
    assert any(not r.good for r in first) and any(r.kind == "purchase" for r in first)


def test_a_stream_drawn_in_chunks_equals_one_drawn_at_once() -> None:
    chunked = make(bad_fraction=0.1)
    parts = list(chunked.events(1234)) + list(chunked.events(0)) + list(chunked.events(2766))
    assert parts == list(make(bad_fraction=0.1).events(4000))
    assert chunked.produced == 4000


def test_different_seeds_give_different_streams_and_ids() -> None:
    a, b = make(seed=1), make(seed=2)
    events_a, events_b = list(a.events(2000)), list(b.events(2000))
    assert [r.value for r in events_a] != [r.value for r in events_b]
    assert not {r.event_id for r in events_a} & {r.event_id for r in events_b}
    assert a.user_tastes != b.user_tastes
    assert [r.value for r in a.catalog()] != [r.value for r in b.catalog()]


def test_the_world_does_not_depend_on_how_many_events_were_drawn() -> None:
    gen = make()
    catalog, profiles = gen.catalog(), gen.user_profiles()
    list(gen.events(3000))
    assert gen.catalog() == catalog and gen.user_profiles() == profiles


def test_message_ids_are_unique_and_timestamps_follow_the_rate() -> None:
    gen = make(events_per_second=250.0)
    events = list(gen.events(3000))
    ids = [r.event_id for r in events]
    assert len(set(ids)) == len(ids) and all(isinstance(i, str) for i in ids)
    for n, record in enumerate(events):
        assert doc(record)["messageId"] == record.event_id
        expected = round((START + n / 250.0) * 1000)
        got = decoder(DatasetType.INTERACTIONS).decode(record.value, SOURCE, START + 60)
        assert isinstance(got, Interaction)
        assert round(got.event["sentAt"] * 1000) == expected


def test_rejects_nonsense_arguments() -> None:
    for bad in ({"users": 0}, {"items": 0}, {"categories": 0}, {"bad_fraction": 1.5}, {"bad_fraction": -0.1},
                {"events_per_second": 0.0}, {"start_time": float("nan")}):  # fmt: skip
        with pytest.raises(ValueError):
            make(**bad)


# -- catalogue and users ---------------------------------------------------------------------


def test_catalogue_has_realistic_categories_prices_and_creation_times() -> None:
    gen = make(items=300, categories=12)
    records = gen.catalog()
    assert len(records) == 300 and len({r.item_id for r in records}) == 300
    assert set(gen.item_categories.values()) == set(category_names(12))
    assert "electronics" in gen.categories and "books" in gen.categories
    by_category: dict[str, list[float]] = defaultdict(list)
    for record in records:
        props = doc(record)["properties"]
        assert props["category"] == gen.item_categories[record.item_id or ""] == record.category
        assert props["price"] == gen.item_prices[record.item_id or ""] > 0
        assert START - 4 * 365 * 86_400 < props["creationTimestamp"] < START
        by_category[props["category"]].append(props["price"])
    assert statistics.median(by_category["electronics"]) > 3 * statistics.median(by_category["books"])


def test_more_categories_than_names_get_suffixed_unique_names() -> None:
    names = category_names(45)
    assert len(set(names)) == 45 and names[0] == "electronics" and names[20] == "electronics-2"
    assert len(make(items=5, categories=10).categories) == 5  # never an empty category


def test_users_prefer_one_to_three_categories_with_weights_summing_to_one() -> None:
    gen = make(users=400)
    sizes = Counter(len(t) for t in gen.user_tastes.values())
    assert set(sizes) == {1, 2, 3}
    for taste in gen.user_tastes.values():
        assert sum(taste.values()) == pytest.approx(1.0)
        assert set(taste) <= set(gen.categories)
    profiles = gen.user_profiles()
    memberships = Counter(doc(r)["traits"]["membership"] for r in profiles)
    assert set(memberships) == {"bronze", "silver", "gold", "platinum"}
    assert all(doc(r)["type"] == "identify" and doc(r)["userId"] == r.user_id for r in profiles)


def test_every_item_and_user_record_is_accepted_by_the_real_decoder() -> None:
    gen = make(users=300, items=200, categories=15)
    for record in gen.catalog():
        got = decoder(DatasetType.ITEMS).decode(record.value, SOURCE, START)
        assert isinstance(got, CatalogUpdate), got
        assert got.entity_id == record.item_id == record.key.decode()
        assert json.loads(got.record["properties"])["category"] == record.category
    for record in gen.user_profiles():
        got = decoder(DatasetType.USERS).decode(record.value, SOURCE, START)
        assert isinstance(got, CatalogUpdate), got
        assert got.entity_id == record.user_id == record.key.decode()


# -- the stream's structure ------------------------------------------------------------------


def test_item_popularity_is_zipf_like(stream: tuple[ClickstreamGenerator, list[GeneratedRecord]]) -> None:
    gen, events = stream
    views = Counter(r.item_id for r in events if r.kind == "view")
    top_decile = sorted(views.values(), reverse=True)[: len(gen.item_ids) // 10]
    share = sum(top_decile) / sum(views.values())
    assert share > 0.4, f"top 10 % of items got {share:.0%} of views (uniform would be 10 %)"
    # ... and the items the world says are popular are the ones viewed most.
    by_truth = sorted(gen.item_ids, key=gen.item_popularity.__getitem__, reverse=True)[:50]
    assert sum(views[i] for i in by_truth) > sum(sorted(views.values())[:50]) * 5


def test_users_concentrate_on_their_preferred_categories(
    stream: tuple[ClickstreamGenerator, list[GeneratedRecord]],
) -> None:
    gen, events = stream
    per_user: dict[str, list[str | None]] = defaultdict(list)
    for record in events:
        if record.user_id is not None:
            per_user[record.user_id].append(record.category)
    shares = []
    for user, categories in per_user.items():
        if len(categories) >= 10:
            taste = gen.user_tastes[user]
            top2 = sorted(taste, key=taste.__getitem__, reverse=True)[:2]
            shares.append(sum(c in top2 for c in categories) / len(categories))
    assert len(shares) > 100
    assert statistics.mean(shares) > 0.6


def test_funnel_frequencies_decrease_in_order(stream: tuple[ClickstreamGenerator, list[GeneratedRecord]]) -> None:
    _, events = stream
    counts = Counter(r.kind for r in events)
    assert set(counts) == set(EVENT_TYPES)
    view, click, cart, purchase = (counts[t] for t in EVENT_TYPES)
    assert view > click > cart > purchase > 0
    assert click / view == pytest.approx(P_CLICK, abs=0.03)
    assert cart / click == pytest.approx(P_CART, abs=0.03)
    assert purchase / cart == pytest.approx(P_PURCHASE, abs=0.05)


def test_event_values_are_prices_for_cart_and_purchase(
    stream: tuple[ClickstreamGenerator, list[GeneratedRecord]],
) -> None:
    gen, events = stream
    for record in events[:5000]:
        value = doc(record)["properties"]["value"]
        if record.kind in ("add-to-cart", "purchase"):
            assert value == gen.item_prices[record.item_id or ""]
        else:
            assert value == {"view": 1.0, "click": 2.0}[record.kind]


def test_anonymous_sessions_sign_in_midway_keeping_session_and_anonymous_id(
    stream: tuple[ClickstreamGenerator, list[GeneratedRecord]],
) -> None:
    gen, events = stream
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in events:
        sessions[doc(record)["context"]["sessionId"]].append(doc(record))
    signed_in = anonymous = known = 0
    for docs in sessions.values():
        users = [d["userId"] for d in docs]
        assert len({d["anonymousId"] for d in docs}) == 1
        first_known = next((n for n, u in enumerate(users) if u is not None), None)
        if first_known is None:
            anonymous += 1
            continue
        assert len(set(users[first_known:])) == 1 and None not in users[first_known:]  # never signs out
        assert gen.anonymous_ids[docs[0]["anonymousId"]] == users[first_known]
        if first_known == 0:
            known += 1
        else:
            signed_in += 1
    assert signed_in > 0.05 * len(sessions) and anonymous > 0.05 * len(sessions) and known > 0.5 * len(sessions)


def test_a_fraction_of_events_carry_valid_recommendation_fields(
    stream: tuple[ClickstreamGenerator, list[GeneratedRecord]],
) -> None:
    _, events = stream
    with_reco = [doc(r)["properties"] for r in events if b"recommendationId" in r.value]
    assert 0.1 < len(with_reco) / len(events) < 0.35
    sizes = set()
    for props in with_reco:
        assert RID.match(props["recommendationId"]) and len(props["recommendationId"]) == 40
        assert 1 <= len(props["impression"]) <= 25 and props["productId"] in props["impression"]
        assert len(set(props["impression"])) == len(props["impression"])
        sizes.add(len(props["impression"]))
    assert 1 in sizes and max(sizes) > 15


def test_events_are_keyed_by_the_visitors_stable_anonymous_id(
    stream: tuple[ClickstreamGenerator, list[GeneratedRecord]],
) -> None:
    gen, events = stream
    for record in events[:3000]:
        assert record.key.decode() == doc(record)["anonymousId"] in gen.anonymous_ids


# -- agreement with the real decoder ---------------------------------------------------------


def test_every_good_event_is_accepted_with_the_generated_values(
    stream: tuple[ClickstreamGenerator, list[GeneratedRecord]],
) -> None:
    _, events = stream
    decode = decoder(DatasetType.INTERACTIONS).decode
    now = START + len(events) / 100.0
    for record in events:
        got = decode(record.value, SOURCE, now)
        assert isinstance(got, Interaction), (got, record.value)
        event = got.event
        assert (event["eventId"], event["eventType"], event["itemId"]) == (
            record.event_id,
            record.kind,
            record.item_id,
        )
        assert got.user_id == record.user_id
        assert got.session_id == doc(record)["context"]["sessionId"]
        assert json.loads(event["properties"])["device"] in ("ios", "android", "web", "tablet")


def test_bad_fraction_is_honoured_within_tolerance() -> None:
    for fraction in (0.0, 0.02, 0.25, 1.0):
        events = list(make(bad_fraction=fraction, seed=5).events(20_000))
        observed = sum(not r.good for r in events) / len(events)
        assert observed == pytest.approx(fraction, abs=0.01)
        assert all((r.event_id is None) != r.good for r in events)


def test_every_bad_kind_appears_and_is_rejected_with_its_rule() -> None:
    assert len(BAD_KINDS) >= 25 and len({k.name for k in BAD_KINDS}) == len(BAD_KINDS)
    expected = {k.name: (k.stage, k.rule) for k in BAD_KINDS}
    events = list(make(bad_fraction=0.5, seed=3).events(20_000))
    decode = decoder(DatasetType.INTERACTIONS).decode
    now = START + len(events) / 100.0
    seen: Counter[str] = Counter()
    rules = set()
    for record in events:
        got = decode(record.value, SOURCE, now)
        if record.good:
            assert isinstance(got, Interaction), got
            continue
        seen[record.kind] += 1
        assert isinstance(got, Rejection), (record.kind, record.value[:300])
        assert (got.stage.value, got.rule) == expected[record.kind], (record.kind, got)
        rules.add(got.rule)
    assert set(seen) == set(expected)
    assert min(seen.values()) >= 100
    assert len(rules) >= 12  # genuinely different failures, not one rule in many disguises


@pytest.mark.parametrize("kind", BAD_KINDS, ids=lambda k: k.name)
def test_each_bad_kind_is_rejected_at_any_point_of_a_session(kind: Any) -> None:
    """Each kind on its own, over many base events (anonymous, signed in, every event type)."""
    build: Callable[..., bytes] = kind.build
    gen = make(seed=9, users=50)
    decode = decoder(DatasetType.INTERACTIONS).decode
    rng = random.Random(kind.name)
    for record in gen.events(60):
        base = doc(record)
        got = decode(build(rng, base), SOURCE, START + 60)
        assert isinstance(got, Rejection) and (got.stage.value, got.rule) == (kind.stage, kind.rule), got
