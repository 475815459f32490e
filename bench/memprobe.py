"""Run ``chinwag`` in-process under tracemalloc; SIGUSR1 dumps a snapshot.

    python -m bench.memprobe OUTDIR -m chinwag serve --port 0 ...

Each SIGUSR1 writes ``OUTDIR/snap-<n>.tracemalloc``. ``python -m bench.profile
--tool tracemalloc`` takes one before and one after the measured phase and
prints where the memory that stayed went, per allocation site. tracemalloc makes
the server slower and bigger; use it for the breakdown, not for the figures.
"""

from __future__ import annotations

import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType


def main() -> int:
    out = Path(sys.argv[1])
    if sys.argv[2:4] != ["-m", "chinwag"]:
        raise SystemExit("usage: python -m bench.memprobe OUTDIR -m chinwag serve ...")
    out.mkdir(parents=True, exist_ok=True)
    count = 0

    def dump(signum: int, frame: FrameType | None) -> None:
        nonlocal count
        path = out / f"snap-{count}.tracemalloc"
        tmp = path.with_suffix(".tmp")
        tracemalloc.take_snapshot().dump(str(tmp))
        tmp.rename(path)
        count += 1

    tracemalloc.start(8)
    signal.signal(signal.SIGUSR1, dump)
    from chinwag.cli import main as chinwag_main

    return chinwag_main(sys.argv[4:])


if __name__ == "__main__":
    sys.exit(main())
