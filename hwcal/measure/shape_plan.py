"""Where the GEMM shape families spend their time: a dense sweep of small M at layer-like N and K, batched
GEMM at attention-like sizes, and the transformer projections; coarse points first, then refinements that
run only where the measured curve bends.

- ``small_m``: per (N, K) pair, M = 1, 2, 16, 128, 512 always, then M = 4, 32, 256, 8, 64 where needed;
  on CPUs M = 4, 8 and 32 always too. M = 32 was skipped as "straight" between 16 and 128, but the model
  weighs a problem's nearest Ms, not that line: a Llama-3.2-1B layer at 32 tokens was predicted from the
  M = 16 calls, its projections 12-27 % slow (numpy) and the layer 17 % off (numpy and torch). torch's CPU
  mm grows about linearly from M = 1 to 4, then not at all to 8 (this VM, 1152x1152: 55, 111, 233, 240,
  336 us at M = 1, 2, 4, 8, 16), so the line from 2 to 16 looks
  straight from either end while M = 4 lies 30-45 % above it: a refinement judged by its neighbours was
  skipped, and the referee's M = 4 projections were predicted 35-46 % fast.
  The pairs span the cache tiers of the weights (CPU: one inside a cache, one at a few MB, two tall/wide
  ones of 4x that; GPU: one near the L2's size, two tall/wide ones of 4x that) at sizes no common model
  uses, so a model's layers stay held out from the calibration. On a CPU one more pair holds its weights
  beyond the last-level cache (``beyond_llc_pair``, at M = 1, 4, 16, 32 and 128): the others all fit a
  32 MB L3, and a model's larger projections do not (numpy's 32x14976x1152, 69 MB of fp32 weights, ran at
  113-123 GFLOPS on the Zen 4 guest where the 21 MB pairs at M = 32 ran at 130-139).
- ``pow2_n``: on CPUs, the same K at N = 16384, a power of two (``POW2_N``, at M = 1, 4, 32 and 128): B's rows
  then lie 64 KiB apart in fp32, and OpenBLAS and oneDNN run such a GEMM slower than its neighbours (the
  Zen 4 guest, numpy fp32, interleaved, best of 5: 32x16384x1152 at 77-79 GFLOPS where 32x16128x1152 and
  32x16448x1152 ran at 94-96; 32x16384x2048 at 73-84 against 106-112 at N = 16128, 16448 and 14976; 4x16384x2048
  at 14.7 against 21.9 at 16448; torch fp32 45 against 56-60). The width is common in models (Llama 3.2's
  fused gate and up projections): the Llama 3.2 1B layer at 32 tokens was predicted 25-30 % fast from the
  odd-width pairs. Kept out of the interpolation, these calls say how much slower such a stride runs
  (``hwcal.model.gemm``); no other pair has a power-of-two width.
- ``batched``: attention per head, scores-like (B, T, T, d) and values-like (B, T, d, T) over the tokens
  T, and one decode step of each (a row of queries against a cache of L keys). On CPUs T = 4 and 16 too
  (short prompts): numpy's stacks of 16x16x64 cost 0.45 us a matrix where the 4x4 floor's cost 0.06 us,
  so the referee's attention at 4 and 16 tokens, extrapolated from T = 64, was predicted 27-33 % fast.
- ``proj_up`` / ``proj_down``: a block's projections, M x 4H x H and M x H x 4H (as before).

A refinement between two measured neighbours is skipped, with the reason, when the log-log curve of time
is straight across them (``hwcal.measure.adaptive.bend_reason``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

COARSE_M = {"cpu": (1, 2, 4, 8, 16, 32, 128, 512), "gpu": (1, 2, 16, 128, 512)}
# Refinements in two stages: the middles of the coarse gaps, then the quarters.
REFINE_M = {"cpu": ((256,), (64,)), "gpu": ((4, 32, 256), (8, 64))}

# Per device type: small-M (N, K) pairs; attention (heads, head dim, coarse T, refinement T, decode cache L).
# A GPU case costs ~0.2 s (rounds of 20 ms): its grid is smaller, so that bf16 and fp16 complete in the budget.
SMALL_M_PAIRS = {"cpu": ((640, 640), (1152, 1152), (4608, 1152), (1152, 4608)),
                 "gpu": ((4352, 4352), (17408, 4352), (4352, 17408))}
# Coarse T: the first is --quick's one size.
ATTENTION = {"cpu": (16, 64, (64, 256, 1024, 16, 4), (128, 512), 1024),
             "gpu": (24, 128, (512, 4096), (1024, 2048), 4096)}
PROJECTIONS = {"cpu": ((256, 512, 768), (128,)), "gpu": ((4096,), (2048,))}
# The CPU pair beyond the last-level cache: K = 1152, N an odd multiple of it (no model's width) holding at
# least twice the LLC in fp32, at most 63 x 1152 (306 MB); the Ms it runs at (coarse, after the others).
BEYOND_LLC_K = 1152
BEYOND_LLC_MAX_MULTIPLE = 63
BEYOND_LLC_M = (1, 4, 16, 32, 128)
# The CPU power-of-two width (fp32: rows 64 KiB apart) at the pair's K, and its Ms (after the pair beyond the LLC).
POW2_N = 16384
POW2_M = (1, 4, 32, 128)


@dataclass(frozen=True)
class Shape:
    family: str
    batch: int
    m: int
    n: int
    k: int
    source: str = "default"
    refine: bool = False  # a refinement: runs only where its neighbours show a bend

    @property
    def label(self) -> str:
        """``128x3072x768`` (M x N x K), ``b32x128x128x64`` for a batch: ids a ``-k`` can name."""
        mnk = f"{self.m}x{self.n}x{self.k}"
        return f"b{self.batch}x{mnk}" if self.batch > 1 else mnk

    @property
    def flops(self) -> int:
        return 2 * self.batch * self.m * self.n * self.k


def line_of(family: str, batch: int, m: int, n: int, k: int) -> tuple[tuple[Any, ...], int] | None:
    """(the sweep line a shape lies on, its position along it), or None for a shape on no line: small M
    along M at one (N, K); attention scores (M = N = T) and values (M = K = T) along T at one (B, d)."""
    if family == "small_m" and batch == 1:
        return ("small_m", n, k), m
    if family == "batched" and m == n and m > 1:
        return ("scores", batch, k), m
    if family == "batched" and m == k and m > 1:
        return ("values", batch, n), m
    return None


def _small_m(pairs: Iterable[tuple[int, int]], ms: Iterable[int], refine: bool) -> list[Shape]:
    return [Shape("small_m", 1, m, n, k, refine=refine) for m in ms for n, k in pairs]


def _attention(b: int, d: int, tokens: Iterable[int], refine: bool) -> list[Shape]:
    out: list[Shape] = []
    for t in tokens:
        out += [Shape("batched", b, t, t, d, refine=refine), Shape("batched", b, t, d, t, refine=refine)]
    return out


def beyond_llc_pair(llc_bytes: int) -> tuple[int, int]:
    """(N, K) of a small-M pair whose fp32 weights hold at least twice ``llc_bytes``."""
    need = math.ceil(2 * llc_bytes / (4 * BEYOND_LLC_K * BEYOND_LLC_K))
    multiple = min(BEYOND_LLC_MAX_MULTIPLE, max(3, need + (1 - need % 2)))  # odd: never a power-of-two width
    return multiple * BEYOND_LLC_K, BEYOND_LLC_K


def default_shapes(device_type: str, quick: bool, llc_bytes: int | None = None) -> list[Shape]:
    """The families' shapes in run order: every coarse point first (small M, attention, projections, then on
    a CPU whose ``llc_bytes`` is known the pair beyond it, then on a CPU the power-of-two width and the pairs'
    M = 512, compute-bound calls the square sweep and the projections border, which took 2.3 of fp32's 4 s on a
    noisy torch run and left the wider weights unmeasured), then the refinements, the coarse gaps' middles
    before their quarters. --quick: one pair at three M, one attention size, one projection each way, no
    refinement."""
    pairs = SMALL_M_PAIRS[device_type]
    b, d, coarse_t, refine_t, cache = ATTENTION[device_type]
    hs, ms = PROJECTIONS[device_type]
    if quick:
        return list(dict.fromkeys(
            _small_m(pairs[1:2], (1, 16, 128), refine=False) + _attention(b, d, coarse_t[:1], refine=False)
            + [Shape("proj_up", 1, ms[0], 4 * hs[-1], hs[-1]), Shape("proj_down", 1, ms[0], hs[-1], 4 * hs[-1])]))
    middles, quarters = REFINE_M[device_type]
    top = COARSE_M[device_type][-1]  # a CPU's M = 512 of every pair comes after the coarse points of the others
    shapes = _small_m(pairs, COARSE_M[device_type][:-1] if device_type == "cpu" else COARSE_M[device_type],
                      refine=False)
    shapes += _attention(b, d, coarse_t, refine=False)
    shapes += [Shape("batched", b, 1, cache, d), Shape("batched", b, 1, d, cache)]
    shapes += [Shape("proj_up", 1, m, 4 * h, h) for h in hs for m in ms]
    shapes += [Shape("proj_down", 1, m, h, 4 * h) for h in hs for m in ms]
    if device_type == "cpu" and llc_bytes:
        shapes += _small_m([beyond_llc_pair(llc_bytes)], BEYOND_LLC_M, refine=False)
    if device_type == "cpu":
        shapes += [Shape("pow2_n", 1, m, POW2_N, BEYOND_LLC_K) for m in POW2_M]
        shapes += _small_m(pairs, (top,), refine=False)
    shapes += _small_m(pairs, middles, refine=True)
    shapes += _attention(b, d, refine_t, refine=True)
    return list(dict.fromkeys(shapes + _small_m(pairs, quarters, refine=True)))  # T = d: scores = values
