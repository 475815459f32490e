"""The runner: a fresh server per run, pinned to one core; the generator on the other.

For every run it starts the server under test (chinwag, or the thread-per-client
baseline in ``bench/baselines/threaded.py``) as a child process pinned to core 0
with a raised open-files limit, starts the load generator (``bench/loadgen.py``)
pinned to core 1, and samples the server's /proc (CPU time of all its threads,
RSS, peak RSS) whenever the generator reaches a barrier (just before and just
after the measured phase). Each case runs ``repeat`` times against each server;
the report gives medians, and the chinwag/baseline ratio of each.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import importlib.util
import json
import math
import os
import platform
import queue
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench import procstat
from bench.floor import SYNCS, quantiles, sync_latency
from bench.report import render_table, targets

REPO = Path(__file__).resolve().parents[1]
_LISTENING = re.compile(r"listening on (\S+):(\d+)")

SERVER_CPU = 0
GEN_CPU = 1

# The benchmark is about fan-out, not about flood control or per-address limits.
CHINWAG_SETTINGS = {
    "max_conns_per_address": 1_000_000,
    "rate_per_second": 1_000_000,
    "rate_burst": 1_000_000,
    # Every generated client is on 127.0.0.1: no per-address login limit, and a
    # hashing queue long enough for the whole reconnect storm.
    "login_fail_address_max": 0,
    "hash_queue_max": 1_000_000,
}
STORM_PASSWORD = "bench-password-1"
DISTURBED = 0.25  # other programs used more than this many cores during the phase

FULL: dict[str, Any] = {
    "burst": {
        "sizes": [100, 500, 2000],
        "readers": ["eager", "relaxed"],
        "senders": 10,
        "messages": 200,
        "window": 8,
    },
    "rate": {"clients": 100, "senders": 10, "rate": 1000, "seconds": 10},
    "idle": {"sizes": [1000, 10000, 20000], "hold": 5},
    "dm": {"pairs": 250, "messages": 40, "window": 4},
    "reconnect": {"accounts": 1000, "room_backlog": 100, "dm_backlog": 2},
}
QUICK: dict[str, Any] = {
    "burst": {
        "sizes": [50],
        "readers": ["eager", "relaxed"],
        "senders": 5,
        "messages": 40,
        "window": 8,
    },
    "rate": {"clients": 50, "senders": 5, "rate": 200, "seconds": 2},
    "idle": {"sizes": [300], "hold": 1},
    "dm": {"pairs": 20, "messages": 20, "window": 4},
    "reconnect": {"accounts": 20, "room_backlog": 10, "dm_backlog": 2},
}
SCENARIOS = ("burst", "rate", "idle", "dm", "reconnect")
# chinwag-os: chinwag with durability = "os" (acks do not wait for fsync).
SERVERS = ("chinwag", "baseline", "chinwag-os")
DURABILITY = {"chinwag": "fsync", "chinwag-os": "os"}
SLOW_SYNC_MS = 3.0  # a sync this long alone spends the margin the latency target allows
# The rate scenario traces the chinwag server's fsyncs (strace, seccomp filter:
# only those two system calls stop the server) to line slow deliveries up with
# slow syncs of the same run.
STRACE = ["strace", "-f", "--seccomp-bpf", "-qq", "-e", "signal=none"]
STRACE += ["-e", "trace=fdatasync,fsync", "-T", "-ttt"]
_SYNC_START = re.compile(r"^(\d+)\s+([\d.]+)\s+f(?:data)?sync\(")
_SYNC_END = re.compile(r"^(\d+)\s+[\d.]+\s+.*<([\d.]+)>\s*$")


@dataclass
class Case:
    """One point of the plan, run against each server ``repeat`` times."""

    scenario: str
    label: str  # e.g. "n=500 eager"
    params: dict[str, Any]
    size: int  # the N of the case
    parts: int = 1  # generator processes
    note: str = ""


@dataclass
class Run:
    case: Case
    server: str
    repeat: int
    ok: bool = False
    error: str = ""
    gen: list[dict[str, Any]] = field(default_factory=list)
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    workdir: Path | None = None


# --------------------------------------------------------------------------- processes


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDEVMODE", "PYTHONASYNCIODEBUG")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def _pinned(cpu: int | None, nofile: int | None = None) -> Callable[[], None]:
    """Set the child's open-files limit and its core.

    The limit is the hard one, raised to; or ``nofile``, as both soft and hard
    limit, so that the child cannot raise it.
    """

    def setup() -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        limit = hard if nofile is None else min(nofile, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return setup


class ServerProcess:
    """chinwag or the baseline, as a child process on 127.0.0.1 and a free port."""

    def __init__(
        self,
        kind: str,
        workdir: Path,
        cpu: int | None,
        wrap: list[str] | None = None,
        extra: list[str] | None = None,
        settings: dict[str, Any] | None = None,
        nofile: int | None = None,
        trace: Path | None = None,
    ) -> None:
        self.kind = kind
        self.trace = trace  # strace the server's fsyncs into this file
        # chinwag's --set options: by default flood control and per-address limits lifted
        self.settings = CHINWAG_SETTINGS if settings is None else settings
        self.nofile = nofile  # the server's open-files limit (default: the hard limit)
        self.extra = list(extra or [])  # more command-line arguments for the server
        self.wrap = list(wrap or [])  # e.g. a profiler: [python, -m, pyinstrument, ...]
        self.workdir = workdir
        self.data = workdir / "data"
        self.cpu = cpu
        self.log_path = workdir / f"{kind}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._server_pid = 0  # under strace: the traced server, not strace

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self._server_pid or self.proc.pid

    def start(self, timeout: float = 30.0) -> ServerProcess:
        py = sys.executable
        if self.kind in DURABILITY:
            args = [py, "-m", "chinwag", "serve", "--host", "127.0.0.1", "--port", "0"]
            if importlib.util.find_spec("chinwag.server.web") is not None:
                args += ["--http-port", "0"]  # no web client: the fan-out is over JSON lines
            args += ["--data", str(self.data)]
            settings = dict(self.settings)
            if DURABILITY[self.kind] != "fsync":  # the default (and all an older chinwag knows)
                settings["durability"] = DURABILITY[self.kind]
            for name, value in settings.items():
                args += ["--set", f"{name}={value}"]
        else:
            args = [py, "-m", "bench.baselines.threaded", "--host", "127.0.0.1", "--port", "0"]
        args += self.extra
        if self.wrap:
            args = [*self.wrap, *args[1:]]
        if self.trace is not None:
            args = [*STRACE, "-o", str(self.trace), *args]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                env=_env(),
                preexec_fn=_pinned(self.cpu, self.nofile),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if m := _LISTENING.search(text):
                self.port = int(m.group(2))
                if self.trace is not None:
                    children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
                    self._server_pid = int(children.read_text().split()[0])
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited early:\n{text[-2000:]}")
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.kind} did not start in {timeout} s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if self._server_pid:  # strace ends with the server it traces
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._server_pid, signal.SIGTERM)
        else:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            if self._server_pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._server_pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait(timeout=10)


# --------------------------------------------------------------------------- one run


class Progress:
    """One status line on stderr while the suite runs."""

    def __init__(self, quiet: bool = False) -> None:
        self.tty = sys.stderr.isatty()
        self.quiet = quiet
        self.prefix = ""
        self._width = 0

    def set_prefix(self, text: str) -> None:
        self.prefix = text
        if not self.tty and not self.quiet:
            print(text, file=sys.stderr, flush=True)
        self.update("")

    def update(self, text: str) -> None:
        if not self.tty or self.quiet:
            return
        line = f"{self.prefix} {text}".rstrip()
        cols = shutil.get_terminal_size((120, 20)).columns - 1
        line = line[:cols]
        pad = max(0, self._width - len(line))
        sys.stderr.write("\r" + line + " " * pad)
        sys.stderr.flush()
        self._width = len(line)

    def done(self) -> None:
        if self.tty and not self.quiet and self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()
            self._width = 0


def _reader(i: int, stream: IO[bytes], out: queue.Queue[tuple[int, bytes | None]]) -> None:
    for line in stream:
        out.put((i, line))
    out.put((i, None))


BarrierHook = Callable[["ServerProcess", str], None]


def run_once(
    run: Run,
    pin: bool,
    progress: Progress,
    budget: float,
    *,
    hook: BarrierHook | None = None,
    wrap: list[str] | None = None,
    keep: bool = False,
    extra: list[str] | None = None,
) -> Run:
    """Run one case against one fresh server; ``hook`` is called at each barrier."""
    case = run.case
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{case.scenario}-{run.server}-"))
    run.workdir = workdir
    trace = (
        workdir / "syncs.strace"
        if case.scenario == "rate" and run.server in DURABILITY and strace_works()
        else None
    )
    server = ServerProcess(
        run.server, workdir, SERVER_CPU if pin else None, wrap, extra, trace=trace
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if case.scenario == "reconnect":
            from bench.seed import seed_accounts

            progress.update("seeding accounts")
            seed_accounts(server.data, int(case.params["accounts"]), STORM_PASSWORD)
        server.start()
        samples: dict[str, procstat.Sample] = {
            "started": procstat.sample(server.pid, time.monotonic())
        }
        others: dict[str, tuple[float, float]] = {}
        shares = _split(case)
        events: queue.Queue[tuple[int, bytes | None]] = queue.Queue()
        for part, params in enumerate(shares):
            spec = {
                "scenario": case.scenario,
                "host": "127.0.0.1",
                "port": server.port,
                "params": params,
                "part": part,
                "cpu": GEN_CPU if pin else None,
            }
            with (workdir / f"gen{part}.log").open("ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "bench.loadgen", json.dumps(spec)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    cwd=REPO,
                    env=_env(),
                )
            procs.append(proc)
            assert proc.stdout is not None
            threading.Thread(target=_reader, args=(part, proc.stdout, events), daemon=True).start()
        results: list[dict[str, Any] | None] = [None] * len(procs)
        arrived: dict[str, set[int]] = {}
        latest = [""] * len(procs)
        finished = 0
        deadline = time.monotonic() + budget
        while finished < len(procs):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the run took longer than {budget:.0f} s")
            try:
                part, line = events.get(timeout=min(left, 1.0))
            except queue.Empty:
                if not server.alive():
                    raise RuntimeError(f"{run.server} died: {_tail(server.log_path)}") from None
                continue
            if line is None:
                finished += 1
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if "progress" in event:
                latest[part] = str(event["progress"])
                progress.update(" | ".join(x for x in latest if x))
            elif "barrier" in event:
                name = str(event["barrier"])
                arrived.setdefault(name, set()).add(part)
                if len(arrived[name]) == len(procs):
                    samples[name] = procstat.sample(server.pid, time.monotonic())
                    others[name] = _others(procs)
                    if hook is not None:
                        hook(server, name)
                    for proc in procs:
                        assert proc.stdin is not None
                        with contextlib.suppress(OSError):
                            proc.stdin.write(b"go\n")
                            proc.stdin.flush()
            elif "result" in event:
                results[part] = event["result"]
        for proc in procs:
            proc.wait(timeout=30)
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            raise RuntimeError(
                f"generator {missing[0]} gave no result: {_tail(workdir / f'gen{missing[0]}.log')}"
            )
        run.gen = [r for r in results if r is not None]
        run.samples = {k: v.as_dict() for k, v in samples.items()}
        run.metrics = derive(case, run.gen, samples)
        if trace is not None:
            server.stop()  # strace has written every line once it exits
            fsync = DURABILITY[run.server] == "fsync"
            run.metrics.update(sync_metrics(trace, run.gen[0], acks_wait_for_sync=fsync))
        run.metrics["foreign_cpu"] = _foreign(case, samples, others)
        run.ok = bool(run.metrics.get("verified"))
        if not run.ok:
            errs = [e for r in run.gen for e in r.get("check", {}).get("first_errors", [])]
            run.error = "; ".join(errs[:3]) or "check failed"
    except Exception as exc:
        run.ok = False
        run.error = f"{type(exc).__name__}: {exc}"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        server.stop()
        if run.ok and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            run.error += f" (logs kept in {workdir})"
    return run


def _others(procs: list[subprocess.Popen[bytes]]) -> tuple[float, float]:
    """(CPU seconds of the whole machine, of the generators and this runner), now."""
    ours = procstat.self_cpu()
    for proc in procs:
        with contextlib.suppress(OSError, ValueError):
            ours += procstat.cpu_seconds(proc.pid)
    return procstat.system_busy(), ours


def _foreign(
    case: Case, samples: dict[str, procstat.Sample], others: dict[str, tuple[float, float]]
) -> float | None:
    """Cores' worth of CPU that neither the server nor the benchmark used in the phase.

    Another program running meanwhile (a test suite, a build) takes the cores the
    figures assume are ours; a run where this is high is not to be trusted.
    """
    a, b = ("connect", "connected") if case.scenario == "idle" else ("start", "end")
    if a not in others or b not in others:
        return None
    wall = samples[b].t - samples[a].t
    if wall <= 0.2:
        return None  # too short for /proc/stat's clock ticks
    machine = others[b][0] - others[a][0]
    ours = others[b][1] - others[a][1] + samples[b].cpu - samples[a].cpu
    return round(max(0.0, machine - ours) / wall, 3)


def wait_quiet(progress: Progress, limit: float = 0.15, max_wait: float = 90.0) -> float:
    """Wait (bounded) until other programs use less than ``limit`` cores; return that load."""
    deadline = time.monotonic() + max_wait
    while True:
        a, t = procstat.system_busy(), time.monotonic()
        time.sleep(0.3)
        load = (procstat.system_busy() - a) / (time.monotonic() - t)
        if load < limit or time.monotonic() >= deadline:
            return load
        progress.update(f"waiting for the machine to be quiet (others use {load:.2f} cores)")


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


_STRACE_OK: list[bool] = []


def strace_works() -> bool:
    """Whether strace can trace a child here (installed, ptrace and seccomp allowed)."""
    if not _STRACE_OK:
        ok = False
        if shutil.which("strace"):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                done = subprocess.run(
                    [*STRACE, "-o", os.devnull, "true"], capture_output=True, timeout=10
                )
                ok = done.returncode == 0
        _STRACE_OK.append(ok)
    return _STRACE_OK[0]


def parse_syncs(path: Path) -> list[tuple[float, float]]:
    """(start, end) wall-clock times of every fsync/fdatasync in an strace log."""
    started: dict[str, float] = {}
    syncs: list[tuple[float, float]] = []
    for line in path.read_text(errors="replace").splitlines():
        if m := _SYNC_START.match(line):
            started[m.group(1)] = float(m.group(2))
        if (end := _SYNC_END.match(line)) and end.group(1) in started:
            t0 = started.pop(end.group(1))
            syncs.append((t0, t0 + float(end.group(2))))
    return syncs


def sync_metrics(
    trace: Path, gen: dict[str, Any], *, acks_wait_for_sync: bool = True
) -> dict[str, Any]:
    """The server's syncs during the phase, and how many slow copies overlapped a slow one.

    A copy is slow when its latency is above the run's p99; a sync is slow when
    it took longer than ``SLOW_SYNC_MS``. A slow copy "waited on a slow sync"
    when a slow sync of the server ran while the copy was on its way (between
    its send and its arrival): its commit, or one its commit queued behind.

    That overlap is no measure of how much of the copy's time was the disk's.
    "Beyond the disk" is: with ``fsync`` a copy cannot arrive before the end of
    the first sync that *started* after it was sent (its commit's sync, or an
    earlier one it waited for), so its arrival minus that end is the time the
    disk does not explain: an upper bound on what the server itself added
    (queueing behind a long fan-out after a stall counts as the server's).
    With ``os`` (``acks_wait_for_sync`` false) the acks wait for no sync, and
    the figure would say nothing: it is left out.
    """
    t0, t1 = float(gen["t0_wall"]), float(gen["t_end_wall"])
    syncs = sorted((a, b) for a, b in parse_syncs(trace) if t0 <= a <= t1)
    q = quantiles([(b - a) * 1e3 for a, b in syncs])
    slow_syncs = [(a, b) for a, b in syncs if (b - a) * 1e3 > SLOW_SYNC_MS]
    slow = [(float(a), float(b)) for a, b in gen.get("slow_deliveries", [])]
    waited = sum(1 for sent, got in slow if any(a < got and b > sent for a, b in slow_syncs))
    out: dict[str, Any] = {
        "syncs": len(syncs),
        "sync_p50_ms": round(q["p50_ms"], 3),
        "sync_p99_ms": round(q["p99_ms"], 3),
        "sync_max_ms": round(q["max_ms"], 3),
        "slow_syncs": len(slow_syncs),
        "slow_deliveries": len(slow),
        "slow_waited_on_sync": waited,
    }
    if not acks_wait_for_sync or not slow:
        return out
    starts = [a for a, _ in syncs]
    beyond = []  # ms of each slow copy's latency after the first sync started after its send
    for sent, got in slow:
        i = bisect.bisect_left(starts, sent)
        floor = syncs[i][1] if i < len(syncs) and syncs[i][1] <= got else sent
        beyond.append((got - floor) * 1e3)
    out["slow_beyond_disk"] = sum(1 for b in beyond if b > SLOW_SYNC_MS)
    out["beyond_disk_p50_ms"] = round(quantiles(beyond)["p50_ms"], 3)
    out["beyond_disk_max_ms"] = round(max(beyond), 3)
    return out


def _split(case: Case) -> list[dict[str, Any]]:
    """The params of each generator process (only idle uses several)."""
    if case.parts <= 1:
        return [dict(case.params)]
    n = int(case.params["clients"])
    share = math.ceil(n / case.parts)
    out = []
    for part in range(case.parts):
        count = min(share, n - part * share)
        out.append({**case.params, "clients": count})
    return out


# --------------------------------------------------------------------------- metrics


def _delta(samples: dict[str, procstat.Sample], a: str, b: str) -> float:
    return samples[b].cpu - samples[a].cpu


def derive(
    case: Case, gen: list[dict[str, Any]], samples: dict[str, procstat.Sample]
) -> dict[str, Any]:
    """The figures of one run, flat."""
    verified = all(r.get("check", {}).get("verified") for r in gen)
    if case.scenario in ("burst", "rate"):
        r = gen[0]
        cpu = _delta(samples, "start", "end")
        elapsed = r["elapsed_s"]
        server_busy = cpu / elapsed if elapsed else 0.0
        deliveries = r["deliveries"]
        return {
            "verified": verified,
            "deliveries": deliveries,
            "deliveries_per_s": r["deliveries_per_s"],
            "messages_per_s": r["messages_per_s"],
            "cpu_us_per_delivery": cpu * 1e6 / deliveries if deliveries else None,
            "cpu_us_per_message": cpu * 1e6 / r["acks"] if r["acks"] else None,
            "server_cpu_s": round(cpu, 3),
            "server_busy": round(server_busy, 3),
            "generator_busy": r["generator_busy"],
            # The generator, not the server, set the pace: it was busy all the time
            # while the server still had idle time.
            "generator_limited": r["generator_busy"] >= 0.9 and server_busy < 0.9,
            "lat_p50_ms": r["latency_ms"]["p50"],
            "lat_p99_ms": r["latency_ms"]["p99"],
            "lat_max_ms": r["latency_ms"]["max"],
            "read_p99_ms": r.get("read_latency_ms", {}).get("p99"),
            "ack_p99_ms": r["ack_latency_ms"]["p99"],
            "peak_rss_mib": samples["end"].hwm_kib / 1024,
            "rss_mib": samples["end"].rss_kib / 1024,
            "window": r.get("window"),
        }
    if case.scenario == "idle":
        n = sum(r["clients"] for r in gen)
        base = samples["connect"]
        t_connected = max(r["t_connected"] for r in gen)
        logins = [r["login_ms"]["p99"] for r in gen if r["login_ms"]["p99"] is not None]
        return {
            "verified": verified,
            "clients": n,
            "alive": sum(r["alive_after_hold"] for r in gen),
            "connect_s": round(t_connected - base.t, 3),
            "kib_per_conn": (samples["connected"].rss_kib - base.rss_kib) / n,
            "kib_per_conn_held": (samples["held"].rss_kib - base.rss_kib) / n,
            "rss_mib": samples["held"].rss_kib / 1024,
            "base_rss_mib": base.rss_kib / 1024,
            "cpu_us_per_login": _delta(samples, "connect", "connected") * 1e6 / n,
            "login_p99_ms": max(logins) if logins else None,
            "threads": samples["held"].threads,
            "generator_cpu_s": sum(r.get("generator_cpu_s", 0.0) for r in gen),
        }
    if case.scenario == "dm":
        r = gen[0]
        cpu = _delta(samples, "start", "end")
        return {
            "verified": verified,
            "acks": r["acks"],
            "acks_per_s": r["acks_per_s"],
            "cpu_us_per_ack": cpu * 1e6 / r["acks"] if r["acks"] else None,
            "server_busy": round(cpu / r["elapsed_s"], 3) if r["elapsed_s"] else None,
            "generator_busy": r["generator_busy"],
            "ack_p50_ms": r["ack_latency_ms"]["p50"],
            "ack_p99_ms": r["ack_latency_ms"]["p99"],
            "lat_p99_ms": r["latency_ms"]["p99"],
            "peak_rss_mib": samples["end"].hwm_kib / 1024,
        }
    if case.scenario == "reconnect":
        r = gen[0]
        cpu = _delta(samples, "start", "end")
        return {
            "verified": verified,
            "accounts": r["accounts"],
            "replayed": r["replayed"],
            "elapsed_s": r["elapsed_s"],
            "logins_per_s": r["logins_per_s"],
            "login_p50_ms": r["login_ms"]["p50"],
            "login_p99_ms": r["login_ms"]["p99"],
            "cpu_ms_per_login": cpu * 1e3 / r["accounts"] if r["accounts"] else None,
            "peak_rss_mib": samples["end"].hwm_kib / 1024,
        }
    raise ValueError(case.scenario)


def summarize(runs: list[Run]) -> list[dict[str, Any]]:
    """Medians per (case, server), and chinwag/baseline ratios."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        key = (run.case.scenario, run.case.label)
        row = rows.setdefault(
            key,
            {
                "scenario": run.case.scenario,
                "case": run.case.label,
                "size": run.case.size,
                "params": run.case.params,
                "note": run.case.note,
                "servers": {},
            },
        )
        entry = row["servers"].setdefault(run.server, {"runs": 0, "failed": 0, "_m": []})
        entry["runs"] += 1
        entry["disturbed"] = entry.get("disturbed", 0) + int(bool(run.metrics.get("disturbed")))
        if run.metrics:
            entry["_m"].append(run.metrics)
        if not run.ok:
            entry["failed"] += 1
            entry.setdefault("errors", []).append(run.error)
    out = []
    for row in rows.values():
        for entry in row["servers"].values():
            ms = entry.pop("_m")
            entry["verified"] = entry["failed"] == 0 and bool(ms)
            med: dict[str, Any] = {}
            for name in ms[0] if ms else []:
                values = [m[name] for m in ms if isinstance(m.get(name), int | float)]
                if name == "verified":
                    continue
                if ms and isinstance(ms[0].get(name), bool):
                    med[name] = sum(bool(m.get(name)) for m in ms) * 2 > len(ms)
                elif values:
                    med[name] = round(statistics.median(values), 4)
            entry["median"] = med
        c = row["servers"].get("chinwag", {}).get("median", {})
        b = row["servers"].get("baseline", {}).get("median", {})
        row["ratio"] = {
            k: round(c[k] / b[k], 3)
            for k in c
            if k in b
            and isinstance(c[k], int | float)
            and not isinstance(c[k], bool)
            and isinstance(b[k], int | float)
            and b[k]
        }
        out.append(row)
    return out


# --------------------------------------------------------------------------- plan


def build_plan(args: argparse.Namespace) -> list[Case]:
    cfg = json.loads(json.dumps(QUICK if args.quick else FULL))
    if args.burst_sizes:
        cfg["burst"]["sizes"] = args.burst_sizes
    if args.idle_sizes:
        cfg["idle"]["sizes"] = args.idle_sizes
    if args.readers:
        cfg["burst"]["readers"] = args.readers
    if args.rate:
        cfg["rate"]["rate"] = args.rate
    if args.window:
        cfg["burst"]["window"] = args.window
    # How long deliveries may stand still before a run gives up on the missing ones.
    stall = 2.0 if args.quick else 5.0
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    per_proc = max(100, hard - 200)  # connections one generator process can hold
    server_cap = max(100, hard - 64)  # the server needs a few fds of its own
    plan: list[Case] = []
    for scenario in args.only:
        c = cfg[scenario]
        if scenario == "burst":
            for n in c["sizes"]:
                for readers in c["readers"]:
                    params = {
                        "clients": n,
                        "senders": c["senders"],
                        "messages": c["messages"],
                        "window": c["window"],
                        "readers": readers,
                        "timeout": 120,
                        "stall": stall,
                    }
                    plan.append(Case("burst", f"n={n} {readers}", params, n))
        elif scenario == "rate":
            per = max(1, int(c["rate"] * c["seconds"] / c["senders"]))
            params = {
                "clients": c["clients"],
                "senders": c["senders"],
                "messages": per,
                "rate": c["rate"],
                "readers": "eager",
                "timeout": c["seconds"] * 3 + 60,
                "stall": stall,
            }
            label = f"n={c['clients']} {c['rate']} msg/s"
            plan.append(Case("rate", label, params, c["clients"]))
        elif scenario == "idle":
            for n in c["sizes"]:
                run_n = min(n, server_cap)
                note = ""
                if run_n < n:
                    note = (
                        f"{n:,} asked; {run_n:,} run: the open-files hard limit here is "
                        f"{hard:,} per process and cannot be raised"
                    )
                params = {"clients": run_n, "hold": c["hold"], "timeout": 120}
                parts = max(1, math.ceil(run_n / per_proc))
                plan.append(Case("idle", f"n={n}", params, n, parts=parts, note=note))
        elif scenario == "dm":
            params = {
                "pairs": c["pairs"],
                "messages": c["messages"],
                "window": c["window"],
                "timeout": 120,
                "stall": stall,
            }
            plan.append(Case("dm", f"{c['pairs']} pairs", params, c["pairs"] * 2))
        elif scenario == "reconnect":
            params = {
                "accounts": c["accounts"],
                "room_backlog": c["room_backlog"],
                "dm_backlog": c["dm_backlog"],
                "password": STORM_PASSWORD,
                "timeout": 300,
            }
            label = f"{c['accounts']} accounts"
            plan.append(Case("reconnect", label, params, c["accounts"]))
    return plan


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "open_files_hard_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
    }
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        info["commit"] = rev + ("+dirty src" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        import uvloop  # type: ignore[import-not-found]  # noqa: F401

        info["loop"] = "uvloop"
    except ImportError:
        info["loop"] = "asyncio"
    return info


# --------------------------------------------------------------------------- main


def _ints(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def _names(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in names if x not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown: {', '.join(bad)} (choose from {allowed})")
        return names

    return parse


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="chinwag benchmark suite: fan-out burst, fixed rate, idle connections, "
        "DM storm, reconnect storm; chinwag against a thread-per-client baseline.",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, one run each (< 60 s)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--out", type=Path, help="also write the JSON report to this file")
    p.add_argument(
        "--only",
        type=_names(
            (
                *SCENARIOS,
                "abuse",
                "ws",
                "search",
                "webload",
                "nodes",
                "ircfanout",
                "nodes-latency",
                "revisions",
                "metrics-cost",
                "walpages",
            )
        ),
        default=list(SCENARIOS),
        help=f"comma-separated scenarios (default: all of {','.join(SCENARIOS)}); "
        "or abuse alone: the attacks of bench/abuse.py; or ws alone: WebSocket against "
        "TCP fan-out (bench/wsfanout.py); or search alone (bench/search.py); or webload "
        "alone: the web client's time to interactive in Chromium (bench/webload.py); or nodes"
        " alone: SQLite, PostgreSQL and two PostgreSQL nodes side by side (bench/nodes.py); or "
        "ircfanout alone: IRC against JSON-lines fan-out (bench/ircfanout.py); or nodes-latency"
        " alone: two nodes at a fixed rate, then a Redis outage (bench/nodeslatency.py); or "
        "revisions alone: edits and reactions against messages (bench/revisions.py); or "
        "metrics-cost alone: the burst with metrics on and off, interleaved "
        "(bench/metricscost.py); or walpages alone: WAL pages per commit of messages, "
        "by b-tree, schema 011 against 012 (bench/walpages.py)",
    )
    p.add_argument(
        "--servers",
        type=_names(SERVERS),
        default=list(SERVERS),
        help="comma-separated servers to run (default: chinwag,baseline)",
    )
    p.add_argument("--repeat", type=int, help="runs per case and server (default 3; --quick 1)")
    p.add_argument("--burst-sizes", type=_ints, help="burst room sizes, e.g. 100,500,2000")
    p.add_argument("--idle-sizes", type=_ints, help="idle connection counts, e.g. 1000,10000")
    p.add_argument(
        "--readers", type=_names(("eager", "relaxed")), help="burst readers: eager,relaxed"
    )
    p.add_argument("--rate", type=int, help="messages per second in the rate scenario")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a chinwag setting for the chinwag servers (repeatable), e.g. commit_delay=0",
    )
    p.add_argument(
        "--window", type=int, help="burst: messages each sender has unacked at once (default 8)"
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin server and generator")
    p.add_argument(
        "--retries",
        type=int,
        help="rerun a run that other programs disturbed (> 0.25 core), up to this many "
        "times (default 2; --quick 0)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        help="before each run, wait up to this many seconds for other programs to go "
        "quiet (default 90; --quick 0)",
    )
    from bench import abuse, search

    abuse.add_arguments(p)
    search.add_arguments(p)
    from bench import wsfanout

    wsfanout.add_arguments(p)
    from bench import webload

    webload.add_arguments(p)
    from bench import nodes

    nodes.add_arguments(p)
    from bench import ircfanout

    ircfanout.add_arguments(p)
    from bench import nodeslatency

    nodeslatency.add_arguments(p)
    from bench import revisions

    revisions.add_arguments(p)
    from bench import metricscost

    metricscost.add_arguments(p)
    from bench import walpages

    walpages.add_arguments(p)
    # Tests only: make the baseline misdeliver on purpose, to show the checks catch it.
    p.add_argument("--baseline-fault", choices=["drop", "dup", "reorder"], help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if "abuse" in args.only:
        if args.only != ["abuse"]:
            parser.error("--only abuse runs alone")
        from bench import abuse

        return abuse.run(args)
    if "ws" in args.only:
        if args.only != ["ws"]:
            parser.error("--only ws runs alone")
        from bench import wsfanout

        return wsfanout.run(args)
    if "search" in args.only:
        if args.only != ["search"]:
            parser.error("--only search runs alone")
        from bench import search

        return search.run(args)
    if "ircfanout" in args.only:
        if args.only != ["ircfanout"]:
            parser.error("--only ircfanout runs alone")
        from bench import ircfanout

        return ircfanout.run(args)
    if "webload" in args.only:
        if args.only != ["webload"]:
            parser.error("--only webload runs alone")
        from bench import webload

        return webload.run(args)
    if "nodes" in args.only:
        if args.only != ["nodes"]:
            parser.error("--only nodes runs alone")
        from bench import nodes

        return nodes.run(args)
    if "nodes-latency" in args.only:
        if args.only != ["nodes-latency"]:
            parser.error("--only nodes-latency runs alone")
        from bench import nodeslatency

        return nodeslatency.run(args)
    if "revisions" in args.only:
        if args.only != ["revisions"]:
            parser.error("--only revisions runs alone")
        from bench import revisions

        return revisions.run(args)
    if "metrics-cost" in args.only:
        if args.only != ["metrics-cost"]:
            parser.error("--only metrics-cost runs alone")
        from bench import metricscost

        return metricscost.run(args)
    if "walpages" in args.only:
        if args.only != ["walpages"]:
            parser.error("--only walpages runs alone")
        from bench import walpages

        return walpages.run(args)
    repeat = args.repeat or (1 if args.quick else 3)
    retries = args.retries if args.retries is not None else (0 if args.quick else 2)
    quiet_wait = args.quiet_wait if args.quiet_wait is not None else (0.0 if args.quick else 90.0)
    pin = not args.no_pin and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2
    if pin:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {GEN_CPU})
    plan = build_plan(args)
    progress = Progress(quiet=False)
    runs: list[Run] = []
    servers_of = {
        case.scenario: [
            s for s in args.servers if not (case.scenario == "reconnect" and s == "baseline")
        ]
        for case in plan
    }
    total = sum(len(servers_of[case.scenario]) for case in plan) * repeat
    extra = {"baseline": ["--fault", args.baseline_fault]} if args.baseline_fault else {}
    for server in DURABILITY:  # a later --set wins over the suite's own
        extra[server] = [x for item in args.set for x in ("--set", item)]
    started = time.monotonic()
    floor: dict[str, float] | None = None
    if any(case.scenario == "rate" for case in plan):
        # The disk under the servers' data, in the same run: what a durable ack waits for.
        progress.set_prefix("disk floor:")
        progress.update("fdatasync of 4 KiB appends")
        syncs, seconds = (500, 3.0) if args.quick else (SYNCS, 30.0)
        floor = sync_latency(tempfile.gettempdir(), syncs, seconds)
        progress.done()
    count = 0
    for case in plan:
        for rep in range(repeat):
            for server in servers_of[case.scenario]:  # reconnect: the baseline has no accounts
                count += 1
                budget = float(case.params.get("timeout", 120)) + 120
                for attempt in range(retries + 1):
                    progress.set_prefix(
                        f"[{count}/{total}] {case.scenario} {case.label} · {server} #{rep + 1}"
                        + (f" (retry {attempt})" if attempt else "")
                        + ":"
                    )
                    if quiet_wait > 0:
                        wait_quiet(progress, max_wait=quiet_wait)
                    run = run_once(
                        Run(case, server, rep), pin, progress, budget, extra=extra.get(server)
                    )
                    foreign = run.metrics.get("foreign_cpu")
                    disturbed = foreign is not None and foreign > DISTURBED
                    if run.metrics:
                        run.metrics["disturbed"] = disturbed
                    if not disturbed or not run.ok:
                        break
                runs.append(run)
                progress.done()
                if not run.ok:
                    print(
                        f"FAILED {case.scenario} {case.label} {server} #{rep + 1}: {run.error}",
                        file=sys.stderr,
                    )
    summary = summarize(runs)
    report = {
        "machine": machine(),
        "disk_floor": floor,
        "pinned": pin,
        "repeat": repeat,
        "quick": bool(args.quick),
        "elapsed_s": round(time.monotonic() - started, 1),
        "summary": summary,
        "targets": targets(summary),
        "runs": [
            {
                "scenario": r.case.scenario,
                "case": r.case.label,
                "server": r.server,
                "repeat": r.repeat,
                "ok": r.ok,
                "error": r.error,
                "metrics": r.metrics,
                "samples": r.samples,
                "generator": r.gen,
            }
            for r in runs
        ],
    }
    emit(report, render_table(report), args)
    return 0 if all(r.ok for r in runs) else 1


def emit(report: dict[str, Any], table: str, args: argparse.Namespace) -> None:
    """Print the table (to stderr with ``--json``, which prints the report); save ``--out``."""
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(table, file=sys.stderr)
        print(json.dumps(report, indent=2))
    else:
        print(table)
