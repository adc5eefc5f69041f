"""``clickstream-worker evaluate``: an offline, free temporal-holdout comparison of a recipe
against the Popularity-Count baseline, trained in a temporary local Personalize.

Steps:

1. read the interactions of ``--topic`` (since ``--since`` ago, or everything retained)
   and decode them with the worker's own EventDecoder (the configured mapping and
   schema when ``--config`` names the topic, else the defaults);
2. per user (the userId, or the sessionId of an anonymous visitor — what PutEvents
   trains on), hold out the newest ``--holdout`` share (at least one interaction, and
   at least one kept for training; users with a single interaction only train);
3. start ``python -m clickstream_devkit.personalize --fast`` in a temporary directory and, with
   plain boto3 clients, create a schema, dataset group, interactions dataset and event
   tracker, PutEvents the training part, then train one solution per recipe (the
   chosen one and ``aws-popularity-count``) and deploy each in a campaign;
4. ask each campaign for every holdout user's recommendations and score them with
   `clickstream_devkit.recsys.metrics.evaluate` (the same code that computes the local
   Personalize's GetSolutionMetrics), twice: as returned, and with the items the user
   already interacted with removed (what a "don't show what they've seen" filter does).

``--dedup-history`` counts as relevant only held-out items the user had not interacted
with before, i.e. it measures discovery rather than re-engagement.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from clickstream_devkit.recsys.metrics import QUERY_SIZE, evaluate
from worker.records import Interaction

BASELINE = "aws-popularity-count"
RECIPE_PREFIX = "arn:aws:personalize:::recipe/"
MAX_RESULTS = 500
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
SHOWN = (
    ("MRR@25", "mean_reciprocal_rank_at_25"),
    ("precision@5", "precision_at_5"),
    ("precision@10", "precision_at_10"),
    ("precision@25", "precision_at_25"),
    ("NDCG@5", "normalized_discounted_cumulative_gain_at_5"),
    ("NDCG@10", "normalized_discounted_cumulative_gain_at_10"),
    ("NDCG@25", "normalized_discounted_cumulative_gain_at_25"),
    ("coverage", "coverage"),
)


def parse_duration(text: str) -> float:
    """``7d``, ``12h``, ``30m``, ``90s`` or plain seconds -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 7d, 12h, 30m)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def user_key(interaction: Interaction) -> str:
    return interaction.user_id or interaction.session_id


# -- the split (pure) ---------------------------------------------------------------------------


@dataclass
class HoldoutSplit:
    """Training interactions, and per holdout user the history and the held-out items."""

    train: list[Interaction] = field(default_factory=list)
    history: dict[str, list[str]] = field(default_factory=dict)
    holdout: dict[str, list[str]] = field(default_factory=dict)

    @property
    def catalog(self) -> set[str]:
        items = {str(i.event["itemId"]) for i in self.train if "itemId" in i.event}
        return items | {item for held in self.holdout.values() for item in held}


