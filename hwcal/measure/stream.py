"""The STREAM benchmark body (copy, scale, add, triad), written once for every backend.

STREAM's rules, as McCalpin's stream.c applies them: the largest arrays are at least 4x the sum of
the last-level caches (detected), each kernel's figure is the best of N timed repetitions after an
untimed one, bytes are counted as STREAM counts them (copy/scale 2 arrays, add/triad 3, x element
size), and the arrays' values are checked after the run. Rounds are the GEMM body's (``timed_rounds``):
a round ends only when the device is done, so a GPU figure is never a launch rate.

The sweep runs sizes in ascending order with the four kernels of one size sharing its arrays, and
keeps inside a time budget (CPU 5 s, --quick 3 s; GPU 30 s), so memory adds seconds, not minutes,
to a calibration: fewer repetitions where a size would overrun it, a skip that says why where even
three would. (The CPU's cache tiers, latency and all-core STREAM are the memory system's, with a budget
of their own: ``hwcal.measure.memory_system``; the two stay within 15 s.)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from hwcal.backends import Backend
from hwcal.backends.base import StreamArrays
from hwcal.machine.caches import CacheInfo
from hwcal.measure.case import VERIFY_ONLY, best_call_s, plan_for_call, watch_spent_s
from hwcal.measure.records import (
    KERNELS,
    STREAM_ARRAY_FACTOR,
    STREAM_EPSILON,
    STREAM_INITIAL,
    STREAM_SCALAR,
    MemorySweep,
    StreamRecord,
    after_kernel,
    stream_bytes,
    validation_error,
)
from hwcal.measure.session import CalibrationSession
from hwcal.measure.timing import round_cv, round_of, round_times, stats_of, timed_rounds, warmup_rounds
from hwcal.measure.watch import case_name

# Seconds by device type and --quick: on a CPU the sweep and the memory system (8 s) add at most 15 s to a
# calibration together with the DRAM interval's rounds; a GPU's rounds last >= 20 ms each (launch overhead
# < 1%), so its 44 cases need longer.
MEMORY_BUDGET_S = {("cpu", False): 5.0, ("cpu", True): 3.0, ("gpu", False): 30.0, ("gpu", True): 15.0}
STREAM_ROUNDS = {False: 10, True: 5}  # STREAM's NTIMES is 10 (best of, after one untimed)
MIN_ROUNDS = 3
SMALLEST_ARRAY_BYTES = {"cpu": 4 * 2**10, "gpu": 2**20}  # GPUs: smaller arrays only time the launch
# The largest arrays at least this big even where the caches read small: SoCs have system caches sysfs
# does not list (a Jetson's 4 MB system-level cache), GPUs have L2s of 50-60 MB and bandwidth to match.
MIN_TOP_ARRAY_BYTES = {"cpu": 64 * 2**20, "gpu": 256 * 2**20}
MEMORY_FRACTION_PLANNED = 0.5  # the three arrays of a planned size take at most half of free memory
MEMORY_FRACTION_RUN = 0.8  # ... and at run time at most 80% of what is free then (as GEMM)
FILL_BYTES_PER_S_GUESS = {"cpu": 1e9, "gpu": 1e11}  # first-touch rate before one was measured
# The DRAM figure: triad rounds at every size >= 4x LLC, pooled; more rounds are taken (beyond the
# planned ones, per DRAM-sized triad case) until the 95% confidence interval of the pooled mean is
# within +-3% of it or this many extra seconds per case are spent.
DRAM_CI_TARGET = 0.03
DRAM_EXTRA_S = {("cpu", False): 1.0, ("cpu", True): 0.5, ("gpu", False): 4.0, ("gpu", True): 2.0}
DRAM_EXTRA_BATCH = 5  # rounds between two looks at the interval
DRAM_MAX_ROUNDS = 400  # per case, whatever the budget
DRAM_METHOD = ("mean of per-round triad GB/s pooled over every array size >= 4x the last-level caches; 95% "
               "confidence interval mean +- t(0.975, rounds-1) x s/sqrt(rounds), s the standard deviation of "
               "all rounds about the pooled mean (within and between sizes); rounds added per DRAM-sized "
               f"case until the interval is within +-{DRAM_CI_TARGET:.0%} or the case's extra time budget ends")


def _t975(dof: int) -> float:
    """Student's t 97.5% quantile (two-sided 95%); exact table to 30, then a close approximation."""
    table = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
             2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
             2.045, 2.042)
    if dof < 1:
        return math.inf
    if dof <= len(table):
        return table[dof - 1]
    return 1.959964 + 2.37 / dof  # within 0.002 of the exact value for dof > 30


