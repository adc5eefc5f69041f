"""Test helpers shared by fixtures and tests (re-exported from the worker's local stack).

Kept out of conftest.py so tests and benchmarks can import them by name.
Every process started here is stopped by PID (never by name).
"""

from __future__ import annotations

from pathlib import Path

from worker.local.personalize.process import LocalPersonalize, LocalPersonalizeError
from worker.local.processes import free_port, pid_exists, stop_process

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCAL_PERSONALIZE_MAIN = REPO_ROOT / "worker" / "local" / "personalize" / "__main__.py"

#: Consumer settings that make group joins on Tansu take ~3 s instead of ~20 s.
TANSU_CONSUMER_SETTINGS: dict[str, int] = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
    "max_poll_interval_ms": 10000,
}

__all__ = [
    "LOCAL_PERSONALIZE_MAIN",
    "REPO_ROOT",
    "TANSU_CONSUMER_SETTINGS",
    "LocalPersonalize",
    "LocalPersonalizeError",
    "free_port",
    "pid_exists",
    "stop_process",
]
