"""Options of `clickstream-worker dev` (kept light so `--help` imports nothing heavy)."""

from __future__ import annotations

import argparse


def add_dev_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=20_000, help="interaction events to generate (default 20000)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds instead")
    parser.add_argument("--rate", type=float, default=2_000.0, help="events per second produced (default 2000)")
    parser.add_argument("--bad-fraction", type=float, default=0.03, help="fraction of malformed events")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--data-dir", help="keep the local Personalize data here (default: a temporary dir)")
    parser.add_argument("--drain-timeout", type=float, default=120.0,
                        help="after generating, wait at most this long for the worker to finish")
