"""Delivers batches to Personalize: rate limit, retry, bisect poison, stop on config faults.

Outcome rules (the contract reference, section 4.3 and 12):
- success: every source of the batch is done;
- ThrottlingException / 429 / 5xx / connection errors: jittered exponential backoff until the
  batch's delivery timeout, then dead-letter with stage ``delivery`` (replayable) - never drop;
- InvalidInputException: Personalize rejects the *whole* batch, so bisect until the poison
  record(s) are alone; only they are dead-lettered (stage ``validation``);
- ResourceNotFound / access denied: the configuration is wrong, not the data. Nothing is
  dead-lettered and nothing is completed (offsets stay put); the topic is reported faulted and
  the batch re-probes every ``config_fault_retry_s`` so the worker recovers by itself once the
  operator fixes the tracker, dataset or credentials.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from worker.ingest.grouping import Batch
from worker.ingest.ratelimit import RateLimiterRegistry
from worker.ingest.retry import Backoff, DeliveryDeadline, ErrorKind, classify
from worker.ingest.window import CallWindow
from worker.observe.metrics import Metrics
from worker.records import CatalogUpdate, DatasetType, Interaction, Rejection, SourceRef, Stage

log = structlog.get_logger(__name__)

API_BY_TYPE = {
    DatasetType.INTERACTIONS: "PutEvents",
    DatasetType.ITEMS: "PutItems",
    DatasetType.USERS: "PutUsers",
    DatasetType.ACTIONS: "PutActions",
    DatasetType.ACTION_INTERACTIONS: "PutActionInteractions",
}
#: The client method of each dataset type (boto3's names; the lean client has the same).
METHOD_BY_TYPE = {
    DatasetType.INTERACTIONS: "put_events",
    DatasetType.ITEMS: "put_items",
    DatasetType.USERS: "put_users",
    DatasetType.ACTIONS: "put_actions",
    DatasetType.ACTION_INTERACTIONS: "put_action_interactions",
}
#: The request member that lists the records of a catalog call.
_RECORDS_KEY = {DatasetType.ITEMS: "items", DatasetType.USERS: "users", DatasetType.ACTIONS: "actions"}

#: Exceptions raised by botocore before any HTTP exchange that mean "no usable credentials".
_CREDENTIAL_ERRORS = ("NoCredentialsError", "PartialCredentialsError", "NoRegionError",
                      # A header value with a line break can only come from the credentials (the session token).
                      "InvalidHeaderValueError")


@dataclass(frozen=True, slots=True)
class Target:
    """Where one topic's records go."""

    topic: str
    dataset_type: DatasetType
    scope: str
    tracking_id: str | None = None
    dataset_arn: str | None = None

    @property
    def api(self) -> str:
        return API_BY_TYPE[self.dataset_type]


class DeliveryListener(Protocol):
    """What the sender reports; implemented by the pipeline."""

    def delivered(self, target: Target, batch: Batch[Any, Any]) -> None: ...

    def dead_letter(self, target: Target, sources: list[SourceRef], rejection: Rejection) -> None: ...

    def config_fault(self, target: Target, message: str) -> None: ...

    def config_recovered(self, target: Target) -> None: ...


def batch_identities(target: Target, batch: Batch[Any, Any]) -> tuple[str, ...]:
    """The user and session IDs a batch carries: scrubbed from log lines that quote the service."""
    found: list[str] = []
    for payload in batch.payloads():
        if isinstance(payload, Interaction):
            found.extend(i for i in (payload.user_id, payload.session_id) if i)
        elif target.dataset_type is DatasetType.USERS and isinstance(payload, CatalogUpdate):
            found.append(payload.entity_id)
    return tuple(dict.fromkeys(found))


