"""Training data preparation: the solution's filters, the documented minimums, the offline split.

Pure functions over in-memory rows; the local Personalize reads rows from its store and
hands them here. Semantics follow the developer guide:

* ``eventType`` on a solution keeps only interactions of that type (exact, case-sensitive
  match); without it every type is used.
* ``eventValueThreshold`` keeps interactions whose EVENT_VALUE is **greater than or equal
  to** the threshold ("Only events with a value greater than or equal to this value will be
  used for training"). A row **without** a value cannot be shown to meet the threshold, so
  it is dropped whenever a threshold is set (the guide does not say; this is the
  conservative reading).
* Minimums after filtering: 1000 interactions and 25 users with at least 2 interactions.
* Offline split: 10 % of users (randomly, seeded) are test users; the oldest 90 % of each test
  user's interactions are the model's input, the newest 10 % (at least one) are scored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

MIN_INTERACTIONS = 1000
MIN_ACTIVE_USERS = 25
TEST_USER_SHARE = 0.10

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class InteractionRow:
    """One row of the Item interactions dataset, as training sees it."""

    user_id: str
    item_id: str
    timestamp: float
    event_type: str = ""
    event_value: float | None = None


@dataclass(frozen=True, eq=False)
class Dataset:
    """Index-encoded interactions, sorted by (user, timestamp, arrival order).

    Vocabularies are sorted and hold only users/items present in the rows, so an index is
    stable for a given set of rows. Sorting makes every user's history a contiguous,
    chronological slice, which is all the models and the split need.
    """

    user_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    users: IntArray
    items: IntArray
    timestamps: FloatArray
    #: Every item ID seen in the rows before filtering (the "Interactions dataset" for coverage).
    all_item_ids: frozenset[str] = frozenset()
    event_type: str | None = None
    event_value_threshold: float | None = None

    @property
    def n_interactions(self) -> int:
        return int(self.users.shape[0])

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @cached_property
    def user_offsets(self) -> IntArray:
        """`offsets[u]:offsets[u+1]` is user u's slice (the rows are sorted by user)."""
        counts = np.bincount(self.users, minlength=self.n_users)
        return np.concatenate(([0], np.cumsum(counts))).astype(np.int64)

    @cached_property
    def item_index(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids)}

    def history(self, user: int) -> list[str]:
        """Item IDs of one user's interactions, oldest first (repeats kept)."""
        lo, hi = self.user_offsets[user], self.user_offsets[user + 1]
        return [self.item_ids[i] for i in self.items[lo:hi]]

    def item_counts(self) -> IntArray:
        """Interactions per item index (repeats count: this is event popularity)."""
        return np.bincount(self.items, minlength=self.n_items).astype(np.int64)

    def select(self, mask: npt.NDArray[np.bool_]) -> Dataset:
        """The rows where `mask` is true, re-encoded with compact vocabularies."""
        return _encode(
            [self.user_ids[u] for u in self.users[mask]],
            [self.item_ids[i] for i in self.items[mask]],
            self.timestamps[mask],
            all_item_ids=self.all_item_ids,
            event_type=self.event_type,
            event_value_threshold=self.event_value_threshold,
        )


@dataclass(frozen=True)
class Split:
    """The documented offline split: train users, and test users' input vs. scored parts."""

    train: Dataset
    test_users: tuple[str, ...]
    #: Per test user: the oldest 90 % of their item IDs, oldest first (the model's input).
    test_inputs: tuple[tuple[str, ...], ...]
    #: Per test user: the distinct item IDs of their newest 10 % (what counts as relevant).
    test_relevant: tuple[frozenset[str], ...]


