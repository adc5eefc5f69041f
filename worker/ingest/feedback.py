"""The channels between the consumer thread and the asyncio side, built before both.

kafka-python's consumer may be touched from one thread only, so the two sides talk through
two small thread-safe objects instead of holding references to each other:

* `RecordSink` (consumer thread -> event loop): polled records, handed to the pipeline on
  its loop (`LoopSink`);
* `ConsumerFeedback` (event loop and producer threads -> consumer thread): records that are
  done (delivered, or their dead-letter write acknowledged) and topics stopped or resumed on
  a configuration fault; the consumer thread applies them at the top of its loop.

Start-up wiring therefore runs in one direction: feedback, dead-letter writer, pipeline
(given the feedback), sink (given the pipeline), consumer thread (given sink and feedback).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Protocol

from worker.records import RawRecord, SourceRef


class RecordSink(Protocol):
    """Where the consumer thread hands polled records; must be safe to call from that thread."""

    def submit(self, records: list[RawRecord]) -> None: ...


class LoopSink:
    """A `RecordSink` that runs `target(records)` on `loop` (the pipeline's event loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, target: Callable[[list[RawRecord]], None]) -> None:
        self._loop = loop
        self._target = target

    def submit(self, records: list[RawRecord]) -> None:
        self._loop.call_soon_threadsafe(self._target, records)


class ConsumerFeedback:
    """What the consumer thread must act on; written from any thread, read by the consumer thread."""

    def __init__(self) -> None:
        self._completions: queue.SimpleQueue[list[SourceRef]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stopped: frozenset[str] = frozenset()
        self._held: frozenset[str] = frozenset()

    def complete(self, sources: list[SourceRef]) -> None:
        """These records are done: their offsets may be committed once contiguous."""
        self._completions.put(sources)

    def stop_topic(self, topic: str) -> None:
        """Stop fetching `topic` (a configuration fault) until `resume_topic`."""
        with self._lock:
            self._stopped = self._stopped | {topic}

    def resume_topic(self, topic: str) -> None:
        with self._lock:
            self._stopped = self._stopped - {topic}

    def hold_topics(self, topics: frozenset[str]) -> None:
        """Fetch none of `topics` (replacing the previous set): a dataset group paused while its data
        deletion job runs. Unlike a stopped topic this is intended: readiness stays healthy."""
        with self._lock:
            self._held = frozenset(topics)

    # -- the consumer thread's side --------------------------------------------------------------

    def take_completions(self) -> list[list[SourceRef]]:
        """Every completion reported since the last call (non-blocking)."""
        taken: list[list[SourceRef]] = []
        while True:
            try:
                taken.append(self._completions.get_nowait())
            except queue.Empty:
                return taken

    @property
    def stopped_topics(self) -> frozenset[str]:
        return self._stopped

    @property
    def held_topics(self) -> frozenset[str]:
        return self._held
