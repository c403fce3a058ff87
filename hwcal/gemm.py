"""The GEMM benchmark body, written once for every backend.

A round is ``launches`` kernels followed by one device synchronisation, so pytest-benchmark's wall
clock stops only after the device has finished; after every round the device must report itself
idle, or the run fails (an unsynchronised round is how an 8192^3 bf16 GEMM once reported
45,000 TFLOP/s). Where the device can time itself (CUDA events), three extra rounds are timed that
way and the ratio is filed as evidence.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from hwcal.backends import Backend, GemmOperands
from hwcal.errors import HwcalError
from hwcal.session import CalibrationSession, GemmRecord
from hwcal.sweep import GUARD_SIZE
from hwcal.verify import verify_gemm


@dataclass(frozen=True)
class RoundPlan:
    launches: int
    rounds: int
    warmup_rounds: int


def plan_rounds(call_s: float, backend: Backend, quick: bool) -> RoundPlan:
    """Launches per round long enough to hide launch/sync overhead; rounds to fill a small budget."""
    call_s = max(call_s, 1e-7)
    launches = max(1, math.ceil(backend.min_round_s / call_s))
    round_s = launches * call_s
    target_s = 0.1 if quick else 0.3
    min_rounds = 3 if round_s > 0.05 else 5
    rounds = max(min_rounds, min(100, math.ceil(target_s / round_s)))
    warmup_rounds = math.ceil(backend.warmup_s / round_s) if backend.warmup_s else (1 if round_s < 0.05 else 0)
    return RoundPlan(launches, rounds, min(warmup_rounds, 200))


def time_one_call(backend: Backend, launch: Callable[..., Any], *args: Any) -> float:
    """Seconds of one synchronised ``launch(*args)``, after an untimed first one."""
    launch(*args)
    backend.synchronize()  # first call: library initialisation, page faults, clock ramp
    start = time.perf_counter()
    launch(*args)
    backend.synchronize()
    return time.perf_counter() - start


def _time_one_call(backend: Backend, ops: GemmOperands) -> float:
    return time_one_call(backend, backend.gemm, ops)


class SyncGuard:
    """Runs after every round, outside the timed region: the device must have no work left queued.

    Comparing wall time with device time cannot catch a missing synchronisation once the launch
    queue is full (launches then block, and the two agree); asking the device whether it is idle can.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.rounds = 0
        self.busy_rounds = 0

    def __call__(self) -> None:
        self.rounds += 1
        if self.backend.device_idle() is False:
            self.busy_rounds += 1
            self.backend.synchronize()

    def check(self) -> None:
        if self.busy_rounds:
            raise HwcalError(
                f"GPU timing is not synchronised: {self.busy_rounds} of {self.rounds} rounds ended with work still "
                "queued on the device; the backend's synchronize() must wait for the device, nothing filed"
            )


def _device_event_ratio(backend: Backend, round_fn: Any, wall_min_s: float) -> float | None:
    """Fastest wall-clock round / fastest of three rounds timed by device events (evidence, ~1.0)."""
    timer = backend.device_timer()
    if timer is None:
        return None
    device_s = min(timer.time(round_fn) for _ in range(3))
    return wall_min_s / device_s if device_s > 0 else None


@dataclass(frozen=True)
class TimedRounds:
    """pytest-benchmark's statistics (None with --benchmark-disable), the wall time of all rounds, and
    the device-event ratio (GPUs: evidence that the rounds were synchronised)."""

    stats: Any
    elapsed_s: float
    event_ratio: float | None


def timed_rounds(benchmark: Any, backend: Backend, plan: RoundPlan, launch: Callable[..., Any],
                 *args: Any) -> TimedRounds:
    """The round structure every benchmark body shares: ``plan.launches`` launches then one device
    synchronisation per round, timed by ``benchmark.pedantic``; SyncGuard checks after every round,
    outside the timed region, that nothing is left queued (HwcalError otherwise)."""

    def round_fn() -> None:
        for _ in range(plan.launches):
            launch(*args)
        backend.synchronize()

    guard = SyncGuard(backend)
    start = time.perf_counter()
    benchmark.pedantic(round_fn, rounds=plan.rounds, warmup_rounds=plan.warmup_rounds, iterations=1,
                       teardown=guard)
    elapsed_s = time.perf_counter() - start
    guard.check()
    stats = benchmark.stats.stats if benchmark.enabled and benchmark.stats else None
    event_ratio = _device_event_ratio(backend, round_fn, stats.min) if stats else None
    return TimedRounds(stats, elapsed_s, event_ratio)


