"""Child processes of the local stack: free ports, stopping by PID, liveness.

Every process started by `dev`, the tests or the benchmarks is stopped by PID (never by name).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that was free a moment ago, below the kernel's ephemeral range.

    Binding port 0 would hand out an ephemeral port, which any outgoing connection may take
    as its source port before the process we pass the number to binds it (seen in the
    benchmarks: a worker's health server losing its port to a loopback connection). Ports
    below the range are only ever taken by explicit binds.
    """
    low = _ephemeral_low()
    if low > _MIN_PICK + 1000:
        for _ in range(100):
            port = random.randint(_MIN_PICK, low - 1)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


_MIN_PICK = 10_000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0  # unknown (not Linux): fall back to port 0


def stop_process(proc: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """SIGTERM by PID, wait, then SIGKILL by PID; no-op for an exited process."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5.0)


def pid_exists(pid: int) -> bool:
    """True while a process with this PID exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        # Field 3 is the state; "Z" is a zombie that only waits to be reaped.
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True
