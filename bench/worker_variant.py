"""`clickstream-worker run` with KafkaConsumer keyword arguments or the lean client's HTTP overridden.

Used only for clearly labelled "what if" runs (e.g. ``fetch_min_bytes``, or the lean client on
its former hand-written HTTP pool), so a variant is measured against the shipped defaults in
the same session. Everything else is the worker's own entry point: same settings file, same
`run_worker`.

    python -m bench.worker_variant --config FILE --consumer '{"fetch_min_bytes": 1}'
    python -m bench.worker_variant --config FILE --transport http1
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
    parser.add_argument("--transport", choices=["aiohttp", "http1"], default="aiohttp",
                        help="the lean client's HTTP: the shipped aiohttp transport, or the former hand-written pool")
    args = parser.parse_args(argv)
    early_stop = install_early_stop_handlers()
    from worker.app import run_worker  # noqa: PLC0415 - as worker.cli does: signals first, heavy imports after
    from worker.config import load_settings  # noqa: PLC0415

    if args.transport == "http1":
        import worker.ingest.lean_client as lean  # noqa: PLC0415
        from bench.http1_pool import Http1Transport  # noqa: PLC0415

        lean.AiohttpTransport = Http1Transport  # type: ignore[misc,assignment]
    overrides = json.loads(args.consumer)
    return run_worker(load_settings(args.config), early_stop=early_stop, consumer_overrides=overrides)


if __name__ == "__main__":
    sys.exit(main())
