"""How many Put* calls one worker process has in flight: `delivery.max_concurrency`, shared by all lanes.

A lane takes a slot before it takes a token and chooses a batch, for two reasons. A batch that
waits for a free slot keeps filling like one that waits for a token. And a lane whose calls are
held up by the window (a slow service, a lagging local stand-in) is not limited by its rate:
if it waited for tokens meanwhile, the rate controller would read that as a backlog at its rate
and probe upward for quota it cannot use anyway, then send it all at once when the service
catches up.

Lanes ask without waiting (`try_take`) and ask to be called back (`notify_when_free`) when
none is free; retries of a failed call wait (`take`). A returned slot goes to a waiting retry
first (it has waited longest), else back to the pool, and the waiting lanes are called back in
turn (synchronously) while a slot is free.
Not thread-safe: it belongs to the event loop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class CallWindow:
    """At most `size` calls in flight at once."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"the window must hold at least one call, got {size}")
        self.size = size
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._lanes: deque[Callable[[], None]] = deque()

    @property
    def in_flight(self) -> int:
        return self.size - self._free

    def free(self) -> bool:
        return self._free > 0

    def try_take(self) -> bool:
        """Take a slot if one is free (no waiting)."""
        if self._free <= 0:
            return False
        self._free -= 1
        return True

    async def take(self) -> None:
        """Wait for a slot (a retry)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.give_back()  # the slot was handed over as we were cancelled: pass it on
            else:
                self._waiters.remove(future)
            raise

    def give_back(self) -> None:
        """A call ended: its slot goes to a waiting retry, else to the pool (and a waiting lane is told)."""
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)
                return
        self._free = min(self.size, self._free + 1)
        # Waiting lanes are called in turn while a slot is free: a lane with nothing to send
        # leaves the slot to the next (a lane that finds none free asks again).
        for _ in range(len(self._lanes)):
            if self._free <= 0:
                return
            self._lanes.popleft()()

    def notify_when_free(self, callback: Callable[[], None]) -> None:
        """Call `callback` (once) when a slot is returned to the pool."""
        if callback not in self._lanes:
            self._lanes.append(callback)