class DramEstimate:
    """The pooled sustained-DRAM figure: mean GB/s per round over the DRAM-sized triad rounds, and its CI."""

    def __init__(self, groups: list[tuple[int, float, float]]) -> None:
        # groups: (rounds, mean GB/s, standard deviation of GB/s) per size
        self.rounds = sum(n for n, _, _ in groups)
        self.sizes = len(groups)
        self.gbps = sum(n * m for n, m, _ in groups) / self.rounds if self.rounds else 0.0
        if self.rounds > 1:
            # within-size and between-size spread about the pooled mean
            ss = sum(n * (sd**2 + (m - self.gbps) ** 2) for n, m, sd in groups)
            half = _t975(self.rounds - 1) * math.sqrt(ss / (self.rounds - 1)) / math.sqrt(self.rounds)
        else:
            half = math.inf
        self.lo, self.hi = self.gbps - half, self.gbps + half

    @property
    def relative_half_width(self) -> float:
        return (self.hi - self.gbps) / self.gbps if self.gbps > 0 else math.inf

    @property
    def converged(self) -> bool:
        return self.relative_half_width <= DRAM_CI_TARGET


def _gbps_group(bytes_per_round: float, times_s: list[float]) -> tuple[int, float, float]:
    rates = [bytes_per_round / t / 1e9 for t in times_s if t > 0]
    if not rates:
        return 0, 0.0, 0.0
    mean = sum(rates) / len(rates)
    sd = math.sqrt(sum((r - mean) ** 2 for r in rates) / (len(rates) - 1)) if len(rates) > 1 else 0.0
    return len(rates), mean, sd


def record_gbps_group(rec: StreamRecord) -> tuple[int, float, float]:
    """(rounds, mean GB/s, sd GB/s) of a record from its time statistics (delta method: sd_GB/s =
    GB/s x sd_t / mean_t), for records whose single round times are not at hand."""
    mean_t, sd_t = rec.time_s.get("mean", 0.0), rec.time_s.get("stddev", 0.0)
    if mean_t <= 0:
        return 0, 0.0, 0.0
    gbps = rec.bytes_per_pass * rec.passes_per_round / mean_t / 1e9
    return rec.rounds, gbps, gbps * sd_t / mean_t


def dram_estimate(records: list[StreamRecord], min_array_bytes: int,
                  extra: tuple[int, float, float] | None = None) -> DramEstimate | None:
    """The pooled DRAM estimate over every triad record with arrays >= ``min_array_bytes`` (and one
    group being measured, ``extra``); None when there is none."""
    groups = [record_gbps_group(r) for r in records if r.kernel == "triad" and r.array_bytes >= min_array_bytes]
    groups += [extra] if extra else []
    groups = [g for g in groups if g[0] > 0]
    return DramEstimate(groups) if groups else None


def _pow2_ceil(x: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, x))))


