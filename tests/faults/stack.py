"""One fault scenario's processes: a topic, a local Personalize, workers, generated load.

Load comes from the clickstream generator through `run_generate` (what `clickstream-worker
generate` runs), so it carries realistic sessions and all the generator's malformed kinds.
`run_generate` reports the IDs of the good events the broker acknowledged; the malformed
records themselves are recovered by replaying the generator with the run's seed and start
time (it is deterministic), and the replay is checked against the report, so the audit
knows each bad record's bytes and the rejection (stage, rule) its kind must get.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from clickstream_devkit.generate_cmd import GenerateReport, run_generate
from clickstream_devkit.generator import BAD_KINDS, ClickstreamGenerator
from kafka import KafkaProducer

from tests.faults.audit import AuditRow, BadRecord, FaultReport, Truth, audit
from tests.helpers import SENTINEL_USER, LocalPersonalize
from tests.integration.worker_support import WorkerProcess, free_port, wait_for, write_config

TRACKING_ID = "fa017000-2222-3333-4444-555555555555"
GEN_USERS, GEN_ITEMS, GEN_CATEGORIES = 300, 200, 8
#: Every generated user ID carries the sentinel that no worker log may show (tests/conftest.py).
GEN_USER_PREFIX = f"{SENTINEL_USER}-u"
_KINDS = {k.name: k for k in BAD_KINDS}
_SEEDS = itertools.count(random.SystemRandom().randrange(1, 2**30))


def replay_generated(report: GenerateReport, bad_fraction: float) -> Truth:
    """The records a `run_generate` call sent, rebuilt from its seed and start time."""
    generator = ClickstreamGenerator(
        seed=report.seed, users=GEN_USERS, items=GEN_ITEMS, categories=GEN_CATEGORIES,
        bad_fraction=bad_fraction, start_time=report.start_time, events_per_second=report.events_per_second,
        user_prefix=GEN_USER_PREFIX,
    )
    truth = Truth()
    for record in generator.events(report.produced):
        if record.good:
            assert record.event_id is not None
            truth.valid_ids.append(record.event_id)
        else:
            kind = _KINDS[record.kind]
            truth.invalid.append(BadRecord(record.value, f"generator:{kind.name}", kind.stage, kind.rule))
    assert truth.valid_ids == report.good_event_ids, "generator replay differs from what was produced"
    assert len(truth.invalid) == report.bad
    return truth


class Load(threading.Thread):
    """Paced generator load in the background until `finish()` (or `count` records)."""

    def __init__(self, stack: FaultStack, *, rate: float, count: int, bad_fraction: float) -> None:
        super().__init__(name="fault-load", daemon=True)
        self._stack, self._rate, self._count, self._bad = stack, rate, count, bad_fraction
        self._stop_event = threading.Event()
        self.truth: Truth | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.truth = self._stack.generate(self._count, bad_fraction=self._bad, rate=self._rate,
                                              stop=self._stop_event)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread by finish()
            self.error = exc

    def finish(self, timeout_s: float = 120.0) -> Truth:
        self._stop_event.set()
        self.join(timeout_s)
        assert not self.is_alive(), "load generator did not stop"
        if self.error is not None:
            raise AssertionError(f"load generator failed: {self.error!r}") from self.error
        assert self.truth is not None
        return self.truth


class FaultStack:
    """The processes of one scenario; every process it starts is stopped by PID in `close`."""

    def __init__(self, name: str, tmp: Path, bootstrap: str, topic: str, lp: LocalPersonalize,
                 report: FaultReport, *, delivery: dict[str, Any] | None = None) -> None:
        self.name = name
        self.tmp = tmp
        self.bootstrap = bootstrap
        self.topic = topic
        self.lp = lp
        self.report = report
        self.delivery = delivery or {}
        self.group = f"faults-{uuid.uuid4().hex[:8]}"
        self.workers: list[WorkerProcess] = []
        self.loads: list[Load] = []
        self.started = time.monotonic()

    # -- workers ---------------------------------------------------------------------------------

    def worker(self, *, tracking_id: str = TRACKING_ID, delivery: dict[str, Any] | None = None,
               start: bool = True) -> WorkerProcess:
        n = len(self.workers)
        config = write_config(
            self.tmp / f"worker{n}.yaml", self.bootstrap, self.lp.endpoint_url,
            [{"name": self.topic, "dataset_type": "interactions", "tracking_id": tracking_id}],
            group_id=self.group, http_port=free_port(), delivery={**self.delivery, **(delivery or {})},
        )
        process = WorkerProcess(config, self.tmp / f"worker{n}.log")
        self.workers.append(process)
        return process.start() if start else process

    def close(self) -> None:
        for load in self.loads:
            load.finish()
        for worker in self.workers:
            worker.kill()

    # -- load ------------------------------------------------------------------------------------

    def generate(self, count: int, *, bad_fraction: float, rate: float | None = None,
                 stop: threading.Event | None = None) -> Truth:
        """`run_generate` into the topic; returns what the broker acknowledged."""
        report = run_generate(
            self.bootstrap, self.topic, rate=rate, count=count, bad_fraction=bad_fraction, seed=next(_SEEDS),
            items_topic=None, users_topic=None, users=GEN_USERS, items=GEN_ITEMS, categories=GEN_CATEGORIES,
            stop=stop, user_prefix=GEN_USER_PREFIX,
        )
        return replay_generated(report, bad_fraction)

    def background_load(self, *, rate: float, seconds: float, bad_fraction: float = 0.05) -> Load:
        load = Load(self, rate=rate, count=int(rate * seconds), bad_fraction=bad_fraction)
        self.loads.append(load)
        load.start()
        return load

    def produce_bad(self, cases: Iterable[BadRecord]) -> Truth:
        """Send crafted invalid records (acks=all); a tombstone is sent as a null value."""
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5,
                                 max_request_size=4 * 1024 * 1024)
        truth = Truth()
        try:
            futures = [(case, producer.send(self.topic, key=case.name.encode(), value=case.value))
                       for case in cases]
            producer.flush(timeout=60)
            for case, future in futures:
                future.get(timeout=10)
                truth.invalid.append(case)
        finally:
            producer.close(timeout=10)
        return truth

    # -- progress and audit ------------------------------------------------------------------------

    def stored_count(self) -> int:
        return int(self.lp.stats()["stored"]["events"])

    def wait_stored(self, at_least: int, timeout_s: float, what: str = "") -> None:
        wait_for(lambda: self.stored_count() >= at_least, timeout_s, interval_s=0.5,
                 message=f"{what}: {self.stored_count()} of {at_least} stored; stats={self.lp.stats()}\n"
                         + self.log_tails())

    def wait_delivered(self, truth: Truth, timeout_s: float = 120.0) -> None:
        """Until the store holds at least as many events as were valid (the audit checks which)."""
        self.wait_stored(len(set(truth.valid_ids)), timeout_s, "delivery")

    def log_tails(self, chars: int = 2000) -> str:
        return "\n".join(f"--- {w.log_path.name}\n{w.logs()[-chars:]}" for w in self.workers)

    def audit(self, truth: Truth, *, survivors: list[WorkerProcess], extra_stages: tuple[str, ...] = (),
              notes: dict[str, Any] | None = None) -> AuditRow:
        return audit(self.report, self.name, truth, lp=self.lp, tracking_id=TRACKING_ID,
                     bootstrap=self.bootstrap, topic=self.topic, workers=survivors, started=self.started,
                     extra_stages=extra_stages, notes=notes)
