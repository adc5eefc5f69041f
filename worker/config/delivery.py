"""How records reach Personalize: the client, batching, quotas, retries, validation bounds, replay."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    SecretStr,
)

from worker.config.base import _Section


class PersonalizeSettings(_Section):
    """How the worker reaches Personalize. Endpoints default to botocore's resolution."""

    region: str | None = Field(None, description="Default: AWS_REGION / AWS_DEFAULT_REGION.")
    events_endpoint_url: str | None = Field(
        None, description="Override; AWS_ENDPOINT_URL_PERSONALIZE_EVENTS works too (read by botocore)."
    )
    client: Literal["lean", "botocore"] = Field(
        "lean",
        description="lean: botocore credentials (refreshed off the event loop) + SigV4 over a pre-serialised "
        "body on aiohttp's keep-alive pool (several times less CPU per call; no HTTP proxy support); botocore: "
        "aiobotocore's full client (honours proxy settings).",
    )
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(
        10.0, gt=0,
        description="lean: longest wait from sending a call to its complete response; botocore: socket read "
        "timeout. A timed-out call is retried (backoff) until delivery_timeout_s.",
    )
    allow_insecure_http: bool = Field(
        False,
        description="Accept a plain http:// Personalize endpoint on a host other than this machine (e.g. a "
        "compose network's local stand-in). Off: such an endpoint is a start-up error, since signed requests "
        "carrying user IDs would cross the network unencrypted.",
    )
    parameter_validation: bool = Field(
        False,
        description="botocore client-side validation; off because the worker validates every record "
        "itself (stricter: maxima and patterns) and it costs CPU on every call.",
    )

#: Delivery settings that moved to `quotas` (still read, with a warning; see `WorkerSettings`).
DEPRECATED_DELIVERY_RATES = ("put_events_rps", "put_items_rps", "put_users_rps")


class DeliverySettings(_Section):
    """Batching, concurrency, retries and backpressure (quotas: the `quotas` section)."""

    linger_ms: float = Field(50.0, ge=0, description="How long a partial batch waits for more events.")
    max_batch_wait_ms: float = Field(
        1000.0, gt=0,
        description="While the quota is the limit a batch keeps filling until a token is there for it, and full "
        "batches go first; one that has waited this long goes ahead of them (a latency bound under throttling).",
    )
    max_concurrency: int = Field(64, ge=1, description="Concurrent Put* calls per worker process.")
    put_events_rps: float = Field(
        1000.0, gt=0, description="Deprecated: read as quotas.default.put_events_rps, the whole quota of each "
        "dataset group that the replicas share; set that instead (and to the whole quota, not quota / replicas).",
    )
    put_items_rps: float = Field(10.0, gt=0, description="Deprecated: read as quotas.default.put_items_rps.")
    put_users_rps: float = Field(10.0, gt=0, description="Deprecated: read as quotas.default.put_users_rps.")
    delivery_timeout_s: float = Field(
        300.0, gt=0, description="Retry budget per batch, counted from when it was ready to send (waiting "
        "for a token included); after it its records go to the DLQ (stage delivery)."
    )
    config_fault_retry_s: float = Field(
        30.0, gt=0, description="While a topic is stopped on a configuration fault, re-probe this often."
    )
    max_inflight_events: int = Field(20_000, ge=10, description="Pause fetching above this many events.")
    max_inflight_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    drain_timeout_s: float = Field(30.0, gt=0, description="SIGTERM: time to finish in-flight work.")

class ValidationSettings(_Section):
    """Sanity window for timestamps and the raw size guard."""

    max_past_days: float = Field(730.0, gt=0, description="Reject events older than this.")
    max_future_seconds: float = Field(86_400.0, ge=0, description="Reject events further in the future.")
    max_record_bytes: int = Field(1_000_000, ge=1024, description="Reject larger raw values unparsed.")

class DlqSettings(_Section):
    """Dead-letter replay."""

    replay_origin_key: SecretStr | None = Field(
        None,
        description="Key shared by `dlq replay` and the worker: replayed records carry an HMAC of their "
        "first position, and only then keep the event ID derived from it. Without it a replayed event "
        "without its own ID gets a new ID (a record that had in fact reached Personalize is stored twice).",
    )
