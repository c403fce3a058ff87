"""The STREAM benchmark body (copy, scale, add, triad), written once for every backend.

STREAM's rules, as McCalpin's stream.c applies them: the largest arrays are at least 4x the sum of
the last-level caches (detected), each kernel's figure is the best of N timed repetitions after an
untimed one, bytes are counted as STREAM counts them (copy/scale 2 arrays, add/triad 3, x element
size), and the arrays' values are checked after the run. Rounds are the GEMM body's (``timed_rounds``):
a round ends only when the device is done, so a GPU figure is never a launch rate.

The sweep runs sizes in ascending order with the four kernels of one size sharing its arrays, and
keeps inside a time budget (CPU 12 s, --quick 6 s; GPU 30 s), so memory adds seconds, not minutes,
to a calibration: fewer repetitions where a size would overrun it, a skip that says why where even
three would.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from hwcal.backends import Backend
from hwcal.backends.base import StreamArrays
from hwcal.machine.caches import CacheInfo
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
from hwcal.measure.timing import RoundPlan, time_one_call, timed_rounds, warmup_rounds

# Seconds by device type and --quick: on a CPU the sweep adds at most ~15 s to a calibration; a GPU's
# rounds last >= 20 ms each (launch overhead < 1%), so its 44 cases need longer.
MEMORY_BUDGET_S = {("cpu", False): 12.0, ("cpu", True): 6.0, ("gpu", False): 30.0, ("gpu", True): 15.0}
STREAM_ROUNDS = {False: 10, True: 5}  # STREAM's NTIMES is 10 (best of, after one untimed)
MIN_ROUNDS = 3
SMALLEST_ARRAY_BYTES = {"cpu": 4 * 2**10, "gpu": 2**20}  # GPUs: smaller arrays only time the launch
# The largest arrays at least this big even where the caches read small: SoCs have system caches sysfs
# does not list (a Jetson's 4 MB system-level cache), GPUs have L2s of 50-60 MB and bandwidth to match.
MIN_TOP_ARRAY_BYTES = {"cpu": 64 * 2**20, "gpu": 256 * 2**20}
MEMORY_FRACTION_PLANNED = 0.5  # the three arrays of a planned size take at most half of free memory
MEMORY_FRACTION_RUN = 0.8  # ... and at run time at most 80% of what is free then (as GEMM)
FILL_BYTES_PER_S_GUESS = {"cpu": 1e9, "gpu": 1e11}  # first-touch rate before one was measured


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
    # Beyond STREAM's minimum: two sizes make a plateau (CPU), four on a GPU where they cost milliseconds.
    sizes += [top] if quick else [top * 2**i for i in range(2 if device_type == "cpu" else 3)]
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
    if not isinstance(session.memory, MemorySweep):
        backend = session.backend
        session.memory = MemorySweep(
            caches=backend.stream_caches(),
            device=backend.device,
            threads=backend.stream_threads() if backend.device_type == "cpu" else None,
            element_bytes=backend.stream_element_bytes,
            budget_s=MEMORY_BUDGET_S[backend.device_type, session.options.quick],
        )
    return session.memory


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
    session.ran_memory = True
    backend = session.backend
    sweep = memory_sweep(session)
    element_bytes = backend.stream_element_bytes
    n = array_bytes // element_bytes
    label = size_label(array_bytes)
    started = time.perf_counter()
    try:
        if not state.holds(n):
            state.release()
            need = 3 * array_bytes
            free = backend.free_memory_bytes()
            if need > MEMORY_FRACTION_RUN * free:
                reason = (f"STREAM arrays of {label} need {need / 2**30:.2f} GiB, more than "
                          f"{MEMORY_FRACTION_RUN:.0%} of the {free / 2**30:.2f} GiB free")
                sweep.skips.append(reason)
                pytest.skip(reason)
        rounds, reason = _rounds_within_budget(sweep, state, backend, kernel, n, STREAM_ROUNDS[session.options.quick])
        if reason:
            sweep.skips.append(reason)
            pytest.skip(reason)
        if benchmark.enabled:
            backend.warm_up()
        _measure(benchmark, session, sweep, state, kernel, n, rounds)
    finally:
        sweep.spent_s += time.perf_counter() - started


def _measure(benchmark: Any, session: CalibrationSession, sweep: MemorySweep, state: StreamState, kernel: str,
             n: int, rounds: int) -> None:
    backend = session.backend
    arrays = state.arrays_for(n)
    method = backend.stream_method(kernel)
    sweep.methods[kernel] = method.description
    try:
        if benchmark.enabled:
            pass_s = time_one_call(backend, backend.stream_kernel, kernel, arrays, STREAM_SCALAR)
            if pass_s < backend.min_round_s:  # short calls: one preempted sample would leave 1 pass per round
                pass_s = min(pass_s, *(time_one_call(backend, backend.stream_kernel, kernel, arrays, STREAM_SCALAR)
                                       for _ in range(3)))
            launches = max(1, math.ceil(backend.min_round_s / max(pass_s, 1e-7)))
            round_s = launches * pass_s
            plan = RoundPlan(launches, rounds, warmup_rounds(backend, round_s))
        else:
            plan = RoundPlan(launches=1, rounds=1, warmup_rounds=0)  # --benchmark-disable: validate only
        bytes_per_pass = stream_bytes(kernel, n, arrays.element_bytes)
        benchmark.extra_info.update({"kernel": kernel, "n": n, "array_bytes": n * arrays.element_bytes,
                                     "bytes": bytes_per_pass * plan.launches, "launches_per_round": plan.launches,
                                     "method": method.description})
        timed = timed_rounds(benchmark, backend, plan, backend.stream_kernel, kernel, arrays, STREAM_SCALAR)
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
    sweep.records.append(StreamRecord(
        kernel=kernel,
        n=n,
        element_bytes=arrays.element_bytes,
        bytes_per_pass=bytes_per_pass,
        arrays_moved=method.arrays_moved,
        passes_per_round=plan.launches,
        rounds=int(stats.rounds),
        warmup_rounds=plan.warmup_rounds,
        time_s={k: float(getattr(stats, k)) for k in ("min", "max", "mean", "median", "stddev", "iqr")},
        gbps_best=bytes_per_round / stats.min / 1e9,
        gbps_median=bytes_per_round / stats.median / 1e9,
        cv=float(stats.stddev / stats.mean) if stats.mean > 0 and stats.rounds > 1 else 0.0,
        max_rel_error=error,
        method=method.description,
        device_event_ratio=timed.event_ratio,
    ))
    benchmark.extra_info["gbps_best"] = bytes_per_round / stats.min / 1e9
