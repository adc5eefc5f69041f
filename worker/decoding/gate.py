"""A topic's schema gate (I/O edge): hold records while their schema is fetched.

The choice, made explicit: records are *held and decoded again*, not rewound. When a
record names a schema that is not cached, the gate takes it, and every later record of the
topic (so items and users keep their Kafka order), and fetches the schema:

1. found: cached; the held records go back to the front of the pipeline's queue in order
   (`HoldListener.requeue`) and are decoded as if they had just arrived;
2. not found (the registry says so) or unusable: remembered; the records are decoded again
   and dead-lettered with stage `deserialization`, the rule and the schema ID;
3. the registry is unreachable, answers 5xx, refuses the credentials, or answers nonsense:
   a transient fault. The topic is reported faulted (`config_fault`: its partitions are
   paused and readiness fails), the fetch is retried with exponential backoff up to
   `retry_max_s`, and nothing is dead-lettered or committed: the held records stay in
   flight (uncommitted), so a crash or rebalance redelivers them. The first successful
   answer clears the fault and resumes the topic.

Held records count as in flight, so the consumer's backpressure bounds how many wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from worker.decoding.avro import SchemaParseError
from worker.decoding.outcomes import HoldListener, SchemaRef
from worker.decoding.payload import SchemaCache
from worker.decoding.sources import RegistryUnavailableError, SchemaNotFoundError, SchemaSource
from worker.records import RawRecord

log = structlog.get_logger(__name__)

FIRST_RETRY_S = 0.5


class SchemaGate:
    """Holds one topic's records while a schema is fetched; see the module docstring."""

    def __init__(self, target: Any, source: SchemaSource, cache: SchemaCache, *, retry_max_s: float = 30.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.target = target
        self._source = source
        self._cache = cache
        self._retry_max_s = retry_max_s
        self._sleep = sleep
        self._held: list[RawRecord] = []
        self._wanted: SchemaRef | None = None
        self._task: asyncio.Task[None] | None = None
        self.fetches = 0
        self.faulted = False

    @property
    def holding(self) -> bool:
        return bool(self._held)

    @property
    def held(self) -> int:
        return len(self._held)

    def hold(self, raw: RawRecord, ref: SchemaRef | None, listener: HoldListener) -> None:
        """Keep `raw` until the schema is resolved (`ref` None: it waits behind earlier records)."""
        self._held.append(raw)
        if self._wanted is None and ref is not None:
            self._wanted = ref
        if self._task is None and self._wanted is not None:
            self._task = asyncio.get_running_loop().create_task(
                self._resolve(self._wanted, listener), name=f"schema-{self._wanted.key}")

    async def _resolve(self, ref: SchemaRef, listener: HoldListener) -> None:
        try:
            await self._fetch(ref, listener)
        except asyncio.CancelledError:  # shutdown: the held records stay uncommitted and are redelivered
            self._task = self._wanted = None
            raise
        except Exception:  # a bug past the fetch (fault reporting): never strand the held records
            log.exception("schema gate failed; decoding the held records again", topic=self.target.topic)
            await self._sleep(self._retry_max_s)  # not a hot loop if the bug repeats
        self._task = self._wanted = None
        if self.faulted:
            self.faulted = False
            log.info("schema registry answers again; resuming the topic", topic=self.target.topic)
            listener.config_recovered(self.target)
        held, self._held = self._held, []
        listener.requeue(held)

    async def _fetch(self, ref: SchemaRef, listener: HoldListener) -> None:
        delay = FIRST_RETRY_S
        while self._cache.get(ref) is None:
            self.fetches += 1
            try:
                self._cache.put(ref, await self._source.fetch(ref))
                log.info("schema fetched", topic=self.target.topic, schema=ref.describe(),
                         source=self._source.describe())
            except SchemaNotFoundError as exc:
                self._cache.not_found(ref, str(exc))
                log.warning("schema not found; records naming it are dead-lettered", topic=self.target.topic,
                            schema=ref.describe(), error=str(exc))
            except SchemaParseError as exc:
                self._cache.unusable(ref, f"{ref.describe()} cannot be used: {exc}")
                log.error("schema cannot be used; records naming it are dead-lettered", topic=self.target.topic,
                          schema=ref.describe(), error=str(exc))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - RegistryUnavailableError, or a bug: never dead-letter for it
                message = str(exc) if isinstance(exc, RegistryUnavailableError) else f"{type(exc).__name__}: {exc}"
                self._fault(listener, ref, message, delay)
                await self._sleep(delay)
                delay = min(delay * 2, self._retry_max_s)

    def _fault(self, listener: HoldListener, ref: SchemaRef, message: str, delay: float) -> None:
        text = f"schema registry unavailable while fetching {ref.describe()}: {message}"
        if not self.faulted:
            self.faulted = True
            log.error("schema registry unavailable; pausing the topic (records are held, not dead-lettered)",
                      topic=self.target.topic, schema=ref.describe(), error=message, held=len(self._held),
                      retry_in_s=delay)
            listener.config_fault(self.target, text)
        else:
            log.warning("schema registry still unavailable", topic=self.target.topic, schema=ref.describe(),
                        error=message, held=len(self._held), retry_in_s=delay)
