"""What the metrics counting costs: the burst with ``metrics`` on and off, interleaved.

``python -m bench --only metrics-cost`` runs the fan-out burst (default 500
eager readers, 10 senders x 200 messages, as the suite's burst) against a fresh
chinwag server per run, in pairs: one run with the counting on (the default),
one with ``--set metrics=false`` (nothing counted), the order alternating from
pair to pair (on/off, off/on, ...) so that a drift in the machine's load falls
on both sides. Each run is the suite's own (``bench.runner.run_once``): every
delivery checked, the server's CPU per delivery from /proc, the CPU other
programs used meanwhile (``foreign_cpu``, cores).

The report gives the median µs per delivery of each side, their difference
(on - off, in µs and % of off), and the median of the pairs' own differences
(each pair ran minutes apart at most, so it shares the machine's state).
Issue 17's bar: the counting costs < 2 % of the burst's CPU per delivery.

On a shared machine runs of the same code differ by far more than 2 %, so the
report also times the counting's own work in this process (``counting_cost``:
what the hot paths do per message, with chinwag's own ``Counts``, on and off)
and gives it as a share of the same run's burst CPU per delivery.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import time
import timeit
import urllib.error
import urllib.request
from typing import Any

from bench.runner import (
    GEN_CPU,
    Case,
    Progress,
    Run,
    ServerProcess,
    emit,
    run_once,
    wait_quiet,
)
from chinwag.core.counts import Counts

BAR_PERCENT = 2.0  # issue 17
_WEB = re.compile(r"metrics: http://127\.0\.0\.1:(\d+)/metrics")
_DELIVERIES = re.compile(r"^chinwag_deliveries_total (\S+)$", re.M)


def scrape(server: ServerProcess) -> dict[str, Any]:
    """``/metrics`` of ``server`` after the phase: its status and the deliveries it counted.

    Called at the generator's last barrier, after the phase's CPU sample: the
    scrape is not in the measured CPU. Shows that the "off" server counted nothing.
    """
    m = _WEB.search(server.log_path.read_text(errors="replace"))
    if m is None:
        return {"status": None, "deliveries": None}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{m.group(1)}/metrics", timeout=10) as r:
            text = r.read().decode()
            status = r.status
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "deliveries": None}
    found = _DELIVERIES.search(text)
    return {"status": status, "deliveries": float(found.group(1)) if found else None}


def counting_cost(copies: int, messages: int = 20_000, repeat: int = 7) -> dict[str, float]:
    """The counting's work per message of the burst, timed here with it on and off.

    Replays, with chinwag's own ``Counts``, what the server's hot paths do for
    each message (core/posting.py, core/delivery.py): on the ack path two
    ``perf_counter()`` and a histogram bucket, one add and ``committed`` (an
    ``OrderedDict`` insert with a ``monotonic()``); on the fan-out ``fanned_out``
    (a pop and a bucket) and one add of the ``copies``. Off, only the same
    ``if counts.on`` checks run. The fan-out is taken one message at a time
    (the server combines several per turn, so this errs high). Best of
    ``repeat`` runs of ``messages``, in µs.
    """
    clock, mono = time.perf_counter, time.monotonic

    def replay(counts: Counts) -> None:
        for i in range(1, messages + 1):
            started = clock() if counts.on else 0.0
            if counts.on:
                counts.ack_seconds.observe(clock() - started)
            if counts.on:
                counts.messages += 1
                counts.committed(i, mono())
            if counts.published:
                counts.fanned_out(i, mono())
            if counts.on:
                counts.deliveries += copies

    def best(on: bool) -> float:
        return min(timeit.repeat(lambda: replay(Counts(on)), number=1, repeat=repeat))

    per_message = (best(True) - best(False)) / messages * 1e6
    return {
        "us_per_message": round(per_message, 4),
        "us_per_delivery": round(per_message / copies, 6),
    }


def _case(clients: int, quick: bool) -> Case:
    params = {
        "clients": clients,
        "senders": 5 if quick else 10,
        "messages": 40 if quick else 200,
        "window": 8,
        "readers": "eager",
        "timeout": 120,
        "stall": 2.0 if quick else 5.0,
    }
    return Case("burst", f"n={clients} eager", params, clients)


def _pct(on: float, off: float) -> float:
    return round((on - off) / off * 100, 2)


def run(args: argparse.Namespace) -> int:
    """``--only metrics-cost``: the table (and the JSON report with ``--json``); the exit status."""
    clients = (args.burst_sizes or [50 if args.quick else 500])[0]
    pairs = args.metrics_pairs or (1 if args.quick else 5)
    quiet_wait = args.quiet_wait if args.quiet_wait is not None else (0.0 if args.quick else 20.0)
    pin = not args.no_pin and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2
    if pin:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {GEN_CPU})
    case = _case(clients, args.quick)
    # /metrics on a port of its own (the burst's servers have no web client), on both sides.
    common = ["--set", "metrics_port=0", *(x for item in args.set for x in ("--set", item))]
    sides = {"on": common, "off": [*common, "--set", "metrics=false"]}
    progress = Progress()
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    errors: list[str] = []
    for pair in range(pairs):
        order = ("on", "off") if pair % 2 == 0 else ("off", "on")
        for side in order:
            progress.set_prefix(f"[pair {pair + 1}/{pairs}] burst {case.label} · metrics {side}:")
            if quiet_wait > 0:
                wait_quiet(progress, max_wait=quiet_wait)
            seen: dict[str, Any] = {}

            def hook(server: ServerProcess, barrier: str, seen: dict[str, Any] = seen) -> None:
                if barrier == "end":
                    seen.update(scrape(server))

            done = run_once(
                Run(case, "chinwag", pair), pin, progress, 240.0, hook=hook, extra=sides[side]
            )
            progress.done()
            if not done.ok:
                errors.append(f"pair {pair + 1} metrics {side}: {done.error}")
                continue
            m = done.metrics
            runs[side].append(
                {
                    "pair": pair,
                    "cpu_us_per_delivery": round(m["cpu_us_per_delivery"], 4),
                    "foreign_cpu": m.get("foreign_cpu"),
                    "lat_p50_ms": m["lat_p50_ms"],
                    "lat_p99_ms": m["lat_p99_ms"],
                    "deliveries": m["deliveries"],
                    "metrics_status": seen.get("status"),
                    "metrics_deliveries": seen.get("deliveries"),
                }
            )
    median = {
        side: round(statistics.median(r["cpu_us_per_delivery"] for r in rs), 4) if rs else None
        for side, rs in runs.items()
    }
    on, off = median["on"], median["off"]
    by_pair = {side: {r["pair"]: r["cpu_us_per_delivery"] for r in rs} for side, rs in runs.items()}
    paired = [
        _pct(by_pair["on"][p], by_pair["off"][p]) for p in by_pair["on"] if p in by_pair["off"]
    ]
    report: dict[str, Any] = {
        "scenario": "metrics-cost",
        "case": case.label,
        "params": case.params,
        "pairs": pairs,
        "pinned": pin,
        "ok": not errors,
        "errors": errors,
        "runs": runs,
        "median_cpu_us_per_delivery": median,
        "on_minus_off_us": round(on - off, 4) if on and off else None,
        "on_over_off_percent": _pct(on, off) if on and off else None,
        "paired_percent": paired,
        "paired_median_percent": round(statistics.median(paired), 2) if paired else None,
        "bar_percent": BAR_PERCENT,
    }
    cost = counting_cost(clients)
    share = round(cost["us_per_delivery"] / off * 100, 3) if off else None
    report["counting"] = {**cost, "percent_of_off": share}
    lines = [
        f"metrics cost: burst {case.label}, {pairs} pair(s) on/off interleaved,"
        " server CPU per delivery (other programs' load in cores)"
    ]
    for side, rs in runs.items():
        each = ", ".join(f"{r['cpu_us_per_delivery']:.3f} ({r['foreign_cpu']})" for r in rs)
        lines.append(f"  metrics {side:3}: median {median[side]} µs   runs: {each}")
    lines.append(
        f"  on - off: {report['on_minus_off_us']} µs per delivery,"
        f" {report['on_over_off_percent']} % of off (medians);"
        f" per pair: {paired} %, median {report['paired_median_percent']} %"
        f" (issue 17's bar: < {BAR_PERCENT:g} %)"
    )
    lines.append(
        f"  the counting's own work, timed in this process: {cost['us_per_message']} µs per"
        f" message = {cost['us_per_delivery']} µs per delivery at {clients} copies,"
        f" {share} % of the off median"
    )
    lines += [f"  FAILED: {e}" for e in errors]
    emit(report, "\n".join(lines), args)
    return 0 if not errors else 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("metrics counting cost (--only metrics-cost)")
    g.add_argument(
        "--metrics-pairs",
        type=int,
        help="burst runs with metrics on and off, interleaved (default 5 pairs; --quick 1);"
        " --burst-sizes picks the room size (default 500)",
    )
