"""Proposed worker optimisations, applied by monkeypatching for a clearly labelled benchmark variant.

The lead owns the worker code; these patches exist so each recommendation in the
benchmark report is *measured on the real worker* in the same session as the shipped
code, not only estimated from micro-benchmarks. Each is small and keeps behaviour:

``signer``   sign with `bench.sigv4` (derived key cached per day; checked byte-equal to
             botocore's `SigV4Auth` in the smoke test) instead of building an `AWSRequest`
             (email.message headers, URL re-parsing) and deriving the key on every call.
``timeout``  one ``ClientTimeout(total=connect + read)`` per request instead of
             ``sock_connect``/``sock_read`` timers (aiohttp arms a timer on every read).
``acquire``  skip ``await asyncio.sleep(0)`` when the rate limiter has a token (no extra
             event-loop round per call).
``labels``   resolve Prometheus label children once per label set (``labels()`` hashes and
             locks on every call; the sender and pipeline call it ~5 times per request).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from bench.sigv4 import sign_post_json

PATCHES = ("signer", "timeout", "acquire", "labels")

# The assignments below replace methods on purpose (that is what a patch is).


def _signer() -> bool:
    from worker.ingest import lean_client  # noqa: PLC0415 - the module may not exist in other builds

    cls = lean_client.LeanEventsClient

    def signed_headers(self: Any, url: str, body: bytes) -> dict[str, str]:
        frozen = self._credentials.get_frozen_credentials()
        parts = urlsplit(url)
        headers = sign_post_json(
            access_key=frozen.access_key, secret_key=frozen.secret_key, token=frozen.token, region=self.region,
            service=lean_client.SIGNING_NAME, host=parts.netloc, path=parts.path, body=body,
            amz_date=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
        )
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = lean_client.USER_AGENT
        return headers

    cls._signed_headers = signed_headers  # type: ignore[method-assign]
    return True


def _timeout() -> bool:
    import aiohttp  # noqa: PLC0415

    from worker.ingest import lean_client  # noqa: PLC0415

    cls = lean_client.LeanEventsClient
    original_init = cls.__init__

    @functools.wraps(original_init)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        total = (kwargs.get("connect_timeout_s") or 5.0) + (kwargs.get("read_timeout_s") or 10.0)
        self._timeout = aiohttp.ClientTimeout(total=total)

    cls.__init__ = init  # type: ignore[method-assign]
    return True


def _acquire() -> bool:
    from worker.ingest.ratelimit import TokenBucket  # noqa: PLC0415

    async def acquire(self: Any) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)

    TokenBucket.acquire = acquire  # type: ignore[method-assign]
    return True


def _labels() -> bool:
    from prometheus_client.metrics import MetricWrapperBase  # noqa: PLC0415

    original: Callable[..., Any] = MetricWrapperBase.labels

    def labels(self: Any, *values: Any, **kw: Any) -> Any:
        cache = self.__dict__.setdefault("_bench_children", {})
        key = (values, tuple(sorted(kw.items())))
        child = cache.get(key)
        if child is None:
            child = cache[key] = original(self, *values, **kw)
        return child

    MetricWrapperBase.labels = labels  # type: ignore[method-assign]
    return True


_APPLY: dict[str, Callable[[], bool]] = {"signer": _signer, "timeout": _timeout, "acquire": _acquire,
                                         "labels": _labels}


def apply(names: list[str]) -> list[str]:
    """Apply the named patches; returns those applied (a patch whose target is missing is skipped)."""
    applied = []
    for name in names:
        try:
            if _APPLY[name]():
                applied.append(name)
        except (ImportError, AttributeError) as exc:
            print(f"bench.patches: {name} not applied: {exc}")
    return applied
