"""Background work of the local Personalize: restart-safe asyncio drivers and thread offload.

Every resource that changes status on its own (a dataset group becoming ACTIVE, a
training, a campaign update) is moved by a *driver* coroutine that reads the persisted
status, sleeps until the current step is due, and writes the next status. Because a
driver starts from whatever is persisted, the server simply starts one driver per
non-terminal resource at start-up and a restart resumes every resource where it stood.

CPU-bound work (training, CSV import) runs in a daemon thread per job and is awaited
through a future: a daemon thread never blocks the process from exiting on SIGTERM (a
`ThreadPoolExecutor`'s workers would be joined at exit), and an interrupted job is
simply re-run after the restart. Trainings take turns (`training_slot`): two numpy jobs
on a 2-core machine would only slow each other and the HTTP server.

`sleep` can be cut short by `wake` (StopSolutionVersionCreation uses it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Jobs:
    """Tracks driver tasks so shutdown can cancel them; offloads blocking work to threads."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._wakeups: dict[str, asyncio.Event] = {}
        self._slot: asyncio.Semaphore | None = None

    @property
    def training_slot(self) -> asyncio.Semaphore:
        if self._slot is None:
            self._slot = asyncio.Semaphore(1)
        return self._slot

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` in the background; an exception is logged, never lost."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background job %s failed", task.get_name(), exc_info=task.exception())

    def wake(self, key: str) -> None:
        event = self._wakeups.get(key)
        if event is not None:
            event.set()

    async def sleep(self, key: str, seconds: float) -> bool:
        """Sleep up to `seconds`; True when `wake(key)` cut it short."""
        event = self._wakeups.setdefault(key, asyncio.Event())
        if event.is_set():
            event.clear()
            return True
        if seconds <= 0:
            return False
        try:
            await asyncio.wait_for(event.wait(), timeout=seconds)
        except TimeoutError:
            return False
        event.clear()
        return True

    async def in_thread(self, name: str, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a new daemon thread and await its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def deliver(setter: Callable[[Any], None], value: Any) -> None:
            if not future.done():
                setter(value)

        def run() -> None:
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                outcome: tuple[Callable[[Any], None], Any] = (future.set_exception, exc)
            else:
                outcome = (future.set_result, result)
            with contextlib.suppress(RuntimeError):  # the loop closed: the server is stopping
                loop.call_soon_threadsafe(deliver, *outcome)

        threading.Thread(target=run, name=name, daemon=True).start()
        return await future

    async def close(self) -> None:
        """Cancel every driver and wait for them to unwind (threads are left to die with the process)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