def size_label(array_bytes: int) -> str:
    """``4KiB``, ``128MiB``, ``1GiB``: pytest ids a ``-k`` can name without matching a larger size."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if array_bytes >= scale and array_bytes % scale == 0:
            return f"{array_bytes // scale}{unit}"
    return f"{array_bytes}B"


def plan_array_sizes(caches: CacheInfo, device_type: str, free_bytes: int, quick: bool) -> tuple[list[int], list[str]]:
    """Bytes per array, from inside L1 (a GPU: L2) to well past STREAM's 4x-LLC minimum, and why any
    planned size was left out (its three arrays would take more than half of free memory)."""
    top = max(_pow2_ceil(STREAM_ARRAY_FACTOR * caches.llc_total_bytes), MIN_TOP_ARRAY_BYTES[device_type])
    step = 4 if quick else 2
    sizes: list[int] = []
    size = SMALLEST_ARRAY_BYTES[device_type]
    while size < top:
        sizes.append(size)
        size *= step
    # Beyond STREAM's minimum: two sizes make a plateau (a GPU's third, 1 GiB arrays on an H200, cost 1.4 s and
    # read what the second did).
    sizes += [top] if quick else [top * 2**i for i in range(2)]
    limit = MEMORY_FRACTION_PLANNED * free_bytes / 3
    kept = [s for s in sizes if s <= limit]
    notes = [f"arrays of {size_label(s)} left out: 3 x {s / 2**30:.2f} GiB is more than half of the "
             f"{free_bytes / 2**30:.2f} GiB free" for s in sizes if s > limit]
    return kept, notes


def stream_cases(backend: Backend, quick: bool) -> list[tuple[str, int]]:
    """(kernel, bytes per array), size-major in STREAM's kernel order, so the four share arrays."""
    sizes, _ = plan_array_sizes(backend.stream_caches(), backend.device_type, backend.free_memory_bytes(), quick)
    return [(kernel, size) for size in sizes for kernel in KERNELS]