def temporal_holdout(interactions: Iterable[Interaction], fraction: float) -> HoldoutSplit:
    """Hold out each user's newest `fraction` (ties broken by arrival order)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout must be between 0 and 1, not {fraction}")
    by_user: dict[str, list[tuple[float, int, Interaction]]] = defaultdict(list)
    for n, interaction in enumerate(interactions):
        if "itemId" in interaction.event:
            by_user[user_key(interaction)].append((float(interaction.event["sentAt"]), n, interaction))
    split = HoldoutSplit()
    for user, rows in by_user.items():
        rows.sort(key=lambda r: (r[0], r[1]))
        ordered = [r[2] for r in rows]
        if len(ordered) < 2:
            split.train.extend(ordered)
            continue
        k = min(len(ordered) - 1, max(1, round(len(ordered) * fraction)))
        kept, held = ordered[:-k], ordered[-k:]
        split.train.extend(kept)
        split.history[user] = [str(i.event["itemId"]) for i in kept]
        split.holdout[user] = [str(i.event["itemId"]) for i in held]
    return split


def score(
    recommendations: Mapping[str, Sequence[str]],
    split: HoldoutSplit,
    *,
    remove_seen: bool,
    dedup_history: bool,
) -> tuple[dict[str, float], int]:
    """Metrics over the holdout users (and how many were scored)."""
    lists: list[list[str]] = []
    relevant: list[set[str]] = []
    for user, held in split.holdout.items():
        seen = set(split.history.get(user, ()))
        wanted = set(held) - seen if dedup_history else set(held)
        if not wanted:
            continue
        recommended = [i for i in recommendations.get(user, ()) if not (remove_seen and i in seen)]
        lists.append(recommended[:QUERY_SIZE])
        relevant.append(wanted)
    return evaluate(lists, relevant, split.catalog), len(lists)


def render(results: Mapping[str, Mapping[str, float]], users: Mapping[str, int]) -> str:
    """One table, a column per (model, variant)."""
    names = list(results)
    rows = [["metric", *names]]
    rows += [[label, *(f"{results[n][key]:.4f}" for n in names)] for label, key in SHOWN]
    rows.append(["users scored", *(str(users[n]) for n in names)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                     for r in rows)  # fmt: skip


# -- reading the topic ----------------------------------------------------------------------------


def read_interactions(
    client_config: Mapping[str, Any],
    topic: str,
    decode: Callable[[bytes | None, str, int, int], Interaction | None],
    *,
    since_s: float | None,
    timeout_s: float = 10.0,
    max_events: int = 1_000_000,
    idle_s: float = 2.0,
) -> list[Interaction]:
    """Decode the topic's records from `since_s` ago (None: from the beginning) to its end."""
    from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415

    timeout_ms = int(timeout_s * 1000)
    consumer = KafkaConsumer(**client_config, group_id=None, enable_auto_commit=False, allow_auto_create_topics=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        if not tps:
            raise ValueError(f"topic {topic!r} does not exist or has no partitions")
        consumer.assign(tps)
        if since_s is None:
            consumer.seek_to_beginning(*tps)
        else:
            target = int((time.time() - since_s) * 1000)
            found = consumer.offsets_for_times(dict.fromkeys(tps, target), timeout_ms=timeout_ms)
            ends = consumer.end_offsets(tps, timeout_ms=timeout_ms)
            for tp in tps:
                hit = found.get(tp)
                usable = hit is not None and hit.offset >= 0 and getattr(hit, "timestamp", 0) >= 0
                consumer.seek(tp, hit.offset if usable else ends[tp])
        out: list[Interaction] = []
        last_data = time.monotonic()
        while len(out) < max_events and time.monotonic() - last_data < idle_s:
            batch = consumer.poll(timeout_ms=250, max_records=10_000)
            for tp, records in batch.items():
                last_data = time.monotonic()
                for record in records:
                    decoded = decode(record.value, tp.topic, tp.partition, record.offset)
                    if decoded is not None:
                        out.append(decoded)
        return out[:max_events]
    finally:
        consumer.close(autocommit=False, timeout_ms=2000)


# -- training in a temporary local Personalize ---------------------------------------------------------


def _wait(describe: Callable[[], Mapping[str, Any]], what: str, timeout_s: float) -> Mapping[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        doc = describe()
        status = doc.get("status")
        if status == "ACTIVE":
            return doc
        if status in ("CREATE FAILED", "CREATE STOPPED"):
            raise RuntimeError(f"{what} is {status}: {doc.get('failureReason')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} still {status} after {timeout_s:g}s")
        time.sleep(0.1)


class LocalLab:
    """A dataset group in a local Personalize, fed through PutEvents, with one campaign per recipe."""

    def __init__(self, endpoint_url: str, schema_text: str, *, region: str = "us-east-1", timeout_s: float = 120.0):
        import boto3  # noqa: PLC0415

        kwargs = {"endpoint_url": endpoint_url, "region_name": region}
        self.control = boto3.client("personalize", **kwargs)
        self.events = boto3.client("personalize-events", **kwargs)
        self.runtime = boto3.client("personalize-runtime", **kwargs)
        self.timeout_s = timeout_s
        cp = self.control
        schema_arn = cp.create_schema(name="evaluate-interactions", schema=schema_text)["schemaArn"]
        self.group = cp.create_dataset_group(name="evaluate")["datasetGroupArn"]
        _wait(lambda: cp.describe_dataset_group(datasetGroupArn=self.group)["datasetGroup"], "dataset group", timeout_s)
        dataset = cp.create_dataset(name="evaluate-interactions", schemaArn=schema_arn,
                                    datasetGroupArn=self.group, datasetType="Interactions")["datasetArn"]  # fmt: skip
        _wait(lambda: cp.describe_dataset(datasetArn=dataset)["dataset"], "dataset", timeout_s)
        tracker = cp.create_event_tracker(name="evaluate", datasetGroupArn=self.group)
        self.tracking_id = tracker["trackingId"]
        arn = tracker["eventTrackerArn"]
        _wait(lambda: cp.describe_event_tracker(eventTrackerArn=arn)["eventTracker"], "event tracker", timeout_s)

    def put(self, interactions: Iterable[Interaction], threads: int = 8) -> int:
        """PutEvents in calls of up to 10 events sharing (user, session); returns events sent."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for interaction in interactions:
            groups[(user_key(interaction), interaction.session_id)].append(interaction.event)
        calls = [(key, events[i : i + 10]) for key, events in groups.items() for i in range(0, len(events), 10)]

        def send(call: tuple[tuple[str, str], list[dict[str, Any]]]) -> int:
            (user, session), events = call
            self.events.put_events(trackingId=self.tracking_id, userId=user, sessionId=session, eventList=events)
            return len(events)

        with ThreadPoolExecutor(max_workers=threads) as pool:
            return sum(pool.map(send, calls))

    def deploy(self, recipe: str) -> str:
        """Train a FULL version of `recipe` and deploy it; returns the campaign ARN."""
        cp, name = self.control, f"evaluate-{recipe}"[:63]
        solution = cp.create_solution(name=name, datasetGroupArn=self.group, recipeArn=RECIPE_PREFIX + recipe,
                                      performAutoTraining=False)["solutionArn"]  # fmt: skip
        _wait(lambda: cp.describe_solution(solutionArn=solution)["solution"], f"solution {name}", self.timeout_s)
        version = cp.create_solution_version(solutionArn=solution, trainingMode="FULL")["solutionVersionArn"]
        _wait(lambda: cp.describe_solution_version(solutionVersionArn=version)["solutionVersion"],
              f"training of {recipe}", self.timeout_s)  # fmt: skip
        campaign = cp.create_campaign(name=name, solutionVersionArn=version, minProvisionedTPS=1)["campaignArn"]
        _wait(lambda: cp.describe_campaign(campaignArn=campaign)["campaign"], f"campaign {name}", self.timeout_s)
        return str(campaign)

    def recommend(self, campaign: str, users: Mapping[str, int], threads: int = 8) -> dict[str, list[str]]:
        """Each user's list, long enough to survive removing `users[u]` already-seen items."""

        def ask(item: tuple[str, int]) -> tuple[str, list[str]]:
            user, seen = item
            size = min(MAX_RESULTS, QUERY_SIZE + seen)
            reply = self.runtime.get_recommendations(campaignArn=campaign, userId=user, numResults=size)
            return user, [str(i["itemId"]) for i in reply.get("itemList", [])]

        with ThreadPoolExecutor(max_workers=threads) as pool:
            return dict(pool.map(ask, users.items()))


@dataclass
class Evaluation:
    results: dict[str, dict[str, float]]
    users: dict[str, int]
    interactions: int
    train_interactions: int
    holdout_users: int


def run_evaluation(
    interactions: Sequence[Interaction],
    schema_text: str,
    *,
    recipe: str,
    holdout: float,
    dedup_history: bool,
    work_dir: Path,
    progress: Callable[[str], None] = lambda _: None,
) -> Evaluation:
    """Split, train both recipes in a temporary local Personalize, score (see module docstring)."""
    from clickstream_devkit.personalize.process import LocalPersonalize  # noqa: PLC0415

    split = temporal_holdout(interactions, holdout)
    if not split.holdout:
        raise ValueError("no user has two or more interactions: nothing to hold out")
    server = LocalPersonalize(data_dir=work_dir / "data", extra_args=["--fast"], log_path=work_dir / "server.log")
    server.start(30.0)
    try:
        lab = LocalLab(server.endpoint_url, schema_text)
        progress(f"sending {len(split.train)} training interactions")
        lab.put(split.train)
        seen = {user: len(set(history)) for user, history in split.history.items()}
        results: dict[str, dict[str, float]] = {}
        users: dict[str, int] = {}
        for name in dict.fromkeys((recipe, BASELINE)):
            progress(f"training and deploying {name}")
            recommendations = lab.recommend(lab.deploy(name), seen)
            for remove_seen in (False, True):
                column = name + (" (seen removed)" if remove_seen else "")
                results[column], users[column] = score(
                    recommendations, split, remove_seen=remove_seen, dedup_history=dedup_history
                )
    finally:
        server.stop()
    return Evaluation(results, users, len(interactions), len(split.train), len(split.holdout))


# -- command line ---------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML settings file (for Kafka and the topic's mapping)")
    parser.add_argument("--topic", required=True, help="the interactions topic to read")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: from config/env)")
    parser.add_argument("--since", help="only interactions newer than this, e.g. 7d (default: all retained)")
    parser.add_argument("--recipe", default="aws-user-personalization", help="recipe to compare with the baseline")
    parser.add_argument("--holdout", type=float, default=0.1, help="share of each user's newest interactions held out")
    parser.add_argument("--dedup-history", action="store_true",
                        help="count only held-out items the user had not interacted with before")  # fmt: skip
    parser.add_argument("--max-events", type=int, default=1_000_000, help="read at most this many interactions")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def main(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    from worker.config import DEFAULT_SCHEMA_DIR, ConfigError, KafkaSettings, load_settings  # noqa: PLC0415
    from worker.config.mapping import default_mapping  # noqa: PLC0415
    from worker.mapping import EventDecoder  # noqa: PLC0415
    from worker.records import DatasetType, SourceRef  # noqa: PLC0415
    from worker.schemas import load_schema  # noqa: PLC0415
    from worker.validation import ValidationLimits  # noqa: PLC0415

    try:
        since = parse_duration(args.since) if args.since else None
        settings = load_settings(args.config) if args.config else None
    except (ValueError, ConfigError) as exc:
        print(f"clickstream-worker: {exc}", file=err)
        return 2
    kafka = settings.kafka if settings is not None else KafkaSettings()
    if args.bootstrap:
        kafka = kafka.model_copy(update={"bootstrap_servers": args.bootstrap})
    configured = next((t for t in settings.topics if t.name == args.topic), None) if settings else None
    schema_path = configured.schema_path if configured else DEFAULT_SCHEMA_DIR / "interactions.json"
    schema = load_schema(schema_path)
    mapping = configured.effective_mapping if configured else default_mapping(DatasetType.INTERACTIONS)
    decoder = EventDecoder(DatasetType.INTERACTIONS, mapping, schema, ValidationLimits(max_past_seconds=math.inf))
    now = time.time()

    def decode(value: bytes | None, topic: str, partition: int, offset: int) -> Interaction | None:
        result = decoder.decode(value, SourceRef(topic, partition, offset), now)
        return result if isinstance(result, Interaction) else None

    interactions = read_interactions(kafka.client_config(), args.topic, decode, since_s=since,
                                     max_events=args.max_events)  # fmt: skip
    print(f"read {len(interactions)} valid interactions from {args.topic}", file=err)
    with tempfile.TemporaryDirectory(prefix="clickstream-evaluate-") as tmp:
        try:
            result = run_evaluation(interactions, schema.text, recipe=args.recipe, holdout=args.holdout,
                                    dedup_history=args.dedup_history, work_dir=Path(tmp),
                                    progress=lambda m: print(m, file=err))  # fmt: skip
        except (ValueError, RuntimeError, TimeoutError) as exc:
            print(f"clickstream-worker: evaluate failed: {exc}", file=err)
            return 1
    if args.json:
        print(json.dumps({"results": result.results, "users": result.users, "interactions": result.interactions,
                          "train_interactions": result.train_interactions}, indent=2), file=out)  # fmt: skip
    else:
        print(f"{result.interactions} interactions, {result.holdout_users} holdout users, "
              f"holdout {args.holdout:.0%} newest per user{' (history-deduplicated)' if args.dedup_history else ''}",
              file=out)  # fmt: skip
        print(render(result.results, result.users), file=out)
    return 0
