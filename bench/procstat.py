"""CPU time and peak memory of a process, read from /proc (Linux only).

Why /proc and not psutil: it is always there on the benchmark machine, costs nothing to
read, and `utime + stime` of /proc/<pid>/stat covers every thread of the process (the
worker's consumer thread, kafka-python's I/O thread and the event loop), which is what
"CPU seconds per 1,000 events" must count.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One reading: CPU seconds used so far and the resident-set high-water mark."""

    cpu_s: float
    rss_peak_mb: float
    rss_mb: float


def parse_stat_cpu(stat_text: str, ticks_per_s: int = _TICKS) -> float:
    """utime + stime in seconds from the text of /proc/<pid>/stat.

    The command name (field 2) may contain spaces and parentheses, so fields are counted
    after the last ')': utime and stime are fields 14 and 15 of the whole line.
    """
    rest = stat_text.rsplit(")", 1)[1].split()
    utime, stime = int(rest[11]), int(rest[12])
    return (utime + stime) / ticks_per_s


def parse_status_kb(status_text: str, key: str) -> int:
    """A ``VmHWM:  1234 kB`` style value of /proc/<pid>/status, in kB (0 when absent)."""
    for line in status_text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def sample(pid: int) -> ProcSample | None:
    """Read one process; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return ProcSample(
        cpu_s=parse_stat_cpu(stat),
        rss_peak_mb=parse_status_kb(status, "VmHWM") / 1024.0,
        rss_mb=parse_status_kb(status, "VmRSS") / 1024.0,
    )


def machine() -> dict[str, object]:
    """What the numbers were measured on (quoted with every result)."""
    import platform  # noqa: PLC0415

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    with contextlib.suppress(OSError):
        mem_kb = parse_status_kb(Path("/proc/meminfo").read_text(), "MemTotal")
    return {
        "nproc": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "mem_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def machine_busy_s() -> float:
    """CPU seconds all processes of the machine have spent busy (user+nice+system+irq+softirq+steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


def wait_until_quiet(max_busy_cores: float = 0.15, window_s: float = 0.5, timeout_s: float = 120.0) -> float:
    """Wait until the machine is idle for one `window_s` (nothing else running); returns the seconds waited.

    Benchmarks share the machine with whatever else runs (a test suite, a build): a run that
    starts while something else is busy measures both. The wait is bounded; the load seen
    during each run is recorded anyway (`foreign_cpu_cores` in the results).
    """
    began = time.monotonic()
    while True:
        before = machine_busy_s()
        time.sleep(window_s)
        busy = (machine_busy_s() - before) / window_s
        if busy <= max_busy_cores or time.monotonic() - began >= timeout_s:
            return time.monotonic() - began
