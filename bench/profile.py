"""Profile the server during one benchmark case: ``python -m bench.profile``.

    python -m bench.profile --scenario burst --clients 500 --readers eager --tool py-spy
    python -m bench.profile --scenario idle --clients 10000 --tool pyinstrument

``py-spy`` (pip install py-spy) attaches to the running server for exactly the
measured phase (from the ``start`` barrier to ``end``; for idle, ``connect`` to
``connected``), sampling every thread, and prints the functions with the most
samples: *self* (where the CPU was) and *total* (what it was spent under).
``pyinstrument`` (pip install pyinstrument) runs the whole server under its
profiler and prints its call tree when the server exits. Profilers are
development tools; the suite itself does not need them.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.runner import (
    FULL,
    GEN_CPU,
    STORM_PASSWORD,
    Case,
    Progress,
    Run,
    ServerProcess,
    run_once,
)

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    """``_fan_out (chinwag/core/hub.py:530)`` → ``hub.py:_fan_out``."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return f"{Path(m.group('file')).name}:{m.group('func')}"


def _idle_leaf() -> re.Pattern[str]:
    """Leaf frames of threads that are waiting, not working (py-spy counts some)."""
    lines = []
    try:
        import chinwag.storage.sqlite as sqlite_mod

        src = Path(sqlite_mod.__file__).read_text().splitlines()
        lines = [str(i + 1) for i, text in enumerate(src) if "self._queue.get()" in text]
    except (ImportError, OSError):
        pass
    alts = [r"_worker \(concurrent/futures/thread\.py:\d+\)", r"EpollSelector\.select \("]
    if lines:
        alts.append(r"_write_loop \(.*sqlite\.py:(?:" + "|".join(lines) + r")\)")
    return re.compile("|".join(alts))


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each live thread of ``pid`` (schedstat)."""
    out: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                out[int(tid)] = int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            continue
    return out


_THREAD = re.compile(r"^thread \((?:0x)?(\w+)\): ?(.*)$")


def summarize_collapsed(
    path: Path,
    cpu: dict[int, float] | None = None,
    units: float = 0.0,
    unit: str = "delivery",
    top: int = 20,
) -> str:
    """Where each thread's CPU went, from py-spy's ``--format raw`` stacks.

    Samples of waiting threads (idle leaves) are dropped; each thread's samples
    are then scaled to the CPU time /proc says that thread used (``cpu``), so
    functions of different threads compare in seconds, and per ``unit``.
    """
    idle = _idle_leaf()
    per_thread: dict[int, tuple[str, collections.Counter[str], collections.Counter[str]]] = {}
    counts: collections.Counter[int] = collections.Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [f for f in stack.split(";") if f]
        if not frames or idle.search(frames[-1]):
            continue
        tid, name = 0, "?"
        if m := _THREAD.match(frames[0]):
            text = m.group(1)
            tid = int(text, 16) if text.startswith(("0x",)) or not text.isdigit() else int(text)
            name = m.group(2) or str(tid)
            frames = frames[1:]
        count = int(count_text)
        _, self_n, total_n = per_thread.setdefault(
            tid, (name, collections.Counter(), collections.Counter())
        )
        names = [_short(f) for f in frames]
        if names:
            self_n[names[-1]] += count
        for fn_name in set(names):
            total_n[fn_name] += count
        counts[tid] += count
    cpu = cpu or {}
    all_cpu = sum(cpu.values())
    out = []
    if all_cpu:
        out.append(
            f"server CPU in the phase: {all_cpu:.3f} s"
            + (f" = {all_cpu * 1e6 / units:.2f} µs per {unit}" if units else "")
        )
    for tid, (name, self_n, total_n) in sorted(
        per_thread.items(), key=lambda kv: -cpu.get(kv[0], 0)
    ):
        n = counts[tid]
        secs = cpu.get(tid) if cpu else n / max(1, sum(counts.values()))
        if secs is None or (all_cpu and secs < 0.02 * all_cpu):
            continue
        head = f"\n== {name}: {secs:.3f} s CPU"
        if all_cpu:
            head += f" ({secs / all_cpu:.0%} of the server)"
        if units:
            head += f", {secs * 1e6 / units:.2f} µs per {unit}"
        out.append(head + f"; {n} busy samples")

        def fmt(
            counter: collections.Counter[str], label: str, secs: float = secs, n: int = n
        ) -> None:
            out.append(f"  {label:>5}  {'µs/' + unit if units else 's':>10}  function")
            for fn, c in counter.most_common(top):
                value = secs * c / n
                shown = f"{value * 1e6 / units:10.3f}" if units else f"{value:10.3f}"
                out.append(f"  {c / n:5.1%}  {shown}  {fn}")

        fmt(self_n, "self")
        fmt(total_n, "total")
    return "\n".join(out) if out else "no samples"


def _tail_path(name: str) -> str:
    parts = Path(name).parts
    return "/".join(parts[-2:])


def memory_report(snaps: Path, units: float, top: int) -> str:
    """Bytes that stayed between the two snapshots, per line and per call site."""
    import tracemalloc

    a = tracemalloc.Snapshot.load(str(snaps / "snap-0.tracemalloc"))
    b = tracemalloc.Snapshot.load(str(snaps / "snap-1.tracemalloc"))
    out = []
    for key in ("lineno", "traceback"):
        diffs = b.compare_to(a, key)
        total = sum(d.size_diff for d in diffs)
        out.append(f"\n== by {key}: {total / 1024:.0f} KiB more = {total / units:.0f} B per unit")
        for d in diffs[:top] if key == "lineno" else diffs[: max(5, top // 3)]:
            if d.size_diff <= 0:
                continue
            sites = [f"{_tail_path(f.filename)}:{f.lineno}" for f in reversed(d.traceback)]
            where = sites[0] if key == "lineno" else " < ".join(sites)
            out.append(
                f"  {d.size_diff / units:7.0f} B/unit  {d.count_diff / units:5.2f} blocks  {where}"
            )
    return "\n".join(out)


def make_case(args: argparse.Namespace) -> Case:
    if args.scenario == "burst":
        c = FULL["burst"]
        params: dict[str, Any] = {
            "clients": args.clients,
            "senders": args.senders or c["senders"],
            "messages": args.messages or c["messages"],
            "window": c["window"],
            "readers": args.readers,
            "timeout": 120,
        }
    elif args.scenario == "rate":
        c = FULL["rate"]
        senders = args.senders or c["senders"]
        params = {
            "clients": args.clients,
            "senders": senders,
            "messages": args.messages or int(c["rate"] * c["seconds"] / senders),
            "rate": c["rate"],
            "readers": "eager",
            "timeout": 120,
        }
    elif args.scenario == "idle":
        params = {"clients": args.clients, "hold": 1, "timeout": 120}
    elif args.scenario == "dm":
        c = FULL["dm"]
        params = {
            "pairs": args.clients // 2,
            "messages": args.messages or c["messages"],
            "window": c["window"],
            "timeout": 120,
        }
    else:
        c = FULL["reconnect"]
        params = {
            "accounts": args.clients,
            "room_backlog": c["room_backlog"],
            "dm_backlog": c["dm_backlog"],
            "password": STORM_PASSWORD,
            "timeout": 300,
        }
    return Case(args.scenario, f"n={args.clients}", params, args.clients)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    p.add_argument(
        "--scenario", default="burst", choices=["burst", "rate", "idle", "dm", "reconnect"]
    )
    p.add_argument("--server", default="chinwag", choices=["chinwag", "baseline"])
    p.add_argument("--clients", type=int, default=500)
    p.add_argument("--senders", type=int)
    p.add_argument("--messages", type=int)
    p.add_argument("--readers", default="eager", choices=["eager", "relaxed"])
    p.add_argument(
        "--tool",
        default="py-spy",
        choices=["py-spy", "pyinstrument", "strace", "perf", "tracemalloc"],
        help="py-spy: Python stacks; pyinstrument: call tree; strace: syscall counts; "
        "perf: user/kernel split by library (both attach for the measured phase); "
        "tracemalloc: memory that stayed, per allocation site",
    )
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument(
        "--out",
        type=Path,
        default=Path(tempfile.gettempdir()) / "chinwag-profile",
        help="directory for raw output",
    )
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.sched_setaffinity(0, {GEN_CPU})
    case = make_case(args)
    first, last = ("connect", "connected") if args.scenario == "idle" else ("start", "end")
    raw = args.out / f"{args.scenario}-{args.server}-{args.clients}-{args.readers}.pyspy.txt"
    spy: list[subprocess.Popen[bytes]] = []
    cpu_at: dict[str, dict[int, float]] = {}

    trace = (
        args.out / f"{args.scenario}-{args.server}-{args.clients}-{args.readers}.{args.tool}.txt"
    )

    snaps = args.out / "snapshots"

    def hook(server: ServerProcess, name: str) -> None:
        if args.tool == "pyinstrument":
            return
        if args.tool == "tracemalloc":
            if name in (first, last):
                index = 0 if name == first else 1
                os.kill(server.pid, signal.SIGUSR1)
                deadline = time.monotonic() + 120
                while not (snaps / f"snap-{index}.tracemalloc").exists():
                    if time.monotonic() > deadline:
                        raise TimeoutError("no tracemalloc snapshot")
                    time.sleep(0.05)
            return
        if name == last:
            cpu_at[name] = thread_cpu(server.pid)
        if name == first:
            pid = str(server.pid)
            if args.tool == "py-spy":
                exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
                cmd = [exe, "record", "--pid", pid, "--rate", str(args.rate)]
                cmd += ["--format", "raw", "--threads", "--output", str(raw)]
            elif args.tool == "strace":
                cmd = ["strace", "-c", "-f", "-p", pid, "-o", str(trace)]
            else:
                data = trace.with_suffix(".data")
                cmd = ["perf", "record", "-F", "999", "-g", "-p", pid, "-o", str(data)]
            spy.append(
                subprocess.Popen(
                    cmd,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    preexec_fn=lambda: os.sched_setaffinity(0, {GEN_CPU}),
                )
            )
            time.sleep(1.0)  # let it attach before the phase starts
            cpu_at[name] = thread_cpu(server.pid)
        elif name == last and spy:
            spy[0].send_signal(signal.SIGINT)
            spy[0].wait(timeout=60)

    wrap = None
    if args.tool == "tracemalloc":
        shutil.rmtree(snaps, ignore_errors=True)
        wrap = [sys.executable, "-m", "bench.memprobe", str(snaps)]
    if args.tool == "pyinstrument":
        html = args.out / f"{args.scenario}-{args.server}-{args.clients}.pyinstrument.txt"
        wrap = [sys.executable, "-m", "pyinstrument", "--show-all", "-o", str(html), "-m"]
    run = run_once(
        Run(case, args.server, 0), True, Progress(), 600, hook=hook, wrap=wrap, keep=True
    )
    print(f"run ok={run.ok} {run.error}")
    for key, value in run.metrics.items():
        print(f"  {key}: {value}")
    if args.tool == "tracemalloc" and (snaps / "snap-1.tracemalloc").exists():
        print(memory_report(snaps, float(run.metrics.get("clients") or args.clients), args.top))
    if args.tool == "strace" and trace.exists():
        print(trace.read_text())
    elif args.tool == "perf":
        data = trace.with_suffix(".data")
        report = subprocess.run(
            ["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", "dso"],
            capture_output=True,
            text=True,
        ).stdout
        print("\n".join(line for line in report.splitlines() if line and not line.startswith("#")))
        print(f"perf data: {data} (perf report -i {data})")
    if args.tool == "py-spy" and raw.exists():
        before, after = cpu_at.get(first, {}), cpu_at.get(last, {})
        cpu = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
        m = run.metrics
        units, unit = 0.0, "delivery"
        if args.scenario in ("burst", "rate"):
            units = float(m.get("deliveries") or 0)
        elif args.scenario == "dm":
            units, unit = float(m.get("acks") or 0), "ack"
        elif args.scenario == "idle":
            units, unit = float(m.get("clients") or 0), "login"
        elif args.scenario == "reconnect":
            units, unit = float(m.get("accounts") or 0), "login"
        print(summarize_collapsed(raw, cpu, units, unit, args.top))
        print(f"\nraw stacks: {raw}")
    elif args.tool == "pyinstrument":
        print(f"pyinstrument report: {html} (server log in {run.workdir})")
    return 0 if run.ok else 1


if __name__ == "__main__":
    sys.exit(main())
