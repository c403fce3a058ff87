"""The BLAS1/BLAS2 benchmark body (dot, axpy, scal, gemv), written once for every backend.

Counting is BLAS's (and the original calibrator's): dot 2n FLOPs over 2n elements, axpy 2n over 3n
(x and y read, y written), scal n over 2n, gemv 2mn over mn + m + n; bytes are those elements x the
element size, the least traffic the call can make. Sizes are planned by those bytes, from inside L1
(a GPU: L2) to at least 4x the last-level cache, where the figure is a DRAM figure (STREAM's rule) and
the document compares it with the same run's sustained triad. Each series runs its DRAM size first.

Rounds are the shared harness's (``hwcal.measure.timing``); like STREAM the figure is the best of a
fixed number of rounds (10, --quick 5), inside a time budget (CPU 7 s, --quick 3.5 s; GPU 10 s) that each
(operation, precision) series shares fairly: a series may spend its share plus what earlier series
left, so a slow first series cannot starve the last one of its DRAM sizes. After the planned sizes come
refinements between them (the middle of every gap of 8x or more, then its quarters), each run only where
its measured neighbours differ by 20 % in GB/s: the budget goes where the curve steps between tiers.

Verification: ``hwcal.measure.blas_verify``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from hwcal.backends import Backend
from hwcal.backends.base import BLAS_OPERATIONS, Support
from hwcal.machine.caches import CacheInfo
from hwcal.measure.adaptive import refinement_reason, refinement_sizes
from hwcal.measure.blas_verify import verify_blas  # with verify_dot, verify_gemv, verify_in_place
from hwcal.measure.case import VERIFY_ONLY, best_call_s, charged, plan_for_call, run_verified
from hwcal.measure.records import STREAM_ARRAY_FACTOR, BlasRecord
from hwcal.measure.session import CalibrationSession
from hwcal.measure.stream import size_label
from hwcal.measure.timing import time_one_call, warmup_rounds
from hwcal.precisions import PRECISIONS

BLAS_BUDGET_S = {("cpu", False): 7.0, ("cpu", True): 3.5, ("gpu", False): 10.0, ("gpu", True): 5.0}
BLAS_ROUNDS = {False: 10, True: 5}  # best of N after an untimed call, as STREAM
# GPUs: 5 rounds (a GPU case's rounds spread well under 1 % at DRAM sizes: cv 0.0004-0.002 on the H200); the
# time saved buys the sizes between L2 and HBM (16 .. 256 MiB) that element-wise predictions interpolate across.
GPU_BLAS_ROUNDS = 5
GPU_BLAS_ROUND_S = 0.005  # and 5 ms rounds (50 .. 500 calls; a synchronisation costs ~20 us of that): a case's
# warm-up, event and timed rounds at the backend's 20 ms made every size cost ~0.25 s, 16 series x 3 sizes
# more than the budget, so an H100's run kept no size between 4 and 256 MiB for most series.
MIN_ROUNDS = 3
SMALL_CASE_FRACTION = 0.02  # a case predicted under 2% of the budget runs while the whole budget has room
# The planned sizes share this much of the budget; the rest is kept for the refinements (the sizes between
# tiers the predictions interpolate across). Without it torch's slow CPU half-precision series (bf16 axpy:
# 8 GB/s at 256 MiB) spent all 7 s and no series got a size between 1 and 256 MiB.
PLANNED_SHARE = 0.75
SMALLEST_BYTES = {"cpu": 16 * 2**10, "gpu": 2**20}  # GPUs: smaller calls only time the launch
# The largest size at least this big where caches read small (SoC system caches; GPU L2s of 50 MB+).
MIN_TOP_BYTES = {"cpu": 64 * 2**20, "gpu": 256 * 2**20}
# ... and at most this: a VM may report its host's whole L3 (this one: 480 MiB, so 4x is 2 GiB, whose first
# touch alone took 6.5 s of the 7 s budget and left scal with no size past 1 MiB), and a chiplet CPU's few
# threads fill only their own cluster's L3 (at most ~100 MB shipped to one cluster).
MAX_TOP_BYTES = {"cpu": 256 * 2**20, "gpu": 2**30}
MEMORY_FRACTION_PLANNED = 0.5
MEMORY_FRACTION_RUN = 0.8
FILL_BYTES_PER_S_GUESS = {"cpu": 1e9, "gpu": 1e11}  # first touch of the operands, for the budget


def blas_round_s(backend: Backend) -> float:
    """How long a BLAS case's round lasts at least (``GPU_BLAS_ROUND_S`` on a GPU)."""
    return GPU_BLAS_ROUND_S if backend.device_type == "gpu" else backend.min_round_s


