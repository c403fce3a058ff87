"""The max-achievable matmul (MAMF) search: per precision, the (M, N, K) at which the device's GEMM is
fastest, found within a time budget, then timed two ways (burst and sustained) with the clock and the
power sampled, and verified. With an energy meter the sustained window is metered and is that precision's
energy case (``hwcal.measure.energy``), so the GPU runs its best shape at the power cap once.

Why a search: a GPU's best GEMM is rarely square. mamf-finder's best bf16 shapes on an H200 have small
M with large N and K (1024 x 4096 x 16384); a square sweep peaks several percent lower. The search times a
coarse grid of tile-multiple shapes, then the neighbours of the best three, each by the burst method
mamf-finder uses (per call, CUDA events, L2 flushed and the output re-written before each call), and never
a shape whose call would outlast ``MAX_CALL_S`` or whose operands would crowd free memory.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from hwcal.backends import Backend, GemmOperands
from hwcal.machine.energy import EnergyMeter
from hwcal.machine.gpu import ClockPowerSampler
from hwcal.measure.back_to_back import Window, run_window
from hwcal.measure.energy import run_meter
from hwcal.measure.energy_records import MIN_WINDOW_S
from hwcal.measure.gemm import session_layout
from hwcal.measure.records import MaxAchievableRecord
from hwcal.measure.session import CalibrationSession
from hwcal.measure.verify import verify_gemm
from hwcal.measure.watch import Watch
from hwcal.precisions import PRECISIONS

COARSE_M = (1024, 2048, 4096, 8192)
COARSE_N = (2048, 4096, 8192)
COARSE_K = (4096, 8192, 13312, 16384)
STEP = 256  # tile multiple of every refined dimension
MAX_CALL_S = 0.03  # a call longer than this costs the search more than it can tell it
MEMORY_FRACTION = 0.5
# Per precision, by --quick. H200, 1.6 s: fp64's search ended on a shape 2.4 % slower in one of two back-to-back
# runs (35-37 shapes tried); 2.0 s found the same peak within 1.2 % in two H100 runs.
BUDGET_S = {False: 2.0, True: 1.5}
# The best shape is timed again in repeated bursts: (warm-up, timed) calls each; the peak is the median of the
# bursts' means, so one burst at a lower clock moves it no more than one burst at a higher one.
BURSTS = {False: 3, True: 3}
BURST_CALLS = (10, 40)  # warm-up and timed calls of a burst of fast calls
# A burst of slow calls is shorter: warm-up calls to ~BURST_WARM_S (at least 3) and timed ones to ~BURST_S (at
# least 10). An H100's fp32 best shape takes 9.5 ms a call: 3 + 16 calls a burst instead of 50, 0.9 s less a run;
# calls under 2 ms (every tensor-core precision) keep 10 + 40.
BURST_WARM_S, BURST_S = 0.02, 0.15
# Idle seconds before each burst. A power-capped GPU's clock follows its power over a recent window: right
# after seconds of full-power search the burst would read the sustained clock. mamf-finder times each shape
# after a light warm-up or the gaps of allocating the last shape; a short rest gives the same state.
# Measured on an H200 at its 700 W cap after 2 s of full power: no rest, 1455-1470 MHz and 631-652 TFLOP/s
# bf16; 0.25 s, 1965 MHz and 796-801; 0.5 s to 3 s, 1980 MHz and 800-804 (3 bursts each).
REST_S = {False: 0.5, True: 0.25}
# A later burst follows the last one's tens of milliseconds (a few hundred of fp64) at full power, not the search's
# seconds: a shorter rest brings the clock back. H100, 2.0 s search then bursts after 0.5 s rests each: the later
# bursts' clocks 1980 MHz, their means within 0.5 % of one another; H200 with 0.2 s between: the three bursts of
# every precision within 0.3 % of one another.
REST_BETWEEN_S = {False: 0.2, True: 0.15}
SUSTAIN = {False: (0.5, 0.4), True: (0.4, 0.3)}  # warm-up and timed seconds of the sustained figure
# A metered sustained window ends here even if the sensor has not updated 10 times (NVML and tegrastats update
# at ~10 Hz: 1.1 s): a slower or stuck sensor is left to the energy family's own window, not paid per precision.
METERED_MAX_S = 2.0


@dataclass(frozen=True)
class Shape:
    m: int
    n: int
    k: int

    @property
    def flops(self) -> int:
        return 2 * self.m * self.n * self.k

    def label(self) -> str:
        return f"{self.m}x{self.n}x{self.k}"


@dataclass
class Timed:
    shape: Shape
    mean_s: float
    median_s: float
    min_s: float
    iterations: int

    @property
    def gflops(self) -> float:
        return self.shape.flops / self.mean_s / 1e9


def coarse_grid() -> list[Shape]:
    return [Shape(m, n, k) for m in COARSE_M for n in COARSE_N for k in COARSE_K]


def neighbours(shape: Shape) -> Iterator[Shape]:
    """Shapes one step away in each dimension: half and one-and-a-half the size, and +- a few tiles."""
    def ladder(v: int) -> set[int]:
        out = {v // 2, v * 3 // 2, v - 4 * STEP, v + 4 * STEP, v - 2 * STEP, v + 2 * STEP}
        return {max(STEP, x - x % STEP) for x in out}

    for m in sorted(ladder(shape.m) - {shape.m}):
        yield Shape(m, shape.n, shape.k)
    for n in sorted(ladder(shape.n) - {shape.n}):
        yield Shape(shape.m, n, shape.k)
    for k in sorted(ladder(shape.k) - {shape.k}):
        yield Shape(shape.m, shape.n, k)


class Search:
    """One precision's search state: what was timed, what was skipped and why, and the time spent."""

    def __init__(self, backend: Backend, precision: str, layout: str, rate_gflops: float, budget_s: float,
                 seed: int = 11) -> None:
        self.backend, self.precision, self.layout = backend, precision, layout
        self.rate_gflops = max(rate_gflops, 1.0)
        self.budget_s, self.seed = budget_s, seed
        self.timed: dict[Shape, Timed] = {}
        self.skipped: list[str] = []
        self.start = time.perf_counter()
        self.free = backend.free_memory_bytes()

    def spent(self) -> float:
        return time.perf_counter() - self.start

    def fits(self, shape: Shape) -> str | None:
        """Why ``shape`` is not timed (too slow a call, too much memory), or None."""
        if shape.flops / (self.rate_gflops * 1e9) > MAX_CALL_S:
            return f"{shape.label()}: one call would take over {MAX_CALL_S * 1e3:.0f} ms at the sweep's rate"
        size = max(1, PRECISIONS[self.precision].bits // 8)
        need = (shape.m * shape.k + shape.k * shape.n) * size + shape.m * shape.n * 4 + 2**28
        if need > MEMORY_FRACTION * self.free:
            return (f"{shape.label()}: needs {need / 2**30:.2f} GiB, over {MEMORY_FRACTION:.0%} of the "
                    f"{self.free / 2**30:.2f} GiB free")
        return None

    def operands(self, shape: Shape) -> GemmOperands:
        return self.backend.make_operands(self.precision, shape.n, self.seed, layout=self.layout, m=shape.m,
                                          k=shape.k)

    def time(self, shape: Shape, warmup: int | None = None, iterations: int | None = None) -> Timed | None:
        if self.spent() > self.budget_s:
            return None
        reason = self.fits(shape)
        if reason:
            self.skipped.append(reason)
            return None
        est = shape.flops / (self.rate_gflops * 1e9)
        warmup = warmup if warmup is not None else max(2, min(20, math.ceil(0.01 / est)))
        iterations = iterations if iterations is not None else max(5, min(30, math.ceil(0.03 / est)))
        ops = self.operands(shape)
        times = self.backend.burst_times(lambda: self.backend.gemm(ops), ops.out, warmup + iterations)[warmup:]
        t = Timed(shape, statistics.fmean(times), statistics.median(times), min(times), len(times))
        self.timed[shape] = t
        return t

    def best(self, count: int = 1) -> list[Timed]:
        return sorted(self.timed.values(), key=lambda t: t.gflops, reverse=True)[:count]

    def run(self) -> Timed | None:
        """Coarse grid, then neighbours of the best three, until the budget ends."""
        for shape in coarse_grid():
            if self.spent() > 0.6 * self.budget_s:
                self.skipped.append(f"coarse grid cut at {len(self.timed)} shapes by the {self.budget_s:g} s budget")
                break
            self.time(shape)
        seen = set(self.timed)
        for top in self.best(3):
            for shape in neighbours(top.shape):
                if self.spent() > self.budget_s:
                    break
                if shape not in seen:
                    seen.add(shape)
                    self.time(shape)
        best = self.best(1)
        return best[0] if best else None


@dataclass
class Bursts:
    """The repeated bursts of the best shape: every timed call, each burst's figures, clock and power."""

    times: list[float]
    per_burst: list[dict[str, float | None]]
    clock: dict[str, Any]
    power: dict[str, Any]


def _pooled(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """One clock (or power) summary over several bursts' samplers (rests between them left out)."""
    measured = [s for s in summaries if s.get("samples")]
    out: dict[str, Any] = {"status": "measured" if measured and all(s["status"] == "measured" for s in summaries)
                           else ("partial" if measured else "missing"),
                           "samples": sum(int(s.get("samples") or 0) for s in summaries)}
    if measured:
        out.update(median=round(statistics.median(s["median"] for s in measured), 1),
                   min=min(s["min"] for s in measured), max=max(s["max"] for s in measured))
    reasons = sorted({s["reason"] for s in summaries if s.get("reason")})
    if reasons:
        out["reason"] = "; ".join(reasons)
    return out


def burst_calls(call_s: float) -> tuple[int, int]:
    """(warm-up, timed) calls of one burst of calls taking ``call_s`` each."""
    per = max(call_s, 1e-7)
    return (max(3, min(BURST_CALLS[0], math.ceil(BURST_WARM_S / per))),
            max(10, min(BURST_CALLS[1], math.ceil(BURST_S / per))))


def time_bursts(backend: Backend, ops: GemmOperands, flops: int, quick: bool, device_index: int,
                call_s: float = 0.0) -> Bursts:
    """BURSTS bursts of the shape, the first after REST_S idle and the others after REST_BETWEEN_S, with the SM
    clock and board power sampled over each; ``call_s`` (the search's time of one call) sizes the bursts."""
    times: list[float] = []
    per_burst: list[dict[str, float | None]] = []
    clocks, powers = [], []
    warm, timed = burst_calls(call_s)
    for i in range(BURSTS[quick]):
        backend.synchronize()
        time.sleep(REST_S[quick] if i == 0 else REST_BETWEEN_S[quick])
        with ClockPowerSampler(device_index, interval_s=0.005) as sampler:
            burst = backend.burst_times(lambda: backend.gemm(ops), ops.out, warm + timed)[warm:]
        clock, power = sampler.summary()
        clocks.append(clock)
        powers.append(power)
        times += burst
        per_burst.append({"mean_gflops": flops / statistics.fmean(burst) / 1e9, "clock_mhz": clock.get("median"),
                          "power_w": power.get("median")})
    return Bursts(times, per_burst, _pooled(clocks), _pooled(powers))


def max_achievable(backend: Backend, precision: str, layout: str, kernel: str, rate_gflops: float,
                   quick: bool, device_index: int, watch: Watch | None = None,
                   case: str = "max_achievable", meter: EnergyMeter | None = None) -> MaxAchievableRecord | None:
    """The search, then the best shape timed again in repeated bursts and sustained, with the clock and power
    sampled over both, and its result verified. None when no shape could be timed. With a ``watch``, bursts
    and the sustained window that another process on the GPU disturbed are timed again once it is quiet, else
    flagged. With an energy ``meter``, the sustained window is metered too (``energy_window``)."""
    search = Search(backend, precision, layout, rate_gflops, BUDGET_S[quick])
    with backend.precision_mode(precision):
        found = search.run()
        search_s = search.spent()
        if found is None:
            return None
        shape = found.shape
        ops = search.operands(shape)
        warm_s, hold_s = SUSTAIN[quick]
        snap = watch.start() if watch is not None else None
        bursts = time_bursts(backend, ops, shape.flops, quick, device_index, found.mean_s)
        if watch is not None and snap is not None:
            bursts = watch.settle(case, snap, bursts,
                                  lambda: time_bursts(backend, ops, shape.flops, quick, device_index, found.mean_s))
        times = bursts.times
        # With an energy meter the window lasts as long as the meter needs (>= 1 s, >= 10 updates): the same
        # window is then this precision's energy case (hwcal.measure.energy adopts it), not a second run.
        hold = max(hold_s, MIN_WINDOW_S) if meter is not None else hold_s

        def sustain() -> tuple[Window, dict[str, Any], dict[str, Any]]:
            with ClockPowerSampler(device_index) as held_sampler:
                window = run_window(backend, lambda: backend.gemm(ops), statistics.fmean(times), warm_s, hold, meter,
                                    max_s=max(hold, METERED_MAX_S))
            return (window, *held_sampler.summary())

        snap = watch.start() if watch is not None else None
        held = sustain()
        if watch is not None and snap is not None:
            held = watch.settle(f"{case} sustained", snap, held, sustain)
        window, held_clock, held_power = held
        burst_clock, burst_power = bursts.clock, bursts.power
        check = verify_gemm(backend, ops, ops.out, search.seed)
    launches, seconds = (window.launches, window.seconds) if window.launches else (None, None)
    flops = shape.flops
    return MaxAchievableRecord(
        precision=precision, m=shape.m, n=shape.n, k=shape.k, layout=layout, kernel=kernel,
        burst_mean_gflops=flops / statistics.fmean(times) / 1e9,
        burst_median_gflops=flops / statistics.median(times) / 1e9,
        burst_max_gflops=flops / min(times) / 1e9, burst_iterations=len(times),
        sustained_gflops=flops * launches / seconds / 1e9 if launches and seconds else None,
        sustained_s=seconds, sustained_launches=launches, warmup_s=warm_s,
        verified=check.ok, max_error=check.max_error, tolerance=check.tolerance,
        shapes_tried=len(search.timed), search_s=search_s, budget_s=search.budget_s,
        clock_mhz={"burst": burst_clock, "sustained": held_clock},
        power_w={"burst": burst_power, "sustained": held_power}, rest_s=REST_S[quick],
        rest_between_s=REST_BETWEEN_S[quick], skipped=search.skipped[:20],
        bursts=bursts.per_burst, energy_window=window if window.metered() else None,
    )


def run_max_achievable(session: CalibrationSession, precision: str, timed: bool) -> None:
    """The search for one precision as a calibration test: skipped with the reason where it cannot run
    (no GPU, unsupported, nothing measured to size it from, --benchmark-disable), failed when the best
    shape's result is wrong, else filed into the session."""
    session.families_run.add("max_achievable")
    backend = session.backend
    if backend.device_type != "gpu":
        pytest.skip("the max-achievable search runs on GPUs; a CPU's peak is its square sweep and its measured "
                    "FMA ceiling")
    if not timed:
        pytest.skip("--benchmark-disable: correctness only, no search")
    support = session.support(precision)
    if not support.runnable:
        pytest.skip(f"{precision} unsupported: {support.reason}")
    if precision in session.failures:
        pytest.skip(f"{precision} failed verification earlier: {session.failures[precision]}")
    rates = [r.gflops_best for r in session.results.gemm if r.precision == precision]
    if not rates:
        pytest.skip(f"{precision}: no square GEMM was measured in this run to size the search from")
    layout = session_layout(session, precision)
    index = int(backend.device.split(":")[1]) if ":" in backend.device else 0
    result = max_achievable(backend, precision, layout, support.kernel, max(rates), session.options.quick, index,
                            session.watch, f"test_max_achievable[{precision}]", run_meter(session).meter)
    if result is None:
        pytest.skip(f"{precision}: no shape of the search fits this device's memory and call-time bounds")
    if not result.verified:
        shape = f"{result.m}x{result.n}x{result.k}"
        session.failures[precision] = f"max-achievable {shape}: max error {result.max_error:.3g}"
        pytest.fail(f"{precision} GEMM at {result.m}x{result.n}x{result.k} gave wrong results: max error "
                    f"{result.max_error:.3g} (tolerance {result.tolerance:.3g})")
    session.results.max_achievable[precision] = result
