"""The processes under test: `clickstream-worker run` and the naive baseline, as real subprocesses.

Both are measured the same way from outside (/proc CPU and VmHWM, sampled by PID), so the
comparison charges each side for everything it does: Kafka fetch, parse, validate, send.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from clickstream_devkit.processes import free_port, stop_process

from bench.procstat import ProcSample, sample
from worker.config import PersonalizeSettings

#: Group timeouts short enough for Tansu's join to take ~3 s (as in the integration tests).
TANSU_CONSUMER = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "max_poll_interval_ms": 10000}


def aws_env() -> dict[str, str]:
    """Dummy credentials and no instance-metadata lookup: nothing can reach real AWS."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "PYTHONUNBUFFERED": "1"}
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS"):
        env.pop(name, None)
    return env


def client_option_supported() -> bool:
    """Whether this worker build has `personalize.client` (lean vs botocore) to compare."""
    return "client" in PersonalizeSettings.model_fields


def write_worker_config(
    path: Path, *, bootstrap: str, endpoint_url: str, topics: list[tuple[str, str]], group_id: str,
    quotas: dict[str, Any], delivery: dict[str, Any] | None = None, client: str | None = None,
    topic_extra: dict[str, Any] | None = None, log_level: str = "WARNING",
) -> Path:
    """A worker config consuming `topics` ((topic, tracking ID) pairs, each tracker its own dataset group)."""
    personalize: dict[str, Any] = {"region": "us-east-1", "events_endpoint_url": endpoint_url}
    if client is not None and client_option_supported():
        personalize["client"] = client
    config = {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": group_id, "commit_interval_s": 1.0, **TANSU_CONSUMER},
        "personalize": personalize,
        "delivery": {"delivery_timeout_s": 300, "drain_timeout_s": 20, **(delivery or {})},
        "quotas": quotas,
        "observability": {"http_host": "127.0.0.1", "http_port": free_port(), "log_format": "json",
                          "log_level": log_level},
        "topics": [{"name": topic, "dataset_type": "interactions", "tracking_id": tracking_id, **(topic_extra or {})}
                   for topic, tracking_id in topics],
    }
    path.write_text(yaml.safe_dump(config))
    return path


class Measured:
    """A child process measured by PID: CPU at a mark, and at the end."""

    def __init__(self, command: list[str], log_path: Path) -> None:
        self.command = command
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.mark: ProcSample | None = None
        self.last: ProcSample | None = None
        self.stopped = False  # told to stop before the end of the run (a scale-in)
        self.restarts = 0  # started again after exiting on its own (see `restart`)
        self._cpu_earlier = 0.0  # CPU of the incarnations before the last restart

    def start(self) -> Measured:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=aws_env())
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def take_mark(self) -> None:
        self.mark = sample(self.pid)

    def take_last(self) -> None:
        self.last = sample(self.pid) or self.last

    def cpu_since_mark(self) -> float:
        if self.mark is None or self.last is None:
            return float("nan")
        return self._cpu_earlier + self.last.cpu_s - self.mark.cpu_s

    def restart(self) -> None:
        """Start the command again, as an orchestrator does (Kubernetes restartPolicy: Always): for a
        worker that exited because its Kafka consumer was wedged. CPU keeps adding up across restarts
        (up to each incarnation's last sample)."""
        if self.mark is not None and self.last is not None:
            self._cpu_earlier += self.last.cpu_s - self.mark.cpu_s
        self.restarts += 1
        self.start()
        self.take_mark()
        self.last = self.mark

    def stop(self, timeout_s: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.take_last()
        stop_process(self.proc, timeout_s)
        return self.proc.returncode

    def terminate(self) -> None:
        """SIGTERM now, without waiting (the worker drains and leaves its group meanwhile)."""
        if self.proc is not None and self.proc.poll() is None:
            self.take_last()
            self.stopped = True
            os.kill(self.proc.pid, signal.SIGTERM)

    def take_last_if_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.take_last()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def logs(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


class WorkerProc(Measured):
    """`clickstream-worker run --config FILE` (as `python -m worker.cli`, the same entry point).

    With `consumer_overrides` or `transport`, `bench.worker_variant` runs it instead: the same
    worker with KafkaConsumer settings or the lean client's HTTP overridden (labelled runs only).
    """

    def __init__(self, config: Path, log_path: Path, consumer_overrides: dict[str, Any] | None = None,
                 transport: str | None = None) -> None:
        command = [sys.executable, "-m", "worker.cli", "run", "--config", str(config)]
        if consumer_overrides or transport:
            command = [sys.executable, "-m", "bench.worker_variant", "--config", str(config),
                       "--consumer", json.dumps(consumer_overrides or {}), "--transport", transport or "aiohttp"]
        super().__init__(command, log_path)
        self.port = int(yaml.safe_load(config.read_text())["observability"]["http_port"])

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float = 60.0) -> float:
        """Wall time at which /readyz first answered 200 (partitions assigned)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"worker exited before ready:\n{self.logs()}")
            if self.ready():
                return time.time()
            time.sleep(0.05)
        raise RuntimeError(f"worker not ready after {timeout_s}s:\n{self.logs()}")


class BaselineProc(Measured):
    """`python -m bench.baseline`: poll, parse, validate, one synchronous boto3 put_events per event."""

    def __init__(self, *, bootstrap: str, topic: str, endpoint_url: str, tracking_id: str, group_id: str,
                 log_path: Path, ready_file: Path) -> None:
        super().__init__([
            sys.executable, "-m", "bench.baseline", "--bootstrap", bootstrap, "--topic", topic,
            "--endpoint-url", endpoint_url, "--tracking-id", tracking_id, "--group-id", group_id,
            "--ready-file", str(ready_file),
        ], log_path)
        self.ready_file = ready_file

    def start(self) -> Measured:
        self.ready_file.unlink(missing_ok=True)  # a repeat run must not see the last run's file
        return super().start()

    def wait_ready(self, timeout_s: float = 60.0) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"baseline exited before ready:\n{self.logs()}")
            if self.ready_file.exists():
                return time.time()
            time.sleep(0.05)
        raise RuntimeError(f"baseline not ready after {timeout_s}s:\n{self.logs()}")
