"""Options of `clickstream-worker dev` (kept light so `--help` imports nothing heavy)."""

from __future__ import annotations

import argparse


def add_dev_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=20_000, help="interaction events to generate (default 20000)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds instead")
    parser.add_argument("--rate", type=float, default=2_000.0, help="events per second produced (default 2000)")
    parser.add_argument("--bad-fraction", type=float, default=0.03, help="fraction of malformed events")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--users", type=int, default=300, help="distinct users generated (default 300)")
    parser.add_argument("--items", type=int, default=200, help="distinct items generated (default 200)")
    parser.add_argument("--data-dir", help="keep the local Personalize data here (default: a temporary dir)")
    parser.add_argument("--drain-timeout", type=float, default=120.0,
                        help="after generating, wait at most this long for every event to be accounted for")
    parser.add_argument("--retrain-every", type=float, default=60.0, metavar="SECONDS",
                        help="FULL retraining cadence of the scheduler (default 60 s; needs --retrain-min-new)")
    parser.add_argument("--retrain-min-new", type=int, default=1000, metavar="N",
                        help="interactions stored since the last training before another one (default 1000)")
    parser.add_argument("--min-interactions", type=int, default=1200,
                        help="interactions stored before the scheduler starts (training needs >= 1000)")
    parser.add_argument("--tick", type=float, default=2.0, metavar="SECONDS",
                        help="scheduler reconciliation interval (default 2 s)")
    parser.add_argument("--train-timeout", type=float, default=90.0, metavar="SECONDS",
                        help="with --events: after delivery, wait at most this long for trainings in progress "
                        "and their campaigns (default 90 s)")
    parser.add_argument("--sample-user", default="u-0", help="user whose recommendations the summary shows")
