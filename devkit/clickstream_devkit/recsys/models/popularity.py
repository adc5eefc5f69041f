"""aws-popularity-count: the same most-interacted items for everyone.

Personalize recommends this recipe as the baseline for offline metrics. Counts are of events
(repeats count), scores are counts divided by the top count so the best item scores 1.0.
The user's history is ignored on purpose: that is what makes it a baseline.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from clickstream_devkit.recsys.data import Dataset
from clickstream_devkit.recsys.models.base import FloatArray, pack, top_n, unpack

KIND = "popularity"


class PopularityModel:
    """Event counts per item, normalised."""

    def __init__(self, recipe: str, item_ids: tuple[str, ...], counts: FloatArray, info: dict[str, Any] | None = None):
        self.recipe = recipe
        self.item_ids = item_ids
        self.counts = counts
        self.info: dict[str, Any] = dict(info or {})

    @staticmethod
    def parse_hyperparameters(hyperparameters: Mapping[str, str]) -> dict[str, str]:
        """Popularity-Count has no hyperparameters; anything given is ignored."""
        del hyperparameters
        return {}

    @classmethod
    def fit(
        cls,
        train: Dataset,
        hyperparameters: Mapping[str, str],
        *,
        recipe: str = "aws-popularity-count",
        items_metadata: Mapping[str, Mapping[str, str]] | None = None,
        rng_seed: int = 0,
    ) -> PopularityModel:
        del hyperparameters, items_metadata, rng_seed
        return cls(recipe, train.item_ids, train.item_counts().astype(np.float64))

    @cached_property
    def index(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids)}

    @cached_property
    def known_items(self) -> frozenset[str]:
        return frozenset(self.item_ids)

    @cached_property
    def scores(self) -> FloatArray:
        peak = float(self.counts.max()) if self.counts.size else 0.0
        return self.counts / peak if peak > 0 else self.counts

    def recommend(self, history: Sequence[str], n: int, *, exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        del history
        return top_n(self.scores, self.item_ids, n, exclude=exclude, index=self.index)

    def to_bytes(self) -> bytes:
        header = {"kind": KIND, "recipe": self.recipe, "item_ids": list(self.item_ids), "info": self.info}
        return pack(header, {"counts": self.counts})

    @classmethod
    def from_bytes(cls, blob: bytes) -> PopularityModel:
        header, arrays = unpack(blob, kind=KIND)
        return cls(header["recipe"], tuple(header["item_ids"]), arrays["counts"], header.get("info"))
