"""Scoring a trained model on held-out users: the glue between a `Split` and `metrics.evaluate`."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from clickstream_devkit.recsys.metrics import QUERY_SIZE, evaluate
from clickstream_devkit.recsys.models.base import Recommender


def evaluate_model(
    model: Recommender,
    inputs: Sequence[Sequence[str]],
    relevant: Sequence[Collection[str]],
    catalog: Collection[str],
) -> dict[str, float]:
    """Ask for 25 recommendations per held-out user from their input history and score them.

    Nothing is excluded from the lists: Personalize recommends items a user already had
    unless a filter says otherwise, and a re-interaction in the newest 10 % is relevant.
    """
    lists = [[item for item, _ in model.recommend(list(history), QUERY_SIZE)] for history in inputs]
    return evaluate(lists, relevant, catalog)
