"""Command-line options of the local Personalize (no heavy imports).

`clickstream-worker local-personalize` and ``python -m clickstream_devkit.personalize`` both build
their parser from `add_arguments`; the CLI imports only this module until the command runs,
so building the top-level parser never loads the server (aiohttp, numpy).
"""

from __future__ import annotations

import argparse
from typing import Final

from clickstream_devkit.personalize.control.arns import DEFAULT_ACCOUNT, DEFAULT_REGION

DESCRIPTION: Final = "Local Personalize: a development/test stand-in for Amazon Personalize (not AWS)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the local Personalize's options to `parser`.

    The one definition of them: `main` (``python -m clickstream_devkit.personalize``) and
    ``clickstream-worker local-personalize`` both build their parser with it, and `run_from_args` reads them.
    """
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port (printed when ready)")
    parser.add_argument("--data-dir", default=".data/local-personalize", help="SQLite state lives here")
    parser.add_argument(
        "--tracker",
        action="append",
        default=[],
        metavar="TRACKING_ID",
        help="pre-register an event tracker (repeatable)",
    )
    parser.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="ARN",
        help="register a dataset; type from the ARN's last segment, e.g. .../dataset/G/ITEMS",
    )
    parser.add_argument(
        "--action-tracker",
        action="append",
        default=[],
        metavar="TRACKING_ID",
        help="pre-register a PutActionInteractions tracking ID not tied to a dataset (repeatable)",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="every status transition takes 0.2 s instead of 10 s (tests and development)",
    )
    parser.add_argument(
        "--transition-seconds",
        type=float,
        default=None,
        metavar="S",
        help="seconds per status transition step (overrides --fast; default 10)",
    )
    parser.add_argument(
        "--s3-endpoint-url",
        default=None,
        help="S3 endpoint for import jobs (default: boto3's own, e.g. AWS_ENDPOINT_URL_S3)",
    )
    parser.add_argument("--account-id", default=DEFAULT_ACCOUNT, help="12-digit account ID in ARNs")
    parser.add_argument("--region", default=DEFAULT_REGION, help="region of requests without a SigV4 scope")
    parser.add_argument("--training-seed", type=int, default=42, help="seed of the offline split and HPO")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--access-log", action="store_true", help="log every request (slow)")
