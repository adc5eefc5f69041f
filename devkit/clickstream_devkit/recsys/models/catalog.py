"""Item metadata for cold items: categorical tokens, category affinity, item age.

Items without interactions cannot be scored collaboratively. The metadata recipes
(aws-hrnn-metadata, aws-hrnn-coldstart) score them by how much their categorical metadata
overlaps the user's history; exploration (aws-user-personalization) needs their age.

Tokens: every metadata field except the reserved ITEM_ID and CREATION_TIMESTAMP, skipping
values that parse as numbers (prices, counts: not categories), split on ``|`` the way
Personalize splits multi-valued categorical fields, as ``FIELD=value``. Tokens carried by
fewer than two items cannot relate two items, so they are dropped.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_RESERVED = {"ITEM_ID", "CREATION_TIMESTAMP"}
SECONDS_PER_DAY = 86_400.0


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def raw_tokens(metadata: Mapping[str, str]) -> list[str]:
    """The categorical tokens of one item's metadata (see the module docstring)."""
    tokens: list[str] = []
    for field, value in metadata.items():
        name = str(field).upper()
        if name in _RESERVED or value is None:
            continue
        for raw in str(value).split("|"):
            part = raw.strip()
            if part and not _is_number(part):
                tokens.append(f"{name}={part}")
    return sorted(set(tokens))


def creation_time(metadata: Mapping[str, str] | None) -> float:
    """CREATION_TIMESTAMP (epoch seconds) from an item's metadata, NaN when absent or unparsable."""
    if not metadata:
        return math.nan
    for field, value in metadata.items():
        if str(field).upper() == "CREATION_TIMESTAMP":
            try:
                parsed = float(value)
            except (TypeError, ValueError):
                return math.nan
            return parsed if math.isfinite(parsed) else math.nan
    return math.nan


@dataclass(frozen=True)
class ItemTokens:
    """Tokens per item in CSR form over a model's full item list."""

    vocabulary: tuple[str, ...]
    indptr: IntArray
    indices: IntArray

    @classmethod
    def empty(cls, n_items: int) -> ItemTokens:
        return cls((), np.zeros(n_items + 1, dtype=np.int64), np.zeros(0, dtype=np.int64))

    @classmethod
    def build(cls, item_ids: Sequence[str], tokens_by_item: Mapping[str, Sequence[str]]) -> ItemTokens:
        per_item = [list(tokens_by_item.get(item, ())) for item in item_ids]
        frequency = Counter(t for tokens in per_item for t in set(tokens))
        vocabulary = tuple(sorted(t for t, df in frequency.items() if df >= 2))
        position = {t: i for i, t in enumerate(vocabulary)}
        indptr = [0]
        indices: list[int] = []
        for tokens in per_item:
            indices.extend(sorted({position[t] for t in tokens if t in position}))
            indptr.append(len(indices))
        return cls(vocabulary, np.asarray(indptr, dtype=np.int64), np.asarray(indices, dtype=np.int64))

    def tokens_of(self, item: int) -> list[str]:
        return [self.vocabulary[t] for t in self.indices[self.indptr[item] : self.indptr[item + 1]]]

    def as_mapping(self, item_ids: Sequence[str]) -> dict[str, list[str]]:
        return {item: self.tokens_of(i) for i, item in enumerate(item_ids) if self.indptr[i + 1] > self.indptr[i]}

    def affinity(self, history: Sequence[int], targets: IntArray) -> FloatArray | None:
        """Per target item: mean over its tokens of the share of history items carrying the token.

        1.0 means every token of the item is on every tagged history item; 0.0 means no
        overlap. None when no history item carries any token (nothing to compare with).
        """
        if not self.vocabulary:
            return None
        profile = np.zeros(len(self.vocabulary), dtype=np.float64)
        tagged = 0
        for item in history:
            toks = self.indices[self.indptr[item] : self.indptr[item + 1]]
            if toks.size:
                profile[toks] += 1.0
                tagged += 1
        if tagged == 0:
            return None
        profile /= tagged
        starts, ends = self.indptr[targets], self.indptr[targets + 1]
        lengths = ends - starts
        result = np.zeros(targets.shape[0], dtype=np.float64)
        has = lengths > 0
        if np.any(has):
            owner = np.repeat(np.arange(targets.shape[0])[has], lengths[has])
            flat = np.concatenate([self.indices[s:e] for s, e in zip(starts[has], ends[has], strict=True)])
            sums = np.bincount(owner, weights=profile[flat], minlength=targets.shape[0])
            result[has] = sums[has] / lengths[has]
        return result