def build_request(target: Target, batch: Batch[Any, Any]) -> dict[str, Any]:
    """The Put* request for a batch; PutEvents' user and session are request-level.

    PutActionInteractions repeats userId and sessionId in every interaction (the batch
    still holds one session's: it is grouped like events).
    """
    payloads = batch.payloads()
    if target.dataset_type is DatasetType.ACTION_INTERACTIONS:
        return {"trackingId": target.tracking_id, "actionInteractions": [p.event for p in payloads]}
    if target.dataset_type is DatasetType.INTERACTIONS:
        first: Interaction = payloads[0]
        request: dict[str, Any] = {
            "trackingId": target.tracking_id,
            "sessionId": first.session_id,
            "eventList": [p.event for p in payloads],
        }
        if first.user_id is not None:
            request["userId"] = first.user_id
        return request
    records = [p.record for p in payloads if isinstance(p, CatalogUpdate)]
    return {"datasetArn": target.dataset_arn, _RECORDS_KEY[target.dataset_type]: records}


def error_info(exc: BaseException) -> tuple[str | None, int | None, str]:
    """(error code, HTTP status, message) from a client failure; (None, None) = network (any OSError)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        error = response.get("Error", {})
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return error.get("Code"), status, str(error.get("Message") or exc)
    name = type(exc).__name__
    if name in _CREDENTIAL_ERRORS:
        return "MissingAuthenticationToken", None, str(exc)
    if name == "ParamValidationError":
        return "ValidationException", 400, str(exc)
    return None, None, f"{name}: {exc}"


class Sender:
    """Sends batches through one Personalize Events client (lean or aiobotocore); safe for many concurrent batches."""

    def __init__(
        self,
        client: Any,
        limiters: RateLimiterRegistry,
        metrics: Metrics,
        *,
        max_concurrency: int,
        delivery_timeout_s: float,
        config_fault_retry_s: float,
        window: CallWindow | None = None,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._limiters = limiters
        self._metrics = metrics
        self.window = window or CallWindow(max_concurrency)
        self._timeout_s = delivery_timeout_s
        self._fault_retry_s = config_fault_retry_s
        self._backoff = backoff or Backoff()
        self._rng = rng or random.Random()
        self._clock = clock
        self._faulted: set[str] = set()

    async def deliver(self, target: Target, batch: Batch[Any, Any], listener: DeliveryListener, *,
                      prepaid: bool = False) -> None:
        """Deliver one batch to completion: delivered, dead-lettered, or (config fault) parked.

        `prepaid`: the caller holds the first call's slot of `window` and its token (the
        pipeline's lane takes both before it chooses the batch, so the batch kept filling while
        it waited). Retries, and the halves of a bisected batch, wait for their turn from the
        same lane (`Limiter.turn`), so every call of a scope goes out at the rate of the moment.
        """
        # The budget counts from when the batch was ready to go (its linger started), not from its
        # first call: while the quota is the limit a batch may wait in its lane for a token, and
        # in an outage (every call failing, the rate at its floor) waiting batches must still be
        # dead-lettered within the budget instead of queueing behind each other's retries.
        now = self._clock()
        deadline = DeliveryDeadline(min(batch.opened_at, now), self._timeout_s)
        attempt = 0
        limiter = self._limiters.get(target.scope, target.api)
        self._metrics.batch_linger.labels(api=target.api).observe(max(0.0, self._clock() - batch.opened_at))
        paid = prepaid
        while True:
            if not paid and not await limiter.turn():  # the lane hands out token and slot, in order
                await self.window.take()
            paid = False
            sent_at = self._clock()
            try:
                await self._call(target, batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is classified below
                code, status, message = error_info(exc)
                kind = classify(code, status)
                self._metrics.put_requests.labels(api=target.api, outcome=_OUTCOME[kind]).inc()
                if kind is ErrorKind.POISON:
                    await self._isolate_poison(target, batch, code, message, listener)
                    return
                if kind is ErrorKind.CONFIG_FAULT:
                    await self._park_on_config_fault(target, batch, code, message, listener)
                    deadline = DeliveryDeadline(self._clock(), self._timeout_s)
                    attempt = 0
                    continue
                if kind is ErrorKind.THROTTLED or (status is not None and status >= 500):
                    # A failing service is slowed down like a throttling one: thousands of batches
                    # each backing off on their own would still hammer it (AIMD on congestion).
                    limiter.on_throttled(sent_at=sent_at)
                self._metrics.delivery_retries.labels(api=target.api, reason=code or "connection").inc()
                pause = deadline.next_sleep(self._clock(), self._backoff.delay(attempt, kind, self._rng))
                if pause is None:
                    self._give_up(target, batch, code, message, listener)
                    return
                await asyncio.sleep(pause)
                attempt += 1
                continue
            self._metrics.put_requests.labels(api=target.api, outcome="success").inc()
            if target.topic in self._faulted:
                self._faulted.discard(target.topic)
                listener.config_recovered(target)
            listener.delivered(target, batch)
            return

    async def _call(self, target: Target, batch: Batch[Any, Any]) -> None:
        """One call in the slot the caller holds; the slot is given back when it ends, however it ends."""
        started = time.perf_counter()
        try:
            request = build_request(target, batch)
            await getattr(self._client, METHOD_BY_TYPE[target.dataset_type])(**request)
        finally:
            self.window.give_back()
            self._metrics.put_latency.labels(api=target.api).observe(time.perf_counter() - started)
        self._metrics.events_per_call.labels(api=target.api).observe(len(batch.entries))

    async def _isolate_poison(
        self, target: Target, batch: Batch[Any, Any], code: str | None, message: str, listener: DeliveryListener
    ) -> None:
        if len(batch.entries) > 1:
            left, right = batch.split()
            await asyncio.gather(self.deliver(target, left, listener, prepaid=False),
                                 self.deliver(target, right, listener, prepaid=False))
            return
        rejection = Rejection(
            stage=Stage.VALIDATION,
            rule="rejected_by_personalize",
            message=f"{target.api} rejected the record: {code}: {message}",
            exception_class=f"personalize.{code or 'InvalidInputException'}",
        )
        log.warning("record rejected by personalize", topic=target.topic, api=target.api, error=message,
                    sources=[(s.partition, s.offset) for s in batch.sources()],
                    scrub=batch_identities(target, batch))  # AWS error messages may quote the request
        listener.dead_letter(target, batch.sources(), rejection)

    async def _park_on_config_fault(
        self, target: Target, batch: Batch[Any, Any], code: str | None, message: str, listener: DeliveryListener
    ) -> None:
        if target.topic not in self._faulted:
            self._faulted.add(target.topic)
            setting = "tracking_id" if target.dataset_type.is_event_stream else "dataset_arn"
            log.error(
                "configuration fault: stopping this topic until it is fixed; nothing is dead-lettered",
                topic=target.topic, api=target.api, error_code=code, error=message,
                setting=f"topics[{target.topic}].{setting} or the AWS credentials/permissions",
                scrub=batch_identities(target, batch),
            )
            listener.config_fault(target, f"{code}: {message}")
        await asyncio.sleep(self._fault_retry_s)

    def _give_up(
        self, target: Target, batch: Batch[Any, Any], code: str | None, message: str, listener: DeliveryListener
    ) -> None:
        rejection = Rejection(
            stage=Stage.DELIVERY,
            rule="delivery_timeout",
            message=f"not delivered within {self._timeout_s:g}s; last error {code or 'connection'}: {message}",
            exception_class=f"personalize.{code or 'ConnectionError'}",
        )
        log.error("delivery timed out; dead-lettering for replay", topic=target.topic, api=target.api,
                  events=len(batch.sources()), last_error=message, scrub=batch_identities(target, batch))
        listener.dead_letter(target, batch.sources(), rejection)


_OUTCOME = {
    ErrorKind.THROTTLED: "throttled",
    ErrorKind.RETRYABLE: "retryable_error",
    ErrorKind.POISON: "invalid",
    ErrorKind.CONFIG_FAULT: "config_fault",
}