def _encode(
    user_ids: list[str],
    item_ids: list[str],
    timestamps: Iterable[float] | FloatArray,
    *,
    all_item_ids: frozenset[str],
    event_type: str | None,
    event_value_threshold: float | None,
) -> Dataset:
    user_vocab = tuple(sorted(set(user_ids)))
    item_vocab = tuple(sorted(set(item_ids)))
    user_pos = {u: i for i, u in enumerate(user_vocab)}
    item_pos = {it: i for i, it in enumerate(item_vocab)}
    users = np.fromiter((user_pos[u] for u in user_ids), dtype=np.int64, count=len(user_ids))
    items = np.fromiter((item_pos[i] for i in item_ids), dtype=np.int64, count=len(item_ids))
    ts = np.asarray(list(timestamps) if not isinstance(timestamps, np.ndarray) else timestamps, dtype=np.float64)
    order = np.lexsort((np.arange(users.shape[0]), ts, users))
    return Dataset(
        user_ids=user_vocab,
        item_ids=item_vocab,
        users=users[order],
        items=items[order],
        timestamps=ts[order],
        all_item_ids=all_item_ids,
        event_type=event_type,
        event_value_threshold=event_value_threshold,
    )


def prepare(
    rows: Iterable[InteractionRow],
    *,
    event_type: str | None,
    event_value_threshold: float | None,
) -> Dataset:
    """Apply the solution's filters and index-encode what is left (see the module docstring)."""
    users: list[str] = []
    items: list[str] = []
    timestamps: list[float] = []
    seen_items: set[str] = set()
    for row in rows:
        seen_items.add(row.item_id)
        if event_type is not None and row.event_type != event_type:
            continue
        if event_value_threshold is not None and (
            row.event_value is None or not row.event_value >= event_value_threshold
        ):
            continue
        users.append(row.user_id)
        items.append(row.item_id)
        timestamps.append(float(row.timestamp))
    return _encode(
        users,
        items,
        timestamps,
        all_item_ids=frozenset(seen_items),
        event_type=event_type,
        event_value_threshold=event_value_threshold,
    )


def _filter_suffix(dataset: Dataset) -> str:
    if dataset.event_type is not None:
        return f" after filtering by event type: {dataset.event_type}"
    if dataset.event_value_threshold is not None:
        return f" after filtering by event value threshold: {dataset.event_value_threshold:g}"
    return ""


def check_minimums(dataset: Dataset) -> str | None:
    """The solution version's failureReason when the data is below the minimums, else None.

    Wording: the users message is verbatim from the developer guide (error-messages.md). The
    guide prints no message for the interactions minimum of a custom solution; the text here
    follows the guide's recommender message ("Dataset has fewer than 1000 interactions after
    filtering by event type: <event type>") with the solution's "Create failed." prefix.
    """
    if dataset.n_interactions < MIN_INTERACTIONS:
        return f"Create failed. Dataset has fewer than {MIN_INTERACTIONS} interactions{_filter_suffix(dataset)}."
    per_user = np.diff(dataset.user_offsets)
    if int(np.count_nonzero(per_user >= 2)) < MIN_ACTIVE_USERS:
        return "Create failed. Dataset has fewer than 25 users with at least 2 interactions each."
    return None


def held_out_count(n: int) -> int:
    """How many of a test user's n interactions are scored: 10 % rounded half up, at least 1."""
    return max(1, (n + 5) // 10)


def split(dataset: Dataset, seed: int) -> Split:
    """The documented 90/10 user split, then a 90/10 time split of each test user's history.

    The test-user count is 10 % of users rounded half up, at least 1, and always leaves at
    least one training user. The same dataset and seed give the same split.
    """
    n_users = dataset.n_users
    if n_users < 2:
        raise ValueError("the offline split needs at least two users")
    n_test = min(n_users - 1, max(1, math.floor(n_users * TEST_USER_SHARE + 0.5)))
    rng = np.random.default_rng(seed)
    test = np.sort(rng.permutation(n_users)[:n_test])
    is_test_user = np.zeros(n_users, dtype=bool)
    is_test_user[test] = True
    train = dataset.select(~is_test_user[dataset.users])

    inputs: list[tuple[str, ...]] = []
    relevant: list[frozenset[str]] = []
    for u in test:
        history = dataset.history(int(u))
        cut = len(history) - held_out_count(len(history))
        inputs.append(tuple(history[:cut]))
        relevant.append(frozenset(history[cut:]))
    return Split(
        train=train,
        test_users=tuple(dataset.user_ids[int(u)] for u in test),
        test_inputs=tuple(inputs),
        test_relevant=tuple(relevant),
    )
