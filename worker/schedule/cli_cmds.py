"""``clickstream-worker schedule | retrain | status``: argument setup and entry points.

The lead wires these into worker/cli.py: ``add_<cmd>_arguments(subparser)`` then
``main_<cmd>(args) -> exit code``. All read the worker's configuration file (``--config``
or ``WORKER_CONFIG``): its ``kafka`` section and its ``scheduler:`` section.

* ``schedule``: run the scheduler alone (lease, reconciliation loop, /metrics) until
  SIGTERM/SIGINT;
* ``retrain [--solution NAME] [--dry-run]``: one reconciliation pass now; prints the
  observed state and the decision. Without ``--dry-run`` it first takes the lease (so it
  never acts next to a running leader) and gives up with exit code 3 if it cannot; as the
  leader of that pass it publishes its observation, marked released when it exits. A dry
  run observes Personalize itself (it answers "what would a pass decide now, with this
  configuration", which the leader's published decision cannot), takes no lease, acts on
  nothing and publishes nothing;
* ``status [--live | --published]``: solutions, versions (status, mode, metrics) and
  campaigns (serving version, latest update), plus what the scheduler remembers
  (refused/promoted). By default it shows the leader's published observation (with its
  age, replica and lease generation) and makes no Personalize call; when there is none,
  or it is stale or its leader has stopped, it observes live and says why. ``--live``
  always observes; ``--published`` never calls Personalize (Kafka access is enough).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, TextIO

from worker.config import ConfigError, WorkerSettings, load_settings
from worker.config.scheduler import SchedulerSettings, resource_name
from worker.records import DatasetType
from worker.schedule.control_topic import read_control_topic
from worker.schedule.lease import LeaderLease, ensure_control_topic
from worker.schedule.lifecycle import LifecyclePublisher, SchedulerMetrics
from worker.schedule.memory_store import InMemoryStore, KafkaMemoryStore, MemoryStore, SolutionState, states_of
from worker.schedule.observer import ObserveError, VolumeCounter
from worker.schedule.reconciler import Reconciler, TickReport
from worker.schedule.snapshot import Claim, Snapshot, SnapshotIndex, describe_freshness, freshness, status_source
from worker.schedule.snapshot_board import KafkaSnapshotBoard, SnapshotBoard, index_of
from worker.schedule.state import Observation

EXIT_CONFIG = 2
EXIT_NO_LEASE = 3

_METRIC_COLUMNS = (
    ("NDCG@10", "normalized_discounted_cumulative_gain_at_10"),
    ("P@10", "precision_at_10"),
    ("MRR@25", "mean_reciprocal_rank_at_25"),
    ("COVERAGE", "coverage"),
)


# -- configuration ------------------------------------------------------------------------------


def load_config(path: str | None) -> tuple[WorkerSettings, SchedulerSettings]:
    """The worker settings and their ``scheduler:`` section."""
    settings = load_settings(path)
    return settings, settings.scheduler


def _load(args: argparse.Namespace) -> tuple[WorkerSettings, SchedulerSettings] | None:
    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(f"clickstream-worker: {exc}", file=sys.stderr)
        return None


def _load_for_solution(
    args: argparse.Namespace, err: TextIO
) -> tuple[WorkerSettings, SchedulerSettings, str | None] | None:
    """Settings plus the ``--solution`` ARN (None: all); None after printing a config error."""
    loaded = _load(args)
    if loaded is None:
        return None
    settings, scheduler = loaded
    _configure_logging(settings)
    try:
        return settings, scheduler, _only(scheduler, args.solution)
    except ConfigError as exc:
        print(f"clickstream-worker: {exc}", file=err)
        return None


def _configure_logging(settings: WorkerSettings) -> None:
    """Logging as the configuration says (format, level, redaction), on stderr: stdout is the output."""
    from worker.observe.logging import configure_logging  # noqa: PLC0415

    obs = settings.observability
    configure_logging(
        json=None if obs.log_format == "auto" else obs.log_format == "json",
        level=obs.log_level,
        redact_user_ids=obs.redact_user_ids,
        redaction_salt=obs.redaction_salt.get_secret_value(),
    )


def _interaction_topics(settings: WorkerSettings, scheduler: SchedulerSettings) -> list[str]:
    return scheduler.input_topics or [t.name for t in settings.topics if t.dataset_type is DatasetType.INTERACTIONS]


def _reconciler(
    settings: WorkerSettings, scheduler: SchedulerSettings, store: MemoryStore, board: SnapshotBoard | None = None
) -> Reconciler:
    from worker.schedule.service import personalize_client, replica_name  # noqa: PLC0415 - boto3 only when needed

    config = settings.kafka.client_config()
    return Reconciler(
        personalize_client(scheduler, settings.personalize.region,
                           allow_insecure_http=settings.personalize.allow_insecure_http),
        scheduler.solutions,
        store=store,
        publisher=LifecyclePublisher(None, None, scheduler.event_source),
        metrics=SchedulerMetrics(),
        volume=VolumeCounter(config, timeout_s=scheduler.kafka_timeout_s),
        input_topics=_interaction_topics(settings, scheduler),
        board=board,
        replica=replica_name() + " (retrain)",
        tick_interval_s=scheduler.tick_interval_s,
    )


def _store(settings: WorkerSettings, scheduler: SchedulerSettings, err: TextIO) -> MemoryStore:
    """The Kafka memory store if readable, else an empty in-process one (with a warning)."""
    config = settings.kafka.client_config()
    store = KafkaMemoryStore(config, scheduler.control_topic, timeout_s=scheduler.kafka_timeout_s)
    try:
        store.load_all()
    except Exception as exc:  # noqa: BLE001 - status and dry runs still work without the memory
        print(f"warning: scheduler memory unreadable ({exc}); refused/promoted history not shown", file=err)
        return InMemoryStore()
    return store


def _only(scheduler: SchedulerSettings, name: str | None) -> str | None:
    if name is None:
        return None
    schedule = scheduler.solution(name)
    if schedule is None:
        known = ", ".join(resource_name(s.solution_arn) for s in scheduler.solutions) or "none"
        raise ConfigError(f"--solution {name!r} is not configured under scheduler.solutions (known: {known})")
    return schedule.solution_arn


# -- rendering ------------------------------------------------------------------------------------


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _when(epoch_s: float | None) -> str:
    from worker.schedule.lifecycle import rfc3339  # noqa: PLC0415

    return "-" if not epoch_s else rfc3339(epoch_s)[:19].replace("T", " ")


def render_observation(obs: Observation, state: SolutionState | None = None, source: Sequence[str] = ()) -> str:
    """Human table of one solution: where the view comes from, its versions, then its campaigns (pure)."""
    memory = obs.memory if state is None else state.memory
    solution = obs.solution
    recipe = (solution.recipe_arn or "-").rsplit("/", 1)[-1]
    auto = "ON (conflicts with the scheduler)" if solution.perform_auto_training else "off"
    lines = [f"solution {resource_name(solution.arn)}  status={solution.status}  recipe={recipe}  autoTraining={auto}",
             f"  arn {solution.arn}", *(f"  {line}" for line in source)]  # fmt: skip
    serving = {c.serving_version_arn: resource_name(c.arn) for c in obs.campaigns if c.serving_version_arn}
    rows = [["VERSION", "STATUS", "MODE", "CREATED", *(h for h, _ in _METRIC_COLUMNS), "NOTE"]]
    for v in sorted(obs.versions, key=lambda x: x.created_at, reverse=True):
        metrics = v.metrics or {}
        notes = []
        if v.arn in serving:
            notes.append(f"serving in {serving[v.arn]}")
        if v.arn in memory.refused:
            notes.append(f"refused: {memory.refused[v.arn]}")
        if v.failure_reason:
            notes.append(v.failure_reason)
        cells = [f"{metrics[k]:.4f}" if k in metrics else "-" for _, k in _METRIC_COLUMNS]
        rows.append([resource_name(v.arn), v.status, v.training_mode, _when(v.created_at), *cells, "; ".join(notes)])
    lines += _table(rows) if len(rows) > 1 else ["  (no solution versions)"]
    rows = [["CAMPAIGN", "STATUS", "SERVING", "TPS", "LATEST UPDATE"]]
    for c in obs.campaigns:
        update = "-"
        if c.latest_update is not None:
            u = c.latest_update
            update = f"{resource_name(u.version_arn)} {u.status} at {_when(u.created_at)}"
            if u.failure_reason:
                update += f" ({u.failure_reason})"
        serving_name = resource_name(c.serving_version_arn) if c.serving_version_arn else "-"
        rows.append([resource_name(c.arn), c.status, serving_name, str(c.min_tps or "-"), update])
    lines += _table(rows) if len(rows) > 1 else ["  (no campaigns yet)"]
    if obs.imports:
        latest = obs.imports[-1]
        lines.append(f"  latest import {resource_name(latest.arn)} {latest.import_mode} {latest.status}")
    if obs.new_interactions is not None:
        lines.append(f"  new interactions since the newest ACTIVE version: {obs.new_interactions}")
    return "\n".join(lines)


def render_report(report: TickReport) -> str:
    if report.observation is None or report.decision is None:
        return f"solution {resource_name(report.solution_arn)}: not observed ({report.error})"
    d = report.decision
    lines = [render_observation(report.observation), f"  decision: {d.kind} - {d.reason}"]
    lines += [f"  alert: {a}" for a in d.alerts]
    if report.result is not None and report.result.operation:
        outcome = f"failed: {report.result.error_code}" if report.result.failed else "done"
        lines.append(f"  action: {report.result.operation} {outcome}")
    return "\n".join(lines)


def _report_json(report: TickReport) -> dict[str, Any]:
    result = report.result
    return {
        "solution_arn": report.solution_arn,
        "error": report.error,
        "decision": report.decision.to_dict() if report.decision else None,
        "operation": result.operation if result else None,
        "error_code": result.error_code if result else None,
        "versions": [
            {"arn": v.arn, "status": v.status, "training_mode": v.training_mode, "metrics": v.metrics}
            for v in (report.observation.versions if report.observation else ())
        ],
        "campaigns": [
            {
                "arn": c.arn,
                "status": c.status,
                "serving": c.serving_version_arn,
                "latest_update": (
                    None if c.latest_update is None else [c.latest_update.version_arn, c.latest_update.status]
                ),
            }
            for c in (report.observation.campaigns if report.observation else ())
        ],
    }


# -- schedule ---------------------------------------------------------------------------------


def add_schedule_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML settings file (default: $WORKER_CONFIG)")


def main_schedule(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if loaded is None:
        return EXIT_CONFIG
    settings, scheduler = loaded
    if not scheduler.solutions:
        print("clickstream-worker: no solutions under scheduler.solutions; nothing to schedule", file=sys.stderr)
        return EXIT_CONFIG
    from worker.observe.health import HealthServer  # noqa: PLC0415
    from worker.observe.metrics import Metrics  # noqa: PLC0415
    from worker.schedule.service import Scheduler  # noqa: PLC0415

    obs = settings.observability
    _configure_logging(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _s, _f: stop.set())
    metrics = Metrics()
    privacy = None
    if settings.privacy is not None:  # the leader runs the deletion jobs; trainings wait for them
        from worker.privacy.service import PrivacyState  # noqa: PLC0415

        privacy = PrivacyState(settings.privacy, settings.kafka.client_config(), registry=metrics.registry)
        privacy.prepare()
        privacy.start(wait_s=30.0)
    service = Scheduler(scheduler, settings.kafka, region=settings.personalize.region, registry=metrics.registry,
                        default_input_topics=_interaction_topics(settings, scheduler),
                        privacy=privacy, archive=settings.archive)  # fmt: skip
    health = HealthServer(obs.http_host, obs.http_port, metrics,
                          readiness=lambda: (True, {"leader": service.is_leader}),
                          liveness=lambda: (service.error is None, {"ticks": service.ticks}))  # fmt: skip
    health.start()
    try:
        return service.run_until(stop)
    finally:
        health.stop()
        if privacy is not None:
            privacy.stop()


# -- retrain ------------------------------------------------------------------------------------


def add_retrain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML settings file (default: $WORKER_CONFIG)")
    parser.add_argument("--solution", help="only this configured solution (name or ARN)")
    parser.add_argument("--dry-run", action="store_true", help="observe and decide, but do not act")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--lease-timeout", type=float, default=30.0, help="seconds to wait for the lease")


def main_retrain(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    loaded = _load_for_solution(args, err)
    if loaded is None:
        return EXIT_CONFIG
    settings, scheduler, only = loaded
    lease: LeaderLease | None = None
    if not args.dry_run:
        config = settings.kafka.client_config()
        ensure_control_topic(config, scheduler.control_topic, scheduler.kafka_timeout_s)
        lease = LeaderLease(config, scheduler.control_topic, scheduler.group_id, **scheduler.lease.model_dump())
        lease.start()
        if not lease.wait_leader(args.lease_timeout):
            lease.stop()
            print(f"another scheduler holds the lease (group {scheduler.group_id!r}); not acting. "
                  "Use --dry-run to see its decision.", file=err)  # fmt: skip
            return EXIT_NO_LEASE
    config = settings.kafka.client_config()
    store = _store(settings, scheduler, err) if args.dry_run else KafkaMemoryStore(
        config, scheduler.control_topic, timeout_s=scheduler.kafka_timeout_s)  # fmt: skip
    board = None if lease is None else KafkaSnapshotBoard(config, scheduler.control_topic,
                                                          timeout_s=scheduler.kafka_timeout_s)  # fmt: skip
    reconciler = _reconciler(settings, scheduler, store, board)
    try:
        reconciler.load(lease.generation if lease else 0)
        held = lease
        if held is None:
            reports = reconciler.tick(may_act=False, only=only, live=True)
        else:
            reports = reconciler.tick(may_act=lambda: held.is_leader, only=only)
            if held.is_leader:
                reconciler.release()  # we leave the lease now: nobody refreshes what we published
    finally:
        if lease is not None:
            lease.stop()
        if board is not None:
            board.close()
        store.close()
        if reconciler.volume is not None:
            reconciler.volume.close()
    if args.json:
        print(json.dumps([_report_json(r) for r in reports], indent=2, default=str), file=out)
    else:
        print(("DRY RUN: nothing done\n" if args.dry_run else "") + "\n\n".join(map(render_report, reports)), file=out)
    return 1 if any(r.error for r in reports) else 0


# -- status --------------------------------------------------------------------------------------


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML settings file (default: $WORKER_CONFIG)")
    parser.add_argument("--solution", help="only this configured solution (name or ARN)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--live", action="store_true",
                        help="observe Personalize now instead of showing the leader's published observation")
    source.add_argument("--published", action="store_true",
                        help="only the leader's published observation, however old: no Personalize call")  # fmt: skip


def _control_records(
    settings: WorkerSettings, scheduler: SchedulerSettings, err: TextIO
) -> tuple[dict[str, SolutionState], SnapshotIndex]:
    """Memory and published observations from one read of the control topic (empty, with a warning, if unreadable)."""
    try:
        records = read_control_topic(settings.kafka.client_config(), scheduler.control_topic,
                                     timeout_s=scheduler.kafka_timeout_s)  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - status still works live without the control topic
        print(f"warning: scheduler control topic unreadable ({exc}); no leader observations or memory shown",
              file=err)  # fmt: skip
        return {}, SnapshotIndex()
    return states_of(records), index_of(records)


def leader_lines(snapshot: Snapshot, now: float, leader: Claim | None = None) -> list[str]:
    """Where a published view comes from, and what the leader decided and did with it (pure)."""
    state = freshness(snapshot, now)
    mark = {"fresh": "", "stale": "STALE: ", "released": "NO LEADER: "}.get(state, "")
    lines = [f"{mark}{describe_freshness(snapshot, now)}"]
    if leader is not None and snapshot.generation is not None and leader.generation > snapshot.generation:
        lines.append(f"a newer leader (replica {leader.replica}, lease generation {leader.generation}) "
                     f"took over {max(0.0, now - leader.claimed_at):.0f} s ago and has not published yet")  # fmt: skip
    if snapshot.decision is not None:
        lines.append(f"leader's decision: {snapshot.decision} - {snapshot.reason}")
    lines += [f"alert: {a}" for a in snapshot.alerts]
    if snapshot.action is not None:
        lines.append(f"leader's action: {snapshot.action}")
    if snapshot.omitted_versions:
        lines.append(f"({snapshot.omitted_versions} older versions not published)")
    return lines


def source_json(kind: str, detail: str, snapshot: Snapshot | None, now: float) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": kind, "detail": detail}
    if snapshot is not None and kind == "leader":
        doc.update(
            replica=snapshot.replica, generation=snapshot.generation, observed_at=snapshot.observed_at,
            age_s=None if snapshot.age(now) is None else round(snapshot.age(now) or 0.0, 3),
            published_at=snapshot.published_at, freshness=freshness(snapshot, now), error=snapshot.error,
        )  # fmt: skip
    return doc


def main_status(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    loaded = _load_for_solution(args, err)
    if loaded is None:
        return EXIT_CONFIG
    settings, scheduler, only = loaded
    mode = "live" if getattr(args, "live", False) else "published" if getattr(args, "published", False) else "auto"
    states, index = _control_records(settings, scheduler, err)
    reconciler: Reconciler | None = None  # built only if something must be observed live
    blocks: list[str] = []
    documents: list[dict[str, Any]] = []
    code = 0
    for cfg in scheduler.solutions:
        if only is not None and cfg.solution_arn != only:
            continue
        name = resource_name(cfg.solution_arn)
        snapshot = index.snapshots.get(cfg.solution_arn)
        now = time.time()
        kind, detail = status_source(snapshot, now, mode)
        if kind == "leader" and snapshot is not None and snapshot.observation is not None:
            blocks.append(render_observation(snapshot.observation, source=leader_lines(snapshot, now, index.leader)))
            doc = _report_json(TickReport(cfg.solution_arn, snapshot.observation, source="published"))
            doc["decision"] = {"action": {"kind": snapshot.decision}, "reason": snapshot.reason,
                               "alerts": list(snapshot.alerts)}  # fmt: skip
        elif kind == "live":
            if reconciler is None:
                reconciler = _reconciler(settings, scheduler, InMemoryStore(states))
                reconciler.load()
            try:
                obs = reconciler.observe(cfg)
            except ObserveError as exc:
                blocks.append(f"solution {name}: {exc}")
                code = 1
                continue
            source = [f"observed live by this command: {detail}"]
            blocks.append(render_observation(obs, states.get(cfg.solution_arn), source=source))
            doc = _report_json(TickReport(cfg.solution_arn, obs, source="live"))
        else:
            blocks.append(f"solution {name}: {detail}")
            code = 1
            continue
        doc["source"] = source_json(kind, detail, snapshot, now)
        documents.append(doc)
    if reconciler is not None and reconciler.volume is not None:
        reconciler.volume.close()
    print(json.dumps(documents, indent=2, default=str) if args.json else "\n\n".join(blocks), file=out)
    return code
