"""The development kit's subcommands of `clickstream-worker` (entry points, group ``clickstream_worker.commands``).

Each function adds one subcommand to the production CLI's subparsers and sets its
``handler``. Only argument definitions are imported here; a command's heavy modules (the
embedded broker, numpy, the local Personalize server) load when it runs.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_dev(sub: Any) -> None:
    from clickstream_devkit.dev_args import add_dev_arguments

    parser = sub.add_parser("dev", help="the whole loop locally: embedded broker, local Personalize, generator")
    add_dev_arguments(parser)
    parser.set_defaults(handler=_run_dev)


def add_generate(sub: Any) -> None:
    from clickstream_devkit.generate_cmd import add_generate_arguments

    parser = sub.add_parser("generate", help="produce a realistic synthetic clickstream to Kafka")
    add_generate_arguments(parser)
    parser.set_defaults(handler=_run_generate)


def add_local_personalize(sub: Any) -> None:
    from clickstream_devkit.personalize.args import DESCRIPTION, add_arguments

    parser = sub.add_parser("local-personalize", help="run the local Personalize (development stand-in)",
                            description=DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(handler=_run_local_personalize, local_personalize_parser=parser)


def add_evaluate(sub: Any) -> None:
    from clickstream_devkit.evaluate import add_arguments

    parser = sub.add_parser("evaluate", help="offline temporal-holdout evaluation of a recipe against Popularity-Count")
    add_arguments(parser)
    parser.set_defaults(handler=_run_evaluate)


def _run_dev(args: argparse.Namespace) -> int:
    from clickstream_devkit.dev import main_dev

    return main_dev(args)


def _run_generate(args: argparse.Namespace) -> int:
    from clickstream_devkit.generate_cmd import main_generate

    return main_generate(args)


def _run_local_personalize(args: argparse.Namespace) -> int:
    from clickstream_devkit.personalize.server import run_from_args

    return run_from_args(args, args.local_personalize_parser)


def _run_evaluate(args: argparse.Namespace) -> int:
    from clickstream_devkit.evaluate import main

    return main(args)
