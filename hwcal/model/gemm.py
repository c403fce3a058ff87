"""GEMM time from a calibration's measured GEMMs: a roofline on the bytes actually moved, scaled by how far
the nearest measured GEMMs fell short of their own roofline. Pure, no I/O.

For a problem of B matrices M x K @ K x N in a precision of e bytes:

    flops  = 2 B M N K
    bytes  = B (MK + KN + MN) e          (at small M the weights KN dominate)
    roof   = floor (+) max(flops / (peak x waves), bytes / bandwidth(working set))

- ``peak`` is the best the precision measured (any shape); ``waves`` (GPUs) the wave quantisation of the
  output tiles over the SMs: tiles = B ceil(M/128) ceil(N/128), a last partial wave runs as long as a full
  one, so waves = tiles / (ceil(tiles / SMs) SMs) once there is more than one wave (fewer tiles than SMs:
  cuBLAS takes smaller tiles or splits K, so 1).
- ``bandwidth`` is that of the tier the operands live in: the framework's own GEMV curve (the same
  threads, the same library streaming a matrix) at the working set's bytes, else the memory system's
  read figure (``hwcal.model.bandwidth``). Operands rotated through the GPU's L2 when measured live in
  DRAM whatever their size.
- (+) is a sum on a CPU (a call's overhead and its work run one after the other) and a max on a GPU
  (launches queue behind running kernels, so back to back they overlap). A GPU batch's floor is what its
  batched path costs to start (``_batch_call``), not the GEMM's; a GPU GEMM's is what its precision's
  floor-bound GEMMs take where that is more than the fp32 4x4 launch floor (``_gemm_call``).

Every measured GEMM gives a ratio r = (measured time (-) floor) / work: how much longer its work took than
the roofline's work alone (on a GPU a call the floor hid, within 1.5x of it, says nothing of that and is left
out). A problem's ratio is the inverse-distance weighted mean (power 2) of the log-ratios of its
``NEIGHBOURS`` nearest measured GEMMs in (log2 B, log2 M, log2 N, log2 K, log2 of the elements moved), M
and the elements weighted double (efficiency turns mostly on M: the small-M knee, a GEMV path at M = 1; and
on the tier holding the operands: numpy's M = 4 read 21 MB of weights in the L3 at 13.5 GB/s, 7.8x its
roofline's time, and 69 MB from DRAM at 10 GB/s, 4.3x, so a ratio taken across tiers put 4x3072x8192 at
2.2x its time), over the batched GEMMs for a batch, the others otherwise; its time is floor (+) r x work. At
a measured shape it is that shape's time exactly.

GEMMs of the ``pow2_n`` family (CPUs: small M at N = 16384, B's rows a power of two of bytes apart) stay out of
that pool: a BLAS runs such a stride slower than its neighbours (numpy fp32 on a Zen 4 guest: 32x16384x2048 at
73-84 GFLOPS, 32x16448x2048 at 107), which the log-ratios would otherwise smear over every N near it. Each one
says instead how much slower its stride ran than the model of the others predicts at its shape; a problem of
one matrix whose row of B (N x element bytes) is a multiple of that stride is predicted by the others and
scaled by that factor, interpolated in log M between the measured Ms (the nearest one's beyond them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from hwcal.model.curves import Point

NEIGHBOURS = 4
POWER = 2.0
WEIGHTS = {"batch": 0.5, "m": 2.0, "n": 1.0, "k": 1.0, "elements": 2.0}
NEAR = 4.0  # weighted octaves (M counts double): a nearest measured GEMM further than this is no support
TILE = 128
# A power-of-two width's slowdown fades with M (B packed and reused over more rows): numpy fp32, Zen 4, 16384 against
# 16448 wide, K = 3072: 1.57x at M = 4, 1.53 at 16, 1.24 at 64, 1.0 at 256. Above the largest M measured it fades to
# none at this M (an AMX Xeon numpy run with M = 1 and 4 alone, 1.53x, put 256x16384x2048 at 2.0x its 61 ms).
STRIDE_FADE_M = 256
# In a layer, a compute-bound CPU GEMM whose operands a tier this much faster than the layer's held alone pays their
# whole streaming time from the layer's tier on top. Timed op by op in the Llama 3.2 1B layer at 32 tokens (torch, AMX
# Xeon guest; GEMV curve, own tier / layer's): qkv 25 MB (1.63x) +1.02 ms, o 17 MB (1.63x) +0.62, down 67 MB (1.64x)
# +2.30 (0.75, 0.50, 2.0 so predicted); gate+up 134 MB (1.25x, streamed alone too) +1.9 (whole 4.0, 0.8 so).
CACHED_ALONE = 1.5
FLOOR_BATCH = 16  # matrices in the batched launch floor's call
POW2_FAMILY = "pow2_n"  # small M at a power-of-two N (``hwcal.measure.shape_plan``)


@dataclass(frozen=True)
class Roofline:
    """The model time of a GEMM; ``bandwidth(working_set, warm)`` gives GB/s for its operands."""

    peak_flops: float
    element_bytes: int
    bandwidth: Callable[[float, bool], float]
    floor_s: float
    batched_floor_s: float
    additive: bool
    sms: int | None = None
    gemv_curve: bool = False  # ``bandwidth`` is the framework's own GEMV curve (not a tier figure)

    def waves(self, b: int, m: int, n: int) -> float:
        """The share of the SMs' last wave of output tiles that does work (1 where it is full). A problem of
        fewer tiles than SMs is not quantised so: the library then takes smaller tiles or splits K."""
        if not self.sms:
            return 1.0
        tiles = b * math.ceil(m / TILE) * math.ceil(n / TILE)
        if tiles <= self.sms:
            return 1.0
        return tiles / (math.ceil(tiles / self.sms) * self.sms)

    def floor(self, b: int) -> float:
        """The floor of a batch of ``b``: the batched floor is timed on 16 matrices; on a CPU what it costs over
        a single call is per matrix (numpy calls BLAS once per matrix). On a GPU a batch is one launch like a
        GEMM's, whatever ``b``: the lower of the two floors (an H100's fp32 bmm of 16 4x4 matrices took 22.8 us
        where bf16 attention batches of 32 took 16 us and a 4x4 mm 17.9 us)."""
        if b <= 1:
            return self.floor_s
        if not self.additive:
            return min(self.batched_floor_s, self.floor_s) if self.batched_floor_s > 0 else self.floor_s
        per_matrix = max(0.0, self.batched_floor_s - self.floor_s) / (FLOOR_BATCH - 1)
        return self.floor_s + (b - 1) * per_matrix

    def operand_bytes(self, b: int, m: int, n: int, k: int) -> float:
        return float(b * (m * k + k * n + m * n) * self.element_bytes)

    def compute_s(self, b: int, m: int, n: int, k: int) -> float:
        return 2.0 * b * m * n * k / (self.peak_flops * self.waves(b, m, n))  # at the peak, wave-quantised

    def work(self, b: int, m: int, n: int, k: int, warm: bool = True, resident_bytes: float = 0.0) -> float:
        """Seconds of the work alone: compute, or the bytes from the tier holding them (or ``resident_bytes``)."""
        nbytes = self.operand_bytes(b, m, n, k)
        return max(self.compute_s(b, m, n, k), nbytes / (self.bandwidth(max(nbytes, resident_bytes), warm) * 1e9))

    def combine(self, floor_s: float, work_s: float) -> float:
        return floor_s + work_s if self.additive else max(floor_s, work_s)

    def seconds(self, b: int, m: int, n: int, k: int, warm: bool = True) -> float:
        return self.combine(self.floor(b), self.work(b, m, n, k, warm))


def _features(b: int, m: int, n: int, k: int) -> tuple[float, ...]:
    """Where a problem lies for the neighbour search; the last is the tier's (``SHAPE_FEATURES`` the shape's)."""
    return (WEIGHTS["batch"] * math.log2(b), WEIGHTS["m"] * math.log2(m), WEIGHTS["n"] * math.log2(n),
            WEIGHTS["k"] * math.log2(k), WEIGHTS["elements"] * math.log2(b * (m * k + k * n + m * n)))


SHAPE_FEATURES = 4  # the features of the shape alone: how far the nearest measured GEMM is (``NEAR``)


def _dims(p: Point) -> tuple[int, int, int, int]:
    d = dict(p.dims)
    return d.get("batch", 1), d["m"], d["n"], d["k"]


@dataclass
class GemmAnswer:
    seconds: float
    basis: str
    family: str
    points: list[Point]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Item:
    point: Point
    features: tuple[float, ...]
    log_ratio: float  # log of (measured time less the floor) / the roofline's work time
    bound: bool  # the floor does not hide the work (GPUs: took over BOUND x the floor)


BOUND = 1.5


@dataclass(frozen=True)
class _Stride:
    """A measured GEMM at a power-of-two width: the bytes between B's rows, its M, and the log of how much
    longer it took than the other GEMMs' model predicts at its shape."""

    stride: int
    m: int
    log_factor: float
    point: Point


