"""The GEMM benchmark body, written once for every backend: skip rules (unsupported, early
termination, memory), operands, timed rounds (``hwcal.measure.timing``), verification, the record."""

from __future__ import annotations

from typing import Any

import pytest

from hwcal.measure.layouts import PROBE_N, choose_layout
from hwcal.measure.records import GemmRecord
from hwcal.measure.session import CalibrationSession
from hwcal.measure.sweep import GUARD_SIZE
from hwcal.measure.timing import RoundPlan, plan_rounds, round_cv, round_times, time_one_call, timed_rounds
from hwcal.measure.verify import verify_gemm


def session_layout(session: CalibrationSession, precision: str) -> str:
    """The precision's fastest operand layout, chosen once per session at a representative size."""
    if precision not in session.layouts:
        sizes = session.sizes()
        probe_n = min(max(sizes), PROBE_N[session.backend.device_type])
        session.layouts[precision] = choose_layout(session.backend, precision, probe_n)
    return session.layouts[precision].layout


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
    layout = session_layout(session, precision)
    seed = 1000 * n + sum(map(ord, precision))
    with backend.precision_mode(precision) as modes:
        ops = backend.make_operands(precision, n, seed, layout=layout)
        if benchmark.enabled:
            plan = plan_rounds(time_one_call(backend, backend.gemm, ops), backend, session.options.quick)
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
        time_s=round_times(stats),
        gflops_best=gflops_best,
        gflops_median=flops / stats.median / 1e9,
        cv=round_cv(stats),
        max_error=check.max_error,
        tolerance=check.tolerance,
        verify_method=check.method,
        kernel=support.kernel,
        layout=ops.layout,
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
