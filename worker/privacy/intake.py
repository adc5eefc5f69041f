"""The worker's side of privacy: deletion requests in, forgotten users' records held back.

`PrivacyGate` sits in the pipeline, on the event loop:

* a record of ``privacy.deletion_topic`` is parsed (`RequestParser`); a bad one goes to
  ``<deletion_topic>.dlq`` with the rule, a good one is written to the compacted state
  topic (`with_request`) and is done - its offset committable - only once that write is
  acknowledged. A failed write is retried with backoff, the record staying uncommitted;
* every decoded record is checked before it is queued: a user whose deletion was requested
  (in the followed ledger, or recorded by this process a moment ago and not yet read back)
  is `suppressed` - dead-lettered with stage ``suppressed`` or dropped and counted, as
  ``privacy.suppressed`` says. Either way the record is done at once: suppression never
  holds a partition's commits.

Users are matched by their keyed digest (`PrivacyState.digest`); nothing here logs a user ID.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import structlog

from worker.privacy.ledger import with_request
from worker.privacy.requests import DeletionRequest, RequestParser
from worker.records import CatalogUpdate, RawRecord, Rejection, Stage

if TYPE_CHECKING:
    from worker.privacy.service import PrivacyState

log = structlog.get_logger(__name__)

#: Waits between attempts to record a request while the state topic refuses writes.
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 30.0

SUPPRESSED = Rejection(Stage.SUPPRESSED, "user_deletion_requested",
                       "the user's deletion was requested (privacy.deletion_topic): not sent to Personalize")


def user_of(decoded: Any) -> str | None:
    """The user a decoded record belongs to: an interaction's (or action interaction's) userId,
    a users-dataset record's ID; None for items, actions and anonymous events."""
    if isinstance(decoded, CatalogUpdate):
        user = decoded.record.get("userId")  # a users-dataset record; items and actions have none
        return user if isinstance(user, str) else None
    user = getattr(decoded, "user_id", None)
    return user if isinstance(user, str) else None


@dataclass(frozen=True)
class _Write:
    """One request's write to the state topic, retried until acknowledged."""

    loop: asyncio.AbstractEventLoop
    entry: Any
    digest: str
    done: Callable[[], None]
    wait_s: float


class PrivacyGate:
    """Deletion-request intake and suppression for one pipeline (see the module docstring)."""

    def __init__(self, state: PrivacyState, *, clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.topic = state.settings.deletion_topic
        self.dead_letter_topic = f"{self.topic}.dlq"
        self.drop = state.settings.suppressed == "drop"
        self._parser = RequestParser(state.settings.mapping)
        self._clock = clock
        self._recorded: dict[str, float] = {}  # digests this process wrote and may not have read back yet
        self._checked_at = -float("inf")

    # -- suppression -----------------------------------------------------------------------------

    def suppressed(self, decoded: Any) -> bool:
        user = user_of(decoded)
        if user is None:
            return False
        if self._recorded:
            self.forget_read_back()
            if self.state.digest(user) in self._recorded:
                return True
        return self.state.suppressed(user)

    def count(self, topic: str) -> None:
        self.state.metrics.suppressed.labels(topic=topic, action="dropped" if self.drop else "dead_lettered").inc()

    # -- intake ----------------------------------------------------------------------------------

    def parse(self, raw: RawRecord) -> DeletionRequest | Rejection:
        result = self._parser.parse(raw.value, raw.timestamp_ms)
        if isinstance(result, Rejection):
            self.state.metrics.requests.labels(outcome="rejected").inc()
        return result

    def record(self, request: DeletionRequest, done: Callable[[], None]) -> None:
        """Write the request to the state topic; `done` runs (on the loop) once it is acknowledged,
        or at once for a user already recorded. Call on the event loop."""
        loop = asyncio.get_running_loop()
        digest = self.state.digest(request.user_id)
        entry = with_request(self.state.ledger, request.user_id, digest, request.requested_at, self._clock())
        if entry is None or digest in self._recorded:
            self.state.metrics.requests.labels(outcome="repeated").inc()
            done()
            return
        self._recorded[digest] = self._clock()
        self._send(_Write(loop, entry, digest, done, RETRY_INITIAL_S))

    def _send(self, write: _Write) -> None:
        def on_done(error: BaseException | None) -> None:  # the producer's I/O thread
            write.loop.call_soon_threadsafe(self._sent, write, error)

        try:
            self.state.writer.send(write.entry, on_done)
        except Exception as exc:  # noqa: BLE001 - a producer that cannot even queue: retried like a failed write
            self._sent(write, exc)

    def _sent(self, write: _Write, error: BaseException | None) -> None:
        if error is None:
            self.state.metrics.requests.labels(outcome="recorded").inc()
            log.info("deletion request recorded", user_digest=write.digest[:12],
                     state_topic=self.state.settings.state_topic)
            write.done()
            return
        log.warning("could not record a deletion request; retrying (the request stays uncommitted)",
                    error_class=type(error).__name__, retry_in_s=write.wait_s,
                    state_topic=self.state.settings.state_topic)
        write.loop.call_later(write.wait_s, self._send, replace(write, wait_s=min(write.wait_s * 2, RETRY_MAX_S)))

    def forget_read_back(self) -> None:
        """Drop the local entries the followed ledger now holds (from then on the ledger, with its
        expiry, decides). Checked at most once a second while any entry is waiting."""
        now = self._clock()
        if now - self._checked_at < 1.0:
            return
        self._checked_at = now
        users = self.state.ledger.users
        for digest in [d for d in self._recorded if d in users]:
            del self._recorded[digest]
