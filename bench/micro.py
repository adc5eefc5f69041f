"""Unprofiled CPU cost of each step of one event's trip: ``python -m bench.micro``.

cProfile multiplies the cost of small Python functions, so the shares from
`bench.profile_worker` are checked here against plain ``time.process_time`` loops, each
step alone: Kafka fetch + record parsing, decode (map + validate), request build +
``json.dumps``, SigV4 signing (botocore's `AWSRequest` path as the lean client does it,
and the cached-key reference signer of `bench.sigv4`), the aiohttp POST itself (client
side only; the local Personalize runs in another process), and the whole botocore call
(sync, network short-circuited) for comparison. A cost model then predicts events/s per
core from these parts for the measured batch fill and for full batches.

Writes ``bench/results/micro.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import datetime
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from clickstream_devkit.generator import ClickstreamGenerator

from bench.baseline import interactions_decoder
from bench.processes import aws_env
from bench.sigv4 import sign_post_json
from bench.stack import ITEMS, SEED, TRACKING_ID, USERS, Stack
from worker.ingest.grouping import Batch, Batcher
from worker.ingest.sender import Target, build_request
from worker.records import DatasetType, Interaction, SourceRef

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def per_call_us(fn: Callable[[int], object], n: int) -> float:
    fn(0)  # warm caches (lazy imports, the signing key)
    began = time.process_time()
    for i in range(n):
        fn(i)
    return (time.process_time() - began) / n * 1e6


def _events(count: int) -> list[bytes]:
    generator = ClickstreamGenerator(seed=SEED, users=USERS, items=ITEMS, start_time=time.time() - count / 1000,
                                     events_per_second=1000.0)
    return [r.value for r in generator.events(count)]


def _batches(decoded: list[Interaction]) -> list[Batch[Any, Interaction]]:
    """What the batcher makes of a backlog: one batch per (user, session) run, at most 10 events."""
    batcher: Batcher[Any, Interaction] = Batcher(max_entries=10, linger_s=3600.0)
    out: list[Batch[Any, Interaction]] = []
    for i, event in enumerate(decoded):
        full = batcher.add((event.user_id, event.session_id), event, SourceRef("t", 0, i), 0.0)
        if full is not None:
            out.append(full)
    return out + batcher.drain()


def _botocore_client(endpoint: str, *, validation: bool) -> Any:
    import botocore.session  # noqa: PLC0415
    from botocore.awsrequest import AWSResponse  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    class _Raw:
        def stream(self, **_kw: Any) -> Any:
            return iter([b"{}"])

    client = botocore.session.get_session().create_client(
        "personalize-events", region_name="us-east-1", endpoint_url=endpoint,
        config=Config(parameter_validation=validation, retries={"total_max_attempts": 1}))
    client.meta.events.register(  # answer before any socket is touched: only SDK CPU is measured
        "before-send.personalize-events.PutEvents",
        lambda request, **_: AWSResponse(request.url, 200, {"x-amzn-RequestId": "r"}, _Raw()))
    return client


def _caller(client: Any, requests: list[dict[str, Any]]) -> Callable[[int], object]:
    return lambda i: client.put_events(**requests[i % len(requests)])


def _check_reference_signer(endpoint: str, body: bytes) -> bool:
    """The reference signer must produce botocore's exact Authorization header."""
    import botocore.auth  # noqa: PLC0415
    import botocore.session  # noqa: PLC0415
    from botocore.awsrequest import AWSRequest  # noqa: PLC0415

    fixed = datetime.datetime(2026, 6, 1, 12, 0, 0)
    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: fixed
    try:
        creds = botocore.session.get_session().get_credentials().get_frozen_credentials()
        request = AWSRequest(method="POST", url=endpoint + "/events", data=body,
                             headers={"Content-Type": "application/json", "User-Agent": "x"})
        botocore.auth.SigV4Auth(creds, "personalize", "us-east-1").add_auth(request)
    finally:
        botocore.auth.get_current_datetime = original
    mine = sign_post_json(access_key=creds.access_key, secret_key=creds.secret_key, token=creds.token,
                          region="us-east-1", service="personalize", host=urlsplit(endpoint).netloc,
                          path="/events", body=body, amz_date="20260601T120000Z")
    return bool(mine["Authorization"] == request.headers["Authorization"])


