"""Sparse item-item co-occurrence and top-k neighbour lists, in plain numpy.

Both SIMS and the item-kNN personalisation model need "how many users interacted with both
i and j". The dense ``X.T @ X`` costs items² memory (5k items → 100 MB), so pairs are
generated per user and counted with a sort. Cost is the sum of squared history lengths;
each user's history is capped to their most recent `max_history` distinct items so one
robot-like user cannot blow it up (Personalize drops such users through
``max_user_history_length_percentile``; a cap is the local, deterministic equivalent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clickstream_devkit.recsys.data import Dataset

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: Most recent distinct items per user that enter the co-occurrence counts.
MAX_HISTORY = 200
#: Pairs accumulated before an intermediate compaction (bounds peak memory).
_COMPACT_EVERY = 4_000_000


@dataclass(frozen=True)
class Cooccurrence:
    """Upper and lower triangle of the co-occurrence matrix in COO form, sorted by row."""

    rows: IntArray
    cols: IntArray
    counts: FloatArray
    #: Distinct users per item (the diagonal).
    item_users: FloatArray
    n_items: int


def distinct_pairs(dataset: Dataset, max_history: int = MAX_HISTORY) -> tuple[IntArray, IntArray]:
    """(user, item) pairs, each once, keeping each user's `max_history` most recent items."""
    n_items = max(dataset.n_items, 1)
    keys = dataset.users * n_items + dataset.items
    # Reverse chronological order so np.unique's first index is the most recent occurrence.
    rev_keys = keys[::-1]
    uniq, first = np.unique(rev_keys, return_index=True)
    users = uniq // n_items
    items = uniq % n_items
    recency = first  # smaller = more recent
    order = np.lexsort((recency, users))
    users, items = users[order], items[order]
    counts = np.bincount(users, minlength=dataset.n_users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(users.shape[0]) - starts[users]
    keep = rank < max_history
    return users[keep], items[keep]


def _compact(keys: IntArray, counts: FloatArray) -> tuple[IntArray, FloatArray]:
    uniq, inverse = np.unique(keys, return_inverse=True)
    summed: FloatArray = np.bincount(inverse.ravel(), weights=counts, minlength=uniq.shape[0]).astype(np.float64)
    return uniq.astype(np.int64), summed


def cooccurrence(dataset: Dataset, max_history: int = MAX_HISTORY) -> Cooccurrence:
    """Count, for every ordered pair i != j, the users who interacted with both."""
    n = dataset.n_items
    users, items = distinct_pairs(dataset, max_history)
    item_users = np.bincount(items, minlength=n).astype(np.float64)
    per_user = np.bincount(users, minlength=dataset.n_users)
    offsets = np.concatenate(([0], np.cumsum(per_user)))

    partial_keys: list[IntArray] = []
    partial_counts: list[FloatArray] = []
    pending: list[IntArray] = []
    pending_size = 0

    def flush() -> None:
        nonlocal pending, pending_size
        if pending:
            batch = np.concatenate(pending)
            uniq, cnt = np.unique(batch, return_counts=True)
            partial_keys.append(uniq)
            partial_counts.append(cnt.astype(np.float64))
        pending, pending_size = [], 0

    for u in np.flatnonzero(per_user >= 2):
        block = items[offsets[u] : offsets[u + 1]]
        grid = block[:, None] * n + block[None, :]
        pair_keys = grid[~np.eye(block.shape[0], dtype=bool)]
        pending.append(pair_keys)
        pending_size += pair_keys.shape[0]
        if pending_size >= _COMPACT_EVERY:
            flush()
    flush()

    if partial_keys:
        keys, counts = (
            (partial_keys[0], partial_counts[0])
            if len(partial_keys) == 1
            else _compact(np.concatenate(partial_keys), np.concatenate(partial_counts))
        )
    else:
        keys, counts = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    return Cooccurrence(
        rows=(keys // max(n, 1)).astype(np.int64),
        cols=(keys % max(n, 1)).astype(np.int64),
        counts=counts,
        item_users=item_users,
        n_items=n,
    )


@dataclass(frozen=True)
class Neighbours:
    """Per-item top-k neighbour lists in CSR form: row i is `indices[indptr[i]:indptr[i+1]]`.

    Stored compactly (int32 indices, float32 weights) in memory and on disk alike, so a
    model read back from bytes scores exactly like the one that was written.
    """

    indptr: IntArray
    indices: npt.NDArray[np.int32]
    weights: npt.NDArray[np.float32]

    @classmethod
    def of(cls, indptr: npt.ArrayLike, indices: npt.ArrayLike, weights: npt.ArrayLike) -> Neighbours:
        return cls(
            np.asarray(indptr, dtype=np.int64),
            np.asarray(indices, dtype=np.int32),
            np.asarray(weights, dtype=np.float32),
        )

    def row(self, item: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        lo, hi = int(self.indptr[item]), int(self.indptr[item + 1])
        return self.indices[lo:hi], self.weights[lo:hi]


def top_k(rows: IntArray, cols: IntArray, weights: FloatArray, n_items: int, k: int) -> Neighbours:
    """Keep the k largest weights per row (ties: lower column index first), rows sorted."""
    positive = weights > 0
    rows, cols, weights = rows[positive], cols[positive], weights[positive]
    order = np.lexsort((cols, -weights, rows))
    rows, cols, weights = rows[order], cols[order], weights[order]
    per_row = np.bincount(rows, minlength=n_items)
    starts = np.concatenate(([0], np.cumsum(per_row)[:-1]))
    rank = np.arange(rows.shape[0]) - starts[rows] if rows.size else np.zeros(0, dtype=np.int64)
    keep = rank < k
    rows, cols, weights = rows[keep], cols[keep], weights[keep]
    indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=n_items))))
    return Neighbours.of(indptr, cols, weights)


def aggregate(neighbours: Neighbours, sources: list[int], source_weights: FloatArray, n_items: int) -> FloatArray:
    """Sum of `weight(source) * neighbour_weight(source -> j)` over the sources, for every j."""
    if not sources:
        return np.zeros(n_items, dtype=np.float64)
    cols: list[npt.NDArray[np.int32]] = []
    vals: list[FloatArray] = []
    for source, w in zip(sources, source_weights, strict=True):
        idx, wts = neighbours.row(source)
        cols.append(idx)
        vals.append(wts.astype(np.float64) * w)
    return np.bincount(np.concatenate(cols), weights=np.concatenate(vals), minlength=n_items).astype(np.float64)
