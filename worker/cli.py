"""`clickstream-worker` command line.

Subcommands:
  run                 the worker (consumer group member) until SIGTERM/SIGINT
  validate FILE|-     offline: apply the same mapping and validation to JSON lines (--preset NAME)
  dlq replay          re-publish dead-lettered records to their source topic
  schedule            only the retraining scheduler; retrain / status: its tools
  privacy status|forget  deletion requests and jobs; publish deletion requests
  config example      print a complete commented configuration
With the development kit installed (clickstream-devkit), it adds `dev`, `generate`,
`local-personalize` and `evaluate` through the ``clickstream_worker.commands`` entry points.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from worker.config import ConfigError, WorkerSettings, load_settings
from worker.mapping import MappingConfigError
from worker.records import DatasetType, Stage
from worker.schemas import SchemaError

EXIT_CONFIG = 2


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML settings file (default: $WORKER_CONFIG)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clickstream-worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the worker")
    _add_config(run)

    validate = sub.add_parser("validate", help="validate JSON-lines events offline")
    validate.add_argument("file", help="JSON lines file, or - for stdin")
    _add_config(validate)
    validate.add_argument("--topic", help="use this configured topic's mapping and schema")
    validate.add_argument("--dataset-type", choices=[t.value for t in DatasetType], default=None,
                          help="without a config: the default mapping and shipped schema for this type")
    validate.add_argument("--preset", choices=["segment", "rudderstack", "snowplow", "amplitude", "ga4",
                                               "personalize-connector"],
                          help="read the lines with this mapping preset (instead of the topic's mapping); "
                          "snowplow also reads enriched-event TSV lines")
    validate.add_argument("--redact", action="store_true",
                          help="hash user/session IDs and omit excerpts of unparseable lines in the report "
                          "(salt: observability.redaction_salt)")

    dlq = sub.add_parser("dlq", help="dead-letter topic tools")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    replay = dlq_sub.add_parser("replay", help="re-publish dead-lettered records to their source topic")
    replay.add_argument("--topic", required=True, help="the dead-letter topic, e.g. clicks.dlq")
    replay.add_argument("--stage", action="append", choices=[stage.value for stage in Stage],
                        help="only records rejected at this stage (repeatable; default all)")
    replay.add_argument("--bootstrap", help="Kafka bootstrap servers (default: --config / WORKER_CONFIG, "
                        "then KAFKA_BOOTSTRAP_SERVERS or WORKER_KAFKA__BOOTSTRAP_SERVERS)")
    replay.add_argument("--from-beginning", action="store_true", help="ignore progress of earlier replays")
    replay.add_argument("--idle-timeout", type=float, default=3.0, help="stop after this many idle seconds")
    replay.add_argument("--source-topic", help="the only topic records may go back to (default: the configured "
                        "topic whose dead-letter topic this is, else <name> for <name>.dlq)")
    _add_config(replay)

    from worker.schedule import cli_cmds

    for name, help_text in (
        ("schedule", "run only the retraining scheduler (leader-elected)"),
        ("retrain", "one reconciliation pass now: print the observed state and the decision"),
        ("status", "table of solutions, versions (status, mode, metrics) and campaigns"),
    ):
        command = sub.add_parser(name, help=help_text)
        getattr(cli_cmds, f"add_{name}_arguments")(command)

    from worker.privacy import cli as privacy_cli

    privacy_cli.add_arguments(sub.add_parser("privacy", help="right to be forgotten: `status`, `forget USER_ID...`"))

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    config_sub.add_parser("example", help="print a complete commented example configuration")
    config_sub.add_parser("reference", help="print the settings reference as a Markdown table")

    for plugin in _plugins():
        plugin(sub)
    return parser


#: Entry-point group through which other distributions (the development kit) add subcommands.
#: Each entry point is a callable taking the subparsers object; the subparsers it adds set a
#: ``handler`` default (args -> exit code).
PLUGIN_GROUP = "clickstream_worker.commands"


def _plugins() -> list[Callable[[Any], None]]:
    found = []
    for entry in sorted(importlib.metadata.entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            found.append(entry.load())
        except ImportError as exc:  # a half-installed kit must not break the production commands
            print(f"clickstream-worker: ignoring commands from {entry.value}: {exc}", file=sys.stderr)
    return found


def install_early_stop_handlers() -> threading.Event:
    """Record a stop request that arrives before the event loop installs its own handlers."""
    requested = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: requested.set())
    return requested


def _load(path: str | None) -> WorkerSettings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"clickstream-worker: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from exc


def _cmd_run(args: argparse.Namespace) -> int:
    # Catch SIGTERM/SIGINT from the very start: an orchestrator may stop us while we import.
    early_stop = install_early_stop_handlers()
    from worker.app import run_worker  # heavy imports only for `run`

    settings = _load(args.config)
    try:
        return run_worker(settings, early_stop=early_stop)
    except (SchemaError, ConfigError, MappingConfigError) as exc:
        print(f"clickstream-worker: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def _cmd_validate(args: argparse.Namespace) -> int:
    import pydantic

    from worker.config.mapping import default_mapping, parse_mapping
    from worker.mapping import EventDecoder
    from worker.schemas import load_schema
    from worker.validate_cmd import open_input, run_validate
    from worker.validation import ValidationLimits

    if args.config or not args.dataset_type:
        try:
            settings = load_settings(args.config) if (args.config or args.topic) else None
        except ConfigError as exc:
            print(f"clickstream-worker: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    else:
        settings = None
    try:
        if settings is not None:
            topic = next((t for t in settings.topics if t.name == args.topic), None) if args.topic else None
            if topic is None:
                topic = settings.topics[0]
            limits = ValidationLimits(
                max_past_seconds=settings.validation.max_past_days * 86_400,
                max_future_seconds=settings.validation.max_future_seconds,
            )
            mapping = (parse_mapping(topic.dataset_type, {"preset": args.preset}) if args.preset
                       else topic.effective_mapping)
            if topic.format != "json":
                print(f"clickstream-worker: note: topic {topic.name} has format {topic.format}; validate reads "
                      "each line as the decoded record (JSON), not as registry-framed bytes", file=sys.stderr)
            decoder = EventDecoder(topic.dataset_type, mapping, load_schema(topic.schema_path),
                                   limits, max_record_bytes=settings.validation.max_record_bytes)
            name = topic.name
        else:
            from worker.config import DEFAULT_SCHEMA_DIR

            dataset_type = DatasetType(args.dataset_type or "interactions")
            mapping = (parse_mapping(dataset_type, {"preset": args.preset}) if args.preset
                       else default_mapping(dataset_type))
            decoder = EventDecoder(dataset_type, mapping,
                                   load_schema(DEFAULT_SCHEMA_DIR / f"{dataset_type.value}.json"),
                                   ValidationLimits())
            name = dataset_type.value
    except (SchemaError, MappingConfigError) as exc:
        print(f"clickstream-worker: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except pydantic.ValidationError:
        print(f"clickstream-worker: --preset {args.preset} has no mapping for this topic's dataset type (items and "
              "users topics: segment, rudderstack, personalize-connector)", file=sys.stderr)
        return EXIT_CONFIG
    salt: str | None = None
    if args.redact:
        salt = (settings.observability.redaction_salt.get_secret_value() if settings is not None
                else os.environ.get("WORKER_OBSERVABILITY__REDACTION_SALT", ""))
    return run_validate(open_input(args.file), decoder, sys.stdout, now=time.time(), source_topic=name,
                        redaction_salt=salt)


def _cmd_dlq(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    from worker.config import load_tool_settings
    from worker.dlq_replay import allowed_sources, replay

    try:
        settings = load_tool_settings(args.config)
        targets = allowed_sources(args.topic, {t.name: t.dead_letter_topic for t in settings.topics},
                                  args.source_topic)
    except (ConfigError, ValueError) as exc:
        print(f"clickstream-worker: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    kafka = settings.kafka
    if args.bootstrap:
        kafka = kafka.model_copy(update={"bootstrap_servers": args.bootstrap})
    key = settings.dlq.replay_origin_key
    if key is None:
        print("clickstream-worker: warning: dlq.replay_origin_key is not set: replayed events without their own "
              "ID get new IDs (one that had reached Personalize is stored twice)", file=sys.stderr)
    try:
        report = replay(
            kafka.client_config(), args.topic, stages=set(args.stage) if args.stage else None,
            from_beginning=args.from_beginning, idle_timeout_s=args.idle_timeout, targets=targets,
            origin_key=key.get_secret_value().encode() if key is not None else None,
        )
    except (KafkaError, TimeoutError, OSError) as exc:
        print(f"clickstream-worker: dlq replay failed ({type(exc).__name__}: {exc}); check kafka.bootstrap_servers "
              f"({kafka.bootstrap_servers}) and that {args.topic} exists", file=sys.stderr)
        return 1
    print(json.dumps(report.as_dict(), sort_keys=True))
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from worker.config.docs import example_config, reference_table

    print(example_config() if args.config_command == "example" else reference_table())
    return 0


def _cmd_scheduler(args: argparse.Namespace) -> int:
    from worker.schedule import cli_cmds

    result: int = getattr(cli_cmds, f"main_{args.command}")(args)
    return result


def _cmd_privacy(args: argparse.Namespace) -> int:
    from worker.privacy import cli as privacy_cli

    return privacy_cli.main(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _cmd_run,
        "validate": _cmd_validate,
        "dlq": _cmd_dlq,
        "config": _cmd_config,
        "schedule": _cmd_scheduler,
        "retrain": _cmd_scheduler,
        "status": _cmd_scheduler,
        "privacy": _cmd_privacy,
    }
    # Until a command configures logging from its settings: log lines go to stderr (stdout is the
    # command's output, e.g. `status --json`), redacted, at INFO. structlog's own default would
    # print every level to stdout, unredacted.
    from worker.observe.logging import configure_logging

    configure_logging(level="INFO", redact_user_ids=True)
    handler = handlers.get(args.command) or args.handler  # plugins set `handler`
    return int(handler(args))


if __name__ == "__main__":
    sys.exit(main())
