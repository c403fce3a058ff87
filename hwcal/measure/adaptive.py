"""Adaptive sampling: spend a sweep's time where its curve bends, not on a uniform grid.

A sweep runs its coarse points first; each refinement point between them then asks whether its measured
neighbours leave anything to learn, and is skipped with the reason when they do not:

- GEMM shape lines (time against M, or tokens): the log-log slope of the segment the neighbours span
  against the segments beside it (``bend_reason``); a change over ``BEND_TOL`` is a bend (a 10 % timing
  noise on a 2x step moves a slope by ~0.14). Position 1 is no neighbour of that judgement: frameworks may
  run M = 1 as a GEMV (numpy's matmul does), another kernel.
- BLAS sizes (GB/s against working set): the neighbours' bandwidths (``refinement_reason``); a difference of
  ``STEP`` or more is a tier step between them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

BEND_TOL = 0.25
MAX_GAP = 16  # line neighbours further apart than this are never trusted to be straight between them
STEP = 1.2


def _slope(a: tuple[int, float], b: tuple[int, float]) -> float:
    return math.log(b[1] / a[1]) / math.log(b[0] / a[0])


def bend_reason(points: list[tuple[int, float]], value: int, what: str) -> str | None:
    """None when ``value`` should be measured (a bend, or too little known), else why it need not be.

    ``points`` are (position, seconds per call) measured on the line. Position 1 is left out of the
    judgement (a GEMV path at M = 1 is no neighbour on the GEMM curve)."""
    fastest: dict[int, float] = {}  # one time per position: the best of any repeats
    for position, seconds in points:
        if position > 1 and seconds > 0:
            fastest[position] = min(seconds, fastest.get(position, seconds))
    known = sorted(fastest.items())
    below = [p for p in known if p[0] < value]
    above = [p for p in known if p[0] > value]
    if not below or not above:
        return None
    lo, hi = below[-1], above[0]
    if hi[0] / lo[0] > MAX_GAP:
        return None
    inner = _slope(lo, hi)
    beside = []
    if len(below) > 1:
        beside.append(_slope(below[-2], lo))
    if len(above) > 1:
        beside.append(_slope(hi, above[1]))
    if not beside or max(abs(inner - s) for s in beside) > BEND_TOL:
        return None
    return (f"{what}: not needed, the curve is straight here (log-log slope {inner:.2f} from {lo[0]} to {hi[0]}, "
            f"{', '.join(f'{s:.2f}' for s in beside)} beside it; a bend is a change over {BEND_TOL})")


def refinement_sizes(base: list[int]) -> list[int]:
    """Sizes between the planned ones where a tier step may hide: the geometric middle of every gap of 8x or
    more, then the quarter points of gaps of 32x or more (middles first). Each runs only where its measured
    neighbours differ (``refinement_reason``)."""
    ordered = sorted(base)
    middles, quarters = [], []
    for a, b in itertools.pairwise(ordered):
        ratio = math.log2(b / a)
        if ratio >= 3:
            middles.append(1 << round(math.log2(a) + ratio / 2))
        if ratio >= 5:
            quarters += [1 << round(math.log2(a) + ratio / 4), 1 << round(math.log2(a) + 3 * ratio / 4)]
    return [s for s in dict.fromkeys(middles + quarters) if s not in base]


def refinement_reason(measured: list[tuple[int, float]], nbytes: int, what: str,
                      size_label: Callable[[int], str] = str) -> str | None:
    """None when a refinement size should run (a step between its neighbours, or a neighbour missing), else
    why not: the measured sizes (bytes, GB/s) either side reach GB/s within ``STEP``, so no tier boundary
    lies between them."""
    below = [m for m in measured if m[0] < nbytes]
    above = [m for m in measured if m[0] > nbytes]
    if not below or not above:
        return None
    lo, hi = max(below), min(above)
    if max(lo[1], hi[1]) >= STEP * min(lo[1], hi[1]):
        return None
    return (f"{what}: not needed, {size_label(lo[0])} and {size_label(hi[0])} either side reach {lo[1]:.4g} and "
            f"{hi[1]:.4g} GB/s (within {STEP - 1:.0%}: no tier step between them)")