def floor_estimate(points: Sequence[Point], roofline: Roofline) -> float:
    """The per-call floor the smallest measured GEMMs show, for files without launch floors: the fastest call
    among those whose work (compute or traffic) explains less than half of their time. Measured: H100 fp16
    GEMMs of n = 256 .. 1024 at ~17 us per call; CPU numpy fp32 n = 32 at 2.6 us."""
    calls = [p.seconds for p in points if roofline.work(*_dims(p), p.warm) < 0.5 * p.seconds]
    # No floor exceeds the fastest call (an emulated precision slowing with size would otherwise pass for one).
    return min(min(calls), min(p.seconds for p in points)) if calls else 0.0


def _m1_path(points: Sequence[Point]) -> tuple[str, bool]:
    """What the measured M = 1 and M = 2 calls at the same weights say of the path M = 1 takes, and whether it is
    a GEMV: frameworks may run it as one (numpy's matmul does), so it is measured, never assumed."""
    by_nk: dict[tuple[int, int], dict[int, float]] = {}
    for p in points:
        b, m, n, k = _dims(p)
        if b == 1 and m in (1, 2):
            by_nk.setdefault((n, k), {})[m] = p.seconds
    ratios = sorted(t[2] / t[1] for t in by_nk.values() if len(t) == 2)
    if not ratios:
        return "", False
    ratio = ratios[len(ratios) // 2]
    if ratio >= M1_OTHER_PATH:
        return (f"M = 1 takes another path than M >= 2 (a GEMV: M = 2 took {ratio:.2g}x as long, median of "
                f"{len(ratios)} weight sizes)"), True
    return f"M = 1 and M = 2 take about the same time ({ratio:.2g}x, median of {len(ratios)} weight sizes)", False


M1_OTHER_PATH = 1.5


def _batch_call(points: Sequence[Point], roofline: Roofline) -> float:
    """GPU: the least a batched call of this precision takes back to back, the floor its prediction cannot go
    under: the batched launch floor (fp32 bmm of 16 4x4), or the precision's fastest measured batched GEMM if
    faster, never under the GEMM floor. cuBLAS's batched path costs more to start than a GEMM's: on an H200 the
    bf16 batched GEMMs of 24 matrices took 11.0-12.4 us with little work where a 4x4 mm took 8.1 us, and attention
    batches of 32 x 16x16x128 took 8.3-17 us in the referee, so the GEMM floor under-predicted them by 20-50 %.
    0 where not known (a CPU, where the batch floor is per matrix; no batched floor or GEMM filed)."""
    batched = [p.seconds for p in points if _dims(p)[0] > 1]
    if roofline.additive or not batched or roofline.batched_floor_s <= 0:
        return 0.0
    return max(roofline.floor_s, min(roofline.batched_floor_s, min(batched)))


def _gemm_call(overhead_s: float, roofline: Roofline) -> float:
    """GPU: the least a (non-batched) GEMM of this precision takes back to back, the floor its prediction cannot
    go under: its own floor-bound calls' time where above the launch floor (an fp32 4x4 mm). On an H100 host bf16
    and fp16 GEMMs of 256-1024 took 10.3-10.5 us back to back where the 4x4 fp32 mm took 7.5, and the referee's
    bf16 projections with 25-37 MiB of weights 9.9-10.4 us. 0 on a CPU, where a call's floor and work add."""
    return 0.0 if roofline.additive else max(roofline.floor_s, overhead_s)


class GemmModel:
    """The measured GEMMs of one precision, ready to answer any shape."""

    def __init__(self, points: Sequence[Point], roofline: Roofline) -> None:
        if not points:
            raise ValueError("a GEMM model needs at least one measured GEMM")
        strided = [p for p in points if p.family == POW2_FAMILY and _dims(p)[0] == 1]
        if any(p not in strided and _dims(p)[0] == 1 for p in points):  # else they are its only single GEMMs
            points = [p for p in points if p not in strided]
        else:
            strided = []
        if roofline.floor_s <= 0:  # no launch floor filed: the smallest calls say what one costs
            floor = floor_estimate(points, roofline)
            roofline = replace(roofline, floor_s=floor, batched_floor_s=roofline.batched_floor_s or floor)
        self.roofline = roofline
        self.m1_path, self.m1_gemv = _m1_path(points)
        self.items: dict[bool, list[_Item]] = {False: [], True: []}
        overhead = {batched: floor_estimate([p for p in points if (_dims(p)[0] > 1) == batched], roofline)
                    for batched in (False, True)}
        self.batch_call_s = _batch_call(points, roofline)
        self.gemm_call_s = _gemm_call(overhead[False], roofline)
        for p in points:
            b, m, n, k = _dims(p)
            floor = min(roofline.floor(b), 0.9 * p.seconds)  # a call is never all floor
            work = p.seconds - floor if roofline.additive else p.seconds
            # GPU: a call within BOUND of its family's own overhead (the fastest of its calls that the roofline's
            # work does not explain: cuBLAS's batched path on an H100 took 25-29 us for 6-9 us of work where the
            # 4x4 launch floor is 12-14 us) says how long the path takes to start, not how fast the work ran.
            bound = roofline.additive or p.seconds > BOUND * max(roofline.floor(b), overhead[b > 1])
            ratio = work / roofline.work(b, m, n, k, p.warm)
            self.items[b > 1].append(_Item(p, _features(b, m, n, k), math.log(ratio), bound))
        # Each one against the pool alone (``_predict`` reads ``strides`` only when asked to)
        self.strides: list[_Stride] = sorted(
            (_Stride(_dims(p)[2] * roofline.element_bytes, _dims(p)[1],
                     math.log(p.seconds / self._predict(*_dims(p)).seconds), p) for p in strided),
            key=lambda st: (st.stride, st.m))

    def predict(self, b: int, m: int, n: int, k: int, resident_bytes: float = 0.0) -> GemmAnswer:
        """The time of B matrices M x K @ K x N, with its basis, the measured points behind it, and notes."""
        stride = self._stride_of(b, n)
        if not stride:
            return self._predict(b, m, n, k, resident_bytes)
        same = [st for st in stride if st.m == m and _dims(st.point)[2:] == (n, k)]
        if same and not self._moved(b, m, n, k, resident_bytes):
            return GemmAnswer(same[0].point.seconds, "measured", POW2_FAMILY, [same[0].point])
        answer = self._predict(b, m, n, k, resident_bytes, with_strides=True)
        if answer.basis == "measured":  # the pool measured this very shape (--shapes): its time already says it
            return answer
        log_factor, behind = self._stride_factor(stride, m)
        eb, row = self.roofline.element_bytes, stride[0].stride
        answer.seconds *= math.exp(log_factor)
        answer.points = [*behind, *answer.points]
        took = ", ".join(f"{math.exp(st.log_factor):.2f}x at M = {st.m}" for st in stride)
        faded = (f"; faded above M = {stride[-1].m}, to none at M = {STRIDE_FADE_M}"
                 if stride[-1].m < m and stride[-1].m < STRIDE_FADE_M else "")
        answer.notes.append(
            f"N = {n}: B's rows lie {n * eb / 1024:g} KiB apart, a multiple of {row / 1024:g} KiB; GEMMs of that "
            f"stride took {took} what the others predict (N = {row // eb}): {math.exp(log_factor):.2f}x applied at "
            f"M = {m}{faded}")
        return answer

    def _layer_extra_s(self, b: int, m: int, n: int, k: int, resident_bytes: float) -> float:
        """A CPU call's time in a layer beyond its alone time: its bytes stream from the layer's tier. Its ratio to
        its roofline is overhead (a BLAS call per matrix) the slower tier does not multiply. A compute-bound call
        whose operands a cache held alone (``CACHED_ALONE``) hid their streaming: the layer's tier adds it all."""
        rf = self.roofline
        nbytes = rf.operand_bytes(b, m, n, k)
        own, layer = rf.bandwidth(nbytes, True), rf.bandwidth(max(nbytes, resident_bytes), True)
        if rf.compute_s(b, m, n, k) >= nbytes / (own * 1e9) and own >= CACHED_ALONE * layer:
            return nbytes / (layer * 1e9)
        return max(0.0, nbytes / (layer * 1e9) - nbytes / (own * 1e9))

    def _moved(self, b: int, m: int, n: int, k: int, resident_bytes: float) -> bool:
        """Whether it runs in a working set larger than its operands (a layer's): its alone time is not its answer."""
        return resident_bytes > self.roofline.operand_bytes(b, m, n, k)

    def _stride_of(self, b: int, n: int) -> list[_Stride]:
        """The measured power-of-two-width GEMMs whose stride divides this problem's row of B (the largest such
        stride's), or none: a batch, or a row no measured stride divides."""
        row = n * self.roofline.element_bytes
        fits = [st.stride for st in self.strides if b == 1 and row % st.stride == 0]
        return [st for st in self.strides if fits and st.stride == max(fits)]

    @staticmethod
    def _stride_factor(stride: list[_Stride], m: int) -> tuple[float, list[Point]]:
        """The log factor at ``m``: linear in log M between the two measured Ms around it, the smallest one's
        below them; above the largest, faded linearly in log M to none at ``STRIDE_FADE_M`` (unless measured
        there); and the points it came from."""
        below = [st for st in stride if st.m <= m]
        above = [st for st in stride if st.m >= m]
        if not below:
            return above[0].log_factor, [above[0].point]
        if not above:
            last = below[-1]
            if last.m >= STRIDE_FADE_M:
                return last.log_factor, [last.point]
            t = min(1.0, math.log2(m / last.m) / math.log2(STRIDE_FADE_M / last.m))
            return (1 - t) * last.log_factor, [last.point]
        lo, hi = below[-1], above[0]
        if lo.m == hi.m:
            return lo.log_factor, [lo.point]
        t = (math.log2(m) - math.log2(lo.m)) / (math.log2(hi.m) - math.log2(lo.m))
        return (1 - t) * lo.log_factor + t * hi.log_factor, [lo.point, hi.point]

    def _predict(self, b: int, m: int, n: int, k: int, resident_bytes: float = 0.0,
                 with_strides: bool = False) -> GemmAnswer:
        """From the pool alone (no stride's factor); ``with_strides``: the power-of-two-width calls, whose factor
        the caller applies, count toward the measured range."""
        batched = b > 1
        pool = self.items[batched] or self.items[not batched]
        notes: list[str] = []
        if batched and not self.items[True]:
            notes.append("no batched GEMM measured: from the single GEMMs, the batch through the roofline")
        if not batched and not self.items[False]:
            notes.append("only batched GEMMs measured: from them, the batch through the roofline")
        as_gemv = m == 1 and not batched and self.m1_gemv and self.roofline.gemv_curve
        if m == 1 and not batched and self.m1_path:
            notes.append(self.m1_path + (": predicted on the framework's GEMV curve, the path it takes"
                                         if as_gemv else ": predicted from the measured M = 1 calls"))
        want = _features(b, m, n, k)
        exact = next((it for it in pool if math.dist(it.features, want) < 1e-9), None)
        moved = self._moved(b, m, n, k, resident_bytes)
        if moved:
            notes.append(f"in a working set of {resident_bytes / 2**20:,.1f} MiB: its operands stream from the tier "
                         "holding that")
        if exact is not None and not moved:
            return GemmAnswer(exact.point.seconds, "measured", exact.point.family, [exact.point], notes)
        if exact is not None:
            ranked, log_ratio = [exact], exact.log_ratio
        elif as_gemv:  # its own curve's time: the M = 1 calls measured are the points behind it
            ranked = sorted((it for it in pool if dict(it.point.dims).get("m") == 1),
                            key=lambda it: math.dist(it.features, want))[:NEIGHBOURS]
            log_ratio = 0.0
        else:
            # Calls the floor hid say nothing of how fast the work ran: the ratio comes from those it did not hide.
            candidates = [it for it in pool if it.bound] or pool
            ranked = sorted(candidates, key=lambda it: math.dist(it.features, want))[:NEIGHBOURS]
            weights = [1.0 / math.dist(it.features, want) ** POWER for it in ranked]
            log_ratio = sum(w * it.log_ratio for w, it in zip(weights, ranked, strict=True)) / sum(weights)
        rf = self.roofline
        floor_b = (self.batch_call_s if batched and self.batch_call_s
                   else self.gemm_call_s if not batched and self.gemm_call_s else rf.floor(b))
        if moved and rf.additive:
            alone_s = (exact.point.seconds if exact is not None
                       else rf.combine(floor_b, rf.work(b, m, n, k, True) * math.exp(log_ratio)))
            seconds = alone_s + self._layer_extra_s(b, m, n, k, resident_bytes)
        else:
            seconds = rf.combine(floor_b, rf.work(b, m, n, k, True, resident_bytes) * math.exp(log_ratio))
        # A measured call of the same batch and M, with N and K at least this problem's, took no longer than the
        # answer may. The ratio above comes from calls the floor did not hide, which may lie in another tier: an
        # H100's fp16 1x4096x4096 was predicted 18.0 us from 144 MiB calls through the torch.mv curve, where
        # cuBLAS's 1x4352x4352 took 12.6 us (both hold their weights in the 50 MB L2; 1x4096x4096 took 11.9 us).
        # Not across M or (N, K) shapes: cuBLAS picks its kernel by shape, and not monotonically (an H200's fp32
        # 16x4096x4096 took 81 us and 32x4352x4352 44 us; 4x4096x14336 took 147 us and 4x17408x4352 103 us).
        if not moved:
            over = [it for it in pool if _dims(it.point)[:2] == (b, m) and _dims(it.point)[2] >= n
                    and _dims(it.point)[3] >= k]
            cap = min(over, key=lambda it: it.point.seconds, default=None)
            if cap is not None and cap.point.seconds < seconds:
                seconds = cap.point.seconds
                notes.append(f"capped at the {cap.point.seconds * 1e6:,.1f} us of a measured call at least as large in "
                             f"every dimension ({'x'.join(str(v) for _, v in cap.point.dims)})")
                ranked = [cap, *ranked[:NEIGHBOURS - 1]]
        nearest = min(math.dist(it.features[:SHAPE_FEATURES], want[:SHAPE_FEATURES]) for it in pool)
        seen = [it.point for it in pool] + ([st.point for st in self.strides] if with_strides else [])
        warnings = self._outside(seen, b, m, n, k, nearest)
        basis = "extrapolated" if warnings else "interpolated"
        return GemmAnswer(seconds, basis, ranked[0].point.family, [it.point for it in ranked], notes, warnings)

    @staticmethod
    def _outside(points: list[Point], b: int, m: int, n: int, k: int, nearest: float) -> list[str]:
        """What puts a problem outside what was measured: a dimension beyond the measured range, or no
        measured GEMM near it."""
        out = []
        for name, value in (("M", m), ("N", n), ("K", k)) + ((("batch", b),) if b > 1 else ()):
            seen = [dict(p.dims).get(name.lower(), 1) for p in points]
            lo, hi = min(seen), max(seen)
            if value < lo:
                out.append(f"{name} = {value} is below the smallest measured ({lo})")
            elif value > hi:
                out.append(f"{name} = {value} is above the largest measured ({hi})")
        if nearest > NEAR:
            out.append(f"the nearest measured GEMM is {nearest:.1f} weighted octaves away (more than {NEAR})")
        return out
