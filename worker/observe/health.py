"""Health probes and the metrics endpoint, served from their own thread.

The server runs on a stdlib `ThreadingHTTPServer` in a daemon thread rather than on
the asyncio loop: a probe must answer when the loop is busy or stuck - that is
exactly when liveness has to report failure - and a scrape must not compete with
Personalize calls for loop time.

Routes: ``GET /metrics``, ``GET /healthz`` (liveness), ``GET /readyz`` (readiness).
Probe callables return ``(ok, details)``; they run on the server's threads, so they
must only read state (which is what they should do anyway).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from worker.observe.metrics import CONTENT_TYPE, Metrics

Probe = Callable[[], tuple[bool, dict[str, Any]]]

#: Longest a connection may sit idle or trickle its request: a probe or a scrape takes
#: milliseconds, so this only sheds idle or slow clients holding a thread each.
HANDLER_TIMEOUT_S = 5.0
#: Connections served at once; more are closed at once (a scraper and two probes need three).
MAX_CONNECTIONS = 32


class _BoundedServer(ThreadingHTTPServer):
    """One thread per connection, at most `MAX_CONNECTIONS` of them."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog: a burst is accepted (and refused) rather than left in SYN retries

    def __init__(self, *args: Any, max_connections: int = MAX_CONNECTIONS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(max_connections)
        self.refused = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)  # over the cap: close at once, no thread
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class LoopHeartbeat:
    """When the asyncio loop last ran a tick.

    A task on the loop calls `beat()` every interval (`run()` does that); liveness
    compares `age()` with a threshold. If the loop is blocked by a synchronous call
    or starved, beats stop and the age grows, which a probe thread can see.
    """

    def __init__(self, now: float | None = None) -> None:
        # Start as if a beat happened at creation: a loop that never ticks is noticed
        # after the threshold instead of immediately or never.
        self._last = time.monotonic() if now is None else now

    def beat(self, now: float | None = None) -> None:
        self._last = time.monotonic() if now is None else now

    def age(self, now: float | None = None) -> float:
        current = time.monotonic() if now is None else now
        return max(0.0, current - self._last)

    @property
    def last(self) -> float:
        return self._last

    async def run(self, interval_s: float = 1.0) -> None:
        """Beat every `interval_s` until cancelled."""
        while True:
            self.beat()
            await asyncio.sleep(interval_s)


class HealthServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on `host:port` (port 0 = any free port)."""

    def __init__(
        self,
        host: str,
        port: int,
        metrics: Metrics,
        readiness: Probe,
        liveness: Probe,
        *,
        handler_timeout_s: float = HANDLER_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._handler_timeout_s = handler_timeout_s
        self._max_connections = max_connections
        self._host = host
        self._requested_port = port
        self._metrics = metrics
        self._readiness = readiness
        self._liveness = liveness
        self._server: _BoundedServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before)."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._requested_port

    @property
    def refused_connections(self) -> int:
        """Connections closed unserved because `max_connections` were busy."""
        return self._server.refused if self._server is not None else 0

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            return
        try:
            server = _BoundedServer((self._host, self._requested_port), _make_handler(self, self._handler_timeout_s),
                                    max_connections=self._max_connections)
        except OSError as exc:
            from worker.config import ConfigError  # noqa: PLC0415 - config imports observe modules

            raise ConfigError(
                f"observability.http_port: cannot listen on {self._host}:{self._requested_port} ({exc.strerror}); "
                "fix: choose a free port (WORKER_OBSERVABILITY__HTTP_PORT) or 0 for any"
            ) from None
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="health-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling (runs on server threads) ------------------------------------

    def respond(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of `path`; pure apart from the probes."""
        route = path.split("?", 1)[0]
        if route == "/metrics":
            return HTTPStatus.OK, CONTENT_TYPE, self._metrics.render()
        if route == "/healthz":
            return _probe_response(self._liveness, "ok", "failing")
        if route == "/readyz":
            return _probe_response(self._readiness, "ready", "not_ready")
        return HTTPStatus.NOT_FOUND, "application/json", _json_body({"status": "not_found", "path": route})


def _probe_response(probe: Probe, ok_word: str, bad_word: str) -> tuple[int, str, bytes]:
    try:
        ok, details = probe()
    except Exception as exc:  # noqa: BLE001 - a crashing probe means unhealthy, not a 500
        ok, details = False, {"error": f"{type(exc).__name__}: {exc}"}
    body = {**details, "status": ok_word if ok else bad_word}
    status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
    return status, "application/json", _json_body(body)


def _json_body(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, default=str, sort_keys=True).encode("utf-8")


def _make_handler(owner: HealthServer, handler_timeout_s: float) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        server_version = "clickstream-worker"
        sys_version = ""
        timeout = handler_timeout_s  # socket timeout: an idle or trickling client is dropped

        def do_GET(self) -> None:
            self._reply(include_body=True)

        def do_HEAD(self) -> None:
            self._reply(include_body=False)

        def _reply(self, *, include_body: bool) -> None:
            status, content_type, body = owner.respond(self.path)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if include_body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Silence per-request lines: probes hit every few seconds and would flood stderr."""

    return _Handler
