"""What every local recommender shares: the model protocol, serialisation, ranking helpers.

Serialisation is a small JSON header (recipe, parameters, vocabularies, carried info such as
the FULL version's metrics) followed by an ``np.savez`` archive of the arrays, loaded with
``allow_pickle=False``: a model blob read back from disk can never execute code.
"""

from __future__ import annotations

import io
import json
import math
import struct
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

MAGIC = b"RECSYS1\n"
_LEN = struct.Struct(">I")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class HyperparameterError(ValueError):
    """A hyperparameter value the recipe cannot accept (CreateSolution's InvalidInput)."""


class ModelFormatError(ValueError):
    """Bytes that are not a model written by `to_bytes` (or of another recipe/kind)."""


@runtime_checkable
class Recommender(Protocol):
    """The runtime surface the local Personalize serves from."""

    recipe: str
    #: Carried facts, e.g. ``{"metrics": {...}, "tuned_hyperparameters": {...}}``.
    info: dict[str, Any]

    @property
    def known_items(self) -> frozenset[str]: ...

    def recommend(
        self, history: Sequence[str], n: int, *, exclude: Collection[str] = ()
    ) -> list[tuple[str, float]]: ...

    def to_bytes(self) -> bytes: ...


# -- serialisation ------------------------------------------------------------------------


def pack(header: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    """MAGIC, 4-byte header length, JSON header, then the npz archive."""
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    return MAGIC + _LEN.pack(len(head)) + head + buf.getvalue()


def unpack(blob: bytes, *, kind: str) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """Inverse of `pack`; checks the magic and that the header names the expected model kind."""
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + _LEN.size:
        raise ModelFormatError("not a local Personalize model")
    start = len(MAGIC) + _LEN.size
    (length,) = _LEN.unpack(blob[len(MAGIC) : start])
    try:
        header = json.loads(blob[start : start + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"corrupt model header: {exc}") from exc
    if not isinstance(header, dict) or header.get("kind") != kind:
        found = header.get("kind") if isinstance(header, dict) else None
        raise ModelFormatError(f"model kind {found!r}, expected {kind!r}")
    with np.load(io.BytesIO(blob[start + length :]), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return header, arrays


def peek_header(blob: bytes) -> dict[str, Any]:
    """The JSON header alone (kind, recipe, info) without loading the arrays."""
    if not blob.startswith(MAGIC):
        raise ModelFormatError("not a local Personalize model")
    start = len(MAGIC) + _LEN.size
    (length,) = _LEN.unpack(blob[len(MAGIC) : start])
    header = json.loads(blob[start : start + length].decode("utf-8"))
    if not isinstance(header, dict):
        raise ModelFormatError("corrupt model header")
    return header


# -- ranking helpers -----------------------------------------------------------------------


def top_n(
    scores: FloatArray,
    item_ids: Sequence[str],
    n: int,
    *,
    exclude: Collection[str] = (),
    index: Mapping[str, int] | None = None,
) -> list[tuple[str, float]]:
    """The n best (item, score) pairs, best first; ties broken by item index (deterministic).

    Items scored -inf are never returned (that is how a model marks "cannot recommend").
    """
    if n <= 0 or scores.size == 0:
        return []
    work = scores.astype(np.float64, copy=True)
    if exclude:
        lookup = index if index is not None else {item: i for i, item in enumerate(item_ids)}
        for item in exclude:
            pos = lookup.get(item)
            if pos is not None:
                work[pos] = -np.inf
    finite = np.flatnonzero(np.isfinite(work))
    if finite.size == 0:
        return []
    if finite.size > n:
        # argpartition on the negated scores, then a stable sort of the shortlist by (score, index).
        part = finite[np.argpartition(-work[finite], n - 1)[:n]]
        threshold = work[part].min()
        shortlist = finite[work[finite] >= threshold]
    else:
        shortlist = finite
    order = np.lexsort((shortlist, -work[shortlist]))[:n]
    chosen = shortlist[order]
    return [(item_ids[int(i)], float(work[int(i)])) for i in chosen]


def recency_weights(length: int, *, recency_mask: bool) -> FloatArray:
    """Weights for a history window, oldest first: 1.0 for the newest item.

    With the recency mask the oldest item of the window weighs 0.5 and the weight rises
    linearly to 1.0; without it every item weighs 1.0 (the recipe's "equally weighs all past
    interactions").
    """
    if length <= 0:
        return np.zeros(0, dtype=np.float64)
    if not recency_mask or length == 1:
        return np.ones(length, dtype=np.float64)
    return np.linspace(0.5, 1.0, length, dtype=np.float64)


def recent_unique(history: Sequence[str], index: Mapping[str, int], window: int) -> list[int]:
    """Indices of the last `window` distinct known items of a history, oldest first.

    A repeated item keeps its most recent position; unknown items are skipped, so events
    for items the model has never seen do not shrink the window.
    """
    picked: list[int] = []
    seen: set[int] = set()
    for item in reversed(history):
        pos = index.get(item)
        if pos is None or pos in seen:
            continue
        seen.add(pos)
        picked.append(pos)
        if len(picked) >= window:
            break
    picked.reverse()
    return picked


def normalise(scores: FloatArray) -> FloatArray:
    """Scale so the maximum is 1 (all-zero stays all-zero)."""
    peak = float(scores.max()) if scores.size else 0.0
    return scores / peak if peak > 0 else scores


# -- hyperparameter parsing ----------------------------------------------------------------


def _parse(name: str, raw: str, convert: Callable[[str], Any], kind: str) -> Any:
    try:
        return convert(raw.strip())
    except (ValueError, AttributeError) as exc:
        raise HyperparameterError(f"Hyperparameter {name} must be {kind}, got {raw!r}") from exc


def get_int(hps: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = hps.get(name)
    if raw is None:
        return default
    value = _parse(name, str(raw), lambda s: int(float(s)) if float(s).is_integer() else int(s), "an integer")
    if not lo <= value <= hi:
        raise HyperparameterError(f"Hyperparameter {name} must be in [{lo}, {hi}], got {raw!r}")
    return int(value)


def get_float(hps: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = hps.get(name)
    if raw is None:
        return default
    value = _parse(name, str(raw), float, "a number")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise HyperparameterError(f"Hyperparameter {name} must be in [{lo:g}, {hi:g}], got {raw!r}")
    return float(value)


def get_bool(hps: Mapping[str, str], name: str, default: bool) -> bool:
    raw = hps.get(name)
    if raw is None:
        return default
    text = str(raw).strip().lower()
    if text not in {"true", "false"}:
        raise HyperparameterError(f"Hyperparameter {name} must be true or false, got {raw!r}")
    return text == "true"