async def _aiohttp_posts(endpoint: str, bodies: list[bytes], concurrency: int) -> float:
    """Client-side CPU per POST of pre-built, pre-signed bodies (µs)."""
    import aiohttp  # noqa: PLC0415

    url = endpoint + "/events"
    headers = {"Content-Type": "application/json", "Authorization": "AWS4-HMAC-SHA256 Credential=x",
               "X-Amz-Date": "20260601T120000Z"}
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def post(body: bytes) -> None:
            async with slots, http.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"local Personalize answered {response.status}")

        await asyncio.gather(*(post(b) for b in bodies[:50]))  # warm the connection pool
        began = time.process_time()
        await asyncio.gather(*(post(b) for b in bodies))
        return (time.process_time() - began) / len(bodies) * 1e6


async def _transport_posts(endpoint: str, bodies: list[bytes], concurrency: int) -> float:
    """The same through the lean client's transport, `worker.ingest.http_transport` (µs per call)."""
    from worker.ingest.http_transport import AiohttpTransport  # noqa: PLC0415

    parts = urlsplit(endpoint)
    transport = AiohttpTransport(f"{parts.scheme}://{parts.netloc}", ssl_context=None, max_connections=concurrency,
                                 connect_timeout_s=5.0, response_timeout_s=30.0)
    await transport.start()
    headers = {"Host": parts.netloc, "Content-Type": "application/json",
               "Authorization": "AWS4-HMAC-SHA256 Credential=x", "X-Amz-Date": "20260601T120000Z"}

    async def post(body: bytes) -> None:
        response = await transport.post("/events", headers, body)
        if response.status != 200:
            raise RuntimeError(f"local Personalize answered {response.status}")

    try:
        await asyncio.gather(*(post(b) for b in bodies[:50]))
        began = time.process_time()
        await asyncio.gather(*(post(b) for b in bodies))
        return (time.process_time() - began) / len(bodies) * 1e6
    finally:
        await transport.close()


async def _pool_posts(endpoint: str, bodies: list[bytes], concurrency: int) -> float:
    """The same through the former hand-written pool, `bench.http1_pool` (µs per call; a baseline)."""
    from bench.http1_pool import Http1Pool  # noqa: PLC0415

    parts = urlsplit(endpoint)
    pool = Http1Pool(host=parts.hostname or "127.0.0.1", port=parts.port or 80, ssl_context=None,
                     max_connections=concurrency, connect_timeout_s=5.0, response_timeout_s=30.0)
    fields = ("Content-Type: application/json\r\nAuthorization: AWS4-HMAC-SHA256 Credential=x\r\n"
              "X-Amz-Date: 20260601T120000Z\r\n")

    async def post(body: bytes) -> None:
        head = f"POST /events HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(body)}\r\n{fields}\r\n"
        response = await pool.send(head.encode("latin-1") + body)
        if response.status != 200:
            raise RuntimeError(f"local Personalize answered {response.status}")

    try:
        await asyncio.gather(*(post(b) for b in bodies[:50]))
        began = time.process_time()
        await asyncio.gather(*(post(b) for b in bodies))
        return (time.process_time() - began) / len(bodies) * 1e6
    finally:
        await pool.close()


async def _aiobotocore_calls(endpoint: str, requests: list[dict[str, Any]], concurrency: int) -> float:
    from aiobotocore.config import AioConfig  # noqa: PLC0415
    from aiobotocore.session import get_session  # noqa: PLC0415

    config = AioConfig(max_pool_connections=concurrency, parameter_validation=False,
                       retries={"total_max_attempts": 1, "mode": "standard"})
    slots = asyncio.Semaphore(concurrency)
    async with get_session().create_client("personalize-events", region_name="us-east-1", endpoint_url=endpoint,
                                           config=config) as client:

        async def call(request: dict[str, Any]) -> None:
            async with slots:
                await client.put_events(**request)

        await asyncio.gather(*(call(r) for r in requests[:50]))
        began = time.process_time()
        await asyncio.gather(*(call(r) for r in requests))
        return (time.process_time() - began) / len(requests) * 1e6


