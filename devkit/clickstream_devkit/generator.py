"""A deterministic, realistic clickstream for development, benchmarks and tests (no I/O).

The stream is shaped like a small shop so that what the local Personalize trains on has
structure to find, and so that benchmarks exercise realistic batching (many concurrent
sessions, anonymous visitors, a few heavy users):

* **Catalogue**: items in named categories, Zipf popularity across categories and within
  each one, log-normal prices around a per-category median, creation times in the past.
* **Users**: each prefers 1-3 categories (Dirichlet weights over them) and explores the
  rest of the catalogue 10 % of the time; activity across users is Zipf too. Traits
  (membership, age group) go out as Segment `identify` calls.
* **Sessions** run concurrently and interleave. A third start anonymous (``userId`` null,
  only ``anonymousId``); most of those sign in part-way, after which ``userId`` is set on
  the same ``anonymousId`` and ``context.sessionId``, as Personalize's guidance for
  anonymous users asks, so the service can tie the earlier events to the user.
* **Funnel**: every browse step is a ``view``; it leads to ``click`` (40 %), then
  ``add-to-cart`` (30 % of clicks), then ``purchase`` (50 % of carts). ``value`` is the
  item price for ``add-to-cart`` and ``purchase`` (so revenue-weighted recipes see real
  amounts) and a small constant engagement weight for ``view`` (1.0) and ``click`` (2.0),
  so an EVENT_VALUE threshold can separate intent from browsing.
* 20 % of browse steps come from a recommendation: their events carry a
  ``recommendationId`` (``RID-`` + UUID, 40 characters) and an ``impression`` list of
  1-25 item IDs that includes the item acted on.
* A `bad_fraction` of records are malformed, drawn uniformly from `BAD_KINDS` (each
  built from a realistic event, tagged with its kind and the rejection rule the worker's
  default mapping and shipped schemas must produce).

Everything follows from `seed`: two generators with the same arguments produce
byte-identical records. Timestamps are `start_time` + n / `events_per_second` for the
n-th interaction record (never the wall clock), so a stream looks live when produced at
that rate. ``messageId`` is derived from the seed and the sequence number: the same seed
replays the same IDs, which Personalize deduplicates (use a fresh seed for new events).

Speed matters (benchmarks must never be limited by the generator), so good events are
written with pre-serialised fragments rather than `json.dumps`; every ID the generator
makes is plain ASCII, which keeps that safe.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import math
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["BAD_KINDS", "EVENT_TYPES", "BadKind", "ClickstreamGenerator", "GeneratedRecord"]

EVENT_TYPES = ("view", "click", "add-to-cart", "purchase")
#: Funnel: P(click | view), P(add-to-cart | click), P(purchase | add-to-cart).
P_CLICK, P_CART, P_PURCHASE = 0.40, 0.30, 0.50
VIEW_VALUE, CLICK_VALUE = "1.0", "2.0"
P_ANONYMOUS, P_LOGIN = 0.33, 0.6  # sessions starting anonymous; of those, signing in part-way
P_EXPLORE = 0.10  # a browse step outside the user's preferred categories
P_RECOMMENDED = 0.20  # browse steps that come from a recommendation
MEAN_SESSION_STEPS = 5.0
ITEM_ZIPF, CATEGORY_ZIPF, USER_ZIPF = 1.1, 0.9, 0.8
DEVICES = ("ios", "android", "web", "tablet")
DEVICE_WEIGHTS = (0.35, 0.3, 0.3, 0.05)
MEMBERSHIPS = ("bronze", "silver", "gold", "platinum")
MEMBERSHIP_WEIGHTS = (0.5, 0.3, 0.15, 0.05)
AGE_GROUPS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
#: Category name -> median price, in catalogue order.
CATEGORIES: dict[str, float] = {
    "electronics": 180.0, "books": 14.0, "clothing": 35.0, "home-garden": 45.0, "sports-outdoors": 55.0,
    "beauty": 22.0, "toys-games": 25.0, "grocery": 8.0, "automotive": 60.0, "health": 18.0,
    "jewelry": 120.0, "music": 12.0, "movies": 15.0, "office": 20.0, "pet-supplies": 24.0,
    "baby": 30.0, "tools": 50.0, "shoes": 70.0, "video-games": 45.0, "kitchen": 40.0,
}  # fmt: skip
_NEVER = 1 << 62  # login_after of an anonymous session that never signs in
_ADJECTIVES = ("classic", "compact", "deluxe", "eco", "essential", "premium", "smart", "vintage", "wireless")


@dataclass(frozen=True, slots=True)
class GeneratedRecord:
    """One Kafka record plus the truth about it (what tests and audits compare against).

    `kind` is the event type for good interactions, ``item``/``user`` for catalogue
    records, and the `BAD_KINDS` name for malformed ones. `user_id` is the wire
    ``userId`` (None while a session is anonymous); `event_id` is the ``messageId`` of a
    good interaction (None otherwise, since malformed records never reach Personalize).
    """

    key: bytes
    value: bytes
    good: bool
    kind: str
    event_id: str | None
    user_id: str | None
    item_id: str | None
    category: str | None


def _zipf_cumulative(n: int, exponent: float) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank + 1) ** exponent for rank in range(n)))


def _pick(rng: random.Random, cumulative: list[float]) -> int:
    return bisect.bisect_right(cumulative, rng.random() * cumulative[-1])


def category_names(count: int) -> list[str]:
    """`count` realistic names; past the built-in list they repeat with a numeric suffix."""
    base = list(CATEGORIES)
    return [base[i] if i < len(base) else f"{base[i % len(base)]}-{i // len(base) + 1}" for i in range(count)]


class _Session:
    __slots__ = ("anon", "device", "emitted", "logged_in", "login_after", "pending", "sid", "steps_left", "user")

    def __init__(self, user: int, anon: str, sid: str, *, device: str, steps: int, login_after: int) -> None:
        self.user, self.anon, self.sid, self.device = user, anon, sid, device
        self.steps_left, self.login_after = steps, login_after  # events sent before signing in
        self.logged_in = login_after == 0
        self.emitted = 0
        self.pending: list[tuple[str, int, str]] = []  # (event type, item index, reco fragment), reversed


class ClickstreamGenerator:
    """Builds the world (catalogue, users, tastes) at construction; `events` streams from it.

    The latent truth is public so tests and benchmarks can check what a recommender
    learned: `user_tastes` (user ID -> {category: weight}), `item_categories`,
    `item_prices`, `item_popularity` (the catalogue-wide draw weights: category
    popularity times within-category Zipf) and `anonymous_ids` (anonymousId -> user ID).
    """

    def __init__(
        self,
        *,
        seed: int,
        users: int = 1000,
        items: int = 500,
        categories: int = 10,
        bad_fraction: float = 0.0,
        start_time: float,
        events_per_second: float = 100.0,
        user_prefix: str = "u-",
    ) -> None:
        if users < 1 or items < 1 or categories < 1:
            raise ValueError("users, items and categories must each be at least 1")
        if not 0.0 <= bad_fraction <= 1.0:
            raise ValueError(f"bad_fraction must be within [0, 1], not {bad_fraction}")
        if not (events_per_second > 0 and math.isfinite(events_per_second)):
            raise ValueError(f"events_per_second must be positive, not {events_per_second}")
        if not math.isfinite(start_time):
            raise ValueError("start_time must be a finite epoch time in seconds")
        self.seed, self.bad_fraction = seed, bad_fraction
        self.start_time, self.events_per_second = start_time, events_per_second
        self._tag = hashlib.sha256(f"clickstream:{seed}".encode()).hexdigest()[:12]
        world = random.Random(f"{seed}:world")  # independent of how many events are drawn
        self._rng = random.Random(f"{seed}:events")
        self._build_catalog(world, items, min(categories, items))
        self._build_users(world, users, user_prefix)
        self._seq = 0
        self._sessions_started = 0
        self._second = -1
        self._second_text = ""
        pool = max(1, min(64, users // 4))
        self._active = [self._new_session() for _ in range(pool)]

    # -- the world ----------------------------------------------------------------------

    def _build_catalog(self, rng: random.Random, items: int, categories: int) -> None:
        self.categories = category_names(categories)
        self.item_ids = [f"item-{i}" for i in range(items)]
        item_cat = [i % categories for i in range(items)]  # every category gets items
        rng.shuffle(item_cat)
        self.item_categories = {self.item_ids[i]: self.categories[c] for i, c in enumerate(item_cat)}
        self.item_prices: dict[str, float] = {}
        self._price_text: list[str] = []
        for i, c in enumerate(item_cat):
            median = CATEGORIES.get(self.categories[c], CATEGORIES.get(self.categories[c].rsplit("-", 1)[0], 30.0))
            price = max(0.99, round(rng.lognormvariate(math.log(median), 0.5), 2))
            self.item_prices[self.item_ids[i]] = price
            self._price_text.append(repr(price))
        self._members: list[list[int]] = [[] for _ in range(categories)]
        for i, c in enumerate(item_cat):
            self._members[c].append(i)
        for members in self._members:
            rng.shuffle(members)  # popularity rank within the category
        self._member_cum = [_zipf_cumulative(len(m), ITEM_ZIPF) for m in self._members]
        cat_rank = list(range(categories))
        rng.shuffle(cat_rank)
        cat_weight = [1.0 / (cat_rank[c] + 1) ** CATEGORY_ZIPF for c in range(categories)]
        self._category_cum = list(itertools.accumulate(cat_weight))
        weights = [0.0] * items
        for c, members in enumerate(self._members):
            cum = self._member_cum[c]
            for rank, i in enumerate(members):
                weights[i] = cat_weight[c] * (cum[rank] - (cum[rank - 1] if rank else 0.0)) / cum[-1]
        self.item_popularity = dict(zip(self.item_ids, weights, strict=True))
        self._global_cum = list(itertools.accumulate(weights))
        span = 3 * 365 * 86_400
        self._created = [int(self.start_time - 3600 - rng.random() * span) for _ in range(items)]
        self._descriptions = [
            f"{rng.choice(_ADJECTIVES).capitalize()} {self.categories[c].replace('-', ' ')} item {i}"
            for i, c in enumerate(item_cat)
        ]

    def _build_users(self, rng: random.Random, users: int, prefix: str) -> None:
        self.user_ids = [f"{prefix}{u}" for u in range(users)]
        self.user_tastes: dict[str, dict[str, float]] = {}
        self._taste: list[tuple[list[int], list[float]]] = []
        self._user_anon: list[str] = []
        self._traits: list[dict[str, str]] = []
        for user in self.user_ids:
            k = rng.randint(1, min(3, len(self.categories)))
            chosen: list[int] = []
            while len(chosen) < k:
                c = _pick(rng, self._category_cum)
                if c not in chosen:
                    chosen.append(c)
            gammas = [rng.gammavariate(1.0, 1.0) for _ in chosen]
            weights = [g / sum(gammas) for g in gammas]
            self._taste.append((chosen, list(itertools.accumulate(weights))))
            self.user_tastes[user] = {self.categories[c]: w for c, w in zip(chosen, weights, strict=True)}
            self._user_anon.append(f"anon-{uuid.UUID(int=rng.getrandbits(128), version=4)}")
            traits = {"membership": rng.choices(MEMBERSHIPS, MEMBERSHIP_WEIGHTS)[0]}
            if rng.random() < 0.8:
                traits["ageGroup"] = rng.choice(AGE_GROUPS)
            self._traits.append(traits)
        self.anonymous_ids = dict(zip(self._user_anon, self.user_ids, strict=True))
        order = list(range(users))
        rng.shuffle(order)
        self._user_order = order
        self._user_cum = _zipf_cumulative(users, USER_ZIPF)

    def catalog(self) -> list[GeneratedRecord]:
        """One item record per catalogue item, for the items topic (keyed by item ID)."""
        out = []
        for i, item in enumerate(self.item_ids):
            category = self.item_categories[item]
            doc = {
                "itemId": item,
                "properties": {
                    "category": category,
                    "price": self.item_prices[item],
                    "creationTimestamp": self._created[i],
                    "description": self._descriptions[i],
                },
            }
            out.append(GeneratedRecord(item.encode(), _json(doc), True, "item", None, None, item, category))
        return out

    def user_profiles(self) -> list[GeneratedRecord]:
        """One Segment `identify` call per user, for the users topic (keyed by user ID)."""
        stamp = self._iso(self.start_time - 60.0)
        out = []
        for u, user in enumerate(self.user_ids):
            doc = {
                "type": "identify",
                "messageId": f"id-{self._tag}-{u}",
                "userId": user,
                "anonymousId": self._user_anon[u],
                "timestamp": stamp,
                "traits": self._traits[u],
            }
            out.append(GeneratedRecord(user.encode(), _json(doc), True, "user", None, user, None, None))
        return out

    # -- the stream ---------------------------------------------------------------------

    def _new_session(self) -> _Session:
        rng = self._rng
        user = self._user_order[_pick(rng, self._user_cum)]
        self._sessions_started += 1
        steps = 1 + int(rng.expovariate(1.0 / (MEAN_SESSION_STEPS - 1)))
        login_after = 0
        if rng.random() < P_ANONYMOUS:
            login_after = rng.randint(1, 6) if rng.random() < P_LOGIN else _NEVER
        device = rng.choices(DEVICES, DEVICE_WEIGHTS)[0]
        sid = f"s-{self._tag}-{self._sessions_started}"
        return _Session(user, self._user_anon[user], sid, device=device, steps=steps, login_after=login_after)

    def _pick_item(self, user: int) -> int:
        rng = self._rng
        if rng.random() < P_EXPLORE:
            return _pick(rng, self._global_cum)
        chosen, cum = self._taste[user]
        c = chosen[_pick(rng, cum)] if len(chosen) > 1 else chosen[0]
        return self._members[c][_pick(rng, self._member_cum[c])]

    def _browse(self, s: _Session) -> None:
        """Queue one browse step: a view and how far down the funnel it goes."""
        rng = self._rng
        item = self._pick_item(s.user)
        reco = ""
        if rng.random() < P_RECOMMENDED:
            shown = {item}
            for _ in range(rng.randint(1, 25) - 1):
                shown.add(self._pick_item(s.user))
            order = sorted(shown, key=lambda i: rng.random())
            ids = '","'.join(self.item_ids[i] for i in order)
            rid = f"RID-{uuid.UUID(int=rng.getrandbits(128), version=4)}"
            reco = f',"recommendationId":"{rid}","impression":["{ids}"]'
        chain = [("view", item, reco)]
        if rng.random() < P_CLICK:
            chain.append(("click", item, reco))
            if rng.random() < P_CART:
                chain.append(("add-to-cart", item, reco))
                if rng.random() < P_PURCHASE:
                    chain.append(("purchase", item, reco))
        chain.reverse()
        s.pending = chain
        s.steps_left -= 1

    def _iso(self, t: float) -> str:
        total_ms = round(t * 1000)
        second, ms = divmod(total_ms, 1000)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{ms:03d}Z"

    def events(self, count: int) -> Iterator[GeneratedRecord]:
        """The next `count` interaction records; successive calls continue one stream."""
        rng, active = self._rng, self._active
        pool, bad_fraction = len(active), self.bad_fraction
        item_ids, prices = self.item_ids, self._price_text
        item_cat = [self.item_categories[i] for i in item_ids]
        user_ids, start, step = self.user_ids, self.start_time, 1.0 / self.events_per_second
        for _ in range(count):
            seq = self._seq
            self._seq = seq + 1
            slot = int(rng.random() * pool)
            s = active[slot]
            if not s.pending:
                if s.steps_left <= 0:
                    s = active[slot] = self._new_session()
                self._browse(s)
            stamp = self._iso(start + seq * step)
            mid = f"m-{self._tag}-{seq}"
            if bad_fraction and rng.random() < bad_fraction:
                yield self._bad(s, mid, stamp)
                continue
            etype, item, reco = s.pending.pop()
            if not s.logged_in and s.emitted >= s.login_after:
                s.logged_in = True
            s.emitted += 1
            user = user_ids[s.user] if s.logged_in else None
            user_json = f'"{user}"' if user else "null"
            item_id = item_ids[item]
            value = VIEW_VALUE if etype == "view" else CLICK_VALUE if etype == "click" else prices[item]
            text = (
                f'{{"type":"track","messageId":"{mid}","userId":{user_json},"anonymousId":"{s.anon}",'
                f'"event":"{etype}","timestamp":"{stamp}","context":{{"sessionId":"{s.sid}"}},'
                f'"properties":{{"productId":"{item_id}","value":{value},"device":"{s.device}"{reco}}}}}'
            )
            yield GeneratedRecord(s.anon.encode(), text.encode(), True, etype, mid, user, item_id, item_cat[item])

    def _bad(self, s: _Session, mid: str, stamp: str) -> GeneratedRecord:
        """A malformed record built from what this session would plausibly send next."""
        rng = self._rng
        kind = BAD_KINDS[int(rng.random() * len(BAD_KINDS))]
        etype, item, _ = s.pending[-1]
        user = self.user_ids[s.user] if s.logged_in else None
        base: dict[str, Any] = {
            "type": "track",
            "messageId": mid,
            "userId": user,
            "anonymousId": s.anon,
            "event": etype,
            "timestamp": stamp,
            "context": {"sessionId": s.sid},
            "properties": {"productId": self.item_ids[item], "value": 1.0, "device": s.device},
        }
        value = kind.build(rng, base)
        item_id = self.item_ids[item]
        category = self.item_categories[item_id]
        return GeneratedRecord(s.anon.encode(), value, False, kind.name, None, user, item_id, category)

    @property
    def produced(self) -> int:
        """Interaction records generated so far (the next record's sequence number)."""
        return self._seq


def _json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


# -- malformed records ------------------------------------------------------------------

Build = Callable[[random.Random, dict[str, Any]], bytes]
_DROP: Any = object()
_EMOJI = "\U0001f600"


@dataclass(frozen=True, slots=True)
class BadKind:
    """One kind of malformed record and the rejection the default mapping must give it."""

    name: str
    stage: str  # "mapping" or "validation"
    rule: str
    build: Build


def _enc(doc: object) -> bytes:
    """JSON as sloppy clients write it: NaN/Infinity become the non-standard literals."""
    return json.dumps(doc, allow_nan=True).encode()


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        doc = doc.setdefault(key, {})
    if value is _DROP:
        doc.pop(last, None)
    else:
        doc[last] = value


def _edit(changes: dict[str, Any]) -> Build:
    def build(rng: random.Random, doc: dict[str, Any]) -> bytes:
        for path, value in changes.items():
            _set(doc, path, value)
        return _enc(doc)

    return build


def _edit_with(path: str, make: Callable[[random.Random, dict[str, Any]], Any]) -> Build:
    def build(rng: random.Random, doc: dict[str, Any]) -> bytes:
        _set(doc, path, make(rng, doc))
        return _enc(doc)

    return build


def _token(rng: random.Random, n: int) -> str:
    return "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", k=n))