def run_gemm(benchmark: Any, session: CalibrationSession, precision: str, n: int) -> None:
    """Measure, verify and record one (precision, size) case, or skip it with the reason."""
    session.ran_gemm = True
    backend = session.backend
    if precision in session.failures:
        pytest.skip(f"{precision} failed verification earlier: {session.failures[precision]}")
    support = session.support(precision)
    if not support.runnable:
        pytest.skip(f"{precision} unsupported: {support.reason}")
    reason = session.sweep.skip_reason(precision, n)
    if reason:
        session.note_skip(precision, reason)
        pytest.skip(reason)
    need = backend.bytes_per_gemm(precision, n)
    free = backend.free_memory_bytes()
    if need > 0.8 * free:
        reason = f"{precision} at n={n} needs {need / 2**30:.2f} GiB, more than 80% of the {free / 2**30:.2f} GiB free"
        session.note_skip(precision, reason)
        pytest.skip(reason)

    if benchmark.enabled:
        backend.warm_up()
    seed = 1000 * n + sum(map(ord, precision))
    with backend.precision_mode(precision) as modes:
        ops = backend.make_operands(precision, n, seed)
        if benchmark.enabled:
            plan = plan_rounds(_time_one_call(backend, ops), backend, session.options.quick)
        else:
            plan = RoundPlan(launches=1, rounds=1, warmup_rounds=0)  # the fast correctness mode
        benchmark.extra_info.update({"precision": precision, "n": n, "flops": ops.flops * plan.launches,
                                     "launches_per_round": plan.launches, "kernel": support.kernel})
        timed = timed_rounds(benchmark, backend, plan, backend.gemm, ops)
        stats, elapsed_s, event_ratio = timed.stats, timed.elapsed_s, timed.event_ratio
        check = verify_gemm(backend, ops, ops.out if ops.out is not None else backend.gemm(ops), seed)
    benchmark.extra_info.update({"verified": check.ok, "max_error": check.max_error})
    if not check.ok:
        session.failures[precision] = f"n={n}: {check.describe()}"
        pytest.fail(f"{precision} GEMM at n={n} gave wrong results: {check.describe()}")
    flops = ops.flops * plan.launches
    if stats is None:
        # --benchmark-disable: verified once, nothing filed; the one run still feeds early termination.
        session.sweep.record(precision, n, elapsed_s, flops / max(elapsed_s, 1e-9) / 1e9)
        return
    gflops_best = flops / stats.min / 1e9
    record = GemmRecord(
        precision=precision,
        n=n,
        flops_per_round=flops,
        launches_per_round=plan.launches,
        rounds=int(stats.rounds),
        warmup_rounds=plan.warmup_rounds,
        time_s={k: float(getattr(stats, k)) for k in ("min", "max", "mean", "median", "stddev", "iqr")},
        gflops_best=gflops_best,
        gflops_median=flops / stats.median / 1e9,
        cv=float(stats.stddev / stats.mean) if stats.mean > 0 and stats.rounds > 1 else 0.0,
        max_error=check.max_error,
        tolerance=check.tolerance,
        verify_method=check.method,
        kernel=support.kernel,
        modes=dict(modes),
        operand_range=ops.operand_range,
        accumulator_wraps=bool(ops.extra.get("accumulator_wraps")),
        device_event_ratio=event_ratio,
    )
    session.records.append(record)
    # The fastest round predicts the next size: one slow round on a busy machine must not end a sweep.
    session.sweep.record(precision, n, stats.min / plan.launches, gflops_best)
    if n >= GUARD_SIZE:
        benchmark.extra_info["gflops_best"] = gflops_best
