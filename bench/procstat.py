"""What /proc says about a process: CPU time, resident memory, threads (Linux only)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at a process. ``cpu`` is utime+stime of all its threads, in seconds."""

    t: float  # time.monotonic() when taken
    cpu: float
    rss_kib: int
    hwm_kib: int  # peak RSS so far
    threads: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (every thread), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read()
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS


def memory_kib(pid: int) -> tuple[int, int, int]:
    """(VmRSS, VmHWM, Threads) of ``pid`` from /proc/PID/status."""
    rss = hwm = threads = 0
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith(b"VmHWM:"):
                hwm = int(line.split()[1])
            elif line.startswith(b"Threads:"):
                threads = int(line.split()[1])
    return rss, hwm, threads


def cpu_seconds_precise(pid: int) -> float:
    """CPU time of every live thread of ``pid``, to the nanosecond.

    Sums the first field of /proc/PID/task/*/schedstat (the scheduler's
    ``sum_exec_runtime``). /proc/PID/stat counts in clock ticks (10 ms here),
    too coarse for phases of a fraction of a second; but it also keeps the time
    of threads that exited, so it is the fallback when schedstat is missing.
    """
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return cpu_seconds(pid)
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread just ended
    if total == 0:
        return cpu_seconds(pid)
    return total / 1e9


def sample(pid: int, now: float) -> Sample:
    cpu = cpu_seconds_precise(pid)
    rss, hwm, threads = memory_kib(pid)
    return Sample(now, cpu, rss, hwm, threads)


def system_busy() -> float:
    """CPU seconds all CPUs spent not idle since boot (/proc/stat; clock ticks)."""
    with open("/proc/stat", "rb") as f:
        fields = f.readline().split()
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    values = [int(x) for x in fields[1:9]]
    busy = values[0] + values[1] + values[2] + values[5] + values[6] + values[7]
    return busy / _TICKS


def self_cpu() -> float:
    """CPU seconds (user + system) this process has used."""
    t = os.times()
    return t.user + t.system
