"""Item-kNN personalisation: the local stand-in for User-Personalization, Personalized-Ranking and HRNN.

Algorithm (chosen over EASE because it scales to any catalogue size with one code path and a
compact model): cosine similarity between items on the binary user-item matrix,
``C(i, j) / sqrt(users(i) * users(j))``, keeping each item's top ``hidden_dimension``
neighbours. A user's scores are the recency-weighted sum of the neighbour lists of the last
``bptt`` distinct items in the history **the caller passes** -- so an event received after
training changes that user's recommendations on the next request, the way the real
recipes' real-time personalisation does. Scores are normalised so the best item is 1.0, with
popularity as a 1e-6 tie-breaker and filler. A user with no known history gets popularity.

The real hyperparameter names are accepted and given the nearest local meaning:
``hidden_dimension`` (32-256) = neighbours kept per item (the model's capacity),
``bptt`` (2-32) = how many recent distinct history items are read, ``recency_mask`` =
newer history items weigh up to 2x older ones; all three are what HPO tunes, as on the
real recipes. Unknown names are ignored.

Cold items (no interactions at training) depend on the recipe's `cold` mode:

* ``none`` (aws-hrnn, Personalized-Ranking, User-Personalization-v2): never recommended;
* ``explore`` (aws-user-personalization): items from the Items dataset, or added by UPDATE
  training, are exploration candidates if younger than ``exploration_item_age_cut_off`` days
  (age = latest interaction time minus CREATION_TIMESTAMP, else minus the item's first
  interaction; unknown age = eligible). ``exploration_weight`` is the share of each list
  given to them (0 = off, 1 = the whole list when there are enough candidates), in priority
  order: 0.5 + 0.5 * (interactions since FULL training / the most any candidate has).
  Only items without interactions at FULL training are explored (the real recipe also
  explores rarely seen items);
* ``metadata`` (aws-hrnn-metadata, aws-hrnn-coldstart): as ``explore``, with the priority
  multiplied by the item's category affinity to the user's history (see
  `catalog.ItemTokens.affinity`; 0.5 when the history carries no metadata); an item with
  no overlap is not explored.

``exploration_weight`` and ``exploration_item_age_cut_off`` can be overridden per request:
they are campaign settings (``campaignConfig.itemExplorationConfig``) on the real service.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from clickstream_devkit.recsys.data import Dataset
from clickstream_devkit.recsys.models.base import (
    FloatArray,
    get_bool,
    get_float,
    get_int,
    normalise,
    pack,
    recency_weights,
    recent_unique,
    top_n,
    unpack,
)
from clickstream_devkit.recsys.models.catalog import SECONDS_PER_DAY, ItemTokens, creation_time, raw_tokens
from clickstream_devkit.recsys.models.cooccurrence import Neighbours, aggregate, cooccurrence, top_k

KIND = "item-knn"
ColdMode = Literal["none", "explore", "metadata"]
_POPULARITY_EPSILON = 1e-6
_NEUTRAL_AFFINITY = 0.5


@dataclass(frozen=True)
class KnnParams:
    hidden_dimension: int = 149
    bptt: int = 32
    recency_mask: bool = True
    exploration_weight: float = 0.3
    exploration_item_age_cut_off: float = 30.0

    @classmethod
    def parse(cls, hps: Mapping[str, str]) -> KnnParams:
        return cls(
            hidden_dimension=get_int(hps, "hidden_dimension", 149, 32, 256),
            bptt=get_int(hps, "bptt", 32, 2, 32),
            recency_mask=get_bool(hps, "recency_mask", True),
            exploration_weight=get_float(hps, "exploration_weight", 0.3, 0.0, 1.0),
            exploration_item_age_cut_off=get_float(hps, "exploration_item_age_cut_off", 30.0, 1e-9, 1e6),
        )

    def as_strings(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in asdict(self).items():
            if isinstance(value, bool):
                out[key] = str(value).lower()
            elif isinstance(value, float):
                out[key] = f"{value:g}"
            else:
                out[key] = str(value)
        return out


class KnnModel:
    """Item-kNN scores from the caller's history, plus cold/explored items (see the module docstring)."""

    def __init__(
        self,
        *,
        recipe: str,
        params: KnnParams,
        cold: ColdMode,
        item_ids: tuple[str, ...],
        n_warm: int,
        counts: FloatArray,
        neighbours: Neighbours,
        cold_base: FloatArray,
        cold_created: FloatArray,
        tokens: ItemTokens,
        reference_time: float,
        info: dict[str, Any] | None = None,
    ):
        self.recipe = recipe
        self.params = params
        self.cold = cold
        self.item_ids = item_ids
        self.n_warm = n_warm
        self.counts = counts
        self.neighbours = neighbours
        self.cold_base = cold_base
        self.cold_created = cold_created
        self.tokens = tokens
        self.reference_time = reference_time
        self.info: dict[str, Any] = dict(info or {})

    @staticmethod
    def parse_hyperparameters(hyperparameters: Mapping[str, str]) -> dict[str, str]:
        return KnnParams.parse(hyperparameters).as_strings()

    @classmethod
    def fit(
        cls,
        train: Dataset,
        hyperparameters: Mapping[str, str],
        *,
        recipe: str = "aws-user-personalization",
        cold: ColdMode = "explore",
        items_metadata: Mapping[str, Mapping[str, str]] | None = None,
        rng_seed: int = 0,
    ) -> KnnModel:
        del rng_seed  # deterministic algorithm; kept for the common fit signature
        params = KnnParams.parse(hyperparameters)
        co = cooccurrence(train)
        cosine = co.counts / np.sqrt(co.item_users[co.rows] * co.item_users[co.cols])
        neighbours = top_k(co.rows, co.cols, cosine, co.n_items, params.hidden_dimension)
        warm = train.item_ids
        metadata = items_metadata or {}
        cold_ids: tuple[str, ...] = ()
        if cold != "none" and metadata:
            warm_set = set(warm)
            cold_ids = tuple(sorted(item for item in metadata if item not in warm_set))
        item_ids = warm + cold_ids
        tokens = (
            ItemTokens.build(item_ids, {item: raw_tokens(meta) for item, meta in metadata.items()})
            if cold == "metadata" and metadata
            else ItemTokens.empty(len(item_ids))
        )
        return cls(
            recipe=recipe,
            params=params,
            cold=cold,
            item_ids=item_ids,
            n_warm=len(warm),
            counts=train.item_counts().astype(np.float64),
            neighbours=neighbours,
            cold_base=np.full(len(cold_ids), 0.5),
            cold_created=np.array([creation_time(metadata.get(item)) for item in cold_ids], dtype=np.float64),
            tokens=tokens,
            reference_time=float(train.timestamps.max()) if train.n_interactions else 0.0,
        )

    # -- lookups -------------------------------------------------------------------------

    @cached_property
    def index(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids)}

    @cached_property
    def warm_index(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids[: self.n_warm])}

    @cached_property
    def known_items(self) -> frozenset[str]:
        """Every item this model can return: trained items plus cold/explored ones."""
        return frozenset(self.item_ids)

    @cached_property
    def _popularity(self) -> FloatArray:
        return normalise(self.counts)

    # -- scoring -------------------------------------------------------------------------

    def _warm_scores(self, history: Sequence[str]) -> FloatArray:
        """kNN scores of the trained items, best = 1.0; popularity for a user with no known history."""
        sources = recent_unique(history, self.warm_index, self.params.bptt)
        if not sources:
            return self._popularity.copy()
        weights = recency_weights(len(sources), recency_mask=self.params.recency_mask)
        warm = normalise(aggregate(self.neighbours, sources, weights, self.n_warm))
        return warm + self._popularity * _POPULARITY_EPSILON

    def _exploration_priority(self, history: Sequence[str], cut_off: float | None) -> FloatArray:
        """Per cold item: base (x category affinity for metadata recipes); -inf outside the age cut-off."""
        cut = self.params.exploration_item_age_cut_off if cut_off is None else cut_off
        priority = self.cold_base.copy()
        if self.cold == "metadata":
            recent = recent_unique(history, self.index, self.params.bptt)
            affinity = self.tokens.affinity(recent, np.arange(self.n_warm, len(self.item_ids)))
            priority *= affinity if affinity is not None else _NEUTRAL_AFFINITY
        age_days = (self.reference_time - self.cold_created) / SECONDS_PER_DAY
        in_age = np.isnan(age_days) | (age_days <= cut)
        return np.where(in_age, priority, -np.inf)

    def scores(
        self,
        history: Sequence[str],
        *,
        exploration_weight: float | None = None,
        exploration_item_age_cut_off: float | None = None,
    ) -> FloatArray:
        """One score per item in `item_ids` (what `rank` orders by).

        Cold items score ``exploration_weight * priority`` (0 for a metadata item with no
        category overlap); -inf marks a cold item outside the age cut-off.
        """
        warm = self._warm_scores(history)
        if len(self.item_ids) == self.n_warm:
            return warm
        weight = self.params.exploration_weight if exploration_weight is None else exploration_weight
        priority = self._exploration_priority(history, exploration_item_age_cut_off)
        cold = np.where(np.isfinite(priority), weight * priority, -np.inf)
        return np.concatenate((warm, cold))

    def recommend(
        self,
        history: Sequence[str],
        n: int,
        *,
        exclude: Collection[str] = (),
        exploration_weight: float | None = None,
        exploration_item_age_cut_off: float | None = None,
    ) -> list[tuple[str, float]]:
        """Top n items for a user whose interactions (oldest first) are `history`.

        Exploration is a share of the list, not a score boost: ``round(exploration_weight * n)``
        slots, spread evenly down the list, go to the best eligible cold items (fewer when
        there are fewer candidates; more when the trained items run out). An explored item
        carries the score of the trained item just below it (or above, at the end), so the
        list stays sorted by score.
        """
        warm_ids = self.item_ids[: self.n_warm]
        exploit = top_n(self._warm_scores(history), warm_ids, n, exclude=exclude, index=self.warm_index)
        weight = self.params.exploration_weight if exploration_weight is None else exploration_weight
        if len(self.item_ids) == self.n_warm or weight <= 0 or n <= 0:
            return exploit
        priority = self._exploration_priority(history, exploration_item_age_cut_off)
        priority[priority <= 0] = -np.inf  # no category overlap: not worth a slot
        cold_ids = self.item_ids[self.n_warm :]
        candidates = [item for item, _ in top_n(priority, cold_ids, n, exclude=exclude)]
        slots = min(len(candidates), round(weight * n))
        slots = max(slots, min(len(candidates), n - len(exploit)))
        return _interleave(exploit, candidates[:slots], n)

    def rank(self, history: Sequence[str], input_items: Sequence[str]) -> list[tuple[str, float]]:
        """GetPersonalizedRanking: the input re-ordered by score; unknown items last, in input order, score 0.

        A repeated input item is ranked once (first occurrence). Ties keep input order.
        """
        scores = self.scores(history)
        known: list[tuple[float, int, str]] = []
        unknown: list[str] = []
        seen: set[str] = set()
        for order, item in enumerate(input_items):
            if item in seen:
                continue
            seen.add(item)
            pos = self.index.get(item)
            if pos is None or not math.isfinite(float(scores[pos])):
                unknown.append(item)
            else:
                known.append((-float(scores[pos]), order, item))
        known.sort()
        return [(item, -neg) for neg, _, item in known] + [(item, 0.0) for item in unknown]

    # -- UPDATE training ------------------------------------------------------------------

    def update(
        self,
        new_rows: Dataset,
        new_items: Mapping[str, Mapping[str, str]] | None = None,
        exploration_weight: float | None = None,
        exploration_item_age_cut_off: float | None = None,
    ) -> KnnModel:
        """A model that also knows items unseen at FULL training (trainingMode=UPDATE).

        Not a retrain, as on the real service: similarities and popularity stay as trained;
        items that appear in `new_rows` or `new_items` (Items dataset records) and are not
        trained items become exploration candidates (see the module docstring). Returns a
        new model; `self` is unchanged.
        """
        if self.cold == "none":
            raise ValueError(f"recipe {self.recipe} does not support UPDATE training")
        metadata = dict(new_items or {})
        warm = set(self.item_ids[: self.n_warm])
        old_cold = self.item_ids[self.n_warm :]
        old_created = dict(zip(old_cold, self.cold_created.tolist(), strict=True))
        candidates = (set(old_cold) | set(new_rows.item_ids) | set(metadata)) - warm
        cold_ids = tuple(sorted(candidates))
        counts = new_rows.item_counts()
        first_seen: dict[str, float] = {}
        for idx, ts in zip(new_rows.items.tolist(), new_rows.timestamps.tolist(), strict=True):
            item = new_rows.item_ids[idx]
            if item not in first_seen or ts < first_seen[item]:
                first_seen[item] = ts
        new_counts = np.array(
            [float(counts[new_rows.item_index[i]]) if i in new_rows.item_index else 0.0 for i in cold_ids]
        )
        peak = max(float(new_counts.max()) if new_counts.size else 0.0, 1.0)
        created = []
        for item in cold_ids:
            when = creation_time(metadata.get(item))
            if math.isnan(when):
                when = old_created.get(item, math.nan)
            if math.isnan(when):
                when = first_seen.get(item, math.nan)
            created.append(when)
        item_ids = self.item_ids[: self.n_warm] + cold_ids
        if self.cold == "metadata":
            by_item = self.tokens.as_mapping(self.item_ids)
            by_item.update({item: raw_tokens(meta) for item, meta in metadata.items()})
            tokens = ItemTokens.build(item_ids, by_item)
        else:
            tokens = ItemTokens.empty(len(item_ids))
        params = self.params
        if exploration_weight is not None:
            params = replace(params, exploration_weight=exploration_weight)
        if exploration_item_age_cut_off is not None:
            params = replace(params, exploration_item_age_cut_off=exploration_item_age_cut_off)
        latest = float(new_rows.timestamps.max()) if new_rows.n_interactions else self.reference_time
        return KnnModel(
            recipe=self.recipe,
            params=params,
            cold=self.cold,
            item_ids=item_ids,
            n_warm=self.n_warm,
            counts=self.counts,
            neighbours=self.neighbours,
            cold_base=0.5 + 0.5 * new_counts / peak,
            cold_created=np.asarray(created, dtype=np.float64),
            tokens=tokens,
            reference_time=max(self.reference_time, latest),
            info=dict(self.info),
        )

    # -- serialisation --------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        header = {
            "kind": KIND,
            "recipe": self.recipe,
            "params": asdict(self.params),
            "cold": self.cold,
            "item_ids": list(self.item_ids),
            "n_warm": self.n_warm,
            "token_vocabulary": list(self.tokens.vocabulary),
            "reference_time": self.reference_time,
            "info": self.info,
        }
        arrays: dict[str, npt.NDArray[Any]] = {
            "counts": self.counts,
            "indptr": self.neighbours.indptr,
            "indices": self.neighbours.indices,
            "weights": self.neighbours.weights,
            "cold_base": self.cold_base,
            "cold_created": self.cold_created,
            "token_indptr": self.tokens.indptr,
            "token_indices": self.tokens.indices,
        }
        return pack(header, arrays)

    @classmethod
    def from_bytes(cls, blob: bytes) -> KnnModel:
        header, a = unpack(blob, kind=KIND)
        return cls(
            recipe=header["recipe"],
            params=KnnParams(**header["params"]),
            cold=header["cold"],
            item_ids=tuple(header["item_ids"]),
            n_warm=int(header["n_warm"]),
            counts=a["counts"],
            neighbours=Neighbours.of(a["indptr"], a["indices"], a["weights"]),
            cold_base=a["cold_base"],
            cold_created=a["cold_created"],
            tokens=ItemTokens(tuple(header["token_vocabulary"]), a["token_indptr"], a["token_indices"]),
            reference_time=float(header["reference_time"]),
            info=header.get("info"),
        )


def _interleave(exploit: list[tuple[str, float]], explore: list[str], n: int) -> list[tuple[str, float]]:
    """Place `explore` items at evenly spread positions among the `exploit` list (see `recommend`)."""
    k = len(explore)
    total = min(n, len(exploit) + k)
    slot_positions = {(j + 1) * total // (k + 1) for j in range(k)} if k < total else set(range(total))
    merged: list[tuple[str, float | None]] = []
    ei = xi = 0
    for pos in range(total):
        take_explore = (pos in slot_positions and xi < k) or ei >= len(exploit)
        if take_explore and xi < k:
            merged.append((explore[xi], None))
            xi += 1
        elif ei < len(exploit):
            merged.append(exploit[ei])
            ei += 1
    # Explored items take the score of the next trained item below them (else the one above).
    result: list[tuple[str, float]] = []
    below: float | None = None
    for item, score in reversed(merged):
        if score is not None:
            below = score
        result.append((item, score if score is not None else (below if below is not None else math.nan)))
    result.reverse()
    above: float | None = None
    for i, (item, score) in enumerate(result):
        if math.isnan(score):
            result[i] = (item, above if above is not None else 0.0)
        else:
            above = score
    return result
