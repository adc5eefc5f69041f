"""aws-sims: item-to-item similarity from co-occurrence in user histories.

Similarity of a candidate j to a query item i (the formula behind ``popularity_discount_factor``,
written f)::

    sim(i -> j) = C(i, j) / users(j) ** f      if C(i, j) >= min_cointeraction_count, else 0

C(i, j) is the number of users who interacted with both, users(j) the number who interacted
with j. f = 0 ranks by raw co-occurrence, so the most popular items win "regardless of their
correlation"; f = 1 ranks by C(i, j)/users(j), the share of j's users who also had i, so
niche items with any co-interaction win "regardless of their popularity" -- the two extremes
the recipe page describes; 0.5 is cosine-like. Each item keeps its top `MAX_NEIGHBOURS`
scores, normalised so its best neighbour scores 1.0.

Like the real recipe, an item without enough co-interactions (or an unknown one) gets
popular items, and a list shorter than requested is padded with popular items. SIMS is not
personalised: `recommend(history)` sums the related lists of the user's recent items, and
new events only matter through that history.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from clickstream_devkit.recsys.data import Dataset
from clickstream_devkit.recsys.models.base import (
    FloatArray,
    get_float,
    get_int,
    normalise,
    pack,
    recency_weights,
    recent_unique,
    top_n,
    unpack,
)
from clickstream_devkit.recsys.models.cooccurrence import Neighbours, aggregate, cooccurrence, top_k

KIND = "sims"
#: Related items kept per item (GetRecommendations allows numResults up to 500; the rest is popularity padding).
MAX_NEIGHBOURS = 200
#: Recent distinct history items whose related lists form a user's recommendations.
HISTORY_WINDOW = 10
#: Weight of popularity as a tie-breaker and filler; far below any co-occurrence score.
_POPULARITY_EPSILON = 1e-6


@dataclass(frozen=True)
class SimsParams:
    popularity_discount_factor: float = 0.5
    min_cointeraction_count: int = 3

    @classmethod
    def parse(cls, hps: Mapping[str, str]) -> SimsParams:
        return cls(
            popularity_discount_factor=get_float(hps, "popularity_discount_factor", 0.5, 0.0, 1.0),
            min_cointeraction_count=get_int(hps, "min_cointeraction_count", 3, 0, 10),
        )


class SimsModel:
    """Top-k related items per item plus popularity for padding and unknown items."""

    def __init__(
        self,
        *,
        recipe: str,
        params: SimsParams,
        item_ids: tuple[str, ...],
        counts: FloatArray,
        neighbours: Neighbours,
        info: dict[str, Any] | None = None,
    ):
        self.recipe = recipe
        self.params = params
        self.item_ids = item_ids
        self.counts = counts
        self.neighbours = neighbours
        self.info: dict[str, Any] = dict(info or {})

    @staticmethod
    def parse_hyperparameters(hyperparameters: Mapping[str, str]) -> dict[str, str]:
        params = SimsParams.parse(hyperparameters)
        return {k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in asdict(params).items()}

    @classmethod
    def fit(
        cls,
        train: Dataset,
        hyperparameters: Mapping[str, str],
        *,
        recipe: str = "aws-sims",
        items_metadata: Mapping[str, Mapping[str, str]] | None = None,
        rng_seed: int = 0,
    ) -> SimsModel:
        del items_metadata, rng_seed
        params = SimsParams.parse(hyperparameters)
        co = cooccurrence(train)
        keep = co.counts >= max(params.min_cointeraction_count, 1)
        rows, cols, counts = co.rows[keep], co.cols[keep], co.counts[keep]
        weights = counts / np.power(co.item_users[cols], params.popularity_discount_factor)
        neighbours = top_k(rows, cols, weights, co.n_items, MAX_NEIGHBOURS)
        # Normalise each row so its best neighbour is 1.0: every history item then counts alike.
        row_of = np.repeat(np.arange(co.n_items), np.diff(neighbours.indptr))
        peak = np.zeros(co.n_items)
        np.maximum.at(peak, row_of, neighbours.weights)
        neighbours = Neighbours.of(neighbours.indptr, neighbours.indices, neighbours.weights / peak[row_of])
        return cls(
            recipe=recipe,
            params=params,
            item_ids=train.item_ids,
            counts=train.item_counts().astype(np.float64),
            neighbours=neighbours,
        )

    @cached_property
    def index(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids)}

    @cached_property
    def known_items(self) -> frozenset[str]:
        return frozenset(self.item_ids)

    @cached_property
    def _popularity(self) -> FloatArray:
        return normalise(self.counts)

    def related(self, item_id: str, n: int, *, exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        """Items similar to `item_id` (never the item itself), padded with popular items."""
        scores = self._popularity * _POPULARITY_EPSILON
        pos = self.index.get(item_id)
        if pos is not None:
            idx, wts = self.neighbours.row(pos)
            scores[idx] += wts.astype(np.float64)
            scores[pos] = -np.inf
        return top_n(scores, self.item_ids, n, exclude=exclude, index=self.index)

    def recommend(self, history: Sequence[str], n: int, *, exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        """Summed related lists of the last distinct known history items (newest weigh most)."""
        sources = recent_unique(history, self.index, HISTORY_WINDOW)
        weights = recency_weights(len(sources), recency_mask=True)
        scores = aggregate(self.neighbours, sources, weights, len(self.item_ids))
        scores = normalise(scores) + self._popularity * _POPULARITY_EPSILON
        return top_n(scores, self.item_ids, n, exclude=exclude, index=self.index)

    def to_bytes(self) -> bytes:
        header = {
            "kind": KIND,
            "recipe": self.recipe,
            "params": asdict(self.params),
            "item_ids": list(self.item_ids),
            "info": self.info,
        }
        arrays: dict[str, npt.NDArray[Any]] = {
            "counts": self.counts,
            "indptr": self.neighbours.indptr,
            "indices": self.neighbours.indices,
            "weights": self.neighbours.weights,
        }
        return pack(header, arrays)

    @classmethod
    def from_bytes(cls, blob: bytes) -> SimsModel:
        header, arrays = unpack(blob, kind=KIND)
        return cls(
            recipe=header["recipe"],
            params=SimsParams(**header["params"]),
            item_ids=tuple(header["item_ids"]),
            counts=arrays["counts"],
            neighbours=Neighbours.of(arrays["indptr"], arrays["indices"], arrays["weights"]),
            info=header.get("info"),
        )
