"""A dataset group's quota shared by real worker processes across rebalances (real broker, real
local Personalize enforcing the group's quota).

Each replica's share of a (dataset group, API) is its partitions of the topics feeding that group
over all of them; the shares of the group's members add up to one after every rebalance (a
replica joining, a replica leaving), and an idle replica paces at exactly quota x share. Then,
with the local Personalize enforcing the group's quota, the members deliver everything once.
How well the quota is used is the benchmarks' business (`make bench`), not this test's.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import write_result
from tests.integration.worker_support import (
    WorkerProcess,
    free_port,
    make_events,
    produce,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration

TRACKING_ID = "22222222-3333-4444-5555-666666666666"
ITEMS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
QUOTAS = {"groups": {"shop": {"put_events_rps": 120.0, "put_items_rps": 9.0}}}
LANES = {"PutEvents": 120.0, "PutItems": 9.0}


def _shares(worker: WorkerProcess) -> dict[str, tuple[float, float]]:
    """API -> (fraction of the group's partitions, paced rate) as the worker exports them."""
    return {api: (worker.metric("clickstream_quota_partition_share", group="shop", api=api),
                  worker.metric("clickstream_quota_rate_rps", group="shop", api=api)) for api in LANES}


def _balanced(workers: list[WorkerProcess], partitions: dict[str, int]) -> bool:
    """Every API's fractions add up to one over `workers`, each is k / partitions, and each idle
    worker paces at quota x fraction (the floor, 1 % of the quota, when it holds nothing)."""
    try:
        seen = [_shares(w) for w in workers]
    except OSError:  # a worker between restarts of its HTTP server: not yet
        return False
    for api, quota in LANES.items():
        fractions = [s[api][0] for s in seen]
        if abs(sum(fractions) - 1.0) > 1e-6:
            return False
        for fraction, rate in (s[api] for s in seen):
            k = fraction * partitions[api]
            if abs(k - round(k)) > 1e-6:
                return False
            expected = quota * fraction if fraction > 0 else quota * 0.01
            if abs(rate - expected) > 1e-6 * quota:
                return False
    return True


def test_the_group_quota_is_shared_by_partitions_across_rebalances(
    tmp_path: Path, broker: Any, kafka_topic: Any, local_personalize: Any
) -> None:
    clicks, more_clicks = kafka_topic(partitions=4, prefix="qclicks"), kafka_topic(partitions=2, prefix="qclicks2")
    items = kafka_topic(partitions=3, prefix="qitems")
    lp = local_personalize(trackers=[TRACKING_ID], datasets=[ITEMS_ARN])
    topics = [
        {"name": clicks, "dataset_type": "interactions", "tracking_id": TRACKING_ID, "dataset_group": "shop"},
        {"name": more_clicks, "dataset_type": "interactions", "tracking_id": TRACKING_ID, "dataset_group": "shop"},
        {"name": items, "dataset_type": "items", "dataset_arn": ITEMS_ARN},
    ]
    partitions = {"PutEvents": 6, "PutItems": 3}  # both interaction topics feed one group: pooled
    workers: list[WorkerProcess] = []
    seen: dict[str, Any] = {}

    def start() -> WorkerProcess:
        n = len(workers)
        config = write_config(tmp_path / f"w{n}.yaml", broker.bootstrap, lp.endpoint_url, topics,
                              group_id=f"quota-{clicks}", http_port=free_port(), extra={"quotas": QUOTAS})
        worker = WorkerProcess(config, tmp_path / f"w{n}.log").start()
        workers.append(worker)
        return worker

    def settle(live: list[WorkerProcess], step: str) -> None:
        wait_for(lambda: _balanced(live, partitions), 45, message=f"shares add up after: {step}")
        seen[step] = [_shares(w) for w in live]

    try:
        first = start()
        first.wait_ready()
        settle([first], "one replica")
        assert seen["one replica"][0] == {"PutEvents": (1.0, 120.0), "PutItems": (1.0, 9.0)}
        second = start()
        settle([first, second], "a second joins")
        third = start()
        settle([first, second, third], "a third joins")
        assert all(0 < s["PutEvents"][0] < 1 for s in seen["a third joins"]), "six partitions over three"
        assert second.terminate() == 0  # scale-in: it drains and leaves the group
        settle([first, third], "the second leaves")

        # The group's quota enforced by the service: everything is delivered once, nothing dead-lettered
        # for delivery, whatever throttling the two replicas meet while they find their pace.
        lp.set_faults(quota_rps={"PutEvents": 40})
        records, produced = make_events(800, 0.0, seed=12, run_id=clicks)
        produce(broker.bootstrap, clicks, records[:500])
        produce(broker.bootstrap, more_clicks, records[500:])
        wait_for(lambda: set(produced.good_ids) <= {e["eventId"] for e in lp.events(TRACKING_ID)}, 90,
                 message="all events delivered under the group's quota")
        stored = Counter(e["eventId"] for e in lp.events(TRACKING_ID))
        assert set(stored) == set(produced.good_ids) and max(stored.values()) == 1
        stats = lp.stats()
        for worker in (first, third):
            assert worker.metric("clickstream_events_dead_lettered_total", stage="delivery") == 0
        log_lines = [json.loads(line) for w in workers for line in w.log_path.read_text(errors="replace").splitlines()
                     if line.startswith("{") and "quota share after rebalance" in line]
        assert {line["partitions_total"] for line in log_lines if line["api"] == "PutEvents"} == {6}
        write_result("quota_shares_rebalances", {"shares": seen, "stats_after_quota_run": stats})
        for worker in (first, third):
            assert worker.terminate() == 0
    finally:
        for worker in workers:
            worker.kill()
