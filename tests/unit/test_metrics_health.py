"""Metrics registry and the health/metrics HTTP server (real sockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from worker.config import ConfigError
from worker.observe.health import HealthServer, LoopHeartbeat
from worker.observe.metrics import CONTENT_TYPE, Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parsed exposition: (sample name, sorted labels) -> value."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def get(url: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), dict(error.headers), error.read()


# -- Metrics ---------------------------------------------------------------------------


def test_metrics_render_names_labels_and_values() -> None:
    m = Metrics()
    m.events_consumed.labels(topic="clicks").inc(5)
    m.events_delivered.labels(topic="clicks").inc(4)
    m.events_dead_lettered.labels(topic="clicks", stage="validation").inc()
    m.put_requests.labels(api="PutEvents", outcome="throttled").inc(2)
    m.put_latency.labels(api="PutEvents").observe(0.042)
    m.events_per_call.labels(api="PutItems").observe(7)
    m.inflight_events.set(12)
    m.inflight_bytes.set(3400)
    m.consumer_lag.labels(topic="clicks", partition="2").set(99)
    m.partitions_assigned.set(4)
    m.paused_partitions.set(1)
    m.rebalances.inc()
    m.commits.labels(outcome="success").inc(3)
    m.config_fault.labels(topic="items").set(1)
    m.delivery_retries.labels(api="PutUsers", reason="throttled").inc()
    m.batch_linger.labels(api="PutEvents").observe(0.2)

    got = samples(m)
    assert got[("clickstream_events_consumed_total", (("topic", "clicks"),))] == 5
    assert got[("clickstream_events_delivered_total", (("topic", "clicks"),))] == 4
    assert got[("clickstream_events_dead_lettered_total", (("stage", "validation"), ("topic", "clicks")))] == 1
    assert got[("clickstream_put_requests_total", (("api", "PutEvents"), ("outcome", "throttled")))] == 2
    assert got[("clickstream_put_latency_seconds_count", (("api", "PutEvents"),))] == 1
    assert got[("clickstream_put_latency_seconds_sum", (("api", "PutEvents"),))] == pytest.approx(0.042)
    assert got[("clickstream_events_per_call_bucket", (("api", "PutItems"), ("le", "6.0")))] == 0
    assert got[("clickstream_events_per_call_bucket", (("api", "PutItems"), ("le", "7.0")))] == 1
    assert got[("clickstream_inflight_events", ())] == 12
    assert got[("clickstream_inflight_bytes", ())] == 3400
    assert got[("clickstream_consumer_lag", (("partition", "2"), ("topic", "clicks")))] == 99
    assert got[("clickstream_partitions_assigned", ())] == 4
    assert got[("clickstream_paused_partitions", ())] == 1
    assert got[("clickstream_rebalances_total", ())] == 1
    assert got[("clickstream_commits_total", (("outcome", "success"),))] == 3
    assert got[("clickstream_config_fault", (("topic", "items"),))] == 1
    assert got[("clickstream_delivery_retries_total", (("api", "PutUsers"), ("reason", "throttled")))] == 1
    assert got[("clickstream_batch_age_seconds_count", (("api", "PutEvents"),))] == 1


def test_histogram_buckets_cover_the_expected_ranges() -> None:
    m = Metrics()
    m.put_latency.labels(api="PutEvents").observe(0.001)
    m.events_per_call.labels(api="PutEvents").observe(1)
    got = samples(m)
    latency_bounds = {dict(k[1])["le"] for k in got if k[0] == "clickstream_put_latency_seconds_bucket"}
    assert {"0.005", "30.0", "+Inf"} <= latency_bounds
    per_call_bounds = {dict(k[1])["le"] for k in got if k[0] == "clickstream_events_per_call_bucket"}
    assert per_call_bounds == {f"{n}.0" for n in range(1, 11)} | {"+Inf"}


def test_each_metrics_instance_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.rebalances.inc(3)
    assert samples(a)[("clickstream_rebalances_total", ())] == 3
    assert samples(b)[("clickstream_rebalances_total", ())] == 0

    registry = CollectorRegistry()
    c = Metrics(registry)
    assert c.registry is registry
    with pytest.raises(ValueError, match="Duplicated"):
        Metrics(registry)  # the same registry cannot hold two workers' metrics


# -- LoopHeartbeat ---------------------------------------------------------------------


def test_heartbeat_age_grows_until_the_next_beat() -> None:
    hb = LoopHeartbeat(now=100.0)
    assert hb.age(now=100.0) == 0.0
    assert hb.age(now=107.5) == 7.5
    hb.beat(now=107.0)
    assert hb.age(now=108.0) == 1.0
    assert hb.age(now=50.0) == 0.0  # a clock read before the beat never gives a negative age


def test_heartbeat_run_beats_while_the_loop_is_free() -> None:
    hb = LoopHeartbeat(now=0.0)  # ancient: age is huge until run() beats

    async def scenario() -> float:
        task = asyncio.create_task(hb.run(interval_s=0.01))
        await asyncio.sleep(0.05)
        age = hb.age()
        task.cancel()
        return age

    assert asyncio.run(scenario()) < 0.5


# -- HealthServer ----------------------------------------------------------------------


class Probes:
    """Mutable probe results, switched by the tests."""

    def __init__(self) -> None:
        self.live: tuple[bool, dict[str, Any]] = (True, {"loop_age_s": 0.1})
        self.ready: tuple[bool, dict[str, Any]] = (True, {"partitions": 4})

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        return self.live

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        return self.ready


@pytest.fixture
def probes() -> Probes:
    return Probes()


@pytest.fixture
def server(probes: Probes) -> Iterator[HealthServer]:
    metrics = Metrics()
    metrics.events_consumed.labels(topic="clicks").inc(7)
    srv = HealthServer("127.0.0.1", 0, metrics, readiness=probes.readiness, liveness=probes.liveness)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_port_zero_binds_a_real_free_port(server: HealthServer) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_a_port_in_use_is_a_config_error_naming_the_setting(server: HealthServer, probes: Probes) -> None:
    second = HealthServer("127.0.0.1", server.port, Metrics(), readiness=probes.readiness, liveness=probes.liveness)
    with pytest.raises(ConfigError, match=r"observability\.http_port: cannot listen on 127\.0\.0\.1:\d+"):
        second.start()


def test_metrics_endpoint_serves_prometheus_text(server: HealthServer) -> None:
    status, headers, body = get(f"{server.url}/metrics")
    assert status == 200
    assert headers["Content-Type"] == CONTENT_TYPE
    assert headers["Content-Type"].startswith("text/plain; version=")
    assert 'clickstream_events_consumed_total{topic="clicks"} 7.0' in body.decode()


def test_healthz_reports_liveness(server: HealthServer, probes: Probes) -> None:
    status, headers, body = get(f"{server.url}/healthz")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "ok", "loop_age_s": 0.1}

    probes.live = (False, {"loop_age_s": 42.0, "reason": "event loop stalled"})
    status, _, body = get(f"{server.url}/healthz")
    assert status == 503
    assert json.loads(body) == {"status": "failing", "loop_age_s": 42.0, "reason": "event loop stalled"}


def test_readyz_reports_readiness_details(server: HealthServer, probes: Probes) -> None:
    status, _, body = get(f"{server.url}/readyz")
    assert (status, json.loads(body)) == (200, {"status": "ready", "partitions": 4})

    probes.ready = (False, {"partitions": 0, "config_fault": ["items"]})
    status, _, body = get(f"{server.url}/readyz")
    assert status == 503
    assert json.loads(body) == {"status": "not_ready", "partitions": 0, "config_fault": ["items"]}


def test_a_crashing_probe_is_reported_as_unhealthy(server: HealthServer, probes: Probes) -> None:
    def broken() -> tuple[bool, dict[str, Any]]:
        raise RuntimeError("state unavailable")

    probes.liveness = broken  # type: ignore[method-assign]
    srv = HealthServer("127.0.0.1", 0, Metrics(), readiness=probes.readiness, liveness=probes.liveness)
    with srv:
        status, _, body = get(f"{srv.url}/healthz")
    assert status == 503
    assert json.loads(body) == {"status": "failing", "error": "RuntimeError: state unavailable"}


def test_unknown_paths_are_404(server: HealthServer) -> None:
    for path in ("/", "/health", "/metrics/extra", "/readyz/x"):
        status, _, _ = get(f"{server.url}{path}")
        assert status == 404, path


def test_query_strings_are_ignored_for_routing(server: HealthServer) -> None:
    status, _, _ = get(f"{server.url}/healthz?verbose=1")
    assert status == 200


def test_requests_are_not_logged_to_stderr(server: HealthServer, capfd: pytest.CaptureFixture[str]) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/nope"):
        get(f"{server.url}{path}")
    assert capfd.readouterr().err == ""


def test_stop_closes_the_port_and_is_idempotent(probes: Probes) -> None:
    srv = HealthServer("127.0.0.1", 0, Metrics(), readiness=probes.readiness, liveness=probes.liveness)
    srv.start()
    url = srv.url
    assert get(f"{url}/healthz")[0] == 200
    srv.stop()
    srv.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/healthz", timeout=2)


def test_probes_answer_and_detect_a_stuck_event_loop() -> None:
    """The loop blocks in a synchronous call; the probe thread still answers, with 503."""
    heartbeat = LoopHeartbeat()
    max_age = 0.3

    def liveness() -> tuple[bool, dict[str, Any]]:
        age = heartbeat.age()
        return age <= max_age, {"loop_age_s": round(age, 3)}

    srv = HealthServer("127.0.0.1", 0, Metrics(), readiness=lambda: (True, {}), liveness=liveness)
    results: dict[str, tuple[int, float]] = {}

    def probe(name: str) -> None:
        started = time.monotonic()
        status, _, _ = get(f"{srv.url}/healthz", timeout=5)
        results[name] = (status, time.monotonic() - started)

    async def main() -> None:
        beats = asyncio.create_task(heartbeat.run(interval_s=0.02))
        await asyncio.sleep(0.1)
        healthy = threading.Thread(target=probe, args=("healthy",))
        healthy.start()
        await asyncio.to_thread(healthy.join)
        time.sleep(0.6)  # noqa: ASYNC251 - deliberately block the loop: no beats now
        stuck = threading.Thread(target=probe, args=("stuck",))
        stuck.start()
        stuck.join(timeout=5)  # still inside the blocked loop: the answer must not need it
        beats.cancel()

    with srv:
        asyncio.run(main())
    assert results["healthy"][0] == 200
    assert results["stuck"][0] == 503
    assert results["stuck"][1] < 2.0


def test_idle_connections_are_capped_and_timed_out_so_probes_keep_answering(probes: Probes) -> None:
    """300 idle connections once held 300 threads: now at most `max_connections` are served,
    the rest are closed at once, and idle ones are dropped after the handler timeout."""
    import socket
    import threading
    import time
    import urllib.request

    srv = HealthServer("127.0.0.1", 0, Metrics(), readiness=probes.readiness, liveness=probes.liveness,
                       handler_timeout_s=1.0, max_connections=8)
    srv.start()
    idle: list[socket.socket] = []
    try:
        threads_before = threading.active_count()
        most = 0
        for _ in range(300):
            idle.append(socket.create_connection(("127.0.0.1", srv.port), timeout=2))
            most = max(most, threading.active_count() - threads_before)
        deadline = time.monotonic() + 5
        while srv.refused_connections < 200 and time.monotonic() < deadline:
            most = max(most, threading.active_count() - threads_before)
            time.sleep(0.01)
        assert most <= 8, f"{most} handler threads for idle connections"
        assert srv.refused_connections >= 200, "connections over the cap are closed at once"
        time.sleep(1.5)  # past the handler timeout: the idle ones are gone
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/healthz", timeout=2) as response:
            assert response.status == 200
        assert threading.active_count() - threads_before <= 1
    finally:
        for sock in idle:
            sock.close()
        srv.stop()