def _nested(rng: random.Random, doc: dict[str, Any]) -> bytes:
    depth = 10_000  # far past json's recursion limit, whatever it is set to
    return _enc(doc)[:-2] + b',"trace":' + b"[" * depth + b"]" * depth + b"}}"


def _form(rng: random.Random, doc: dict[str, Any]) -> bytes:
    return f"event={doc['event']}&anonymousId={doc['anonymousId']}&productId={doc['properties']['productId']}".encode()


# Not included: forbidden `properties` keys (userId, sessionId, ...). The default mapping
# forwards only schema columns, and the shipped schema has none with those names, so such
# a key is dropped rather than rejected; the decoder's own corpus tests that rule.
_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 "
_M, _V = "mapping", "validation"

BAD_KINDS: tuple[BadKind, ...] = (
    # bytes that are not one JSON object
    BadKind("not_json_form_encoded", _M, "not_json", _form),
    BadKind("truncated_json", _M, "not_json", lambda r, d: (b := _enc(d))[: r.randrange(1, len(b))]),
    BadKind("deeply_nested_json", _M, "not_json", _nested),
    BadKind("latin1_bytes", _M, "not_utf8",
            lambda r, d: json.dumps({**d, "name": "Café crème"}, ensure_ascii=False).encode("latin-1")),
    BadKind("utf16_bytes", _M, "not_utf8", lambda r, d: json.dumps(d).encode("utf-16")),
    BadKind("empty_value", _M, "empty", lambda r, d: b""),
    BadKind("whitespace_value", _M, "empty", lambda r, d: b" \r\n\t"),
    BadKind("array_root", _M, "not_object", lambda r, d: _enc([d])),
    BadKind("number_root", _M, "not_object", lambda r, d: b"1763805600123"),
    BadKind("double_encoded_string_root", _M, "not_object", lambda r, d: _enc(json.dumps(d))),
    BadKind("null_root", _M, "not_object", lambda r, d: b"null"),
    # identity
    BadKind("no_user_no_anonymous_id", _M, "missing",
            _edit({"userId": _DROP, "anonymousId": _DROP, "context": _DROP})),
    BadKind("user_id_too_long", _V, "max_length", _edit_with("userId", lambda r, d: "eyJ" + _token(r, 300))),
    BadKind("user_id_empty", _V, "min_length", _edit({"userId": ""})),
    BadKind("user_id_object", _M, "wrong_type", _edit_with("userId", lambda r, d: {"id": d["userId"] or "u-0"})),
    BadKind("user_id_lone_surrogate", _V, "invalid_unicode", _edit({"userId": "u-\ud800"})),
    BadKind("session_id_too_long", _V, "max_length", _edit_with("context.sessionId", lambda r, d: _token(r, 300))),
    BadKind("message_id_too_long", _V, "max_length", _edit_with("messageId", lambda r, d: d["messageId"] * 30)),
    # item
    BadKind("item_id_too_long", _V, "max_length", _edit_with("properties.productId", lambda r, d: _token(r, 257))),
    BadKind("item_id_missing", _V, "required", _edit({"properties.productId": _DROP})),
    BadKind("item_id_object", _M, "wrong_type",
            _edit_with("properties.productId", lambda r, d: {"sku": d["properties"]["productId"]})),
    # event name
    BadKind("event_name_empty", _V, "min_length", _edit({"event": ""})),
    BadKind("event_name_missing", _M, "missing", _edit({"event": _DROP})),
    BadKind("event_name_too_long", _V, "max_length", _edit_with("event", lambda r, d: "Product Viewed " * 20)),
    BadKind("event_name_object", _M, "wrong_type", _edit_with("event", lambda r, d: {"name": d["event"]})),
    # timestamp
    BadKind("timestamp_epoch_millis_number", _M, "wrong_type", _edit({"timestamp": 1763805600123})),
    BadKind("timestamp_epoch_seconds_string", _M, "bad_timestamp", _edit({"timestamp": "1763805600"})),
    BadKind("timestamp_year_1970", _V, "timestamp_window", _edit({"timestamp": "1970-01-01T00:00:00.000Z"})),
    BadKind("timestamp_year_3000", _V, "timestamp_window", _edit({"timestamp": "3000-01-01T00:00:00.000Z"})),
    BadKind("timestamp_month_13", _M, "bad_timestamp",
            _edit_with("timestamp", lambda r, d: d["timestamp"][:5] + "13" + d["timestamp"][7:])),
    BadKind("timestamp_boolean", _M, "wrong_type", _edit({"timestamp": True})),
    BadKind("timestamp_object", _M, "wrong_type", _edit_with("timestamp", lambda r, d: {"$date": d["timestamp"]})),
    BadKind("timestamp_missing", _M, "missing", _edit({"timestamp": _DROP})),
    # value
    BadKind("value_string", _M, "wrong_type", _edit({"properties.value": "12.50"})),
    BadKind("value_nan", _V, "not_finite", _edit({"properties.value": math.nan})),
    BadKind("value_infinity", _V, "not_finite", _edit({"properties.value": math.inf})),
    BadKind("value_over_float32", _V, "out_of_range", _edit({"properties.value": 1e39})),
    # device (categorical custom column)
    BadKind("device_too_long", _V, "max_length", _edit({"properties.device": _UA * 10})),
    BadKind("device_object", _V, "wrong_type", _edit_with("properties.device", lambda r, d: {"os": "ios", "v": 17})),
    # recommendation fields
    BadKind("impression_too_many", _V, "max_items",
            _edit_with("properties.impression", lambda r, d: [f"item-{i}" for i in range(r.randint(26, 40))])),
    BadKind("impression_object", _M, "wrong_type", _edit({"properties.impression": {"item-1": 1}})),
    BadKind("recommendation_id_too_long", _V, "max_length",
            _edit_with("properties.recommendationId",
                       lambda r, d: f"RID-{uuid.UUID(int=r.getrandbits(128), version=4)}-retry")),
    BadKind("recommendation_id_empty", _V, "min_length", _edit({"properties.recommendationId": ""})),
    BadKind("attribution_source_control_char", _V, "pattern",
            _edit({"properties.eventAttributionSource": "email\tspring-sale"})),
    BadKind("event_over_10kb", _V, "event_too_large", _edit({
        "messageId": _EMOJI * 256, "event": _EMOJI * 256, "properties.productId": _EMOJI * 256,
        "properties.device": _EMOJI * 1000, "properties.impression": [_EMOJI * 39] * 25})),
)  # fmt: skip
