"""`clickstream-worker evaluate` on a generated stream in the embedded broker.

The generator gives users category tastes, so a personalised recipe has something to
learn that a popularity ranking cannot: with already-seen items removed (the usual
serving filter) the recipe must beat the Popularity-Count baseline.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable

import pytest
from clickstream_devkit.broker import EmbeddedBroker
from clickstream_devkit.evaluate import BASELINE, SHOWN, add_arguments, main, parse_duration, score, temporal_holdout
from clickstream_devkit.generate_cmd import run_generate

from worker.records import Interaction

pytestmark = pytest.mark.integration
RECIPE = "aws-user-personalization"


def table(text: str) -> dict[str, dict[str, float]]:
    """The printed table -> {metric label: {column: value}} (columns by header position)."""
    lines = [line for line in text.splitlines() if line.strip()]
    start = next(n for n, line in enumerate(lines) if line.startswith("metric"))
    columns = [
        RECIPE, f"{RECIPE} (seen removed)", BASELINE, f"{BASELINE} (seen removed)",
    ]  # fmt: skip
    assert all(c in lines[start] for c in columns), lines[start]
    out = {}
    for line in lines[start + 1 : start + 1 + len(SHOWN)]:
        label, *values = line.split()
        out[label] = dict(zip(columns, map(float, values), strict=True))
    return out


def test_evaluate_prints_both_models_and_the_recipe_beats_the_baseline(
    broker: EmbeddedBroker, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(partitions=2, prefix="clicks")
    run_generate(broker.bootstrap, topic, rate=None, count=12_000, bad_fraction=0.01, seed=11,
                 items_topic=None, users_topic=None, users=300, items=300)  # fmt: skip
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--topic", topic, "--bootstrap", broker.bootstrap, "--since", "30d", "--recipe", RECIPE])
    out, err = io.StringIO(), io.StringIO()
    assert main(args, out=out, err=err) == 0, err.getvalue()
    text = out.getvalue()
    assert "holdout users" in text
    metrics = table(text)
    assert set(metrics) == {label for label, _ in SHOWN}
    for label in ("MRR@25", "precision@5", "precision@10", "precision@25", "NDCG@5", "NDCG@10", "NDCG@25"):
        assert all(0.0 <= v <= 1.0 for v in metrics[label].values())
    seen_removed = metrics["NDCG@10"]
    assert seen_removed[f"{RECIPE} (seen removed)"] > seen_removed[f"{BASELINE} (seen removed)"]
    assert metrics["MRR@25"][f"{RECIPE} (seen removed)"] > metrics["MRR@25"][f"{BASELINE} (seen removed)"]
    assert metrics["coverage"][RECIPE] > metrics["coverage"][BASELINE]  # personalised lists differ per user


def test_evaluate_rejects_a_bad_duration() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    err = io.StringIO()
    assert main(parser.parse_args(["--topic", "t", "--since", "soon"]), err=err) == 2
    assert "not a duration" in err.getvalue()


# -- the pure parts (no broker, no server) ----------------------------------------------------------


def _event(user: str | None, session: str, item: str, t: float) -> Interaction:
    return Interaction(session, user, {"eventId": f"{session}-{t}", "eventType": "view", "sentAt": t, "itemId": item})


def test_temporal_holdout_keeps_each_users_newest_share() -> None:
    events = [_event("u1", "s1", f"i{k}", float(100 - k)) for k in range(20)]  # arrives newest first
    events += [_event("u2", "s2", "only", 1.0), _event(None, "anon", "a", 1.0), _event(None, "anon", "b", 2.0)]
    split = temporal_holdout(events, 0.1)
    assert split.holdout["u1"] == ["i1", "i0"]  # the two newest (t=99, t=100), oldest first
    assert split.history["u1"] == [f"i{k}" for k in range(19, 1, -1)]
    assert "u2" not in split.holdout  # a single interaction only trains
    assert split.holdout["anon"] == ["b"]  # anonymous visitors are keyed by session
    assert len(split.train) == 18 + 1 + 1


def test_score_removes_seen_items_and_dedups_history() -> None:
    split = temporal_holdout([_event("u", "s", i, t) for t, i in enumerate(["a", "b", "c", "a"])], 0.25)
    assert split.holdout == {"u": ["a"]} and split.history == {"u": ["a", "b", "c"]}
    recs = {"u": ["a", "x"]}
    raw, users = score(recs, split, remove_seen=False, dedup_history=False)
    assert (raw["precision_at_5"], raw["mean_reciprocal_rank_at_25"], users) == (0.2, 1.0, 1)
    removed, _ = score(recs, split, remove_seen=True, dedup_history=False)
    assert removed["mean_reciprocal_rank_at_25"] == 0.0  # "a" was seen: filtered out, so no hit
    _, scored = score(recs, split, remove_seen=False, dedup_history=True)
    assert scored == 0  # the only held-out item was a re-interaction


@pytest.mark.parametrize(("text", "seconds"), [("7d", 604800.0), ("12h", 43200.0), ("30m", 1800.0), ("90", 90.0)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
