"""Handle on a `python -m clickstream_devkit.personalize` child process (dev, tests, benchmarks).

Starts the server, waits for ``GET /_local/health``, and wraps the inspection and fault
injection API (`/_local/...`) that only the local stand-in offers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from clickstream_devkit.processes import free_port, stop_process

PAGE_SIZE = 1000


class LocalPersonalizeError(RuntimeError):
    """The local Personalize did not start, or an inspection call failed."""


class LocalPersonalize:
    """Handle on one `python -m clickstream_devkit.personalize` child process."""

    def __init__(
        self,
        *,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        trackers: Iterable[str] = (),
        datasets: Iterable[str] = (),
        action_trackers: Iterable[str] = (),
        extra_args: Sequence[str] = (),
        log_path: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.data_dir = Path(data_dir)
        self.trackers = list(trackers)
        self.datasets = list(datasets)
        self.action_tracker_ids = list(action_trackers)
        self.extra_args = list(extra_args)
        self.log_path = log_path or self.data_dir.parent / f"local-personalize-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- process ------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "clickstream_devkit.personalize",
            "--host", self.host, "--port", str(self.port), "--data-dir", str(self.data_dir),
        ]  # fmt: skip
        for tracking_id in self.trackers:
            cmd += ["--tracker", tracking_id]
        for arn in self.datasets:
            cmd += ["--dataset", arn]
        for tracking_id in self.action_tracker_ids:
            cmd += ["--action-tracker", tracking_id]
        return cmd + self.extra_args

    def start(self, timeout_s: float = 20.0) -> LocalPersonalize:
        """Spawn the server and return once ``GET /_local/health`` answers 200."""
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env,
            )  # fmt: skip
        try:
            self._wait_healthy(timeout_s)
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful stop (SIGTERM), SIGKILL if it lingers. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, timeout_s)

    def kill(self) -> None:
        """SIGKILL by PID: a crash, for durability tests."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5.0)

    def restart(self, timeout_s: float = 20.0) -> LocalPersonalize:
        """Stop and start again on the same port with the same data directory."""
        self.stop()
        return self.start(timeout_s)

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last_error = "no attempt yet"
        while True:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise LocalPersonalizeError(
                    f"local Personalize exited with code {code} before it was healthy\n"
                    f"command: {' '.join(self.command())}\n--- output ---\n{self.output()[-4000:]}"
                )
            if time.monotonic() > deadline:
                raise LocalPersonalizeError(
                    f"local Personalize not healthy after {timeout_s:.0f}s ({last_error})\n"
                    f"--- output ---\n{self.output()[-4000:]}"
                )
            try:
                status, _ = self._request("GET", "/_local/health", timeout_s=1.0)
                if status == 200:
                    return
                last_error = f"health answered {status}"
            except (OSError, urllib.error.URLError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)

    # -- inspection API -----------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None, timeout_s: float = 10.0) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        # Always our own http://host:port endpoint: no user-supplied scheme reaches urlopen.
        request = urllib.request.Request(self.endpoint_url + path, data=data, method=method)  # noqa: S310
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
                raw = response.read()
                status = int(response.status)
        except urllib.error.HTTPError as error:
            raw, status = error.read(), int(error.code)
        return status, (json.loads(raw) if raw else None)

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        status, payload = self._request(method, path, body)
        if status != 200:
            raise LocalPersonalizeError(f"{method} {path} answered {status}: {payload}")
        return payload

    def _paged(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """All rows of a ``limit``/``offset`` paged listing."""
        rows: list[dict[str, Any]] = []
        offset = 0
        previous_first: Any = object()
        while True:
            query = urllib.parse.urlencode({**params, "limit": PAGE_SIZE, "offset": offset})
            page = self._json("GET", f"{path}?{query}")
            if isinstance(page, dict):  # tolerate {"<name>": [...]} envelopes
                page = next((v for v in page.values() if isinstance(v, list)), [])
            if page and page[0] == previous_first:  # offset ignored: the same page again
                return rows
            rows.extend(page)
            if len(page) != PAGE_SIZE:  # short page: done (longer: paging not honoured)
                return rows
            previous_first = page[0]
            offset += len(page)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/_local/stats")
        return result

    def events(self, tracking_id: str | None = None) -> list[dict[str, Any]]:
        return self._paged("/_local/events", {"trackingId": tracking_id} if tracking_id else {})

    def items(self, dataset_arn: str | None = None) -> list[dict[str, Any]]:
        return self._paged("/_local/items", {"datasetArn": dataset_arn} if dataset_arn else {})

    def users(self, dataset_arn: str | None = None) -> list[dict[str, Any]]:
        return self._paged("/_local/users", {"datasetArn": dataset_arn} if dataset_arn else {})

    def actions(self, dataset_arn: str | None = None) -> list[dict[str, Any]]:
        """PutActions records (``datasetArn``, ``actionId``, ``properties``, ``updatedAt``), in ID order."""
        return self._paged("/_local/actions", {"datasetArn": dataset_arn} if dataset_arn else {})

    def action_interactions(self, tracking_id: str | None = None) -> list[dict[str, Any]]:
        """Stored PutActionInteractions interactions in arrival order (duplicates by eventId not stored)."""
        return self._paged("/_local/action-interactions", {"trackingId": tracking_id} if tracking_id else {})

    def action_trackers(self) -> list[dict[str, Any]]:
        """Action-interaction tracking IDs with their dataset and dataset group (None when registered bare)."""
        result: list[dict[str, Any]] = self._json("GET", "/_local/action-trackers")
        return result

    def data_deletions(self, dataset_group_arn: str | None = None) -> list[dict[str, Any]]:
        """Data deletion jobs with what each removed: users, per-source counts, cutoff, overlaps (oldest first)."""
        query = f"?{urllib.parse.urlencode({'datasetGroupArn': dataset_group_arn})}" if dataset_group_arn else ""
        result: list[dict[str, Any]] = self._json("GET", f"/_local/data-deletions{query}")
        return result

    def bulk_counts(self) -> dict[str, int]:
        """Bulk-imported rows per dataset ARN (interactions and records)."""
        result: dict[str, int] = self._json("GET", "/_local/bulk")
        return result

    def resources(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Control-plane resources with their statuses (``kind``: ``solution-version``, ``campaign`` …)."""
        query = f"?{urllib.parse.urlencode({'kind': kind})}" if kind else ""
        result: list[dict[str, Any]] = self._json("GET", f"/_local/resources{query}")
        return result

    def faults(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/_local/faults")
        return result

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", "/_local/faults", settings)
        return result

    def clear_faults(self) -> dict[str, Any]:
        return self.set_faults()
