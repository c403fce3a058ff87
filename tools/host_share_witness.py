#!/usr/bin/env python3
"""How well the interference monitor's host-share looks see what a neighbour on the host takes: each
second, one look of ``hwcal.machine.host_share`` (as a calibration takes it, after a 256 MiB sweep every
third time, as a calibration's DRAM cases leave the cache) and a witness timed with numpy alone: a
(16,256,64) @ (16,64,256) fp32 matmul, two threads, whose data lives in L2 and the LLC. The witness is not
the probe's code: it is the kind of case the looks exist to protect. Prints one line a look, then the
counts: witness slow (over ``--slow-us``) or not, look below 0.7 of its reference or not.

    python tools/host_share_witness.py --seconds 300
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from hwcal.machine.host_share import HostShareProbe
from hwcal.machine.interference import Thresholds


def _best_us(call: object, reps: int) -> float:
    assert callable(call)
    call()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            call()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120.0, help="how long to watch (default 120)")
    ap.add_argument("--slow-us", type=float, default=900.0,
                    help="the witness is slow above this (default 900; 600-670 us on a quiet Zen 5 guest)")
    args = ap.parse_args(argv)
    probe, why = HostShareProbe.for_this_machine()
    if probe is None:
        print(f"no host-share look here: {why}", file=sys.stderr)
        return 2
    gen = np.random.default_rng(0)
    a = gen.random((16, 256, 64), dtype=np.float32)
    b = gen.random((16, 64, 256), dtype=np.float32)
    c = np.empty((16, 256, 256), np.float32)
    sweep = np.ones(32 << 20)  # 256 MiB
    fraction = Thresholds().host_share_fraction
    counts: dict[tuple[bool, bool], int] = {}
    end, i = time.time() + args.seconds, 0
    print("time      core  cache  witness_us  slow  flagged")
    while time.time() < end:
        i += 1
        if i % 3 == 0:
            sweep.sum()
        probe._last = None  # a fresh look each time (a calibration reuses one for 0.2 s)
        core, cache = probe.look()
        core_ref, _ = probe.reference()
        flagged = (core is not None and core < fraction * core_ref) or (cache is not None and cache < fraction)
        witness = _best_us(lambda: np.matmul(a, b, out=c), 10)
        slow = witness > args.slow_us
        counts[(slow, flagged)] = counts.get((slow, flagged), 0) + 1
        print(f"{time.strftime('%H:%M:%S')}  {core or 0:.2f}  {cache or 0:.2f}  {witness:10.1f}  {slow!s:5} "
              f"{flagged}", flush=True)
        time.sleep(1.0)
    slow_n = counts.get((True, True), 0) + counts.get((True, False), 0)
    quiet_n = counts.get((False, True), 0) + counts.get((False, False), 0)
    print(f"witness slow at {slow_n} looks, flagged at {counts.get((True, True), 0)} of them; "
          f"flagged at {counts.get((False, True), 0)} of the other {quiet_n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