def _wanted_rounds(backend: Backend, quick: bool) -> int:
    return min(BLAS_ROUNDS[quick], GPU_BLAS_ROUNDS) if backend.device_type == "gpu" else BLAS_ROUNDS[quick]


# Elements per call as BLAS counts them, and FLOPs: (flops, elements) as functions of (n, m).
_COUNTS = {
    "dot": (lambda n, m: 2 * n, lambda n, m: 2 * n),
    "axpy": (lambda n, m: 2 * n, lambda n, m: 3 * n),
    "scal": (lambda n, m: n, lambda n, m: 2 * n),
    "gemv": (lambda n, m: 2 * m * n, lambda n, m: m * n + m + n),
}


def _check_operation(operation: str) -> None:
    if operation not in _COUNTS:
        raise ValueError(f"unknown BLAS operation {operation!r}; one of {', '.join(BLAS_OPERATIONS)}")


def blas_flops(operation: str, n: int, m: int = 1) -> int:
    """FLOPs of one call as BLAS counts them (a multiply-add is 2; scal's multiply is 1)."""
    _check_operation(operation)
    return _COUNTS[operation][0](n, m)


def blas_elements(operation: str, n: int, m: int = 1) -> int:
    """Elements one call must read or write at least (gemv: A, x and y)."""
    _check_operation(operation)
    return _COUNTS[operation][1](n, m)


def blas_bytes(operation: str, n: int, element_bytes: int, m: int = 1) -> int:
    return blas_elements(operation, n, m) * element_bytes


def arithmetic_intensity(operation: str, n: int, element_bytes: int, m: int = 1) -> float:
    """FLOPs per byte of minimal traffic: dot 1/8 in fp64, axpy 1/12, scal 1/16, gemv ~1/4."""
    return blas_flops(operation, n, m) / blas_bytes(operation, n, element_bytes, m)


GEMV_ALIGN = 16  # elements: rows start on 32-byte boundaries, as every model's do (an H100's bf16 torch.mv
# of 11586^2 reached 2173 GB/s, of 11520^2 2548: the unaligned rows took a slower kernel)


def size_for(operation: str, working_bytes: int, element_bytes: int) -> tuple[int, int]:
    """(n, m) whose counted bytes are at least ``working_bytes`` (so a planned DRAM size stays one);
    gemv is square, its side a multiple of ``GEMV_ALIGN``."""
    if operation == "gemv":
        n = GEMV_ALIGN * max(1, math.floor(math.sqrt(working_bytes / element_bytes) / GEMV_ALIGN))
        while blas_bytes("gemv", n, element_bytes, n) < working_bytes:
            n += GEMV_ALIGN
        return n, n
    per_n = blas_elements(operation, 1)
    return max(1, math.ceil(working_bytes / (per_n * element_bytes))), 1


def _pow2_ceil(x: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, x))))


def _pow2_floor(x: int) -> int:
    return 1 << max(0, int(math.log2(max(1, x))))


