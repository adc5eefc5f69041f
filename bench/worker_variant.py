"""`clickstream-worker run` with consumer settings the config lacks, or with proposed patches applied.

Used only for clearly labelled "what if" runs (e.g. ``fetch_max_wait_ms``), so a proposed
setting is measured against the shipped worker in the same session. Everything else is the
worker's own entry point: same settings file, same `run_worker`.

    python -m bench.worker_variant --config FILE --consumer '{"fetch_max_wait_ms": 20}'
    python -m bench.worker_variant --config FILE --patch signer,timeout,acquire,labels
"""

from __future__ import annotations

import argparse
import json
import sys

from worker.cli import install_early_stop_handlers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_variant", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--consumer", default="{}", help="JSON object of KafkaConsumer keyword arguments")
    parser.add_argument("--patch", default="", help="comma-separated bench.patches to apply first")
    args = parser.parse_args(argv)
    if args.patch:
        from bench.patches import apply  # noqa: PLC0415

        print(f"bench.worker_variant: patches applied: {apply(args.patch.split(','))}", flush=True)
    early_stop = install_early_stop_handlers()
    from worker.app import run_worker  # noqa: PLC0415 - as worker.cli does: signals first, heavy imports after
    from worker.config import load_settings  # noqa: PLC0415

    overrides = json.loads(args.consumer)
    return run_worker(load_settings(args.config), early_stop=early_stop, consumer_overrides=overrides)


if __name__ == "__main__":
    sys.exit(main())