def _kafka_per_record(stack: Stack, count: int) -> float:
    """In-process consumer (the worker's settings) draining a backlog: fetch + parse CPU per record."""
    from kafka import KafkaConsumer  # noqa: PLC0415

    data = stack.backlog(count)
    consumer = KafkaConsumer(data.topic, bootstrap_servers=stack.bootstrap, group_id=f"micro-{uuid.uuid4().hex[:6]}",
                             auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=2000,
                             session_timeout_ms=6000, heartbeat_interval_ms=1000, max_poll_interval_ms=10000)
    try:
        seen = 0
        while seen == 0:
            seen += sum(len(v) for v in consumer.poll(timeout_ms=500).values())
        began = time.process_time()
        while seen < count:
            seen += sum(len(v) for v in consumer.poll(timeout_ms=500).values())
        return (time.process_time() - began) / (count - 2000) * 1e6
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--no-kafka", action="store_true", help="skip the broker-backed fetch measurement")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    os.environ.update({k: v for k, v in aws_env().items() if k.startswith("AWS_")})
    workdir = Path(tempfile.mkdtemp(prefix="clickstream-micro-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    values = _events(args.events)
    decoder = interactions_decoder(TRACKING_ID)
    now = time.time()
    us: dict[str, float] = {}
    for bad in (0.0, 0.05):  # the generator must never be what limits a benchmark
        gen = ClickstreamGenerator(seed=SEED, users=USERS, items=ITEMS, bad_fraction=bad, start_time=time.time())
        events = gen.events(10**9)
        us[f"generate ({bad:.0%} malformed) / event"] = per_call_us(lambda _i, it=events: next(it), args.events)
    us["decode (map + validate) / event"] = per_call_us(
        lambda i: decoder.decode(values[i], SourceRef("t", 0, i), now), len(values))
    decoded = [d for i, v in enumerate(values) if isinstance(d := decoder.decode(v, SourceRef("t", 0, i), now),
                                                              Interaction)]
    batches = _batches(decoded)
    fill = len(decoded) / len(batches)
    target = Target("t", DatasetType.INTERACTIONS, "scope", tracking_id=TRACKING_ID)
    requests = [build_request(target, b) for b in batches]
    bodies = [orjson.dumps(r) for r in requests]
    us["build request + orjson.dumps / call"] = per_call_us(
        lambda i: orjson.dumps(build_request(target, batches[i % len(batches)])), len(batches))

    with Stack(workdir) as stack:
        server = stack.personalize("micro")
        endpoint = server.endpoint_url
        import botocore.auth  # noqa: PLC0415
        import botocore.session  # noqa: PLC0415
        from botocore.awsrequest import AWSRequest  # noqa: PLC0415

        credentials = botocore.session.get_session().get_credentials()

        def botocore_sign(i: int) -> None:
            body = bodies[i % len(bodies)]
            request = AWSRequest(method="POST", url=endpoint + "/events", data=body,
                                 headers={"Content-Type": "application/json", "User-Agent": "x"})
            botocore.auth.SigV4Auth(credentials.get_frozen_credentials(), "personalize", "us-east-1").add_auth(request)
            dict(request.headers.items())

        host = urlsplit(endpoint).netloc

        def reference_sign(i: int) -> None:
            frozen = credentials.get_frozen_credentials()
            amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            sign_post_json(access_key=frozen.access_key, secret_key=frozen.secret_key, token=frozen.token,
                           region="us-east-1", service="personalize", host=host, path="/events",
                           body=bodies[i % len(bodies)], amz_date=amz_date)

        signer_ok = _check_reference_signer(endpoint, bodies[0])
        us["SigV4 via botocore AWSRequest + SigV4Auth / call (lean client before)"] = per_call_us(botocore_sign, 5000)
        us["SigV4 reference signer, cached key / call (bench.sigv4)"] = per_call_us(reference_sign, 5000)
        us["aiohttp POST, client side / call (concurrency 64)"] = asyncio.run(
            _aiohttp_posts(endpoint, bodies[:4000], 64))
        us["aiohttp transport POST (lean client now), client side / call (concurrency 64)"] = asyncio.run(
            _transport_posts(endpoint, bodies[:4000], 64))
        us["http1 pool POST (lean client before), client side / call (concurrency 64)"] = asyncio.run(
            _pool_posts(endpoint, bodies[:4000], 64))
        one = [{**r, "eventList": r["eventList"][:1]} for r in requests[:2000]]
        for validation in (True, False):
            client = _botocore_client(endpoint, validation=validation)
            tag = "on" if validation else "off"
            us[f"botocore put_events, no network, validation {tag}, 1 event / call"] = per_call_us(
                _caller(client, one), 2000)
            us[f"botocore put_events, no network, validation {tag}, {fill:.1f} events / call"] = per_call_us(
                _caller(client, requests), 2000)
        us["aiobotocore put_events over HTTP / call (concurrency 64, validation off)"] = asyncio.run(
            _aiobotocore_calls(endpoint, requests[:3000], 64))
        if not args.no_kafka:
            us["kafka-python fetch + parse / record"] = _kafka_per_record(stack, 60_000)
    result = {"events": len(decoded), "fill_ideal_backlog": round(fill, 2), "reference_signer_matches_botocore":
              signer_ok, "cpu_us": {k: round(v, 1) for k, v in us.items()}}
    result["model"] = _model(us, fill)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "micro.json").write_text(json.dumps(result, indent=1) + "\n")
    print(render(result))
    return 0


def _model(us: dict[str, float], fill: float) -> dict[str, Any]:
    """Events/s one core could reach from the parts alone (no event-loop or batching overhead)."""
    kafka = us.get("kafka-python fetch + parse / record", 0.0)
    per_event = kafka + us["decode (map + validate) / event"]
    build = us["build request + orjson.dumps / call"]
    aiohttp = us["aiohttp POST, client side / call (concurrency 64)"]
    pool = us["http1 pool POST (lean client before), client side / call (concurrency 64)"]
    transport = us["aiohttp transport POST (lean client now), client side / call (concurrency 64)"]
    sign_old = us["SigV4 via botocore AWSRequest + SigV4Auth / call (lean client before)"]
    sign_ref = us["SigV4 reference signer, cached key / call (bench.sigv4)"]
    out: dict[str, Any] = {"per_event_us (kafka + decode)": round(per_event, 1)}
    variants = (("aiohttp + botocore signer", sign_old, aiohttp), ("aiohttp + cached-key signer", sign_ref, aiohttp),
                ("http1 pool + cached-key signer (lean client before)", sign_ref, pool),
                ("aiohttp transport + cached-key signer (lean client now)", sign_ref, transport))
    for label, sign, http in variants:
        per_call = build + sign + http
        for f in (fill, 10.0):
            cost = per_event + per_call / f
            out[f"{label}, fill {f:.1f}: us/event"] = round(cost, 1)
            out[f"{label}, fill {f:.1f}: events/s/core"] = round(1e6 / cost)
    return out


def render(result: dict[str, Any]) -> str:
    lines = [f"CPU per step (µs, time.process_time, {result['events']:,} generated events; batch fill of this "
             f"backlog if every (user, session) run is batched: {result['fill_ideal_backlog']})", ""]
    lines += [f"  {v:9.1f}  {k}" for k, v in result["cpu_us"].items()]
    lines += ["", f"reference signer == botocore signature: {result['reference_signer_matches_botocore']}", "",
              "model (parts only; the event loop, batching and metrics come on top):"]
    lines += [f"  {k}: {v}" for k, v in result["model"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