class StreamState:
    """The arrays of the size being measured and the values STREAM's checker expects them to hold.

    Lives for the bench module (a fixture), not in the session: the builder's input stays plain data.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.arrays: StreamArrays | None = None
        self.expected: tuple[float, float, float] = STREAM_INITIAL
        self.fill_bytes_per_s = FILL_BYTES_PER_S_GUESS[backend.device_type]

    def holds(self, n: int) -> bool:
        return self.arrays is not None and self.arrays.n == n

    def release(self) -> None:
        """Drop the arrays before another size is allocated (never two sizes on the device at once)."""
        if self.arrays is not None:
            self.arrays = None
            self.backend.synchronize()
            self.backend.stream_release()

    def arrays_for(self, n: int) -> StreamArrays:
        if self.arrays is not None and self.arrays.n == n:
            return self.arrays
        self.release()
        start = time.perf_counter()
        arrays = self.backend.stream_arrays(n, STREAM_INITIAL)
        self.backend.synchronize()
        self.fill_bytes_per_s = 3 * n * self.backend.stream_element_bytes / max(time.perf_counter() - start, 1e-6)
        self.arrays, self.expected = arrays, STREAM_INITIAL
        return arrays

    def validate(self) -> float:
        """Largest relative error of a, b, c against the expected values (every element, via min/max)."""
        arrays = self.arrays
        if arrays is None:
            raise RuntimeError("StreamState.validate() before any arrays were allocated")
        extremes = [self.backend.stream_extremes(x) for x in (arrays.a, arrays.b, arrays.c)]
        return validation_error(extremes, self.expected)


def memory_sweep(session: CalibrationSession) -> MemorySweep:
    """The session's STREAM results, created with the device's caches and threads on first use."""
    if session.results.memory is None:
        backend = session.backend
        session.results.memory = MemorySweep(
            caches=backend.stream_caches(),
            device=backend.device,
            threads=backend.stream_threads() if backend.device_type == "cpu" else None,
            element_bytes=backend.stream_element_bytes,
            budget_s=session.family_budget("stream", MEMORY_BUDGET_S[backend.device_type, session.options.quick]),
        )
    return session.results.memory


def _rounds_within_budget(sweep: MemorySweep, state: StreamState, backend: Backend, kernel: str, n: int,
                          wanted: int) -> tuple[int, str | None]:
    """Repetitions that fit the budget left, or a skip reason.

    Predicted from the slowest bandwidth of the two largest sizes run so far: sizes ascend, so those
    are the nearest (the tiny sizes are bound by call overhead and would predict far too much).
    """
    element_bytes = backend.stream_element_bytes
    alloc_s = 0.0 if state.holds(n) else 3 * n * element_bytes / state.fill_bytes_per_s
    largest = sorted({r.n for r in sweep.records})[-2:]
    seen = [r.gbps_best for r in sweep.records if r.n in largest]
    if not seen:
        return wanted, None
    gbps = min(seen)
    pass_s = stream_bytes(kernel, n, element_bytes) / (gbps * 1e9)
    round_s = max(pass_s, backend.min_round_s)
    # Beyond the timed rounds: warm-up rounds, two calls to size the rounds, three device-event rounds
    # (GPUs) and the check (min and max of three arrays).
    extra_rounds = warmup_rounds(backend, round_s) + 2 + (3 if backend.is_async else 0)
    fixed_s = alloc_s + extra_rounds * round_s + 2 * n * element_bytes * 3 / (gbps * 1e9)
    left_s = sweep.budget_s - sweep.spent_s
    fit = math.floor((left_s - fixed_s) / round_s)
    if fit >= wanted:
        return wanted, None
    if fit >= MIN_ROUNDS:
        sweep.skips.append(f"{kernel} at {size_label(n * element_bytes)}: best of {fit} instead of {wanted} "
                           f"to stay within the {sweep.budget_s:g} s memory budget")
        return fit, None
    return 0, (f"{kernel} at {size_label(n * element_bytes)} would take about {fixed_s + MIN_ROUNDS * round_s:.1f} s, "
               f"more than the {max(left_s, 0):.1f} s left of the {sweep.budget_s:g} s memory budget")


def run_stream(benchmark: Any, session: CalibrationSession, state: StreamState, kernel: str,
               array_bytes: int) -> None:
    """Measure, validate and record one (kernel, array size) case, or skip it with the reason."""
    session.families_run.add("stream")
    backend = session.backend
    sweep = memory_sweep(session)
    element_bytes = backend.stream_element_bytes
    n = array_bytes // element_bytes
    label = size_label(array_bytes)
    started, watched = time.perf_counter(), watch_spent_s(session)
    try:
        if not state.holds(n):
            state.release()
            need = 3 * array_bytes
            free = backend.free_memory_bytes()
            if need > MEMORY_FRACTION_RUN * free:
                too_big = (f"STREAM arrays of {label} need {need / 2**30:.2f} GiB, more than "
                           f"{MEMORY_FRACTION_RUN:.0%} of the {free / 2**30:.2f} GiB free")
                sweep.skips.append(too_big)
                pytest.skip(too_big)
        rounds, reason = _rounds_within_budget(sweep, state, backend, kernel, n, STREAM_ROUNDS[session.options.quick])
        if reason:
            sweep.skips.append(reason)
            pytest.skip(reason)
        if benchmark.enabled:
            backend.warm_up()
        _measure(benchmark, session, sweep, state, kernel, n, rounds)
    finally:  # the interference watch's waiting has its own budget (hwcal.measure.watch)
        sweep.spent_s += max(0.0, time.perf_counter() - started - (watch_spent_s(session) - watched))


def _measure(benchmark: Any, session: CalibrationSession, sweep: MemorySweep, state: StreamState, kernel: str,
             n: int, rounds: int) -> None:
    backend = session.backend
    arrays = state.arrays_for(n)
    method = backend.stream_method(kernel)
    sweep.methods[kernel] = method.description
    launch = backend.stream_call(kernel, arrays, STREAM_SCALAR)
    try:
        if benchmark.enabled:
            pass_s = best_call_s(backend, launch)
            plan = plan_for_call(backend, pass_s, rounds)
        else:
            plan = VERIFY_ONLY  # --benchmark-disable: validate only
        bytes_per_pass = stream_bytes(kernel, n, arrays.element_bytes)
        benchmark.extra_info.update({"kernel": kernel, "n": n, "array_bytes": n * arrays.element_bytes,
                                     "bytes": bytes_per_pass * plan.launches, "launches_per_round": plan.launches,
                                     "method": method.description})
        timed = timed_rounds(benchmark, backend, plan, launch, watch=session.watch, footprint_bytes=bytes_per_pass)
        extra_start = time.perf_counter()
        extra_times = _dram_rounds(session, sweep, kernel, arrays, launch, plan.launches, bytes_per_pass, timed.stats)
        # The interval's extra rounds have their own budget (DRAM_EXTRA_S): they must not starve the next
        # DRAM-sized case of the sweep's budget, so they are not counted in spent_s.
        sweep.spent_s -= time.perf_counter() - extra_start
        state.expected = after_kernel(kernel, state.expected, STREAM_SCALAR)
        error = state.validate()
    except BaseException:
        state.release()  # values unknown now: the next case starts from fresh arrays
        raise
    tolerance = STREAM_EPSILON.get(arrays.element_bytes, 1e-6)
    benchmark.extra_info.update({"verified": error <= tolerance, "max_rel_error": error})
    if error > tolerance:
        state.release()
        pytest.fail(f"STREAM {kernel} at {size_label(n * arrays.element_bytes)} gave wrong values: relative error "
                    f"{error:.3g} > {tolerance:g} (expected a, b, c = {state.expected})")
    stats = timed.stats
    if stats is None:
        return  # --benchmark-disable: validated, nothing filed
    bytes_per_round = bytes_per_pass * plan.launches
    if extra_times:
        stats = stats_of(list(stats.data) + extra_times)
        benchmark.extra_info["dram_extra_rounds"] = len(extra_times)
    sweep.records.append(StreamRecord(
        kernel=kernel,
        n=n,
        element_bytes=arrays.element_bytes,
        bytes_per_pass=bytes_per_pass,
        arrays_moved=method.arrays_moved,
        passes_per_round=plan.launches,
        rounds=int(stats.rounds),
        warmup_rounds=plan.warmup_rounds,
        time_s=round_times(stats),
        gbps_best=bytes_per_round / stats.min / 1e9,
        gbps_median=bytes_per_round / stats.median / 1e9,
        cv=round_cv(stats),
        max_rel_error=error,
        method=method.description,
        device_event_ratio=timed.event_ratio,
        case=case_name(benchmark, ""),
    ))
    benchmark.extra_info["gbps_best"] = bytes_per_round / stats.min / 1e9


def _dram_rounds(session: CalibrationSession, sweep: MemorySweep, kernel: str, arrays: StreamArrays,
                 launch: Callable[[], Any], launches: int, bytes_per_pass: int, stats: Any) -> list[float]:
    """More rounds of a DRAM-sized triad case, timed as ``timed_rounds`` times them (launches, then one
    synchronisation), until the pooled interval is within the target or the extra budget is spent.
    Needs the planned rounds' single times (pytest-benchmark's ``stats.data``); none: no extra rounds."""
    backend = session.backend
    data = getattr(stats, "data", None) if stats is not None else None
    if kernel != "triad" or not data or arrays.n * arrays.element_bytes < sweep.stream_min_array_bytes:
        return []
    bytes_per_round = bytes_per_pass * launches
    budget_s = DRAM_EXTRA_S[backend.device_type, session.options.quick]
    extra: list[float] = []
    round_fn = round_of(backend, launches, launch)
    start = time.perf_counter()
    while len(data) + len(extra) < DRAM_MAX_ROUNDS:
        est = dram_estimate(sweep.records, sweep.stream_min_array_bytes,
                            _gbps_group(bytes_per_round, list(data) + extra))
        if est is None or est.converged or time.perf_counter() - start > budget_s:
            break
        for _ in range(DRAM_EXTRA_BATCH):
            t0 = time.perf_counter()
            round_fn()
            extra.append(time.perf_counter() - t0)
    return extra
