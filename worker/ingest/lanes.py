"""Per (dataset group, API) sending: a send queue, its rate limiter, and one timer.

Each lane sends its batches at its limiter's pace, choosing each batch only when the
token for it is there (`send_queue`), so batches waiting for the quota keep filling. A
lane costs nothing while idle and needs no task of its own: one asyncio timer handle,
armed for the next event that matters (a linger ending, a token becoming due). One process
serving 50 topics mapped to 50 dataset groups has 50 lanes with independent batching and
rate limits, and its per-batch cost does not depend on how many lanes exist.

Dispatching happens only in timer callbacks, never inside `add`: records decoded in one
loop turn all reach their batches before any of them is sent (with ``linger_ms: 0`` too).
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Callable
from typing import Any

from worker.ingest.grouping import Batch
from worker.ingest.quota_share import LaneKey
from worker.ingest.ratelimit import Limiter
from worker.ingest.send_queue import SendQueue
from worker.ingest.window import CallWindow
from worker.records import SourceRef

#: Starts the delivery of one batch (the pipeline's); returns its task.
Dispatch = Callable[[Batch[Any, Any]], "asyncio.Task[None]"]


class Lane:
    """One (scope, API): batches are taken from `queue` one slot of `window` and one token at a
    time, and dispatched; the delivery gives the slot back when its call ends.

    Without a `limiter` and `window` (tests that check batching alone) batches go when due.
    """

    def __init__(self, key: LaneKey, queue: SendQueue[Any, Any], limiter: Limiter | None, dispatch: Dispatch, *,
                 window: CallWindow | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.key = key
        self._queue = queue
        self._limiter = limiter
        self._window = window
        self._dispatch = dispatch
        self._clock = clock
        self._handle: asyncio.TimerHandle | None = None
        self._wake_at = math.inf
        self._token = False  # a token is reserved; the timer that fires at its time sends a batch
        if limiter is not None:
            limiter.attach(self._kick)  # retries of this scope wait for their turn here

    def add(self, key: Any, payload: Any, source: SourceRef, now: float, *, coalesce_id: str | None = None,
            size: int = 0) -> None:
        full = self._queue.add(key, payload, source, now, coalesce_id=coalesce_id, size=size)
        if self._token:
            return  # the reserved token's timer sends the best batch there is then
        if full:
            self._arm(now, now)
        elif self._handle is None:
            at = self._queue.ready_at()
            if at is not None:
                self._arm(at, now)

    def flush(self) -> None:
        """Shutdown: everything is due now (still paced)."""
        self._queue.flush()
        if not self._token:
            self._arm(-math.inf, self._clock())

    def close(self) -> None:
        """Stop the timer (shutdown): what is left stays uncommitted and is redelivered."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self._wake_at, self._token = None, math.inf, False

    def __len__(self) -> int:
        return len(self._queue)

    # -- the timer -------------------------------------------------------------------------

    def _arm(self, at: float, now: float) -> None:
        """Make sure a wake-up happens by `at` (an earlier one already armed is kept)."""
        if self._handle is not None:
            if self._wake_at <= at:
                return
            self._handle.cancel()
        self._wake_at = at
        self._handle = asyncio.get_running_loop().call_at(
            asyncio.get_running_loop().time() + max(0.0, at - now), self._wake)

    def _wake(self) -> None:
        self._handle, self._wake_at = None, math.inf
        now = self._clock()
        if self._token:
            self._token = False
            if self._window is not None and not self._window.try_take():
                self._refund(now)  # the slot went to a retry meanwhile: wait for the next one
                self._window.notify_when_free(self._on_slot)
                return
            if not self._grant_retry():
                batch = self._queue.take(now)
                if batch is None:  # nothing left (taken by a shutdown flush meanwhile)
                    self._refund(now)
                    self._give_back()
                else:
                    self._send(batch)
        self._pump(now)

    def _kick(self) -> None:
        """A retry waits for its turn (`Limiter.turn`)."""
        if not self._token:
            self._arm(-math.inf, self._clock())

    def _grant_retry(self) -> bool:
        """Give the slot and token in hand to a waiting retry (before any new batch: it waited longer)."""
        return self._limiter is not None and self._limiter.grant()

    def _ready_at(self) -> float | None:
        if self._limiter is not None and self._limiter.waiting():
            return -math.inf
        return self._queue.ready_at()

    def _on_slot(self) -> None:
        """The window has a free slot again (called synchronously by `CallWindow.give_back`)."""
        if not self._token:
            self._pump(self._clock())

    def _pump(self, now: float) -> None:
        """Send what is ready while slots and tokens are free; then arm the timer for what comes next."""
        while True:
            at = self._ready_at()
            if at is None:
                return
            if at > now:
                self._arm(at, now)
                return
            if self._window is not None and not self._window.free():
                # Held up by the calls in flight, not by the rate: no token is taken (see `window`).
                self._window.notify_when_free(self._on_slot)
                return
            if self._limiter is not None:
                delay = self._limiter.reserve(now)
                if delay > 0:
                    self._token = True
                    self._arm(now + delay, now)
                    return
            if self._window is not None:
                self._window.try_take()  # free, and nothing ran since the check
            if self._grant_retry():
                continue
            batch = self._queue.take(now)
            if batch is None:  # ready_at and take disagree only for a refunded token
                self._refund(now)
                self._give_back()
                return
            self._send(batch)

    def _refund(self, now: float) -> None:
        if self._limiter is not None:
            self._limiter.refund(now)

    def _give_back(self) -> None:
        if self._window is not None:
            self._window.give_back()

    def _send(self, batch: Batch[Any, Any]) -> None:
        task = self._dispatch(batch)
        if self._queue.ordered:
            task.add_done_callback(functools.partial(self._finished, batch.key))

    def _finished(self, key: Any, _task: asyncio.Task[None]) -> None:
        """Ordered: a batch's delivery ended, so its key's next batch may go."""
        self._queue.done(key)
        if not self._token:
            self._arm(-math.inf, self._clock())