def plan_working_sets(caches: CacheInfo, device_type: str, free_bytes: int, quick: bool) -> list[int]:
    """Bytes per call: one size well inside each cache level (half of one instance, so even one thread
    keeps it resident), then the first power of two >= 4x the last-level cache (the DRAM figure), within
    ``MIN_TOP_BYTES`` .. ``MAX_TOP_BYTES``; a cache size within 2x of that top is left to it. --quick keeps
    the innermost and outermost levels. Sizes beyond half of free memory are left out."""
    levels = sorted(caches.levels, key=lambda c: c.level)
    if quick and len(levels) > 2:
        levels = [levels[0], levels[-1]]
    smallest = SMALLEST_BYTES[device_type]
    top = min(max(_pow2_ceil(STREAM_ARRAY_FACTOR * caches.llc_total_bytes), MIN_TOP_BYTES[device_type]),
              MAX_TOP_BYTES[device_type])
    sizes = {s for c in levels if (s := max(smallest, _pow2_floor(c.size_bytes // 2))) * 2 < top} | {smallest, top}
    ordered = sorted(sizes)
    limit = MEMORY_FRACTION_PLANNED * free_bytes
    return [s for s in ordered if s <= limit] or ordered[:1]


# gemv first: besides its own figures it is the bandwidth a GEMM's weights stream at in the predictions
# (``hwcal.model.gemm``), so a tight budget leaves out an element-wise series' sizes rather than it.
SERIES_ORDER = ("gemv", "dot", "axpy", "scal")


def blas_series(backend: Backend) -> list[tuple[str, str]]:
    """(operation, precision) in run order: gemv, then BLAS1, the backend's precisions most asked first."""
    return [(op, p) for op in SERIES_ORDER if op in BLAS_OPERATIONS for p in backend.blas_precisions()]


def blas_cases(backend: Backend, quick: bool) -> list[tuple[str, str, int]]:
    """(operation, precision, bytes per call), the DRAM size first in each series: it is the figure the
    document sets against STREAM, so a tight budget leaves out an in-cache size rather than it. After every
    series' planned sizes, the refinement sizes (not with --quick), each run only where its neighbours show a
    tier step and only on what the budget has left."""
    sizes = plan_working_sets(backend.stream_caches(), backend.device_type, backend.free_memory_bytes(), quick)
    series = blas_series(backend)
    planned = [(op, p, s) for op, p in series for s in sorted(sizes, reverse=True)]
    # Refinements precision-major (the most asked precision's sizes of every operation first): a budget that
    # ends early leaves out a rarely asked precision's in-between sizes, not fp32's.
    by_precision = sorted(series, key=lambda s: backend.blas_precisions().index(s[1]))
    return planned + ([] if quick else [(op, p, s) for op, p in by_precision for s in blas_refinements(backend, sizes)])


def blas_refinements(backend: Backend, sizes: list[int]) -> list[int]:
    """The refinement sizes between the planned ``sizes``; on a GPU also the largest power of two inside its L2,
    after the others. The middle of 16 .. 256 MiB is 64 MiB, so an H100's bf16 gemv had no size between 16 MiB
    (12.99 us, near its floor) and 64 MiB (27.45 us), and a 50 MiB projection at the L2's size was predicted
    31 % fast. It runs, as every refinement, only where its neighbours show a step."""
    extra = []
    if backend.device_type == "gpu":
        inside = _pow2_floor(backend.stream_caches().llc_total_bytes)
        if min(sizes) < inside < max(sizes) and inside not in sizes:
            extra.append(inside)
    return list(dict.fromkeys(refinement_sizes(sizes) + extra))


def case_id(operation: str, precision: str, working_bytes: int) -> str:
    return f"{operation}-{precision}-{size_label(working_bytes)}"


# ---- the body -------------------------------------------------------------------------------------------
def fair_allowance(budget_s: float, spent_s: float, index: int, count: int) -> float:
    """Seconds series ``index`` of ``count`` may still spend: its share of the budget plus what the
    series before it left unused."""
    return budget_s * (index + 1) / max(1, count) - spent_s


def _support(session: CalibrationSession, operation: str, precision: str) -> Support:
    key = (operation, precision)
    if key not in session.operation_supports:
        session.operation_supports[key] = session.backend.blas_support(operation, precision)
    return session.operation_supports[key]


PROBE_FRACTION = 64  # a series' first case is predicted from one call on 1/64 of its bytes


def _predicted_call_s(session: CalibrationSession, operation: str, precision: str, nbytes: int) -> float | None:
    """From the largest size of the series run so far, scaled by bytes: smaller sizes sit in faster caches, so
    this over-predicts them (safe); a larger one (a -k reordering) is predicted at the same bandwidth."""
    done = [r for r in session.results.blas if r.operation == operation and r.precision == precision]
    if not done:
        return None
    last = max(done, key=lambda r: r.bytes)
    return last.time_s["min"] * nbytes / last.bytes


def _probe_call_s(session: CalibrationSession, operation: str, precision: str, nbytes: int) -> float:
    """One call on 1/64 of the bytes, scaled up: a slow path (torch's CPU bf16 dot runs at ~1 GB/s) shows
    before 100 MiB of it are allocated and timed."""
    backend = session.backend
    element_bytes = PRECISIONS[precision].bits // 8
    small = max(SMALLEST_BYTES[backend.device_type], nbytes // PROBE_FRACTION)
    n, m = size_for(operation, small, element_bytes)
    ops = backend.blas_operands(operation, precision, n, m, seed=1)
    # Best of three: one call descheduled on a shared machine (a BLAS thread waking late) would predict 100x.
    call = backend.blas_bound(ops)
    call_s = min(time_one_call(backend, call) for _ in range(3))
    return call_s * nbytes / blas_bytes(operation, n, element_bytes, m)


def _rounds_within_budget(session: CalibrationSession, operation: str, precision: str, nbytes: int,
                          wanted: int, label: str, refinement: bool = False) -> tuple[int, str | None]:
    backend = session.backend
    budget = session.family_budget("blas", BLAS_BUDGET_S[backend.device_type, session.options.quick])
    series = blas_series(backend)
    index = series.index((operation, precision)) if (operation, precision) in series else len(series) - 1
    spent = session.budget_spent_s.get("blas", 0.0)
    if refinement:  # refinements come after every planned size: they get what is left, no share
        planned_budget, left = budget, budget - spent
    else:
        planned_budget = PLANNED_SHARE * budget
        left = fair_allowance(planned_budget, spent, index, len(series))
    call_s = _predicted_call_s(session, operation, precision, nbytes)
    if call_s is None:
        if spent >= planned_budget:
            return 0, f"{operation} {precision} at {label}: the {budget:g} s BLAS budget is spent"
        # A series' first (DRAM) case may use what the whole budget has left, not only its share: a first
        # series that absorbed the session's one-off costs (thread pools, first page faults) must not starve
        # the next of its DRAM figure. A probe guards against a slow path eating the budget.
        call_s = _probe_call_s(session, operation, precision, nbytes)
        left = max(left, min(planned_budget - spent, 2 * planned_budget / len(series)))
    round_s = max(call_s, blas_round_s(backend))
    fill_s = nbytes / FILL_BYTES_PER_S_GUESS[backend.device_type]
    # Beyond the timed rounds: warm-up, two sizing calls, device-event rounds (GPUs), verification (~4 calls).
    fixed_s = fill_s + (warmup_rounds(backend, round_s) + 2 + (3 if backend.is_async else 0)) * round_s + 4 * call_s
    fit = math.floor((left - fixed_s) / round_s)
    if fit >= wanted:
        return wanted, None
    if fit >= MIN_ROUNDS:
        return fit, None
    cost_s = fixed_s + wanted * round_s
    if not refinement and cost_s < SMALL_CASE_FRACTION * budget and spent + cost_s < planned_budget:
        # An in-cache size costs milliseconds: the shares exist to bound the DRAM sizes, so a small case
        # runs while the whole budget has room, whatever its series' share says.
        return wanted, None
    return 0, (f"{operation} {precision} at {label} would take about {fixed_s + MIN_ROUNDS * round_s:.2f} s, more "
               f"than the {max(left, 0):.2f} s its series has left of the {budget:g} s BLAS budget")


SLOWER = 0.9  # a working set this much slower (GB/s) than a larger one of its series is re-measured
OVERHEAD_BOUND_S = 1e-4  # calls shorter than this are bound by the call, not the cache: not cross-checked


def slower_than_larger(session: CalibrationSession, operation: str, precision: str, nbytes: int, launches: int
                       ) -> Callable[[Any], str | None]:
    """A cross-check: a working set in a faster tier slower than a larger one of the same series (a busy core,
    most likely: re-measured; a real effect survives that). Calls bound by their own overhead are exempt."""
    larger = [r for r in session.results.blas if r.operation == operation and r.precision == precision
              and r.bytes > nbytes]
    best = max(larger, key=lambda r: r.gbps_best) if larger else None

    def suspect(stats: Any) -> str | None:
        call_s = stats.min / launches
        gbps = nbytes / call_s / 1e9
        if best is not None and call_s > OVERHEAD_BOUND_S and gbps < SLOWER * best.gbps_best:
            return (f"cross-check: {operation} {precision} at {nbytes:,} bytes reached {gbps:.4g} GB/s, slower than "
                    f"the {best.gbps_best:.4g} GB/s of the larger {best.bytes:,} bytes")
        return None

    return suspect


def run_blas(benchmark: Any, session: CalibrationSession, operation: str, precision: str, working_bytes: int) -> None:
    """Measure, verify and record one (operation, precision, size) case, or skip it with the reason."""
    session.families_run.add("blas")
    if benchmark.enabled:
        session.backend.warm_up()  # once per session (GPU clocks): not this sweep's budget
    with charged(session, "blas"):
        _run(benchmark, session, operation, precision, working_bytes)


def _skip_reason(session: CalibrationSession, operation: str, precision: str, working_bytes: int, nbytes: int
                 ) -> str | None:
    support = _support(session, operation, precision)
    if not support.runnable:
        return f"{operation} {precision} unsupported: {support.reason}"
    failed = session.failures.get(f"{operation}:{precision}")
    if failed:
        return f"{operation} {precision} failed verification earlier: {failed}"
    free = session.backend.free_memory_bytes()
    if nbytes > MEMORY_FRACTION_RUN * free:
        return (f"{operation} {precision} at {size_label(working_bytes)} needs {nbytes / 2**30:.2f} GiB, more "
                f"than {MEMORY_FRACTION_RUN:.0%} of the {free / 2**30:.2f} GiB free")
    return None


def _run(benchmark: Any, session: CalibrationSession, operation: str, precision: str, working_bytes: int) -> None:
    backend = session.backend
    element_bytes = PRECISIONS[precision].bits // 8
    n, m = size_for(operation, working_bytes, element_bytes)
    nbytes = blas_bytes(operation, n, element_bytes, m)
    reason = _skip_reason(session, operation, precision, working_bytes, nbytes)
    if reason:
        pytest.skip(reason)
    refinement = not session.options.quick and working_bytes in blas_refinements(backend, plan_working_sets(
        backend.stream_caches(), backend.device_type, backend.free_memory_bytes(), False))
    if refinement:
        measured = [(r.bytes, r.gbps_best) for r in session.results.blas
                    if r.operation == operation and r.precision == precision]
        reason = refinement_reason(measured, nbytes, f"{operation} {precision} at {size_label(working_bytes)}",
                                   size_label)
        if reason:
            pytest.skip(reason)  # the plan working, not a missing figure: no warning
    rounds, reason = _rounds_within_budget(session, operation, precision, nbytes,
                                           _wanted_rounds(backend, session.options.quick),
                                           size_label(working_bytes), refinement)
    if reason:
        if not refinement:  # a missing planned size must show in the document; a refinement is extra
            session.warn(f"blas: {reason}")
        pytest.skip(reason)

    support = _support(session, operation, precision)
    seed = working_bytes + sum(map(ord, operation + precision))
    ops = backend.blas_operands(operation, precision, n, m, seed)
    backend.synchronize()
    call = backend.blas_bound(ops)
    plan = (plan_for_call(backend, best_call_s(backend, call), rounds, round_s=blas_round_s(backend))
            if benchmark.enabled else VERIFY_ONLY)
    flops = blas_flops(operation, n, m)
    run = run_verified(
        benchmark, session, plan, call, (), lambda: verify_blas(backend, ops),
        info={"operation": operation, "precision": precision, "n": n, "m": m, "flops": flops * plan.launches,
              "bytes": nbytes * plan.launches, "kernel": support.kernel},
        failure_key=f"{operation}:{precision}", where=f"n={n}", what=f"{operation} {precision} at n={n}",
        suspect=slower_than_larger(session, operation, precision, nbytes, plan.launches), footprint_bytes=nbytes,
        split=backend.pool_splits(operation, precision))
    if run.stats is None:
        return
    fields = run.record_fields(precision, support.kernel, per_call=True)
    per_call = fields["time_s"]
    session.results.blas.append(BlasRecord(
        **fields,
        operation=operation,
        n=n,
        m=m if operation == "gemv" else None,
        flops=flops,
        bytes=nbytes,
        element_bytes=element_bytes,
        gflops_best=flops / per_call["min"] / 1e9,
        gflops_median=flops / per_call["median"] / 1e9,
        gbps_best=nbytes / per_call["min"] / 1e9,
        gbps_median=nbytes / per_call["median"] / 1e9,
        threads=backend.blas_threads(operation),
        llc_bytes=backend.stream_caches().llc_total_bytes,
        cpu_busy=run.timed.cpu_busy if backend.device_type == "cpu" else None,
    ))
    benchmark.extra_info["gbps_best"] = nbytes / per_call["min"] / 1e9
